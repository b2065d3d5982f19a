"""Parallel cooperation overhead: wall time vs the slowest model, alone and under load.

Five logical models on a fake upstream (its own process) that answers after
``--latency-ms`` (200 ms by default). One parallel cooperation should take about
as long as its slowest model, not the sum; ``--concurrent`` (200) cooperations at
once should keep that ratio. Each cooperation is a chat request for the configured
cooperation, planned and run by the Dispatcher: the one path every front uses.

Side by side, the same shape without coop: groups of five raw aiohttp POSTs to the
same upstream, with the same ratio (the group's wall time over its slowest call).
That is the floor any Python client on this machine stands on: when it is above
the target, the target measures the machine, not coop.

Both run in one event loop, in ``--rounds`` rounds (5) of one coop batch then one
floor batch, so load on the machine falls on both alike. The last line is the
median over rounds of coop's p50 divided by the floor's; the target is <= 1.15.

    python benchmarks/cooperation.py [--latency-ms 200] [--concurrent 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import anyio
import coop
from _upstream import fake_upstream, percentile

MODELS = [f"m{i}" for i in range(5)]


class Bench(coop.OpenAICompatibleProvider):
    name = "bench-openai"


class Plugin:
    @coop.hookimpl
    def coop_register_providers(self, register: object) -> None:
        register(Bench)  # type: ignore[operator]


async def run(base_url: str, concurrent: int, rounds: int) -> None:
    """One cooperation alone, then ``rounds`` rounds of coop and the floor, interleaved."""
    import aiohttp

    config = coop.SystemConfig.from_dict(
        {
            "endpoints": {
                "up": {
                    "provider": "bench-openai",
                    "base_url": base_url,
                    "api_keys": ["k"],
                    "health_check_interval": 0,
                }
            },
            "models": {m: {"endpoint": "up", "path": "gpt-4o-mini"} for m in MODELS},
            "cooperations": {"bench": {"mode": "parallel", "models": MODELS, "strategy": "voting"}},
        }
    )
    plugins = coop.load_plugins(extra={"bench": Plugin()})
    connector = aiohttp.TCPConnector(limit=1000)
    async with (
        coop.Dispatcher(config, plugins=plugins, health_checks=False) as dispatcher,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        queued: list[float] = []

        async def one() -> float:
            started = time.perf_counter()
            request = coop.parse_chat_request(
                {"model": "bench", "messages": [{"role": "user", "content": "What is 6 * 7?"}]}
            )
            result = await dispatcher.run(dispatcher.plan(request))
            wall = time.perf_counter() - started
            assert result.cooperation is not None
            slowest = max(o.latency for o in result.cooperation.outputs)
            # Time a call waited in this process's event loop before it could start:
            # CPU saturation of the client, not the cooperation's structure.
            queued.append(wall - slowest)
            return wall / slowest

        await one()  # warm up connections
        single = [await one() for _ in range(10)]
        print(
            f"one cooperation of {len(MODELS)} models: wall/slowest p50 {percentile(single, 0.5):.3f}, max {max(single):.3f}"
        )

        async def batch() -> tuple[list[float], float]:
            ratios: list[float] = []

            async def record() -> None:
                ratios.append(await one())

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrent):
                    tg.start_soon(record)
            return ratios, time.perf_counter() - started

        await batch()  # open the pool's connections once
        await floor(session, base_url, concurrent)
        ours: list[float] = []
        theirs: list[float] = []
        relative: list[float] = []
        for number in range(1, rounds + 1):
            queued.clear()
            ratios, elapsed = await batch()
            plain = await floor(session, base_url, concurrent)
            ours += ratios
            theirs += plain
            relative.append(percentile(ratios, 0.5) / percentile(plain, 0.5))
            print(
                f"round {number}: {concurrent} concurrent cooperations ({concurrent * len(MODELS)} "
                f"upstream calls): wall/slowest p50 {percentile(ratios, 0.5):.3f}, "
                f"p99 {percentile(ratios, 0.99):.3f}, all done in {elapsed:.2f}s, "
                f"{percentile(queued, 0.5) * 1000:.0f} ms beyond the slowest model (p50); "
                f"the floor p50 {percentile(plain, 0.5):.3f}, p99 {percentile(plain, 0.99):.3f}; "
                f"coop/floor {relative[-1]:.3f}"
            )
        print(
            f"the floor: {concurrent} groups of {len(MODELS)} plain aiohttp calls at once, "
            f"{rounds} rounds: wall/slowest p50 {percentile(theirs, 0.5):.3f}"
        )
        print(
            f"coop: {concurrent} concurrent cooperations, {rounds} rounds: wall/slowest p50 "
            f"{percentile(ours, 0.5):.3f}"
        )
        middle = percentile(relative, 0.5)
        print(
            f"coop / floor at {concurrent} concurrent cooperations (median of {rounds} rounds): "
            f"{middle:.3f}, rounds {min(relative):.3f}-{max(relative):.3f} "
            f"(target <= 1.15: {'met' if middle <= 1.15 else 'NOT met'})"
        )


async def floor(session: Any, base_url: str, concurrent: int) -> list[float]:
    """wall/slowest for ``concurrent`` groups of five plain aiohttp calls at once."""
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 6 * 7?"}]}
    ).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer k"}

    async def call() -> float:
        started = time.perf_counter()
        async with session.post(f"{base_url}/chat/completions", data=body, headers=headers) as r:
            json.loads(await r.read())
        return time.perf_counter() - started

    async def group() -> float:
        started = time.perf_counter()
        latencies = await asyncio.gather(*(call() for _ in MODELS))
        return (time.perf_counter() - started) / max(latencies)

    return list(await asyncio.gather(*(group() for _ in range(concurrent))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with fake_upstream(latency_ms=args.latency_ms) as base_url:
        anyio.run(run, base_url, args.concurrent, args.rounds)


if __name__ == "__main__":
    main()
