"""Task-type accuracy and reasoning-tier F1 on prompts from new public sources, per source.

    python benchmarks/task_routing_eval.py [--routers rules,classifier] [--data FILE]
                                           [--dev ../shared/data/routing_dev.jsonl] [--json]
                                           [--misses N] [--loso]

Data: ``benchmarks/data/task_routing.jsonl`` (see the README next to it): HumanEval
and HumanEval-XL function stubs (English and Chinese docstrings), CMATH and
SVAMP word problems, Chinese-LLaMA-Alpaca's labelled example prompts and AGIEval
exam questions (Gaokao, SAT, LSAT). None of them is in the dev set or in the
classifier's training data, so every source is unseen by the shipped classifier;
for the hand-written rules router, docs/routing.md says which sources were looked
at while its rules were edited.

Per source and overall: task-type accuracy (rows with a ``task_type``) and
reasoning-tier F1 (rows with a tier; light and complex count as "not
reasoning"). A source whose rows are all reasoning-tier has no negatives, so
its F1 is driven by recall; the pooled figure is the one with both kinds.
With ``--dev`` the dev set's figures are printed too (they must not regress).

``--loso`` adds ``classifier-loso``: for each source, a classifier trained on the
dev set, the classifier's ``extra.jsonl`` and every *other* gathered source (rows
with a task type), tested on that source: what the gathered data would add if it
were trained on, measured leave-one-source-out. It trains one model per source
(about a minute each).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import coop
from coop import evaluate_routing

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "task_routing.jsonl"
DEV = ROOT.parent / "shared" / "data" / "routing_dev.jsonl"


def read(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in coop.read_jsonl(path)]


def figures(router: coop.Router, rows: list[dict[str, Any]]) -> dict[str, Any]:
    report = evaluate_routing(router, rows)
    r = report.reasoning
    return {
        "rows": report.rows,
        "typed_rows": report.typed_rows,
        "task_accuracy": round(report.task_accuracy, 4),
        "reasoning_f1": round(r["f1"], 4),
        "reasoning_precision": round(r["precision"], 4),
        "reasoning_recall": round(r["recall"], 4),
        "confusion": report.confusion,
        "misses": report.misses,
        "reasoning_counts": {k: r[k] for k in ("tp", "fp", "fn")},
    }


def evaluate(router: coop.Router, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Figures per ``source`` and over all rows (key ``overall``)."""
    sources: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        sources.setdefault(str(row.get("source", "?")), []).append(row)
    out = {name: figures(router, part) for name, part in sources.items()}
    out["overall"] = figures(router, rows)
    return out


def loso_classifier(rows: list[dict[str, Any]], dev: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source: a classifier trained without that source (see the module docstring)."""
    from coop_classifier import ClassifierRouter, train

    extra = read(ROOT / "plugins" / "routers" / "classifier" / "training" / "extra.jsonl")
    sources = sorted({str(r.get("source")) for r in rows})
    out: dict[str, Any] = {}
    for source in sources:
        training = [
            r for r in rows if r.get("source") != source and isinstance(r.get("task_type"), str)
        ]
        model = train([*dev, *extra, *training])
        out[source] = figures(
            ClassifierRouter(model=model), [r for r in rows if r.get("source") == source]
        )
    typed = sum(f["typed_rows"] for f in out.values())
    correct = sum(f["task_accuracy"] * f["typed_rows"] for f in out.values())
    tp_fp_fn = [0.0, 0.0, 0.0]
    for f in out.values():
        report_r = f["reasoning_counts"]
        for i, key in enumerate(("tp", "fp", "fn")):
            tp_fp_fn[i] += report_r[key]
    tp, fp, fn = tp_fp_fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out["overall"] = {
        "rows": sum(f["rows"] for f in out.values()),
        "typed_rows": typed,
        "task_accuracy": round(correct / typed, 4) if typed else 0.0,
        "reasoning_f1": round(f1, 4),
        "reasoning_precision": round(precision, 4),
        "reasoning_recall": round(recall, 4),
        "confusion": {},
        "misses": [],
        "reasoning_counts": {"tp": tp, "fp": fp, "fn": fn},
    }
    return out


def _fmt(value: float, n: int) -> str:
    return f"{value:.3f}" if n else "  -  "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routers", default="rules,classifier")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--dev", type=Path, default=DEV, help="dev set (skipped if absent)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", type=int, default=0, help="print N misrouted rows per source")
    parser.add_argument(
        "--loso", action="store_true", help="also retrain the classifier without each source"
    )
    args = parser.parse_args()

    plugins = coop.load_plugins()
    rows = read(args.data)
    dev = read(args.dev) if args.dev.is_file() else []
    results: dict[str, Any] = {}
    for name in args.routers.split(","):
        router = plugins.get("router", name)()
        results[name] = evaluate(router, rows)
        if dev:
            results[name]["dev set"] = figures(router, dev)
    if args.loso:
        results["classifier-loso"] = loso_classifier(rows, dev)
    if args.json:
        for per_source in results.values():
            for fig in per_source.values():
                fig.pop("misses")
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for name, per_source in results.items():
        print(f"router {name}")
        print(f"  {'source':<22} {'rows':>5} {'typed':>5} {'task acc':>9} {'reas. F1':>9}")
        for source, fig in per_source.items():
            print(
                f"  {source:<22} {fig['rows']:>5} {fig['typed_rows']:>5} "
                f"{_fmt(fig['task_accuracy'], fig['typed_rows']):>9} "
                f"{fig['reasoning_f1']:>9.3f}"
            )
            for miss in fig["misses"][: args.misses]:
                prompt = miss["prompt"].replace("\n", " ")[:90]
                print(f"      {miss['gold']} -> {miss['predicted']}: {prompt}")
        print()


if __name__ == "__main__":
    main()
