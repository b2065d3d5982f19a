"""Evaluate a cooperation strategy on recorded answers, against each single model.

Recorded rows (one question each: a reference answer and every model's recorded
output) let a strategy be measured and regression-tested for free. Accuracy is
judged by extracting each final answer with :func:`coop.extract_answer` and
comparing it with the reference, never by trusting a label; when rows carry
correctness labels (``is_correct``) the report says how often extraction agrees
with them, so a bad extractor cannot hide.

Anything a strategy learns (``Strategy.learn(records)``, e.g. ``weighted``'s
weights) and the order of the models (``order="accuracy"``: most accurate model
first, which wins ties, and with ``majority="absolute"`` decides when there is
no majority) come from k-fold cross-validation: each fold is integrated with
what was learned on the other folds only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from ._answers import Answer, answers_match, extract_answer
from ._errors import ConfigError, CooperationError, ValidationError
from ._jsonl import read_jsonl
from ._strategies import Candidate, Strategy, StrategyContext

__all__ = [
    "CooperationReport",
    "EvalRow",
    "ModelScore",
    "evaluate_voting",
    "learn_settings",
    "load_rows",
    "save_learned",
]

TRUTH_KEYS = ("ground_truth", "answer", "reference", "target")
TEXT_KEYS = ("solution", "text", "response", "output", "content")
LABEL_KEYS = ("is_correct", "correct")


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines skipped; lines end at ``\\n`` only)."""
    return [row for _, row in read_jsonl(path)]


def _model_output(
    row: Mapping[str, Any], model: str
) -> tuple[str | None, bool | None, dict[str, Any]]:
    """(text, label, extras) of one model's recorded output in a row."""
    value = row.get(model)
    if value is None:
        return None, None, {}
    if isinstance(value, str):
        return value, None, {}
    if isinstance(value, Mapping):
        text = next((value[k] for k in TEXT_KEYS if isinstance(value.get(k), str)), None)
        label = next((bool(value[k]) for k in LABEL_KEYS if value.get(k) is not None), None)
        extras = {k: value[k] for k in ("latency", "cost", "usage") if k in value}
        return text, label, extras
    raise ValidationError(f"row field {model!r} must be text or an object with 'solution'")


def _truth(row: Mapping[str, Any]) -> Answer | None:
    for key in TRUTH_KEYS:
        if row.get(key) is not None:
            return extract_answer(str(row[key]))
    raise ValidationError(f"row has no reference answer (one of {', '.join(TRUTH_KEYS)})")


def _fmt(answer: Answer | None) -> str | None:
    return None if answer is None else str(answer)


@attrs.define
class ModelScore:
    """One single model's accuracy, and how far extraction agrees with the labels."""

    model: str
    correct: int = 0
    questions: int = 0
    answered: int = 0
    labelled: int = 0
    label_agreements: int = 0
    latency: float = 0.0
    cost: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    @property
    def label_agreement(self) -> float | None:
        return self.label_agreements / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **attrs.asdict(self),
            "accuracy": self.accuracy,
            "label_agreement": self.label_agreement,
        }


@attrs.define
class EvalRow:
    """One question's outcome: the reference, each model's answer, the integrated one."""

    index: int
    truth: str | None
    answer: str | None
    correct: bool
    answers: dict[str, str | None]
    winner: str | None = None
    confidence: float | None = None
    method: str | None = None


