"""The hooks coop plugins implement.

Every hook is synchronous and registration-only: a plugin hands the core classes or
objects through ``register``; the asynchronous work lives on those objects (a
provider's ``chat``), never in the hook itself, because pluggy does not await.
Call hooks with keyword arguments only; new arguments may be added later and
implementations only receive the ones they name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("coop")
hookimpl = pluggy.HookimplMarker("coop")


# -- registration ------------------------------------------------------------


@hookspec
def coop_register_providers(register: Callable[[Any], None]) -> None:
    """Register provider classes: ``register(MyProvider)``.

    A provider turns coop's OpenAI-shaped requests into one upstream protocol.
    The class must subclass :class:`coop.Provider` and set a unique ``name``
    (the value users write in ``[endpoints.X] provider = "name"``).
    """


@hookspec
def coop_register_routers(register: Callable[[Any], None]) -> None:
    """Register router classes: ``register(MyRouter)``.

    A router subclasses :class:`coop.Router`, sets ``name`` (used in
    ``[routing] router = "name"``) and decides task type, complexity and tier.
    """


@hookspec
def coop_register_strategies(register: Callable[[Any], None]) -> None:
    """Register integration strategy classes: ``register(MyStrategy)``.

    A strategy subclasses :class:`coop.Strategy`, sets ``name`` (used in
    ``[cooperations.X] strategy = "name"``) and merges several models' answers.
    """


@hookspec
def coop_register_services(register: Callable[[Any], None]) -> None:
    """Register application service classes: ``register(MyService)``.

    A service subclasses :class:`coop.Service`, sets ``name`` (the
    ``service_type`` of ``ServiceManager.process_request`` and of
    ``POST /v1/services/{service_type}``).
    """


@hookspec
def coop_register_commands(app: Any) -> None:
    """Add CLI commands to the ``coop`` cyclopts application ``app``.

    Use ``app.command(func, name=...)``. Optional; most plugins never need it.
    """
