"""Live state of deployments and API keys: in-flight, latency, cooldown, circuit.

Passive health: a failure that says the deployment is sick (timeout, 5xx, cut
connection) opens its circuit for a cooldown that doubles on each re-opening; a
re-cooling never shortens a deadline already set (LiteLLM #40130). When the
cooldown ends the circuit is half-open: one probe request goes through, and its
outcome closes or re-opens the circuit. Keys are tracked per endpoint: a 401/403
takes a key out of rotation, a 429 cools only that key (honouring Retry-After).
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
    UpstreamError,
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
)


@attrs.define
class KeyState:
    value: str = attrs.field(repr=False)
    index: int
    #: Until when a key answered with 401/403 stays out of rotation (then one
    #: request re-checks it: keys get fixed, and a one-key endpoint must recover).
    revoked_until: float = 0.0
    cooldown_until: float = 0.0
    error: str | None = None

    @property
    def label(self) -> str:
        """A safe name for logs and /status: never the key itself."""
        return f"key#{self.index}"


class KeyPool:
    """An endpoint's API keys, rotated round-robin among the usable ones."""

    #: Seconds a rejected key stays out of rotation before it is tried again.
    revoke_for = 300.0

    def __init__(self, keys: list[str], *, clock: Clock = time.monotonic) -> None:
        self.keys = [KeyState(value=k, index=i) for i, k in enumerate(keys)]
        self._cycle = itertools.count()
        self._clock = clock

    def revoked(self, key: KeyState) -> bool:
        return key.revoked_until > self._clock()

    def __len__(self) -> int:
        return len(self.keys)

    def pick(self) -> KeyState | None:
        """The next usable key; ``None`` when the endpoint has no keys at all.

        Raises :class:`AuthenticationError` when every key was revoked and
        :class:`RateLimitError` (with the earliest ``retry_after``) when all cool.
        """
        if not self.keys:
            return None
        now = self._clock()
        usable = [k for k in self.keys if k.revoked_until <= now and k.cooldown_until <= now]
        if usable:
            return usable[next(self._cycle) % len(usable)]
        live = [k for k in self.keys if k.revoked_until <= now]
        if not live:
            back = min(k.revoked_until for k in self.keys) - now
            raise AuthenticationError(
                f"every API key of this endpoint was rejected ({', '.join(k.error or '?' for k in self.keys)}); "
                f"the first is tried again in {back:.0f}s",
                status=401,
            )
        wait = min(k.cooldown_until for k in live) - now
        raise RateLimitError(
            "every API key of this endpoint is rate limited", retry_after=wait, status=429
        )

    def earliest_ready(self) -> float:
        now = self._clock()
        live = [k.cooldown_until for k in self.keys if k.revoked_until <= now]
        return min(live) if live else float("inf")

    def record(
        self, key: KeyState | None, error: BaseException, *, default_cooldown: float = 1.0
    ) -> None:
        if key is None:
            return
        if isinstance(error, AuthenticationError):
            key.revoked_until = self._clock() + self.revoke_for
            key.error = f"{error.status or 'auth'}"
        elif isinstance(error, RateLimitError):
            wait = error.retry_after if error.retry_after is not None else default_cooldown
            key.cooldown_until = max(key.cooldown_until, self._clock() + wait)

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "key": k.label,
                "revoked": k.revoked_until > now,
                "cooling_for": round(max(0.0, k.cooldown_until - now), 3),
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
    base_cooldown: float = 1.0
    max_cooldown: float = 60.0
    #: consecutive sick failures before the circuit opens
    failure_threshold: int = 1

    in_flight: int = 0
    latency_ewma: float | None = None
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    circuit: str = CircuitState.CLOSED
    cooldown_until: float = 0.0
    current_cooldown: float = 0.0
    probe_in_flight: bool = False
    last_error: str | None = None
    recent: collections.deque[tuple[float, bool, float]] = attrs.field(
        factory=lambda: collections.deque(maxlen=200)
    )

    @property
    def id(self) -> str:
        return f"{self.endpoint}/{self.path}"

    def state(self) -> str:
        """closed / open / half-open, as of now."""
        if self.circuit == CircuitState.OPEN and self.clock() >= self.cooldown_until:
            return CircuitState.HALF_OPEN
        return self.circuit

    def available(self) -> bool:
        """Can this deployment take a request right now?"""
        if self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            return False
        state = self.state()
        if state == CircuitState.OPEN:
            return False
        if state == CircuitState.HALF_OPEN:
            return not self.probe_in_flight
        return True

    def ready_at(self) -> float:
        """When the deployment will accept traffic again (now if it does)."""
        return self.cooldown_until if self.circuit == CircuitState.OPEN else self.clock()

    def begin(self) -> bool:
        """Account a request starting; returns whether it is the half-open probe."""
        self.in_flight += 1
        if self.state() == CircuitState.HALF_OPEN:
            self.probe_in_flight = True
            return True
        return False

    def end(self, probe: bool) -> None:
        self.in_flight -= 1
        if probe:
            self.probe_in_flight = False

    def record_success(self, latency: float) -> None:
        self.successes += 1
        self.consecutive_failures = 0
        self.circuit = CircuitState.CLOSED
        self.current_cooldown = 0.0
        self.latency_ewma = (
            latency if self.latency_ewma is None else 0.8 * self.latency_ewma + 0.2 * latency
        )
        self.recent.append((time.time(), True, latency))

    def record_failure(self, error: BaseException, latency: float = 0.0) -> None:
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        self.recent.append((time.time(), False, latency))
        if isinstance(error, RateLimitError) and len(self.keys) == 0:
            # No keys to rotate: the deployment itself is rate limited.
            wait = error.retry_after if error.retry_after is not None else self.base_cooldown
            self.cooldown_until = max(self.cooldown_until, self.clock() + wait)
            self.circuit = CircuitState.OPEN
            return
        if not isinstance(error, (*_SICK, TimeoutError)):
            return
        self.consecutive_failures += 1
        if (
            self.consecutive_failures < self.failure_threshold
            and self.circuit == CircuitState.CLOSED
        ):
            return
        self.current_cooldown = min(
            self.max_cooldown,
            self.current_cooldown * 2 if self.current_cooldown else self.base_cooldown,
        )
        self.circuit = CircuitState.OPEN
        self.cooldown_until = max(self.cooldown_until, self.clock() + self.current_cooldown)

    def record_health_check(self, ok: bool, error: BaseException | None = None) -> None:
        """An active check's outcome: failing opens the circuit, passing closes it."""
        if ok:
            if self.state() != CircuitState.CLOSED:
                self.circuit = CircuitState.CLOSED
                self.consecutive_failures = 0
                self.current_cooldown = 0.0
        elif error is not None and isinstance(error, UpstreamError | TimeoutError):
            self.record_failure(error)

    def error_rate(self, window: float = 300.0) -> float | None:
        cutoff = time.time() - window
        recent = [ok for t, ok, _ in self.recent if t >= cutoff]
        return None if not recent else round(1 - sum(recent) / len(recent), 4)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "path": self.path,
            "weight": self.weight,
            "state": self.state(),
            "healthy": self.state() != CircuitState.OPEN,
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
