"""The ``outcome`` router: the cheap model whenever the trained model says it will do.

For two models it estimates ``P(strong right)`` and ``P(weak right)`` and sends
the prompt to the strong model when the gain ``P(strong) - P(weak)`` exceeds the
threshold. The threshold is given directly, as a share of strong calls, or as a
cost ceiling; the last two are turned into a threshold on the sample of training
predictions stored in the model file. For N models (``models``, cheapest first)
it climbs: starting from the cheapest, it moves to a pricier model whenever that
model's estimated accuracy beats the current pick's by more than the threshold.
With ``base`` another router (e.g. ``rules``) decides task type and tier, and
this one decides whether the light model will do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from coop import Analysis, ConfigError, Router, load_plugins

from ._features import prompt_text
from ._model import OutcomeModel

__all__ = ["SHIPPED_MODEL", "OutcomeRouter"]

#: Trained on the 7,000 public MMLU dev rows (Mixtral-8x7B vs GPT-4-1106 outcomes).
SHIPPED_MODEL = Path(__file__).with_name("mmlu_dev_model.json")
_KEY = "routing.options"
_CACHE: dict[tuple[str, float], OutcomeModel] = {}
_LOCK = threading.Lock()


def load_model(path: str | os.PathLike[str]) -> OutcomeModel:
    """Load once per (path, mtime): router instances share one model in memory."""
    file = Path(path)
    try:
        mtime = file.stat().st_mtime
    except OSError:
        mtime = 0.0
    key = (str(file), mtime)
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = OutcomeModel.load(file)
            _CACHE[key] = model
    return model


def _number(settings: Mapping[str, Any], name: str, low: float, high: float | None) -> float:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, not {value!r}", key=f"{_KEY}.{name}")
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{value} is out of range: must be {span}", key=f"{_KEY}.{name}")
    return float(value)


class OutcomeRouter(Router):
    """Learns from recorded outcomes when the cheap model will do.

    Settings (``[routing] options``): ``model_file`` (default: the MMLU model shipped
    in the package), ``strong`` and ``weak`` (model names in the file; default its
    most and least accurate), or ``models`` (N models, cheapest first); one of
    ``threshold`` (-1..1, on the estimated accuracy gain), ``strong_share`` (0..1,
    the share of strong calls wanted) or ``max_cost_per_1k`` (USD per 1,000
    requests, from the prices recorded at training); ``base`` (a router deciding
    task type and tier) with ``base_options``.
    """

    name: ClassVar[str] = "outcome"
    description: ClassVar[str] = (
        "Learns from recorded outcomes when the cheap model will do; "
        "`coop router train FILE --router outcome` trains it."
    )

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, model: OutcomeModel | None = None
    ) -> None:
        super().__init__(settings)
        s = self.settings
        if model is None:
            path = s.get("model_file")
            model = load_model(os.path.expanduser(str(path)) if path else SHIPPED_MODEL)
        self.model = model
        where = model.info.get("path", "the model file")
        if "models" in s:
            chosen = s["models"]
            if not isinstance(chosen, list) or len(chosen) < 2:
                raise ConfigError("must list at least two model names", key=f"{_KEY}.models")
            if "strong" in s or "weak" in s:
                raise ConfigError(
                    "give 'models' or 'strong' and 'weak', not both", key=f"{_KEY}.models"
                )
            self.ladder = [str(m) for m in chosen]
        else:
            acc = model.info.get("accuracy") or {}
            ranked = sorted(model.models, key=lambda m: acc.get(m, 0.0))
            self.ladder = [str(s.get("weak", ranked[0])), str(s.get("strong", ranked[-1]))]
            if self.ladder[0] == self.ladder[1]:
                raise ConfigError(
                    f"weak and strong are both {self.ladder[0]!r}", key=f"{_KEY}.strong"
                )
        for name in self.ladder:
            if name not in model.models:
                raise ConfigError(
                    f"model {name!r} has no outcomes in {where} "
                    f"(it knows {', '.join(model.models)})",
                    key=f"{_KEY}.{'models' if 'models' in s else ('weak' if name == self.ladder[0] else 'strong')}",
                )
        given = [k for k in ("threshold", "strong_share", "max_cost_per_1k") if k in s]
        if len(given) > 1:
            raise ConfigError(
                f"give one of threshold, strong_share, max_cost_per_1k, not {' and '.join(given)}",
                key=f"{_KEY}.{given[1]}",
            )
        costs = model.costs()
        self.costs = [costs[m] for m in self.ladder]
        self.how = "strong_share 0.5 (default)"
        if "threshold" in s:
            self.threshold = _number(s, "threshold", -1.0, 1.0)
            self.how = f"threshold {self.threshold:g}"
        elif "max_cost_per_1k" in s:
            ceiling = _number(s, "max_cost_per_1k", 0.0, None)
            if max(self.costs) <= 0:
                raise ConfigError(
                    f"{where} records no prices for {', '.join(self.ladder)}: retrain with a "
                    "config whose models have prices, or give threshold or strong_share",
                    key=f"{_KEY}.max_cost_per_1k",
                )
            self.threshold = self._threshold_for(lambda t: self._simulate(t)[1] * 1000 <= ceiling)
            self.how = f"max_cost_per_1k {ceiling:g} → threshold {self.threshold:.3f}"
        else:
            share = _number(s, "strong_share", 0.0, 1.0) if "strong_share" in s else 0.5
            self.threshold = self._threshold_for(lambda t: self._simulate(t)[0] <= share)
            if "strong_share" in s:
                self.how = f"strong_share {share:g} → threshold {self.threshold:.3f}"
            else:
                self.how = f"strong_share 0.5 (default) → threshold {self.threshold:.3f}"
        self.base: Router | None = None
        if s.get("base"):
            if s["base"] == self.name:
                raise ConfigError("the base router cannot be outcome itself", key=f"{_KEY}.base")
            base_options = s.get("base_options") or {}
            if not isinstance(base_options, dict):
                raise ConfigError("must be a table", key=f"{_KEY}.base_options")
            self.base = load_plugins().get("router", str(s["base"]))(base_options)

    @staticmethod
    def train_cli(files: list[Path], **kwargs: Any) -> int:
        """``coop router train FILE --router outcome --out MODEL`` (see :mod:`._cli`)."""
        from ._cli import train_cli

        return train_cli(files, **kwargs)

    # -- threshold from a share or a cost ------------------------------------------

    def _pick(self, probs: Mapping[str, float], threshold: float) -> int:
        """Index in the ladder: climb while a pricier model gains more than ``threshold``."""
        current = 0
        for index in range(1, len(self.ladder)):
            if probs[self.ladder[index]] - probs[self.ladder[current]] > threshold:
                current = index
        return current

    def _simulate(self, threshold: float) -> tuple[float, float]:
        """(share of calls above the cheapest model, mean USD per call) on the stored sample."""
        cal = self.model.calibration
        n = min(len(cal.get(m, [])) for m in self.ladder)
        if n == 0:
            raise ConfigError(
                "the model file has no calibration sample; give threshold",
                key=f"{_KEY}.strong_share",
            )
        up = 0
        cost = 0.0
        for i in range(n):
            pick = self._pick({m: cal[m][i] for m in self.ladder}, threshold)
            up += pick > 0
            cost += self.costs[pick]
        return up / n, cost / n

    def _threshold_for(self, fits: Any) -> float:
        """The lowest threshold in -1..1 that ``fits`` (fewer strong calls as it grows)."""
        low, high = -1.0, 1.0
        if fits(low):
            return low
        for _ in range(30):
            mid = (low + high) / 2
            if fits(mid):
                high = mid
            else:
                low = mid
        return high

    # -- the decision ----------------------------------------------------------------

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        try:
            text = prompt_text(messages)
            probs = self.model.predict(text)
        except Exception as exc:  # never raise: the base (or the light tier) decides
            analysis = self._base(messages) or Analysis("chat", "simple", "light", 0.2)
            analysis.reasons.insert(0, f"outcome router unavailable ({type(exc).__name__})")
            return analysis
        pick = self._pick(probs, self.threshold)
        target = self.ladder[pick]
        weak, strong = self.ladder[0], self.ladder[-1]
        gain = probs[strong] - probs[weak]
        win = probs[strong] * (1.0 - probs[weak])
        analysis = self._base(messages)
        if analysis is None:
            tier = "light" if pick == 0 else "reasoning"
            analysis = Analysis("qa", "simple" if pick == 0 else "complex", tier, 1.0)
            analysis.target = target
        elif pick == 0:
            analysis.reasons.append(f"base {self.base.name} said tier {analysis.tier}")  # type: ignore[union-attr]
            analysis.tier, analysis.target = "light", target
        elif analysis.tier == "light":
            analysis.reasons.append(f"base {self.base.name} said tier light")  # type: ignore[union-attr]
            analysis.tier, analysis.target = "reasoning", target
        estimates = ", ".join(f"{m} {probs[m]:.2f}" for m in self.ladder)
        verdict = f"{weak} will do" if pick == 0 else f"{target} needed"
        analysis.reasons.insert(
            0,
            f"outcome {self.model.version}: P(right) {estimates}; estimated win probability "
            f"of {strong} {win:.2f}, gain {gain:+.2f} vs threshold {self.threshold:.3f} "
            f"({self.how}): {verdict}",
        )
        analysis.confidence = round(max(win, 1.0 - win), 3)
        analysis.signals["route_score"] = round(gain, 4)
        analysis.signals["outcome"] = {
            "model": self.model.version,
            "p_right": {m: round(probs[m], 4) for m in self.ladder},
            "win_probability": round(win, 4),
            "gain": round(gain, 4),
            "threshold": round(self.threshold, 4),
            "choice": target,
        }
        return analysis

    def _base(self, messages: list[dict[str, Any]]) -> Analysis | None:
        if self.base is None:
            return None
        return self.base.analyze(messages)
