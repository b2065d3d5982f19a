"""Two coop replicas behind nginx, sharing one redis-server, against one replica direct.

    python benchmarks/replicas.py                  # ~1 minute
    python benchmarks/replicas.py --state memory   # each replica on its own state
    python benchmarks/replicas.py --latency-ms 50  # a slower (simulated) upstream

What deploy/compose.yaml runs, without containers, on loopback: the replicas are
`coop serve` processes reading deploy/coop.toml (host, port and the state URL from the
command line and the environment, as in the containers), redis-server is the Debian
package (`make install` installs it), nginx runs deploy/nginx.conf with only the
upstream's `server` lines and the listen port swapped for loopback ones. The models are
the simulated ones of deploy/coop.toml (no upstream process), so the figures are the
gateway's own work.

Measured, in interleaved rounds (median reported; the machine is shared):
- one replica, direct;
- one replica behind nginx (what the balancer costs);
- two replicas behind nginx (what the second replica buys).

Besides req/s (median round and mean of all rounds), the CPU time all server processes
(replicas, nginx, redis-server) spent per request: steadier than req/s on a shared machine.
Load comes from `wrk` (1 thread) when installed, else from the small aiohttp load
generator in this file, run as its own process. Each replica's own request count (from
its /status) shows how nginx spread the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gateway
from _upstream import free_port, percentile

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
#: Every server process started (replicas, nginx masters, redis-server): their CPU time
#: per request is steadier than req/s on a shared machine.
SERVER_PIDS: list[int] = []
#: [server] api_keys (COOP_API_KEY): for /status, and the load with --key static.
API_KEY = "sk-bench-replicas"
#: The key the load is sent with: API_KEY, or a managed key made with `coop keys create`.
CLIENT_KEY = API_KEY
BODY = {"model": "sim-light", "messages": [{"role": "user", "content": "hello there, how are you"}]}


# -- processes -------------------------------------------------------------------------


@contextlib.contextmanager
def process(
    cmd: list[str], *, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """gateway.process, with the pid kept for the server CPU count."""
    with gateway.process(cmd, env=env, port=port, log=log) as proc:
        SERVER_PIDS.append(proc.pid)
        yield proc


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit(
            "redis-server is not installed (make install installs it); or run with --state memory"
        )
    port = free_port()
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(folder)]
    with process(cmd, port=port, log=folder / "redis.log"):
        yield f"redis://127.0.0.1:{port}/0"


def replica_config(folder: Path, state: str, latency_ms: float) -> Path:
    """deploy/coop.toml, with the state backend and the simulated latency of this run."""
    text = (DEPLOY / "coop.toml").read_text(encoding="utf-8")
    if state == "memory":
        text = re.sub(r'(?m)^backend = "redis"$', 'backend = "memory"', text)
        text = re.sub(r"(?m)^url = .*$", "", text)
    if latency_ms:
        text = text.replace(
            'provider = "simulated"\n',
            f'provider = "simulated"\noptions = {{ latency = {latency_ms / 1000} }}\n',
            1,
        )
    path = folder / "coop.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def replica(folder: Path, name: str, config: Path, redis_url: str | None) -> Iterator[int]:
    port = free_port()
    cmd = [sys.executable, "-m", "coop", "serve", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    env = {"COOP_API_KEY": API_KEY, "COOP_REDIS_URL": redis_url or ""}
    with process(cmd, port=port, log=folder / f"{name}.log", env=env):
        wait_ready(port)
        yield port


def managed_key(config: Path, redis_url: str | None) -> str:
    """A key with a rate limit no run reaches: every request checks and counts it."""
    env = {**os.environ, "COOP_API_KEY": API_KEY, "COOP_REDIS_URL": redis_url or ""}
    made = subprocess.run(
        [sys.executable, "-m", "coop", "keys", "create", "--name", "bench", "--rpm", "10000000",
         "--json", "--config", str(config)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    key = json.loads(made.stdout)["key"]
    time.sleep(1.5)  # every replica has synced its keys (sync_interval 0.5 s)
    return str(key)


def wait_ready(port: int, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the replica on port {port} never became ready")


def nginx_config(upstreams: list[int], port: int, folder: Path) -> Path:
    """deploy/nginx.conf with loopback upstreams and listen port; nothing else changed."""
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    servers = re.findall(r"(?m)^(\s*)server coop-\d+:8080( [^;]*)?;\n", text)
    if len(servers) != 2:
        raise RuntimeError("deploy/nginx.conf: expected the two 'server coop-N:8080' lines")
    indent, options = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p}{options};\n" for p in upstreams)
    text = re.sub(r"(?m)^\s*server coop-\d+:8080[^;]*;\n", "", text)
    text = text.replace("least_conn;\n", "least_conn;\n" + lines, 1)
    text = re.sub(r"(?m)^(\s*)listen 8080;", rf"\1listen 127.0.0.1:{port};", text)
    text = text.replace("pid /tmp/nginx.pid;", f"pid {folder}/nginx-{port}.pid;")
    path = folder / f"nginx-{port}.conf"
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def nginx(folder: Path, upstreams: list[int]) -> Iterator[int]:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx)")
    port = free_port()
    config = nginx_config(upstreams, port, folder)
    cmd = [exe, "-p", str(folder), "-c", str(config), "-g", "daemon off;"]
    with process(cmd, port=port, log=folder / f"nginx-{port}.log"):
        yield port


# -- load ------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, seconds: float) -> dict[str, Any]:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {CLIENT_KEY}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        run = subprocess.run(
            ["wrk", "-t1", "--timeout", "10s", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--latency", "-s", f.name, url],
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        os.unlink(f.name)
    out = run.stdout
    if run.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {(out + run.stderr).strip()[-500:]}")

    def latency(q: str) -> float:
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    done = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": errors,
        "requests": int(done.group(1)) if done else 0,
    }


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """The fallback load generator: aiohttp, keep-alive, fixed duration."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + spec["seconds"]
    headers = {"authorization": f"Bearer {spec['key']}"}
    connector = aiohttp.TCPConnector(limit=spec["connections"])
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(spec["url"], json=BODY) as r:
                        await r.read()
                        errors += r.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(spec["connections"])))
        elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "rps": len(ms) / elapsed,
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "errors": errors,
        "requests": len(ms),
    }


