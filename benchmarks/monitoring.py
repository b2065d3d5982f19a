"""What monitoring costs: the gateway's req/s with monitoring off, on, and on with tracing,
side by side in one run against one fast fake upstream.

    python benchmarks/monitoring.py                  # ~2 minutes
    python benchmarks/monitoring.py --seconds 10 --rounds 5
    python benchmarks/monitoring.py --instructions   # callgrind's count instead (~5 minutes)
    python benchmarks/monitoring.py --instructions --parts   # and metrics, log, alerts alone
    python benchmarks/monitoring.py --opcodes        # Python opcodes per request, in-process
    python benchmarks/monitoring.py --opcodes --source /tmp/old/core   # ... of another tree

Target (issue 13): under 5% difference between monitoring on and off. Three ``coop serve``
processes (1 worker), identical but for monitoring:

- ``off``: ``[server] metrics = false``, ``access_log = "off"``, no alert rules, no tracing;
- ``on``: metrics, the text access log (the default; to the server's log file), two alert
  rules evaluated every second, and ``/metrics`` scraped once a second while it is loaded
  (a Prometheus scraping every 15 s costs less), so exposition and the resource monitor count;
- ``on+tracing``: the same plus ``[monitoring] tracing = true``: every request makes its
  spans (server, model call, upstream attempt) and exports them in batches over OTLP/HTTP
  to a sink in this process (``console`` to the log file when the OTLP exporter is not
  installed; the line printed says which).

Load comes from ``wrk`` (a separate C process) when installed, else the aiohttp load
generator of ``gateway.py`` in its own process. Rounds are interleaved in a rotating
order (off, on, tracing; on, tracing, off; ...) and the medians compared, because the
machine is shared and its speed drifts. ``--instructions`` counts instructions per request
of each under callgrind, as ``instructions.py`` does: steady where req/s on a shared
machine is not.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import importlib.util
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _upstream import fake_upstream, free_port
from gateway import Result, Target, coop_config, measure, process

#: The three gateways compared, in the order they are reported.
MODES = ("off", "on", "on+tracing")
#: What each mode switches on: metrics, access log, alert rules, tracing. ``--instructions``
#: also counts the parts of "on" alone, to say which part costs what.
PARTS = {
    "off": (False, False, False, False),
    "metrics": (True, False, False, False),
    "access log": (False, True, False, False),
    "alerts": (False, False, True, False),
    "on": (True, True, True, False),
    "on+tracing": (True, True, True, True),
}

_ALERTS = """
[[monitoring.alerts]]
name = "m-failing"
metric = "error_rate"
labels = { model = "m" }
threshold = 0.2
window = 60

[[monitoring.alerts]]
name = "m-slow"
metric = "latency_p99_ms"
labels = { model = "m" }
threshold = 2000
window = 60
"""


def otlp_installed() -> bool:
    try:
        spec = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        return False
    return spec is not None


def serve_command(
    folder: Path, upstream: str, mode: str, collector: str | None = None
) -> tuple[list[str], int]:
    """``coop serve`` on a free port with monitoring ``mode``; (command, port)."""
    metrics, access_log, alerts, tracing = PARTS[mode]
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = coop_config(folder, upstream, port)
    text = config.read_text(encoding="utf-8")
    server = f'access_log = "{"text" if access_log else "off"}"\nmetrics = {str(metrics).lower()}\n'
    text = text.replace('access_log = "off"\n', server)
    text += "\n[monitoring]\ninterval = 1\n"
    if tracing:
        text += "tracing = true\n"
        if collector is not None:
            text += f'tracing_exporter = "otlp"\ntracing_endpoint = "{collector}"\n'
        else:
            text += 'tracing_exporter = "console"\n'
    if alerts:
        text += _ALERTS
    config.write_text(text, encoding="utf-8")
    return [sys.executable, "-m", "coop", "serve", "--config", str(config)], port


@contextlib.contextmanager
def coop_server(
    folder: Path, upstream: str, mode: str, collector: str | None = None
) -> Iterator[Target]:
    cmd, port = serve_command(folder, upstream, mode, collector)
    with process(cmd, port=port, log=folder / "coop.log") as proc:
        yield Target(mode, f"http://127.0.0.1:{port}/v1", pid=proc.pid)


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP traces receiver that accepts and drops; yields (URL, body sizes)."""
    sizes: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sizes.append(len(self.rfile.read(int(self.headers.get("content-length", 0)))))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", sizes
    finally:
        server.shutdown()
        server.server_close()


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


def count_instructions(requests: int, connections: int, modes: list[str]) -> int:
    from instructions import instructions

    counts: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="coop-mon-") as tmp,
        fake_upstream() as upstream,
        otlp_sink() as (collector, _),
    ):
        for mode in modes:
            folder = Path(tmp) / mode.replace("+", "-").replace(" ", "-")
            use = collector if otlp_installed() else None
            cmd, port = serve_command(folder, upstream, mode, use)
            counts[mode] = instructions(cmd, port, folder, requests, connections) / requests
            print(f"  {mode:11} {counts[mode]:12,.0f}", flush=True)
    off = counts["off"]
    print(f"{requests} requests at {connections} connections, counted by callgrind")
    for mode in modes:
        print(
            f"  {mode:11} {counts[mode]:12,.0f} instructions/request  "
            f"{(counts[mode] - off) / off * 100:+6.1f}% vs off"
        )
    return 0


