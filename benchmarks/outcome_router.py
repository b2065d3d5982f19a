"""The outcome router on MMLU: cross-validated APGR / cpt50 / cpt80 of several approaches,
beside random, the oracle, the rules and classifier routers, and decision latency.

Data: ``../shared/data/mmlu_outcomes_dev.jsonl`` (7,000 public rows, Mixtral-8x7B vs
GPT-4-1106). Every learned approach is scored by k-fold cross-validation (the same
folds for all; mean ± sd over folds), so its figures are on questions it never saw.
The rules and classifier routers are not trained on these rows: they are scored on
all of them, "reasoning or complex tier → strong" read as one point. Latency: the
shipped model's ``OutcomeRouter.analyze`` per decision (p50 / p99), beside the rules
router on the same prompts. Timing lives here, not in tests.

    python benchmarks/outcome_router.py [--folds 5] [--rows 7000] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from pathlib import Path
from typing import Any

import coop
import numpy as np
from coop._route_eval import outcome_figures
from coop_outcome import FEATURE_SETTINGS, OutcomeRouter, features, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mmlu_outcomes_dev.jsonl"
WEAK, STRONG = "mixtral-8x7b", "gpt-4-1106"


def folds_of(n: int, k: int, seed: int = 0) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def curve(scores: list[float], rows: list[dict[str, Any]]) -> dict[str, float]:
    return coop.outcome_curve(
        scores, [r["outcomes"][WEAK] for r in rows], [r["outcomes"][STRONG] for r in rows]
    )


def cv(rows: list[dict[str, Any]], parts: list[list[int]], score_fn: Any) -> dict[str, Any]:
    """``score_fn(train_rows, test_rows) -> scores``; figures per fold, then mean ± sd."""
    per = []
    for test in parts:
        held = set(test)
        tr = [rows[i] for i in range(len(rows)) if i not in held]
        te = [rows[i] for i in test]
        per.append(curve(score_fn(tr, te), te))
    out = {}
    for key in ("apgr", "cpt50", "cpt80"):
        values = [p[key] for p in per]
        out[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


def logistic(settings: dict[str, Any], score: str = "gain") -> Any:
    def run(tr: list[dict[str, Any]], te: list[dict[str, Any]]) -> list[float]:
        model = train(tr, feature_settings=settings)
        out = []
        for row in te:
            p = model.predict(row["prompt"])
            if score == "gain":
                out.append(p[STRONG] - p[WEAK])
            elif score == "weak":
                out.append(1.0 - p[WEAK])
            else:  # win: P(strong right) * P(weak wrong)
                out.append(p[STRONG] * (1 - p[WEAK]))
        return out

    return run


def dense(rows: list[dict[str, Any]], bits: int = 12) -> np.ndarray:
    settings = {**FEATURE_SETTINGS, "bits": bits}
    x = np.zeros((len(rows), 1 << bits), dtype=np.float32)
    for i, row in enumerate(rows):
        for slot, v in features(row["prompt"], settings).items():
            x[i, slot] += v
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-9)


def gains(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([float(r["outcomes"][STRONG]) - float(r["outcomes"][WEAK]) for r in rows])


def knn(k: int) -> Any:
    def run(tr: list[dict[str, Any]], te: list[dict[str, Any]]) -> list[float]:
        a, b, g = dense(tr), dense(te), gains(tr)
        sims = b @ a.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        return list(g[top].mean(axis=1))

    return run


def cluster_prior(clusters: int, seed: int = 0) -> Any:
    """Spherical k-means on word features, then each cluster's mean gain: a stand-in for
    a per-subject prior (the rows carry no subject; MMLU has 57)."""

    def run(tr: list[dict[str, Any]], te: list[dict[str, Any]]) -> list[float]:
        a, b, g = dense(tr), dense(te), gains(tr)
        rng = np.random.default_rng(seed)
        centres = a[rng.choice(len(a), clusters, replace=False)]
        for _ in range(15):
            label = np.argmax(a @ centres.T, axis=1)
            for c in range(clusters):
                members = a[label == c]
                if len(members):
                    centre = members.sum(axis=0)
                    centres[c] = centre / max(np.linalg.norm(centre), 1e-9)
        label = np.argmax(a @ centres.T, axis=1)
        prior = np.array(
            [
                (g[label == c].sum() + g.mean() * 5) / ((label == c).sum() + 5)
                for c in range(clusters)
            ]
        )
        return list(prior[np.argmax(b @ centres.T, axis=1)])

    return run


def one_point(router: coop.Router, rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [(r, router.analyze([{"role": "user", "content": r["prompt"]}])) for r in rows]
    return outcome_figures(scored)["router"]


def latency(router: coop.Router, prompts: list[str], repeat: int) -> dict[str, float]:
    """p50 / p99 in µs of wall time and of this thread's CPU time per decision.

    The CPU time leaves out the time the thread waited for a core: on a loaded box
    (here eight jobs on two cores) the wall p99 is the scheduler's, not the router's.
    """
    router.analyze([{"role": "user", "content": "warm up"}])
    wall, cpu = [], []
    gc.disable()
    try:
        for _ in range(repeat):
            for p in prompts:
                messages = [{"role": "user", "content": p}]
                c = time.thread_time_ns()
                t = time.perf_counter_ns()
                router.analyze(messages)
                wall.append((time.perf_counter_ns() - t) / 1000)
                cpu.append((time.thread_time_ns() - c) / 1000)
    finally:
        gc.enable()
    out = {}
    for name, values in (("wall", wall), ("cpu", cpu)):
        values.sort()
        out[f"{name}_p50"] = values[len(values) // 2]
        out[f"{name}_p99"] = values[min(len(values) - 1, int(len(values) * 0.99))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=7000)
    parser.add_argument("--quick", action="store_true", help="only the shipped approach")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-only", action="store_true")
    args = parser.parse_args()
    rows = [row for _, row in coop.read_jsonl(DATA)][: args.rows]
    if args.latency_only:
        measure_latency(rows, args.repeat)
        return
    parts = folds_of(len(rows), args.folds)
    weak_acc = statistics.mean(r["outcomes"][WEAK] for r in rows)
    strong_acc = statistics.mean(r["outcomes"][STRONG] for r in rows)
    print(
        f"{len(rows)} rows: {WEAK} {weak_acc:.3f}, {STRONG} {strong_acc:.3f}; {args.folds}-fold CV"
    )
    print(f"{'approach':58s} {'APGR':>13s} {'cpt50':>13s} {'cpt80':>13s}")

    def show(name: str, fig: dict[str, Any]) -> None:
        cells = [
            f"{fig[k][0]:.3f} ± {fig[k][1]:.3f}" if isinstance(fig[k], tuple) else f"{fig[k]:.3f}"
            for k in ("apgr", "cpt50", "cpt80")
        ]
        print(f"{name:58s} " + " ".join(f"{c:>13s}" for c in cells), flush=True)

    show("random", {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8})
    show("oracle (knows the outcomes)", curve([float(g) for g in gains(rows)], rows))
    approaches: list[tuple[str, Any]] = [
        ("logistic, words + shape, P(s)-P(w) [shipped]", logistic(FEATURE_SETTINGS)),
    ]
    if not args.quick:
        approaches += [
            (
                "logistic, words + pairs + shape, P(s)-P(w)",
                logistic({**FEATURE_SETTINGS, "bigrams": True}),
            ),
            ("logistic, words + shape, 1-P(w)", logistic(FEATURE_SETTINGS, "weak")),
            ("logistic, words + shape, P(s)(1-P(w))", logistic(FEATURE_SETTINGS, "win")),
            ("kNN (k=50, cosine on words), mean gain", knn(50)),
            ("cluster prior (57 k-means clusters ~ subjects)", cluster_prior(57)),
        ]
    for name, fn in approaches:
        show(name, cv(rows, parts, fn))
    plugins = coop.load_plugins()
    for name in ("rules", "classifier"):
        try:
            router = plugins.get("router", name)()
        except Exception as exc:  # not installed
            print(f"{name}: skipped ({exc})")
            continue
        fig = one_point(router, rows)
        show(
            f"{name} (reasoning/complex tier → strong, one point at share {fig['strong_share']:.3f})",
            fig,
        )

    measure_latency(rows, args.repeat)


def measure_latency(rows: list[dict[str, Any]], repeat: int) -> None:
    prompts = [r["prompt"] for r in rows[:2000]]
    shipped = OutcomeRouter()
    rules = coop.load_plugins().get("router", "rules")()
    o = latency(shipped, prompts, repeat)
    r = latency(rules, prompts, repeat)
    print(
        f"decision latency on {len(prompts)} MMLU prompts x{repeat} (µs, p50 / p99): "
        f"outcome wall {o['wall_p50']:.0f} / {o['wall_p99']:.0f}, cpu {o['cpu_p50']:.0f} / "
        f"{o['cpu_p99']:.0f}; rules wall {r['wall_p50']:.0f} / {r['wall_p99']:.0f}, cpu "
        f"{r['cpu_p50']:.0f} / {r['cpu_p99']:.0f} (outcome/rules cpu p50 "
        f"{o['cpu_p50'] / r['cpu_p50']:.2f})"
    )


if __name__ == "__main__":
    main()
