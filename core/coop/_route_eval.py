"""Measure a router against labelled prompts: accuracy, reasoning-tier F1, latency.

Why here and not in a plugin: every router is judged by the same yardstick, and
``coop eval routing`` and the plugins' own tests share it. Rows are JSON lines
with a ``prompt`` (or OpenAI ``messages``) and a ``task_type`` and/or ``tier``;
a missing ``tier`` is derived from the task type (math, code and reasoning are
the ``reasoning`` tier, the rest ``light``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import attrs

from ._errors import ConfigError
from ._jsonl import read_jsonl
from ._routing import TASK_TYPES, TIERS, Router
from ._usage import estimate_messages_tokens

__all__ = [
    "RoutingReport",
    "evaluate_routing",
    "gold_tier",
    "load_rows",
    "outcome_curve",
]

#: Task types whose gold tier is ``reasoning`` when a row gives no tier.
REASONING_TYPES = frozenset({"math", "code", "reasoning"})
#: Misrouted examples kept in the report (enough to debug, small enough to print).
MAX_MISSES = 50


def gold_tier(row: Mapping[str, Any]) -> str | None:
    """The row's tier, or the one its task type implies; ``None`` when it has neither."""
    tier = row.get("tier")
    if isinstance(tier, str) and tier:
        return tier
    task = row.get("task_type")
    if isinstance(task, str) and task:
        return "reasoning" if task in REASONING_TYPES else "light"
    return None


def load_rows(
    path: str | os.PathLike[str], *, require_task_type: bool = False
) -> list[dict[str, Any]]:
    """Read labelled JSON lines; :class:`ConfigError` names the file and line of any problem.

    Blank lines are skipped. Each row needs ``prompt`` (a string) or ``messages``
    (a list), and ``task_type`` or ``tier`` with a known value, or ``outcomes``
    (model → whether it answered right); training data (``require_task_type``)
    needs the ``task_type``.
    """
    file = Path(path)
    rows: list[dict[str, Any]] = []
    for number, row in read_jsonl(file):
        _check_row(row, file, number, require_task_type)
        rows.append(row)
    if not rows:
        raise ConfigError("no rows (the file is empty)", path=str(file))
    return rows


def _check_row(row: dict[str, Any], file: Path, number: int, require_task_type: bool) -> None:
    prompt, messages = row.get("prompt"), row.get("messages")
    if not isinstance(prompt, str) and not isinstance(messages, list):
        raise ConfigError(
            "missing field 'prompt' (a string) or 'messages' (a list)",
            path=str(file),
            line=number,
        )
    task, tier = row.get("task_type"), row.get("tier")
    if task is None and require_task_type:
        raise ConfigError("missing field 'task_type'", path=str(file), line=number)
    outcomes = row.get("outcomes")
    if outcomes is not None and not (
        isinstance(outcomes, dict)
        and outcomes
        and all(isinstance(v, bool) for v in outcomes.values())
    ):
        raise ConfigError(
            "'outcomes' must map model names to true or false", path=str(file), line=number
        )
    if task is None and tier is None and outcomes is None:
        raise ConfigError(
            "missing field 'task_type' (or 'tier', or 'outcomes')", path=str(file), line=number
        )
    if task is not None and task not in TASK_TYPES:
        raise ConfigError(
            f"unknown task_type {task!r}; expected one of {', '.join(TASK_TYPES)}",
            path=str(file),
            line=number,
        )
    if tier is not None and tier not in TIERS:
        raise ConfigError(
            f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}",
            path=str(file),
            line=number,
        )


def _messages(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = row.get("messages")
    if isinstance(messages, list):
        return messages
    return [{"role": "user", "content": row.get("prompt", "")}]


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p99 is a latency that happened)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


