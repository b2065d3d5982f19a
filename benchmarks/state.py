"""What shared state costs per request: memory, SQLite and Redis side by side, in one run.

    python benchmarks/state.py                  # ~3 minutes
    python benchmarks/state.py --rounds 5 --seconds 8
    python benchmarks/state.py --ops-only       # only the in-process backend operations

Two parts, each in interleaved rounds (median reported; the machine is shared):

1. The backend operations one request with a managed key makes (a rate-limit ``hit`` and
   an ``add_spend``), in process, for MemoryState, SQLiteState (calls in a worker thread,
   the default, and inline on the event loop) and RedisState: microseconds per request,
   one at a time and 16 at once.
2. The gateway: `coop serve` processes in front of one fast fake upstream, with
   ``[state] backend`` memory, sqlite and redis (one redis-server on loopback). SQLite and
   Redis run twice: without a managed key (the backend is open, nothing on the request
   path touches it) and with one (every request is authenticated against it, counted in
   its rpm/tpm windows and its spend). Memory cannot hold a key across processes (the
   CLI creates it), so memory is the baseline without one. Load comes from wrk (1 thread)
   when installed, else the aiohttp load generator of benchmarks/gateway.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _upstream import fake_upstream, free_port, wait_for_port
from gateway import Target, machine, measure, process
from gateway import coop_config as gateway_config

HERE = Path(__file__).resolve().parent


# -- redis-server ------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make install installs it as root)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=20)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- part 1: the operations in process ------------------------------------------------------


async def _ops(backend: Any, requests: int, concurrency: int) -> float:
    """Microseconds per request of one hit + one add_spend, ``concurrency`` at once."""
    done = 0

    async def one_request(i: int) -> None:
        await backend.hit(f"key:bench:rpm:{i % 4}", limit=10**9, window=60.0)
        await backend.add_spend("bench", "2026-11-30", 0.0001)

    started = time.perf_counter()
    while done < requests:
        batch = min(concurrency, requests - done)
        await asyncio.gather(*(one_request(done + j) for j in range(batch)))
        done += batch
    return (time.perf_counter() - started) / requests * 1e6


async def ops_round(folder: Path, redis_url: str, requests: int) -> dict[str, dict[int, float]]:
    from coop._state import MemoryState
    from coop._state_redis import RedisState
    from coop._state_sqlite import SQLiteState

    made = {
        "memory": MemoryState(),
        "sqlite (thread)": SQLiteState(folder / "ops-thread.sqlite3"),
        "sqlite (inline)": SQLiteState(folder / "ops-inline.sqlite3", threaded=False),
        "redis": RedisState(redis_url, prefix="bench-ops:"),
    }
    out: dict[str, dict[int, float]] = {}
    for name, backend in made.items():
        await backend.open()
        try:
            await _ops(backend, 50, 1)  # warm up
            out[name] = {}
            for c in (1, 16):
                if hasattr(backend, "probe"):
                    await backend.probe()  # back on Redis if a call timed out before
                fallbacks = getattr(backend, "fallbacks", 0)
                out[name][c] = await _ops(backend, requests, c)
                if getattr(backend, "fallbacks", 0) != fallbacks:
                    # a call passed the timeout (a loaded machine): not a Redis figure
                    print(f"# note: {name} fell back to local state; run left out")
                    out[name][c] = float("nan")
        finally:
            await backend.aclose()
    return out


def _median(values: list[float]) -> float:
    kept = [v for v in values if v == v]  # runs left out are NaN
    return statistics.median(kept) if kept else float("nan")


# -- part 2: the gateway ---------------------------------------------------------------------


def coop_config(folder: Path, upstream: str, port: int, backend: str, redis_url: str) -> Path:
    """gateway.py's coop.toml, with a price (a managed key's spend) and the ``[state]``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = gateway_config(folder, upstream, port)
    state = f'backend = "{backend}"\n'
    if backend == "redis":
        state += f'url = "{redis_url}"\nprefix = "bench-{folder.name}:"\n'
    extra = "\n[models.m.price]\ninput = 0.15\noutput = 0.6\n\n[state]\n" + state
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


