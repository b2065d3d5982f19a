"""The ``outcome`` router: learns from recorded outcomes when the cheap model will do.

``coop router train FILE --router outcome --out MODEL`` trains it on JSON lines
``{"prompt", "outcomes": {model: bool, ...}}``; ``[routing] router = "outcome"``
uses it. A decision is pure Python over hashed word features (tens of µs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coop.hookspecs import hookimpl

from ._features import FEATURE_SETTINGS, features, prompt_text
from ._model import FORMAT, FORMAT_VERSION, OutcomeModel
from ._router import SHIPPED_MODEL, OutcomeRouter, load_model
from ._train import DEFAULTS, cost_per_call, cross_validate, read_outcome_rows, train

__all__ = [
    "DEFAULTS",
    "FEATURE_SETTINGS",
    "FORMAT",
    "FORMAT_VERSION",
    "SHIPPED_MODEL",
    "OutcomeModel",
    "OutcomeRouter",
    "cost_per_call",
    "cross_validate",
    "features",
    "load_model",
    "prompt_text",
    "read_outcome_rows",
    "train",
]


@hookimpl
def coop_register_routers(register: Callable[[Any], None]) -> None:
    register(OutcomeRouter)