@attrs.define
class RoutingReport:
    """How a router did on labelled rows; :meth:`format` prints it, :meth:`to_dict` serialises."""

    router: str
    rows: int
    #: Rows that carry a task_type label, and how many the router got right.
    typed_rows: int
    task_correct: int
    #: task type → {"n", "correct", "accuracy"} (gold task types only).
    per_type: dict[str, dict[str, float]]
    #: gold tier → {"n", "correct", "accuracy"}.
    per_tier: dict[str, dict[str, float]]
    #: Reasoning tier against the rest (light and complex both count as "not reasoning").
    reasoning: dict[str, float]
    #: gold task type → predicted task type → count.
    confusion: dict[str, dict[str, int]]
    #: predicted tier → count.
    predicted_tiers: dict[str, int]
    #: p50, p99, mean and max per-decision latency in milliseconds.
    latency_ms: dict[str, float]
    #: Up to :data:`MAX_MISSES` wrong decisions: prompt head, gold and predicted labels.
    misses: list[dict[str, Any]] = attrs.field(factory=list)
    #: Rows on which the router raised (it should never).
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    #: On rows with ``outcomes`` (see :func:`outcome_figures`): APGR, cpt50, cpt80,
    #: accuracy and cost at the router's own decisions, beside a random router.
    outcomes: dict[str, Any] | None = None

    @property
    def task_accuracy(self) -> float:
        return _ratio(self.task_correct, self.typed_rows)

    @property
    def reasoning_f1(self) -> float:
        return self.reasoning["f1"]

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["task_accuracy"] = round(self.task_accuracy, 4)
        if self.outcomes is not None:
            for key in ("apgr", "cpt50", "cpt80"):
                data[key] = self.outcomes["router"][key]
        return data

    def format(self) -> str:
        """A plain text report: headline figures, per type, per tier, confusion matrix."""
        r = self.reasoning
        lines = [
            f"router {self.router}: {self.rows} rows",
            f"task type accuracy  {self.task_accuracy:.3f} ({self.task_correct}/{self.typed_rows})",
            f"reasoning tier      precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
            f"F1 {r['f1']:.3f}  (tp {int(r['tp'])}, fp {int(r['fp'])}, fn {int(r['fn'])})",
            f"latency per decision  p50 {self.latency_ms['p50'] * 1000:.0f} µs  "
            f"p99 {self.latency_ms['p99'] * 1000:.0f} µs  max {self.latency_ms['max']:.2f} ms",
            "predicted tiers     "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.predicted_tiers.items())),
        ]
        if self.errors:
            lines.append(f"router raised on {len(self.errors)} rows")
        if self.outcomes is not None:
            lines += ["", _format_outcomes(self.outcomes)]
            if not self.typed_rows and not self.per_tier:  # outcome rows only: no labels
                del lines[1:3]
                return "\n".join(lines)
        lines += ["", _table(["task type", "n", "correct", "accuracy"], self._type_rows())]
        lines += ["", _table(["tier", "n", "correct", "accuracy"], self._tier_rows())]
        lines += ["", "confusion (rows: gold, columns: predicted)", self._confusion_table()]
        return "\n".join(lines)

    def _type_rows(self) -> list[list[Any]]:
        return [
            [t, int(v["n"]), int(v["correct"]), f"{v['accuracy']:.3f}"]
            for t, v in self.per_type.items()
        ]

    def _tier_rows(self) -> list[list[Any]]:
        return [
            [t, int(v["n"]), int(v["correct"]), f"{v['accuracy']:.3f}"]
            for t, v in self.per_tier.items()
        ]

    def _confusion_table(self) -> str:
        gold = list(self.confusion)
        predicted = sorted(
            {p for row in self.confusion.values() for p in row},
            key=lambda t: TASK_TYPES.index(t) if t in TASK_TYPES else len(TASK_TYPES),
        )
        short = [p[:6] for p in predicted]
        rows = [[g, *[self.confusion[g].get(p, "") or "." for p in predicted]] for g in gold]
        return _table(["gold \\ pred", *short], rows)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _order(keys: Iterable[str], reference: tuple[str, ...]) -> list[str]:
    return sorted(keys, key=lambda k: (reference.index(k) if k in reference else len(reference), k))


