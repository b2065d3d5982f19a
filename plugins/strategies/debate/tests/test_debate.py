"""Debate: rounds of mutual revision within a time budget, then a vote."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from coop import Candidate, ConfigError, CooperationError, StrategyContext, load_plugins
from coop_debate import DebateStrategy, debate_messages


class Debaters:
    """Models that adopt the answer most others gave (or stay), with optional delay/failure."""

    def __init__(self, *, delay: float = 0.0, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.delay, self.fail = delay, fail or set()

    async def complete(self, model: str, messages: list[dict[str, Any]]) -> str:
        self.calls.append((model, messages))
        await anyio.sleep(self.delay)
        if model in self.fail:
            raise CooperationError(f"{model} down")
        others = messages[2]["content"]
        if others.count("Answer: 18") >= 1:
            return f"{model}: I agree after checking.\nAnswer: 18"
        return messages[1]["content"]


CANDS = [Candidate("a", "Answer: 18"), Candidate("b", "Answer: 26"), Candidate("c", "Answer: 18")]


def ctx(d: Debaters, settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(
        query="Eggs {per} day?",
        complete=d.complete,
        models=["a", "b", "c"],
        settings=settings or {},
    )


@pytest.mark.anyio
async def test_models_see_each_other_and_revise_then_vote() -> None:
    d = Debaters()
    result = await DebateStrategy().integrate(CANDS, ctx(d))
    assert len(d.calls) == 6  # 3 models x 2 rounds
    first_b = next(m for model, m in d.calls if model == "b")
    assert first_b[0] == {"role": "user", "content": "Eggs {per} day?"}
    assert first_b[1] == {"role": "assistant", "content": "Answer: 26"}
    assert first_b[2]["content"].count("One agent's solution:") == 2
    assert "Answer: 26" not in first_b[2]["content"]  # its own answer is not among the others
    assert result.evidence["completed_rounds"] == 2
    assert result.evidence["vote"]["votes"] == {"18": 3.0}
    assert result.confidence == 1.0
    assert len(result.evidence["rounds"]) == 3
    assert "timed_out" not in result.evidence


@pytest.mark.anyio
async def test_time_budget_bounds_the_debate() -> None:
    d = Debaters(delay=5)
    started = time.perf_counter()
    result = await DebateStrategy({"time_budget": 0.2}).integrate(CANDS, ctx(d))
    assert time.perf_counter() - started < 2
    assert "ran out after 0 complete round" in result.evidence["timed_out"]
    assert result.evidence["vote"]["votes"] == {"18": 2.0, "26": 1.0}  # the initial answers
    assert result.winner == "a"


@pytest.mark.anyio
async def test_failing_model_keeps_its_previous_answer() -> None:
    d = Debaters(fail={"b"})
    result = await DebateStrategy({"rounds": 1}).integrate(CANDS, ctx(d))
    assert result.evidence["rounds"][1][1] == {"model": "b", "error": "b down", "kept": True}
    assert result.evidence["vote"]["votes"] == {"18": 2.0, "26": 1.0}


@pytest.mark.anyio
async def test_zero_rounds_or_one_candidate_is_just_a_vote() -> None:
    d = Debaters()
    result = await DebateStrategy({"rounds": 0}).integrate(CANDS, ctx(d))
    assert d.calls == [] and result.winner == "a"
    result = await DebateStrategy().integrate(CANDS[:1], ctx(d))
    assert d.calls == [] and "nobody to debate" in result.evidence["note"]


@pytest.mark.anyio
async def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        await DebateStrategy({"rounds": -1}).integrate(CANDS, ctx(Debaters()))
    with pytest.raises(ConfigError, match="time_budget"):
        await DebateStrategy({"time_budget": "soon"}).integrate(CANDS, ctx(Debaters()))
    with pytest.raises(CooperationError):
        await DebateStrategy().integrate([], ctx(Debaters()))


def test_messages_keep_braces() -> None:
    messages = debate_messages("{q}", "{own}", ["{x}"])
    assert messages[0]["content"] == "{q}" and "{x}" in messages[2]["content"]


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "debate") is DebateStrategy
