"""The ``outcome`` router: learns from recorded outcomes when the cheap model will do."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from coop import ConfigError, outcome_curve
from coop_outcome import OutcomeModel, OutcomeRouter, cross_validate, read_outcome_rows, train

EASY = ["geography", "capital", "river", "colour", "animal", "history", "poem", "city"]
HARD = ["quantum", "tensor", "eigenvalue", "integral", "entropy", "lattice", "proof", "manifold"]
FILLER = ["which", "of", "the", "following", "is", "true", "about", "a", "an", "given"]


def synthetic(n: int, seed: int = 1) -> list[dict]:
    """Prompts on easy or hard topics: the weak model fails most hard ones, 10% label noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        hard = rng.random() < 0.35
        words = rng.sample(FILLER, 5) + rng.sample(HARD if hard else EASY, 2)
        rng.shuffle(words)
        weak_ok = (rng.random() < 0.2) if hard else (rng.random() < 0.9)
        strong_ok = rng.random() < (0.85 if hard else 0.92)
        rows.append(
            {
                "prompt": " ".join(words) + "?\nA. one\nB. two\nAnswer:",
                "outcomes": {"weak": weak_ok, "strong": strong_ok},
            }
        )
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model() -> OutcomeModel:
    return train(synthetic(600), costs={"weak": 0.001, "strong": 0.01}, iterations=120)


def test_learns_which_prompts_need_the_strong_model(model: OutcomeModel) -> None:
    test = synthetic(400, seed=7)
    scores = []
    for row in test:
        p = model.predict(row["prompt"])
        scores.append(p["strong"] - p["weak"])
    curve = outcome_curve(
        scores, [r["outcomes"]["weak"] for r in test], [r["outcomes"]["strong"] for r in test]
    )
    # Random is 0.5 / 0.5 / 0.8; the learnable signal must show clearly.
    assert curve["apgr"] > 0.75
    assert curve["cpt80"] < 0.6


def test_cross_validation_reports_mean_and_sd() -> None:
    figures = cross_validate(synthetic(300), folds=3, iterations=80)
    assert figures["weak"] == "weak" and figures["strong"] == "strong"
    assert figures["apgr"] > 0.7 and figures["apgr_sd"] >= 0


def test_outcome_curve_random_and_one_point() -> None:
    weak = [True, False, True, False] * 50
    strong = [True, True, False, True] * 50
    assert outcome_curve([0.0] * 200, weak, strong)["apgr"] == pytest.approx(0.5)
    # Perfect ranking: the rows where only the strong model is right first.
    perfect = [
        1.0 if s and not w else (0.0 if s == w else -1.0) for w, s in zip(weak, strong, strict=True)
    ]
    assert outcome_curve(perfect, weak, strong)["apgr"] > 1.0
    assert outcome_curve(perfect, weak, strong)["cpt50"] < 0.2


def test_a_router_without_a_score_is_one_point_joined_to_both_ends() -> None:
    from coop import Analysis, Router, evaluate_routing

    class Tiers(Router):
        name = "tiers"

        def analyze(self, messages: list[dict]) -> Analysis:
            hard = "hard" in messages[-1]["content"]
            return Analysis("qa", "simple", "reasoning" if hard else "light")

    # 4 rows: the "hard" one is the only row where the strong model alone is right.
    rows = [
        {"prompt": "hard", "outcomes": {"w": False, "s": True}},
        {"prompt": "a", "outcomes": {"w": True, "s": True}},
        {"prompt": "b", "outcomes": {"w": False, "s": True}},
        {"prompt": "c", "outcomes": {"w": True, "s": False}},
    ]
    report = evaluate_routing(Tiers(), rows, prices={"w": (1.0, 1.0), "s": (10.0, 10.0)})
    o = report.outcomes
    assert o is not None and (o["weak"], o["strong"], o["scored"]) == ("w", "s", False)
    # gap = 0.75 - 0.5; one point at share 0.25 with gap recovered 0.25/0.25 = 1.0:
    # area under (0,0)-(0.25,1)-(1,1) = 0.125 + 0.75.
    assert o["router"]["apgr"] == pytest.approx(0.875)
    assert o["router"]["strong_share"] == 0.25 and o["router"]["accuracy"] == 0.75
    assert o["random"]["accuracy"] == pytest.approx(0.5625)
    assert o["router"]["cost_per_1k"] == pytest.approx(o["random"]["cost_per_1k"])  # same share
    assert report.to_dict()["apgr"] == o["router"]["apgr"]


