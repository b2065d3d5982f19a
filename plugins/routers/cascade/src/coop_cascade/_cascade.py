"""The ``cascade`` router: ask a cheap model first, escalate when its samples disagree.

FrugalGPT-style (Chen et al., 2023): most requests are answered well by a cheap
model, and when a cheap model is unsure its samples disagree. So the cheap model
is asked ``samples`` times in parallel, the answers are normalised (the final
number, an option letter, yes/no, else the bag of words) and compared; below
``threshold`` agreement the strong model answers instead. Every call and its
cost is reported, so the saving (or the price of escalating) is visible.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import anyio
import attrs
from coop import Analysis, CascadingRouter, CooperationError, ValidationError
from coop_rules import RulesRouter

__all__ = [
    "CascadeCall",
    "CascadeResult",
    "CascadeRouter",
    "Complete",
    "agreement",
    "answer_key",
]

#: ``async complete(model_name, messages) -> (text, cost_usd)``
Complete = Callable[[str, list[dict[str, Any]]], Awaitable[tuple[str, float]]]

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKED = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\**\s*\(?([^\n.;,。]{1,40})"
    r"|^\s*(?:A|Answer|答案|答)\s*[:：]\s*([^\n]{1,40})"
    r"|####\s*([^\n]{1,40})"
    r"|答案(?:是|为)\s*[:：]?\s*([^\n，。]{1,40})",
    re.IGNORECASE | re.MULTILINE,
)
_LAST_NUMBER = re.compile(_NUMBER)
_OPTION = re.compile(
    r"^\s*\(([A-E])\)|^\s*([A-E])[.:)](?:\s|$)|^\s*([A-E])\s*$|\boption\s+\(?([A-E])\b\)?"
    r"|选\s*([A-E])|\(([A-E])\)\s*$"
)
_YES_NO = re.compile(r"^\s*(yes|no|是的|是|不是|否|对|不对|正确|错误)\b", re.IGNORECASE)
_YES = {"yes", "是的", "是", "对", "正确"}
_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")


def _number(text: str) -> str | None:
    found = _LAST_NUMBER.findall(text)
    if not found:
        return None
    raw = found[-1].replace("$", "").replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.6g}"


def _short_key(fragment: str) -> str | None:
    """A number, an option letter or yes/no from a short answer fragment."""
    fragment = fragment.strip().strip("*").strip()
    yes_no = _YES_NO.match(fragment)
    if yes_no:
        return "yes" if yes_no.group(1).lower() in _YES else "no"
    option = re.fullmatch(r"\(?([A-Ea-e])\)?[.)]?(?:\s.*)?", fragment)
    if option:
        return "option:" + option.group(1).upper()
    number = _number(fragment)
    if number is not None:
        return "number:" + number
    return None


def answer_key(text: str) -> str | None:
    """The comparable core of an answer: ``number:18``, ``option:B``, ``yes``/``no``.

    Looks for an explicit final answer (``\\boxed{}``, "the answer is", "A:",
    "####", "答案是"), then a leading yes/no, an option letter, and finally the
    last number in the text. ``None`` when the answer is free text.
    """
    boxed = _BOXED.findall(text)
    if boxed:
        key = _short_key(boxed[-1])
        if key:
            return key
    marked = _MARKED.findall(text)
    if marked:
        fragment = next(g for g in marked[-1] if g)
        key = _short_key(fragment)
        if key:
            return key
    yes_no = _YES_NO.match(text)
    if yes_no:
        return "yes" if yes_no.group(1).lower() in _YES else "no"
    option = _OPTION.search(text)
    if option:
        return "option:" + next(g for g in option.groups() if g)
    number = _number(text)
    if number is not None:
        return "number:" + number
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def _same(a: str, b: str, key_a: str | None, key_b: str | None, similarity: float) -> bool:
    if key_a is not None and key_b is not None:
        return key_a == key_b
    words_a, words_b = _words(a), _words(b)
    if not words_a and not words_b:
        return True
    union = words_a | words_b
    return len(words_a & words_b) / len(union) >= similarity


def agreement(answers: Sequence[str], *, similarity: float = 0.6) -> tuple[float, int]:
    """Share of answers that agree with the most agreed-with one, and its index.

    Two answers agree when their :func:`answer_key` values are equal (both
    structured), or else when their word sets overlap by at least ``similarity``
    (Jaccard). One answer agrees with itself: agreement 1.0.
    """
    if not answers:
        return 0.0, -1
    keys = [answer_key(a) for a in answers]
    best, best_index = 0, 0
    for i, (a, key_a) in enumerate(zip(answers, keys, strict=True)):
        count = sum(
            _same(a, b, key_a, key_b, similarity) for b, key_b in zip(answers, keys, strict=True)
        )
        if count > best:
            best, best_index = count, i
    return best / len(answers), best_index


@attrs.define
class CascadeCall:
    """One model call the cascade made."""

    model: str
    role: str  # "sample" or "escalation"
    text: str = ""
    cost_usd: float = 0.0
    elapsed_ms: float = 0.0
    answer_key: str | None = None
    error: str | None = None


@attrs.define
class CascadeResult:
    """What the cascade answered, who answered, and what it cost."""

    text: str
    model: str
    escalated: bool
    agreement: float
    calls: list[CascadeCall] = attrs.field(factory=list)
    reasons: list[str] = attrs.field(factory=list)

    @property
    def total_cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["total_cost_usd"] = self.total_cost_usd
        return data


class CascadeRouter(CascadingRouter):
    """Cheap model first, strong model when the cheap samples disagree (FrugalGPT).

    Settings: ``threshold`` (agreement needed to keep the cheap answer, 0–1;
    default 1.0, i.e. every sample agrees), ``similarity`` (word-overlap needed
    for two free-text answers to agree; default 0.6). ``analyze`` is the rules
    router's analysis, so the cascade can also stand in as a plain router.
    """

    name: ClassVar[str] = "cascade"
    description: ClassVar[str] = (
        "Cheap model sampled first; escalates to a strong model when samples disagree."
    )

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.threshold = _fraction(self.settings.get("threshold", 1.0), "threshold")
        self.similarity = _fraction(self.settings.get("similarity", 0.6), "similarity")
        self._rules = RulesRouter(self.settings)

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        """The rules analysis (the cascade's own decision happens in :meth:`run`)."""
        analysis = self._rules.analyze(messages)
        analysis.reasons.append(
            f"cascade: answer with the cheap model, escalate below {self.threshold:.2f} agreement"
        )
        return analysis

    async def run(
        self,
        messages: list[dict[str, Any]],
        *,
        complete: Complete,
        cheap: str,
        strong: str,
        samples: int = 2,
    ) -> CascadeResult:
        """Sample ``cheap`` ``samples`` times in parallel; ask ``strong`` if they disagree.

        A failed cheap call counts as disagreement. Raises
        :class:`coop.CooperationError` only when no model produced an answer.
        """
        if samples < 1:
            raise ValidationError("must be at least 1", field="samples", value=samples)
        if not cheap or not strong:
            raise ValidationError("name both a cheap and a strong model", field="cheap/strong")
        calls = [CascadeCall(model=cheap, role="sample") for _ in range(samples)]
        async with anyio.create_task_group() as group:
            for call in calls:
                group.start_soon(_call, complete, call, messages)
        answered = [c for c in calls if c.error is None]
        score, index = agreement([c.text for c in answered], similarity=self.similarity)
        if len(answered) < samples:
            score *= len(answered) / samples  # a failed sample is a vote of no confidence
        reasons = [
            f"{len(answered)}/{samples} cheap samples answered; agreement {score:.2f} "
            f"(threshold {self.threshold:.2f})"
        ]
        keys = [c.answer_key for c in answered]
        if any(keys):
            reasons.append("answers: " + ", ".join(k or "(free text)" for k in keys))
        if answered and score >= self.threshold:
            reasons.append(f"kept the cheap answer from {cheap}")
            return CascadeResult(
                text=answered[index].text,
                model=cheap,
                escalated=False,
                agreement=score,
                calls=calls,
                reasons=reasons,
            )
        escalation = CascadeCall(model=strong, role="escalation")
        calls.append(escalation)
        await _call(complete, escalation, messages)
        if escalation.error is None:
            reasons.append(f"escalated to {strong}")
            return CascadeResult(
                text=escalation.text,
                model=strong,
                escalated=True,
                agreement=score,
                calls=calls,
                reasons=reasons,
            )
        if answered:
            reasons.append(f"escalation to {strong} failed ({escalation.error}); kept {cheap}")
            return CascadeResult(
                text=answered[index].text,
                model=cheap,
                escalated=True,
                agreement=score,
                calls=calls,
                reasons=reasons,
            )
        raise CooperationError(
            "cascade: every call failed",
            failures={f"{c.model}#{i}": RuntimeError(c.error) for i, c in enumerate(calls)},
        )


async def _call(complete: Complete, call: CascadeCall, messages: list[dict[str, Any]]) -> None:
    """Run one call, recording text, cost, time or the error (never raising an Exception)."""
    started = time.perf_counter()
    try:
        text, cost = await complete(call.model, messages)
    except Exception as exc:  # one failed sample must not cancel the others
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        call.text = text if isinstance(text, str) else str(text)
        call.cost_usd = float(cost or 0.0)
        call.answer_key = answer_key(call.text)
    call.elapsed_ms = (time.perf_counter() - started) * 1000


def _fraction(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError("must be a number between 0 and 1", field=name, value=value) from None
    if not 0.0 <= number <= 1.0:
        raise ValidationError("must be between 0 and 1", field=name, value=value)
    return number
