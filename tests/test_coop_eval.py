"""Cooperation evaluation on recorded answers, including the GSM8K evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from coop import ConfigError, UnknownPluginError, ValidationError, extract_answer
from coop._coop_eval import evaluate_voting, load_rows

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
GSM4 = DATA / "gsm8k_solutions_dev.jsonl"
GSM6 = DATA / "gsm8k_solutions6_dev.jsonl"
FOUR = ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]
SIX = [*FOUR, "mixtral_8x7b", "gpt4_1106"]

ROWS = [
    {
        "question": "q0",
        "ground_truth": "A: 18",
        "a": "A: 18",
        "b": "$18",
        "c": {"solution": "A: 7", "is_correct": False},
    },
    {
        "question": "q1",
        "ground_truth": "A: 5",
        "a": "A: 4",
        "b": "5.0",
        "c": {"solution": "#### 5", "is_correct": True},
    },
    {
        "question": "q2",
        "answer": "1,200",
        "a": "A: 1200",
        "b": "12",
        "c": {"solution": "1200", "is_correct": False},
    },
    {
        "question": "q3",
        "ground_truth": "A: 3",
        "a": "A: 3",
        "b": "3",
        "c": {"solution": "A: 2", "is_correct": False},
    },
]


@pytest.mark.anyio
async def test_report_on_small_rows() -> None:
    report = await evaluate_voting(ROWS, ["a", "b", "c"], "voting", folds=2)
    assert report.questions == 4
    assert {m: s.correct for m, s in report.singles.items()} == {"a": 3, "b": 3, "c": 2}
    # c's label on q2 says wrong but 1200 is right: extraction disagrees once out of four.
    assert report.singles["c"].label_agreement == pytest.approx(0.75)
    assert report.singles["a"].label_agreement is None
    assert report.correct == 4
    assert report.accuracy == 1.0
    assert report.best_single.model == "a"
    data = report.to_dict(rows=True)
    json.dumps(data)  # JSON-friendly
    assert data["gain_over_best_single"] == pytest.approx(0.25)
    assert data["rows"][1]["answers"] == {"a": "4", "b": "5", "c": "5"}
    assert data["disagreements"] == [
        {"index": 2, "model": "c", "label": False, "extracted": "1200", "truth": "1200"}
    ]
    text = report.format()
    assert "voting (integrated)" in text and "100.0%" in text
    assert "extraction agrees with labels on 75.0%" in text


@pytest.mark.anyio
async def test_given_order_and_strategy_objects() -> None:
    from coop_voting import VotingStrategy

    report = await evaluate_voting(
        ROWS, ["c", "a", "b"], VotingStrategy({"majority": "plurality"}), order="given"
    )
    assert report.learned[0]["order"] == ["c", "a", "b"]
    report = await evaluate_voting(ROWS, ["a", "b"], VotingStrategy, order="given", folds=1)
    assert report.folds == 1


@pytest.mark.anyio
async def test_bad_input() -> None:
    with pytest.raises(ValidationError, match="no models"):
        await evaluate_voting(ROWS, [])
    with pytest.raises(ValidationError, match="distinct"):
        await evaluate_voting(ROWS, ["a", "a"])
    with pytest.raises(ValidationError, match="folds"):
        await evaluate_voting(ROWS, ["a", "b"], folds=1)
    with pytest.raises(ValidationError, match="reference"):
        await evaluate_voting([{"a": "1"}], ["a"], order="given", folds=1)
    with pytest.raises(UnknownPluginError, match="votin"):
        await evaluate_voting(ROWS, ["a"], "votin")


@pytest.mark.anyio
async def test_cost_and_latency_when_recorded() -> None:
    rows = [
        {
            "answer": "3",
            "a": {"text": "3", "latency": 1.0, "cost": 0.01},
            "b": {"text": "3", "latency": 3.0},
        },
        {
            "answer": "4",
            "a": {"text": "4", "latency": 2.0, "cost": 0.02},
            "b": {"text": "5", "latency": 1.0},
        },
    ]
    report = await evaluate_voting(rows, ["a", "b"], order="given", folds=1)
    assert report.singles["a"].cost == pytest.approx(0.03)
    text = report.format()
    assert "mean latency 1.50s, cost $0.0300" in text
    assert "cost $0.0300, latency >= 2.00s" in text


def test_load_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"b": 2}\n')
    assert load_rows(path) == [{"a": 1}, {"b": 2}]
    path.write_text("{nope\n")
    with pytest.raises(ConfigError, match=r"rows\.jsonl:1"):
        load_rows(path)
    path.write_text('{"q": "a\u0085b\u2028c", "answer": 1}\n', encoding="utf-8")  # raw U+0085
    assert load_rows(path) == [{"q": "a\u0085b\u2028c", "answer": 1}]
    path.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match=r"rows\.jsonl:1"):
        load_rows(path)


needs_gsm4 = pytest.mark.skipif(not GSM4.exists(), reason=f"{GSM4} absent")
needs_gsm6 = pytest.mark.skipif(not GSM6.exists(), reason=f"{GSM6} absent")


@needs_gsm6
@pytest.mark.anyio
async def test_gsm8k_extraction_agrees_with_labels() -> None:
    report = await evaluate_voting(load_rows(GSM6), SIX, "voting")
    for model in FOUR:
        assert report.singles[model].label_agreement == 1.0, model
    # gpt4's and mixtral's disagreements are all RouteLLM's grader missing a right answer
    # ("$16.00", "pays $64 for the 16 glasses"): extraction never calls a wrong one right.
    assert report.singles["mixtral_8x7b"].label_agreement >= 0.99
    assert report.singles["gpt4_1106"].label_agreement >= 0.88
    assert report.label_agreement is not None and report.label_agreement >= 0.98
    rows = load_rows(GSM6)
    for row in report.rows:
        for model in ("mixtral_8x7b", "gpt4_1106"):
            if row.answers[model] == row.truth:
                continue
            assert not rows[row.index][model]["is_correct"], (row.index, model)


@needs_gsm4
@pytest.mark.anyio
async def test_gsm8k_majority_of_four_matches_the_best_single_model() -> None:
    report = await evaluate_voting(load_rows(GSM4), FOUR, "voting")
    print(report.format())
    assert report.accuracy >= report.best_single.accuracy
    assert report.label_agreement == 1.0


def _plain_plurality(rows: list[dict[str, Any]], models: list[str]) -> float:
    """Share of rows whose most common extracted answer is right, a tie counting as wrong."""
    right = 0
    for row in rows:
        truth = extract_answer(row["ground_truth"])
        question = row.get("question")
        counts: Counter[str] = Counter()
        for m in models:
            answer = extract_answer(row[m]["solution"], question=question)
            if answer is not None:
                counts[str(answer)] += 1
        top = counts.most_common()
        if top and (len(top) == 1 or top[0][1] > top[1][1]):
            right += top[0][0] == str(truth)
    return right / len(rows)


def _orders(models: list[str]) -> list[list[str]]:
    """Each rotation of the list (each model first once), and the list reversed."""
    return [models[i:] + models[:i] for i in range(len(models))] + [models[::-1]]


@needs_gsm4
def test_gsm8k_default_voting_keeps_the_plurality_whatever_the_order() -> None:
    # One event loop is enough here (no I/O), and the GSM8K rows are slow to extract.
    anyio.run(_default_voting_keeps_the_plurality)


async def _default_voting_keeps_the_plurality() -> None:
    rows = load_rows(GSM4)
    plain = _plain_plurality(rows, FOUR)
    assert plain == pytest.approx(64 / 150)  # 42.7%
    singles = (await evaluate_voting(rows, FOUR, "voting", order="given", folds=1)).singles
    weakest_first = sorted(FOUR, key=lambda m: singles[m].accuracy)
    # The old default, "absolute": with no majority the first listed (the weakest) decided.
    absolute = await evaluate_voting(
        rows, weakest_first, "voting", settings={"majority": "absolute"}, order="given", folds=1
    )
    assert absolute.accuracy < plain  # 31.3%
    scores = set()
    for models in _orders(weakest_first):
        # Taken as listed, the order only breaks ties (equal weights: the first listed
        # wins them), so no order falls below the plain plurality: 44.0% weakest first.
        listed = await evaluate_voting(rows, models, "voting", order="given", folds=1)
        assert listed.accuracy >= plain, models
        # As `coop eval cooperation` runs it (most accurate first, learned out of fold),
        # the order of listing does not change the score at all.
        scores.add((await evaluate_voting(rows, models, "voting")).accuracy)
    assert len(scores) == 1
    assert scores.pop() >= singles[weakest_first[-1]].accuracy  # 55.3%, the best single


@needs_gsm6
@pytest.mark.anyio
async def test_gsm8k_learned_weights_over_six_match_gpt4() -> None:
    report = await evaluate_voting(load_rows(GSM6), SIX, "weighted", folds=5)
    print(report.format())
    assert report.best_single.model == "gpt4_1106"
    assert report.accuracy >= report.best_single.accuracy
    assert all("weights" in fold for fold in report.learned)


def _coop(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``coop`` script, run as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "COOP_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    coop = Path(sys.executable).parent / "coop"
    return subprocess.run(
        [str(coop), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


#: ``strong`` is always right; ``weak1`` and ``weak2`` agree on a wrong answer twice.
SAVE_ROWS = [
    {"question": "q0", "answer": "1", "strong": "A: 1", "weak1": "A: 9", "weak2": "A: 9"},
    {"question": "q1", "answer": "2", "strong": "A: 2", "weak1": "A: 8", "weak2": "A: 8"},
    {"question": "q2", "answer": "3", "strong": "A: 3", "weak1": "A: 3", "weak2": "A: 7"},
    {"question": "q3", "answer": "4", "strong": "A: 4", "weak1": "A: 6", "weak2": "A: 4"},
    {"question": "q4", "answer": "5", "strong": "A: 5", "weak1": "A: 1", "weak2": "A: 2"},
]

SAVE_CONFIG = """
[endpoints.recorded]
provider = "replay"
options = { file = "recordings.jsonl" }

