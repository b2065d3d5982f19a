"""The MMLU model shipped in the package: small, labelled, and usable with no options."""

from __future__ import annotations

import json

from coop_outcome import FORMAT_VERSION, SHIPPED_MODEL, OutcomeModel, OutcomeRouter


def test_shipped_model_is_small_and_labelled() -> None:
    assert SHIPPED_MODEL.stat().st_size < 2 * 1024 * 1024
    header = json.loads(SHIPPED_MODEL.read_text())
    assert header["format_version"] == FORMAT_VERSION
    assert "MMLU dev rows" in header["note"]
    assert header["metrics"]["cv"]["folds"] == 5
    model = OutcomeModel.load(SHIPPED_MODEL)
    assert set(model.models) == {"mixtral-8x7b", "gpt-4-1106"}


def test_default_router_uses_the_shipped_model() -> None:
    router = OutcomeRouter()
    assert router.ladder == ["mixtral-8x7b", "gpt-4-1106"]
    prompts = [
        "What is the capital of France?\nA. Paris\nB. Rome\nC. Madrid\nD. Berlin\nAnswer:",
        "Let V be the vector space of 3x3 matrices. Find the dimension of the subspace of "
        "matrices whose trace is zero and which commute with a fixed nilpotent matrix.\n"
        "A. 2\nB. 3\nC. 4\nD. 5\nAnswer:",
    ]
    scores = [
        router.analyze([{"role": "user", "content": p}]).signals["route_score"] for p in prompts
    ]
    assert scores[1] > scores[0]
