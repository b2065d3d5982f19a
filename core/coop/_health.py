"""Live state of deployments and API keys: in-flight, latency, cooldown, circuit.

Passive health: a deployment's circuit opens on *sustained* failure that says the
deployment is sick (timeout, 5xx, cut connection): ``failure_threshold`` such failures
in a row, or more than ``error_rate`` of its requests over the last ``error_window``
seconds (once it has seen ``min_requests``). An open circuit cools down for
``cooldown_base`` seconds, doubling on each re-opening up to ``cooldown_max``; a
re-cooling never shortens a deadline already set (LiteLLM #40130). When the cooldown
ends the circuit is half-open: up to ``half_open_probes`` requests go through at once;
a success closes it, a failure re-opens it.

Keys are tracked per endpoint. A 429 cools only that key (honouring Retry-After). A
401/403 on one model blocks the (key, model) pair only: a key may be valid for some
models and not others. The key itself is disabled once the endpoint confirms it is bad
(its ``GET /models`` rejects it too, or it was rejected on ``auth_confirm_models``
different models).

A healthy request pays for none of this beyond a few attribute reads and counters:
the error-rate window is kept as a handful of marks of the cumulative counters, taken
when a failure happens (and every 64th success), never as a per-request record.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import (
    AuthenticationError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["CircuitState", "DeploymentState", "KeyPool", "KeyState"]

Clock = Callable[[], float]


class CircuitState:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


#: Errors that say "this deployment is unwell", as opposed to "this request is bad".
_SICK = (
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    TimeoutError,
)


@attrs.define
class KeyState:
    value: str = attrs.field(repr=False)
    index: int
    #: Until when a key the endpoint confirmed bad (401/403) stays out of rotation (then
    #: one request re-checks it: keys get fixed, and a one-key endpoint must recover).
    revoked_until: float = 0.0
    cooldown_until: float = 0.0
    error: str | None = None
    #: upstream model id → until when this key is not used for it (a 401/403 there).
    blocked: dict[str, float] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        """A safe name for logs and /status: never the key itself."""
        return f"key#{self.index}"

    def usable_at(self, model: str | None) -> float:
        """When the key may serve ``model`` again (<= now: it may now)."""
        until = max(self.revoked_until, self.cooldown_until)
        if model is not None and self.blocked:
            until = max(until, self.blocked.get(model, 0.0))
        return until


class KeyPool:
    """An endpoint's API keys, rotated round-robin among the usable ones."""

    #: Seconds a rejected key (or key + model) stays out of rotation before it is tried again.
    revoke_for = 300.0
    #: A key rejected on this many different models is bad for the whole endpoint.
    auth_confirm_models = 2
    #: Seconds a key cools after a 429 without Retry-After.
    rate_limit_cooldown = 1.0

    def __init__(self, keys: list[str], *, clock: Clock = time.monotonic) -> None:
        self.keys = [KeyState(value=k, index=i) for i, k in enumerate(keys)]
        self._cycle = itertools.count()
        self._clock = clock
        #: Whether any key was ever cooled, blocked or revoked: until then every check is free.
        self._troubled = False
        #: Called as ``on_change(key, kind, seconds, model)`` when this process cools
        #: (``cool``), blocks for a model (``block``) or revokes (``revoke``) a key: how
        #: other replicas hear of it (coop._state_events). Failure paths only.
        self.on_change: Callable[[KeyState, str, float, str | None], None] | None = None

    def revoked(self, key: KeyState) -> bool:
        return key.revoked_until > self._clock()

    def __len__(self) -> int:
        return len(self.keys)

    def pick(self, model: str | None = None) -> KeyState | None:
        """The next key usable for ``model``; ``None`` when the endpoint has no keys at all.

        Raises :class:`AuthenticationError` when every key was rejected (for this model
        or for good) and :class:`RateLimitError` (with the earliest ``retry_after``)
        when the rest cool.
        """
        keys = self.keys
        if not keys:
            return None
        if not self._troubled:
            return keys[next(self._cycle) % len(keys)]
        now = self._clock()
        usable = [k for k in keys if k.usable_at(model) <= now]
        if usable:
            return usable[next(self._cycle) % len(usable)]
        live = [
            k
            for k in keys
            if k.revoked_until <= now and (not k.blocked or k.blocked.get(model or "", 0.0) <= now)
        ]
        if not live:
            back = min(k.usable_at(model) for k in keys) - now
            raise AuthenticationError(
                f"every API key of this endpoint was rejected"
                f"{f' for {model!r}' if model else ''} "
                f"({', '.join(k.error or '?' for k in keys)}); "
                f"the first is tried again in {back:.0f}s",
                status=401,
            )
        wait = min(k.cooldown_until for k in live) - now
        raise RateLimitError(
            "every API key of this endpoint is rate limited", retry_after=wait, status=429
        )

    def usable(self, model: str | None = None) -> bool:
        """Whether some key may serve ``model`` now (an endpoint without keys: always)."""
        if not self._troubled or not self.keys:
            return True
        now = self._clock()
        return any(k.usable_at(model) <= now for k in self.keys)

    def ready_at(self, model: str | None = None) -> float:
        """When the first key may serve ``model`` again (now or earlier: it may now)."""
        if not self._troubled or not self.keys:
            return 0.0
        return min(k.usable_at(model) for k in self.keys)

    def earliest_ready(self) -> float:
        now = self._clock()
        live = [k.cooldown_until for k in self.keys if k.revoked_until <= now]
        return min(live) if live else float("inf")

    def record(
        self,
        key: KeyState | None,
        error: BaseException,
        *,
        default_cooldown: float | None = None,
        model: str | None = None,
    ) -> None:
        """Account ``error`` met with ``key`` on ``model``.

        A 401/403 blocks the (key, model) pair; once the key was rejected on
        :attr:`auth_confirm_models` different models (or with no model named) it is
        revoked for the whole endpoint. A 429 cools the key.
        """
        if key is None:
            return
        if isinstance(error, AuthenticationError):
            self._troubled = True
            now = self._clock()
            key.error = f"{error.status or 'auth'}"
            if model is None:
                self.revoke(key)
                return
            key.blocked[model] = now + self.revoke_for
            if self.on_change is not None:
                self.on_change(key, "block", self.revoke_for, model)
            rejected = sum(1 for until in key.blocked.values() if until > now)
            if rejected >= self.auth_confirm_models:
                self.revoke(key)
        elif isinstance(error, RateLimitError):
            self._troubled = True
            wait = error.retry_after
            if wait is None:
                wait = self.rate_limit_cooldown if default_cooldown is None else default_cooldown
            key.cooldown_until = max(key.cooldown_until, self._clock() + wait)
            if self.on_change is not None:
                self.on_change(key, "cool", wait, None)

    def revoke(self, key: KeyState) -> None:
        """The endpoint confirmed the key is bad: out of rotation for every model."""
        self._troubled = True
        key.revoked_until = max(key.revoked_until, self._clock() + self.revoke_for)
        key.error = key.error or "auth"
        if self.on_change is not None:
            self.on_change(key, "revoke", self.revoke_for, None)

    def apply(self, index: int, kind: str, seconds: float, model: str | None = None) -> bool:
        """Another replica's ``on_change``: the same, for ``seconds`` from now (never
        shortening a deadline already set). Returns whether it applied."""
        if not 0 <= index < len(self.keys) or seconds <= 0:
            return False
        key = self.keys[index]
        until = self._clock() + seconds
        if kind == "cool":
            key.cooldown_until = max(key.cooldown_until, until)
        elif kind == "revoke":
            key.revoked_until = max(key.revoked_until, until)
            key.error = key.error or "auth (another replica)"
        elif kind == "block" and model:
            key.blocked[model] = max(key.blocked.get(model, 0.0), until)
            key.error = key.error or "auth (another replica)"
        else:
            return False
        self._troubled = True
        return True

    def restore(self, key: KeyState) -> None:
        """The endpoint accepted the key again (an active check passed with it)."""
        key.revoked_until = 0.0

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "key": k.label,
                "revoked": k.revoked_until > now,
                "cooling_for": round(max(0.0, k.cooldown_until - now), 3),
                "blocked_models": sorted(m for m, until in k.blocked.items() if until > now),
            }
            for k in self.keys
        ]


