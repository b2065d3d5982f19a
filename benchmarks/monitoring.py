"""What metrics cost: the gateway's req/s with ``[server] metrics = true`` vs ``false``,
side by side in one run against one fast fake upstream.

    python benchmarks/monitoring.py                  # ~1 minute
    python benchmarks/monitoring.py --seconds 10 --rounds 5
    python benchmarks/monitoring.py --instructions   # callgrind's count instead (~3 minutes)

Target (issue 13): under 5% difference. Two ``coop serve`` processes (1 worker, access
log off), identical but for ``[server] metrics``; load from ``wrk`` when installed, else
the aiohttp load generator of ``gateway.py``. Rounds are interleaved (on, off, off, on...)
and the medians compared, because the machine is shared and its speed drifts. While the
"on" gateway is loaded, ``/metrics`` is scraped once a second (a Prometheus scraping every
15 s costs less), so the figure includes exposition and the resource monitor.
``--instructions`` counts instructions per request of both under callgrind, as
``instructions.py`` does: steady where req/s on a shared machine is not.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _upstream import fake_upstream, free_port
from gateway import Result, Target, coop_config, measure, process


def serve_command(folder: Path, upstream: str, *, metrics: bool) -> tuple[list[str], int]:
    """``coop serve`` on a free port with ``[server] metrics`` set; (command, port)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = coop_config(folder, upstream, port)
    text = config.read_text(encoding="utf-8")
    switch = f'access_log = "off"\nmetrics = {str(metrics).lower()}\n'
    config.write_text(text.replace('access_log = "off"\n', switch), encoding="utf-8")
    return [sys.executable, "-m", "coop", "serve", "--config", str(config)], port


@contextlib.contextmanager
def coop_server(folder: Path, upstream: str, *, metrics: bool) -> Iterator[Target]:
    cmd, port = serve_command(folder, upstream, metrics=metrics)
    with process(cmd, port=port, log=folder / "coop.log") as proc:
        name = "metrics on" if metrics else "metrics off"
        yield Target(name, f"http://127.0.0.1:{port}/v1", pid=proc.pid)


@contextlib.contextmanager
def scraping(target: Target, every: float) -> Iterator[list[int]]:
    """Scrape ``/metrics`` every ``every`` seconds in a thread; yields the sizes read."""
    sizes: list[int] = []
    stop = threading.Event()
    url = target.base_url.removesuffix("/v1") + "/metrics"

    def run() -> None:
        while not stop.wait(every):
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
                sizes.append(len(r.read()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sizes
    finally:
        stop.set()
        thread.join()


def count_instructions(requests: int, connections: int) -> int:
    from instructions import instructions

    counts: dict[bool, int] = {}
    with tempfile.TemporaryDirectory(prefix="coop-mon-") as tmp, fake_upstream() as upstream:
        for metrics in (True, False):
            folder = Path(tmp) / str(metrics)
            cmd, port = serve_command(folder, upstream, metrics=metrics)
            counts[metrics] = instructions(cmd, port, folder, requests, connections)
    on, off = counts[True] / requests, counts[False] / requests
    print(f"{requests} requests at {connections} connections, counted by callgrind")
    print(f"  metrics on   {on:12,.0f} instructions/request")
    print(f"  metrics off  {off:12,.0f} instructions/request")
    print(f"  cost of metrics: {(on - off) / off * 100:+.1f}% (target < 5%)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (median reported)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    p.add_argument("--requests", type=int, default=500, help="requests counted (--instructions)")
    args = p.parse_args(argv)
    if args.instructions:
        return count_instructions(args.requests, args.connections)
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, list[Result]] = {"metrics on": [], "metrics off": []}
    scrapes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="coop-mon-") as tmp, fake_upstream() as upstream:
        folder = Path(tmp)
        with (
            coop_server(folder / "on", upstream, metrics=True) as on,
            coop_server(folder / "off", upstream, metrics=False) as off,
        ):
            for target in (on, off):  # warm up
                measure(target, args.connections, 1.0, use_wrk)
            for i in range(args.rounds):
                order = (on, off) if i % 2 == 0 else (off, on)
                for target in order:
                    with contextlib.ExitStack() as stack:
                        if target is on:
                            scrapes += stack.enter_context(scraping(target, args.scrape_every))
                        r = measure(target, args.connections, args.seconds, use_wrk)
                    results[target.name].append(r)
                    print(
                        f"round {i + 1} {target.name:11} {r.rps:9.0f} req/s  "
                        f"p50 {r.p50_ms:6.2f} ms  cpu {r.cpu_us:6.0f} us/req  errors {r.errors}",
                        flush=True,
                    )
                    time.sleep(0.2)
    rps = {name: statistics.median(r.rps for r in rs) for name, rs in results.items()}
    cpu = {name: statistics.median(r.cpu_us for r in rs) for name, rs in results.items()}
    diff = (rps["metrics off"] - rps["metrics on"]) / rps["metrics off"] * 100
    cpu_diff = (cpu["metrics on"] - cpu["metrics off"]) / cpu["metrics off"] * 100
    print(
        f"\nmedian of {args.rounds} rounds, {args.connections} connections, "
        f"{'wrk' if use_wrk else 'aiohttp loadgen'}:"
    )
    for name in results:
        print(f"  {name:11} {rps[name]:9.0f} req/s  {cpu[name]:6.0f} us CPU/request")
    print(f"  req/s cost of metrics: {diff:+.1f}% (target < 5%); CPU/request {cpu_diff:+.1f}%")
    if scrapes:
        print(f"  /metrics scraped {len(scrapes)} times under load, {scrapes[-1]} bytes each")
    return 0 if diff < 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