def test_save_load_round_trip(model: OutcomeModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m.json")
    loaded = OutcomeModel.load(path)
    assert loaded.models == model.models and loaded.version == model.version
    for row in synthetic(20, seed=3):
        a, b = model.predict(row["prompt"]), loaded.predict(row["prompt"])
        assert all(abs(a[m] - b[m]) < 1e-3 for m in a)


def test_a_model_file_from_another_version_is_a_clear_error(
    model: OutcomeModel, tmp_path: Path
) -> None:
    path = model.save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="format version 99") as info:
        OutcomeModel.load(path)
    assert str(path) in str(info.value)
    (tmp_path / "x.json").write_text('{"format": "coop-classifier"}')
    with pytest.raises(ConfigError, match="not a coop-outcome model"):
        OutcomeModel.load(tmp_path / "x.json")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "q"}', "no outcomes"),
        ('{"prompt": "q", "outcomes": {}}', "no outcomes"),
        ('{"prompt": "q", "outcomes": {"weak": true}}', "one model only"),
        ('{"prompt": "q", "outcomes": {"weak": true, "other": false}}', "not configured"),
        ('{"prompt": "q", "outcomes": {"weak": 1, "strong": false}}', "expected true or false"),
        ('{"prompt": "q", "outcomes": {"weak": true,', "JSON"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    good = '{"prompt": "p", "outcomes": {"weak": true, "strong": true}}'
    path.write_text(f"{good}\n{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        read_outcome_rows(path, configured=["weak", "strong"])
    assert f"{path}:3" in str(info.value)


def test_threshold_share_and_cost_options(model: OutcomeModel) -> None:
    for bad in ({"threshold": 2}, {"strong_share": 1.5}, {"max_cost_per_1k": -1}):
        with pytest.raises(ConfigError, match="out of range"):
            OutcomeRouter(bad, model=model)
    with pytest.raises(ConfigError, match="not threshold and strong_share"):
        OutcomeRouter({"threshold": 0.1, "strong_share": 0.2}, model=model)
    with pytest.raises(ConfigError, match="no outcomes"):
        OutcomeRouter({"strong": "gpt-9"}, model=model)
    for share in (0.2, 0.6):
        router = OutcomeRouter({"strong_share": share}, model=model)
        assert router._simulate(router.threshold)[0] == pytest.approx(share, abs=0.05)
    # Cost per 1k requests: 1.0 (weak only) .. 10.0 (strong only).
    cheap = OutcomeRouter({"max_cost_per_1k": 3.0}, model=model)
    assert cheap._simulate(cheap.threshold)[1] * 1000 <= 3.0
    rich = OutcomeRouter({"max_cost_per_1k": 20.0}, model=model)
    assert rich._simulate(rich.threshold)[0] == 1.0
    unpriced = train(synthetic(100), iterations=20)
    with pytest.raises(ConfigError, match="no prices"):
        OutcomeRouter({"max_cost_per_1k": 3.0}, model=unpriced)


def test_decision_explains_the_win_probability(model: OutcomeModel) -> None:
    router = OutcomeRouter({"strong_share": 0.35}, model=model)
    hard = router.analyze([{"role": "user", "content": "the quantum eigenvalue of a tensor?"}])
    easy = router.analyze([{"role": "user", "content": "the capital river of a city?"}])
    assert hard.target == "strong" and hard.tier == "reasoning"
    assert easy.target == "weak" and easy.tier == "light"
    assert "win probability" in hard.reasons[0]
    assert hard.signals["route_score"] > easy.signals["route_score"]
    assert router.analyze([]).target in ("weak", "strong")  # never raises


def test_n_models_climb_by_estimated_gain() -> None:
    rows = synthetic(300)
    for row in rows:
        row["outcomes"]["mid"] = row["outcomes"]["strong"]
    three = train(rows, iterations=60)
    router = OutcomeRouter({"models": ["weak", "mid", "strong"], "threshold": 0.1}, model=three)
    hard = router.analyze([{"role": "user", "content": "quantum tensor proof"}])
    assert hard.target == "mid"  # as good as strong, and cheaper in the ladder


def test_composes_with_the_rules_router(model: OutcomeModel) -> None:
    router = OutcomeRouter({"base": "rules", "strong_share": 0.35}, model=model)
    hard = "Solve for x: 3x + 5 = 20. Show the steps of the proof with the quantum integral."
    analysis = router.analyze([{"role": "user", "content": hard}])
    # The rules decide task type and tier; the strong model is needed, so the
    # reasoning tier's own target serves (target None lets [routing] map the tier).
    assert (analysis.task_type, analysis.tier, analysis.target) == ("math", "reasoning", None)
    easy = "Solve for x: 3x + 5 = 20, the capital of the city by the river."
    analysis = router.analyze([{"role": "user", "content": easy}])
    assert analysis.task_type == "math"  # still the rules' task type...
    assert (analysis.tier, analysis.target) == ("light", "weak")  # ...but the weak model will do
    assert any("base rules said tier reasoning" in r for r in analysis.reasons)


CONFIG = """
[endpoints.sim]
provider = "simulated"

[models.weak]
endpoint = "sim"
tier = "light"
price = { input = 1.0, output = 1.0 }

[models.strong]
endpoint = "sim"
tier = "reasoning"
price = { input = 10.0, output = 30.0 }

[routing]
router = "outcome"
light = "weak"
reasoning = "strong"
options = { model_file = "model.json", strong_share = 0.35 }
"""


def coop(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(folder / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def test_cli_train_route_eval(tmp_path: Path) -> None:
    (tmp_path / "coop.toml").write_text(CONFIG, encoding="utf-8")
    train_rows = write_rows(tmp_path / "train.jsonl", synthetic(400))
    result = coop(
        tmp_path, "router", "train", str(train_rows), "--router", "outcome", "--out", "model.json"
    )
    assert result.returncode == 0, result.stderr
    assert "wrote outcome model" in result.stdout

    result = coop(tmp_path, "route", "the quantum eigenvalue of a tensor?")
    assert result.returncode == 0, result.stderr
    assert "win probability" in result.stdout and "target:     strong" in result.stdout

    test_rows = write_rows(tmp_path / "test.jsonl", synthetic(200, seed=9))
    result = coop(tmp_path, "route", "--batch", str(test_rows), "--json")
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.split("\n") if line]
    assert len(decisions) == 200
    assert all(isinstance(d["signals"]["route_score"], float) for d in decisions)

    result = coop(tmp_path, "eval", "routing", str(test_rows), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    o = report["outcomes"]
    assert report["apgr"] == o["router"]["apgr"] > 0.7
    assert o["random"]["apgr"] == 0.5 and o["random"]["strong_share"] == o["router"]["strong_share"]
    assert o["router"]["accuracy"] > o["random"]["accuracy"]
    assert o["random"]["cost_per_1k"] > 0 and "cpt50" in o["router"] and "cpt80" in o["router"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "outcomes": {"weak": true, "gpt-9": false}}\n')
    result = coop(tmp_path, "router", "train", str(bad), "--router", "outcome", "--out", "m2.json")
    assert result.returncode == 2
    assert f"{bad}:1" in result.stderr and "not configured" in result.stderr


def test_a_threshold_out_of_range_names_the_config_file_and_line(tmp_path: Path) -> None:
    model = train(synthetic(60), iterations=10)
    model.save(tmp_path / "model.json")
    text = CONFIG.replace("strong_share = 0.35", "threshold = 1.5")
    (tmp_path / "coop.toml").write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("options"))
    result = coop(tmp_path, "config", "validate")
    assert result.returncode == 2
    assert f"coop.toml:{line} routing.options.threshold" in result.stderr
    assert "out of range" in result.stderr
