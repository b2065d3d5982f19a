"""Ensemble: an aggregator synthesises the candidates, optionally over several layers."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from coop import Candidate, ConfigError, CooperationError, StrategyContext, load_plugins
from coop_ensemble import EnsembleStrategy, aggregate_messages

QUERY = "Format {name} and {0} and {} literally; what is 2+2?"


class Upstream:
    """Scripted models: record every call, answer by model name."""

    def __init__(self, fail: set[str] | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail = fail or set()
        self.delay = delay
        self.running = 0
        self.peak = 0

    async def complete(self, model: str, messages: list[dict[str, Any]]) -> str:
        self.calls.append((model, messages))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await anyio.sleep(self.delay)
        finally:
            self.running -= 1
        if model in self.fail:
            raise CooperationError(f"strategy call to {model} failed: boom")
        return f"{model} says 4 (call {len(self.calls)})"


CANDS = [Candidate("a", "It is 4. {braces} stay"), Candidate("b", "Answer: 5"), Candidate("c", "4")]


def ctx(up: Upstream, settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(
        query=QUERY, complete=up.complete, models=["a", "b", "c"], settings=settings or {}
    )


@pytest.mark.anyio
async def test_aggregator_synthesises_numbered_candidates() -> None:
    up = Upstream()
    result = await EnsembleStrategy().integrate(CANDS, ctx(up))
    assert [m for m, _ in up.calls] == ["a"]  # default aggregator: the first model
    system, user = up.calls[0][1]
    assert user == {"role": "user", "content": QUERY}  # braces untouched
    assert "1. It is 4. {braces} stay" in system["content"]
    assert "2. Answer: 5" in system["content"] and "3. 4" in system["content"]
    assert "b" not in system["content"].split("Responses from models:")[1].replace("braces", "")
    assert result.text.startswith("a says 4")
    assert result.winner == "a"
    assert result.evidence["aggregator"] == "a"
    assert result.evidence["layers"] == [[{"model": c.model, "text": c.text} for c in CANDS]]


@pytest.mark.anyio
async def test_layers_run_every_model_in_parallel() -> None:
    up = Upstream(delay=0.05)
    settings = {"layers": 3, "aggregator": "c"}
    result = await EnsembleStrategy(settings).integrate(CANDS, ctx(up))
    models = [m for m, _ in up.calls]
    assert sorted(models[:3]) == ["a", "b", "c"] and sorted(models[3:6]) == ["a", "b", "c"]
    assert models[6] == "c" and len(models) == 7
    assert up.peak == 3  # each layer's calls overlap
    # Layer 3 sees layer 2's answers, not the original candidates.
    layer3 = up.calls[3][1][0]["content"]
    assert "says 4" in layer3 and "{braces}" not in layer3
    assert len(result.evidence["layers"]) == 3


@pytest.mark.anyio
async def test_failed_models_in_a_layer_are_skipped() -> None:
    up = Upstream(fail={"b"})
    result = await EnsembleStrategy({"layers": 2, "aggregator": "a"}).integrate(CANDS, ctx(up))
    layer2 = result.evidence["layers"][1]
    assert [("error" in r) for r in layer2] == [False, True, False]
    assert result.text.startswith("a says")


@pytest.mark.anyio
async def test_aggregator_failure_falls_back_to_voting() -> None:
    up = Upstream(fail={"a"})
    result = await EnsembleStrategy().integrate(CANDS, ctx(up))
    assert result.evidence["fallback"] == "voting"
    assert "aggregator a failed" in result.evidence["notes"][0]
    assert result.winner == "a" and result.text == CANDS[0].text  # 4 has two votes


@pytest.mark.anyio
async def test_bad_settings_and_no_candidates() -> None:
    with pytest.raises(ConfigError, match="layers"):
        await EnsembleStrategy({"layers": 0}).integrate(CANDS, ctx(Upstream()))
    with pytest.raises(CooperationError):
        await EnsembleStrategy().integrate([], ctx(Upstream()))


def test_messages_cut_long_responses() -> None:
    messages = aggregate_messages("q", ["x" * 50], max_chars=10)
    assert "1. xxxxxxxxxx [...]" in messages[0]["content"]


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "ensemble") is EnsembleStrategy
