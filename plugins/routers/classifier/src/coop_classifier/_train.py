"""Train the classifier: softmax regression by SGD, in pure Python, in seconds.

Why SGD by hand: a thousand labelled prompts and a few tens of thousands of
sparse features need no library; keeping numpy out keeps the plugin a pure
Python install. Classes are weighted by 1/√frequency so a set dominated by math
word problems still learns chat and translation; features seen in fewer than
``min_df`` rows are dropped so the model cannot memorise single prompts.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from coop import TASK_TYPES, ValidationError, evaluate_routing
from coop_rules import LEXICON_SHA256

from ._features import FEATURE_SETTINGS, featurize
from ._model import LinearModel, softmax

__all__ = ["DEFAULTS", "data_hash", "row_messages", "train"]

#: Training settings; recorded in the model file.
DEFAULTS: dict[str, Any] = {
    "epochs": 18,
    "learning_rate": 0.6,
    "decay": 0.15,
    "l2": 2e-4,
    "min_df": 2,
    "seed": 20241125,
    "prune": 0.004,
}


def row_messages(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The OpenAI ``messages`` of a labelled row (``messages``, else ``prompt``)."""
    messages = row.get("messages")
    if isinstance(messages, list):
        return messages
    return [{"role": "user", "content": row.get("prompt", "")}]


