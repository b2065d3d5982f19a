"""Pick a deployment among the available ones of a logical model.

Policies: ``least-inflight`` (default: fewest requests in flight per unit of
weight, then fewest consecutive failures, then lowest latency), ``weighted`` (random in proportion to weight),
``latency`` (lowest smoothed latency, unknown ones tried first), ``round-robin``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

from ._health import DeploymentState

__all__ = ["POLICIES", "pick_deployment"]

POLICIES = ("least-inflight", "weighted", "latency", "round-robin")


def pick_deployment(
    candidates: Sequence[DeploymentState],
    policy: str = "least-inflight",
    *,
    rng: random.Random | None = None,
    turn: Iterator[int] | None = None,
) -> DeploymentState | None:
    """The deployment to use among ``candidates`` (already filtered to available ones).

    ``turn`` is the logical model's own round-robin counter: each model takes its
    turns separately, so two interleaved models each still visit every deployment.
    """
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    chooser = rng or random
    if policy == "weighted":
        return chooser.choices(list(candidates), weights=[d.weight for d in candidates])[0]
    if policy == "round-robin":
        return candidates[next(turn if turn is not None else itertools.count()) % len(candidates)]
    # Ties go to the earlier deployment in coop.toml: predictable, and a deployment
    # with no latency yet (0.0) is tried before a measured one.
    ranked = range(len(candidates))
    if policy == "latency":
        return min(
            zip(candidates, ranked, strict=True),
            key=lambda p: ((p[0].latency_ewma or 0.0) * (1 + p[0].in_flight) / p[0].weight, p[1]),
        )[0]
    # A deployment failing right now (consecutive failures, circuit not yet open) goes
    # after the ones whose last answer was good.
    return min(
        zip(candidates, ranked, strict=True),
        key=lambda p: (
            p[0].in_flight / p[0].weight,
            p[0].consecutive_failures,
            p[0].latency_ewma or 0.0,
            p[1],
        ),
    )[0]
