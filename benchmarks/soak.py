"""The gateway under faults: three deployments of one model, each failing a share of requests.

    python benchmarks/soak.py                          # 2,000 requests, 30% faults, timeout 5
    python benchmarks/soak.py --requests 20000 --concurrency 32 --timeout 2
    python benchmarks/soak.py --coop-path /tmp/base/core   # another checkout's core, same load

`coop serve` runs as its own process (so its RSS is its own) in front of three fake OpenAI
upstreams (tests/fakes, in this process). Each upstream strikes a random `--fault-rate` of
the requests with one of: 500, 429 (Retry-After 1 s), 503, a dropped connection, or a stall
that outlasts the endpoint's `timeout`. Clients send plain and streamed chat completions
(`--stream-share`) with `[server] request_timeout = --deadline`.

Printed: requests, successes, errors by class (status and code), the slowest request against
the deadline, p50/p99, what the upstreams saw, and the gateway's RSS before and after. A
stream counts as a success only when it ends in `data: [DONE]`; one that ends in an error
event counts by that error; one that ends in neither is a `broken_stream` (must be 0).
tests/test_resilience.py runs a short one of these in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from _upstream import free_port, percentile, wait_for_port  # noqa: E402
from fakes import FakeOpenAI, Fault  # noqa: E402

MODEL = "m"
UPSTREAM_MODEL = "gpt-4o-mini"


class FlakyOpenAI(FakeOpenAI):
    """A fake OpenAI upstream that strikes a random share of completions with a fault."""

    def __init__(self, *, fault_rate: float, faults: list[Fault], seed: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.fault_rate = fault_rate
        self.faults = faults
        self.rng = random.Random(seed)
        self.struck: collections.Counter[str] = collections.Counter()

    def _take_fault(self, model: str | None, path: str) -> Fault | None:  # under the lock
        fault = super()._take_fault(model, path)
        if fault is None and path.endswith("/completions") and self.rng.random() < self.fault_rate:
            fault = self.rng.choice(self.faults)
            self.struck[_fault_name(fault)] += 1
        return fault


def _fault_name(fault: Fault) -> str:
    return str(fault.status_code) if fault.kind == "status" else fault.kind


def default_faults() -> list[Fault]:
    """The issue's mix: 500, 429, 503, dropped connections, stalls past the timeout."""
    return [
        Fault.status(500),
        Fault.rate_limited(retry_after=1),
        Fault.status(503),
        Fault.drop(),
        Fault.stall(None),
    ]