def create_key(config: Path) -> str:
    """A managed key with limits that never refuse here: every request pays their checks."""
    out = subprocess.run(
        [sys.executable, "-m", "coop", "keys", "create", "--config", str(config),
         "--name", "bench", "--rpm", "100000000", "--tpm", "1000000000",
         "--budget", "1000000", "--period", "day", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return str(json.loads(out)["key"])


@contextlib.contextmanager
def gateway(
    folder: Path, upstream: str, backend: str, redis_url: str, with_key: bool
) -> Iterator[Target]:
    port = free_port()
    config = coop_config(folder, upstream, port, backend, redis_url)
    headers = {"Authorization": f"Bearer {create_key(config)}"} if with_key else {}
    cmd = [sys.executable, "-m", "coop", "serve", "--config", str(config)]
    with process(cmd, port=port, log=folder / "coop.log") as proc:
        yield Target(folder.name, f"http://127.0.0.1:{port}/v1", headers=headers, pid=proc.pid)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--requests", type=int, default=2000, help="requests per ops measurement")
    p.add_argument("--ops-only", action="store_true", help="skip the gateway part")
    args = p.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None
    print(f"# shared state: {datetime.date.today()}; {machine()}")
    print(f"# load: {'wrk -t1' if use_wrk else 'aiohttp load generator'}, "
          f"{args.connections} connections, {args.seconds:g}s x {args.rounds} rounds\n")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="coop-bench-state-") as tmp:
        folder = Path(tmp)
        with redis_server(folder) as redis_url:
            # 1. operations in process
            rounds = []
            for _ in range(args.rounds):
                rounds.append(asyncio.run(ops_round(folder, redis_url, args.requests)))
            names = list(rounds[0])
            base = {c: _median([r["memory"][c] for r in rounds]) for c in (1, 16)}
            print("## one request's state operations (hit + add_spend), in process")
            print(
                "| backend | us/request, 1 at a time | x memory | us/request, 16 at once | x memory |"
            )
            print("| --- | ---: | ---: | ---: | ---: |")
            for name in names:
                one = _median([r[name][1] for r in rounds])
                many = _median([r[name][16] for r in rounds])
                print(
                    f"| {name} | {one:.1f} | {one / base[1]:.1f} | {many:.1f} | {many / base[16]:.1f} |"
                )
            print()
            if args.ops_only:
                return 0

            # 2. the gateway
            with fake_upstream() as upstream, contextlib.ExitStack() as stack:
                setups = [
                    ("memory", "memory", False),
                    ("sqlite", "sqlite", False),
                    ("redis", "redis", False),
                    ("sqlite+key", "sqlite", True),
                    ("redis+key", "redis", True),
                ]
                targets = {
                    label: stack.enter_context(
                        gateway(folder / label.replace("+", "-"), upstream, backend, redis_url, key)
                    )
                    for label, backend, key in setups
                }
                for target in targets.values():  # warm up (and check every setup answers)
                    measure(target, args.connections, 1.0, use_wrk)
                results: dict[str, list[Any]] = {label: [] for label in targets}
                for _ in range(args.rounds):
                    for label, target in targets.items():
                        results[label].append(
                            measure(target, args.connections, args.seconds, use_wrk)
                        )
            print("## gateway req/s (coop serve, 1 worker, fake upstream)")
            print("| state | req/s | x memory | p50 ms | p99 ms | server CPU us/request | errors |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            memory_rps = statistics.median(r.rps for r in results["memory"])
            for label, runs in results.items():
                rps = statistics.median(r.rps for r in runs)
                p50 = statistics.median(r.p50_ms for r in runs)
                p99 = statistics.median(r.p99_ms for r in runs)
                cpu = statistics.median(r.cpu_us for r in runs)
                errors = sum(r.errors for r in runs)
                print(
                    f"| {label} | {rps:.0f} | {rps / memory_rps:.2f} | {p50:.2f} | {p99:.2f} | {cpu:.0f} | {errors} |"
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(HERE.parent / "tests"))
    sys.exit(main())
