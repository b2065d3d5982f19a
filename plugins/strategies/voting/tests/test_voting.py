"""The voting strategy: real votes over normalised answers, text agreement as fallback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from coop import Candidate, ConfigError, CooperationError, StrategyContext, load_plugins
from coop_voting import VotingStrategy, text_similarity, vote


async def _no_calls(model: str, messages: list[dict[str, Any]]) -> str:
    raise AssertionError("voting must not call models")


def ctx(settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(query="q", complete=_no_calls, settings=settings or {})


def cands(*texts: str, weights: Sequence[float] | None = None) -> list[Candidate]:
    ws = list(weights or [1.0] * len(texts))
    return [
        Candidate(model=f"m{i}", text=t, weight=w)
        for i, (t, w) in enumerate(zip(texts, ws, strict=True))
    ]


@pytest.mark.anyio
async def test_majority_over_normalised_answers() -> None:
    cs = cands(
        "so she pays 13 * 2 = $<<13*2=26>>26\nA: 26",
        "Work...\nThe answer is $1,200.",
        "1200.0 dollars",
        "答案是1200元",
    )
    result = await VotingStrategy().integrate(cs, ctx())
    assert result.winner == "m1"
    assert result.text == cs[1].text  # the full text of the first agreeing candidate
    assert result.confidence == pytest.approx(0.75)
    ev = result.evidence
    assert ev["method"] == "answer"
    assert ev["votes"] == {"26": 1.0, "1200": 3.0}
    assert [a["answer"] for a in ev["answers"]] == ["26", "1200", "1200", "1200"]
    assert ev["agreeing"] == ["m1", "m2", "m3"]
    assert ev["agreement"] == pytest.approx(0.75)


@pytest.mark.anyio
async def test_options_and_booleans_vote_too() -> None:
    result = await VotingStrategy().integrate(cands("(B)", "答案是B", "the answer is c"), ctx())
    assert result.evidence["votes"] == {"B": 2.0, "C": 1.0}
    result = await VotingStrategy().integrate(cands("Yes.", "是", "No, never."), ctx())
    assert result.evidence["winning_answer"] == "yes"


def test_ties_break_by_weight_then_order() -> None:
    # Equal weight, two answers tied: the first listed wins.
    r = vote(cands("A: 1", "A: 2"), majority="plurality")
    assert r.winner == "m0" and r.evidence["tie_break"] == "weight, then order"
    # A tie in total weight goes to the answer whose heaviest voter weighs most.
    r = vote(
        cands("A: 1", "A: 1", "A: 2"), weights={"m0": 1, "m1": 1, "m2": 2}, majority="plurality"
    )
    assert r.winner == "m2"


def test_absolute_majority_else_the_lead_decides() -> None:
    texts = ("A: 5", "A: 7", "A: 7", "A: 9")
    plural = vote(cands(*texts), majority="plurality")
    assert plural.evidence["winning_answer"] == "7"
    absolute = vote(cands(*texts))  # 2 of 4 is not more than half: m0 leads
    assert absolute.evidence["winning_answer"] == "5"
    assert "lead model m0" in absolute.evidence["tie_break"]
    # Three of four is a majority and overrules the lead.
    assert vote(cands("A: 5", "A: 7", "A: 7", "A: 7")).evidence["winning_answer"] == "7"
    # The lead is the heaviest candidate, not only the first.
    r = vote(cands(*texts, weights=[1, 1, 1, 1.5]))
    assert r.evidence["winning_answer"] == "9"


def test_candidates_without_answer_abstain() -> None:
    r = vote(cands("I cannot tell. " * 10, "A: 3", "Answer: 3"))
    assert r.evidence["abstained"] == ["m0"]
    assert r.evidence["votes"] == {"3": 2.0}
    assert r.confidence == pytest.approx(2 / 3)  # abstainers still count in the total


def test_free_text_falls_back_to_text_agreement_and_says_so() -> None:
    texts = (
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside plant cells.",
        "The mitochondria is where cells break sugar down and make energy for the organism to use.",
        "Inside plant cells, photosynthesis turns light, water and carbon dioxide into oxygen and sugar.",
    )
    r = vote(cands(*texts), threshold=0.5)
    assert r.evidence["method"] == "text-similarity"
    assert "no candidate has an extractable answer" in r.evidence["fallback"]
    assert r.winner == "m0" and r.evidence["agreeing"] == ["m0", "m2"]
    assert r.confidence == pytest.approx(2 / 3)
    r = vote(cands(*texts), threshold=0.5, similarity="ngram")
    assert r.evidence["agreeing"] == ["m0", "m2"]


def test_short_text_answers_cluster_by_similarity() -> None:
    r = vote(cands("Answer: The Eiffel Tower", "Answer: Eiffel Tower.", "Answer: Big Ben"))
    assert r.evidence["method"] == "answer"
    assert r.evidence["agreeing"] == ["m0", "m1"]


def test_text_similarity() -> None:
    assert text_similarity("a b c", "c b a") == 1.0
    assert text_similarity("a b", "c d") == 0.0
    assert text_similarity("", "") == 1.0
    assert text_similarity("中文答案", "中文回答") > 0.3
    assert text_similarity("hello world", "hello world", "ngram") == pytest.approx(1.0)


@pytest.mark.anyio
async def test_errors() -> None:
    with pytest.raises(CooperationError):
        await VotingStrategy().integrate([], ctx())
    with pytest.raises(ConfigError, match="majority"):
        await VotingStrategy({"majority": "most"}).integrate(cands("1"), ctx())
    with pytest.raises(ConfigError, match="threshold"):
        await VotingStrategy().integrate(cands("1"), ctx({"threshold": 2}))


@pytest.mark.anyio
async def test_settings_come_from_the_cooperation() -> None:
    texts = ("A: 5", "A: 7", "A: 7", "A: 9")
    r = await VotingStrategy().integrate(cands(*texts), ctx({"majority": "plurality"}))
    assert r.evidence["winning_answer"] == "7"
    r = await VotingStrategy().integrate(cands(*texts), ctx({"weights": {"m3": 5}}))
    assert r.evidence["winning_answer"] == "9"


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "voting") is VotingStrategy
