"""A multinomial linear model over string features, and its versioned file format.

Why a hand-written linear model: it trains in seconds in pure Python, predicts in
tens of microseconds, needs no numpy at run time, and its file is small JSON a
person can open: header fields (version, date, training data hash, feature
settings, labels, cross-validated metrics) on top, weights as int8 base64.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coop import ConfigError

__all__ = ["FORMAT", "LinearModel"]

#: File format identifier and version; bump the version when the layout changes.
FORMAT = "coop-classifier"
FORMAT_VERSION = 1

_FIELD = 20
_MASK = (1 << _FIELD) - 1
_OFFSET = 128
#: Features summed per group at most, so packed fields never carry (255 * 4096 < 2**20).
_MAX_ROWS = 4096


@dataclass
class LinearModel:
    """Softmax over ``bias + s·Σ text rows + Σ meta rows`` (s = 1/√#text features)."""

    labels: list[str]
    #: feature → one weight per label.
    weights: dict[str, tuple[float, ...]]
    bias: list[float]
    #: Header: version, created, data hash, feature settings, training settings, metrics.
    info: dict[str, Any] = field(default_factory=dict)

    #: Packed int8 weights (see :meth:`_pack`), built on first use.
    _packed: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)
    _scale: float = field(default=1.0, init=False, repr=False, compare=False)

    @property
    def version(self) -> str:
        return str(self.info.get("version", "unversioned"))

    def quantised(self) -> tuple[float, dict[str, tuple[int, ...]]]:
        """(scale, feature → int8 weights): what the model file stores and predictions use."""
        peak = max((abs(w) for row in self.weights.values() for w in row), default=1.0) or 1.0
        scale = peak / 127.0
        return scale, {f: tuple(round(w / scale) for w in row) for f, row in self.weights.items()}

    def _pack(self) -> dict[str, int]:
        """Each feature's int8 weights as one Python int, one 20-bit field per label.

        Why: summing a few hundred ints adds all labels at once in C (SWAR in a big
        int), several times faster than summing columns of float tuples. Fields hold
        ``w + 128`` (1..255), so up to 4096 features cannot carry into a neighbour.
        """
        scale, rows = self.quantised()
        return self._set_packed(scale, rows.items())

    def _set_packed(
        self, scale: float, rows: Iterable[tuple[str, Sequence[int]]]
    ) -> dict[str, int]:
        packed = {}
        for f, row in rows:
            value = 0
            for index, w in enumerate(row):
                value |= (w + _OFFSET) << (_FIELD * index)
            packed[f] = value
        self._scale = scale
        self._packed = packed
        return packed

    def _sums(self, packed_rows: list[int]) -> list[float]:
        total = sum(packed_rows)
        base = _OFFSET * len(packed_rows)
        scale = self._scale
        return [
            (((total >> (_FIELD * index)) & _MASK) - base) * scale
            for index in range(len(self.labels))
        ]

    def scores(self, text_features: list[str], meta_features: list[str]) -> list[float]:
        """Raw per-label scores (features seen twice count once)."""
        packed = self._packed if self._packed is not None else self._pack()
        get = packed.get
        text = set(text_features)
        total = list(self.bias)
        rows = [row for row in map(get, text) if row is not None][:_MAX_ROWS]
        if rows:
            scale = 1.0 / math.sqrt(len(text))
            total = [t + scale * c for t, c in zip(total, self._sums(rows), strict=True)]
        rows = [row for row in map(get, set(meta_features)) if row is not None][:_MAX_ROWS]
        if rows:
            total = [t + c for t, c in zip(total, self._sums(rows), strict=True)]
        return total

    def predict_proba(self, text_features: list[str], meta_features: list[str]) -> list[float]:
        """Probabilities in :attr:`labels` order."""
        return softmax(self.scores(text_features, meta_features))

    # -- file format ------------------------------------------------------------

    def to_dict(self, *, prune: float = 0.0) -> dict[str, Any]:
        """The JSON document: header, feature list, int8-quantised weights."""
        k = len(self.labels)
        scale, rows = self.quantised()
        features = sorted(f for f, row in self.weights.items() if max(map(abs, row)) > prune)
        quantised = array("b", (w for f in features for w in rows[f]))
        packed = base64.b64encode(zlib.compress(quantised.tobytes(), 9)).decode("ascii")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.info,
            "labels": self.labels,
            "bias": [round(b, 6) for b in self.bias],
            "scale": scale,
            "n_features": len(features),
            "features": features,
            "weights": packed,
            "weights_shape": [len(features), k],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model") -> LinearModel:
        """Rebuild a model; :class:`ConfigError` says what is wrong with a bad file."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"not a {FORMAT} model file", path=source)
        if data.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"model format version {data.get('format_version')!r} is not supported "
                f"(expected {FORMAT_VERSION}); retrain with `coop router train`",
                path=source,
            )
        try:
            labels = [str(label) for label in data["labels"]]
            features = [str(f) for f in data["features"]]
            scale = float(data["scale"])
            bias = [float(b) for b in data["bias"]]
            raw = zlib.decompress(base64.b64decode(data["weights"]))
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ConfigError(
                f"damaged model file ({type(exc).__name__}: {exc})", path=source
            ) from None
        k = len(labels)
        values = array("b")
        values.frombytes(raw)
        if len(values) != len(features) * k or len(bias) != k:
            raise ConfigError("damaged model file (weights do not match features)", path=source)
        weights = {
            f: tuple(v * scale for v in values[i * k : (i + 1) * k]) for i, f in enumerate(features)
        }
        skip = {
            "format",
            "format_version",
            "labels",
            "bias",
            "scale",
            "n_features",
            "features",
            "weights",
            "weights_shape",
        }
        info = {key: value for key, value in data.items() if key not in skip}
        model = cls(labels=labels, weights=weights, bias=bias, info=info)
        # Predict from the stored int8 values themselves, not a re-quantisation.
        model._set_packed(scale, ((f, values[i * k : (i + 1) * k]) for i, f in enumerate(features)))
        return model

    def save(self, path: str | os.PathLike[str], *, prune: float = 0.0) -> Path:
        """Write the model as JSON (atomically: a crash never leaves half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(prune=prune), ensure_ascii=False, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearModel:
        """Read a model file; :class:`ConfigError` for a missing or damaged one."""
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("model file not found", path=str(source)) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read model file ({exc})", path=str(source)) from None
        return cls.from_dict(data, source=str(source))


def softmax(scores: list[float]) -> list[float]:
    peak = max(scores)
    exps = [math.exp(s - peak) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]
