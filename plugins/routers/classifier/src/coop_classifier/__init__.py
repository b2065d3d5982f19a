"""The ``classifier`` router: a small trained model shipped inside the package.

A softmax regression over character/word n-grams and the ``rules`` router's
evidence picks the task type; complexity comes from the rules; the tier follows
coop's policy. ``coop router train FILE.jsonl`` retrains it (see :func:`train`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coop.hookspecs import hookimpl

from ._features import FEATURE_SETTINGS, featurize
from ._model import LinearModel
from ._router import SHIPPED_MODEL, ClassifierRouter, default_model_path, user_model_path
from ._rows import read_rows
from ._train import DEFAULTS, cross_validate, data_hash, train

__all__ = [
    "DEFAULTS",
    "FEATURE_SETTINGS",
    "SHIPPED_MODEL",
    "ClassifierRouter",
    "LinearModel",
    "cross_validate",
    "data_hash",
    "default_model_path",
    "featurize",
    "read_rows",
    "train",
    "user_model_path",
]


@hookimpl
def coop_register_routers(register: Callable[[Any], None]) -> None:
    register(ClassifierRouter)


@hookimpl
def coop_register_commands(app: Any) -> None:
    from ._cli import router_app

    app.command(router_app)