def evaluate_routing(
    router: Router,
    rows: Iterable[Mapping[str, Any]],
    *,
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> RoutingReport:
    """Run ``router.analyze`` on every row and compare with the labels.

    Latency is measured per decision with ``perf_counter`` after one warm-up call,
    so lazy loading (a model file) is not billed to the first row. Rows with
    ``outcomes`` are also scored as in RouteLLM (see :func:`outcome_figures`);
    ``prices`` (model → USD per 1M input and output tokens) gives their cost.
    """
    rows = list(rows)
    if rows:
        with contextlib.suppress(Exception):  # the timed loop records it
            router.analyze(_messages(rows[0]))
    type_n: dict[str, int] = {}
    type_ok: dict[str, int] = {}
    tier_n: dict[str, int] = {}
    tier_ok: dict[str, int] = {}
    confusion: dict[str, dict[str, int]] = {}
    predicted_tiers: dict[str, int] = {}
    latencies: list[float] = []
    misses: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    tp = fp = fn = 0
    typed = correct = 0
    scored: list[tuple[Mapping[str, Any], Any]] = []
    for index, row in enumerate(rows):
        messages = _messages(row)
        started = time.perf_counter()
        try:
            analysis = router.analyze(messages)
        except Exception as exc:
            latencies.append((time.perf_counter() - started) * 1000)
            errors.append({"row": index, "error": f"{type(exc).__name__}: {exc}"})
            pred_task, pred_tier = None, None
        else:
            latencies.append((time.perf_counter() - started) * 1000)
            pred_task, pred_tier = analysis.task_type, analysis.tier
            if isinstance(row.get("outcomes"), dict):
                scored.append((row, analysis))
        if pred_tier is not None:
            predicted_tiers[pred_tier] = predicted_tiers.get(pred_tier, 0) + 1
        task = row.get("task_type")
        if isinstance(task, str):
            typed += 1
            type_n[task] = type_n.get(task, 0) + 1
            confusion.setdefault(task, {})
            label = pred_task or "(error)"
            confusion[task][label] = confusion[task].get(label, 0) + 1
            if pred_task == task:
                correct += 1
                type_ok[task] = type_ok.get(task, 0) + 1
        tier = gold_tier(row)
        if tier is not None:
            tier_n[tier] = tier_n.get(tier, 0) + 1
            if pred_tier == tier:
                tier_ok[tier] = tier_ok.get(tier, 0) + 1
            gold_r, pred_r = tier == "reasoning", pred_tier == "reasoning"
            tp += gold_r and pred_r
            fp += pred_r and not gold_r
            fn += gold_r and not pred_r
        wrong = (isinstance(task, str) and pred_task != task) or (
            tier is not None and (tier == "reasoning") != (pred_tier == "reasoning")
        )
        if wrong and len(misses) < MAX_MISSES:
            prompt = row.get("prompt")
            head = prompt if isinstance(prompt, str) else json.dumps(messages, ensure_ascii=False)
            misses.append(
                {
                    "row": index,
                    "prompt": head[:120],
                    "gold": {"task_type": task, "tier": tier},
                    "predicted": {"task_type": pred_task, "tier": pred_tier},
                }
            )
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    ordered = sorted(latencies)
    return RoutingReport(
        router=getattr(router, "name", type(router).__name__),
        rows=len(rows),
        typed_rows=typed,
        task_correct=correct,
        per_type={
            t: {
                "n": type_n[t],
                "correct": type_ok.get(t, 0),
                "accuracy": _ratio(type_ok.get(t, 0), type_n[t]),
            }
            for t in _order(type_n, TASK_TYPES)
        },
        per_tier={
            t: {
                "n": tier_n[t],
                "correct": tier_ok.get(t, 0),
                "accuracy": _ratio(tier_ok.get(t, 0), tier_n[t]),
            }
            for t in _order(tier_n, TIERS)
        },
        reasoning={
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": tp,
            "fp": fp,
            "fn": fn,
        },
        confusion={t: confusion[t] for t in _order(confusion, TASK_TYPES)},
        predicted_tiers=predicted_tiers,
        latency_ms={
            "p50": _percentile(ordered, 50),
            "p99": _percentile(ordered, 99),
            "mean": sum(ordered) / len(ordered) if ordered else 0.0,
            "max": ordered[-1] if ordered else 0.0,
        },
        misses=misses,
        errors=errors,
        outcomes=outcome_figures(scored, prices=prices) if scored else None,
    )


# -- routing that learns from outcomes (RouteLLM's figures) ------------------------------

#: Completion tokens assumed per call when pricing a row (as the routing policy does).
COMPLETION_TOKENS = 400
#: Tiers that read as "send to the strong model" for a router that gives no score.
STRONG_TIERS = frozenset({"reasoning", "complex"})


def outcome_curve(
    scores: Iterable[float], weak_ok: Iterable[bool], strong_ok: Iterable[bool]
) -> dict[str, float]:
    """APGR, cpt50 and cpt80 of a router that sends the highest ``scores`` to the strong model.

    As in RouteLLM: sweep the share of strong calls from 0 to 1; at each share the
    performance gap recovered is ``(acc - weak_acc) / (strong_acc - weak_acc)``; APGR
    is its mean over the sweep (the area under the curve; random = 0.5), cpt50 and
    cpt80 the smallest shares that recover 50% and 80%. Equal scores are taken in
    random order, i.e. the curve is linear across a tie: a router with one score for
    everything is the random router, and a yes/no router is one point joined to both
    ends (0, 0) and (1, 1).
    """
    triples = sorted(zip(scores, weak_ok, strong_ok, strict=True), key=lambda t: -float(t[0]))
    n = len(triples)
    if n == 0:
        return {"apgr": 0.0, "cpt50": 1.0, "cpt80": 1.0}
    weak_acc = sum(bool(w) for _, w, _ in triples) / n
    strong_acc = sum(bool(s) for _, _, s in triples) / n
    gap = strong_acc - weak_acc
    if gap <= 0:
        return {"apgr": 0.0, "cpt50": 1.0, "cpt80": 1.0}
    points = [(0.0, 0.0)]  # (share of strong calls, gap recovered) at each tie group's end
    taken = 0
    gained = 0
    index = 0
    while index < n:
        score = triples[index][0]
        while index < n and triples[index][0] == score:
            _, w, st = triples[index]
            gained += int(bool(st)) - int(bool(w))
            taken += 1
            index += 1
        points.append((taken / n, gained / n / gap))
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(points))

    def share_for(level: float) -> float:
        for (x0, y0), (x1, y1) in pairwise(points):
            if y1 >= level:
                return x0 if y1 == y0 else x0 + (x1 - x0) * (level - y0) / (y1 - y0)
        return 1.0

    return {"apgr": area, "cpt50": share_for(0.5), "cpt80": share_for(0.8)}


