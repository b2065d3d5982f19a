"""Routing evaluation: loading labelled rows with located errors, and the report's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from coop import Analysis, ConfigError, Router
from coop._route_eval import RoutingReport, evaluate_routing, gold_tier, load_rows


class ScriptedRouter(Router):
    """Answers from a prompt → (task, tier) table; raises on the prompt "boom"."""

    name: ClassVar[str] = "scripted"

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        super().__init__()
        self.table = table

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        prompt = messages[-1]["content"]
        if prompt == "boom":
            raise RuntimeError("router bug")
        task, tier = self.table[prompt]
        return Analysis(task_type=task, complexity="simple", tier=tier)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(prompt: str, task: str, **extra: Any) -> str:
    return json.dumps({"prompt": prompt, "task_type": task, **extra}, ensure_ascii=False)


def test_load_rows_reads_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, [row("1+1?", "math"), "", row("你好", "chat", tier="light")])
    assert [r["prompt"] for r in load_rows(path)] == ["1+1?", "你好"]


@pytest.mark.parametrize(
    ("lines", "message", "line"),
    [
        ([row("a", "qa"), "{not json"], "invalid JSON", 2),
        ([row("a", "qa"), "[1, 2]"], "expected a JSON object", 2),
        (
            [row("a", "qa"), row("b", "qa"), json.dumps({"task_type": "qa"})],
            "missing field 'prompt'",
            3,
        ),
        ([json.dumps({"prompt": "a"})], "missing field 'task_type'", 1),
        ([row("a", "poetry")], "unknown task_type 'poetry'", 1),
        ([json.dumps({"prompt": "a", "tier": "huge"})], "unknown tier 'huge'", 1),
    ],
)
def test_load_rows_names_the_bad_line(
    tmp_path: Path, lines: list[str], message: str, line: int
) -> None:
    path = write(tmp_path, lines)
    with pytest.raises(ConfigError) as info:
        load_rows(path)
    assert message in str(info.value)
    assert info.value.line == line
    assert f"{path}:{line}" in str(info.value)


def test_load_rows_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rows(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no rows"):
        load_rows(empty)


def test_training_rows_need_a_task_type(tmp_path: Path) -> None:
    path = write(tmp_path, [row("a", "qa"), json.dumps({"prompt": "b", "tier": "light"})])
    assert len(load_rows(path)) == 2
    with pytest.raises(ConfigError, match="missing field 'task_type'") as info:
        load_rows(path, require_task_type=True)
    assert info.value.line == 2


def test_gold_tier_is_derived_from_the_task_type() -> None:
    assert gold_tier({"task_type": "code"}) == "reasoning"
    assert gold_tier({"task_type": "translation"}) == "light"
    assert gold_tier({"task_type": "qa", "tier": "complex"}) == "complex"
    assert gold_tier({}) is None


ROWS = [
    {"prompt": "m1", "task_type": "math"},
    {"prompt": "m2", "task_type": "math"},
    {"prompt": "c1", "task_type": "code"},
    {"prompt": "q1", "task_type": "qa"},
    {"prompt": "q2", "task_type": "qa"},
    {"prompt": "a1", "task_type": "analysis"},
    {"prompt": "t1", "tier": "light"},  # tier-only row
]
TABLE = {
    "m1": ("math", "reasoning"),
    "m2": ("qa", "light"),  # a missed reasoning row: fn
    "c1": ("code", "reasoning"),
    "q1": ("qa", "light"),
    "q2": ("reasoning", "reasoning"),  # fp
    "a1": ("analysis", "complex"),  # complex counts as "not reasoning": no fp
    "t1": ("chat", "light"),
}


def test_report_figures() -> None:
    report = evaluate_routing(ScriptedRouter(TABLE), ROWS)
    assert isinstance(report, RoutingReport)
    assert report.router == "scripted"
    assert (report.rows, report.typed_rows, report.task_correct) == (7, 6, 4)
    assert report.task_accuracy == pytest.approx(4 / 6)
    assert report.per_type["math"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert list(report.per_type) == ["math", "code", "qa", "analysis"]  # TASK_TYPES order
    assert report.confusion["qa"] == {"qa": 1, "reasoning": 1}
    r = report.reasoning
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert report.reasoning_f1 == pytest.approx(2 / 3)
    # Gold tiers are light/reasoning; a predicted complex on a light row is a tier miss.
    assert report.per_tier["light"]["n"] == 4 and report.per_tier["light"]["correct"] == 2
    assert report.predicted_tiers == {"reasoning": 3, "light": 3, "complex": 1}
    assert report.latency_ms["p50"] >= 0 and report.latency_ms["p99"] >= report.latency_ms["p50"]
    assert {m["row"] for m in report.misses} == {1, 4}


def test_router_errors_are_recorded_not_raised() -> None:
    report = evaluate_routing(ScriptedRouter(TABLE), [*ROWS, {"prompt": "boom", "task_type": "qa"}])
    assert report.errors == [{"row": 7, "error": "RuntimeError: router bug"}]
    assert report.confusion["qa"]["(error)"] == 1


def test_format_and_to_dict() -> None:
    report = evaluate_routing(ScriptedRouter(TABLE), ROWS)
    text = report.format()
    for needle in (
        "router scripted: 7 rows",
        "task type accuracy  0.667",
        "F1 0.667",
        "p50",
        "p99",
        "task type",
        "confusion (rows: gold, columns: predicted)",
        "analysis",
    ):
        assert needle in text
    data = report.to_dict()
    assert json.loads(json.dumps(data))["task_accuracy"] == pytest.approx(0.6667)
    assert data["reasoning"]["f1"] == pytest.approx(2 / 3)


def test_messages_rows_are_supported() -> None:
    rows = [{"messages": [{"role": "user", "content": "q1"}], "task_type": "qa"}]
    assert evaluate_routing(ScriptedRouter(TABLE), rows).task_correct == 1


def test_load_rows_keeps_unicode_line_separators_inside_a_prompt(tmp_path: Path) -> None:
    # Real MMLU prompts hold U+0085 and U+2028 literally; str.splitlines() cut such rows in two.
    prompt = "Choose one:\u0085A. 4\u2028B. 7\u2029C. 9"
    path = write(tmp_path, [row(prompt, "qa"), row("next", "chat")])
    assert "\u2028".encode() in path.read_bytes()
    assert [r["prompt"] for r in load_rows(path)] == [prompt, "next"]
