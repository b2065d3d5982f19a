"""The ``voting`` strategy: plurality over normalised answers, text agreement as fallback.

Each candidate's final answer is extracted with :func:`coop.extract_answer`, so
``$1,200``, ``1200.0`` and ``答案是1200`` are one vote. When no candidate has an
extractable answer, the texts themselves are clustered by similarity and the
evidence says so. Tool calls are compared by function name and parsed
arguments, and answers to a JSON ``response_format`` as parsed JSON.
:func:`vote` is the reusable core (``weighted``, ``judge``, ``debate`` and
``ensemble`` call it).
"""

from __future__ import annotations

import json
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

__all__ = [
    "VotingStrategy",
    "canonical_json",
    "text_similarity",
    "tool_call_key",
    "vote",
    "vote_options",
]

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


#: ``response_format`` types whose answers are compared as parsed JSON.
JSON_FORMATS: tuple[str, ...] = ("json_object", "json_schema")


@attrs.define
class _Group:
    """Candidates that gave the same answer (or similar texts, or the same tool calls)."""

    answer: Answer | None
    members: list[int]
    weight: float = 0.0
    #: Tool-call and JSON votes: the canonical form that members share, and its label.
    key: Any = None
    name: str | None = None

    def label(self, candidates: Sequence[Candidate]) -> str:
        if self.name is not None:
            return self.name
        if self.answer is not None:
            return str(self.answer) if self.answer.kind != "text" else f"text: {self.answer}"
        first = candidates[self.members[0]].text.strip().replace("\n", " ")
        return f"text: {first[:60]}"


def vote_options(
    settings: Mapping[str, Any], *, majority: Majority = "plurality"
) -> dict[str, Any]:
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
    majority: Majority = "plurality",
    threshold: float = 0.5,
    similarity: Similarity = "jaccard",
    percent: Literal["points", "ratio"] = "points",
    question: str | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> Integration:
    """Vote over the candidates' normalised answers.

    ``weights`` (model → weight) overrides each ``Candidate.weight``. With
    ``majority="plurality"`` (the default) the heaviest answer wins; ties go to
    the answer whose heaviest voter weighs most, then to the one listed first.
    ``"absolute"`` demands more than half of the total weight; without it the
    lead candidate (highest weight, then first listed) decides, which suits a
    lead model trusted far more than the rest and discards a plurality of
    equals. ``question`` helps extraction tell the answer from numbers it
    restates.

    What is compared: when any candidate carries ``tool_calls``, the calls (see
    :func:`tool_call_key`; a candidate that answered text instead is a group of
    its own); else, when ``response_format`` asks for JSON (``json_object`` or
    ``json_schema``), the parsed JSON values (an answer that does not parse
    abstains; if none parses, the vote falls back to the answers in the text
    and says so); else the extracted final answers, or text similarity.
    """
    if not candidates:
        raise CooperationError("nothing to vote on: no model answered")
    w = [
        float(weights.get(c.model, c.weight)) if weights is not None else float(c.weight)
        for c in candidates
    ]
    notes: list[str] = []
    structured = _structured(candidates, response_format, notes)
    if structured is not None:
        method, keyed = structured
        answers: list[Answer | None] = [None] * len(candidates)
        groups: list[_Group] = []
        for i, kl in enumerate(keyed):
            if kl is None:
                continue  # abstains: not valid JSON for a JSON request
            key, label = kl
            for group in groups:
                if group.key == key:
                    group.members.append(i)
                    group.weight += w[i]
                    break
            else:
                groups.append(_Group(None, [i], w[i], key=key, name=label))
        _unique_labels(groups, candidates)
    else:
        keyed = [None] * len(candidates)
        # Members that agree often say exactly the same thing: read each text once.
        read: dict[str, Answer | None] = {}
        for c in candidates:
            if c.text not in read:
                read[c.text] = extract_answer(c.text, question=question, percent=percent)
        answers = [read[c.text] for c in candidates]
        method = "answer" if any(a is not None for a in answers) else "text-similarity"
        groups = []
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
        # Rounded so that 0.1 + 0.2 ties with 0.3: a tie goes by the rules, not by float noise.
        return (round(g.weight, 9), max(w[i] for i in g.members), -g.members[0])

    best = max(groups, key=rank)
    tie_break = None
    if sum(1 for g in groups if rank(g)[0] == rank(best)[0]) > 1:
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
            _answer_evidence(c, a, keyed[i], w[i])
            for i, (c, a) in enumerate(zip(candidates, answers, strict=True))
        ],
        "winning_answer": best.label(candidates),
        "agreeing": [candidates[i].model for i in best.members],
        "agreement": agreement,
    }
    if tie_break:
        evidence["tie_break"] = tie_break
    voted = {i for g in groups for i in g.members}
    abstained = [c.model for i, c in enumerate(candidates) if i not in voted]
    if abstained:
        evidence["abstained"] = abstained
    if method == "text-similarity":
        notes.append(
            f"no candidate has an extractable answer; clustered texts by {similarity} "
            f"similarity >= {threshold}"
        )
    if notes:
        evidence["fallback"] = "; ".join(notes)
    return Integration(
        text=winner.text, confidence=agreement, winner=winner.model, evidence=evidence
    )


