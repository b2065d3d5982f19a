"""What a router implements, and the decision it returns.

A router *analyses* a request (task type, complexity, tier, with the signals that
led there). The core's routing policy then maps the tier to a target from
``[routing]`` and live health, so every router gets the same policy for free.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Protocol

import attrs

__all__ = [
    "COMPLEXITIES",
    "TASK_TYPES",
    "TIERS",
    "Analysis",
    "CascadeOutcome",
    "CascadingRouter",
    "RouteDecision",
    "Router",
]

TASK_TYPES = (
    "math",
    "code",
    "reasoning",
    "translation",
    "summarization",
    "extraction",
    "classification",
    "qa",
    "rewrite",
    "creative",
    "brainstorming",
    "analysis",
    "chat",
)
COMPLEXITIES = ("simple", "medium", "complex")
TIERS = ("light", "reasoning", "complex")


@attrs.define
class Analysis:
    """What a router concluded about a request, and why."""

    task_type: str
    complexity: str
    tier: str
    confidence: float = 1.0
    #: Human-readable reasons ("3 math keywords: 计算, 求, =").
    reasons: list[str] = attrs.field(factory=list)
    #: Raw signals, for ``--json`` and debugging.
    signals: dict[str, Any] = attrs.field(factory=dict)
    language: str = "en"
    #: A configured model (or cooperation) the router picked itself, e.g. the weak or the
    #: strong model of an outcome-trained router; ``None`` lets ``[routing]`` map the tier.
    #: A per-task-type override still comes first.
    target: str | None = None


@attrs.define
class RouteDecision:
    """The router's analysis plus the target the policy picked."""

    task_type: str
    complexity: str
    tier: str
    #: A logical model or cooperation name.
    target: str
    target_kind: str = "model"
    router: str = ""
    confidence: float = 1.0
    reasons: list[str] = attrs.field(factory=list)
    candidates: list[dict[str, Any]] = attrs.field(factory=list)
    signals: dict[str, Any] = attrs.field(factory=dict)
    language: str = "en"
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Router(abc.ABC):
    """Base class of router plugins; set a unique ``name``.

    ``analyze`` must be fast (the default router stays well under 100 µs) and
    must never raise on odd input: empty, huge, images only, injected text.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})

    @abc.abstractmethod
    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        """Analyse OpenAI-shaped ``messages`` (system, history and attachments count)."""


#: ``await complete(model, messages)`` → ``(text, cost_usd)``: one call on a logical
#: model, carrying the client's parameters, billed to the request.
CascadeComplete = Callable[[str, list[dict[str, Any]]], Awaitable[tuple[str, float]]]


class CascadeOutcome(Protocol):
    """What :meth:`CascadingRouter.run` returns: the answer and who gave it."""

    text: str
    #: The logical model whose answer is returned.
    model: str
    reasons: list[str]

    @property
    def total_cost_usd(self) -> float: ...


class CascadingRouter(Router):
    """A router that answers by running models itself (FrugalGPT-style cascades).

    Subclassing this is how a router declares the capability: the dispatcher plans
    such a request as a *cascade* (cheap model first, escalate on doubt) instead of a
    single target, and reports the model that actually answered.
    """

    @abc.abstractmethod
    async def run(
        self,
        messages: list[dict[str, Any]],
        *,
        complete: CascadeComplete,
        cheap: str,
        strong: str,
        samples: int = 2,
    ) -> CascadeOutcome:
        """Answer ``messages`` with ``cheap`` (sampled ``samples`` times) or ``strong``."""
