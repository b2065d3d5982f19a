"""The routing policy shared by every router: targets, overrides, limits, health."""

from __future__ import annotations

from typing import Any

from coop import Analysis, Router, RoutingPolicy, SystemConfig


class FixedRouter(Router):
    name = "fixed"

    def __init__(self, task: str = "qa", tier: str = "light") -> None:
        super().__init__({})
        self.task, self.tier = task, tier

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        return Analysis(task_type=self.task, complexity="simple", tier=self.tier, reasons=["fixed"])


CONFIG = SystemConfig.from_dict(
    {
        "endpoints": {"sim": {"provider": "simulated"}},
        "models": {
            "cheap": {
                "endpoint": "sim",
                "path": "sim-light",
                "tier": "light",
                "price": {"input": 0.1, "output": 0.2},
            },
            "cheap2": {
                "endpoint": "sim",
                "path": "sim-light",
                "tier": "light",
                "price": {"input": 0.05, "output": 0.1},
            },
            "pricey": {
                "endpoint": "sim",
                "path": "sim-large",
                "tier": "reasoning",
                "price": {"input": 30, "output": 60},
            },
            "thinker": {
                "endpoint": "sim",
                "path": "sim-reasoning",
                "tier": "reasoning",
                "price": {"input": 1, "output": 4},
            },
        },
        "routing": {
            "light": "cheap",
            "reasoning": "pricey",
            "complex": "panel",
            "overrides": {"translation": "thinker"},
        },
        "cooperations": {"panel": {"models": ["cheap", "thinker"], "strategy": "voting"}},
    }
)
HI = [{"role": "user", "content": "hi"}]


def test_tier_target_and_reasons() -> None:
    decision = RoutingPolicy(CONFIG, FixedRouter()).decide(HI)
    assert (
        decision.target == "cheap"
        and decision.target_kind == "model"
        and decision.router == "fixed"
    )
    assert any("[routing] light" in r for r in decision.reasons)
    assert [c["name"] for c in decision.candidates] == ["cheap", "cheap2"]


def test_override_by_task_type() -> None:
    assert RoutingPolicy(CONFIG, FixedRouter("translation")).decide(HI).target == "thinker"


def test_complex_tier_goes_to_a_cooperation() -> None:
    decision = RoutingPolicy(CONFIG, FixedRouter("analysis", "complex")).decide(HI)
    assert decision.target == "panel" and decision.target_kind == "cooperation"


def test_cooling_model_is_skipped_for_a_healthy_one_of_the_tier() -> None:
    policy = RoutingPolicy(CONFIG, FixedRouter(), healthy=lambda name: name != "cheap")
    decision = policy.decide(HI)
    assert decision.target == "cheap2"
    assert any("cooling down" in r for r in decision.reasons)


def test_max_cost_picks_the_cheapest_that_fits() -> None:
    policy = RoutingPolicy(CONFIG, FixedRouter("math", "reasoning"))
    assert policy.decide(HI).target == "pricey"
    decision = policy.decide(HI, max_cost=0.01)
    assert decision.target == "thinker"
    assert any("max_cost" in (c.get("why_not") or "") for c in decision.candidates)


def test_max_latency_uses_live_latency() -> None:
    policy = RoutingPolicy(
        CONFIG,
        FixedRouter("math", "reasoning"),
        latency_of=lambda name: 9.0 if name == "pricey" else 0.5,
    )
    assert policy.decide(HI, max_latency=2).target == "thinker"


def test_a_cooperation_costs_at_least_its_members() -> None:
    policy = RoutingPolicy(CONFIG, FixedRouter("analysis", "complex"))
    panel = policy.decide(HI).candidates[0]
    members = sum(
        c["estimated_cost"]
        for c in RoutingPolicy(CONFIG, FixedRouter()).decide(HI).candidates
        + RoutingPolicy(CONFIG, FixedRouter("math", "reasoning")).decide(HI).candidates
        if c["name"] in ("cheap", "thinker")
    )
    assert panel["name"] == "panel" and panel["estimated_cost"] == round(members, 8)
    limited = policy.decide(HI, max_cost=panel["estimated_cost"] / 2)
    assert limited.target != "panel"
    assert "max_cost" in limited.candidates[0]["why_not"]


def test_needs_skip_a_cooperation_that_cannot_honour_them_for_its_members() -> None:
    refuse = lambda name, used: "its strategy cannot integrate tool calls"  # noqa: E731
    policy = RoutingPolicy(CONFIG, FixedRouter("analysis", "complex"), unhonoured=refuse)
    assert policy.decide(HI).target == "panel"  # nothing asked: no refusal consulted
    decision = policy.decide(HI, needs=frozenset({"tools"}), tools=1)
    assert decision.target in ("cheap", "thinker") and decision.target_kind == "model"
    assert decision.candidates[0]["why_not"] == "its strategy cannot integrate tool calls"
    assert decision.signals["tools"] == 1 and decision.signals["needs"] == ["tools"]
