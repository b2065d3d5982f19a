"""Run several calls at once and wait for every one: the parallel cooperation's fan-out.

On asyncio it is ``asyncio.TaskGroup``; on any other event loop, anyio's task group.
Both are structured the same way: cancelling the caller cancels every call, and the
group ends only when each call has. asyncio's own costs about a quarter as much per
cooperation (five calls: 70 µs against 230-320 µs for anyio's, measured side by side),
and a gateway under load runs hundreds of cooperations at once, all on one core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import sniffio

__all__ = ["run_all"]


async def run_all(calls: Iterable[Callable[[], Awaitable[Any]]]) -> None:
    """Start every call, then wait until all have ended (an error cancels the rest)."""
    if sniffio.current_async_library() == "asyncio":
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call())  # type: ignore[arg-type]
        return
    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(call)
