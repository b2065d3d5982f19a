"""The engine's own cost: coop's OpenAIEngine vs a plain client, same upstream, one run.

N requests at C concurrency against a fast fake upstream (its own process):
(a) a plain aiohttp client posting the same JSON, (b) a plain httpx.AsyncClient,
(c) ``OpenAIEngine.chat`` (balancing, key rotation, retries, parsing into wire
types, usage and cost). Prints req/s, p50/p99 and what the engine adds.

    python benchmarks/engine.py [--requests 4000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable

import anyio
import coop
from _upstream import fake_upstream, percentile

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in five words."}],
}


async def drive(
    call: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    for _ in range(min(50, requests)):  # warm up connections and code paths
        await call()
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.perf_counter() - started, latencies


async def run(
    base_url: str, requests: int, concurrency: int
) -> list[tuple[str, float, float, float]]:
    import aiohttp
    import httpx

    payload = json.dumps(BODY).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    results = []

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def plain_aiohttp() -> None:
            async with session.post(
                base_url + "/chat/completions", data=payload, headers=headers
            ) as response:
                json.loads(await response.read())

        elapsed, lat = await drive(plain_aiohttp, requests, concurrency)
        results.append(
            ("plain aiohttp", requests / elapsed, percentile(lat, 0.5), percentile(lat, 0.99))
        )

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    ) as client:

        async def plain_httpx() -> None:
            response = await client.post(
                base_url + "/chat/completions", content=payload, headers=headers
            )
            response.json()

        elapsed, lat = await drive(plain_httpx, requests, concurrency)
        results.append(
            ("plain httpx", requests / elapsed, percentile(lat, 0.5), percentile(lat, 0.99))
        )

    class Bench(coop.OpenAICompatibleProvider):
        name = "bench-openai"

    class Plugin:
        @coop.hookimpl
        def coop_register_providers(self, register: object) -> None:
            register(Bench)  # type: ignore[operator]

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
            "models": {
                "m": {
                    "endpoint": "up",
                    "path": "gpt-4o-mini",
                    "price": {"input": 0.15, "output": 0.6},
                }
            },
        }
    )
    request = coop.parse_chat_request({**BODY, "model": "m"})
    async with coop.OpenAIEngine(
        config, plugins=coop.load_plugins(extra={"bench": Plugin()})
    ) as engine:

        async def through_engine() -> None:
            await engine.chat(request)

        elapsed, lat = await drive(through_engine, requests, concurrency)
        results.append(
            ("coop OpenAIEngine", requests / elapsed, percentile(lat, 0.5), percentile(lat, 0.99))
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with fake_upstream() as base_url:
        for concurrency in sorted({1, args.concurrency}):
            n = args.requests if concurrency > 1 else max(200, args.requests // 8)
            rows = anyio.run(run, base_url, n, concurrency)
            base = rows[0]
            print(f"\n{n} requests, concurrency {concurrency}, fake upstream in its own process")
            print(
                f"{'client':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs aiohttp':>12}{'added p50 ms':>14}"
            )
            for name, rps, p50, p99 in rows:
                print(
                    f"{name:<20}{rps:>10.0f}{p50 * 1000:>10.2f}{p99 * 1000:>10.2f}{rps / base[1]:>11.2f}x{(p50 - base[2]) * 1000:>14.2f}"
                )


if __name__ == "__main__":
    main()
