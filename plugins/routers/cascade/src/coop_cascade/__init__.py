"""The ``cascade`` router: a cheap model first, a strong one when its samples disagree.

FrugalGPT style: :meth:`CascadeRouter.run` samples the cheap model in parallel,
measures self-consistency (:func:`agreement` over :func:`answer_key`), escalates
below the threshold and reports every call and its cost (:class:`CascadeResult`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coop.hookspecs import hookimpl

from ._cascade import (
    CascadeCall,
    CascadeResult,
    CascadeRouter,
    Complete,
    agreement,
    answer_key,
)

__all__ = [
    "CascadeCall",
    "CascadeResult",
    "CascadeRouter",
    "Complete",
    "agreement",
    "answer_key",
]


@hookimpl
def coop_register_routers(register: Callable[[Any], None]) -> None:
    register(CascadeRouter)