def _row_cost(row: Mapping[str, Any], price: tuple[float, float] | None) -> float:
    if price is None:
        return 0.0
    tokens = estimate_messages_tokens(_messages(row))
    return (tokens * price[0] + COMPLETION_TOKENS * price[1]) / 1_000_000


def outcome_figures(
    scored: list[tuple[Mapping[str, Any], Any]],
    *,
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The outcome figures of ``(row, analysis)`` pairs, beside a random router.

    The weak and the strong model are the least and the most accurate of the rows'
    outcomes (rows lacking either are left out). The router's score is
    ``analysis.signals["route_score"]`` (higher: the strong model is more needed);
    a router without one scores 1 for the reasoning or complex tier, else 0. Its
    own decision is strong when ``analysis.target`` names the strong model (or,
    with no target, when the tier is reasoning or complex). ``cost_per_1k`` is USD
    per 1,000 requests from ``prices`` (0 for a model without one).
    """
    prices = prices or {}
    counts: dict[str, list[int]] = {}
    for row, _ in scored:
        for model, ok in row["outcomes"].items():
            n_ok = counts.setdefault(model, [0, 0])
            n_ok[0] += 1
            n_ok[1] += bool(ok)
    ranked = sorted(counts, key=lambda m: (counts[m][1] / counts[m][0], m))
    weak, strong = ranked[0], ranked[-1]
    pairs = [
        (row, analysis)
        for row, analysis in scored
        if weak in row["outcomes"] and strong in row["outcomes"]
    ]
    n = len(pairs)
    weak_ok = [bool(row["outcomes"][weak]) for row, _ in pairs]
    strong_ok = [bool(row["outcomes"][strong]) for row, _ in pairs]
    has_score = all(isinstance(a.signals.get("route_score"), (int, float)) for _, a in pairs)
    if has_score:
        scores = [float(a.signals["route_score"]) for _, a in pairs]
    else:
        scores = [1.0 if a.tier in STRONG_TIERS else 0.0 for _, a in pairs]
    chose_strong = [
        (a.target == strong) if getattr(a, "target", None) else (a.tier in STRONG_TIERS)
        for _, a in pairs
    ]
    weak_cost = [_row_cost(row, prices.get(weak)) for row, _ in pairs]
    strong_cost = [_row_cost(row, prices.get(strong)) for row, _ in pairs]
    weak_acc = _ratio(sum(weak_ok), n)
    strong_acc = _ratio(sum(strong_ok), n)
    gap = strong_acc - weak_acc
    share = _ratio(sum(chose_strong), n)
    accuracy = _ratio(
        sum((s if c else w) for w, s, c in zip(weak_ok, strong_ok, chose_strong, strict=True)),
        n,
    )
    cost = _ratio(
        sum(
            (sc if c else wc)
            for wc, sc, c in zip(weak_cost, strong_cost, chose_strong, strict=True)
        ),
        n,
    )
    mean_weak_cost, mean_strong_cost = _ratio(sum(weak_cost), n), _ratio(sum(strong_cost), n)
    random_acc = weak_acc + share * gap
    curve = outcome_curve(scores, weak_ok, strong_ok)
    oracle = _ratio(sum(w or s for w, s in zip(weak_ok, strong_ok, strict=True)), n)

    def pgr(acc: float) -> float:
        return (acc - weak_acc) / gap if gap > 0 else 0.0

    return {
        "rows": n,
        "weak": weak,
        "strong": strong,
        "weak_accuracy": round(weak_acc, 4),
        "strong_accuracy": round(strong_acc, 4),
        "oracle_accuracy": round(oracle, 4),
        "scored": has_score,
        "router": {
            "apgr": round(curve["apgr"], 4),
            "cpt50": round(curve["cpt50"], 4),
            "cpt80": round(curve["cpt80"], 4),
            "strong_share": round(share, 4),
            "accuracy": round(accuracy, 4),
            "pgr": round(pgr(accuracy), 4),
            "cost_per_1k": round(cost * 1000, 6),
        },
        "random": {
            "apgr": 0.5,
            "cpt50": 0.5,
            "cpt80": 0.8,
            "strong_share": round(share, 4),
            "accuracy": round(random_acc, 4),
            "pgr": round(pgr(random_acc), 4),
            "cost_per_1k": round(
                (mean_weak_cost + share * (mean_strong_cost - mean_weak_cost)) * 1000, 6
            ),
        },
    }


def _format_outcomes(o: dict[str, Any]) -> str:
    head = (
        f"outcomes on {o['rows']} rows: weak {o['weak']} {o['weak_accuracy']:.3f}, "
        f"strong {o['strong']} {o['strong_accuracy']:.3f}, oracle {o['oracle_accuracy']:.3f}"
        + ("" if o["scored"] else " (no score: reasoning/complex tier read as strong)")
    )
    keys = ["apgr", "cpt50", "cpt80", "strong_share", "accuracy", "pgr", "cost_per_1k"]
    rows = [[name, *[f"{o[name][k]:.4f}" for k in keys]] for name in ("router", "random")]
    return head + "\n" + _table(["", *keys], rows)
