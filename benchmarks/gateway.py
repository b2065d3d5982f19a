"""What the gateway costs, measured side by side in one run against one fast fake upstream.

    python benchmarks/gateway.py                 # ~3 minutes; `make bench` runs it
    python benchmarks/gateway.py --full          # memory over 100k requests as the issue asks
    python benchmarks/gateway.py --with-litellm  # also LiteLLM's proxy (venv made on first use)

Targets (issue 4): coop adds <= 1 ms at p50 with 1 connection; at 32 connections it serves
>= 50% of a bare aiohttp pass-through's req/s and >= 25x LiteLLM's; streaming adds <= 2 ms
to time-to-first-byte; resident memory stays within +-10% over 100k requests.

Every server is its own process: the fake upstream (`python -m fakes openai`), `coop serve`
(1 worker, access log off), a 20-line raw ASGI proxy with an aiohttp client on the same
uvicorn stack (the floor any Python gateway stands on), LiteLLM's proxy (1 worker) when
present, and optionally coop on granian. Load comes from `wrk` when installed (a C load
generator: it costs the 2 cores least), otherwise from the small aiohttp load generator in
this file, run as a separate process. Rounds are interleaved and the median is reported,
because the machine is shared and its speed drifts.
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
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _upstream import fake_upstream, free_port, percentile, wait_for_port

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".litellm-venv"
GRANIAN_VENV = HERE / ".granian-venv"
LITELLM_KEY = "sk-litellm-bench"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there, how are you"}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}

# The bare pass-through: what any Python gateway on uvicorn + aiohttp pays at the least.
BARE_PROXY = """
import sys, aiohttp, uvicorn
UP, PORT = sys.argv[1].rstrip("/"), int(sys.argv[2])
state = {}
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (m := await receive())["type"] != "lifespan.shutdown":
            state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
            await send({"type": "lifespan.startup.complete"})
        await state["s"].close(); await send({"type": "lifespan.shutdown.complete"}); return
    body, more = b"", True
    while more:
        m = await receive(); body += m.get("body", b""); more = m.get("more_body", False)
    url = UP + scope["path"].removeprefix("/v1")
    async with state["s"].request(scope["method"], url, data=body, headers={"content-type": "application/json"}) as r:
        data = await r.read()
    await send({"type": "http.response.start", "status": r.status, "headers": [(b"content-type", r.headers["content-type"].encode())]})
    await send({"type": "http.response.body", "body": data})
uvicorn.run(app, host="127.0.0.1", port=PORT, loop="uvloop", http="httptools", log_level="warning", access_log=False)
"""


# -- processes -------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    base_url: str  # ends in /v1
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None


@contextlib.contextmanager
def process(
    cmd: list[str], *, env: dict[str, str] | None = None, port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait for its port, stop it with SIGTERM (then SIGKILL)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_for_port(port, timeout=240)
            except RuntimeError:
                raise RuntimeError(
                    f"{cmd[0]} did not start; see {log}:\n{log.read_text()[-2000:]}"
                ) from None
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def coop_config(folder: Path, upstream: str, port: int) -> Path:
    path = folder / "coop.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [server]
            host = "127.0.0.1"
            port = {port}
            access_log = "off"

            [endpoints.up]
            provider = "custom"
            base_url = "{upstream}"
            health_check_interval = 0

            [models.m]
            endpoint = "up"
            path = "gpt-4o-mini"
            """
        ),
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def coop_server(folder: Path, upstream: str) -> Iterator[Target]:
    port = free_port()
    config = coop_config(folder, upstream, port)
    cmd = [sys.executable, "-m", "coop", "serve", "--config", str(config)]
    with process(cmd, port=port, log=folder / "coop.log") as proc:
        yield Target("coop", f"http://127.0.0.1:{port}/v1", pid=proc.pid)


@contextlib.contextmanager
def bare_proxy(folder: Path, upstream: str) -> Iterator[Target]:
    port = free_port()
    script = folder / "bare_proxy.py"
    script.write_text(BARE_PROXY, encoding="utf-8")
    cmd = [sys.executable, str(script), upstream, str(port)]
    with process(cmd, port=port, log=folder / "bare.log") as proc:
        yield Target("bare aiohttp proxy", f"http://127.0.0.1:{port}/v1", pid=proc.pid)