def data_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 over the (prompt, task_type) pairs in order: names the training data."""
    digest = hashlib.sha256()
    for row in rows:
        key = row.get("messages") if isinstance(row.get("messages"), list) else row.get("prompt")
        digest.update(json.dumps([key, row.get("task_type")], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _check(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        raise ValidationError("no training rows", field="rows")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValidationError(f"row {index} is {type(row).__name__}, not an object")
        if not isinstance(row.get("prompt"), str) and not isinstance(row.get("messages"), list):
            raise ValidationError(f"row {index}: missing field 'prompt'", field="prompt")
        task = row.get("task_type")
        if task not in TASK_TYPES:
            problem = "missing field 'task_type'" if task is None else f"unknown task_type {task!r}"
            raise ValidationError(f"row {index}: {problem}", field="task_type")
    if len({row["task_type"] for row in rows}) < 2:
        raise ValidationError("training needs at least two task types", field="task_type")


def train(
    rows: Sequence[Mapping[str, Any]],
    *,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> LinearModel:
    """Train a :class:`LinearModel` on rows with ``prompt`` (or ``messages``) and ``task_type``.

    ``settings`` override :data:`DEFAULTS` (epochs, learning_rate, decay, l2,
    min_df, seed, prune). Raises :class:`coop.ValidationError` on bad rows.
    """
    _check(rows)
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValidationError(f"unknown training settings: {', '.join(sorted(unknown))}")
    cfg = {**DEFAULTS, **settings}
    present = {row["task_type"] for row in rows}
    labels = [t for t in TASK_TYPES if t in present]
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)

    featurized = [featurize(row_messages(row)) for row in rows]
    df: dict[str, int] = {}
    for text, _meta in featurized:
        for f in set(text):
            df[f] = df.get(f, 0) + 1
    keep = {f for f, n in df.items() if n >= cfg["min_df"]}
    counts = {label: 0 for label in labels}
    for row in rows:
        counts[row["task_type"]] += 1
    n = len(rows)
    class_weight = {label: math.sqrt(n / (k * c)) for label, c in counts.items()}

    weights: dict[str, list[float]] = {}
    data = []
    for (text, meta), row in zip(featurized, rows, strict=True):
        text_kept = sorted({f for f in text if f in keep})
        meta_kept = sorted(set(meta))
        for f in (*text_kept, *meta_kept):
            if f not in weights:
                weights[f] = [0.0] * k
        scale = 1.0 / math.sqrt(len(set(text))) if text else 0.0
        label = row["task_type"]
        data.append(
            (
                [weights[f] for f in text_kept],
                [weights[f] for f in meta_kept],
                scale,
                index[label],
                class_weight[label],
            )
        )

    bias = [0.0] * k
    rng = random.Random(cfg["seed"])
    order = list(range(n))
    for epoch in range(cfg["epochs"]):
        rng.shuffle(order)
        eta = cfg["learning_rate"] / (1.0 + cfg["decay"] * epoch)
        shrink = 1.0 - eta * cfg["l2"]
        loss = 0.0
        for i in order:
            text_rows, meta_rows, scale, y, cw = data[i]
            z = list(bias)
            if text_rows:
                z = [
                    a + scale * sum(col)
                    for a, col in zip(z, zip(*text_rows, strict=True), strict=True)
                ]
            if meta_rows:
                z = [a + sum(col) for a, col in zip(z, zip(*meta_rows, strict=True), strict=True)]
            p = softmax(z)
            loss -= cw * math.log(max(p[y], 1e-12))
            g = [eta * cw * pk for pk in p]
            g[y] -= eta * cw
            gt = [scale * gk for gk in g]
            for r in text_rows:
                r[:] = [w * shrink - gk for w, gk in zip(r, gt, strict=True)]
            for r in meta_rows:
                r[:] = [w * shrink - gk for w, gk in zip(r, g, strict=True)]
            bias = [b - 0.1 * gk for b, gk in zip(bias, g, strict=True)]
        if progress:
            progress(f"epoch {epoch + 1}/{cfg['epochs']}: loss {loss / n:.4f}")

    now = datetime.now(UTC)
    info = {
        "version": f"{now:%Y.%m.%d-%H%M}-{data_hash(rows)[:8]}",
        "created": now.isoformat(timespec="seconds"),
        # The meta features are the rules' scores: record which tables produced them.
        "feature_settings": {**FEATURE_SETTINGS, "rules_lexicon_sha256": LEXICON_SHA256},
        "training": {
            "rows": n,
            "per_type": counts,
            "data_sha256": data_hash(rows),
            "settings": cfg,
        },
    }
    return LinearModel(
        labels=labels,
        weights={f: tuple(row) for f, row in weights.items()},
        bias=bias,
        info=info,
    )


def folds_of(rows: Sequence[Mapping[str, Any]], folds: int, seed: int) -> list[int]:
    """A fold number per row, stratified by task type (each type spread over all folds)."""
    rng = random.Random(seed)
    by_type: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_type.setdefault(str(row.get("task_type")), []).append(i)
    fold = [0] * len(rows)
    offset = 0
    for task in sorted(by_type):
        members = by_type[task]
        rng.shuffle(members)
        for j, i in enumerate(members):
            fold[i] = (j + offset) % folds
        offset += len(members)
    return fold


def cross_validate(
    rows: Sequence[Mapping[str, Any]],
    *,
    folds: int = 5,
    extra_rows: Sequence[Mapping[str, Any]] = (),
    label_rows: Sequence[Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """k-fold figures on ``rows``: each fold is predicted by a model trained on the others.

    ``extra_rows`` join every training fold but are never tested. ``label_rows``
    (same length as ``rows``) gives the labels to score against when training
    used normalised ones. Returns the pooled :class:`coop.RoutingReport` as a dict.
    """
    from ._router import ClassifierRouter

    if folds < 2:
        raise ValidationError("cross-validation needs at least 2 folds", field="folds")
    gold = list(label_rows) if label_rows is not None else list(rows)
    assignment = folds_of(rows, folds, int(settings.get("seed", DEFAULTS["seed"])))
    reports: list[Any] = []
    for fold in range(folds):
        train_rows = [r for r, f in zip(rows, assignment, strict=True) if f != fold]
        model = train([*train_rows, *extra_rows], **settings)
        router = ClassifierRouter(model=model)
        test = [g for g, f in zip(gold, assignment, strict=True) if f == fold]
        reports.append(evaluate_routing(router, test))
        if progress:
            acc = reports[-1].task_accuracy
            progress(f"fold {fold + 1}/{folds}: task accuracy {acc:.3f}")
    return _pool(reports)


def _pool(reports: Sequence[Any]) -> dict[str, Any]:
    """Merge per-fold reports into one (sums of counts, recomputed ratios)."""
    per_type: dict[str, dict[str, float]] = {}
    confusion: dict[str, dict[str, int]] = {}
    tp = fp = fn = correct = typed = 0
    for report in reports:
        typed += report.typed_rows
        correct += report.task_correct
        tp += int(report.reasoning["tp"])
        fp += int(report.reasoning["fp"])
        fn += int(report.reasoning["fn"])
        for task, stats in report.per_type.items():
            slot = per_type.setdefault(task, {"n": 0, "correct": 0})
            slot["n"] += stats["n"]
            slot["correct"] += stats["correct"]
        for gold, row in report.confusion.items():
            target = confusion.setdefault(gold, {})
            for pred, count in row.items():
                target[pred] = target.get(pred, 0) + count
    for stats in per_type.values():
        stats["accuracy"] = round(stats["correct"] / stats["n"], 4) if stats["n"] else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "folds": len(reports),
        "rows": typed,
        "task_accuracy": round(correct / typed, 4) if typed else 0.0,
        "reasoning": {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        },
        "per_type": per_type,
        "confusion": confusion,
    }
