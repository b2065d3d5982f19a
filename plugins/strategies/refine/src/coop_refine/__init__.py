"""The ``refine`` strategy: draft → critique → improve, sequentially.

A second model reads the draft looking for mistakes, and the drafter (or a
third model) rewrites it: a cheap way to catch errors one model cannot see in
its own answer. Each step is kept in the evidence. Prompts are concatenated,
never ``str.format``-ed, so braces in user text are safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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

__all__ = ["CRITIQUE_PROMPT", "IMPROVE_PROMPT", "RefineStrategy"]

CRITIQUE_PROMPT = (
    "You are a careful reviewer. Read the question and the draft answer. List concrete "
    "problems: factual or arithmetic errors, faulty reasoning, missing parts, unclear wording. "
    "Check every calculation yourself. Do not rewrite the answer. If the draft is correct and "
    "complete, reply with exactly: NO ISSUES"
)
IMPROVE_PROMPT = (
    "Improve the draft answer to the question using the reviewer's critique. Fix every valid "
    "point, ignore points that are wrong, and keep what was right. Reply with the improved "
    "answer only, without mentioning the critique. If the question asks for one final answer, "
    "end with a line 'Answer: <final answer>'."
)

#: A critique saying nothing needs fixing ends the rounds early.
_NO_ISSUES = re.compile(
    r"^\W*(?:no issues?|no problems?|lgtm|looks good(?: to me)?|the draft is correct[^.]*|"
    r"没有问题|无需修改|无问题)\W*$",
    re.I,
)


def _messages(system: str, *sections: tuple[str, str]) -> list[dict[str, Any]]:
    body = "\n\n".join(f"{title}:\n{text.strip()}" for title, text in sections)
    return [{"role": "system", "content": system}, {"role": "user", "content": body}]


class RefineStrategy(Strategy):
    """Draft (first model) → critique (second) → improve (first, or a third), ``rounds`` times.

    Settings: ``rounds`` (default 1), ``critique_prompt``, ``improve_prompt``.
    The draft is the first model's candidate when it answered, else it is asked.
    """

    name = "refine"
    description = "Sequential draft, critique and improvement by different models."

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        rounds = settings.get("rounds", 1)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ConfigError(f"must be an integer >= 1, not {rounds!r}", key="rounds")
        models = list(context.models) or [c.model for c in candidates]
        if not models:
            raise CooperationError("refine needs at least one model")
        drafter = models[0]
        critic = models[1] if len(models) > 1 else drafter
        improver = models[2] if len(models) > 2 else drafter
        critique_prompt = str(settings.get("critique_prompt") or CRITIQUE_PROMPT)
        improve_prompt = str(settings.get("improve_prompt") or IMPROVE_PROMPT)

        steps: list[dict[str, Any]] = []
        first = next((c for c in candidates if c.model == drafter), None)
        if first is not None:
            draft, author = first.text, drafter
        else:  # the drafter did not answer in the cooperation: ask it, else take the first
            try:
                draft = await context.complete(
                    drafter, [{"role": "user", "content": context.query}]
                )
                author = drafter
            except CoopError as exc:
                if not candidates:
                    raise CooperationError(f"refine: the drafter {drafter} failed: {exc}") from exc
                draft, author = candidates[0].text, candidates[0].model
                steps.append({"role": "draft", "model": drafter, "error": str(exc)})
        steps.append({"role": "draft", "model": author, "text": draft})

        evidence: dict[str, Any] = {"drafter": author, "critic": critic, "improver": improver}
        completed = 0
        for round_ in range(1, rounds + 1):
            try:
                critique = await context.complete(
                    critic,
                    _messages(
                        critique_prompt, ("Question", context.query), ("Draft answer", draft)
                    ),
                )
            except CoopError as exc:
                steps.append(
                    {"role": "critique", "model": critic, "round": round_, "error": str(exc)}
                )
                evidence["stopped"] = f"critique failed in round {round_}; kept the last draft"
                break
            steps.append({"role": "critique", "model": critic, "round": round_, "text": critique})
            if _NO_ISSUES.match(critique.strip()):
                evidence["stopped"] = f"the critic found no issues in round {round_}"
                break
            try:
                improved = await context.complete(
                    improver,
                    _messages(
                        improve_prompt,
                        ("Question", context.query),
                        ("Draft answer", draft),
                        ("Critique", critique),
                    ),
                )
            except CoopError as exc:
                steps.append(
                    {"role": "improve", "model": improver, "round": round_, "error": str(exc)}
                )
                evidence["stopped"] = f"improvement failed in round {round_}; kept the last draft"
                break
            steps.append({"role": "improve", "model": improver, "round": round_, "text": improved})
            draft, author = improved, improver
            completed = round_
        evidence.update(steps=steps, rounds=completed)
        return Integration(text=draft, confidence=None, winner=author, evidence=evidence)


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(RefineStrategy)
