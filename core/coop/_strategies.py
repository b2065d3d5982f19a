"""What an integration strategy implements: several answers in, one answer out.

Strategies see finished candidates (or, for ``refine``/``debate``, drive more
calls through ``context.complete``). They report evidence (votes, scores,
rationale) so a user can see why an answer won.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

__all__ = ["HONOURABLE", "Candidate", "Integration", "Strategy", "StrategyContext"]

#: Request parameters whose meaning depends on how answers are integrated. Sampling
#: parameters (``temperature``, ``max_tokens``, ``seed``, ``stop``...) reach every member
#: whatever the strategy; these three only when the strategy says it can honour them in
#: :attr:`Strategy.honours`, else the request is refused with a 400 naming both.
HONOURABLE = ("n", "response_format", "tools")


@attrs.define
class Candidate:
    """One model's answer to the cooperation's query."""

    model: str
    text: str
    weight: float = 1.0
    latency: float = 0.0
    usage: Any = None
    cost: float = 0.0
    #: The answer's tool calls in wire form (``[{"id", "type", "function": {"name",
    #: "arguments"}}]``) when the model called tools instead of (or besides) answering.
    tool_calls: list[dict[str, Any]] | None = None


@attrs.define
class Integration:
    """The strategy's answer and the evidence behind it."""

    text: str
    #: Agreement ratio or judge score in [0, 1]; ``None`` when the strategy has none.
    confidence: float | None = None
    #: The candidate whose answer won, if one did.
    winner: str | None = None
    #: Strategy-specific evidence: votes, clusters, scores, rationale, rounds.
    evidence: dict[str, Any] = attrs.field(factory=dict)


#: ``await complete(model, messages)`` → the answer's text. Calls are billed to the
#: cooperation and appear in its result.
CompleteFn = Callable[[str, list[dict[str, Any]]], Awaitable[str]]


@attrs.define
class StrategyContext:
    """What a strategy may use besides the candidates."""

    query: str
    complete: CompleteFn
    #: Logical model names that took part, in order.
    models: Sequence[str] = ()
    #: ``[cooperations.X]`` settings (``judge``, ``aggregator``, ``weights``, ``rounds``...).
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    #: The client's ``response_format`` (``{"type": "json_object"}``...), or ``None``:
    #: with a JSON format, answers are compared as parsed JSON.
    response_format: Mapping[str, Any] | None = None


class Strategy(abc.ABC):
    """Base class of integration strategy plugins; set a unique ``name``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Which of :data:`HONOURABLE` this strategy integrates correctly: ``"tools"`` when
    #: it compares :attr:`Candidate.tool_calls`, ``"response_format"`` when it keeps a
    #: JSON answer JSON. A request carrying any other of them is refused before a call.
    honours: ClassVar[frozenset[str]] = frozenset()
    #: Whether :meth:`learn` learns settings from recorded outcomes (``weighted`` does):
    #: ``coop eval cooperation`` then learns them per fold, and ``--save`` writes them.
    learns: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})

    @classmethod
    def learn(cls, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Settings learned from records ``{"question", "model", "answer", "correct"}``.

        Called only when :attr:`learns` is true; the result is merged into the
        cooperation's settings (``{"weights": {...}}``).
        """
        return {}

    @abc.abstractmethod
    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        """Merge the candidates into one answer."""
