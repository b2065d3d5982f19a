"""``coop plugins``: what is installed, what it registers, and what failed."""

from __future__ import annotations

from typing import Annotated

from cyclopts import Parameter

from .._config import SystemConfig
from .._plugins import load_plugins
from ._common import Common, emit_json, table


def plugins(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """List plugins: distribution, version, what each registers, and load errors."""
    config = SystemConfig.discover(common.config)
    loaded = load_plugins(disabled=config.plugins.disabled)
    infos = sorted(loaded.infos.values(), key=lambda i: i.name)
    if json_:
        emit_json([info.to_dict() for info in infos])
        return 0
    rows = []
    for info in infos:
        registers = "; ".join(
            f"{kind}: {', '.join(names)}" for kind, names in sorted(info.registers.items())
        )
        status = "disabled" if info.disabled else ("ERROR " + info.error if info.error else "ok")
        rows.append([info.name, info.distribution or "", info.version or "", registers, status])
    print(table(["plugin", "distribution", "version", "registers", "status"], rows))
    return 0