def ensure_litellm(install: bool) -> Path | None:
    """LiteLLM's CLI in its own venv (its dependency pins must not touch coop's)."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        return None
    print("creating benchmarks/.litellm-venv with litellm[proxy] (one time) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    (LITELLM_VENV / ".gitignore").write_text("*\n", encoding="utf-8")
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "litellm[proxy]"], check=True)
    return exe if exe.exists() else None


@contextlib.contextmanager
def litellm_server(folder: Path, upstream: str, exe: Path) -> Iterator[Target]:
    port = free_port()
    config = folder / "litellm.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            model_list:
              - model_name: m
                litellm_params:
                  model: openai/gpt-4o-mini
                  api_base: {upstream}
                  api_key: sk-upstream
            """
        ),
        encoding="utf-8",
    )
    cmd = [
        str(exe),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = {
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start-up
        "LITELLM_TELEMETRY": "False",
    }
    with process(cmd, env=env, port=port, log=folder / "litellm.log") as proc:
        yield Target(
            "LiteLLM proxy",
            f"http://127.0.0.1:{port}/v1",
            {"authorization": f"Bearer {LITELLM_KEY}"},
            pid=proc.pid,
        )


def ensure_granian(install: bool) -> Path | None:
    """granian in its own venv that also sees coop's (so the same app is served)."""
    exe = GRANIAN_VENV / "bin" / "granian"
    if exe.exists():
        return exe
    if not install:
        return None
    subprocess.run([sys.executable, "-m", "venv", str(GRANIAN_VENV)], check=True)
    (GRANIAN_VENV / ".gitignore").write_text("*\n", encoding="utf-8")
    subprocess.run(
        [str(GRANIAN_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "granian"],
        check=True,
    )
    site = next((GRANIAN_VENV / "lib").glob("python*/site-packages"))
    coop_site = next(Path(sys.prefix, "lib").glob("python*/site-packages"))
    (site / "coop_main_venv.pth").write_text(f"import site; site.addsitedir({str(coop_site)!r})\n")
    return exe


@contextlib.contextmanager
def coop_on_granian(folder: Path, upstream: str, exe: Path) -> Iterator[Target]:
    port = free_port()
    config = coop_config(folder, upstream, port)
    cmd = [
        str(exe), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
        "--factory", "coop.server:app_factory",
    ]  # fmt: skip
    env = {"COOP_SERVE_CONFIG": str(config)}
    with process(cmd, env=env, port=port, log=folder / "granian.log") as proc:
        yield Target("coop on granian", f"http://127.0.0.1:{port}/v1", pid=proc.pid)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# -- load generation ---------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    requests: int = 0
    #: The server processes' CPU time per request: steadier than req/s on a shared machine.
    cpu_us: float = float("nan")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(target: Target, connections: int, seconds: float) -> Result:
    """One wrk run (1 thread: the machine has 2 cores and the servers need them)."""
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in target.headers.items())
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + headers
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        run = subprocess.run(
            ["wrk", "-t1", "--timeout", "10s", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", f.name,
             target.base_url + "/chat/completions"],
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        os.unlink(f.name)
    out = run.stdout
    if run.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk against {target.name} failed: {(out + run.stderr).strip()[-500:]}")

    def latency(q: str) -> float:
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    done = re.search(r"(\d+) requests in", out)
    return Result(rps, latency("50"), latency("99"), errors, int(done.group(1)) if done else 0)


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """The Python load generator: aiohttp, keep-alive, fixed count or fixed duration."""
    import aiohttp

    url, connections = spec["url"], spec["connections"]
    mode, count, seconds = spec["mode"], spec.get("count"), spec.get("seconds")
    latencies: list[float] = []
    ttfb: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds if seconds else None
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=spec["headers"]) as session:

        async def one(stream: bool) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with session.post(url, json=STREAM_BODY if stream else BODY) as r:
                    if stream:
                        first = True
                        async for line in r.content:
                            if first and line.startswith(b"data: "):
                                ttfb.append(time.perf_counter() - started)
                                first = False
                    else:
                        await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

        async def worker() -> None:
            nonlocal sent
            while True:
                if count is not None and sent >= count:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                sent += 1
                await one(mode == "stream" or (mode == "mixed" and sent % 2 == 0))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "ttfb_p50_ms": percentile([x * 1000 for x in ttfb], 0.5) if ttfb else None,
        "errors": errors,
        "requests": len(latencies),
    }


