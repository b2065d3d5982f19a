"""The resource monitor: CPU, memory, connections and network of the gateway process
and its host (psutil), read when ``/metrics`` or ``/status`` asks, never per request."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import psutil

__all__ = ["resource_usage"]


@functools.cache
def _process() -> psutil.Process:
    return psutil.Process()


def _open_connections(process: psutil.Process) -> int:
    try:
        return len(process.net_connections(kind="inet"))
    except (psutil.Error, OSError):
        return 0


def resource_usage() -> dict[str, dict[str, float]]:
    """``{"process": {...}, "host": {...}}``; a figure the platform hides reads 0."""
    process = _process()
    out: dict[str, dict[str, Any]] = {"process": {}, "host": {}}
    proc, host = out["process"], out["host"]
    with process.oneshot():
        cpu = process.cpu_times()
        proc["cpu_seconds"] = round(cpu.user + cpu.system, 3)
        proc["cpu_percent"] = process.cpu_percent(interval=None)
        proc["resident_memory_bytes"] = process.memory_info().rss
        proc["threads"] = process.num_threads()
        proc["open_files"] = 0
        with contextlib.suppress(psutil.Error, OSError):
            proc["open_files"] = process.num_fds() if hasattr(process, "num_fds") else 0
    proc["open_connections"] = _open_connections(process)
    host["cpu_percent"] = psutil.cpu_percent(interval=None)
    host["cpu_count"] = psutil.cpu_count() or 0
    memory = psutil.virtual_memory()
    host["memory_used_bytes"] = memory.total - memory.available
    host["memory_total_bytes"] = memory.total
    host["memory_percent"] = memory.percent
    net = psutil.net_io_counters()
    host["network_sent_bytes"] = net.bytes_sent if net else 0
    host["network_received_bytes"] = net.bytes_recv if net else 0
    return out