@attrs.define(eq=False)
class DeploymentState:
    """One deployment (endpoint + upstream model id) of a logical model."""

    model: str
    endpoint: str
    path: str
    weight: float = 1.0
    max_concurrency: int | None = None
    provider: Any = None
    keys: KeyPool = attrs.field(factory=lambda: KeyPool([]))
    clock: Clock = time.monotonic
    #: First cooldown of an opened circuit; doubles on each re-opening up to the max.
    base_cooldown: float = 5.0
    max_cooldown: float = 60.0
    #: Consecutive sick failures that open the circuit.
    failure_threshold: int = 5
    #: Share of sick failures over ``error_window`` seconds that opens the circuit
    #: (judged once ``min_requests`` requests fell in the window; 1.0 turns it off).
    error_rate_threshold: float = 0.5
    error_window: float = 30.0
    min_requests: int = 20
    #: Requests a half-open circuit lets through at once.
    half_open_probes: int = 3

    in_flight: int = 0
    latency_ewma: float | None = None
    successes: int = 0
    failures: int = 0
    #: Sick failures (those that count toward the circuit), cumulative.
    sick: int = 0
    consecutive_failures: int = 0
    circuit: str = CircuitState.CLOSED
    cooldown_until: float = 0.0
    current_cooldown: float = 0.0
    probes_in_flight: int = 0
    last_error: str | None = None
    #: (clock, successes, sick) marks of the cumulative counters: the error-rate window.
    marks: collections.deque[tuple[float, int, int]] = attrs.field(
        factory=lambda: collections.deque(maxlen=64)
    )
    #: Called as ``on_cool(deployment, seconds)`` when this process opens the circuit or
    #: cools the deployment: how other replicas hear of it (coop._state_events).
    on_cool: Callable[[DeploymentState, float], None] | None = attrs.field(default=None, repr=False)

    @property
    def id(self) -> str:
        return f"{self.endpoint}/{self.path}"

    @property
    def probe_in_flight(self) -> bool:
        return self.probes_in_flight > 0

    def state(self) -> str:
        """closed / open / half-open, as of now."""
        if self.circuit == CircuitState.OPEN and self.clock() >= self.cooldown_until:
            return CircuitState.HALF_OPEN
        return self.circuit

    def available(self) -> bool:
        """Can this deployment take a request right now (circuit and concurrency)?"""
        if self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            return False
        if self.circuit == CircuitState.CLOSED:
            return True
        state = self.state()
        if state == CircuitState.OPEN:
            return False
        return self.probes_in_flight < self.half_open_probes

    def usable(self) -> bool:
        """Available, and some API key may serve this model now."""
        return self.available() and self.keys.usable(self.path)

    def ready_at(self) -> float:
        """When the deployment will accept traffic again (now or earlier if it does):
        its circuit's cooldown, and the first key that may serve its model."""
        circuit = self.cooldown_until if self.circuit == CircuitState.OPEN else 0.0
        return max(circuit, self.keys.ready_at(self.path))

    def begin(self) -> bool:
        """Account a request starting; returns whether it is a half-open probe."""
        self.in_flight += 1
        if self.circuit != CircuitState.CLOSED and self.state() == CircuitState.HALF_OPEN:
            self.probes_in_flight += 1
            return True
        return False

    def end(self, probe: bool) -> None:
        self.in_flight -= 1
        if probe:
            self.probes_in_flight -= 1

    def record_success(self, latency: float) -> None:
        self.successes += 1
        if self.consecutive_failures:
            self.consecutive_failures = 0
        if self.circuit != CircuitState.CLOSED:
            self.circuit = CircuitState.CLOSED
            self.current_cooldown = 0.0
        self.latency_ewma = (
            latency if self.latency_ewma is None else 0.8 * self.latency_ewma + 0.2 * latency
        )
        if not self.successes & 63:
            self._mark(self.clock())

    def _mark(self, now: float) -> None:
        marks = self.marks
        if not marks or now - marks[-1][0] >= self.error_window / 8:
            marks.append((now, self.successes, self.sick))

    def window_counts(self, now: float | None = None) -> tuple[int, int]:
        """(requests, sick failures) over at least the last ``error_window`` seconds.

        Counted from the newest mark at least a window old (or from the start), so the
        span is the window plus at most the gap between two marks.
        """
        now = self.clock() if now is None else now
        cutoff = now - self.error_window
        base_ok = base_sick = 0
        for t, ok, sick in reversed(self.marks):
            if t <= cutoff:
                base_ok, base_sick = ok, sick
                break
        sick = self.sick - base_sick
        return self.successes - base_ok + sick, sick

    def record_failure(self, error: BaseException, latency: float = 0.0) -> None:
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        if isinstance(error, RateLimitError) and len(self.keys) == 0:
            # No keys to rotate: the deployment itself is rate limited.
            wait = error.retry_after if error.retry_after is not None else self.base_cooldown
            self.cooldown_until = max(self.cooldown_until, self.clock() + wait)
            self.circuit = CircuitState.OPEN
            if self.on_cool is not None:
                self.on_cool(self, wait)
            return
        if not isinstance(error, _SICK):
            return
        self.sick += 1
        self.consecutive_failures += 1
        now = self.clock()
        self._mark(now)
        if self.circuit == CircuitState.CLOSED:
            if self.consecutive_failures < self.failure_threshold:
                if self.error_rate_threshold >= 1.0:
                    return
                total, sick = self.window_counts(now)
                if total < self.min_requests or sick <= self.error_rate_threshold * total:
                    return
        elif self.circuit == CircuitState.OPEN and now < self.cooldown_until:
            return  # a request begun before it opened: the cooldown already runs
        self.trip(now)

    def trip(self, now: float | None = None) -> None:
        """Open the circuit (or re-open it, doubling the cooldown up to the max)."""
        now = self.clock() if now is None else now
        self.current_cooldown = min(
            self.max_cooldown,
            self.current_cooldown * 2 if self.current_cooldown else self.base_cooldown,
        )
        self.circuit = CircuitState.OPEN
        self.cooldown_until = max(self.cooldown_until, now + self.current_cooldown)
        # counted afresh: once half-open, its probes rank with the healthy deployments
        self.consecutive_failures = 0
        if self.on_cool is not None:
            self.on_cool(self, self.cooldown_until - now)

    def cool(self, seconds: float) -> bool:
        """Another replica opened this deployment's circuit for ``seconds``: open it here
        until then too (never shortening a cooldown already running). Returns whether it
        changed anything."""
        if seconds <= 0:
            return False
        until = self.clock() + seconds
        if self.circuit == CircuitState.OPEN and self.cooldown_until >= until:
            return False
        self.circuit = CircuitState.OPEN
        self.cooldown_until = max(self.cooldown_until, until)
        self.current_cooldown = max(self.current_cooldown, min(seconds, self.max_cooldown))
        self.consecutive_failures = 0
        return True

    def record_health_check(self, ok: bool, error: BaseException | None = None) -> None:
        """An active check's outcome: failing counts as a sick failure, passing closes it."""
        if ok:
            if self.circuit != CircuitState.CLOSED:
                self.circuit = CircuitState.CLOSED
                self.consecutive_failures = 0
                self.current_cooldown = 0.0
        elif error is not None and isinstance(error, _SICK):
            self.record_failure(error)  # counts like a request: one flaky check opens nothing

    def error_rate(self) -> float | None:
        """Share of sick failures over the circuit's window (``None``: no requests)."""
        total, sick = self.window_counts()
        return None if not total else round(sick / total, 4)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        state = self.state()
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "path": self.path,
            "weight": self.weight,
            "state": state,
            "healthy": state != CircuitState.OPEN and self.keys.usable(self.path),
            "in_flight": self.in_flight,
            "latency_ms": None if self.latency_ewma is None else round(self.latency_ewma * 1000, 2),
            "error_rate": self.error_rate(),
            "successes": self.successes,
            "failures": self.failures,
            "cooling_for": round(max(0.0, self.cooldown_until - now), 3)
            if self.circuit == CircuitState.OPEN
            else 0.0,
            "last_error": self.last_error,
            "keys": self.keys.snapshot(),
        }
