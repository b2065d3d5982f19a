"""Run one fake upstream as its own process, for benchmarks.

    PYTHONPATH=tests python -m fakes openai --port 9000 --latency-ms 200

Prints `listening on <url>` once ready (port 0 picks a free one) and serves until SIGINT or
SIGTERM. Recording is off unless `--record`, so long benchmarks do not grow memory.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .anthropic_upstream import FakeAnthropic
from .http import FakeUpstream
from .openai_upstream import FakeOpenAI

KINDS: dict[str, type[FakeUpstream]] = {"openai": FakeOpenAI, "anthropic": FakeAnthropic}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, serve, and stop cleanly on a signal."""
    p = argparse.ArgumentParser(prog="python -m fakes", description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    p.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="delay before each streamed write"
    )
    p.add_argument(
        "--write-size", type=int, default=None, help="cut SSE streams into writes of N bytes"
    )
    p.add_argument(
        "--models", default="", help="comma-separated model ids (default: the fake's own)"
    )
    p.add_argument(
        "--key", action="append", dest="keys", help="accepted API key (repeatable; default: any)"
    )
    p.add_argument("--record", action="store_true", help="keep every request in memory")
    args = p.parse_args(argv)

    models = [m for m in args.models.split(",") if m] or None
    fake = KINDS[args.kind](
        host=args.host,
        port=args.port,
        models=models,
        api_keys=args.keys,
        latency=args.latency_ms / 1000,
        chunk_delay=args.chunk_delay_ms / 1000,
        write_size=args.write_size,
        record=args.record,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    fake.start()
    print(f"listening on {fake.url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    print(f"served {fake.request_count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