[models.strong]
endpoint = "recorded"
path = "strong"

[models.weak1]
endpoint = "recorded"
path = "weak1"

[models.weak2]
endpoint = "recorded"
path = "weak2"

[cooperations.learned]
mode = "parallel"
models = ["weak1", "weak2", "strong"]
strategy = "weighted"
options = { weights_file = "weights.json" }

[cooperations.unweighted]
mode = "parallel"
models = ["weak1", "weak2", "strong"]
strategy = "weighted"
"""


def test_eval_cooperation_saves_learned_weights_for_weights_file(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in SAVE_ROWS))
    result = _coop(
        tmp_path, "eval", "cooperation", "rows.jsonl", "--models", "strong,weak1,weak2",
        "--strategy", "weighted", "--save", "weights.json", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # the report stays plain JSON on stdout
    assert "saved weights learned on all 5 rows to weights.json" in result.stderr
    saved = json.loads((tmp_path / "weights.json").read_text())
    assert saved["strategy"] == "weighted" and saved["models"] == ["strong", "weak1", "weak2"]
    # The weights are those learned on all the rows, in save_weights' format.
    from coop_weighted import WeightedStrategy, learn_weights, load_weights

    records = [
        {"question": i, "model": m, "answer": r[m], "correct": r[m] == f"A: {r['answer']}"}
        for i, r in enumerate(SAVE_ROWS)
        for m in ("strong", "weak1", "weak2")
    ]
    assert load_weights(tmp_path / "weights.json") == pytest.approx(learn_weights(records))
    assert WeightedStrategy.learn(records)["weights"] == pytest.approx(saved["weights"])
    weights = saved["weights"]
    assert weights["strong"] > weights["weak1"] + weights["weak2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    # A cooperation reads them through options.weights_file: the weak pair no longer wins.
    (tmp_path / "coop.toml").write_text(SAVE_CONFIG)
    recordings = [("strong", "A: 10"), ("weak1", "A: 12"), ("weak2", "The answer is 12.")]
    (tmp_path / "recordings.jsonl").write_text(
        "".join(json.dumps({"model": m, "prompt": "q5", "text": t}) + "\n" for m, t in recordings)
    )
    learned = _coop(tmp_path, "cooperate", "--cooperation", "learned", "q5", "--json")
    assert learned.returncode == 0, learned.stderr
    evidence = json.loads(learned.stdout)["evidence"]
    assert evidence["weights_source"] == "file weights.json"
    assert evidence["weights"] == pytest.approx(weights)
    assert evidence["winning_answer"] == "10"
    plain = _coop(tmp_path, "cooperate", "--cooperation", "unweighted", "q5", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["evidence"]["winning_answer"] == "12"


def test_eval_cooperation_save_needs_a_strategy_that_learns(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in SAVE_ROWS))
    args = ("eval", "cooperation", "rows.jsonl", "--models", "strong,weak1,weak2")
    result = _coop(tmp_path, *args, "--strategy", "voting", "--save", "w.json")
    assert result.returncode == 2
    assert "--save" in result.stderr and "'voting' learns nothing" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "w.json").exists()
    result = _coop(tmp_path, *args, "--strategy", "weighted", "--save", "nowhere/w.json")
    assert result.returncode == 2 and "--save: no such folder: nowhere" in result.stderr
    assert result.stdout == ""


@pytest.mark.anyio
async def test_learn_settings_and_save_learned(tmp_path: Path) -> None:
    from coop._coop_eval import learn_settings, save_learned

    learned = learn_settings(SAVE_ROWS, ["strong", "weak1", "weak2"], "weighted")
    assert set(learned) == {"weights"}
    with pytest.raises(ValidationError, match="'voting' learns nothing"):
        learn_settings(SAVE_ROWS, ["strong"], "voting")
    path = tmp_path / "s.json"
    save_learned(path, learned, weights="ignored", note="meta")
    assert json.loads(path.read_text()) == {**learned, "note": "meta"}  # learned keys win
    with pytest.raises(ConfigError, match="cannot write"):
        save_learned(tmp_path / "missing" / "s.json", learned)