def _answer_evidence(
    cand: Candidate, answer: Answer | None, keyed: tuple[Any, str] | None, weight: float
) -> dict[str, Any]:
    if keyed is not None:
        raw = cand.text if not cand.tool_calls else _raw_calls(cand.tool_calls)
        return {"model": cand.model, "answer": keyed[1], "raw": raw, "weight": weight}
    return {
        "model": cand.model,
        "answer": None if answer is None else str(answer),
        "raw": None if answer is None else answer.raw,
        "weight": weight,
    }


def _structured(
    candidates: Sequence[Candidate],
    response_format: Mapping[str, Any] | None,
    notes: list[str],
) -> tuple[str, list[tuple[Any, str] | None]] | None:
    """``(method, [(key, label) or None per candidate])`` for tool-call or JSON votes."""
    if any(c.tool_calls for c in candidates):
        keyed: list[tuple[Any, str] | None] = []
        for i, c in enumerate(candidates):
            if c.tool_calls:
                keyed.append(tool_call_key(c.tool_calls))
            else:  # answered in text where others called tools: nobody to agree with
                keyed.append((("text", i), "text: " + _snippet(c.text)))
        return "tool-calls", keyed
    if isinstance(response_format, Mapping) and response_format.get("type") in JSON_FORMATS:
        parsed = [_json_key(c.text) for c in candidates]
        if any(p is not None for p in parsed):
            return "json", [None if p is None else (p, f"json: {p}") for p in parsed]
        notes.append(
            f"response_format {response_format.get('type')} but no answer parses as JSON; "
            "voted on the answers in the text"
        )
    return None


def canonical_json(value: Any) -> str:
    """One string per JSON value: sorted keys, no whitespace, ``1.0`` as ``1``."""

    def normal(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, Mapping):
            return {str(k): normal(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [normal(x) for x in v]
        return v

    return json.dumps(normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_key(text: str) -> str | None:
    try:
        return canonical_json(json.loads(text))
    except (ValueError, RecursionError):
        return None


def tool_call_key(tool_calls: Sequence[Mapping[str, Any]]) -> tuple[Any, str]:
    """``(key, label)`` of an answer's tool calls; equal keys are the same calls.

    A call is its function name and its parsed arguments in canonical JSON, so
    key order and whitespace do not matter; arguments that are not valid JSON
    match only the identical string, and empty arguments read as ``{}``.
    Several calls are compared as a set (parallel calls have no order).
    """
    calls = []
    for call in tool_calls:
        function = call.get("function") or {}
        name = str(function.get("name") or call.get("name") or "")
        args = function.get("arguments", call.get("arguments"))
        if args is None or (isinstance(args, str) and not args.strip()):
            args = "{}"
        if isinstance(args, str):
            parsed = _json_key(args)
            calls.append((name, "json", parsed) if parsed is not None else (name, "raw", args))
        else:  # already decoded by the provider
            calls.append((name, "json", canonical_json(args)))
    calls.sort()
    label = "; ".join(f"{name}({args})" for name, _kind, args in calls)
    return ("tools", tuple(calls)), f"tool: {label}"


def _raw_calls(tool_calls: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for call in tool_calls:
        function = call.get("function") or {}
        args = function.get("arguments", call.get("arguments"))
        out.append(
            f"{function.get('name') or call.get('name')}({args if args is not None else ''})"
        )
    return "; ".join(out)


def _snippet(text: str) -> str:
    return text.strip().replace("\n", " ")[:60]


def _unique_labels(groups: list[_Group], candidates: Sequence[Candidate]) -> None:
    # Two own-group texts may read alike; keep each group's votes visible.
    seen: set[str] = set()
    for g in groups:
        if g.name in seen:
            g.name = f"{g.name} ({candidates[g.members[0]].model})"
        seen.add(g.name or "")


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
    """Plurality vote over normalised final answers; text agreement when there are none.

    Settings: ``majority`` ("plurality", default: the heaviest answer wins, ties by
    weight then order; or "absolute": more than half the weight, else the lead
    model decides), ``threshold`` (text similarity, 0.5), ``similarity``
    ("jaccard" or "ngram"), ``percent`` ("points": 50% is 50, or "ratio": 50% is
    0.5), ``weights`` ({model = w}). Honours ``tools`` (tool calls are voted on
    by name and parsed arguments; the winner's calls are the answer) and
    ``response_format`` (JSON answers are voted on as parsed JSON).
    """

    name = "voting"
    description = (
        "Plurality over normalised answers (numbers, options, yes/no, tool calls, JSON), "
        "else text agreement."
    )
    honours = frozenset({"tools", "response_format"})

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        return vote(
            candidates,
            question=context.query,
            response_format=context.response_format,
            **vote_options(settings),
        )


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(VotingStrategy)
