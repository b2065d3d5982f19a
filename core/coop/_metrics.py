"""Counters and latency samples for /status, /metrics and the dashboard.

Kept deliberately cheap on the request path: a few integer additions and a
bounded deque append per request; percentiles are computed only when read.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import attrs

__all__ = ["Metrics", "ModelMetrics"]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@attrs.define
class ModelMetrics:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=2048)
    )
    errors_by_type: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def snapshot(self) -> dict[str, Any]:
        values = sorted(self.latencies)
        p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "success_rate": None
            if not self.requests
            else round(1 - self.errors / self.requests, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost, 6),
            "latency_p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "latency_p99_ms": None if p99 is None else round(p99 * 1000, 2),
            "errors_by_type": dict(self.errors_by_type),
        }


class Metrics:
    """Per logical model and overall request metrics since start."""

    def __init__(self) -> None:
        self.started = time.time()
        self.total = ModelMetrics()
        self.models: dict[str, ModelMetrics] = collections.defaultdict(ModelMetrics)
        self._window: collections.deque[float] = collections.deque(maxlen=10000)

    def record(
        self,
        model: str,
        *,
        ok: bool,
        latency: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        error_type: str | None = None,
    ) -> None:
        now = time.time()
        self._window.append(now)
        for bucket in (self.total, self.models[model]):
            bucket.requests += 1
            bucket.latencies.append(latency)
            bucket.prompt_tokens += prompt_tokens
            bucket.completion_tokens += completion_tokens
            bucket.cost += cost
            if not ok:
                bucket.errors += 1
                bucket.errors_by_type[error_type or "error"] += 1

    def throughput(self, window: float = 60.0) -> float:
        """Requests per second over the last ``window`` seconds."""
        cutoff = time.time() - window
        recent = sum(1 for t in self._window if t >= cutoff)
        span = min(window, max(1e-9, time.time() - self.started))
        return round(recent / span, 3)

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "throughput_rps": self.throughput(),
            "total": self.total.snapshot(),
            "models": {name: m.snapshot() for name, m in sorted(self.models.items())},
        }
