"""Alert rules (``[[monitoring.alerts]]``) evaluated continuously, with webhook delivery.

The evaluator keeps its own ring of periodic samples of ``engine.metrics.snapshot()``
and ``engine.deployment_snapshot()`` and computes a fixed set of metrics
(:data:`coop._config.ALERT_METRICS`) over each rule's window from the deltas of the
cumulative counters; it reads nothing else of the engine.

Events (firing, resolved) go to the ``coop.alerts`` logger and to every webhook
through a bounded queue per webhook (the oldest event is dropped, and counted, when it
is full), each POST retried with exponential backoff a bounded number of times: a
hanging or failing webhook never blocks requests, the evaluator or the other webhooks.
"""

from __future__ import annotations

import collections
import datetime
import logging
import math
import operator
import time
from collections.abc import Callable
from typing import Any

import anyio
import attrs

from ._config import ALERT_METRICS, AlertRule, MonitoringConfig

__all__ = ["AlertManager", "compute"]

logger = logging.getLogger("coop.alerts")

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


@attrs.define
class Sample:
    """One reading: monotonic time, per-model counters and deployment health."""

    at: float
    #: model (or ``""`` for all) -> (requests, errors, cost, latency p50 ms, latency p99 ms)
    counters: dict[str, tuple[int, int, float, float | None, float | None]]
    #: model -> [(state, healthy)] of its deployments
    deployments: dict[str, list[tuple[str, bool]]]


def take_sample(engine: Any, at: float) -> Sample:
    snap = engine.metrics.snapshot()

    def row(m: dict[str, Any]) -> tuple[int, int, float, float | None, float | None]:
        return (
            int(m.get("requests", 0)),
            int(m.get("errors", 0)),
            float(m.get("cost_usd", 0.0) or 0.0),
            m.get("latency_p50_ms"),
            m.get("latency_p99_ms"),
        )

    counters = {name: row(m) for name, m in snap.get("models", {}).items()}
    counters[""] = row(snap.get("total", {}))
    deployments = {
        name: [(str(d.get("state")), bool(d.get("healthy"))) for d in deps]
        for name, deps in engine.deployment_snapshot().items()
    }
    return Sample(at, counters, deployments)


def compute(
    metric: str, labels: dict[str, str], ring: collections.deque[Sample], window: float
) -> float | None:
    """``metric`` over the last ``window`` seconds of ``ring``; None without data."""
    if not ring:
        return None
    now = ring[-1]
    model = labels.get("model")
    if metric == "open_circuits":
        return float(
            sum(
                state == "open"
                for name, deps in now.deployments.items()
                if model is None or name == model
                for state, _ in deps
            )
        )
    if metric == "healthy_models":
        return float(
            sum(
                any(healthy for _, healthy in deps)
                for name, deps in now.deployments.items()
                if model is None or name == model
            )
        )
    # The newest sample at least ``window`` old, else the oldest one kept.
    base = ring[0]
    for sample in ring:
        if sample.at <= now.at - window:
            base = sample
        else:
            break
    if base is now:  # one sample: no delta yet
        return None
    key = model or ""
    empty = (0, 0, 0.0, None, None)
    requests, errors, cost, p50, p99 = now.counters.get(key, empty)
    requests0, errors0, cost0, _, _ = base.counters.get(key, empty)
    span = now.at - base.at
    d_requests = requests - requests0
    if metric == "error_rate":
        return None if d_requests <= 0 else (errors - errors0) / d_requests
    if metric in ("latency_p50_ms", "latency_p99_ms"):
        value = p50 if metric == "latency_p50_ms" else p99
        return None if d_requests <= 0 or value is None else float(value)
    if span <= 0:
        return None
    if metric == "requests_per_minute":
        return d_requests / span * 60.0
    if metric == "cost_usd_per_hour":
        return (cost - cost0) / span * 3600.0
    raise ValueError(f"unknown alert metric {metric!r}; valid: {', '.join(ALERT_METRICS)}")


