"""Figures computed by code, never by a model: matrix scores, ranking, sensitivity, risk.

Decision matrix: weights are normalised to sum to 1; an option's score is the weighted
sum of its criterion scores; options are ranked by score (ties share a rank and keep
the order they were given in).

Sensitivity, per criterion ``k`` with normalised weight ``w``: when ``w`` moves to ``x``
and the other weights keep their proportions, every option's score is linear in ``x``::

    S_j(x) = x * s_kj + (1 - x) * r_j        r_j = (S_j - w * s_kj) / (1 - w)

so the weight at which a rival ``j`` catches the top option ``t`` is where the two lines
cross, ``x* = (r_t - r_j) / ((r_t - r_j) - (s_kt - s_kj))``. The critical weight is the
crossing in [0, 1] nearest to ``w``; it is also given as the raw weight it means when
the other raw weights stay as they are (``x* / (1 - x*) * rest``), and as a change in
percent of the raw weight. No crossing: the top option does not change whatever the
weight of ``k``.

Stability: each raw weight in turn is multiplied by ``1 - p`` and ``1 + p`` (``p`` =
``perturbation``, default 0.2) and the ranking recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rank", "risk_level", "score_matrix", "score_risks", "sensitivity", "stability"]

PLACES = 4


def _round(value: float) -> float:
    return round(value + 0.0, PLACES)


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def scores(weights: Mapping[str, float], options: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each option's weighted sum under the normalised ``weights``."""
    norm = normalise(weights)
    return {o["name"]: sum(norm[c] * float(o["scores"][c]) for c in norm) for o in options}


def rank(totals: Mapping[str, float]) -> list[tuple[int, str, float]]:
    """``(rank, name, score)`` best first; equal scores (to 1e-9) share a rank."""
    order = sorted(totals.items(), key=lambda item: -item[1])  # stable: given order on ties
    ranked: list[tuple[int, str, float]] = []
    for position, (name, value) in enumerate(order, start=1):
        if ranked and abs(ranked[-1][2] - value) <= 1e-9:
            ranked.append((ranked[-1][0], name, value))
        else:
            ranked.append((position, name, value))
    return ranked


def sensitivity(
    weights: Mapping[str, float], options: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per criterion: how far its weight must move before the top option changes."""
    norm = normalise(weights)
    totals = scores(weights, options)
    ranked = rank(totals)
    top = ranked[0][1]
    by_name = {o["name"]: o for o in options}
    raw_total = sum(weights.values())
    result: list[dict[str, Any]] = []
    for criterion, w in norm.items():
        entry: dict[str, Any] = {
            "criterion": criterion,
            "weight": _round(w),
            "critical_weight": None,
            "change": None,
            "critical_raw_weight": None,
            "raw_change_pct": None,
            "new_top": None,
        }
        result.append(entry)
        if w >= 1.0 or len(options) < 2:
            continue  # the only criterion (or option): nothing to trade it against
        s_t = float(by_name[top]["scores"][criterion])
        r_t = (totals[top] - w * s_t) / (1 - w)
        best: tuple[float, float, str] | None = None  # (distance, x, rival)
        for name, _ in totals.items():
            if name == top:
                continue
            s_j = float(by_name[name]["scores"][criterion])
            r_j = (totals[name] - w * s_j) / (1 - w)
            denominator = (r_t - r_j) - (s_t - s_j)
            if abs(denominator) < 1e-12:
                continue  # parallel lines: this weight never changes their order
            x = (r_t - r_j) / denominator
            if not -1e-12 <= x <= 1 + 1e-12:
                continue
            x = min(1.0, max(0.0, x))
            if best is None or abs(x - w) < best[0] - 1e-12:
                best = (abs(x - w), x, name)
        if best is None:
            continue
        _, x, rival = best
        rest = raw_total - weights[criterion]
        raw = x / (1 - x) * rest if x < 1 else None
        entry.update(
            critical_weight=_round(x),
            change=_round(x - w),
            critical_raw_weight=None if raw is None else _round(raw),
            raw_change_pct=(
                None
                if raw is None or weights[criterion] == 0
                else _round((raw - weights[criterion]) / weights[criterion] * 100)
            ),
            new_top=rival,
        )
    return result


def stability(
    weights: Mapping[str, float],
    options: Sequence[Mapping[str, Any]],
    perturbation: float = 0.2,
) -> dict[str, Any]:
    """The ranking under each raw weight times ``1 - p`` and ``1 + p``, one at a time."""
    base = [name for _, name, _ in rank(scores(weights, options))]
    trials: list[dict[str, Any]] = []
    for criterion in weights:
        for factor in (1 - perturbation, 1 + perturbation):
            changed = dict(weights)
            changed[criterion] = weights[criterion] * factor
            if sum(changed.values()) <= 0:
                continue
            order = [name for _, name, _ in rank(scores(changed, options))]
            trials.append(
                {
                    "criterion": criterion,
                    "factor": _round(factor),
                    "ranking": order,
                    "top": order[0],
                    "ranking_changed": order != base,
                    "top_changed": order[0] != base[0],
                }
            )
    return {
        "perturbation": perturbation,
        "ranking_stable": not any(t["ranking_changed"] for t in trials),
        "top_stable": not any(t["top_changed"] for t in trials),
        "trials": trials,
    }


def score_matrix(
    criteria: Sequence[Mapping[str, Any]],
    options: Sequence[Mapping[str, Any]],
    perturbation: float = 0.2,
) -> dict[str, Any]:
    """Normalised weights, weighted scores, ranking, sensitivity and stability."""
    weights = {c["name"]: float(c["weight"]) for c in criteria}
    norm = normalise(weights)
    totals = scores(weights, options)
    ranked = rank(totals)
    contributions = {
        o["name"]: {c: _round(norm[c] * float(o["scores"][c])) for c in norm} for o in options
    }
    return {
        "weights": {name: _round(w) for name, w in norm.items()},
        "scores": {name: _round(totals[name]) for name in totals},
        "contributions": contributions,
        "ranking": [
            {"rank": r, "option": name, "score": _round(value)} for r, name, value in ranked
        ],
        "top": ranked[0][1],
        "tie_at_top": len(ranked) > 1 and ranked[1][0] == 1,
        "sensitivity": sensitivity(weights, options),
        "stability": stability(weights, options, perturbation),
    }


def risk_level(score: int) -> str:
    """The band of a 5×5 likelihood × impact score."""
    if score >= 20:
        return "critical"
    if score >= 10:
        return "high"
    if score >= 5:
        return "medium"
    return "low"


def score_risks(risks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each risk with ``score`` = likelihood × impact and its level, highest first."""
    scored = []
    for risk in risks:
        likelihood, impact = int(risk["likelihood"]), int(risk["impact"])
        score = likelihood * impact
        scored.append(
            {
                **risk,
                "likelihood": likelihood,
                "impact": impact,
                "score": score,
                "level": risk_level(score),
            }
        )
    scored.sort(key=lambda r: -r["score"])  # stable: given order on ties
    for position, risk in enumerate(scored, start=1):
        risk["rank"] = position
    return scored
