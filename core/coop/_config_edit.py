"""Edit coop.toml from the CLI without losing the user's comments or layout.

Every edit goes through tomlkit, is validated as a whole before anything is
written, and lands with an atomic rename: a failed edit leaves the file as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from ._config import TIERS, SystemConfig, _build, parse_toml
from ._errors import ConfigError, did_you_mean
from ._files import atomic_write

__all__ = ["STARTER_CONFIG", "edit_config", "holds_literal_secret"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

STARTER_CONFIG = """\
# coop.toml: what coop routes to and how models cooperate.
# Docs: docs/configuration.md. Secrets are "env:NAME" references, read from the
# environment or from .env beside this file; never write keys here.

[server]
host = "127.0.0.1"              # a non-loopback host needs api_keys (or --allow-unauthenticated)
port = 8080
# api_keys = ["env:COOP_API_KEY"]  # keys clients must send as "Authorization: Bearer ..."

# An endpoint is a provider plugin plus its settings. This one runs offline.
[endpoints.simulated]
provider = "simulated"

# A real one, once you have a key (or run: coop config preset --name aigcbest --api-key ...):
# [endpoints.aigcbest]
# provider = "aigcbest"
# api_keys = ["env:AIGCBEST_API_KEY"]

# Logical models: the names clients send as "model".
[models.sim-light]
endpoint = "simulated"
path = "sim-light"
tier = "light"
price = { input = 0.1, output = 0.2 }   # USD per million tokens

[models.sim-reasoning]
endpoint = "simulated"
path = "sim-reasoning"
tier = "reasoning"
price = { input = 1.0, output = 4.0 }

[models.sim-large]
endpoint = "simulated"
path = "sim-large"
tier = "complex"
price = { input = 3.0, output = 12.0 }

# model = "auto" asks the router; each tier names a model or a cooperation.
[routing]
router = "classifier"           # trained model (best on unseen prompts); "rules" is the fastest
light = "sim-light"
reasoning = "sim-reasoning"
complex = "council"

# A cooperation is served as a model too.
[cooperations.council]
mode = "parallel"               # sequential | parallel | pipeline
models = ["sim-reasoning", "sim-large", "sim-light"]
strategy = "voting"
"""


def holds_literal_secret(data: dict[str, Any]) -> bool:
    """Whether any api key in the document is a literal rather than an ``env:`` reference."""
    keys: list[Any] = list(data.get("server", {}).get("api_keys", []))
    for endpoint in data.get("endpoints", {}).values():
        if isinstance(endpoint, dict):
            keys += list(endpoint.get("api_keys", []))
            if "api_key" in endpoint:
                keys.append(endpoint["api_key"])
    return any(isinstance(k, str) and not k.startswith("env:") for k in keys)


def edit_config(path: Path, change: Callable[[tomlkit.TOMLDocument], None]) -> SystemConfig:
    """Apply ``change`` to the document at ``path``, validate, and write atomically."""
    path = Path(path)
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
        parse_toml(text, str(path))  # a clear, located error before tomlkit's
        doc = tomlkit.parse(text)
    else:
        doc = tomlkit.document()
    change(doc)
    new_text = tomlkit.dumps(doc)
    data = parse_toml(new_text, str(path))
    config = _build(data, source=str(path), text=new_text, env=None)
    atomic_write(path, new_text, secret=holds_literal_secret(data))
    config.path = path
    return config


def check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '-' and '.'", key=kind
        )


def _section(doc: tomlkit.TOMLDocument, name: str) -> Table:
    if name not in doc:
        table = tomlkit.table(is_super_table=True)
        doc.add(name, table)
    section = doc[name]
    if not isinstance(section, Table):
        raise ConfigError(f"[{name}] must be a table", key=name)
    return section


def set_endpoint(
    doc: tomlkit.TOMLDocument,
    name: str,
    *,
    provider: str,
    base_url: str | None = None,
    api_keys: list[str] | None = None,
    replace: bool = False,
) -> None:
    check_name("endpoint", name)
    endpoints = _section(doc, "endpoints")
    if name in endpoints and not replace:
        raise ConfigError(
            f"endpoint {name!r} already exists (edit it in the file, or pick another --name)",
            key=f"endpoints.{name}",
        )
    table = tomlkit.table()
    table.add("provider", provider)
    if base_url:
        table.add("base_url", base_url)
    if api_keys:
        table.add("api_keys", api_keys)
    if name in endpoints:
        endpoints[name] = table
    else:
        endpoints.add(name, table)


def set_model(
    doc: tomlkit.TOMLDocument,
    name: str,
    *,
    path: str,
    endpoint: str,
    tier: str | None = None,
    context_window: int | None = None,
    price: tuple[float | None, float | None] = (None, None),
    replace: bool = False,
) -> None:
    check_name("model", name)
    if tier is not None and tier not in TIERS:
        raise ConfigError(
            f"tier {tier!r} is not one of {', '.join(TIERS)}{did_you_mean(tier, TIERS)}",
            key="--tier",
        )
    models = _section(doc, "models")
    if name in models and not replace:
        raise ConfigError(
            f"model {name!r} already exists (edit it in the file, or pick another --name)",
            key=f"models.{name}",
        )
    table = tomlkit.table()
    table.add("endpoint", endpoint)
    table.add("path", path)
    if tier:
        table.add("tier", tier)
    if context_window:
        table.add("context_window", context_window)
    if price[0] is not None or price[1] is not None:
        inline = tomlkit.inline_table()
        inline.update({"input": price[0] or 0.0, "output": price[1] or 0.0})
        table.add("price", inline)
    if name in models:
        models[name] = table
    else:
        models.add(name, table)
