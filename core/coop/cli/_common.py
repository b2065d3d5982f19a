"""What every command shares: the ``--config``/``--debug`` options and output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclopts import Parameter

from .._config import SystemConfig, check_plugins
from .._plugins import Plugins, load_plugins
from .._redact import remember_config

__all__ = ["Common", "emit_json", "load", "table"]


@Parameter(name="*")
@dataclass
class Common:
    """Options every command takes."""

    config: Path | None = None
    "coop.toml to use (default: $COOP_CONFIG, ./coop.toml, then the user config dir)."

    debug: bool = False
    "Show full tracebacks on errors."


def load(common: Common, *, check: bool = True) -> tuple[SystemConfig, Plugins]:
    """The configuration in force and the plugins it enables, checked against each other."""
    config = SystemConfig.discover(common.config)
    remember_config(config)  # errors and status printed from here on mask its secrets
    plugins = load_plugins(disabled=config.plugins.disabled)
    if check:
        check_plugins(config, plugins)
    return config, plugins


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table (stable for tests and pipes, unlike a boxed one)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
