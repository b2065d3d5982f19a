"""Read outcome rows, train the per-model regressions with numpy, cross-validate.

Training is full-batch logistic regression with AdaGrad steps and an L2 penalty,
on the hashed features of :mod:`._features`; it takes seconds for thousands of
rows on one CPU. Cross-validation scores each held-out fold by the estimated
accuracy gain of the strong model over the weak one and reports APGR and the
shares of strong calls needed to recover 50% and 80% of the gap (cpt50, cpt80).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from coop import ConfigError, estimate_messages_tokens, outcome_curve, read_jsonl

from ._features import FEATURE_SETTINGS, features, prompt_text
from ._model import OutcomeModel

__all__ = ["DEFAULTS", "cross_validate", "read_outcome_rows", "train"]

#: Training settings (recorded in the model file).
DEFAULTS: dict[str, Any] = {
    "iterations": 200,
    "learning_rate": 0.5,
    "l2": 1e-4,
    "seed": 0,
    "calibrate_held_out": True,
}
#: Training rows whose predictions are kept in the file to turn shares into thresholds.
CALIBRATION_ROWS = 2000
#: Completion tokens assumed per call when turning prices into a cost per call.
COMPLETION_TOKENS = 400


def read_outcome_rows(
    path: str | os.PathLike[str], *, configured: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Rows ``{"prompt", "outcomes": {model: bool, ...}}``; errors name the file and line.

    Every row needs a prompt (or ``messages``) and outcomes for at least two models,
    as booleans; with ``configured``, every outcome's model must be one of them.
    """
    file = Path(path)
    where = str(file)
    known = None if configured is None else set(configured)
    rows: list[dict[str, Any]] = []
    for number, row in read_jsonl(file):
        if not isinstance(row.get("prompt"), str) and not isinstance(row.get("messages"), list):
            raise ConfigError(
                "missing field 'prompt' (a string) or 'messages' (a list)", path=where, line=number
            )
        outcomes = row.get("outcomes")
        if not isinstance(outcomes, dict) or not outcomes:
            raise ConfigError(
                'no outcomes: a row needs \'outcomes\', e.g. {"weak": true, "strong": false}',
                path=where,
                line=number,
            )
        if len(outcomes) < 2:
            raise ConfigError(
                f"outcomes for one model only ({next(iter(outcomes))!r}); a router learns "
                "from at least two models' outcomes on the same prompt",
                path=where,
                line=number,
            )
        for model, ok in outcomes.items():
            if not isinstance(ok, bool):
                raise ConfigError(
                    f"outcome of {model!r} is {ok!r}; expected true or false",
                    path=where,
                    line=number,
                )
            if known is not None and model not in known:
                raise ConfigError(
                    f"outcome for model {model!r}, which is not configured "
                    f"(configured models: {', '.join(sorted(known)) or 'none'})",
                    path=where,
                    line=number,
                )
        rows.append(row)
    if not rows:
        raise ConfigError("no rows (the file is empty)", path=where)
    return rows


def _text(row: Mapping[str, Any]) -> str:
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    return prompt_text(row["messages"])


def data_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([_text(row), row["outcomes"]], sort_keys=True).encode())
    return digest.hexdigest()


def _models(rows: list[dict[str, Any]]) -> list[str]:
    models: list[str] = []
    for row in rows:
        for m in row["outcomes"]:
            if m not in models:
                models.append(m)
    return models


def _matrix(texts: list[str], settings: dict[str, Any]) -> Any:
    import numpy as np

    idx: list[int] = []
    val: list[float] = []
    ptr = [0]
    for text in texts:
        f = features(text, settings)
        idx.extend(f)
        val.extend(f.values())
        ptr.append(len(idx))
    return np.array(idx, dtype=np.int64), np.array(val), np.array(ptr)


def _fit(x: Any, y: Any, mask: Any, dim: int, settings: Mapping[str, Any]) -> tuple[Any, float]:
    """Logistic regression on the rows where ``mask`` (the model has an outcome)."""
    import numpy as np

    idx, val, ptr = x
    n = len(ptr) - 1
    rowid = np.repeat(np.arange(n), np.diff(ptr))
    weight = mask.astype(float)
    count = max(weight.sum(), 1.0)
    rate = float(np.clip((y * weight).sum() / count, 1e-3, 1 - 1e-3))
    w = np.zeros(dim)
    b = float(np.log(rate / (1 - rate)))
    g2 = np.full(dim, 1e-8)
    lr, l2 = settings["learning_rate"], settings["l2"]
    for _ in range(settings["iterations"]):
        z = np.bincount(rowid, weights=w[idx] * val, minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - y) * weight / count
        g = np.bincount(idx, weights=val * r[rowid], minlength=dim) + l2 * w
        b -= lr * float(r.sum())
        g2 += g * g
        w -= lr * g / np.sqrt(g2)
    return w, b


