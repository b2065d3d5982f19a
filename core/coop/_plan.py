"""A request resolved once: what will run, with which parameters, within which limits.

Every front (the gateway's APIs, the CLI, the Python API, services) turns its input
into a :class:`~coop.ChatRequest` and asks the dispatcher for a :class:`Plan`; the
dispatcher then runs that plan and nothing else. So the routing decision a client is
told about (``x-coop-route``, ``coop route``) is the one that ran, the client's
parameters reach every model call, and the limits travel with the request instead
of being looked up again on the way.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import attrs

from ._config import CooperationConfig
from ._routing import RouteDecision
from ._wire import UNSET, ChatRequest

__all__ = ["Limits", "Plan", "PlanKind", "honourable_parameters"]

PlanKind = Literal["model", "cooperation", "cascade"]


@attrs.frozen
class Limits:
    """What a request may spend: money, recent latency, and wall time."""

    #: Estimated cost per request in USD the router may choose within (``None``: any).
    max_cost: float | None = None
    #: Recent latency in seconds a routed model may have (``None``: any).
    max_latency: float | None = None
    #: ``time.monotonic()`` by which every model call of the request must have ended.
    deadline: float | None = None

    @classmethod
    def within(
        cls,
        seconds: float | None,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
    ) -> Limits:
        """Limits whose deadline is ``seconds`` from now (``None``: no deadline)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        return cls(max_cost=max_cost, max_latency=max_latency, deadline=deadline)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None``."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


@attrs.define
class Plan:
    """One request, resolved: a model, a cooperation, or a cascade, and why.

    ``request`` is the client's request with every parameter it sent; its ``model``
    is the plan's target. ``decision`` is set when the router chose (``model="auto"``);
    a cascade updates it with the model that answered.
    """

    kind: PlanKind
    #: The logical model or cooperation that runs (for a cascade: the cheap model).
    target: str
    request: ChatRequest
    limits: Limits = attrs.field(factory=Limits)
    decision: RouteDecision | None = None
    #: The cooperation to run, for ``kind == "cooperation"`` (configured or ad hoc).
    cooperation: CooperationConfig | None = None
    #: ``(cheap, strong, samples)`` for ``kind == "cascade"``.
    cascade: tuple[str, str, int] | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``coop route --json``, logs)."""
        return {
            "kind": self.kind,
            "target": self.target,
            "cooperation": None
            if self.cooperation is None
            else {
                "name": self.cooperation.name,
                "mode": self.cooperation.mode,
                "strategy": self.cooperation.strategy,
            },
            "cascade": None
            if self.cascade is None
            else dict(zip(("cheap", "strong", "samples"), self.cascade, strict=True)),
            "decision": None if self.decision is None else self.decision.to_dict(),
        }


def honourable_parameters(request: ChatRequest) -> frozenset[str]:
    """Which of :data:`coop.HONOURABLE` the request really uses.

    ``n`` counts only above 1, ``tools`` only when non-empty, ``response_format``
    only when it asks for more than plain text.
    """
    used: set[str] = set()
    n = request.n
    if isinstance(n, int) and n > 1:
        used.add("n")
    if request.tools not in (UNSET, None) and request.tools:
        used.add("tools")
    fmt = request.response_format
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        used.add("response_format")
    return frozenset(used)
