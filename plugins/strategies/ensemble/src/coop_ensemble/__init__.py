"""The ``ensemble`` strategy: an aggregator model synthesises the candidates.

Mixture-of-Agents style (Wang et al., 2024): the candidates are numbered,
unnamed (so a model's reputation does not sway the aggregator) and handed to
the aggregator with an aggregate-and-synthesise instruction. With ``layers``
> 1, every model first answers again seeing the previous layer's answers (all
in parallel), and the aggregator synthesises the last layer. Prompts are built
by concatenation, never ``str.format``, so braces in user text are safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from coop import (
    Candidate,
    ConfigError,
    CooperationError,
    CoopError,
    Integration,
    Strategy,
    StrategyContext,
    hookimpl,
)
from coop_voting import vote

__all__ = ["AGGREGATE_PROMPT", "EnsembleStrategy", "aggregate_messages"]

AGGREGATE_PROMPT = (
    "You have been provided with a set of responses from various models to the latest user "
    "query. Your task is to synthesize these responses into a single, high-quality response. "
    "It is crucial to critically evaluate the information provided in these responses, "
    "recognizing that some of it may be biased or incorrect. Your response should not simply "
    "replicate the given answers but should offer a refined, accurate, and comprehensive reply "
    "to the instruction. Ensure your response is well-structured, coherent, and adheres to the "
    "highest standards of accuracy and reliability. If the query asks for one final answer "
    "(a number, a choice, yes or no), end with a line 'Answer: <final answer>'."
)


def aggregate_messages(
    query: str,
    responses: Sequence[str],
    *,
    prompt: str = AGGREGATE_PROMPT,
    max_chars: int | None = None,
) -> list[dict[str, Any]]:
    """Chat messages asking a model to synthesise ``responses`` to ``query``."""
    parts = [prompt, "", "Responses from models:"]
    for i, text in enumerate(responses, 1):
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars] + " [...]"
        parts.append(f"{i}. " + text.strip())
    return [
        {"role": "system", "content": "\n".join(parts)},
        {"role": "user", "content": query},
    ]


def _int_setting(
    settings: Mapping[str, Any], key: str, default: int | None, low: int
) -> int | None:
    value = settings.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"must be an integer >= {low}, not {value!r}", key=key)
    return value


async def _ask_all(
    context: StrategyContext, models: Sequence[str], messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every model answers at once (one task group); a failure is recorded, not raised."""
    results: list[dict[str, Any]] = [{} for _ in models]

    async def ask(i: int, model: str) -> None:
        try:
            results[i] = {"model": model, "text": await context.complete(model, messages)}
        except CoopError as exc:
            results[i] = {"model": model, "error": str(exc)}

    async with anyio.create_task_group() as tg:
        for i, model in enumerate(models):
            tg.start_soon(ask, i, model)
    return results


class EnsembleStrategy(Strategy):
    """Aggregator synthesis of every candidate (Mixture-of-Agents).

    Settings: ``aggregator`` (model; default the first model), ``layers``
    (default 1), ``prompt`` (replaces the aggregate instruction), ``max_chars``
    (cut each response shown to the aggregator).
    """

    name = "ensemble"
    description = (
        "An aggregator model synthesises the candidates (Mixture-of-Agents, optional layers)."
    )

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        if not candidates:
            raise CooperationError("nothing to synthesise: no model answered")
        models = list(context.models) or [c.model for c in candidates]
        aggregator = str(settings.get("aggregator") or models[0])
        layers = _int_setting(settings, "layers", 1, 1) or 1
        max_chars = _int_setting(settings, "max_chars", None, 1)
        prompt = str(settings.get("prompt") or AGGREGATE_PROMPT)

        current = [c.text for c in candidates]
        history: list[list[dict[str, Any]]] = [
            [{"model": c.model, "text": c.text} for c in candidates]
        ]
        notes: list[str] = []
        for layer in range(2, layers + 1):
            messages = aggregate_messages(
                context.query, current, prompt=prompt, max_chars=max_chars
            )
            step = await _ask_all(context, models, messages)
            history.append(step)
            answered = [r["text"] for r in step if "text" in r]
            if not answered:
                notes.append(f"layer {layer}: every model failed; kept layer {layer - 1}")
                break
            current = answered

        evidence: dict[str, Any] = {"aggregator": aggregator, "layers": history}
        messages = aggregate_messages(context.query, current, prompt=prompt, max_chars=max_chars)
        try:
            text = await context.complete(aggregator, messages)
        except CoopError as exc:
            last = [Candidate(model=r["model"], text=r["text"]) for r in history[-1] if "text" in r]
            fallback = vote(last or list(candidates), question=context.query)
            notes.append(f"aggregator {aggregator} failed ({exc}); fell back to voting")
            evidence.update(notes=notes, fallback="voting", vote=fallback.evidence)
            return Integration(
                text=fallback.text,
                confidence=fallback.confidence,
                winner=fallback.winner,
                evidence=evidence,
            )
        if notes:
            evidence["notes"] = notes
        return Integration(text=text, confidence=None, winner=aggregator, evidence=evidence)


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(EnsembleStrategy)
