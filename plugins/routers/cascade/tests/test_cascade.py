"""The cascade: self-consistency of cheap samples decides escalation; every cost is counted."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from coop import CooperationError, ValidationError, load_plugins
from coop_cascade import CascadeResult, CascadeRouter, agreement, answer_key

MESSAGES = [
    {
        "role": "user",
        "content": "Natalia sold 48 clips in April and half as many in May. How many in total?",
    }
]


class FakeModels:
    """``complete`` for tests: scripted answers per model, fixed prices, a call log."""

    def __init__(
        self, answers: dict[str, list[str]], prices: dict[str, float], fail: set[str] = frozenset()
    ) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.prices = prices
        self.fail = set(fail)
        self.log: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, model: str, messages: list[dict[str, Any]]) -> tuple[str, float]:
        assert messages == MESSAGES
        self.log.append(model)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(0.01)  # lets parallel samples overlap
            if model in self.fail:
                raise RuntimeError(f"{model} is down")
            return self.answers[model].pop(0), self.prices[model]
        finally:
            self.in_flight -= 1


@pytest.mark.anyio
async def test_agreeing_samples_keep_the_cheap_answer() -> None:
    fake = FakeModels(
        {"cheap": ["48 + 24 = 72. The answer is 72.", "In May she sold 24, so 72 in total."]},
        {"cheap": 0.001, "strong": 0.03},
    )
    result = await CascadeRouter().run(
        MESSAGES, complete=fake.complete, cheap="cheap", strong="strong"
    )
    assert isinstance(result, CascadeResult)
    assert result.model == "cheap" and not result.escalated
    assert result.agreement == 1.0
    assert answer_key(result.text) == "number:72"  # either sample (call order varies)
    assert [c.model for c in result.calls] == ["cheap", "cheap"]
    assert [c.answer_key for c in result.calls] == ["number:72", "number:72"]
    assert result.total_cost_usd == pytest.approx(0.002)
    assert fake.log == ["cheap", "cheap"]
    assert fake.max_in_flight == 2  # sampled in parallel


@pytest.mark.anyio
async def test_disagreeing_samples_escalate() -> None:
    fake = FakeModels(
        {"cheap": ["The answer is 72.", "The answer is 96."], "strong": ["She sold 72 clips."]},
        {"cheap": 0.001, "strong": 0.03},
    )
    result = await CascadeRouter().run(
        MESSAGES, complete=fake.complete, cheap="cheap", strong="strong"
    )
    assert result.escalated and result.model == "strong"
    assert result.text == "She sold 72 clips."
    assert result.agreement == 0.5
    assert [(c.model, c.role) for c in result.calls] == [
        ("cheap", "sample"),
        ("cheap", "sample"),
        ("strong", "escalation"),
    ]
    assert result.total_cost_usd == pytest.approx(0.032)
    data = result.to_dict()
    assert data["total_cost_usd"] == pytest.approx(0.032) and len(data["calls"]) == 3


@pytest.mark.anyio
async def test_threshold_setting_allows_a_majority() -> None:
    answers = {"cheap": ["A: 72", "#### 72", "The answer is 70"]}
    lenient = CascadeRouter({"threshold": 0.6})
    result = await lenient.run(
        MESSAGES,
        complete=FakeModels(answers, {"cheap": 0.001, "strong": 0.03}).complete,
        cheap="cheap",
        strong="strong",
        samples=3,
    )
    assert not result.escalated and result.agreement == pytest.approx(2 / 3)
    assert answer_key(result.text) == "number:72"
    strict = CascadeRouter()  # default threshold 1.0: every sample must agree
    fake = FakeModels({**answers, "strong": ["72"]}, {"cheap": 0.001, "strong": 0.03})
    result = await strict.run(
        MESSAGES, complete=fake.complete, cheap="cheap", strong="strong", samples=3
    )
    assert result.escalated and result.total_cost_usd == pytest.approx(0.033)


@pytest.mark.anyio
async def test_a_failed_sample_counts_as_disagreement() -> None:
    fake = FakeModels({"strong": ["72"]}, {"cheap": 0.001, "strong": 0.03}, fail={"cheap"})
    result = await CascadeRouter().run(
        MESSAGES, complete=fake.complete, cheap="cheap", strong="strong"
    )
    assert result.escalated and result.model == "strong"
    assert all(c.error and "down" in c.error for c in result.calls[:2])
    assert result.total_cost_usd == pytest.approx(0.03)


@pytest.mark.anyio
async def test_failed_escalation_keeps_the_cheap_answer() -> None:
    fake = FakeModels({"cheap": ["72", "96"]}, {"cheap": 0.001, "strong": 0.03}, fail={"strong"})
    result = await CascadeRouter().run(
        MESSAGES, complete=fake.complete, cheap="cheap", strong="strong"
    )
    assert result.model == "cheap" and result.escalated
    assert any("failed" in r for r in result.reasons)


@pytest.mark.anyio
async def test_everything_failing_raises() -> None:
    fake = FakeModels({}, {}, fail={"cheap", "strong"})
    with pytest.raises(CooperationError):
        await CascadeRouter().run(MESSAGES, complete=fake.complete, cheap="cheap", strong="strong")


@pytest.mark.anyio
async def test_bad_arguments() -> None:
    fake = FakeModels({}, {})
    with pytest.raises(ValidationError):
        await CascadeRouter().run(
            MESSAGES, complete=fake.complete, cheap="c", strong="s", samples=0
        )
    with pytest.raises(ValidationError):
        CascadeRouter({"threshold": 2})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("The answer is 18.", "number:18"),
        ("A: $1,200", "number:1200"),
        ("Step 1 ... so 18.0 apples.\n#### 18", "number:18"),
        ("\\boxed{42}", "number:42"),
        ("答案是：B", "option:B"),
        ("(C) because the others are wrong", "option:C"),
        ("Yes, it will rise.", "yes"),
        ("不是，因为……", "no"),
        ("A dog is a mammal.", None),
        ("It depends on the context.", None),
    ],
)
def test_answer_keys(text: str, key: str | None) -> None:
    assert answer_key(text) == key


def test_free_text_agreement_uses_word_overlap() -> None:
    same = ["Paris is the capital of France.", "The capital of France is Paris."]
    assert agreement(same) == (1.0, 0)
    assert agreement(["Paris is the capital.", "Bananas are yellow fruit."])[0] == 0.5
    assert agreement([]) == (0.0, -1)


def test_analyze_delegates_to_the_rules() -> None:
    a = CascadeRouter().analyze(MESSAGES)
    assert a.task_type == "math" and a.tier == "reasoning"
    assert any(r.startswith("cascade:") for r in a.reasons)


def test_registered_as_a_plugin() -> None:
    assert load_plugins().routers()["cascade"] is CascadeRouter
