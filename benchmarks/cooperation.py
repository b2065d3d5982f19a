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

The last line divides coop's p50 by the floor's, measured in the same run; the
target is <= 1.15.

    python benchmarks/cooperation.py [--latency-ms 200] [--concurrent 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

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


async def run(base_url: str, concurrent: int) -> list[float]:
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
    async with coop.Dispatcher(config, plugins=plugins, health_checks=False) as dispatcher:
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

        ratios: list[float] = []

        async def record() -> None:
            ratios.append(await one())

        async with anyio.create_task_group() as tg:  # open the pool's connections once
            for _ in range(concurrent):
                tg.start_soon(one)
        ratios.clear()
        queued.clear()
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrent):
                tg.start_soon(record)
        elapsed = time.perf_counter() - started
        print(
            f"{concurrent} concurrent cooperations ({concurrent * len(MODELS)} upstream calls): "
            f"wall/slowest p50 {percentile(ratios, 0.5):.3f}, p99 {percentile(ratios, 0.99):.3f}; "
            f"all done in {elapsed:.2f}s"
        )
        print(
            f"  time beyond the slowest model p50 {percentile(queued, 0.5) * 1000:.0f} ms: the client loop is "
            f"saturated ({concurrent * len(MODELS) / elapsed:.0f} upstream calls/s on one core)"
        )
        return ratios


async def floor(base_url: str, concurrent: int) -> list[float]:
    """wall/slowest for ``concurrent`` groups of five plain aiohttp calls at once."""
    import aiohttp

    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 6 * 7?"}]}
    ).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> float:
            started = time.perf_counter()
            async with session.post(
                f"{base_url}/chat/completions", data=body, headers=headers
            ) as response:
                json.loads(await response.read())
            return time.perf_counter() - started

        async def group() -> float:
            started = time.perf_counter()
            latencies = await asyncio.gather(*(call() for _ in MODELS))
            return (time.perf_counter() - started) / max(latencies)

        await asyncio.gather(*(group() for _ in range(concurrent)))  # open the connections
        return list(await asyncio.gather(*(group() for _ in range(concurrent))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrent", type=int, default=200)
    args = parser.parse_args()
    with fake_upstream(latency_ms=args.latency_ms) as base_url:
        ours = anyio.run(run, base_url, args.concurrent)
        ratios = asyncio.run(floor(base_url, args.concurrent))
        print(
            f"the floor: {args.concurrent} groups of {len(MODELS)} plain aiohttp calls at once: "
            f"wall/slowest p50 {percentile(ratios, 0.5):.3f}, p99 {percentile(ratios, 0.99):.3f}"
        )
        relative = percentile(ours, 0.5) / percentile(ratios, 0.5)
        print(
            f"coop / floor at {args.concurrent} concurrent cooperations (p50): {relative:.3f} "
            f"(target <= 1.15: {'met' if relative <= 1.15 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
