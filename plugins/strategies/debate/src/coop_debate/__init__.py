"""The ``debate`` strategy: models read each other's answers, revise, then vote.

Multi-agent debate (Du et al., 2023): in each round every model sees the other
models' previous answers and may change its own; the final round is voted on
with ``voting``. Rounds run their calls in parallel and the whole debate is
bounded by ``time_budget``: when it runs out, what exists is voted on and the
evidence says so, so a debate never holds a request hostage.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from coop_voting import vote, vote_options

__all__ = ["DEBATE_PROMPT", "DebateStrategy", "debate_messages"]

DEBATE_PROMPT = (
    "Using the reasoning from other agents as additional advice, give an updated answer. "
    "Examine your own solution and the other agents' solutions step by step; change your "
    "answer only if you find a real mistake. If the question asks for one final answer, end "
    "with a line 'Answer: <final answer>'."
)


def debate_messages(
    query: str, own: str, others: Sequence[str], *, prompt: str = DEBATE_PROMPT
) -> list[dict[str, Any]]:
    """One model's next turn: its question, its last answer, the others' (no ``str.format``)."""
    parts = ["These are the solutions to the problem from other agents:"]
    for text in others:
        parts += ["", "One agent's solution:", "```", text.strip(), "```"]
    parts += ["", prompt]
    return [
        {"role": "user", "content": query},
        {"role": "assistant", "content": own},
        {"role": "user", "content": "\n".join(parts)},
    ]


def _setting(value: Any, key: str, *, integer: bool) -> Any:
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < (0 if integer else 0.0):
        kind = "an integer >= 0" if integer else "a number of seconds >= 0"
        raise ConfigError(f"must be {kind}, not {value!r}", key=key)
    return value


class DebateStrategy(Strategy):
    """Rounds of mutual revision, then a vote over the final answers.

    Settings: ``rounds`` (default 2), ``time_budget`` (seconds for all rounds,
    default 120; none = unbounded), ``prompt``, plus the ``voting`` settings.
    """

    name = "debate"
    description = "Models see each other's answers and revise for some rounds, then vote."

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        if not candidates:
            raise CooperationError("nothing to debate: no model answered")
        rounds = _setting(settings.get("rounds", 2), "rounds", integer=True)
        budget = settings.get("time_budget", 120)
        if budget is not None:
            budget = float(_setting(budget, "time_budget", integer=False))
        prompt = str(settings.get("prompt") or DEBATE_PROMPT)
        options = vote_options(settings)

        # Debaters are the candidates that answered; each keeps its latest answer.
        latest = [c.text for c in candidates]
        history: list[list[dict[str, Any]]] = [
            [{"model": c.model, "text": c.text} for c in candidates]
        ]
        completed = 0
        timed_out = False
        if len(candidates) > 1 and rounds > 0:
            with anyio.move_on_after(budget) as scope:
                for round_ in range(1, rounds + 1):
                    previous = list(latest)
                    step: list[dict[str, Any]] = [
                        {"model": c.model, "kept": True} for c in candidates
                    ]
                    history.append(step)

                    async def turn(
                        i: int, previous: list[str] = previous, step: list[dict[str, Any]] = step
                    ) -> None:
                        others = [t for j, t in enumerate(previous) if j != i]
                        messages = debate_messages(
                            context.query, previous[i], others, prompt=prompt
                        )
                        try:
                            text = await context.complete(candidates[i].model, messages)
                        except CoopError as exc:
                            step[i] = {
                                "model": candidates[i].model,
                                "error": str(exc),
                                "kept": True,
                            }
                            return
                        latest[i] = text
                        step[i] = {"model": candidates[i].model, "text": text}

                    async with anyio.create_task_group() as tg:
                        for i in range(len(candidates)):
                            tg.start_soon(turn, i)
                    completed = round_
            timed_out = scope.cancelled_caught

        final = [
            Candidate(
                model=c.model, text=latest[i], weight=c.weight, latency=c.latency, cost=c.cost
            )
            for i, c in enumerate(candidates)
        ]
        result = vote(final, question=context.query, **options)
        evidence: dict[str, Any] = {
            "rounds": history,
            "completed_rounds": completed,
            "vote": result.evidence,
        }
        if timed_out:
            evidence["timed_out"] = (
                f"time budget of {budget:g}s ran out after {completed} complete round(s); "
                "voted on the latest answers (a model cut off mid-round keeps its previous one)"
            )
        if len(candidates) == 1:
            evidence["note"] = "one candidate: nobody to debate with"
        return Integration(
            text=result.text, confidence=result.confidence, winner=result.winner, evidence=evidence
        )


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(DebateStrategy)
