"""decision_support: schemas checked by code, answers asked again, figures computed by code.

The figures are checked by hand on a small matrix; the model calls run end to end through
the fake OpenAI upstream (scripted with ``answer_fn``) and, for the CLI, the embedded
simulated models in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coop
import jsonschema
import pytest
from coop import ServiceError, ServiceManager, SystemConfig, ValidationError
from coop_decision_support import (
    SCHEMAS,
    DecisionSupport,
    matrix_schema,
    merge,
    parse_json,
    score_matrix,
    score_risks,
    validate,
)
from fakes import FakeOpenAI
from test_gateway import PLUGINS, UPSTREAM_KEYS

# -- the hand-checked matrix ----------------------------------------------------------------
#
# cost weighs 3, quality 1: normalised 0.75 and 0.25.
#   A: 0.75*8 + 0.25*4 = 7.0    B: 0.75*5 + 0.25*9 = 6.0    C: 0.75*4 + 0.25*6 = 4.5
# Sensitivity of cost (the other weight keeps its share, so r_j = the quality score):
#   A-B = x*(8-5) + (1-x)*(4-9) = 8x - 5 = 0 at x = 0.625 (A-C: 6x - 2 = 0 at 1/3, farther)
#   change -0.125; raw weight with quality at 1: 0.625/0.375 * 1 = 1.6667 (-44.44% of 3)
# Sensitivity of quality (r_j = the cost score):
#   A-B = x*(4-9) + (1-x)*(8-5) = 3 - 8x = 0 at x = 0.375 (A-C: 4 - 6x at 2/3, farther)
#   change +0.125; raw weight with cost at 3: 0.375/0.625 * 3 = 1.8 (+80% of 1)
# Perturbation ±20%: cost 2.4 → A 6.82, B 6.18; quality 1.2 → A 6.86, B 6.14: stable.
# Perturbation ±50%: cost 1.5 → weights 0.6/0.4: A 6.4, B 6.6, C 4.8: B > A > C.

CRITERIA = [{"name": "cost", "weight": 3}, {"name": "quality", "weight": 1}]
OPTIONS = [
    {"name": "A", "scores": {"cost": 8, "quality": 4}},
    {"name": "B", "scores": {"cost": 5, "quality": 9}},
    {"name": "C", "scores": {"cost": 4, "quality": 6}},
]
MATRIX = {"criteria": CRITERIA, "options": OPTIONS}


def test_matrix_scores_ranking_and_sensitivity_by_hand() -> None:
    computed = score_matrix(CRITERIA, OPTIONS)
    assert computed["weights"] == {"cost": 0.75, "quality": 0.25}
    assert computed["scores"] == {"A": 7.0, "B": 6.0, "C": 4.5}
    assert [(r["rank"], r["option"]) for r in computed["ranking"]] == [(1, "A"), (2, "B"), (3, "C")]
    assert computed["top"] == "A" and not computed["tie_at_top"]
    assert computed["contributions"]["B"] == {"cost": 3.75, "quality": 2.25}
    cost, quality = computed["sensitivity"]
    assert cost == {
        "criterion": "cost",
        "weight": 0.75,
        "critical_weight": 0.625,
        "change": -0.125,
        "critical_raw_weight": 1.6667,
        "raw_change_pct": -44.4444,
        "new_top": "B",
    }
    assert quality == {
        "criterion": "quality",
        "weight": 0.25,
        "critical_weight": 0.375,
        "change": 0.125,
        "critical_raw_weight": 1.8,
        "raw_change_pct": 80.0,
        "new_top": "B",
    }
    stability = computed["stability"]
    assert stability["ranking_stable"] and stability["top_stable"]
    assert len(stability["trials"]) == 4


def test_stability_under_a_larger_perturbation_names_the_flip() -> None:
    stability = score_matrix(CRITERIA, OPTIONS, perturbation=0.5)["stability"]
    assert not stability["top_stable"]
    changed = [t for t in stability["trials"] if t["ranking_changed"]]
    assert [(t["criterion"], t["factor"], t["ranking"]) for t in changed] == [
        ("cost", 0.5, ["B", "A", "C"])
    ]


def test_a_dominant_option_is_robust_and_ties_share_a_rank() -> None:
    options = [
        {"name": "X", "scores": {"a": 9, "b": 9}},
        {"name": "Y", "scores": {"a": 5, "b": 5}},
        {"name": "Z", "scores": {"a": 5, "b": 5}},
    ]
    computed = score_matrix([{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], options)
    assert [s["critical_weight"] for s in computed["sensitivity"]] == [None, None]
    assert [(r["rank"], r["option"]) for r in computed["ranking"]] == [(1, "X"), (2, "Y"), (2, "Z")]


def test_risks_are_scored_and_sorted_by_code() -> None:
    risks = [
        {"risk": "r1", "likelihood": 2, "impact": 2, "mitigation": "m"},
        {"risk": "r2", "likelihood": 5, "impact": 4, "mitigation": "m"},
        {"risk": "r3", "likelihood": 3, "impact": 4, "mitigation": "m"},
        {"risk": "r4", "likelihood": 4, "impact": 3, "mitigation": "m"},
    ]
    scored = score_risks(risks)
    assert [(r["risk"], r["score"], r["level"], r["rank"]) for r in scored] == [
        ("r2", 20, "critical", 1),
        ("r3", 12, "high", 2),
        ("r4", 12, "high", 3),
        ("r1", 4, "low", 4),
    ]


# -- schemas ---------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "swot": {
        "strengths": ["team"],
        "weaknesses": ["cash"],
        "opportunities": ["market"],
        "threats": ["rival"],
    },
    "pros_cons": {
        "pros": [{"point": "faster", "weight": 4}, {"point": "cheaper", "weight": 2}],
        "cons": [{"point": "risky", "weight": 3}],
    },
    "strategic_options": {
        "options": [
            {
                "name": "Build",
                "description": "In house.",
                "advantages": ["control"],
                "disadvantages": ["slow"],
                "impact": 5,
                "feasibility": 2,
            },
            {
                "name": "Buy",
                "description": "A vendor.",
                "advantages": ["fast"],
                "disadvantages": ["lock-in"],
                "impact": 3,
                "feasibility": 5,
            },
        ],
        "recommendation": "Buy",
    },
    "decision_matrix": MATRIX,
    "risk": {"risks": [{"risk": "delay", "likelihood": 3, "impact": 4, "mitigation": "buffer"}]},
}

INVALID: dict[str, tuple[Any, str]] = {
    "swot": (
        {"strengths": ["a"], "weaknesses": [], "opportunities": "x"},
        "$: missing required key 'threats'",
    ),
    "pros_cons": (
        {"pros": [{"point": "a", "weight": 6}], "cons": [{"point": "", "weight": 1}]},
        "$.pros[0].weight: 6 is above the maximum 5",
    ),
    "strategic_options": (
        {"options": [{"name": "only", "description": "d"}]},
        "$.options: needs at least 2 item(s), got 1",
    ),
    "decision_matrix": (
        {
            "criteria": [{"name": "c", "weight": -1}],
            "options": [{"name": "A", "scores": {"c": 11}}],
        },
        "$.options[0].scores.c: 11 is above the maximum 10",
    ),
    "risk": (
        {"risks": [{"risk": "r", "likelihood": 2.5, "impact": "high", "mitigation": "m"}]},
        "$.risks[0].impact: expected an integer, got string 'high'",
    ),
}


@pytest.mark.parametrize("framework", sorted(VALID))
def test_each_frameworks_schema_accepts_valid_and_names_each_problem(framework: str) -> None:
    schema = SCHEMAS[framework]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert validate(VALID[framework], schema) == []
    jsonschema.validate(VALID[framework], schema)
    bad, expected = INVALID[framework]
    problems = validate(bad, schema)
    assert expected in problems, problems
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
    assert len(problems) == len(list(jsonschema.Draft202012Validator(schema).iter_errors(bad)))


def test_swot_and_matrix_problems_in_full() -> None:
    bad, _ = INVALID["swot"]
    assert validate(bad, SCHEMAS["swot"]) == [
        "$: missing required key 'threats'",
        "$.weaknesses: needs at least 1 item(s), got 0",
        "$.opportunities: expected an array, got string 'x'",
    ]
    narrowed = matrix_schema(["cost", "quality"], ["A", "B"])
    jsonschema.Draft202012Validator.check_schema(narrowed)
    answer = {
        "options": [{"name": "A", "scores": {"cost": 5, "speed": 3}}, {"name": "D", "scores": {}}]
    }
    assert validate(answer, narrowed) == [
        "$.options[0].scores: missing required key 'quality'",
        "$.options[0].scores: unexpected key 'speed' (valid: cost, quality)",
        '$.options[1].name: \'D\' is not one of "A", "B"',
        "$.options[1].scores: missing required key 'cost'",
        "$.options[1].scores: missing required key 'quality'",
    ]


def test_json_is_found_in_fences_and_prose() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == ({"a": 1}, None)
    assert parse_json('Here you go: {"a": [1, 2]} hope it helps') == ({"a": [1, 2]}, None)
    assert parse_json("[1, 2]") == ([1, 2], None)
    assert parse_json("no json here") == (None, "no JSON object in the answer")
    value, problem = parse_json('{"a": 1,, }')
    assert value is None and problem is not None and problem.startswith("not valid JSON")
    assert parse_json("  ") == (None, "the answer is empty")


def test_merge_unites_lists_and_says_who_proposed_what() -> None:
    merged = merge(
        "options",
        [
            (
                "m",
                {
                    "options": [
                        {"name": "Rent", "description": "r"},
                        {"name": "Buy", "description": "b"},
                    ]
                },
            ),
            (
                "big",
                {
                    "options": [
                        {"name": "buy ", "description": "b2"},
                        {"name": "Lease", "description": "l"},
                    ]
                },
            ),
        ],
    )
    assert [(o["name"], o["proposed_by"]) for o in merged["options"]] == [
        ("Rent", ["m"]),
        ("Buy", ["m", "big"]),
        ("Lease", ["big"]),
    ]
    swot = merge(
        "swot", [("m", VALID["swot"]), ("big", {**VALID["swot"], "threats": ["Rival", "tax"]})]
    )
    assert swot["threats"] == ["rival", "tax"]


# -- end to end through the fake upstream ---------------------------------------------------


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(up: FakeOpenAI) -> None:
    up.reset()


def config(up: FakeOpenAI) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                "fake": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": UPSTREAM_KEYS,
                    "timeout": 10,
                    "health_check_interval": 0,
                }
            },
            "models": {
                "m": {"endpoint": "fake", "path": "gpt-4o-mini", "tier": "light"},
                "big": {"endpoint": "fake", "path": "gpt-4o", "tier": "reasoning"},
            },
            "routing": {"light": "m", "reasoning": "big", "complex": "big"},
        }
    )


def bodies(up: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in up.requests if r.path.endswith("/chat/completions")]


def last_user(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


async def run(up: FakeOpenAI, content: str, **parameters: Any) -> coop.ServiceResponse:
    dispatcher = coop.Dispatcher(config(up), plugins=PLUGINS, health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        return await manager.process_request("decision_support", content, parameters)


@pytest.mark.anyio
async def test_a_model_built_matrix_is_ranked_by_code_and_narrated(up: FakeOpenAI) -> None:
    def answer(body: dict[str, Any]) -> str:
        if "Build a decision matrix" in last_user(body):
            return "Sure! Here is the matrix:\n```json\n" + json.dumps(MATRIX) + "\n```"
        return "A leads on cost; B would win if quality mattered more."

    up.answer_fn = answer
    response = await run(up, "Pick a database", analysis_framework="decision_matrix", model="m")
    assert response.success, response.error
    assert response.calls == 2 and response.models == ["m"]
    data = response.data
    assert data["source"] == "model" and data["attempts"] == {"decision_matrix": 1}
    assert [r["option"] for r in data["computed"]["ranking"]] == ["A", "B", "C"]
    assert data["computed"]["scores"] == {"A": 7.0, "B": 6.0, "C": 4.5}
    assert data["structure"]["criteria"] == [
        {"name": "cost", "weight": 3.0},
        {"name": "quality", "weight": 1.0},
    ]
    assert data["narrative"] == "A leads on cost; B would win if quality mattered more."
    assert "| 1 | A | 7 | 8 | 4 |" in response.result
    assert "| cost | 75% | 62.5% (-12.5 pts) | 1.667 (-44.4%) | B |" in response.result
    # the model is told the figures and never asked to compute them
    narration = last_user(bodies(up)[1])
    assert "| 2 | B | 6 | 5 | 9 |" in narration and "do not recompute" in narration


@pytest.mark.anyio
async def test_invalid_json_is_asked_again_once(up: FakeOpenAI) -> None:
    up.script("I think option A is best, honestly.", json.dumps(VALID["swot"]))
    response = await run(up, "Open a shop in Lyon?", analysis_framework="swot", narrate=False)
    assert response.success, response.error
    assert response.calls == 2 and response.data["attempts"] == {"swot": 2}
    assert response.data["computed"]["counts"] == {
        "strengths": 1,
        "weaknesses": 1,
        "opportunities": 1,
        "threats": 1,
    }
    second = bodies(up)[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "I think option A is best, honestly."}
    assert "no JSON object in the answer" in second[-1]["content"]


@pytest.mark.anyio
async def test_a_schema_violation_is_asked_again_with_the_problem(up: FakeOpenAI) -> None:
    bad = {"risks": [{"risk": "delay", "likelihood": 7, "impact": 4, "mitigation": "buffer"}]}
    up.script(json.dumps(bad), json.dumps(VALID["risk"]["risks"]))  # then a bare list: fine
    response = await run(up, "Move the datacenter", analysis_framework="risk", narrate=False)
    assert response.success, response.error
    assert response.calls == 2
    assert "$.risks[0].likelihood: 7 is above the maximum 5" in last_user(bodies(up)[1])
    assert response.data["computed"]["risks"][0]["score"] == 12
    assert "| 1 | delay | 3 | 4 | 12 | high | buffer |" in response.result


@pytest.mark.anyio
@pytest.mark.parametrize("retries", [0, 2])
async def test_a_model_that_never_answers_json_is_an_error(up: FakeOpenAI, retries: int) -> None:
    up.answer_fn = lambda body: "Let me think about it..."
    response = await run(
        up, "Rewrite in Rust?", analysis_framework="pros_cons", retries=retries, model="m"
    )
    assert not response.success and response.error_type == "ServiceError"
    assert response.result == "" and response.data == {}
    assert len(bodies(up)) == 1 + retries
    error = response.error or ""
    assert error.startswith(f"pros_cons: m gave no valid JSON answer in {1 + retries} attempt(s)")
    assert "no JSON object in the answer" in error and "pros, cons" in error


@pytest.mark.anyio
async def test_each_framework_end_to_end(up: FakeOpenAI) -> None:
    for framework in ("swot", "pros_cons", "strategic_options", "risk"):
        up.reset()
        up.script(json.dumps(VALID[framework]), "Commentary.")
        response = await run(up, "Should we expand?", analysis_framework=framework)
        assert response.success, (framework, response.error)
        assert response.calls == 2 and response.data["narrative"] == "Commentary."
        assert response.data["structure"] == VALID[framework]
        assert response.result.endswith("## Commentary\n\nCommentary.\n")
    computed = response.data["computed"]
    assert computed["risks"][0]["level"] == "high"
    up.reset()
    up.script(json.dumps(VALID["pros_cons"]))
    pros = await run(up, "x", analysis_framework="pros_cons", narrate=False)
    assert pros.data["computed"] == {
        "pros_weight": 6,
        "cons_weight": 3,
        "balance": 3,
        "pros_share": 0.6667,
        "verdict": "the pros outweigh the cons",
    }
    up.script(json.dumps(VALID["strategic_options"]))
    strategic = await run(up, "x", analysis_framework="strategic_options", narrate=False)
    assert strategic.data["computed"]["priorities"] == [
        {"option": "Buy", "impact": 3, "feasibility": 5, "priority": 15, "rank": 1},
        {"option": "Build", "impact": 5, "feasibility": 2, "priority": 10, "rank": 2},
    ]


@pytest.mark.anyio
async def test_options_from_a_two_model_cooperation(up: FakeOpenAI) -> None:
    proposals = {
        "gpt-4o-mini": [
            {"name": "Postgres", "description": "relational"},
            {"name": "MongoDB", "description": "documents"},
        ],
        "gpt-4o": [
            {"name": "postgres", "description": "the relational one"},
            {"name": "SQLite", "description": "embedded"},
        ],
    }
    scores = {"Postgres": (9, 6), "MongoDB": (6, 7), "SQLite": (7, 10)}

    def answer(body: dict[str, Any]) -> str:
        prompt = last_user(body)
        if "List the distinct options" in prompt:
            return json.dumps({"options": proposals[body["model"]]})
        if "Build a decision matrix" in prompt:
            assert body["model"] == "gpt-4o-mini"
            assert "Score exactly these options: Postgres, MongoDB, SQLite." in prompt
            return json.dumps(
                {
                    "criteria": [{"name": "features", "weight": 2}, {"name": "ops", "weight": 2}],
                    "options": [
                        {"name": n, "scores": {"features": f, "ops": o}}
                        for n, (f, o) in scores.items()
                    ],
                }
            )
        return "narration"

    up.answer_fn = answer
    response = await run(
        up, "Which database?", analysis_framework="decision_matrix", models="m,big", model="m"
    )
    assert response.success, response.error
    data = response.data
    assert data["source"] == "cooperation"
    assert data["cooperation"]["accepted"] == ["m", "big"] and data["cooperation"]["rejected"] == {}
    assert [(o["name"], o["proposed_by"]) for o in data["structure"]["options"]] == [
        ("Postgres", ["m", "big"]),
        ("MongoDB", ["m"]),
        ("SQLite", ["big"]),
    ]
    # equal weights: Postgres 7.5, MongoDB 6.5, SQLite 8.5
    assert data["computed"]["scores"] == {"Postgres": 7.5, "MongoDB": 6.5, "SQLite": 8.5}
    assert data["computed"]["top"] == "SQLite"
    assert response.calls == 3 and response.models[0] == "decision_support"
    assert sorted(b["model"] for b in bodies(up)[:2]) == ["gpt-4o", "gpt-4o-mini"]


@pytest.mark.anyio
async def test_a_cooperation_keeps_the_valid_members_and_asks_again_when_none_is(
    up: FakeOpenAI,
) -> None:
    answers = iter(["nope", "nope", json.dumps(VALID["swot"]), "garbage"])
    up.answer_fn = lambda body: next(answers)
    response = await run(
        up, "Open a shop?", analysis_framework="swot", models="m,big", narrate=False
    )
    assert response.success, response.error
    cooperation = response.data["cooperation"]
    assert response.data["attempts"] == {"swot": 2} and len(cooperation["accepted"]) == 1
    assert list(cooperation["rejected"].values()) == [
        "no JSON object in the answer (the answer begins 'garbage')"
    ]
    assert "The answers were not usable" in last_user(bodies(up)[2])


@pytest.mark.anyio
async def test_user_matrix_needs_no_model_for_structure(up: FakeOpenAI) -> None:
    response = await run(
        up,
        "Pick a database",
        analysis_framework="decision_matrix",
        options=json.dumps(OPTIONS),
        criteria=json.dumps(CRITERIA),
        narrate=False,
    )
    assert response.success and response.calls == 0 and bodies(up) == []
    assert response.data["source"] == "user"
    assert response.data["computed"]["scores"] == {"A": 7.0, "B": 6.0, "C": 4.5}
    # weights override, and Python/HTTP callers may pass lists and objects directly
    swapped = await run(
        up,
        "Pick a database",
        analysis_framework="decision_matrix",
        options=OPTIONS,
        weights={"cost": 1, "quality": 3},
        narrate=False,
    )
    assert swapped.success, swapped.error
    assert swapped.data["computed"]["top"] == "B"  # B: 0.25*5 + 0.75*9 = 8.0
    assert swapped.data["computed"]["scores"]["B"] == 8.0


@pytest.mark.anyio
async def test_user_options_are_scored_by_the_model_on_user_criteria(up: FakeOpenAI) -> None:
    def answer(body: dict[str, Any]) -> str:
        prompt = last_user(body)
        assert "Use exactly these criteria: cost, quality." in prompt
        assert 'Scores already known (keep them): {"A": {"cost": 8}}' in prompt
        return json.dumps(
            {
                "options": [
                    {"name": "A", "scores": {"cost": 1, "quality": 4}},
                    {"name": "B", "scores": {"cost": 5, "quality": 9}},
                ]
            }
        )

    up.answer_fn = answer
    response = await run(
        up,
        "Pick",
        analysis_framework="decision_matrix",
        options='[{"name": "A", "scores": {"cost": 8}}, "B"]',
        criteria='{"cost": 3, "quality": 1}',
        narrate=False,
    )
    assert response.success, response.error
    assert response.data["source"] == "user+model"
    # the user's score for A on cost (8) wins over the model's (1)
    assert response.data["structure"]["options"][0]["scores"] == {"cost": 8, "quality": 4}
    assert response.data["computed"]["scores"] == {"A": 7.0, "B": 6.0}


@pytest.mark.anyio
async def test_bad_input_is_a_clear_error(up: FakeOpenAI) -> None:
    cases = {
        "empty": ("  ", {}),
        "json": ("x", {"analysis_framework": "decision_matrix", "options": "[{'name': 'A'}"}),
        "framework": ("x", {"analysis_framework": "swat"}),
        "score": (
            "x",
            {
                "analysis_framework": "decision_matrix",
                "options": '[{"name": "A", "scores": {"c": 11}}, "B"]',
            },
        ),
        "unknown_weight": (
            "x",
            {
                "analysis_framework": "decision_matrix",
                "criteria": '["cost"]',
                "weights": '{"speed": 2}',
            },
        ),
        "wrong_framework": ("x", {"analysis_framework": "swot", "criteria": '["cost"]'}),
        "zero": ("x", {"analysis_framework": "decision_matrix", "criteria": '{"a": 0}'}),
        "retries": ("x", {"retries": 99}),
        "risks": ("x", {"analysis_framework": "risk", "risks": '[{"risk": "r", "likelihood": 9}]'}),
        "binary": (b"\xff\xfe\x00", {}),
    }
    errors = {}
    for name, (content, parameters) in cases.items():
        response = await run(up, content, **parameters)  # type: ignore[arg-type]
        assert not response.success and response.result == "", name
        errors[name] = response.error or ""
    assert bodies(up) == []
    assert "content is empty" in errors["empty"]
    assert errors["json"].startswith("options: not valid JSON")
    assert "strategic_options, swot, pros_cons, decision_matrix, risk" in errors["framework"]
    assert errors["score"] == "options: $[0].scores.c: 11 is above the maximum 10"
    assert errors["unknown_weight"] == "weights: unknown criterion 'speed'; the criteria are cost"
    assert errors["wrong_framework"].startswith(
        "criteria: only used by analysis_framework=decision_matrix"
    )
    assert errors["zero"].startswith("criteria: the weights add up to 0")
    assert errors["retries"].startswith("retries: must be between 0 and 10")
    assert "risks: $[0]: missing required key 'impact'" in errors["risks"]
    assert "not a binary file" in errors["binary"]
    with pytest.raises(ValidationError) as info:
        DecisionSupport.validate({"analysis_framework": "swat"})
    assert info.value.field == "analysis_framework"


@pytest.mark.anyio
async def test_run_raises_the_service_error(up: FakeOpenAI) -> None:
    up.answer_fn = lambda body: "{}"
    dispatcher = coop.Dispatcher(config(up), plugins=PLUGINS, health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        with pytest.raises(
            ServiceError, match=r"swot: .* in 2 attempt\(s\); last problem: \$: missing"
        ):
            await manager.run("decision_support", "x", {"analysis_framework": "swot", "retries": 1})


# -- the CLI on the embedded simulated models -----------------------------------------------


def test_cli_scores_a_user_matrix_and_the_model_only_narrates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".xdg")
    env["XDG_DATA_HOME"] = str(tmp_path / ".data")
    argv = [
        sys.executable,
        "-m",
        "coop",
        "service",
        "decision_support",
        "--content",
        "Which database should we pick?",
        "--param",
        "analysis_framework=decision_matrix",
        "--param",
        "options=" + json.dumps(OPTIONS),
        "--param",
        "criteria=" + json.dumps(CRITERIA),
        "--json",
    ]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] and body["calls"] == 1
    data = body["data"]
    assert data["source"] == "user" and data["attempts"] == {}
    assert [r["option"] for r in data["computed"]["ranking"]] == ["A", "B", "C"]
    assert data["computed"]["sensitivity"][0]["critical_weight"] == 0.625
    assert data["narrative"].startswith("[simulated ")
    assert "| 1 | A | 7 | 8 | 4 |" in body["result"]
    bad = subprocess.run(
        [*argv[:9], "--param", "options=[oops"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "options: not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr
