"""The ``voting`` strategy: majority over normalised answers, text agreement as fallback.

Each candidate's final answer is extracted with :func:`coop.extract_answer`, so
``$1,200``, ``1200.0`` and ``答案是1200`` are one vote. When no candidate has an
extractable answer, the texts themselves are clustered by similarity and the
evidence says so. :func:`vote` is the reusable core (``weighted``, ``judge`` and
``debate`` call it).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from coop import (
    Answer,
    Candidate,
    ConfigError,
    CooperationError,
    Integration,
    Strategy,
    StrategyContext,
    answers_match,
    extract_answer,
    hookimpl,
)

__all__ = ["VotingStrategy", "text_similarity", "vote", "vote_options"]

Majority = Literal["absolute", "plurality"]
Similarity = Literal["jaccard", "ngram"]
MAJORITIES: tuple[str, ...] = ("absolute", "plurality")
SIMILARITIES: tuple[str, ...] = ("jaccard", "ngram")


def _tokens(text: str) -> set[str]:
    # Words for alphabetic scripts, single characters for CJK (no spaces there).
    return set(re.findall(r"[\u4e00-\u9fff]|[^\W_]+", text.lower()))


def _ngrams(text: str, n: int = 3) -> Counter[str]:
    text = re.sub(r"\s+", " ", text.lower()).strip()
    if len(text) < n:
        return Counter([text]) if text else Counter()
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def text_similarity(a: str, b: str, method: Similarity = "jaccard") -> float:
    """Similarity in [0, 1]: token-set Jaccard or character-trigram cosine."""
    if method == "jaccard":
        ta, tb = _tokens(a), _tokens(b)
        if not ta and not tb:
            return 1.0
        return len(ta & tb) / len(ta | tb)
    ga, gb = _ngrams(a), _ngrams(b)
    dot = sum(v * gb[k] for k, v in ga.items())
    norm = math.sqrt(sum(v * v for v in ga.values()) * sum(v * v for v in gb.values()))
    return dot / norm if norm else float(not ga and not gb)


@attrs.define
class _Group:
    """Candidates that gave the same answer (or similar texts)."""

    answer: Answer | None
    members: list[int]
    weight: float = 0.0

    def label(self, candidates: Sequence[Candidate]) -> str:
        if self.answer is not None:
            return str(self.answer) if self.answer.kind != "text" else f"text: {self.answer}"
        first = candidates[self.members[0]].text.strip().replace("\n", " ")
        return f"text: {first[:60]}"


def vote_options(settings: Mapping[str, Any], *, majority: Majority = "absolute") -> dict[str, Any]:
    """Validated keyword arguments for :func:`vote` from cooperation settings."""
    return {
        "weights": settings.get("weights"),
        "majority": _option(settings, "majority", majority, MAJORITIES),
        "threshold": _threshold(settings),
        "similarity": _option(settings, "similarity", "jaccard", SIMILARITIES),
        "percent": _option(settings, "percent", "points", ("points", "ratio")),
    }


def _option(settings: Mapping[str, Any], key: str, default: Any, allowed: Sequence[str]) -> Any:
    value = settings.get(key, default)
    if value not in allowed:
        raise ConfigError(f"must be one of {', '.join(allowed)}, not {value!r}", key=key)
    return value


def _threshold(settings: Mapping[str, Any]) -> float:
    value = settings.get("threshold", 0.5)
    if not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"must be a number in [0, 1], not {value!r}", key="threshold")
    return float(value)


def vote(
    candidates: Sequence[Candidate],
    *,
    weights: Mapping[str, float] | None = None,
    majority: Majority = "absolute",
    threshold: float = 0.5,
    similarity: Similarity = "jaccard",
    percent: Literal["points", "ratio"] = "points",
    question: str | None = None,
) -> Integration:
    """Vote over the candidates' normalised answers.

    ``weights`` (model → weight) overrides each ``Candidate.weight``. With
    ``majority="absolute"`` an answer needs more than half of the total weight;
    otherwise the lead candidate (highest weight, then first listed) decides,
    because a plurality such as 2 of 5 is weak evidence against the model
    trusted most. ``"plurality"`` takes the heaviest answer. Ties go to the
    answer whose heaviest voter weighs most, then to the one named first.
    ``question`` helps extraction tell the answer from numbers it restates.
    """
    if not candidates:
        raise CooperationError("nothing to vote on: no model answered")
    w = [
        float(weights.get(c.model, c.weight)) if weights is not None else float(c.weight)
        for c in candidates
    ]
    answers = [extract_answer(c.text, question=question, percent=percent) for c in candidates]
    method = "answer" if any(a is not None for a in answers) else "text-similarity"

    groups: list[_Group] = []
    for i, (cand, answer) in enumerate(zip(candidates, answers, strict=True)):
        if method == "answer" and answer is None:
            continue  # abstains: no final answer to count
        for group in groups:
            if _same(group, answer, cand, candidates, threshold, similarity):
                group.members.append(i)
                group.weight += w[i]
                break
        else:
            groups.append(_Group(answer, [i], w[i]))

    total = sum(w)

    def rank(g: _Group) -> tuple[float, float, int]:
        return (g.weight, max(w[i] for i in g.members), -g.members[0])

    best = max(groups, key=rank)
    tie_break = None
    if sum(1 for g in groups if g.weight == best.weight) > 1:
        tie_break = "weight, then order"
    if majority == "absolute" and not best.weight > total / 2 and len(groups) > 1:
        voters = [i for g in groups for i in g.members]
        lead = max(voters, key=lambda i: (w[i], -i))
        best = next(g for g in groups if lead in g.members)
        tie_break = f"no answer has more than half the weight; the lead model {candidates[lead].model} decides"

    winner = candidates[best.members[0]]
    agreement = best.weight / total if total > 0 else len(best.members) / len(candidates)
    evidence: dict[str, Any] = {
        "method": method,
        "majority": majority,
        "votes": {g.label(candidates): g.weight for g in groups},
        "answers": [
            {
                "model": c.model,
                "answer": None if a is None else str(a),
                "raw": None if a is None else a.raw,
                "weight": w[i],
            }
            for i, (c, a) in enumerate(zip(candidates, answers, strict=True))
        ],
        "winning_answer": best.label(candidates),
        "agreeing": [candidates[i].model for i in best.members],
        "agreement": agreement,
    }
    if tie_break:
        evidence["tie_break"] = tie_break
    abstained = [c.model for c, a in zip(candidates, answers, strict=True) if a is None]
    if method == "answer" and abstained:
        evidence["abstained"] = abstained
    if method == "text-similarity":
        evidence["fallback"] = (
            f"no candidate has an extractable answer; clustered texts by {similarity} "
            f"similarity >= {threshold}"
        )
    return Integration(
        text=winner.text, confidence=agreement, winner=winner.model, evidence=evidence
    )


def _same(
    group: _Group,
    answer: Answer | None,
    cand: Candidate,
    candidates: Sequence[Candidate],
    threshold: float,
    similarity: Similarity,
) -> bool:
    if answer is None or group.answer is None:
        # Text mode: compare with the group's first (representative) text.
        rep = candidates[group.members[0]].text
        return answer is None and text_similarity(rep, cand.text, similarity) >= threshold
    if answer.kind == "text" and group.answer.kind == "text":
        return (
            answer.value == group.answer.value
            or text_similarity(str(answer.value), str(group.answer.value), similarity) >= threshold
        )
    return answers_match(group.answer, answer)


class VotingStrategy(Strategy):
    """Majority vote over normalised final answers; text agreement when there are none.

    Settings: ``majority`` ("absolute", default, or "plurality"), ``threshold``
    (text similarity, 0.5), ``similarity`` ("jaccard" or "ngram"), ``percent``
    ("points": 50% is 50, or "ratio": 50% is 0.5), ``weights`` ({model = w}).
    """

    name = "voting"
    description = (
        "Majority over normalised answers (numbers, options, yes/no), else text agreement."
    )

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        return vote(candidates, question=context.query, **vote_options(settings))


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(VotingStrategy)
