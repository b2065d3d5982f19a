"""The ``judge`` strategy: a judge model scores each candidate; the best one wins.

The judge is asked for strict JSON, but real models wrap it in code fences, add
a sentence after it or ignore the format; :func:`parse_scores` reads all of
those, then ``Candidate 2 ... Score: 7`` lines. When nothing usable comes back
(or the judge call fails), the strategy falls back to ``voting`` and says so
instead of crowning a candidate at random.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from typing import Any

from coop import (
    Candidate,
    CooperationError,
    CoopError,
    Integration,
    Strategy,
    StrategyContext,
    hookimpl,
)
from coop_voting import vote, vote_options

__all__ = ["JUDGE_PROMPT", "JudgeStrategy", "judge_messages", "parse_scores"]

JUDGE_PROMPT = (
    "You are an impartial judge. Evaluate each candidate response to the user's question for "
    "correctness first, then completeness and clarity. Check any reasoning or arithmetic "
    "yourself. Give each candidate an integer score from 1 (useless or wrong) to 10 (correct "
    "and excellent) and a one-sentence rationale.\n"
    "Reply with JSON only, no other text, in exactly this form:\n"
    '{"scores": [{"candidate": 1, "score": 7, "rationale": "..."}, '
    '{"candidate": 2, "score": 4, "rationale": "..."}]}'
)


def judge_messages(
    query: str, responses: Sequence[str], *, prompt: str = JUDGE_PROMPT
) -> list[dict[str, Any]]:
    """Chat messages asking a judge to score ``responses`` (built without ``str.format``)."""
    parts = ["Question:", query.strip(), ""]
    for i, text in enumerate(responses, 1):
        parts += [f"--- Candidate {i} ---", text.strip(), ""]
    parts.append(f"Score all {len(responses)} candidates.")
    return [
        {"role": "system", "content": prompt},
        {"role": "user", "content": "\n".join(parts)},
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", value)
        return float(m.group(1)) if m else None
    return None


def _json_values(reply: str) -> list[Any]:
    """Every JSON object/array found in the reply: fenced blocks first, then inline."""
    found: list[Any] = []
    for block in re.findall(r"```(?:json|JSON)?\s*(.*?)```", reply, re.S):
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(block))
    decoder = json.JSONDecoder()
    i = 0
    while i < len(reply):
        m = re.compile(r"[\[{]").search(reply, i)
        if not m:
            break
        try:
            value, end = decoder.raw_decode(reply, m.start())
        except json.JSONDecodeError:
            i = m.start() + 1
            continue
        found.append(value)
        i = end
    return found


def _from_json(value: Any, n: int) -> dict[int, tuple[float, str]]:
    """Scores from one JSON value: {"scores": [...]}, [...], or {"1": 7, ...}."""
    if isinstance(value, dict):
        for key in ("scores", "candidates", "results", "ratings", "evaluations"):
            if isinstance(value.get(key), list | dict):
                return _from_json(value[key], n)
        if "score" in value:  # one object: {"candidate": 2, "score": 7}
            return _from_json([{"candidate": 1, **value}], n)
        items = []
        for key, item in value.items():
            m = re.search(r"\d+", str(key))
            if m:
                entry = item if isinstance(item, dict) else {"score": item}
                items.append({"candidate": int(m.group()), **entry})
        value = items
    out: dict[int, tuple[float, str]] = {}
    if isinstance(value, list):
        for pos, item in enumerate(value, 1):
            if not isinstance(item, dict):
                score = _number(item)
                if score is not None:
                    out[pos] = (score, "")
                continue
            index = next(
                (item[k] for k in ("candidate", "id", "index", "response", "number") if k in item),
                pos,
            )
            index = int(_number(index) or pos) if not isinstance(index, int) else index
            score = next(
                (_number(item[k]) for k in ("score", "rating", "points", "grade") if k in item),
                None,
            )
            if score is not None:
                rationale = next(
                    (
                        str(item[k])
                        for k in ("rationale", "reason", "explanation", "comment")
                        if k in item
                    ),
                    "",
                )
                out[index] = (score, rationale)
    return {i: s for i, s in out.items() if 1 <= i <= n and 0 <= s[0] <= 10}


_MENTION = re.compile(r"(?:candidate|response|answer|候选|回答)\s*#?\s*(\d+)", re.I)
_SCORE = re.compile(
    r"(?:score|rating|评分|得分|分数)\s*[:：=]?\s*\**\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*/\s*10\b",
    re.I,
)


def _from_text(reply: str, n: int) -> dict[int, tuple[float, str]]:
    """``Candidate 2: ... Score: 7`` lines; a lone ``Score: 7`` when there is one candidate."""
    out: dict[int, tuple[float, str]] = {}
    mentions = list(_MENTION.finditer(reply))
    for k, m in enumerate(mentions):
        index = int(m.group(1))
        end = mentions[k + 1].start() if k + 1 < len(mentions) else len(reply)
        segment = reply[m.end() : end]
        s = _SCORE.search(segment)
        if s and 1 <= index <= n and index not in out:
            score = float(s.group(1) or s.group(2))
            if 0 <= score <= 10:
                out[index] = (score, segment.strip(" :.-\n")[:300])
    if not out and n == 1:
        s = _SCORE.search(reply)
        if s:
            out[1] = (float(s.group(1) or s.group(2)), reply.strip()[:300])
    return out


def parse_scores(reply: str, n: int) -> tuple[dict[int, tuple[float, str]], str | None]:
    """Candidate number (1-based) → (score, rationale), and how it was read (json/text/None)."""
    best: dict[int, tuple[float, str]] = {}
    for value in _json_values(reply):
        scores = _from_json(value, n)
        if len(scores) > len(best):
            best = scores
    if best:
        return best, "json"
    scores = _from_text(reply, n)
    return (scores, "text") if scores else ({}, None)


class JudgeStrategy(Strategy):
    """A judge model scores each candidate 1-10 with a rationale; best score wins.

    Settings: ``judge`` (model; default the first model), ``prompt`` (replaces
    the judging instruction), plus ``voting`` settings for the fallback.
    """

    name = "judge"
    description = "A judge model scores every candidate with a rationale; the best one wins."

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        if not candidates:
            raise CooperationError("nothing to judge: no model answered")
        judge = str(settings.get("judge") or (list(context.models) or [candidates[0].model])[0])
        if len(candidates) == 1:
            only = candidates[0]
            return Integration(
                text=only.text,
                winner=only.model,
                evidence={"judge": judge, "note": "one candidate: nothing to judge"},
            )
        messages = judge_messages(
            context.query,
            [c.text for c in candidates],
            prompt=str(settings.get("prompt") or JUDGE_PROMPT),
        )
        evidence: dict[str, Any] = {"judge": judge}
        try:
            reply = await context.complete(judge, messages)
        except CoopError as exc:
            return self._fallback(
                candidates, settings, evidence, f"judge call failed: {exc}", context.query
            )
        evidence["reply"] = reply
        scores, how = parse_scores(reply, len(candidates))
        if not scores:
            return self._fallback(
                candidates, settings, evidence, "judge reply could not be parsed", context.query
            )
        evidence["parsed_from"] = how
        evidence["scores"] = [
            {
                "candidate": i,
                "model": c.model,
                "score": scores[i][0] if i in scores else None,
                "rationale": scores[i][1] if i in scores else None,
            }
            for i, c in enumerate(candidates, 1)
        ]
        missing = [c.model for i, c in enumerate(candidates, 1) if i not in scores]
        if missing:
            evidence["unscored"] = missing
        best = max(scores, key=lambda i: (scores[i][0], -i))  # ties: the first listed
        winner = candidates[best - 1]
        evidence["rationale"] = scores[best][1]
        return Integration(
            text=winner.text,
            confidence=scores[best][0] / 10,
            winner=winner.model,
            evidence=evidence,
        )

    def _fallback(
        self,
        candidates: Sequence[Candidate],
        settings: dict[str, Any],
        evidence: dict[str, Any],
        reason: str,
        query: str,
    ) -> Integration:
        result = vote(candidates, question=query, **vote_options(settings))
        evidence.update(
            fallback="voting", reason=reason + "; fell back to voting", vote=result.evidence
        )
        return Integration(
            text=result.text, confidence=result.confidence, winner=result.winner, evidence=evidence
        )


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(JudgeStrategy)