def loadgen(
    target: Target,
    connections: int,
    *,
    mode: str = "chat",
    count: int | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Run the Python load generator in its own process and return its figures."""
    spec = {
        "url": target.base_url + "/chat/completions",
        "headers": target.headers,
        "connections": connections,
        "mode": mode,
        "count": count,
        "seconds": seconds,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", json.dumps(spec)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (LiteLLM runs workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def measure(target: Target, connections: int, seconds: float, use_wrk: bool) -> Result:
    before = cpu_seconds(target.pid) if target.pid else None
    if use_wrk:
        result = wrk(target, connections, seconds)
    else:
        r = loadgen(target, connections, seconds=seconds)
        result = Result(r["rps"], r["p50_ms"], r["p99_ms"], r["errors"], r["requests"])
    if before is not None and target.pid and result.requests:
        result.cpu_us = (cpu_seconds(target.pid) - before) / result.requests * 1e6
    return result


# -- in-process profile ------------------------------------------------------------------

UPSTREAM_REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello there",'
    b'"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}'
)


def profile_in_process(count: int, top: int) -> None:
    """Where coop's own CPU goes, sockets aside: microseconds per request by layer, then cProfile.

    The upstream is a stub HTTP client returning a canned answer, and the ASGI app is called
    directly, so the figures are coop's code only (no uvicorn, no aiohttp, no kernel).
    """
    import cProfile
    import pstats

    import uvloop
    from coop import (
        ChatResponse,
        HTTPClient,
        HTTPResponse,
        SystemConfig,
        from_wire,
        parse_chat_request,
        response_json,
    )
    from coop.server import create_app

    class Reply(HTTPResponse):
        status = 200
        headers = {"content-type": "application/json"}  # noqa: RUF012

        async def read(self) -> bytes:
            return UPSTREAM_REPLY

        async def aiter_bytes(self) -> Any:
            yield UPSTREAM_REPLY

        async def aclose(self) -> None:
            pass

    class Stub(HTTPClient):
        async def request(self, *args: Any, **kw: Any) -> HTTPResponse:
            await asyncio.sleep(0)  # one trip through the loop, as a socket read would take
            return Reply()

        async def aclose(self) -> None:
            pass

    body = json.dumps(BODY).encode()
    with tempfile.TemporaryDirectory() as tmp:
        config = SystemConfig.load(coop_config(Path(tmp), "http://127.0.0.1:9/v1", 0))

    async def run() -> None:
        app = create_app(config, health_checks=False)
        await app.startup()
        assert app.dispatcher is not None
        for provider in app.dispatcher.engine.providers.values():
            provider.http = Stub()
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1)}  # fmt: skip

        async def send(message: Any) -> None:
            pass

        async def one() -> None:
            given = False
            never = asyncio.get_running_loop().create_future()

            async def receive() -> dict[str, Any]:
                nonlocal given
                if not given:
                    given = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await never  # a client that stays: the hang-up watcher waits here
                raise AssertionError

            await app(scope, receive, send)
            never.cancel()

        async def per_request(fn: Any) -> float:
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                for _ in range(count):
                    await fn()
                best = min(best, (time.perf_counter() - began) / count * 1e6)
            return best

        request = parse_chat_request(json.loads(body))
        reply = from_wire(ChatResponse, json.loads(UPSTREAM_REPLY))
        dispatcher = app.dispatcher

        async def engine_only() -> None:
            await dispatcher.complete(request)

        async def parse_only() -> None:
            parse_chat_request(json.loads(body))

        async def serialise_only() -> None:
            response_json(reply)

        full = await per_request(one)
        engine = await per_request(engine_only)
        print(f"whole request in-process  {full:7.1f} us")
        print(f"  dispatcher + engine     {engine:7.1f} us")
        print(f"  gateway (the rest)      {full - engine:7.1f} us")
        print(f"    of which parse        {await per_request(parse_only):7.1f} us")
        print(f"    of which serialise    {await per_request(serialise_only):7.1f} us")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            await one()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
        await app.shutdown()

    uvloop.run(run())


# -- the run ----------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import aiohttp
    import uvicorn

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__}, aiohttp {aiohttp.__version__}; load average at start {load}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--requests", type=int, default=20_000, help="requests for the memory check")
    p.add_argument(
        "--full", action="store_true", help="the issue's figures: 100k requests for memory"
    )
    p.add_argument(
        "--with-litellm",
        action="store_true",
        help="install LiteLLM in benchmarks/.litellm-venv if needed",
    )
    p.add_argument(
        "--with-granian", action="store_true", help="also serve coop with granian (own venv)"
    )
    p.add_argument("--loadgen", help=argparse.SUPPRESS)
    p.add_argument(
        "--python-loadgen",
        action="store_true",
        help="use the aiohttp load generator even if wrk is installed",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--profile", action="store_true", help="profile coop's request path in-process and stop"
    )
    args = p.parse_args(argv)
    if args.profile:
        profile_in_process(5000, 25)
        return 0
    if args.loadgen:
        print(json.dumps(asyncio.run(_loadgen(json.loads(args.loadgen)))))
        return 0
    if args.full:
        args.requests = max(args.requests, 100_000)
    use_wrk = shutil.which("wrk") is not None and not args.python_loadgen
    litellm = ensure_litellm(args.with_litellm)
    granian = ensure_granian(args.with_granian)
    started = datetime.datetime.now(datetime.UTC)
    about = machine()
    print(f"{started:%Y-%m-%d %H:%M} UTC; {about}")
    print(
        f"load generator: {'wrk -t1' if use_wrk else 'aiohttp (this file)'}; {args.rounds} rounds x {args.seconds:g}s\n",
        flush=True,
    )

    results: dict[tuple[str, int], list[Result]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="coop-bench-") as tmp, fake_upstream() as upstream:
        folder = Path(tmp)
        direct = Target("direct upstream", upstream)
        with contextlib.ExitStack() as stack:
            targets = [direct]
            targets.append(stack.enter_context(bare_proxy(folder, upstream)))
            targets.append(stack.enter_context(coop_server(folder, upstream)))
            if granian is not None:
                targets.append(stack.enter_context(coop_on_granian(folder, upstream, granian)))
            if litellm is not None:
                try:
                    targets.append(stack.enter_context(litellm_server(folder, upstream, litellm)))
                except RuntimeError as exc:
                    notes.append(f"LiteLLM did not start: {str(exc)[:300]}")
            else:
                notes.append(
                    "LiteLLM: not installed (pass --with-litellm to create benchmarks/.litellm-venv)"
                )
            for target in targets:  # warm-up: connections, caches, first-call imports
                measure(target, 32, 1.0, use_wrk)
            for rnd in range(args.rounds):
                for connections in (1, 32):
                    for target in targets:
                        try:
                            r = measure(target, connections, args.seconds, use_wrk)
                        except RuntimeError as exc:  # one bad run must not lose the others
                            notes.append(f"round {rnd + 1}, {connections} connections: {exc}")
                            continue
                        results.setdefault((target.name, connections), []).append(r)
                print(f"round {rnd + 1}/{args.rounds} done", flush=True)
            coop = next(t for t in targets if t.name == "coop")
            ttfb = {
                t.name: loadgen(t, 1, mode="stream", count=400)["ttfb_p50_ms"]
                for t in (direct, coop)
            }
        # memory on a fresh coop, half the requests streamed
        with coop_server(folder, upstream) as fresh:
            assert fresh.pid is not None
            loadgen(fresh, 32, mode="mixed", count=2000)
            before = rss_mb(fresh.pid)
            mem = loadgen(fresh, 32, mode="mixed", count=args.requests)
            after = rss_mb(fresh.pid)

    def med(name: str, c: int, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results[(name, c)])

    rows = []
    for name in dict.fromkeys(n for n, _ in results):
        for c in (1, 32):
            if (name, c) not in results:
                continue
            errs = sum(r.errors for r in results[(name, c)])
            rows.append(
                (
                    name,
                    c,
                    med(name, c, "rps"),
                    med(name, c, "p50_ms"),
                    med(name, c, "p99_ms"),
                    med(name, c, "cpu_us"),
                    errs,
                )
            )
    print()
    print("| target | connections | req/s | p50 ms | p99 ms | server CPU µs/request | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, c, rps, p50, p99, cpu, errs in rows:
        shown = "-" if cpu != cpu else f"{cpu:,.0f}"  # NaN: the fake upstream's is not tracked
        print(f"| {name} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {shown} | {errs} |")
    figures: dict[str, Any] = {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "machine": about,
        "load_generator": "wrk" if use_wrk else "aiohttp",
        "rows": [
            dict(
                zip(
                    ("target", "connections", "rps", "p50_ms", "p99_ms", "cpu_us", "errors"),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ],
    }
    checks: list[tuple[str, str, bool]] = []
    added_p50 = med("coop", 1, "p50_ms") - med("direct upstream", 1, "p50_ms")
    checks.append(("coop adds at p50, 1 connection", f"{added_p50:.2f} ms", added_p50 <= 1.0))
    vs_bare = med("coop", 32, "rps") / med("bare aiohttp proxy", 32, "rps")
    checks.append(("coop / bare proxy req/s, 32 connections", f"{vs_bare:.0%}", vs_bare >= 0.5))
    cpu_ratio = med("bare aiohttp proxy", 32, "cpu_us") / med("coop", 32, "cpu_us")
    checks.append(
        (
            "bare proxy / coop CPU per request, 32 connections (req/s on an idle machine)",
            f"{cpu_ratio:.0%}",
            cpu_ratio >= 0.5,
        )
    )
    if ("LiteLLM proxy", 32) in results:
        vs_litellm = med("coop", 32, "rps") / med("LiteLLM proxy", 32, "rps")
        checks.append(
            ("coop / LiteLLM req/s, 32 connections", f"{vs_litellm:.1f}x", vs_litellm >= 25)
        )
        litellm_added = med("LiteLLM proxy", 1, "p50_ms") - med("direct upstream", 1, "p50_ms")
        checks.append(("LiteLLM adds at p50, 1 connection", f"{litellm_added:.2f} ms", True))
    if ("coop on granian", 32) in results:
        g = med("coop on granian", 32, "rps") / med("coop", 32, "rps")
        checks.append(("coop on granian / on uvicorn req/s, 32 connections", f"{g:.0%}", True))
    added_ttfb = ttfb["coop"] - ttfb["direct upstream"]
    checks.append(
        (
            "coop adds to streaming time-to-first-byte (p50)",
            f"{added_ttfb:.2f} ms",
            added_ttfb <= 2.0,
        )
    )
    change = (after - before) / before
    checks.append(
        (
            f"coop RSS over {mem['requests']:,} requests (half streamed)",
            f"{before:.1f} -> {after:.1f} MB ({change:+.1%})",
            abs(change) <= 0.10,
        )
    )
    print()
    print("| check | measured | target met |")
    print("| --- | --- | --- |")
    for what, value, ok in checks:
        print(f"| {what} | {value} | {'yes' if ok else 'NO'} |")
    for note in notes:
        print(f"\nnote: {note}")
    if mem["errors"]:
        print(f"\nnote: {mem['errors']} errors during the memory run")
    figures["checks"] = [{"check": w, "measured": v, "met": ok} for w, v, ok in checks]
    figures["ttfb_p50_ms"] = ttfb
    figures["notes"] = notes
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
