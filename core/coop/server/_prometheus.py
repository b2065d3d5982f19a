"""``GET /metrics`` in Prometheus' text exposition format (prometheus-client).

The request path records into :class:`coop.Metrics`' plain counters and bucket lists;
:class:`CoopCollector` turns them into metric families only when scraped. Each app
has its own :class:`~prometheus_client.CollectorRegistry` (never the global one), so
several gateways, or tests, in one process do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .._metrics import Histogram
from .._resources import resource_usage

__all__ = ["CONTENT_TYPE", "CoopCollector", "make_registry", "render_metrics"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_DEPLOYMENT = ["model", "deployment", "endpoint", "key"]


def _histogram(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    family.add_metric(labels, histogram.cumulative(), histogram.sum)


class CoopCollector(Collector):
    """Reads an engine's :class:`coop.Metrics` (and the process and host) at scrape time."""

    def __init__(
        self,
        engine: Any,
        *,
        in_flight: Callable[[], int],
        started: float,
        keys: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.engine = engine
        self.in_flight = in_flight
        self.started = started
        #: name → coop._keys.KeyStats of the gateway's managed keys.
        self.keys = keys

    def collect(self) -> Iterator[Metric]:
        metrics = self.engine.metrics
        yield GaugeMetricFamily(
            "coop_uptime_seconds", "Seconds since the gateway started.",
            value=time.time() - self.started,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "coop_in_flight_requests", "Requests being served now.", value=self.in_flight()
        )
        yield from self._models(metrics)
        yield from self._deployments(metrics)
        yield from self._dispatch(metrics)
        yield from self._health()
        yield from self._state()
        if self.keys is not None:
            yield from _gateway_keys(self.keys())
        yield from _resources()

    # -- per logical model ---------------------------------------------------------------

    def _models(self, metrics: Any) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "coop_requests", "Requests per logical model.", labels=["model"]
        )
        errors = CounterMetricFamily(
            "coop_request_errors", "Failed requests per logical model and error class.",
            labels=["model", "error"],
        )  # fmt: skip
        tokens = CounterMetricFamily(
            "coop_tokens", "Tokens per logical model and direction (prompt, completion).",
            labels=["model", "direction"],
        )  # fmt: skip
        cost = CounterMetricFamily(
            "coop_cost_usd", "Cost in USD per logical model.", labels=["model"]
        )
        latency = HistogramMetricFamily(
            "coop_request_duration_seconds",
            "Request latency per logical model, failover included.",
            labels=["model"],
        )
        ttft = HistogramMetricFamily(
            "coop_time_to_first_token_seconds",
            "Seconds until a stream's first chunk, per logical model.",
            labels=["model"],
        )
        for model, m in sorted(metrics.models.items()):
            requests.add_metric([model], m.requests)
            for error, n in sorted(m.errors_by_type.items()):
                errors.add_metric([model, error], n)
            tokens.add_metric([model, "prompt"], m.prompt_tokens)
            tokens.add_metric([model, "completion"], m.completion_tokens)
            cost.add_metric([model], m.cost)
            _histogram(latency, [model], m.latency)
            if m.ttft.count:
                _histogram(ttft, [model], m.ttft)
        yield from (requests, errors, tokens, cost, latency, ttft)

    # -- per deployment, endpoint and key alias -----------------------------------------

    def _deployments(self, metrics: Any) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "coop_deployment_requests",
            "Requests answered (or failed mid-stream) per deployment, endpoint and key alias.",
            labels=_DEPLOYMENT,
        )
        errors = CounterMetricFamily(
            "coop_deployment_errors",
            "Requests that failed after their deployment answered, by error class.",
            labels=[*_DEPLOYMENT, "error"],
        )
        tokens = CounterMetricFamily(
            "coop_deployment_tokens", "Tokens per deployment, key alias and direction.",
            labels=[*_DEPLOYMENT, "direction"],
        )  # fmt: skip
        cost = CounterMetricFamily(
            "coop_deployment_cost_usd", "Cost in USD per deployment and key alias.",
            labels=_DEPLOYMENT,
        )  # fmt: skip
        latency = HistogramMetricFamily(
            "coop_deployment_request_duration_seconds",
            "Request latency per deployment and key alias.",
            labels=_DEPLOYMENT,
        )
        ttft = HistogramMetricFamily(
            "coop_deployment_time_to_first_token_seconds",
            "Seconds until a stream's first chunk per deployment and key alias.",
            labels=_DEPLOYMENT,
        )
        calls = CounterMetricFamily(
            "coop_upstream_calls",
            "Upstream calls (attempts, retries included) by outcome: ok or the error class.",
            labels=[*_DEPLOYMENT, "outcome"],
        )
        for labels, s in sorted(metrics.series.items()):
            if not labels[1]:
                continue  # no deployment answered: counted per model only
            values = list(labels)
            requests.add_metric(values, s.requests)
            for error, n in sorted(s.errors.items()):
                errors.add_metric([*values, error], n)
            tokens.add_metric([*values, "prompt"], s.prompt_tokens)
            tokens.add_metric([*values, "completion"], s.completion_tokens)
            cost.add_metric(values, s.cost)
            _histogram(latency, values, s.latency)
            if s.ttft.count:
                _histogram(ttft, values, s.ttft)
        for labels, n in sorted(metrics.attempts.items()):
            calls.add_metric(list(labels), n)
        yield from (requests, errors, tokens, cost, latency, ttft, calls)

    # -- the dispatcher ------------------------------------------------------------------

    def _dispatch(self, metrics: Any) -> Iterator[Metric]:
        plans = CounterMetricFamily(
            "coop_plans",
            "Requests planned per route kind (model, cooperation, cascade) and target.",
            labels=["route", "target"],
        )
        routing = CounterMetricFamily(
            "coop_routing_decisions",
            'The router\'s decisions for model "auto", by tier and target.',
            labels=["tier", "target"],
        )
        cooperations = CounterMetricFamily(
            "coop_cooperations",
            "Cooperation runs by name, mode, strategy and outcome (ok or the error class).",
            labels=["cooperation", "mode", "strategy", "outcome"],
        )
        for labels, n in sorted(metrics.plans.items()):
            plans.add_metric(list(labels), n)
        for labels, n in sorted(metrics.routing.items()):
            routing.add_metric(list(labels), n)
        for labels, n in sorted(metrics.cooperations.items()):
            cooperations.add_metric(list(labels), n)
        yield from (plans, routing, cooperations)

    # -- circuits ------------------------------------------------------------------------

    def _health(self) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "coop_deployment_healthy",
            "1 when the deployment's circuit is not open.",
            labels=["model", "deployment"],
        )
        in_flight = GaugeMetricFamily(
            "coop_deployment_in_flight",
            "Requests in flight per deployment.",
            labels=["model", "deployment"],
        )
        for model, deployments in self.engine.deployment_snapshot().items():
            for dep in deployments:
                healthy.add_metric([model, dep["id"]], 1 if dep["healthy"] else 0)
                in_flight.add_metric([model, dep["id"]], dep["in_flight"])
        yield from (healthy, in_flight)

    # -- the shared state ([state]) -------------------------------------------------------

    def _state(self) -> Iterator[Metric]:
        state = getattr(self.engine, "state", None)
        if state is None:
            return
        up = GaugeMetricFamily(
            "coop_state_backend_up",
            "1 while the shared state backend answers (0: serving on local state).",
            labels=["backend"],
        )
        up.add_metric([state.name], 1 if getattr(state, "up", True) else 0)
        fallback = CounterMetricFamily(
            "coop_state_fallback",
            "State operations served on local state because the backend did not answer.",
            labels=["backend"],
        )
        fallback.add_metric([state.name], getattr(state, "fallbacks", 0))
        yield from (up, fallback)
        replicas = getattr(self.engine, "replicas", None)
        if replicas is not None:
            events = CounterMetricFamily(
                "coop_state_events",
                "Replica health events (circuits, key cooldowns and revocations) by outcome.",
                labels=["outcome"],
            )
            events.add_metric(["published"], replicas.published)
            events.add_metric(["applied"], replicas.applied)
            events.add_metric(["dropped"], replicas.dropped)
            yield events