@dataclass
class Report:
    requests: int = 0
    successes: int = 0
    streams: int = 0
    stream_successes: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The first message seen for each error class.
    examples: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    retry_after_missing: int = 0
    upstream_requests: int = 0
    upstream_faults: collections.Counter[str] = field(default_factory=collections.Counter)
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    elapsed: float = 0.0
    deadline: float = 0.0

    @property
    def plain(self) -> int:
        return self.requests - self.streams

    @property
    def plain_successes(self) -> int:
        return self.successes - self.stream_successes

    @property
    def success_rate(self) -> float:
        return self.successes / self.requests if self.requests else 0.0

    @property
    def plain_success_rate(self) -> float:
        return self.plain_successes / self.plain if self.plain else 0.0

    @property
    def slowest(self) -> float:
        return max(self.latencies, default=0.0)

    def lines(self) -> list[str]:
        lat = sorted(self.latencies)
        out = [
            f"requests        {self.requests} ({self.plain} plain, {self.streams} streamed) "
            f"in {self.elapsed:.1f}s",
            f"successes       {self.successes} ({100 * self.success_rate:.2f}%); plain "
            f"{self.plain_successes}/{self.plain} ({100 * self.plain_success_rate:.2f}%), "
            f"streams {self.stream_successes}/{self.streams}",
            "errors          "
            + (", ".join(f"{k}: {v}" for k, v in self.errors.most_common()) or "none"),
            f"latency         p50 {1000 * percentile(lat, 0.5):.0f} ms, "
            f"p99 {1000 * percentile(lat, 0.99):.0f} ms, slowest {self.slowest:.2f}s "
            f"(deadline {self.deadline:g}s, overrun {max(0.0, self.slowest - self.deadline):.2f}s)",
            f"503s w/o Retry-After {self.retry_after_missing}",
            f"upstreams saw   {self.upstream_requests} completions, faults struck: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.upstream_faults.items())),
            f"gateway RSS     {self.rss_start_kb / 1024:.1f} MB -> {self.rss_end_kb / 1024:.1f} MB",
        ]
        out += [f"  e.g. {k}: {v}" for k, v in self.examples.items()]
        return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def gateway(
    upstreams: list[FakeOpenAI],
    *,
    timeout: float,
    deadline: float,
    resilience: dict[str, Any] | None = None,
    coop_path: str | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`coop serve` on a free port in front of ``upstreams``; yields (base URL, process)."""
    port = free_port()
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'access_log = "off"',
        f"request_timeout = {deadline}",
        "",
    ]
    if resilience:
        lines.append("[resilience]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in resilience.items()]
        lines.append("")
    for i, up in enumerate(upstreams):
        lines += [
            f"[endpoints.e{i}]",
            'provider = "openai"',
            f'base_url = "{up.base_url}"',
            f'api_keys = ["sk-soak-{i}-a", "sk-soak-{i}-b"]',
            f"timeout = {timeout}",
            "health_check_interval = 0",
            "",
        ]
    deployments = ", ".join(
        f'{{ endpoint = "e{i}", path = "{UPSTREAM_MODEL}" }}' for i in range(len(upstreams))
    )
    lines += [f"[models.{MODEL}]", f"deployments = [{deployments}]", ""]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "coop.toml"
        config.write_text("\n".join(lines))
        env = {k: v for k, v in os.environ.items() if k not in ("BASE_URL", "API_KEY")}
        env["COOP_CONFIG"] = str(config)
        if coop_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [coop_path, env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "coop", "serve", "--config", str(config)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _one(client: Any, url: str, stream: bool, report: Report, i: int) -> None:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"request {i}: say something"}],
    }
    if stream:
        body["stream"] = True
    started = time.monotonic()
    outcome = "ok"
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            raw = await response.aread()
            if response.status_code != 200:
                try:
                    error = json.loads(raw)["error"]
                    code, message = error["code"], str(error.get("message"))
                except (ValueError, KeyError, TypeError):
                    code, message = "?", raw[:200].decode(errors="replace")
                outcome = f"{response.status_code} {code}"
                report.examples.setdefault(outcome, message[:240])
                if response.status_code == 503 and "retry-after" not in response.headers:
                    report.retry_after_missing += 1
            elif stream:
                events = [
                    line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")
                ]
                last = events[-1] if events else ""
                if last != "[DONE]":
                    try:
                        outcome = f"stream error event {json.loads(last)['error'].get('code')}"
                    except (ValueError, KeyError, TypeError, AttributeError):
                        outcome = "broken_stream"
    except Exception as exc:  # the client's own failure: the gateway did not answer
        outcome = f"client {type(exc).__name__}"
    report.latencies.append(time.monotonic() - started)
    report.requests += 1
    report.streams += stream
    if outcome == "ok":
        report.successes += 1
        report.stream_successes += stream
    else:
        report.errors[outcome] += 1


async def _drive(
    url: str, requests: int, concurrency: int, stream_share: float, seed: int, report: Report
) -> None:
    import httpx

    rng = random.Random(seed)
    plan = [rng.random() < stream_share for _ in range(requests)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=report.deadline + 30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await _one(client, url, plan[i], report, i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def run(
    *,
    requests: int = 2000,
    concurrency: int = 16,
    fault_rate: float = 0.3,
    timeout: float = 5.0,
    deadline: float = 15.0,
    stream_share: float = 0.2,
    seed: int = 1,
    resilience: dict[str, Any] | None = None,
    coop_path: str | None = None,
    faults: list[Fault] | None = None,
) -> Report:
    """One soak; returns its :class:`Report` (also used by tests/test_resilience.py)."""
    mix = faults or default_faults()
    upstreams = [
        FlakyOpenAI(fault_rate=fault_rate, faults=mix, seed=seed * 10 + i, record=False)
        for i in range(3)
    ]
    report = Report(deadline=deadline)
    for up in upstreams:
        up.start()
    try:
        with gateway(
            upstreams,
            timeout=timeout,
            deadline=deadline,
            resilience=resilience,
            coop_path=coop_path,
        ) as (url, process):
            report.rss_start_kb = _rss_kb(process.pid)
            started = time.monotonic()
            asyncio.run(_drive(url, requests, concurrency, stream_share, seed, report))
            report.elapsed = time.monotonic() - started
            report.rss_end_kb = _rss_kb(process.pid)
    finally:
        for up in upstreams:
            up.stop()
    report.upstream_requests = sum(up.request_count for up in upstreams)
    for up in upstreams:
        report.upstream_faults.update(up.struck)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=5.0, help="each endpoint's timeout")
    parser.add_argument("--deadline", type=float, default=15.0, help="[server] request_timeout (s)")
    parser.add_argument("--stream-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--coop-path", help="a checkout's core/ to run instead (before/after)")
    parser.add_argument(
        "--cut-streams",
        action="store_true",
        help="add streams cut after two events to the mix (they must end in an error event)",
    )
    args = parser.parse_args()
    report = run(
        requests=args.requests,
        concurrency=args.concurrency,
        fault_rate=args.fault_rate,
        timeout=args.timeout,
        deadline=args.deadline,
        stream_share=args.stream_share,
        seed=args.seed,
        coop_path=args.coop_path,
        faults=[*default_faults(), Fault.cut_stream(after_chunks=2)] if args.cut_streams else None,
    )
    print(
        f"soak: 3 deployments x {100 * args.fault_rate:g}% faults (500, 429, 503, drop, stall), "
        f"timeout {args.timeout:g}s, concurrency {args.concurrency}"
    )
    for line in report.lines():
        print(line)


if __name__ == "__main__":
    main()
