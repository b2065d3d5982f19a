"""The ``weighted`` strategy: voting where each model's vote weighs what it has earned.

Weights come from ``[cooperations.X] weights = {model = w}``, from a JSON file
(``weights_file``, written by :func:`save_weights`), or from each candidate's
own weight. :func:`learn_weights` turns observed right/wrong records into
weights: the log-odds of each model's Laplace-smoothed accuracy, so a model
right 88% of the time outweighs two that are right 55% and 60%.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from coop import (
    Answer,
    Candidate,
    ConfigError,
    Integration,
    Strategy,
    StrategyContext,
    answers_match,
    extract_answer,
    hookimpl,
)
from coop_voting import vote, vote_options

__all__ = [
    "WeightedStrategy",
    "learn_weights",
    "load_weights",
    "save_weights",
]

#: Offsets tried when ``offset="auto"``: 0 is plain log-odds; each step adds
#: ``log(k - 1)`` for k equally likely wrong answers, i.e. trusts agreement more.
OFFSET_GRID = tuple(i / 4 for i in range(17))


def _record(rec: Any) -> tuple[str, bool, Any, Any]:
    """(model, correct, question, answer) from a mapping or a (model, correct) pair."""
    if isinstance(rec, Mapping):
        return (str(rec["model"]), bool(rec["correct"]), rec.get("question"), rec.get("answer"))
    model, correct = rec
    return str(model), bool(correct), None, None


def _log_odds(records: list[tuple[str, bool, Any, Any]], smoothing: float) -> dict[str, float]:
    right: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    for model, correct, _q, _a in records:
        seen[model] += 1
        right[model] += correct
    out = {}
    for model in seen:
        p = (right[model] + smoothing) / (seen[model] + 2 * smoothing)
        out[model] = math.log(p / (1 - p))
    return out


def learn_weights(
    records: Iterable[Mapping[str, Any] | tuple[str, bool]],
    *,
    smoothing: float = 1.0,
    offset: float | Literal["auto"] = "auto",
    min_weight: float = 0.0,
    significance: float = 1.96,
) -> dict[str, float]:
    """Model weights from observed accuracy: ``log(p / (1 - p)) + offset``.

    ``records`` are ``{"model", "correct"}`` mappings or ``(model, correct)``
    pairs; ``p`` is Laplace-smoothed (``(right + s) / (n + 2s)``) so a model
    seen three times is not trusted absolutely. Plain log-odds suit two-way
    choices; with many possible answers, wrong models rarely agree, so
    agreement deserves more trust: that is the ``offset`` (``log(k - 1)`` for
    ``k`` equally likely answers). ``"auto"`` fits it when records also carry
    ``question`` and ``answer`` (the answers that question's models gave): the
    grid offset whose weighted vote fixes the most questions net of those it
    breaks, relative to offset 0, and only if that net gain passes a McNemar
    test at ``significance`` standard errors (a gain of 3 out of 5 changed
    questions is luck, not evidence); without them the offset is 0. Weights below
    ``min_weight`` are raised to it (a negative vote would push away from a
    right answer that a weak model happened to share).
    """
    recs = [_record(r) for r in records]
    if not recs:
        return {}
    base = _log_odds(recs, smoothing)
    if offset == "auto":
        offset = _fit_offset(recs, base, min_weight, significance)
    return {m: max(min_weight, w + float(offset)) for m, w in base.items()}


def _fit_offset(
    recs: list[tuple[str, bool, Any, Any]],
    base: Mapping[str, float],
    min_weight: float,
    significance: float,
) -> float:
    questions: dict[Any, list[tuple[str, bool, Answer | None]]] = defaultdict(list)
    for model, correct, question, answer in recs:
        if question is None:
            return 0.0
        if answer is not None and not isinstance(answer, Answer):
            answer = extract_answer(str(answer))
        questions[question].append((model, correct, answer))

    def right(offset: float) -> list[bool]:
        weights = {m: max(min_weight, w + offset) for m, w in base.items()}
        return [_vote_right(votes, weights) for votes in questions.values()]

    baseline = right(0.0)
    best_offset, best_gain = 0.0, 0
    for offset in OFFSET_GRID[1:]:
        now = right(offset)
        fixed = sum(1 for a, b in zip(now, baseline, strict=True) if a and not b)
        broken = sum(1 for a, b in zip(now, baseline, strict=True) if b and not a)
        gain = fixed - broken
        # McNemar: only a gain too large to be luck on these questions moves off 0.
        if gain > best_gain and gain > significance * math.sqrt(fixed + broken):
            best_offset, best_gain = offset, gain
    return best_offset


def _vote_right(votes: list[tuple[str, bool, Answer | None]], weights: Mapping[str, float]) -> bool:
    """Whether the weighted plurality over one question's recorded answers is right."""
    groups: list[tuple[Answer, float, bool, float, int]] = []
    for i, (model, correct, answer) in enumerate(votes):
        if answer is None:
            continue
        w = weights.get(model, 0.0)
        for j, (rep, total, ok, top, first) in enumerate(groups):
            if answers_match(rep, answer):
                groups[j] = (rep, total + w, ok, max(top, w), first)
                break
        else:
            groups.append((answer, w, correct, w, i))
    if not groups:
        return False
    return max(groups, key=lambda g: (g[1], g[3], -g[4]))[2]


def save_weights(path: str | Path, weights: Mapping[str, float], **meta: Any) -> None:
    """Persist learned weights as JSON (``{"weights": {...}, ...meta}``), atomically:
    a temp file beside ``path``, renamed over it, so a reader never sees half a file."""
    path = Path(path)
    text = json.dumps({"weights": dict(weights), **meta}, indent=2, sort_keys=True) + "\n"
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(path: str | Path) -> dict[str, float]:
    """Weights from a file written by :func:`save_weights` (or a bare ``{model: w}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("weights file not found", path=str(path), key="weights_file") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}", path=str(path), key="weights_file") from exc
    weights = data.get("weights", data) if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in weights.values()
    ):
        raise ConfigError(
            "expected {model: number} or {weights: {model: number}}",
            path=str(path),
            key="weights_file",
        )
    return {str(k): float(v) for k, v in weights.items()}


class WeightedStrategy(Strategy):
    """Voting weighted by trust in each model.

    Settings: ``weights`` ({model = w}), ``weights_file`` (JSON from
    :func:`save_weights` or ``coop eval cooperation --save``), ``default_weight``
    for models in neither (else the candidate's own weight), plus the ``voting``
    settings (``majority`` "plurality" by default, as in voting). Tool calls and
    JSON answers are voted on as in ``voting``, so it honours ``tools`` and
    ``response_format`` too.
    """

    name = "weighted"
    description = "Voting weighted by configured or learned per-model accuracy."
    honours = frozenset({"tools", "response_format"})
    learns = True

    @classmethod
    def learn(cls, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Settings learned from evaluation records (used by ``coop eval cooperation``)."""
        return {"weights": learn_weights(records)}

    def _weights(
        self, settings: Mapping[str, Any], candidates: Sequence[Candidate]
    ) -> tuple[dict[str, float], str]:
        weights: dict[str, float] = {}
        sources = []
        if settings.get("weights_file"):
            weights.update(load_weights(settings["weights_file"]))
            # the file's name only: the answer goes to API clients, the server's paths do not
            sources.append(f"file {Path(settings['weights_file']).name}")
        explicit = settings.get("weights") or {}
        if not isinstance(explicit, Mapping):
            raise ConfigError("must be a table {model = weight}", key="weights")
        for model, w in explicit.items():
            if not isinstance(w, int | float) or isinstance(w, bool):
                raise ConfigError(f"weight of {model!r} must be a number, not {w!r}", key="weights")
            weights[str(model)] = float(w)
        if explicit:
            sources.append("settings")
        default = settings.get("default_weight")
        for c in candidates:
            if c.model not in weights:
                weights[c.model] = float(default) if default is not None else float(c.weight)
        return weights, " + ".join(sources) or "candidate weights"

    async def integrate(
        self, candidates: Sequence[Candidate], context: StrategyContext
    ) -> Integration:
        settings = {**context.settings, **self.settings}
        weights, source = self._weights(settings, candidates)
        options = {**vote_options(settings), "weights": weights}
        result = vote(
            candidates,
            question=context.query,
            response_format=context.response_format,
            **options,
        )
        result.evidence["weights"] = {c.model: weights[c.model] for c in candidates}
        result.evidence["weights_source"] = source
        return result


@hookimpl
def coop_register_strategies(register: Any) -> None:
    register(WeightedStrategy)
