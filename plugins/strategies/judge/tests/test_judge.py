"""Judge: scores parsed robustly, best wins, voting when the judge is unusable."""

from __future__ import annotations

from typing import Any

import pytest
from coop import Candidate, CooperationError, StrategyContext, load_plugins
from coop_judge import JudgeStrategy, judge_messages, parse_scores

CANDS = [
    Candidate("a", "A: 18"),
    Candidate("b", "The answer is 26"),
    Candidate("c", "Answer: 18 {x}"),
]


def judge_says(reply: str | Exception) -> tuple[list[tuple[str, Any]], Any]:
    calls: list[tuple[str, Any]] = []

    async def complete(model: str, messages: list[dict[str, Any]]) -> str:
        calls.append((model, messages))
        if isinstance(reply, Exception):
            raise reply
        return reply

    return calls, complete


def ctx(complete: Any, settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(
        query="How much {does} she make?",
        complete=complete,
        models=["a", "b", "c"],
        settings=settings or {},
    )


@pytest.mark.parametrize(
    ("reply", "expected", "how"),
    [
        (
            '{"scores": [{"candidate": 1, "score": 7, "rationale": "ok"}, {"candidate": 2, "score": 3, "rationale": "bad"}]}',
            {1: (7.0, "ok"), 2: (3.0, "bad")},
            "json",
        ),
        (
            'Here you go:\n```json\n{"scores": [{"candidate": 2, "score": 9, "rationale": "best"}]}\n```\nHope it helps {!}',
            {2: (9.0, "best")},
            "json",
        ),
        (
            '[{"id": 1, "rating": "8/10", "reason": "fine"}, {"id": 2, "rating": 6}] trailing',
            {1: (8.0, "fine"), 2: (6.0, "")},
            "json",
        ),
        (
            '{"1": 4, "2": {"score": 9, "explanation": "right"}}',
            {1: (4.0, ""), 2: (9.0, "right")},
            "json",
        ),
        ('{"candidate": 2, "score": 8}', {2: (8.0, "")}, "json"),
        ("Candidate 1: solid work. Score: 6\nCandidate 2 - wrong sum, Score: 2", None, "text"),
        ("Response #2 gets 9/10, Response #1 gets 5/10", None, "text"),
        ('{"scores": [{"candidate": 7, "score": 9}, {"candidate": 1, "score": 11}]}', {}, None),
        ("I cannot decide.", {}, None),
    ],
)
def test_parse_scores(
    reply: str, expected: dict[int, tuple[float, str]] | None, how: str | None
) -> None:
    scores, found = parse_scores(reply, 3)
    assert found == how
    if expected is not None:
        assert scores == expected
    elif how == "text":
        assert set(scores) == {1, 2}
    if "Candidate 1: solid" in reply:
        assert scores[1][0] == 6 and scores[2][0] == 2
    if "Response #2" in reply:
        assert scores[2][0] == 9 and scores[1][0] == 5


def test_lone_score_for_one_candidate() -> None:
    assert parse_scores("Score: 7. Good.", 1)[0][1][0] == 7.0


@pytest.mark.anyio
async def test_best_score_wins_with_rationale() -> None:
    calls, complete = judge_says(
        '{"scores": [{"candidate": 1, "score": 6, "rationale": "terse"}, '
        '{"candidate": 2, "score": 2, "rationale": "wrong"}, {"candidate": 3, "score": 9, "rationale": "right"}]}'
    )
    result = await JudgeStrategy({"judge": "j"}).integrate(CANDS, ctx(complete))
    assert calls[0][0] == "j"
    user = calls[0][1][1]["content"]
    assert "How much {does} she make?" in user and "--- Candidate 3 ---\nAnswer: 18 {x}" in user
    assert result.winner == "c" and result.text == CANDS[2].text
    assert result.confidence == pytest.approx(0.9)
    assert result.evidence["rationale"] == "right"
    assert [s["score"] for s in result.evidence["scores"]] == [6, 2, 9]
    assert result.evidence["parsed_from"] == "json"


@pytest.mark.anyio
async def test_ties_go_to_the_first_and_unscored_are_listed() -> None:
    _, complete = judge_says("Candidate 2: Score: 8\nCandidate 3: Score: 8")
    result = await JudgeStrategy().integrate(CANDS, ctx(complete))
    assert result.winner == "b"
    assert result.evidence["unscored"] == ["a"]
    assert result.evidence["judge"] == "a"  # default: the first model


@pytest.mark.anyio
async def test_unparseable_reply_falls_back_to_voting() -> None:
    _, complete = judge_says("They all look fine to me!")
    result = await JudgeStrategy().integrate(CANDS, ctx(complete))
    assert result.evidence["fallback"] == "voting"
    assert "could not be parsed" in result.evidence["reason"]
    assert result.evidence["reply"] == "They all look fine to me!"
    assert result.winner == "a" and result.evidence["vote"]["winning_answer"] == "18"


@pytest.mark.anyio
async def test_failed_judge_falls_back_to_voting() -> None:
    _, complete = judge_says(CooperationError("strategy call to a failed: 503"))
    result = await JudgeStrategy().integrate(CANDS, ctx(complete))
    assert "judge call failed" in result.evidence["reason"]
    assert result.confidence == pytest.approx(2 / 3)


@pytest.mark.anyio
async def test_one_candidate_needs_no_judge() -> None:
    calls, complete = judge_says("unused")
    result = await JudgeStrategy().integrate(CANDS[:1], ctx(complete))
    assert calls == [] and result.winner == "a"
    with pytest.raises(CooperationError):
        await JudgeStrategy().integrate([], ctx(complete))


def test_messages_keep_braces() -> None:
    messages = judge_messages("{0} {name}", ["{}"])
    assert "{0} {name}" in messages[1]["content"] and "{}" in messages[1]["content"]


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "judge") is JudgeStrategy