def _gateway_keys(stats: dict[str, Any]) -> Iterator[Metric]:
    """Per managed gateway key, by name (``coop keys``); never the key itself."""
    requests = CounterMetricFamily(
        "coop_gateway_key_requests", "Requests made with a managed gateway key, by key name.",
        labels=["key_name"],
    )  # fmt: skip
    tokens = CounterMetricFamily(
        "coop_gateway_key_tokens", "Tokens used per managed gateway key and direction.",
        labels=["key_name", "direction"],
    )  # fmt: skip
    spend = CounterMetricFamily(
        "coop_gateway_key_spend_usd", "Spend in USD per managed gateway key.",
        labels=["key_name"],
    )  # fmt: skip
    refusals = CounterMetricFamily(
        "coop_gateway_key_refusals",
        "Requests refused per managed gateway key and reason (rpm, tpm, budget, model, "
        "revoked, expired).",
        labels=["key_name", "reason"],
    )
    for name, s in sorted(stats.items()):
        requests.add_metric([name], s.requests)
        tokens.add_metric([name, "prompt"], s.prompt_tokens)
        tokens.add_metric([name, "completion"], s.completion_tokens)
        spend.add_metric([name], s.spend)
        for reason, n in sorted(s.refusals.items()):
            refusals.add_metric([name, reason], n)
    yield from (requests, tokens, spend, refusals)


def _resources() -> Iterator[Metric]:
    usage = resource_usage()
    process, host = usage["process"], usage["host"]
    yield CounterMetricFamily(
        "coop_process_cpu_seconds", "CPU time (user + system) of the gateway process.",
        value=process["cpu_seconds"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        "coop_process_resident_memory_bytes", "Resident memory of the gateway process.",
        value=process["resident_memory_bytes"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        "coop_process_open_connections", "Open network connections of the gateway process.",
        value=process["open_connections"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        "coop_process_threads", "Threads of the gateway process.", value=process["threads"]
    )
    yield GaugeMetricFamily(
        "coop_host_cpu_percent", "Host CPU use since the previous scrape (percent of all cores).",
        value=host["cpu_percent"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        "coop_host_cpu_count", "Logical CPUs of the host.", value=host["cpu_count"]
    )
    yield GaugeMetricFamily(
        "coop_host_memory_used_bytes", "Host memory in use.", value=host["memory_used_bytes"]
    )
    yield GaugeMetricFamily(
        "coop_host_memory_total_bytes", "Host memory in all.", value=host["memory_total_bytes"]
    )
    network = CounterMetricFamily(
        "coop_host_network_bytes", "Bytes through the host's network interfaces.",
        labels=["direction"],
    )  # fmt: skip
    network.add_metric(["sent"], host["network_sent_bytes"])
    network.add_metric(["received"], host["network_received_bytes"])
    yield network


def make_registry(
    engine: Any,
    *,
    in_flight: Callable[[], int],
    started: float,
    keys: Callable[[], dict[str, Any]] | None = None,
) -> CollectorRegistry:
    """A registry of its own for one app (the global one would collide across apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoopCollector(engine, in_flight=in_flight, started=started, keys=keys))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
