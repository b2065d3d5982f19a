"""Refine: draft, critique, improve; every step kept."""

from __future__ import annotations

from typing import Any

import pytest
from coop import Candidate, ConfigError, CooperationError, StrategyContext, load_plugins
from coop_refine import RefineStrategy


class Script:
    """Each model answers from its own queue of replies (or raises)."""

    def __init__(self, **replies: list[str | Exception]) -> None:
        self.replies = {m: list(r) for m, r in replies.items()}
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    async def complete(self, model: str, messages: list[dict[str, Any]]) -> str:
        self.calls.append((model, messages))
        reply = self.replies[model].pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def ctx(
    script: Script, models: list[str], settings: dict[str, Any] | None = None
) -> StrategyContext:
    return StrategyContext(
        query="Sum {a} and {b}: 2+2?",
        complete=script.complete,
        models=models,
        settings=settings or {},
    )


@pytest.mark.anyio
async def test_draft_critique_improve() -> None:
    script = Script(critic=["The sum is wrong: 2+2 is 4."], writer=["Answer: 4"])
    cands = [Candidate("writer", "Answer: 5"), Candidate("critic", "4")]
    result = await RefineStrategy().integrate(cands, ctx(script, ["writer", "critic"]))
    assert result.text == "Answer: 4" and result.winner == "writer"
    assert [s["role"] for s in result.evidence["steps"]] == ["draft", "critique", "improve"]
    assert result.evidence["rounds"] == 1
    critique_messages = script.calls[0][1]
    assert "Sum {a} and {b}: 2+2?" in critique_messages[1]["content"]
    assert "Draft answer:\nAnswer: 5" in critique_messages[1]["content"]
    improve_messages = script.calls[1][1]
    assert "Critique:\nThe sum is wrong" in improve_messages[1]["content"]


@pytest.mark.anyio
async def test_third_model_improves_and_rounds_repeat() -> None:
    script = Script(critic=["too short", "still vague"], editor=["v2", "v3"])
    cands = [Candidate("writer", "v1")]
    result = await RefineStrategy({"rounds": 2}).integrate(
        cands, ctx(script, ["writer", "critic", "editor"])
    )
    assert result.text == "v3" and result.winner == "editor"
    assert [m for m, _ in script.calls] == ["critic", "editor", "critic", "editor"]
    assert "Draft answer:\nv2" in script.calls[2][1][1]["content"]
    assert result.evidence["rounds"] == 2


@pytest.mark.anyio
async def test_no_issues_stops_early() -> None:
    script = Script(critic=["NO ISSUES"], writer=[])
    result = await RefineStrategy({"rounds": 3}).integrate(
        [Candidate("writer", "Answer: 4")], ctx(script, ["writer", "critic"])
    )
    assert result.text == "Answer: 4"
    assert "no issues in round 1" in result.evidence["stopped"]
    assert result.evidence["rounds"] == 0


@pytest.mark.anyio
async def test_drafter_asked_when_it_gave_no_candidate_and_failures_keep_the_draft() -> None:
    script = Script(writer=["draft from writer"], critic=[CooperationError("down")])
    result = await RefineStrategy().integrate([], ctx(script, ["writer", "critic"]))
    assert result.text == "draft from writer"
    assert "critique failed" in result.evidence["stopped"]
    assert result.evidence["steps"][-1]["error"] == "down"


@pytest.mark.anyio
async def test_one_model_critiques_itself() -> None:
    script = Script(solo=["fix the unit", "Answer: 4 m"])
    result = await RefineStrategy().integrate(
        [Candidate("solo", "Answer: 4")], ctx(script, ["solo"])
    )
    assert result.text == "Answer: 4 m"


@pytest.mark.anyio
async def test_bad_rounds_and_dead_drafter() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        await RefineStrategy({"rounds": 0}).integrate([Candidate("a", "x")], ctx(Script(), ["a"]))
    script = Script(writer=[CooperationError("down")])
    with pytest.raises(CooperationError, match="drafter writer failed"):
        await RefineStrategy().integrate([], ctx(script, ["writer", "critic"]))


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "refine") is RefineStrategy