def train(
    rows: list[dict[str, Any]],
    *,
    costs: Mapping[str, float] | None = None,
    feature_settings: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> OutcomeModel:
    """Fit one regression per model found in ``rows``' outcomes."""
    import numpy as np

    opts = {**DEFAULTS, **settings}
    fs = dict(feature_settings or FEATURE_SETTINGS)
    dim = 1 << fs["bits"]
    models = _models(rows)
    x = _matrix([_text(r) for r in rows], fs)
    weights = []
    biases = []
    for m in models:
        y = np.array([float(r["outcomes"].get(m, False)) for r in rows])
        mask = np.array([m in r["outcomes"] for r in rows])
        w, b = _fit(x, y, mask, dim, opts)
        weights.append(w)
        biases.append(b)
        if progress:
            progress(f"trained {m} on {int(mask.sum())} rows")
    stacked = np.vstack(weights)
    slots = np.nonzero(np.any(np.abs(stacked) > 1e-6, axis=0))[0]
    table = {int(s): tuple(float(v) for v in stacked[:, s]) for s in slots}
    accuracy = {
        m: round(
            sum(r["outcomes"][m] for r in rows if m in r["outcomes"])
            / max(1, sum(m in r["outcomes"] for r in rows)),
            4,
        )
        for m in models
    }
    digest = data_hash(rows)
    info = {
        "version": f"outcome-{digest[:8]}",
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_sha256": digest,
        "rows": len(rows),
        "accuracy": accuracy,
        "costs": {m: float((costs or {}).get(m, 0.0)) for m in models},
        "training": opts,
    }
    model = OutcomeModel(models, table, biases, fs, info)
    model.calibration = _calibration(rows, model, fs, opts, progress)
    return model


def _calibration(
    rows: list[dict[str, Any]],
    model: OutcomeModel,
    fs: dict[str, Any],
    opts: dict[str, Any],
    progress: Callable[[str], None] | None,
) -> dict[str, list[float]]:
    """Predictions on up to :data:`CALIBRATION_ROWS` rows, each made by a model that did
    not see it (2-fold): in-sample predictions are more spread out than those on new
    prompts, so a share of strong calls set on them would not hold in traffic."""
    order = list(range(len(rows)))
    random.Random(opts["seed"]).shuffle(order)
    sample = order[:CALIBRATION_ROWS]
    if len(rows) < 20 or not opts.get("calibrate_held_out", True):
        predicted = [model.predict(_text(rows[i])) for i in sample]
    else:
        halves = [order[0::2], order[1::2]]
        by_row: dict[int, dict[str, float]] = {}
        for k, half in enumerate(halves):
            other = halves[1 - k]
            wanted = [i for i in sample if i in set(other)]
            part = train(
                [rows[i] for i in half],
                feature_settings=fs,
                **{**opts, "calibrate_held_out": False},
            )
            for i in wanted:
                by_row[i] = part.predict(_text(rows[i]))
        predicted = [by_row[i] for i in sample]
        if progress:
            progress(f"calibration: {len(sample)} held-out predictions (2-fold)")
    return {m: [p.get(m, 0.0) for p in predicted] for m in model.models}


def cost_per_call(
    rows: list[dict[str, Any]], prices: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """model → mean USD per call over ``rows`` from (input, output) USD per 1M tokens."""
    if not rows:
        return {}
    tokens = sum(
        estimate_messages_tokens([{"role": "user", "content": _text(r)}]) for r in rows
    ) / len(rows)
    return {
        m: (tokens * p_in + COMPLETION_TOKENS * p_out) / 1e6 for m, (p_in, p_out) in prices.items()
    }


def weak_and_strong(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The least and the most accurate model in ``rows``."""
    models = _models(rows)
    acc = {
        m: sum(r["outcomes"].get(m, False) for r in rows)
        / max(1, sum(m in r["outcomes"] for r in rows))
        for m in models
    }
    ordered = sorted(models, key=lambda m: acc[m])
    return ordered[0], ordered[-1]


def cross_validate(
    rows: list[dict[str, Any]],
    *,
    folds: int = 5,
    weak: str | None = None,
    strong: str | None = None,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """k-fold APGR, cpt50 and cpt80 of ``P(strong right) - P(weak right)`` (mean and sd)."""
    if folds < 2 or folds > len(rows):
        raise ConfigError(f"cross-validation needs 2..{len(rows)} folds, not {folds}", key="--cv")
    default_weak, default_strong = weak_and_strong(rows)
    weak, strong = weak or default_weak, strong or default_strong
    order = list(range(len(rows)))
    random.Random(settings.get("seed", DEFAULTS["seed"])).shuffle(order)
    parts = [order[k::folds] for k in range(folds)]
    figures: list[dict[str, float]] = []
    for k, test in enumerate(parts):
        held = set(test)
        model = train(
            [rows[i] for i in order if i not in held],
            **{**settings, "calibrate_held_out": False},
        )
        both = [
            rows[i] for i in test if weak in rows[i]["outcomes"] and strong in rows[i]["outcomes"]
        ]
        scores = []
        for row in both:
            p = model.predict(_text(row))
            scores.append(p.get(strong, 0.0) - p.get(weak, 0.0))
        curve = outcome_curve(
            scores,
            [row["outcomes"][weak] for row in both],
            [row["outcomes"][strong] for row in both],
        )
        figures.append(curve)
        if progress:
            progress(
                f"fold {k + 1}/{folds}: APGR {curve['apgr']:.3f} cpt50 {curve['cpt50']:.3f} "
                f"cpt80 {curve['cpt80']:.3f}"
            )
    out: dict[str, Any] = {"folds": folds, "weak": weak, "strong": strong}
    for key in ("apgr", "cpt50", "cpt80"):
        values = [f[key] for f in figures]
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
        out[key] = round(mean, 4)
        out[f"{key}_sd"] = round(sd, 4)
    return out
