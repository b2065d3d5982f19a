"""What managed keys cost per request: the gateway's ASGI app called in process.

    python benchmarks/keys.py [--requests 3000] [--rounds 5] [--baseline PATH] [--bytecodes]

One chat completion on the in-process simulated provider (no network, no latency), called
straight through the ASGI app on asyncio, so the figure is the gateway's own work per
request. Cases, each in a fresh process, interleaved round by round, best round kept (the
machine is shared, the minimum is the least disturbed):

- ``no keys``: no managed key exists (the path every gateway without ``coop keys`` takes);
- ``static key``: ``[server] api_keys`` (constant-time comparison), as before;
- ``managed key``: a managed key with no limits (hash, local lookup, usage recorded);
- ``managed + limits``: rpm, tpm and a budget (a budget read, two window hits, three
  counters written per request), on the memory backend: the backend's own cost (SQLite,
  Redis) is measured by the state benchmark.

``--baseline PATH`` also runs ``no keys`` and ``static key`` on another source tree (its
``core`` folder put first on ``PYTHONPATH``), e.g. a checkout from before managed keys.

``--bytecodes`` counts the Python bytecodes executed per request (``sys.settrace`` opcode
events) instead of timing: exact and repeatable on a loaded machine, where timings of a
few hundred microseconds move by 2x between runs. It misses C work (hashing, JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import asyncio, json, sys, time
from coop import SystemConfig
from coop.server import create_app

case, requests, bytecodes = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
server = {"access_log": "off"}
if case == "static key":
    server["api_keys"] = ["sk-static-benchmark-0001"]
config = SystemConfig.from_dict({
    "server": server,
    "endpoints": {"sim": {"provider": "simulated", "health_check_interval": 0}},
    "models": {"m": {"endpoint": "sim", "path": "sim-fast", "price": {"input": 1.0, "output": 1.0}}},
    "state": {"backend": "memory"},
})
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello there"}]}).encode()


async def main() -> None:
    app = create_app(config, health_checks=False)
    await app.startup()
    key = "sk-static-benchmark-0001"
    if case.startswith("managed"):
        limits = {} if case == "managed key" else {"rpm": 10**9, "tpm": 10**12, "budget": 10.0**9}
        key, _ = await app.key_manager.create("bench", **limits)
    headers = [(b"content-type", b"application/json")]
    if case != "no keys":
        headers.append((b"authorization", b"Bearer " + key.encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": headers, "client": ("127.0.0.1", 1)}
    status = []

    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    for _ in range(300):  # warm-up
        await app(scope, receive, send)
    status.clear()
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "opcode"
        return local

    def tracer(frame, event, arg):
        frame.f_trace_opcodes, frame.f_trace_lines = True, False
        return local

    if bytecodes:
        sys.settrace(tracer)
    started = time.perf_counter()
    for _ in range(requests):
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    sys.settrace(None)
    assert set(status) == {200}, set(status)
    await app.shutdown()
    print(json.dumps({"us": count / requests if bytecodes else elapsed / requests * 1e6}))


asyncio.run(main())
"""

CASES = ("no keys", "static key", "managed key", "managed + limits")


def run(case: str, requests: int, tree: str | None = None, bytecodes: bool = False) -> float:
    env = dict(os.environ)
    env.pop("COOP_CONFIG", None)
    if tree is not None:
        env["PYTHONPATH"] = os.path.join(tree, "core") + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(requests), "1" if bytecodes else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="another source tree to run 'no keys' on")
    parser.add_argument("--bytecodes", action="store_true", help="count bytecodes, not time")
    args = parser.parse_args()
    runs: list[tuple[str, str | None]] = [(case, None) for case in CASES]
    if args.baseline:
        runs[:0] = [("no keys", args.baseline), ("static key", args.baseline)]
    rounds, requests = (1, 50) if args.bytecodes else (args.rounds, args.requests)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for case, tree in runs:
            label = f"{case} (baseline)" if tree else case
            value = run(case, requests, tree, args.bytecodes)
            best[label] = min(best.get(label, value), value)
    base = best["no keys"]
    unit = "bytecodes" if args.bytecodes else "us"
    how = "bytecodes counted" if args.bytecodes else f"x {rounds} rounds, best round"
    print(f"{requests} requests {how}, in-process ASGI on the simulated provider")
    for label, value in best.items():
        print(f"{label:28s} {value:8.1f} {unit}/request  {value / base:6.3f}x no keys")


if __name__ == "__main__":
    main()
