"""The outcome model: one logistic regression per model over hashed features, and its file.

``P(model m answers right | prompt) = sigmoid(bias[m] + Σ x_i · w[m][i])``. The
file is JSON: a header (format and version, training data hash, feature
settings, models, their accuracy and cost per call, cross-validated figures),
the non-zero slots and int16-quantised weights as base64, and a sample of the
training rows' predicted probabilities, from which a share of strong calls or a
cost ceiling is turned into a threshold.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import tempfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coop import ConfigError

from ._features import features

__all__ = ["FORMAT", "FORMAT_VERSION", "OutcomeModel"]

#: File format identifier and version; bump the version when the layout changes.
FORMAT = "coop-outcome"
FORMAT_VERSION = 1


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class OutcomeModel:
    """Per-model logistic regressions sharing one hashed feature space."""

    #: Model names, in the order of each weight row.
    models: list[str]
    #: slot → one weight per model.
    weights: dict[int, tuple[float, ...]]
    bias: list[float]
    feature_settings: dict[str, Any]
    #: Header: version, created, data hash, rows, accuracy, costs, training settings, metrics.
    info: dict[str, Any] = field(default_factory=dict)
    #: model → predicted P(right) on a sample of training rows (for shares and cost ceilings).
    calibration: dict[str, list[float]] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.info.get("version", "unversioned"))

    def costs(self) -> dict[str, float]:
        """model → USD per call recorded at training (0.0 when no price was configured)."""
        recorded = self.info.get("costs") or {}
        return {m: float(recorded.get(m, 0.0)) for m in self.models}

    def predict(self, text: str) -> dict[str, float]:
        """model → estimated probability that it answers ``text`` right."""
        get = self.weights.get
        feats = features(text, self.feature_settings)
        if len(self.models) == 2:  # the common case, unrolled
            z0, z1 = self.bias
            for slot, value in feats.items():
                row = get(slot)
                if row is not None:
                    z0 += value * row[0]
                    z1 += value * row[1]
            return {self.models[0]: _sigmoid(z0), self.models[1]: _sigmoid(z1)}
        totals = list(self.bias)
        k = len(totals)
        for slot, value in feats.items():
            row = get(slot)
            if row is not None:
                for i in range(k):
                    totals[i] += value * row[i]
        return {m: _sigmoid(z) for m, z in zip(self.models, totals, strict=True)}

    # -- file format ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        slots = sorted(self.weights)
        peak = max((abs(w) for row in self.weights.values() for w in row), default=1.0) or 1.0
        scale = peak / 32767.0
        columns = {}
        for i, name in enumerate(self.models):
            values = array("h", (round(self.weights[s][i] / scale) for s in slots))
            columns[name] = _b64(values)
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **{k: v for k, v in self.info.items() if k not in ("format", "format_version")},
            "note": self.info.get("note", ""),
            "feature_settings": self.feature_settings,
            "models": self.models,
            "bias": dict(zip(self.models, self.bias, strict=True)),
            "weights": {"scale": scale, "slots": _b64(array("i", slots)), "values": columns},
            "calibration": {m: [round(p, 3) for p in ps] for m, ps in self.calibration.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model atomically (a temporary file renamed over ``path``)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".outcome-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for secrets; this is not one
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OutcomeModel:
        """Read a model file; :class:`coop.ConfigError` names the file on any problem."""
        file = Path(path)
        where = str(file)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("outcome model file not found", path=where) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read outcome model: {exc}", path=where) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not an outcome model (bad JSON: {exc.msg})", path=where) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f"not a {FORMAT} model file (format {data.get('format') if isinstance(data, dict) else None!r})",
                path=where,
            )
        found = data.get("format_version")
        if found != FORMAT_VERSION:
            raise ConfigError(
                f"outcome model file format version {found!r}; this llm-coop-outcome reads "
                f"version {FORMAT_VERSION}: retrain it with `coop router train FILE --router outcome`",
                path=where,
            )
        try:
            models = [str(m) for m in data["models"]]
            w = data["weights"]
            scale = float(w["scale"])
            slots = _unb64("i", w["slots"])
            columns = [_unb64("h", w["values"][m]) for m in models]
            if any(len(c) != len(slots) for c in columns):
                raise ValueError("weight columns and slots differ in length")
            weights = {slot: tuple(c[j] * scale for c in columns) for j, slot in enumerate(slots)}
            bias = [float(data["bias"][m]) for m in models]
            calibration = {m: [float(p) for p in ps] for m, ps in data["calibration"].items()}
            settings = dict(data["feature_settings"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"damaged outcome model ({type(exc).__name__}: {exc})", path=where
            ) from None
        info = {
            k: v
            for k, v in data.items()
            if k not in ("weights", "bias", "calibration", "feature_settings", "models")
        }
        info["path"] = where
        return cls(models, weights, bias, settings, info, calibration)


def _b64(values: array) -> str:
    if values.itemsize > 1 and array("h", [1]).tobytes()[0] == 0:  # big-endian host
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _unb64(typecode: str, text: str) -> array:
    values = array(typecode)
    values.frombytes(base64.b64decode(text))
    if array("h", [1]).tobytes()[0] == 0:
        values.byteswap()
    return values
