"""Weighted voting: configured, persisted and learned weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from coop import Candidate, ConfigError, StrategyContext, load_plugins
from coop_weighted import WeightedStrategy, learn_weights, load_weights, save_weights


async def _no_calls(model: str, messages: list[dict[str, Any]]) -> str:
    raise AssertionError("weighted voting must not call models")


def ctx(settings: dict[str, Any] | None = None) -> StrategyContext:
    return StrategyContext(query="q", complete=_no_calls, settings=settings or {})


CANDS = [
    Candidate("strong", "A: 10"),
    Candidate("weak1", "A: 12"),
    Candidate("weak2", "The answer is 12."),
]


@pytest.mark.anyio
async def test_configured_weights_decide_and_are_reported() -> None:
    strategy = WeightedStrategy({"weights": {"strong": 3.0, "weak1": 1.0, "weak2": 1.0}})
    result = await strategy.integrate(CANDS, ctx())
    assert result.winner == "strong"
    assert result.confidence == pytest.approx(0.6)
    assert result.evidence["weights"] == {"strong": 3.0, "weak1": 1.0, "weak2": 1.0}
    assert result.evidence["weights_source"] == "settings"
    # Without weights the candidates' own (equal) weights apply: two beat one.
    result = await WeightedStrategy().integrate(CANDS, ctx())
    assert result.winner == "weak1"
    assert result.evidence["weights_source"] == "candidate weights"


@pytest.mark.anyio
async def test_default_weight_for_unlisted_models() -> None:
    strategy = WeightedStrategy({"weights": {"strong": 1.5}, "default_weight": 0.5})
    result = await strategy.integrate(CANDS, ctx())
    assert result.winner == "strong"  # 1.5 > 0.5 + 0.5


@pytest.mark.anyio
async def test_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    save_weights(path, {"strong": 4.0, "weak1": 1.0}, source="test")
    assert json.loads(path.read_text())["source"] == "test"
    assert load_weights(path) == {"strong": 4.0, "weak1": 1.0}
    result = await WeightedStrategy({"weights_file": str(path)}).integrate(CANDS, ctx())
    assert result.winner == "strong"
    assert result.evidence["weights"]["weak2"] == 1.0  # not in the file: candidate weight
    # Settings win over the file.
    settings = {"weights_file": str(path), "weights": {"strong": 0.1}}
    result = await WeightedStrategy(settings).integrate(CANDS, ctx())
    assert result.winner == "weak1"
    assert result.evidence["weights_source"] == f"file {path.name} + settings"


def test_save_weights_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"weights": {"old": 1.0}}')
    path.chmod(0o640)
    save_weights(path, {"new": 2.0})
    assert load_weights(path) == {"new": 2.0}
    assert path.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]  # no temp file left


def test_bad_weights_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_weights(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not JSON"):
        load_weights(bad)
    bad.write_text('{"weights": {"a": "heavy"}}')
    with pytest.raises(ConfigError, match="expected"):
        load_weights(bad)


@pytest.mark.anyio
async def test_non_numeric_setting_weight() -> None:
    with pytest.raises(ConfigError, match="weight of 'strong'"):
        await WeightedStrategy({"weights": {"strong": "high"}}).integrate(CANDS, ctx())


def test_learn_weights_is_laplace_smoothed_log_odds() -> None:
    records = [("a", True)] * 3 + [("a", False)] + [("b", True), ("b", False), ("b", False)]
    weights = learn_weights(records, offset=0.0, min_weight=-math.inf)
    assert weights["a"] == pytest.approx(math.log((4 / 6) / (2 / 6)))  # p = (3+1)/(4+2)
    assert weights["b"] == pytest.approx(math.log((2 / 5) / (3 / 5)))  # p = (1+1)/(3+2)
    # Floored at min_weight (0): a below-even model never votes against an answer.
    assert learn_weights(records, offset=0.0)["b"] == 0.0
    # A model never seen wrong is still not trusted absolutely.
    assert math.isfinite(learn_weights([("c", True)], offset=0.0)["c"])
    assert learn_weights([]) == {}
    # Mappings work too; without questions "auto" means offset 0.
    mapped = learn_weights([{"model": "a", "correct": True}, {"model": "a", "correct": False}])
    assert mapped == {"a": 0.0}


def _records(questions: int, strong_right: int) -> list[dict[str, Any]]:
    """The strong model is right on the first ``strong_right`` questions; on the
    others the two weak models agree on the right answer (and scatter otherwise)."""
    records: list[dict[str, Any]] = []
    for q in range(questions):
        strong = q < strong_right
        records.append(
            {"question": q, "model": "strong", "answer": "1" if strong else "2", "correct": strong}
        )
        for m in ("weak1", "weak2"):
            answer = "1" if not strong else str(100 * len(records) + q)
            records.append({"question": q, "model": m, "answer": answer, "correct": not strong})
    return records


def test_auto_offset_trusts_agreement_when_the_records_show_it_pays() -> None:
    # Plain log-odds (offset 0) always follow the strong model; a positive offset
    # lets the agreeing weak pair win, which these records show is right.
    weights = learn_weights(_records(30, 21))
    assert weights["weak1"] + weights["weak2"] > weights["strong"] > weights["weak1"]


def test_auto_offset_needs_more_than_luck() -> None:
    # The same pattern on 10 questions (3 fixed, 0 broken) is not significant.
    weights = learn_weights(_records(10, 7))
    assert weights == learn_weights(_records(10, 7), offset=0.0)
    assert weights["weak1"] == 0.0
    # A lower bar lets it through.
    loose = learn_weights(_records(10, 7), significance=1.0)
    assert loose["weak1"] + loose["weak2"] > loose["strong"]


def test_learn_returns_settings() -> None:
    assert WeightedStrategy.learn([{"model": "a", "correct": True}]) == {
        "weights": {"a": pytest.approx(math.log(2))}
    }


def test_registered_through_the_entry_point() -> None:
    assert load_plugins().get("strategy", "weighted") is WeightedStrategy


def test_honours_tools_and_response_format() -> None:
    assert WeightedStrategy.honours == {"tools", "response_format"}


@pytest.mark.anyio
async def test_tool_calls_and_json_vote_by_weight() -> None:
    def call(city: str) -> list[dict[str, Any]]:
        args = json.dumps({"city": city})
        return [{"id": "c", "type": "function", "function": {"name": "w", "arguments": args}}]

    cands = [
        Candidate("strong", "", tool_calls=call("Paris")),
        Candidate("weak1", "", tool_calls=call("Rome")),
        Candidate("weak2", "", tool_calls=[{**call("Rome")[0], "id": "other"}]),
    ]
    strategy = WeightedStrategy({"weights": {"strong": 3.0, "weak1": 1.0, "weak2": 1.0}})
    result = await strategy.integrate(cands, ctx())
    assert result.winner == "strong"
    assert result.evidence["method"] == "tool-calls"
    assert result.evidence["votes"] == {
        'tool: w({"city":"Paris"})': 3.0,
        'tool: w({"city":"Rome"})': 2.0,
    }
    json_cands = [
        Candidate("strong", '{"a": 1, "b": 2}'),
        Candidate("weak1", '{"b": 2, "a": 1}'),
        Candidate("weak2", '{"a": 2}'),
    ]
    context = StrategyContext(
        query="q", complete=_no_calls, response_format={"type": "json_object"}
    )
    result = await WeightedStrategy({"weights": {"weak2": 5.0}}).integrate(json_cands, context)
    assert result.evidence["method"] == "json"
    assert result.winner == "weak2" and result.text == '{"a": 2}'