def _iso(wall: float) -> str:
    return (
        datetime.datetime.fromtimestamp(wall, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@attrs.define
class RuleState:
    rule: AlertRule
    state: str = "inactive"  # inactive, pending, firing
    value: float | None = None
    #: Wall-clock time the condition started to hold (pending / firing).
    since: float | None = None
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        r = self.rule
        return {
            "name": r.name,
            "metric": r.metric,
            "labels": dict(r.labels),
            "op": r.op,
            "threshold": r.threshold,
            "window": r.window,
            "for": r.for_,
            "state": self.state,
            "value": None if self.value is None else round(self.value, 6),
            "since": None if self.since is None else _iso(self.since),
            "fired": self.fired,
        }


@attrs.define
class _Webhook:
    url: str
    queue: collections.deque[dict[str, Any]]
    wake: anyio.Event | None = None
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "queued": len(self.queue),
            "delivered": self.delivered,
            "failed": self.failed,
            "retries": self.retries,
            "dropped": self.dropped,
        }


class AlertManager:
    """Evaluates the rules every ``config.interval`` seconds; :meth:`run` until cancelled."""

    def __init__(
        self,
        config: MonitoringConfig,
        engine: Any,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.engine = engine
        self._client = client
        self._clock, self._wall = clock, wall
        longest = max((r.window for r in config.alerts), default=60.0)
        self.ring: collections.deque[Sample] = collections.deque(
            maxlen=max(4, math.ceil(longest / config.interval) + 3)
        )
        self.rules = [RuleState(r) for r in config.alerts]
        self.webhooks = [
            _Webhook(url, collections.deque()) for url in dict.fromkeys(config.webhooks)
        ]
        self.evaluations = 0
        self.running = False

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self) -> list[dict[str, Any]]:
        """Take a sample and update every rule; the events it produced (also sent)."""
        now = self._clock()
        wall = self._wall()
        self.ring.append(take_sample(self.engine, now))
        self.evaluations += 1
        events = []
        for st in self.rules:
            rule = st.rule
            st.value = compute(rule.metric, rule.labels, self.ring, rule.window)
            holds = st.value is not None and _OPS[rule.op](st.value, rule.threshold)
            if holds:
                if st.state == "inactive":
                    st.state, st.since = "pending", wall
                if st.state == "pending" and wall - (st.since or wall) >= rule.for_:
                    st.state = "firing"
                    st.fired += 1
                    events.append(self._event("firing", st, wall))
            elif st.state == "firing":
                events.append(self._event("resolved", st, wall))
                st.state, st.since = "inactive", None
            elif st.state == "pending":
                st.state, st.since = "inactive", None
        for event in events:
            self._emit(event)
        return events

    def _event(self, status: str, st: RuleState, wall: float) -> dict[str, Any]:
        return {
            "status": status,
            "rule": st.rule.name,
            "metric": st.rule.metric,
            "labels": dict(st.rule.labels),
            "value": None if st.value is None else round(st.value, 6),
            "threshold": st.rule.threshold,
            "since": _iso(st.since if st.since is not None else wall),
            "at": _iso(wall),
        }

    def _emit(self, event: dict[str, Any]) -> None:
        labels = ",".join(f"{k}={v}" for k, v in event["labels"].items())
        op = next((s.rule.op for s in self.rules if s.rule.name == event["rule"]), "?")
        log = logger.warning if event["status"] == "firing" else logger.info
        log(
            "alert %s %s: %s%s = %s (%s %s) since %s",
            event["rule"],
            event["status"],
            event["metric"],
            f"{{{labels}}}" if labels else "",
            event["value"],
            op,
            event["threshold"],
            event["since"],
        )
        for hook in self.webhooks:
            if len(hook.queue) >= self.config.webhook_queue:
                hook.queue.popleft()
                hook.dropped += 1
            hook.queue.append(event)
            if hook.wake is not None:
                hook.wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "interval": self.config.interval,
            "running": self.running,
            "evaluations": self.evaluations,
            "rules": [st.describe() for st in self.rules],
            "webhooks": [hook.describe() for hook in self.webhooks],
        }

    # -- the tasks --------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate forever, and deliver to the webhooks, until cancelled."""
        import httpx

        client = self._client or httpx.AsyncClient(timeout=self.config.webhook_timeout)
        self.running = True
        try:
            async with anyio.create_task_group() as tg:
                for hook in self.webhooks:
                    tg.start_soon(self._deliver, hook, client)
                while True:
                    try:
                        self.evaluate()
                    except Exception:  # one bad reading must not stop the alerts
                        logger.exception("alert evaluation failed")
                    await anyio.sleep(self.config.interval)
        finally:
            self.running = False
            if self._client is None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    async def _deliver(self, hook: _Webhook, client: Any) -> None:
        while True:
            if not hook.queue:
                hook.wake = anyio.Event()
                await hook.wake.wait()
                continue
            event = hook.queue.popleft()
            if await self._post(hook, client, event):
                hook.delivered += 1
            else:
                hook.failed += 1
                logger.warning(
                    "alert %s %s not delivered to %s after %d attempts",
                    event["rule"],
                    event["status"],
                    hook.url,
                    self.config.webhook_attempts,
                )

    async def _post(self, hook: _Webhook, client: Any, event: dict[str, Any]) -> bool:
        delay = self.config.webhook_backoff
        for attempt in range(self.config.webhook_attempts):
            if attempt:
                hook.retries += 1
                await anyio.sleep(delay)
                delay *= 2
            try:
                with anyio.fail_after(self.config.webhook_timeout):
                    response = await client.post(hook.url, json=event)
                if response.status_code < 300:
                    return True
                reason = f"status {response.status_code}"
            except TimeoutError:
                reason = "timed out"
            except Exception as exc:  # connection refused, reset, bad URL...
                reason = f"{type(exc).__name__}: {exc}"
            logger.debug("webhook %s attempt %d failed: %s", hook.url, attempt + 1, reason)
        return False
