"""Counters and histograms for /status, /metrics and the dashboard.

Kept deliberately cheap on the request path: a dict lookup, a few integer additions
and a :func:`bisect.bisect_left` per request, into plain Python objects. Nothing is
formatted, sorted or locked there; ``/metrics`` (:mod:`coop.server._prometheus`) turns
them into Prometheus families at scrape time, ``/status`` into JSON.

Latency and time to first token are histograms with fixed buckets (``le``), so
replicas can be summed and quantiles re-aggregated over any window. API keys are
labelled by alias (``key0``: their position in the endpoint's list), never by value.
"""

from __future__ import annotations

import bisect
import collections
import time
from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "LATENCY_BUCKETS",
    "Histogram",
    "Metrics",
    "ModelMetrics",
    "Series",
    "quantile",
]

#: Upper bounds (seconds) of the latency and time-to-first-token buckets; +Inf is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf), their sum and count."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count of values <= le), ...]`` ending with ``+Inf``, as Prometheus has it."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out

    def quantile(self, q: float) -> float | None:
        return quantile(self.counts, q)

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum


def quantile(counts: list[int], q: float) -> float | None:
    """Estimate of the ``q`` quantile from bucket counts (linear inside the bucket,
    as Prometheus' ``histogram_quantile`` does); None without observations."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    running = 0
    for i, n in enumerate(counts):
        if running + n >= rank and n:
            if i >= len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1]
            low = LATENCY_BUCKETS[i - 1] if i else 0.0
            high = LATENCY_BUCKETS[i]
            return low + (high - low) * ((rank - running) / n)
        running += n
    return LATENCY_BUCKETS[-1]


class Series:
    """One (model, deployment, endpoint, key) combination's request figures."""

    __slots__ = (
        "completion_tokens",
        "cost",
        "errors",
        "latency",
        "prompt_tokens",
        "requests",
        "ttft",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.latency = Histogram()
        self.ttft = Histogram()


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@attrs.define
class ModelMetrics:
    """Per logical model totals for /status: latency percentiles of the recent requests
    (exact, what alerts watch), the histograms /metrics exports."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: Histogram = attrs.field(factory=Histogram)
    latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=2048)
    )
    ttft: Histogram = attrs.field(factory=Histogram)
    errors_by_type: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def add(self, series: Series) -> None:
        self.requests += series.requests
        self.errors += sum(series.errors.values())
        self.errors_by_type.update(series.errors)
        self.prompt_tokens += series.prompt_tokens
        self.completion_tokens += series.completion_tokens
        self.cost += series.cost
        self.latency.add(series.latency)
        self.ttft.add(series.ttft)

    def snapshot(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 2)

        recent = sorted(self.latencies)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "success_rate": None
            if not self.requests
            else round(1 - self.errors / self.requests, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost, 6),
            "latency_p50_ms": ms(_percentile(recent, 0.5)),
            "latency_p95_ms": ms(_percentile(recent, 0.95)),
            "latency_p99_ms": ms(_percentile(recent, 0.99)),
            "ttft_p50_ms": ms(self.ttft.quantile(0.5)),
            "ttft_p95_ms": ms(self.ttft.quantile(0.95)),
            "errors_by_type": dict(self.errors_by_type),
        }


def key_alias(index: int | None) -> str:
    """``key0``, ``key1``... (the key's position in its endpoint's list); ``none`` for
    an endpoint without keys."""
    return "none" if index is None else f"key{index}"


class Metrics:
    """Request metrics since start: per model, deployment, endpoint and key alias,
    upstream attempts, routing decisions and cooperations.

    ``enabled=False`` (``[server] metrics = false``) makes every ``record*`` a no-op.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.time()
        #: model → latencies of its recent requests (for exact recent percentiles).
        self._recent: dict[str, collections.deque[float]] = {}
        self._recent_all: collections.deque[float] = collections.deque(maxlen=2048)
        #: (model, deployment, endpoint, key alias) → figures of the requests it answered
        #: (or, for a request no deployment answered, ("model", "", "", "")).
        self.series: dict[tuple[str, str, str, str], Series] = {}
        #: (model, deployment, endpoint, key alias, outcome) → upstream calls; outcome is
        #: ``ok`` or the error's class.
        self.attempts: collections.Counter[tuple[str, str, str, str, str]] = collections.Counter()
        #: (kind, target) → plans run; kind is model, cooperation or cascade.
        self.plans: collections.Counter[tuple[str, str]] = collections.Counter()
        #: (tier, target) → the router's decisions for ``auto``.
        self.routing: collections.Counter[tuple[str, str]] = collections.Counter()
        #: (name, mode, strategy, outcome) → cooperation runs.
        self.cooperations: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
        self._window: collections.deque[float] = collections.deque(maxlen=10000)
        #: ``tap(cost, prompt_tokens, completion_tokens)`` for every request recorded, even
        #: with metrics off: the gateway's managed keys count their spend through it
        #: (coop._keys.KeyManager.tap); ``None`` while no managed key exists.
        self.tap: Callable[[float, int, int], None] | None = None

    # -- the request path ----------------------------------------------------------------

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
        deployment: str = "",
        endpoint: str = "",
        key: str = "",
        ttft: float | None = None,
    ) -> None:
        """One request to a logical model, answered (or not) after ``latency`` seconds."""
        if self.tap is not None:
            self.tap(cost, prompt_tokens, completion_tokens)
        if not self.enabled:
            return
        self._window.append(time.time())
        labels = (model, deployment, endpoint, key)
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Series()
        series.requests += 1
        series.prompt_tokens += prompt_tokens
        series.completion_tokens += completion_tokens
        series.cost += cost
        series.latency.observe(latency)
        if ttft is not None:
            series.ttft.observe(ttft)
        if not ok:
            error = error_type or "error"
            series.errors[error] = series.errors.get(error, 0) + 1
        recent = self._recent.get(model)
        if recent is None:
            recent = self._recent[model] = collections.deque(maxlen=2048)
        recent.append(latency)
        self._recent_all.append(latency)

    # -- per model and overall, summed from the series when read -------------------------

    @property
    def models(self) -> dict[str, ModelMetrics]:
        """Per logical model figures (built when read, never on the request path)."""
        out: dict[str, ModelMetrics] = {}
        for labels, series in self.series.items():
            model = out.get(labels[0])
            if model is None:
                model = out[labels[0]] = ModelMetrics(latencies=self._recent[labels[0]])
            model.add(series)
        return out

    @property
    def total(self) -> ModelMetrics:
        total = ModelMetrics(latencies=self._recent_all)
        for series in self.series.values():
            total.add(series)
        return total

    def record_attempt(
        self, model: str, deployment: str, endpoint: str, key: str, outcome: str
    ) -> None:
        """One upstream call: ``outcome`` is ``ok`` or the error's class name."""
        if self.enabled:
            self.attempts[(model, deployment, endpoint, key, outcome)] += 1

    def record_plan(self, kind: str, target: str) -> None:
        """The dispatcher runs a plan: a model, a cooperation or a cascade."""
        if self.enabled:
            self.plans[(kind, target)] += 1

    def record_route(self, tier: str, target: str) -> None:
        """The router decided where ``auto`` goes."""
        if self.enabled:
            self.routing[(tier, target)] += 1

    def record_cooperation(self, name: str, mode: str, strategy: str, outcome: str) -> None:
        """A cooperation ran: ``outcome`` is ``ok`` or the error's class name."""
        if self.enabled:
            self.cooperations[(name, mode, strategy, outcome)] += 1

    # -- reading -------------------------------------------------------------------------

    def throughput(self, window: float = 60.0) -> float:
        """Requests per second over the last ``window`` seconds."""
        cutoff = time.time() - window
        recent = sum(1 for t in self._window if t >= cutoff)
        span = min(window, max(1e-9, time.time() - self.started))
        return round(recent / span, 3)

    def snapshot(self) -> dict[str, Any]:
        deployments: dict[str, dict[str, Any]] = {}
        for (model, deployment, endpoint, key), s in sorted(self.series.items()):
            if not deployment:
                continue
            entry = deployments.setdefault(
                deployment,
                {"model": model, "endpoint": endpoint, "requests": 0, "errors": 0, "keys": {}},
            )
            errors = sum(s.errors.values())
            entry["requests"] += s.requests
            entry["errors"] += errors
            entry["keys"][key] = entry["keys"].get(key, 0) + s.requests
        attempts: dict[str, dict[str, int]] = {}
        for (_m, deployment, _e, key, outcome), n in sorted(self.attempts.items()):
            by = attempts.setdefault(f"{deployment}/{key}", {})
            by[outcome] = by.get(outcome, 0) + n
        routing: dict[str, int] = collections.Counter()
        plans: dict[str, int] = collections.Counter()
        for (kind, _target), n in self.plans.items():
            plans[kind] += n
        for (tier, _target), n in self.routing.items():
            routing[tier] += n
        cooperations: dict[str, int] = collections.Counter()
        for (_name, mode, strategy, _outcome), n in self.cooperations.items():
            cooperations[f"{mode}/{strategy}" if strategy else mode] += n
        return {
            "enabled": self.enabled,
            "uptime_s": round(time.time() - self.started, 3),
            "throughput_rps": self.throughput(),
            "total": self.total.snapshot(),
            "models": {name: m.snapshot() for name, m in sorted(self.models.items())},
            "deployments": deployments,
            "attempts": attempts,
            "plans": dict(sorted(plans.items())),
            "routing_decisions": dict(sorted(routing.items())),
            "cooperations": dict(sorted(cooperations.items())),
        }
