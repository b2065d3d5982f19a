"""From a router's analysis to a target: ``[routing]`` plus live health, cost and latency.

Routers only analyse; this policy is shared by all of them, so every router gets
per-type overrides, tier targets, user limits (max cost, max latency) and
health-aware selection for free. A model in cooldown is never chosen while a
healthy model of the same tier exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._config import SystemConfig
from ._errors import ConfigError
from ._routing import Analysis, RouteDecision, Router
from ._usage import estimate_messages_tokens

__all__ = ["RoutingPolicy"]

#: Completion tokens assumed when estimating a request's cost before it runs.
EXPECTED_COMPLETION_TOKENS = 400


class RoutingPolicy:
    """Decide the target for a request: ``decide(messages) -> RouteDecision``."""

    def __init__(
        self,
        config: SystemConfig,
        router: Router,
        *,
        healthy: Callable[[str], bool] | None = None,
        latency_of: Callable[[str], float | None] | None = None,
        unhonoured: Callable[[str, frozenset[str]], str | None] | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self._healthy = healthy or (lambda name: True)
        self._latency_of = latency_of or (lambda name: None)
        #: Why a cooperation cannot take a request using these parameters (or ``None``).
        self._unhonoured = unhonoured or (lambda name, used: None)
        # One throw-away decision loads whatever the router loads lazily (a model
        # file), so the first real request is not the one that pays for it.
        router.analyze([{"role": "user", "content": "warm up"}])

    def _tier_models(self, tier: str) -> list[str]:
        return [name for name, model in self.config.models.items() if model.tier == tier]

    def _estimated_cost(self, model: str, prompt_tokens: int) -> float:
        price = self.config.models[model].price
        return (prompt_tokens * price.input + EXPECTED_COMPLETION_TOKENS * price.output) / 1_000_000

    def _members(self, name: str) -> list[str]:
        coop = self.config.cooperations[name]
        return coop.models or [s["model"] for s in coop.stages]

    def _coop_healthy(self, name: str) -> bool:
        return any(self._healthy(m) for m in self._members(name))

    def decide(
        self,
        messages: list[dict[str, Any]],
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
        needs: frozenset[str] = frozenset(),
        tools: int = 0,
    ) -> RouteDecision:
        """Route ``messages``; ``needs`` are the answer-shaping parameters the request uses
        (``tools``, ``response_format``, ``n``): a cooperation that cannot honour them is
        skipped for a model of the same tier."""
        started = time.perf_counter()
        analysis: Analysis = self.router.analyze(messages)
        routing = self.config.routing
        max_cost = max_cost if max_cost is not None else routing.max_cost
        max_latency = max_latency if max_latency is not None else routing.max_latency
        reasons = list(analysis.reasons)
        signals = dict(analysis.signals)
        attachments = _attachments(messages)
        if attachments:
            signals["attachments"] = attachments
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(attachments.items()))
            reasons.append(f"attachments: {kinds}")
        if tools:
            signals["tools"] = tools
            reasons.append(f"{tools} tool(s) offered: the answer may be tool calls")
        if needs:
            signals["needs"] = sorted(needs)
        configured = routing.overrides.get(analysis.task_type)
        if configured:
            reasons.append(f"override for task type {analysis.task_type!r} → {configured}")
        elif analysis.target and (
            analysis.target in self.config.models or analysis.target in self.config.cooperations
        ):
            configured = analysis.target
            reasons.append(f"router {self.router.name} chose {configured}")
        else:
            configured = routing.target_for(analysis.tier)
            if configured:
                reasons.append(f"tier {analysis.tier} → {configured} ([routing] {analysis.tier})")

        # Candidates: the configured target first, then the tier's other models.
        names: list[str] = []
        if configured:
            names.append(configured)
        for name in self._tier_models(analysis.tier):
            if name not in names:
                names.append(name)
        if any(n in self.config.cooperations for n in names):
            # A cooperation may be refused below (a limit, a parameter it cannot honour,
            # its members cooling down): its members stand behind it.
            for name in list(names):
                if name in self.config.cooperations:
                    names.extend(m for m in self._members(name) if m not in names)
        if not names:
            names = [n for n in (routing.light, routing.reasoning, routing.complex) if n] or sorted(
                self.config.models
            )
        if not names:
            raise ConfigError(
                "nothing to route to: no models or cooperations are defined; add a "
                "[models.NAME] table (see `coop init`), or remove the file to use the "
                "embedded default",
                path=self.config.source or None,
                key="models",
            )

        prompt_tokens = estimate_messages_tokens(messages)
        candidates: list[dict[str, Any]] = []
        for name in names:
            is_coop = name in self.config.cooperations
            entry: dict[str, Any] = {"name": name, "kind": "cooperation" if is_coop else "model"}
            entry["healthy"] = self._coop_healthy(name) if is_coop else self._healthy(name)
            if not is_coop and name in self.config.models:
                entry["estimated_cost"] = round(self._estimated_cost(name, prompt_tokens), 8)
                latency = self._latency_of(name)
                entry["latency_ms"] = None if latency is None else round(latency * 1000, 2)
            elif is_coop:
                # At least what its members cost; a strategy's own calls (a judge) come on top.
                entry["estimated_cost"] = round(
                    sum(
                        self._estimated_cost(m, prompt_tokens)
                        for m in self._members(name)
                        if m in self.config.models
                    ),
                    8,
                )
            entry["eligible"] = entry["healthy"]
            refused = self._unhonoured(name, needs) if is_coop and needs else None
            if refused is not None:
                entry["eligible"] = False
                entry["why_not"] = refused
            if max_cost is not None and entry.get("estimated_cost", 0.0) > max_cost:
                entry["eligible"] = False
                entry["why_not"] = (
                    f"estimated cost {entry['estimated_cost']:.6f} > max_cost {max_cost}"
                )
            if (
                max_latency is not None
                and entry.get("latency_ms") is not None
                and entry["latency_ms"] / 1000 > max_latency
            ):
                entry["eligible"] = False
                entry["why_not"] = (
                    f"recent latency {entry['latency_ms']} ms > max_latency {max_latency}s"
                )
            if not entry["healthy"] and refused is None:
                entry["why_not"] = "cooling down (no healthy deployment)"
            candidates.append(entry)

        eligible = [c for c in candidates if c["eligible"]]
        if eligible:
            if max_cost is not None or max_latency is not None:
                # Under a user limit prefer the configured target if it fits, else the cheapest.
                chosen = (
                    eligible[0]
                    if eligible[0]["name"] == configured
                    else min(
                        eligible,
                        key=lambda c: (c.get("estimated_cost", 0.0), c.get("latency_ms") or 0.0),
                    )
                )
            else:
                chosen = eligible[0]
        else:
            healthy = [c for c in candidates if c["healthy"] and "why_not" not in c] or [
                c for c in candidates if c["healthy"]
            ]
            chosen = (
                min(healthy, key=lambda c: c.get("estimated_cost", 0.0))
                if healthy
                else candidates[0]
            )
            reasons.append("no candidate met every limit; chose the closest")
        if configured and chosen["name"] != configured:
            reasons.append(
                f"{configured} skipped: {next((c.get('why_not') for c in candidates if c['name'] == configured), 'not eligible')}; chose {chosen['name']}"
            )
        return RouteDecision(
            task_type=analysis.task_type,
            complexity=analysis.complexity,
            tier=analysis.tier,
            target=chosen["name"],
            target_kind=chosen["kind"],
            router=self.router.name,
            confidence=analysis.confidence,
            reasons=reasons,
            candidates=candidates,
            signals=signals,
            language=analysis.language,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 4),
        )


#: Content part types that are attachments rather than text.
_ATTACHMENT_TYPES = {"image_url": "image", "input_audio": "audio", "file": "file"}


def _attachments(messages: list[dict[str, Any]]) -> dict[str, int]:
    """Attachments by kind (``{"image": 2}``) across the conversation's content parts."""
    found: dict[str, int] = {}
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                kind = _ATTACHMENT_TYPES.get(part.get("type")) if isinstance(part, dict) else None
                if kind is not None:
                    found[kind] = found.get(kind, 0) + 1
    return found