@attrs.define
class CooperationReport:
    """Accuracy of a strategy's integrated answer against each single model."""

    strategy: str
    models: list[str]
    questions: int
    singles: dict[str, ModelScore]
    correct: int
    folds: int
    order: str
    #: What each fold learned (weights...), and the order of the models it used.
    learned: list[dict[str, Any]] = attrs.field(factory=list)
    rows: list[EvalRow] = attrs.field(factory=list)
    #: (model, question) pairs where extraction and the row's label disagree, to inspect.
    disagreements: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    @property
    def best_single(self) -> ModelScore:
        return max(self.singles.values(), key=lambda s: s.accuracy)

    @property
    def label_agreement(self) -> float | None:
        """Share of labelled (model, question) pairs where extraction matches the label."""
        labelled = sum(s.labelled for s in self.singles.values())
        agree = sum(s.label_agreements for s in self.singles.values())
        return agree / labelled if labelled else None

    def to_dict(self, *, rows: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "models": list(self.models),
            "questions": self.questions,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "best_single": {"model": self.best_single.model, "accuracy": self.best_single.accuracy},
            "gain_over_best_single": self.accuracy - self.best_single.accuracy,
            "label_agreement": self.label_agreement,
            "singles": {m: s.to_dict() for m, s in self.singles.items()},
            "folds": self.folds,
            "order": self.order,
            "learned": self.learned,
            "disagreements": self.disagreements,
        }
        if rows:
            out["rows"] = [attrs.asdict(r) for r in self.rows]
        return out

    def format(self) -> str:
        """A plain-text table: each single model, then the integrated answer."""
        width = max(len(m) for m in [*self.models, self.strategy + " (integrated)"]) + 2
        costs = any(s.cost or s.latency for s in self.singles.values())
        lines = [
            f"{self.strategy} over {len(self.models)} models, {self.questions} questions"
            + (f", {self.folds}-fold cross-validation" if self.folds > 1 else "")
            + f", lead order: {self.order}",
            f"{'model':<{width}}{'accuracy':>10}  extraction vs labels",
        ]
        for s in self.singles.values():
            agree = (
                f"{s.label_agreement:.1%} ({s.label_agreements}/{s.labelled})"
                if s.label_agreement is not None
                else "-"
            )
            extra = (
                f"  mean latency {s.latency / max(s.questions, 1):.2f}s, cost ${s.cost:.4f}"
                if costs
                else ""
            )
            lines.append(f"{s.model:<{width}}{s.accuracy:>10.1%}  {agree}{extra}")
        name = f"{self.strategy} (integrated)"
        extra = ""
        if costs:  # parallel: waits for the slowest model, pays for every one
            cost = sum(s.cost for s in self.singles.values())
            slowest = max(s.latency / max(s.questions, 1) for s in self.singles.values())
            extra = f"  cost ${cost:.4f}, latency >= {slowest:.2f}s (plus strategy calls)"
        lines.append(f"{name:<{width}}{self.accuracy:>10.1%}{extra}")
        best = self.best_single
        diff = (self.accuracy - best.accuracy) * 100
        lines.append(
            f"best single: {best.model} {best.accuracy:.1%}; integrated {diff:+.1f} points"
        )
        if self.label_agreement is not None:
            lines.append(f"extraction agrees with labels on {self.label_agreement:.1%}")
        return "\n".join(lines)


def _check(rows: Sequence[Any], models: Sequence[str]) -> None:
    if not models:
        raise ValidationError("no models to evaluate", field="models")
    if len(set(models)) != len(models):
        raise ValidationError("models must be distinct", field="models", value=models)
    if not rows:
        raise ValidationError("no rows to evaluate", field="rows")


async def _offline_complete(model: str, messages: list[dict[str, Any]]) -> str:
    raise CooperationError(
        f"offline evaluation has no upstream to call {model!r}; pass complete= to evaluate "
        "strategies that call models"
    )


def _resolve(
    strategy: str | Strategy | type[Strategy], plugins: Any
) -> tuple[type[Strategy], dict[str, Any]]:
    if isinstance(strategy, Strategy):
        return type(strategy), dict(strategy.settings)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy, {}
    if isinstance(strategy, str):
        if plugins is None:
            from ._plugins import load_plugins

            plugins = load_plugins()
        return plugins.get("strategy", strategy), {}
    raise ValidationError(f"not a strategy: {strategy!r}", field="strategy")


