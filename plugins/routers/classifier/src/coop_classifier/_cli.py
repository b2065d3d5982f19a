"""``coop router train``: retrain the classifier router from labelled JSON lines.

Registered through ``coop_register_commands`` so the core CLI knows nothing of
it. Bad input (missing file, a bad JSON line, a missing field) raises
:class:`coop.ConfigError` naming the file and line; the CLI prints it and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from coop import ValidationError
from cyclopts import App, Parameter

__all__ = ["router_app", "train_command"]

router_app = App(name="router", help="Train the classifier router (and inspect routers).")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


@router_app.command(name="train")
def train_command(
    file: Path,
    *more: Path,
    out: Annotated[Path | None, Parameter(name="--out")] = None,
    cv: int = 0,
    epochs: int | None = None,
    quiet: bool = False,
) -> int:
    """Train the classifier router on JSON lines with ``prompt`` and ``task_type``.

    Parameters
    ----------
    file
        Labelled JSON lines (``prompt`` or ``messages``, ``task_type``); more files may follow.
    out
        Where to write the model (default: the user data dir, which the classifier
        router then prefers over its shipped model).
    cv
        Also report k-fold cross-validated figures (k = this number, 0 = skip).
    epochs
        Training epochs (default from the classifier's settings).
    quiet
        Print only the result line.
    """
    from ._router import user_model_path
    from ._rows import read_rows
    from ._train import cross_validate, train

    rows = []
    for path in (file, *more):
        rows.extend(read_rows(path))
    settings = {} if epochs is None else {"epochs": epochs}
    if epochs is not None and epochs < 1:
        raise ValidationError("must be at least 1", field="--epochs", value=epochs)
    progress = None if quiet else _say
    if not quiet:
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["task_type"]] = counts.get(row["task_type"], 0) + 1
        _say(f"{len(rows)} rows: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    metrics = None
    if cv:
        metrics = cross_validate(rows, folds=cv, progress=progress, **settings)
        if not quiet:
            r = metrics["reasoning"]
            _say(
                f"{cv}-fold CV: task accuracy {metrics['task_accuracy']:.3f}, reasoning tier "
                f"P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}"
            )
    model = train(rows, progress=progress, **settings)
    if metrics is not None:
        model.info["metrics"] = {"cv": {k: v for k, v in metrics.items() if k != "confusion"}}
    target = out if out is not None else user_model_path()
    written = model.save(target, prune=model.info["training"]["settings"]["prune"])
    size = written.stat().st_size
    print(
        f"wrote classifier model {model.version} to {written} "
        f"({len(model.weights)} features, {size / 1024:.0f} KiB)"
    )
    if out is None:
        print("the classifier router now uses it (delete the file to go back to the shipped model)")
    return 0