def count_opcodes(requests: int, source: str | None) -> int:
    """Python bytecodes the gateway runs per request, in-process: exact and load-independent.

    The bare ASGI app (no uvicorn) on simulated models, one request at a time; a trace
    function counts every opcode executed while the requests run (the span exporter's
    own thread is not counted). ``source``: a ``core`` folder to import coop from instead,
    e.g. a ``git archive`` of an older commit, to compare a change's cost.
    """
    if source is not None:
        sys.path.insert(0, source)
    import asyncio
    import json

    import coop
    from coop.server import create_app

    print(f"coop from {Path(coop.__file__).parent}")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    def config(mode: str, collector: str) -> coop.SystemConfig:
        metrics, access_log, _alerts, tracing = PARTS[mode]
        monitoring: dict[str, object] = {}
        if tracing:
            monitoring = {
                "tracing": True,
                "tracing_exporter": "otlp" if otlp_installed() else "console",
                "tracing_endpoint": collector,
            }
        return coop.SystemConfig.from_dict(
            {
                "server": {"metrics": metrics, "access_log": "text" if access_log else "off"},
                "endpoints": {"sim": {"provider": "simulated"}},
                "models": {"m": {"endpoint": "sim", "path": "sim-light"}},
                "monitoring": monitoring,
            }
        )

    counted = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[0] += 1
        return tracer

    async def run(mode: str, collector: str) -> float:
        app = create_app(config(mode, collector), health_checks=False)
        await app.startup()
        try:
            for _ in range(50):  # warm up: caches, first-call imports
                await app(scope, receive, send)
            counted[0] = 0
            sys.settrace(tracer)
            try:
                for _ in range(requests):
                    await app(scope, receive, send)
            finally:
                sys.settrace(None)
        finally:
            await app.shutdown()
            tracing = getattr(app.dispatcher.engine, "tracing", None)  # older trees: none
            if tracing is not None:
                tracing.shutdown()  # export the last batch while the sink still listens
        return counted[0] / requests

    # as ``coop serve`` logs (INFO, redacting handler), into the void
    logging.basicConfig(
        stream=open(os.devnull, "w"),  # noqa: SIM115 - for the process's life
        level="INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from coop._redact import install_log_redaction

    install_log_redaction()
    with otlp_sink() as (collector, _):
        # alert rules are evaluated by the lifespan task, not per request: not here
        modes = ["off", "metrics", "access log", "on"]
        if source is None or _has_tracing(source):
            modes.append("on+tracing")
        counts = {mode: asyncio.run(run(mode, collector)) for mode in modes}
    print(f"{requests} requests, Python opcodes per request (in-process ASGI app)")
    for mode, count in counts.items():
        change = (count - counts["off"]) / counts["off"] * 100
        print(f"  {mode:11} {count:9,.0f} opcodes/request  {change:+6.1f}% vs off")
    return 0


def _has_tracing(source: str) -> bool:
    return (Path(source) / "coop" / "_tracing.py").exists()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds (median reported)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    p.add_argument("--requests", type=int, default=500, help="requests counted (--instructions)")
    p.add_argument(
        "--parts",
        action="store_true",
        help="--instructions: also metrics, access log and alerts alone",
    )
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"req/s: the gateways compared, comma-separated, from {', '.join(PARTS)}",
    )
    p.add_argument("--opcodes", action="store_true", help="count Python opcodes in-process")
    p.add_argument("--source", help="--opcodes: import coop from this core/ folder")
    args = p.parse_args(argv)
    if args.opcodes:
        return count_opcodes(args.requests, args.source)
    if args.instructions:
        modes = ["off", *(("metrics", "access log", "alerts") if args.parts else ()), "on"]
        return count_instructions(args.requests, args.connections, [*modes, "on+tracing"])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in PARTS]
    if unknown or "off" not in modes:
        p.error(
            f"--modes: {unknown or 'off missing'}; choose from {', '.join(PARTS)} (off included)"
        )
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, list[Result]] = {mode: [] for mode in modes}
    scrapes: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="coop-mon-") as tmp,
        fake_upstream() as upstream,
        otlp_sink() as (collector, exported),
    ):
        folder = Path(tmp)
        exporter = "otlp" if otlp_installed() else "console"
        with contextlib.ExitStack() as servers:
            targets = [
                servers.enter_context(
                    coop_server(
                        folder / mode.replace("+", "-").replace(" ", "-"),
                        upstream,
                        mode,
                        collector if exporter == "otlp" else None,
                    )
                )
                for mode in modes
            ]
            for target in targets:  # warm up
                measure(target, args.connections, 1.0, use_wrk)
            for i in range(args.rounds):
                shift = i % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    with contextlib.ExitStack() as stack:
                        if target.name != "off":
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
    print(
        f"\nmedian of {args.rounds} rounds, {args.connections} connections, "
        f"{'wrk' if use_wrk else 'aiohttp loadgen'}; tracing exported with {exporter}:"
    )
    for name in modes:
        rps_diff = (rps["off"] - rps[name]) / rps["off"] * 100
        cpu_diff = (cpu[name] - cpu["off"]) / cpu["off"] * 100
        print(
            f"  {name:11} {rps[name]:9.0f} req/s ({-rps_diff:+5.1f}%)  "
            f"{cpu[name]:6.0f} us CPU/request ({cpu_diff:+5.1f}%)"
        )
    if "on" not in rps:
        return 0
    cost = (rps["off"] - rps["on"]) / rps["off"] * 100
    print(f"  req/s cost of monitoring: {cost:+.1f}% (target < 5%)")
    if scrapes:
        print(f"  /metrics scraped {len(scrapes)} times under load, {scrapes[-1]} bytes each")
    if exported:
        print(f"  OTLP: {len(exported)} batches, {sum(exported) / 1e6:.1f} MB of spans exported")
    return 0 if cost < 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