async def evaluate_voting(
    rows: Iterable[Mapping[str, Any]],
    models: Sequence[str],
    strategy: str | Strategy | type[Strategy] = "voting",
    *,
    settings: Mapping[str, Any] | None = None,
    folds: int = 5,
    order: Literal["accuracy", "given"] = "accuracy",
    plugins: Any = None,
    complete: Callable[[str, list[dict[str, Any]]], Awaitable[str]] | None = None,
) -> CooperationReport:
    """Run ``strategy`` over each row's recorded outputs of ``models``; score it.

    ``rows`` hold a reference (``ground_truth``/``answer``) and, per model, text
    or ``{"solution", "is_correct"}``. ``strategy`` is a registered name, a
    class or an instance (its settings are kept; ``settings`` adds to them).
    ``order="accuracy"`` lists models most-accurate-first (learned out of fold),
    since the order breaks ties (and names the lead of an ``"absolute"``
    majority), so the order ``models`` are passed in does not change the score;
    ``"given"`` keeps ``models`` as passed. ``folds`` (>= 2) sets the k of the
    cross-validation that also feeds ``Strategy.learn(records)`` when the
    strategy has one.
    """
    rows = list(rows)
    models = list(models)
    _check(rows, models)
    if order not in ("accuracy", "given"):
        raise ValidationError("must be 'accuracy' or 'given'", field="order", value=order)
    cls, base_settings = _resolve(strategy, plugins)
    base_settings.update(settings or {})
    if folds < 2 and (order == "accuracy" or cls.learns):
        raise ValidationError("cross-validation needs folds >= 2", field="folds", value=folds)
    folds = min(folds, len(rows)) if folds >= 2 else 1

    truths = [_truth(r) for r in rows]
    texts: list[dict[str, str | None]] = []
    answers: list[dict[str, Answer | None]] = []
    right: list[dict[str, bool]] = []
    singles = {m: ModelScore(m) for m in models}
    disagreements: list[dict[str, Any]] = []
    for row, truth in zip(rows, truths, strict=True):
        t_row, a_row, r_row = {}, {}, {}
        question = str(row.get("question") or "") or None
        for m in models:
            text, label, extras = _model_output(row, m)
            answer = extract_answer(text, question=question) if text else None
            ok = answers_match(answer, truth)
            t_row[m], a_row[m], r_row[m] = text, answer, ok
            s = singles[m]
            s.questions += 1
            s.correct += ok
            s.answered += answer is not None
            s.latency += float(extras.get("latency") or 0.0)
            s.cost += float(extras.get("cost") or 0.0)
            if label is not None:
                s.labelled += 1
                s.label_agreements += label == ok
                if label != ok:
                    disagreements.append(
                        {
                            "index": len(texts),
                            "model": m,
                            "label": label,
                            "extracted": _fmt(answer),
                            "truth": _fmt(truth),
                        }
                    )
        texts.append(t_row)
        answers.append(a_row)
        right.append(r_row)

    report = CooperationReport(
        strategy=getattr(cls, "name", cls.__name__),
        models=models,
        questions=len(rows),
        singles=singles,
        correct=0,
        folds=folds,
        order=order,
        disagreements=disagreements,
    )
    results: dict[int, EvalRow] = {}
    for fold in range(folds):
        test = [i for i in range(len(rows)) if i % folds == fold]
        train = [i for i in range(len(rows)) if i % folds != fold] if folds > 1 else []
        fold_order = list(models)
        if order == "accuracy":
            acc = {m: sum(right[i][m] for i in train) for m in models}
            fold_order.sort(key=lambda m: -acc[m])  # stable: ties keep the given order
        fold_settings = dict(base_settings)
        learned: dict[str, Any] = {}
        if cls.learns and train:
            records = [
                {"question": i, "model": m, "answer": answers[i][m], "correct": right[i][m]}
                for i in train
                for m in models
            ]
            learned = dict(cls.learn(records))
            fold_settings.update(learned)
        report.learned.append({"fold": fold, "order": fold_order, **learned})
        instance = cls(fold_settings)
        for i in test:
            candidates = [
                Candidate(model=m, text=texts[i][m] or "") for m in fold_order if texts[i][m]
            ]
            if not candidates:
                results[i] = EvalRow(i, _fmt(truths[i]), None, False, {})
                continue
            context = StrategyContext(
                query=str(rows[i].get("question", "")),
                complete=complete or _offline_complete,
                models=[c.model for c in candidates],
                settings=fold_settings,
            )
            integration = await instance.integrate(candidates, context)
            final = extract_answer(integration.text, question=context.query or None)
            ok = answers_match(final, truths[i])
            results[i] = EvalRow(
                index=i,
                truth=_fmt(truths[i]),
                answer=_fmt(final),
                correct=ok,
                answers={m: _fmt(answers[i][m]) for m in models},
                winner=integration.winner,
                confidence=integration.confidence,
                method=integration.evidence.get("method"),
            )
    report.rows = [results[i] for i in range(len(rows))]
    report.correct = sum(r.correct for r in report.rows)
    return report


def learn_settings(
    rows: Iterable[Mapping[str, Any]],
    models: Sequence[str],
    strategy: str | Strategy | type[Strategy],
    *,
    plugins: Any = None,
) -> dict[str, Any]:
    """What ``strategy`` learns from all ``rows`` at once (``Strategy.learn(records)``).

    The settings to deploy once an evaluation has shown they hold out of fold:
    the records are those each fold of :func:`evaluate_voting` learns from
    (``{"question", "model", "answer", "correct"}``), for every row. A strategy
    without ``learn`` learns nothing: that is a :class:`ValidationError`.
    """
    rows = list(rows)
    models = list(models)
    _check(rows, models)
    cls, _ = _resolve(strategy, plugins)
    if not cls.learns:
        name = getattr(cls, "name", cls.__name__)
        raise ValidationError(
            f"strategy {name!r} learns nothing from recorded answers", field="strategy"
        )
    records = []
    for i, row in enumerate(rows):
        truth = _truth(row)
        question = str(row.get("question") or "") or None
        for m in models:
            text, _label, _extras = _model_output(row, m)
            answer = extract_answer(text, question=question) if text else None
            correct = answers_match(answer, truth)
            records.append({"question": i, "model": m, "answer": answer, "correct": correct})
    return dict(cls.learn(records))


def save_learned(path: str | Path, learned: Mapping[str, Any], **meta: Any) -> None:
    """Write learned settings and ``meta`` as one JSON object, atomically (a learned
    key wins over a meta key of the same name). For ``weighted`` that is
    ``{"weights": {...}, ...}``: the format its ``save_weights`` writes and its
    ``weights_file`` setting reads."""
    import json

    from ._files import atomic_write

    try:
        text = json.dumps({**meta, **learned}, indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"learned settings are not JSON: {exc}", field="learned") from exc
    try:
        atomic_write(Path(path), text + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", path=str(path)) from exc
