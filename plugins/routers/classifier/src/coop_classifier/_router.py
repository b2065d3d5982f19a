"""The ``classifier`` router: the trained model picks the task type, rules do the rest.

The model file is found in this order: ``model_path`` in the router settings, the
one ``coop router train`` wrote to the user data dir, the one shipped in this
package. The tier is decided on the summed probability of the reasoning task
types (math, code, reasoning) before the type itself, which is what the reasoning
tier's F1 rewards: three weak "it is maths-ish" votes add up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from coop import Analysis, ConfigError, Router
from coop_rules import LEXICON_SHA256, REASONING_TASKS, analysis_from_evidence, collect_evidence

from ._features import featurize_evidence
from ._model import LinearModel

__all__ = ["SHIPPED_MODEL", "ClassifierRouter", "default_model_path", "user_model_path"]

#: The model trained on the public dev set plus ``training/extra.jsonl``.
SHIPPED_MODEL = Path(__file__).with_name("model.json")


def user_model_path() -> Path:
    """Where ``coop router train`` writes by default: coop's user data dir
    (``$XDG_DATA_HOME/coop``, else ``~/.local/share/coop``), ``classifier/model.json``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "coop" / "classifier" / "model.json"


def default_model_path() -> Path:
    """The user's trained model when there is one, else the shipped one."""
    user = user_model_path()
    return user if user.is_file() else SHIPPED_MODEL


_CACHE: dict[tuple[str, float], LinearModel] = {}
_LOCK = threading.Lock()


def _load(path: Path) -> LinearModel:
    """Load once per (path, mtime): many router instances share one model in memory."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    key = (str(path), mtime)
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = LinearModel.load(path)
            _CACHE[key] = model
    return model


class ClassifierRouter(Router):
    """A small trained linear model (character n-grams + rule signals) shipped in the package.

    Settings: ``model_path`` (a model file; overrides the user's and the shipped
    one), ``reasoning_threshold`` (summed probability of math/code/reasoning
    above which the tier is ``reasoning``; default 0.5).
    """

    name: ClassVar[str] = "classifier"
    description: ClassVar[str] = (
        "Trained linear model over n-grams and rule signals; `coop router train` retrains it."
    )

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, model: LinearModel | None = None
    ) -> None:
        super().__init__(settings)
        self._model = model
        self._model_error: str | None = None
        self.threshold = float(self.settings.get("reasoning_threshold", 0.5))
        explicit = self.settings.get("model_path")
        self._path = Path(os.path.expanduser(str(explicit))) if explicit else None
        if self._path is not None and model is None:
            # A configured model that cannot load is a configuration error: say so now.
            self._model = _load(self._path)

    @property
    def model(self) -> LinearModel:
        """The model in use, loaded on first use."""
        if self._model is None:
            path = default_model_path()
            try:
                self._model = _load(path)
            except ConfigError:
                if path == SHIPPED_MODEL:
                    raise
                # A damaged user model must not take routing down: use the shipped one.
                self._model_error = f"user model {path} unreadable; using the shipped model"
                self._model = _load(SHIPPED_MODEL)
        return self._model

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        """Decide task type (model), complexity (rules) and tier (policy); never raises."""
        try:
            ev = collect_evidence(messages)
        except Exception as exc:
            return _fallback(f"classifier could not read the request ({type(exc).__name__})")
        conv = ev.conversation
        if not conv.main.strip() and not conv.history.strip():
            return analysis_from_evidence(ev)  # nothing to classify: the rules say why
        try:
            model = self.model
            text, meta = featurize_evidence(ev)
            probs = model.predict_proba(text, meta)
        except Exception as exc:
            analysis = analysis_from_evidence(ev)
            analysis.reasons.insert(0, f"classifier unavailable ({exc}); rules decided")
            return analysis
        labels = model.labels
        ranked = sorted(zip(labels, probs, strict=True), key=lambda lp: -lp[1])
        p_reasoning = sum(p for label, p in ranked if label in REASONING_TASKS)
        want_reasoning = p_reasoning >= self.threshold
        task, p_task = next(
            ((label, p) for label, p in ranked if (label in REASONING_TASKS) == want_reasoning),
            ranked[0],
        )
        analysis = analysis_from_evidence(ev, task=task, confidence=round(p_task, 3))
        top = ", ".join(f"{label} {p:.2f}" for label, p in ranked[:3])
        analysis.reasons.insert(
            0, f"classifier {model.version}: {top}; P(reasoning tier) {p_reasoning:.2f}"
        )
        if self._model_error:
            analysis.reasons.append(self._model_error)
        trained_on = model.info.get("feature_settings", {}).get("rules_lexicon_sha256")
        analysis.signals["classifier"] = {
            "model": model.version,
            # False: the rules tables changed since training; retraining may help.
            "rules_match": trained_on == LEXICON_SHA256,
            "probabilities": {label: round(p, 4) for label, p in ranked[:5]},
            "p_reasoning": round(p_reasoning, 4),
        }
        return analysis


def _fallback(reason: str) -> Analysis:
    return Analysis(
        task_type="chat",
        complexity="simple",
        tier="light",
        confidence=0.2,
        reasons=[reason],
        signals={"error": reason},
    )
