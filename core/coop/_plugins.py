"""Load plugins from the entry-point group ``coop`` and collect what they register.

The plugin manager is built lazily by :func:`load_plugins`, once per caller, and
passed in: nothing loads at import time and tests never patch a module global.
Each entry point loads inside its own ``try``: a broken plugin is recorded with
its error and listed by ``coop plugins``; the others still load.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from . import hookspecs
from ._errors import DuplicateNameError, PluginError, UnknownPluginError
from ._providers import Preset, Provider
from ._routing import Router
from ._services import Service
from ._strategies import Strategy

__all__ = ["ENTRY_POINT_GROUP", "KINDS", "PluginInfo", "Plugins", "load_plugins"]

log = logging.getLogger("coop.plugins")

ENTRY_POINT_GROUP = "coop"

#: kind → (hook name, base class every registered object must subclass)
KINDS: dict[str, tuple[str, type]] = {
    "provider": ("coop_register_providers", Provider),
    "router": ("coop_register_routers", Router),
    "strategy": ("coop_register_strategies", Strategy),
    "service": ("coop_register_services", Service),
}

#: Plugins that cannot be disabled: the offline default must always work.
ESSENTIAL = frozenset({"simulated", "rules"})


@attrs.define
class PluginInfo:
    """One plugin as ``coop plugins`` shows it."""

    name: str
    distribution: str | None = None
    version: str | None = None
    registers: dict[str, list[str]] = attrs.field(factory=dict)
    error: str | None = None
    disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Plugins:
    """The loaded plugin manager plus every registered class, by kind and name."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    registry: dict[str, dict[str, type]]
    #: kind → name → plugin name that registered it
    owners: dict[str, dict[str, str]]
    #: kind → name → every distribution that registered it, when more than one did
    conflicts: dict[str, dict[str, list[str]]] = attrs.field(factory=dict)

    def names(self, kind: str) -> list[str]:
        return sorted(self.registry[kind])

    def get(self, kind: str, name: str) -> Any:
        """The class registered as ``name``; :class:`UnknownPluginError` lists the rest.

        A name registered by two plugins raises :class:`DuplicateNameError`
        naming both distributions: coop never picks one silently.
        """
        clash = self.conflicts.get(kind, {}).get(name)
        if clash:
            raise DuplicateNameError(kind, name, clash)
        try:
            return self.registry[kind][name]
        except KeyError:
            raise UnknownPluginError(kind, name, self.registry[kind]) from None

    def providers(self) -> dict[str, type[Provider]]:
        return self.registry["provider"]

    def presets(self) -> dict[str, Preset]:
        """Provider name → its :class:`coop.Preset`, for every provider that ships one."""
        return {
            name: cls.preset
            for name, cls in sorted(self.registry["provider"].items())
            if cls.preset is not None and not self.conflicts.get("provider", {}).get(name)
        }

    def routers(self) -> dict[str, type[Router]]:
        return self.registry["router"]

    def strategies(self) -> dict[str, type[Strategy]]:
        return self.registry["strategy"]

    def services(self) -> dict[str, type[Service]]:
        return self.registry["service"]

    def call_hook(self, hook: str, **kwargs: Any) -> list[Any]:
        return getattr(self.pm.hook, hook)(**kwargs)


def _env_allow_list() -> set[str] | None:
    raw = os.environ.get("COOP_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def load_plugins(
    *,
    disabled: Iterable[str] = (),
    extra: Mapping[str, object] | None = None,
    autoload: bool | None = None,
) -> Plugins:
    """Build a plugin manager, load the ``coop`` entry points and run the registrations.

    ``disabled`` names plugins to skip (``[plugins] disabled``); ``extra`` maps
    names to plugin objects registered directly (tests, embedding apps).
    ``COOP_PLUGINS=a,b`` loads only those; ``COOP_DISABLE_PLUGIN_AUTOLOAD=1``
    loads none from entry points. Duplicate names raise :class:`DuplicateNameError`.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("COOP_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda msg: log.warning("hook: %s", msg.rstrip()))
        pm.enable_tracing()
    disabled_set = set(disabled) - ESSENTIAL
    allow = _env_allow_list()
    if autoload is None:
        autoload = not os.environ.get("COOP_DISABLE_PLUGIN_AUTOLOAD")
    infos: dict[str, PluginInfo] = {}

    if autoload:
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            infos[ep.name] = info
            if ep.name in disabled_set or (
                allow is not None and ep.name not in allow and ep.name not in ESSENTIAL
            ):
                info.disabled = True
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s failed to load: %s", ep.name, info.error)
    for name, obj in (extra or {}).items():
        infos[name] = PluginInfo(name=name, distribution="(registered in process)")
        pm.register(obj, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = getattr(exc, "plugin_name", None) or ""
        if name in infos:
            infos[name].error = f"PluginValidationError: {exc}"
            pm.unregister(name=name)
        else:
            raise PluginError(str(exc), plugin=name) from exc

    registry: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
    owners: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    conflicts: dict[str, dict[str, list[str]]] = {kind: {} for kind in KINDS}
    for kind, (hook_name, base) in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            info = infos.setdefault(plugin_name, PluginInfo(name=plugin_name))

            def register(
                obj: Any, *, _kind: str = kind, _base: type = base, _plugin: str = plugin_name
            ) -> None:
                _register(registry, owners, conflicts, infos, _kind, _base, _plugin, obj)

            try:
                impl.function(register=register)
            except Exception as exc:
                info.error = f"{type(exc).__name__} in {hook_name}: {exc}"
                log.warning("plugin %s failed to register: %s", plugin_name, info.error)
    return Plugins(pm=pm, infos=infos, registry=registry, owners=owners, conflicts=conflicts)


def _register(
    registry: dict[str, dict[str, type]],
    owners: dict[str, dict[str, str]],
    conflicts: dict[str, dict[str, list[str]]],
    infos: dict[str, PluginInfo],
    kind: str,
    base: type,
    plugin: str,
    obj: Any,
) -> None:
    cls = obj if isinstance(obj, type) else type(obj)
    if not issubclass(cls, base):
        raise PluginError(
            f"plugin {plugin} registered {cls.__qualname__} as a {kind}, "
            f"but it does not subclass coop.{base.__name__}",
            plugin=plugin,
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(
            f"plugin {plugin} registered {cls.__qualname__} with no 'name'", plugin=plugin
        )
    if name in registry[kind]:
        first = owners[kind][name]
        dists = conflicts[kind].setdefault(name, [infos[first].distribution or first])
        dists.append(infos[plugin].distribution or plugin)
        error = str(DuplicateNameError(kind, name, dists))
        for owner in (first, plugin):
            infos[owner].error = error
        log.warning("%s", error)
        return
    registry[kind][name] = obj
    owners[kind][name] = plugin
    infos[plugin].registers.setdefault(kind, []).append(name)
