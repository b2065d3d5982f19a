"""The ``rules`` router: fast bilingual heuristics, coop's default router.

Decides task type, complexity and tier from keyword tables (Chinese and
English), numbers, formulas and code syntax, in tens of microseconds, and says
which signals led there. Other routers (``classifier``, ``cascade``) reuse its
evidence through :func:`collect_evidence`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coop.hookspecs import hookimpl

from ._lexicon import LEXICON_SHA256
from ._router import (
    REASONING_TASKS,
    Evidence,
    RulesRouter,
    analysis_from_evidence,
    collect_evidence,
    complexity_of,
    tier_for,
)
from ._text import Conversation, detect_language, read_conversation

__all__ = [
    "LEXICON_SHA256",
    "REASONING_TASKS",
    "Conversation",
    "Evidence",
    "RulesRouter",
    "analysis_from_evidence",
    "collect_evidence",
    "complexity_of",
    "detect_language",
    "read_conversation",
    "tier_for",
]


@hookimpl
def coop_register_routers(register: Callable[[Any], None]) -> None:
    register(RulesRouter)
