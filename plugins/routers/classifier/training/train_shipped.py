"""Rebuild the shipped model (``src/coop_classifier/model.json``) and report its CV figures.

    python train_shipped.py [PATH/TO/routing_dev.jsonl]

Data: the public dev set (default ``../../../../../shared/data/routing_dev.jsonl``)
plus ``extra.jsonl`` (hand-written and template rows for every task type).

One label normalisation, documented because it changes what is learnt: BELLE
files translation requests under "rewrite"; coop has a ``translation`` type, so
dev rows labelled rewrite whose instruction asks for a translation train as
``translation``. Cross-validation still scores against the original labels, so
the reported figures include the cost of that choice on dev-like data.

Figures reported: 5-fold stratified CV on the dev set (each fold predicted by a
model trained on the other folds plus all of extra.jsonl), leave-one-source-out
on the dev set (a proxy for data unlike the training data), CV on extra, and
both routers on ``holdout.jsonl`` (hand-written, never trained on).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from coop import evaluate_routing
from coop_classifier import ClassifierRouter, cross_validate, read_rows, train
from coop_rules import RulesRouter

HERE = Path(__file__).resolve().parent
DEFAULT_DEV = HERE.parents[4] / "shared" / "data" / "routing_dev.jsonl"
SHIPPED = HERE.parent / "src" / "coop_classifier" / "model.json"
_TRANSLATE = re.compile(r"翻译|译成|译为|翻成|translat", re.IGNORECASE)


def normalise(row: dict) -> dict:
    """BELLE's rewrite-that-is-a-translation becomes ``translation``."""
    if row.get("task_type") == "rewrite" and _TRANSLATE.search(str(row.get("prompt", ""))[:40]):
        return {**row, "task_type": "translation"}
    return row


def _summary(report: dict) -> dict:
    return {
        "task_accuracy": report["task_accuracy"],
        "reasoning_f1": report["reasoning"]["f1"],
        "reasoning_precision": report["reasoning"]["precision"],
        "reasoning_recall": report["reasoning"]["recall"],
        "per_type": {k: v["accuracy"] for k, v in report["per_type"].items()},
    }


def main() -> None:
    dev_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEV
    dev = read_rows(dev_path)
    extra = read_rows(HERE / "extra.jsonl")
    dev_norm = [normalise(r) for r in dev]
    changed = sum(a is not b for a, b in zip(dev, dev_norm, strict=True))
    print(
        f"dev {len(dev)} rows ({changed} relabelled rewrite→translation), extra {len(extra)} rows"
    )

    say = print
    cv_dev = cross_validate(dev_norm, folds=5, extra_rows=extra, label_rows=dev, progress=say)
    cv_extra = cross_validate(extra, folds=5, extra_rows=dev_norm)
    by_source: dict[str, dict] = {}
    for source in sorted({r.get("source", "?") for r in dev}):
        held = [r for r in dev if r.get("source") == source]
        model = train([r for r in dev_norm if r.get("source") != source] + extra)
        report = evaluate_routing(ClassifierRouter(model=model), held)
        by_source[source] = {
            "rows": len(held),
            "task_accuracy": round(report.task_accuracy, 4),
            "reasoning_f1": round(report.reasoning_f1, 4),
        }
    metrics = {
        "dev_cv5": _summary(cv_dev),
        "extra_cv5": _summary(cv_extra),
        "dev_leave_source_out": by_source,
    }
    print(json.dumps(metrics, indent=2, ensure_ascii=False))

    model = train([*dev_norm, *extra])
    # holdout.jsonl is never trained on: both routers' figures on data unlike the rest.
    holdout = read_rows(HERE / "holdout.jsonl")
    for name, router in (("classifier", ClassifierRouter(model=model)), ("rules", RulesRouter())):
        report = evaluate_routing(router, holdout)
        metrics[f"holdout_{name}"] = {
            "rows": len(holdout),
            "task_accuracy": round(report.task_accuracy, 4),
            "reasoning_f1": round(report.reasoning_f1, 4),
            "per_type": {k: round(v["accuracy"], 4) for k, v in report.per_type.items()},
        }
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith("holdout")}, indent=2))
    model.info["metrics"] = metrics
    model.info["training"]["sources"] = {
        "routing_dev.jsonl": len(dev),
        "extra.jsonl": len(extra),
        "relabelled_translation": changed,
    }
    model.save(SHIPPED, prune=model.info["training"]["settings"]["prune"])
    size = SHIPPED.stat().st_size
    print(f"wrote {SHIPPED} ({size / 1024:.0f} KiB, version {model.version})")


if __name__ == "__main__":
    main()
