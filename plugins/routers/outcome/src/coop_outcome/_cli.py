"""``coop router train FILE --router outcome --out MODEL``: what the core command calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from coop import ConfigError

__all__ = ["train_cli"]


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def train_cli(
    files: list[Path], *, out: Path | None, cv: int = 0, quiet: bool = False, config: Any = None
) -> int:
    """Train on outcome rows; every outcome's model must be a configured model."""
    from ._train import cost_per_call, cross_validate, read_outcome_rows, train

    if out is None:
        raise ConfigError("give --out MODEL.json (where to write the outcome model)", key="--out")
    configured = list(config.models) if config is not None else None
    rows: list[dict[str, Any]] = []
    for path in files:
        rows.extend(read_outcome_rows(path, configured=configured))
    progress = None if quiet else _say
    models: dict[str, int] = {}
    for row in rows:
        for m in row["outcomes"]:
            models[m] = models.get(m, 0) + 1
    if len(models) < 2:
        raise ConfigError("outcomes for one model only; need at least two", path=str(files[0]))
    if not quiet:
        _say(
            f"{len(rows)} rows; outcomes per model: "
            + ", ".join(f"{m} {n}" for m, n in models.items())
        )
    prices = {}
    if config is not None:
        prices = {
            m: (config.models[m].price.input, config.models[m].price.output)
            for m in models
            if m in config.models
        }
    metrics = None
    if cv:
        metrics = cross_validate(rows, folds=cv, progress=progress)
        if not quiet:
            _say(
                f"{cv}-fold CV ({metrics['weak']} vs {metrics['strong']}): "
                f"APGR {metrics['apgr']:.3f} ± {metrics['apgr_sd']:.3f}, "
                f"cpt50 {metrics['cpt50']:.3f}, cpt80 {metrics['cpt80']:.3f} (random: 0.5, 0.5, 0.8)"
            )
    model = train(rows, costs=cost_per_call(rows, prices), progress=progress)
    if metrics is not None:
        model.info["metrics"] = {"cv": metrics}
    written = model.save(out)
    size = written.stat().st_size
    print(
        f"wrote outcome model {model.version} to {written} "
        f"({len(model.models)} models, {len(model.weights)} features, {size / 1024:.0f} KiB)"
    )
    return 0