def load(url: str, connections: int, seconds: float, use_wrk: bool) -> dict[str, Any]:
    if use_wrk:
        return wrk(url, connections, seconds)
    spec = {"url": url, "connections": connections, "seconds": seconds, "key": CLIENT_KEY}
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", json.dumps(spec)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def served(port: int) -> int:
    """Requests a replica has counted (its /status)."""
    import httpx

    r = httpx.get(
        f"http://127.0.0.1:{port}/status",
        headers={"authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    r.raise_for_status()
    return int(r.json()["metrics"]["total"]["requests"])


def cpu_seconds() -> float:
    """User + system CPU of every server process and its live descendants (nginx workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(SERVER_PIDS)
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def redis_commands(url: str | None) -> int:
    """Commands the redis-server has processed so far (0 without Redis); the status
    reads of this script add a few."""
    if url is None:
        return 0
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nginx_version = subprocess.run(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True, text=True
    ).stderr.strip()
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {nginx_version}; load average at start {load_avg}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state", choices=("redis", "memory"), default="redis")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--key",
        choices=("managed", "static"),
        default="managed",
        help="send a managed key (rate limit and spend in the state: Redis) or the static "
        "[server] api_keys one (default: managed with Redis, static with memory)",
    )
    p.add_argument("--latency-ms", type=float, default=0.0, help="the simulated models' latency")
    p.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.loadgen:
        print(json.dumps(asyncio.run(_loadgen(json.loads(args.loadgen)))))
        return 0
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    if args.state == "memory":
        args.key = "static"  # a key made by the CLI would live in the CLI's memory only
    started = datetime.datetime.now(datetime.UTC)
    print(f"{started:%Y-%m-%d %H:%M} UTC; {machine()}")
    print(
        f"state backend {args.state}; simulated latency {args.latency_ms:g} ms; "
        f"{args.connections} connections, {args.key} key; load from "
        f"{'wrk (1 thread)' if use_wrk else 'the Python load generator'}; "
        f"{args.rounds} rounds of {args.seconds:g} s, median"
    )
    results: dict[str, list[dict[str, Any]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="coop-replicas-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(tmp)
        redis_url = stack.enter_context(redis_server(folder)) if args.state == "redis" else None
        config = replica_config(folder, args.state, args.latency_ms)
        first = stack.enter_context(replica(folder, "coop-1", config, redis_url))
        second = stack.enter_context(replica(folder, "coop-2", config, redis_url))
        if args.key == "managed":
            global CLIENT_KEY
            CLIENT_KEY = managed_key(config, redis_url)
        lb_one = stack.enter_context(nginx(folder, [first]))
        lb_two = stack.enter_context(nginx(folder, [first, second]))
        targets = {
            "1 replica, direct": first,
            "1 replica behind nginx": lb_one,
            "2 replicas behind nginx": lb_two,
        }
        # warm-up: every path once, so no round pays for first connections and imports
        for port in targets.values():
            load(f"http://127.0.0.1:{port}/v1/chat/completions", 4, 1, use_wrk)
        spread: list[tuple[int, int]] = []
        commands_before = redis_commands(redis_url)
        for _ in range(args.rounds):
            for name, port in targets.items():
                before = (served(first), served(second))
                cpu_before = cpu_seconds()
                result = load(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    args.connections,
                    args.seconds,
                    use_wrk,
                )
                result["cpu_s"] = cpu_seconds() - cpu_before
                results.setdefault(name, []).append(result)
                if port == lb_two:
                    after = (served(first), served(second))
                    spread.append((after[0] - before[0], after[1] - before[1]))
        commands = redis_commands(redis_url) - commands_before
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")
        }
        summary[name]["errors"] = sum(r["errors"] for r in runs)
        summary[name]["requests"] = sum(r["requests"] for r in runs)
        summary[name]["cpu_us"] = sum(r["cpu_s"] for r in runs) / summary[name]["requests"] * 1e6
    direct = summary["1 replica, direct"]["rps"]
    print()
    # the median round and the mean over all rounds: on a shared machine they differ
    elapsed = args.rounds * max(1, round(args.seconds))
    mean_direct = summary["1 replica, direct"]["requests"] / elapsed
    print(
        f"| {'target':<24} | req/s (median) | vs direct | req/s (mean) | vs direct "
        "| p50 ms | p99 ms | server CPU us/request | errors/requests |"
    )
    print(f"| {'-' * 24} | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in summary.items():
        mean = s["requests"] / elapsed
        print(
            f"| {name:<24} | {s['rps']:.0f} | {s['rps'] / direct:.2f}x | {mean:.0f} "
            f"| {mean / mean_direct:.2f}x | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} "
            f"| {s['cpu_us']:.0f} | {s['errors']}/{s['requests']} |"
        )
    shares = ", ".join(f"{a}/{b}" for a, b in spread)
    print(f"\nrequests served by coop-1/coop-2 in each two-replica round: {shares}")
    if redis_url:
        total = sum(s["requests"] for s in summary.values())
        print(f"Redis commands per request (all targets): {commands / max(total, 1):.2f}")
    if args.json:
        print(json.dumps({"summary": summary, "spread": spread, "state": args.state}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
