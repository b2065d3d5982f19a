"""``coop init`` and ``coop config ...``: create, edit, list and validate coop.toml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import attrs
from cyclopts import App, Parameter

from .._config import SystemConfig, check_plugins, default_config_path, find_config
from .._config_edit import STARTER_CONFIG, edit_config, set_endpoint, set_model
from .._dotenv import set_dotenv_value
from .._errors import ConfigError, did_you_mean
from .._files import atomic_write
from .._plugins import load_plugins
from ._common import Common, emit_json, load, table

config_app = App(name="config", help="Create, edit, list and validate coop.toml.")


def _target(common: Common) -> Path:
    """The file an edit goes to: the one in force, else ./coop.toml."""
    return find_config(common.config) or default_config_path()


def init(
    *,
    force: bool = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Write a commented starter coop.toml (runs offline on the simulated provider).

    Parameters
    ----------
    force
        Overwrite an existing file.
    """
    path = common.config or default_config_path()
    if path.exists() and not force:
        raise ConfigError("already exists (use --force to overwrite)", path=str(path))
    atomic_write(path, STARTER_CONFIG)
    print(f"wrote {path}; next: coop config validate, then coop serve")
    return 0


@config_app.command
def validate(*, common: Common = Common()) -> int:  # noqa: B008
    """Check coop.toml: syntax, keys, types, references and plugin names."""
    config, _ = load(common)
    print(
        f"{config.source}: ok ({len(config.endpoints)} endpoints, {len(config.models)} models, "
        f"{len(config.cooperations)} cooperations, router {config.routing.router})"
    )
    return 0


def _redact(value: str) -> str:
    return value if value.startswith("env:") else "***"


def _as_dict(config: SystemConfig) -> dict[str, Any]:
    data = attrs.asdict(config, recurse=True)
    data["path"] = str(config.path) if config.path else None
    data["server"]["api_keys"] = [_redact(k) for k in config.server.api_keys]
    for endpoint in data["endpoints"].values():
        endpoint["api_keys"] = [_redact(k) for k in endpoint["api_keys"]]
        endpoint["headers"] = {k: "***" for k in endpoint["headers"]}
    return data


@config_app.command(name="list")
def list_(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Show the configuration in force, secrets redacted."""
    config = SystemConfig.discover(common.config)
    if json_:
        emit_json(_as_dict(config))
        return 0
    print(f"config: {config.source}")
    print()
    print(
        table(
            ["endpoint", "provider", "base_url", "api_keys"],
            [
                [
                    e.name,
                    e.provider,
                    e.base_url or "(preset)",
                    ", ".join(_redact(k) for k in e.api_keys),
                ]
                for e in config.endpoints.values()
            ],
        )
    )
    print()
    print(
        table(
            ["model", "tier", "deployments", "price in/out"],
            [
                [
                    m.name,
                    m.tier or "",
                    ", ".join(d.id for d in m.deployments),
                    f"{m.price.input:g}/{m.price.output:g}",
                ]
                for m in config.models.values()
            ],
        )
    )
    if config.cooperations:
        print()
        print(
            table(
                ["cooperation", "mode", "models", "strategy"],
                [
                    [
                        c.name,
                        c.mode,
                        ", ".join(c.models or [s["model"] for s in c.stages]),
                        c.strategy or "",
                    ]
                    for c in config.cooperations.values()
                ],
            )
        )
    r = config.routing
    print()
    print(f"routing: router={r.router} light={r.light} reasoning={r.reasoning} complex={r.complex}")
    return 0


@config_app.command(name="add-endpoint")
def add_endpoint(
    *,
    name: str,
    base_url: str,
    provider: str = "custom",
    api_key_env: str | None = None,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Add an endpoint (an OpenAI-compatible URL by default).

    Parameters
    ----------
    name
        Endpoint name, used by models' ``endpoint``.
    base_url
        The API's base URL, e.g. http://localhost:11434/v1.
    provider
        Provider plugin (see ``coop plugins``).
    api_key_env
        Environment variable that holds the key (written as "env:VAR").
    """
    plugins = load_plugins()
    providers = plugins.names("provider")
    if provider not in providers:
        raise ConfigError(
            f"no provider plugin {provider!r}{did_you_mean(provider, providers)}; installed: {', '.join(providers)}",
            key="--provider",
        )
    path = _target(common)
    keys = [f"env:{api_key_env}"] if api_key_env else None
    edit_config(
        path,
        lambda doc: set_endpoint(doc, name, provider=provider, base_url=base_url, api_keys=keys),
    )
    print(f"added endpoint {name!r} to {path}")
    return 0


@config_app.command(name="add-model")
def add_model(
    *,
    name: str,
    path: str,
    endpoint: str,
    tier: str | None = None,
    context_window: int | None = None,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Add a logical model served by an endpoint.

    Parameters
    ----------
    name
        Logical model name clients send.
    path
        The upstream model id, e.g. Qwen/Qwen3-8B.
    endpoint
        An endpoint defined in coop.toml.
    tier
        light, reasoning or complex.
    context_window
        Tokens the model accepts.
    """
    target = _target(common)
    edit_config(
        target,
        lambda doc: set_model(
            doc, name, path=path, endpoint=endpoint, tier=tier, context_window=context_window
        ),
    )
    print(f"added model {name!r} to {target}")
    return 0


@config_app.command
def preset(
    *,
    name: str,
    api_key: str | None = None,
    store_literal: bool = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Add an endpoint and its model catalogue from a provider's preset.

    Parameters
    ----------
    name
        A provider plugin that ships a preset (aigcbest, openai, deepseek, ...).
    api_key
        The key. Stored in .env (beside coop.toml) as an env reference unless --store-literal.
    store_literal
        Write the key into coop.toml itself (the file gets mode 0600).
    """
    plugins = load_plugins()
    with_presets = sorted(n for n, cls in plugins.providers().items() if cls.preset is not None)
    if name not in with_presets:
        raise ConfigError(
            f"no preset {name!r}{did_you_mean(name, with_presets)}; available: {', '.join(with_presets) or 'none'}",
            key="--name",
        )
    the_preset = plugins.get("provider", name).preset
    target = _target(common)
    env_var = the_preset.api_key_env or f"{name.upper()}_API_KEY"
    keys: list[str] | None = None
    if api_key and store_literal:
        keys = [api_key]
    elif api_key or plugins.get("provider", name).requires_api_key:
        keys = [f"env:{env_var}"]

    def change(doc: Any) -> None:
        set_endpoint(
            doc, name, provider=name, base_url=the_preset.base_url, api_keys=keys, replace=True
        )
        for info in the_preset.models:
            set_model(
                doc,
                info.alias or info.id.split("/")[-1].lower().replace(".", "_"),
                path=info.id,
                endpoint=name,
                tier=info.tier,
                context_window=info.context_window,
                price=(info.price_input, info.price_output),
                replace=True,
            )

    edit_config(target, change)
    if api_key and not store_literal:
        set_dotenv_value(target.parent / ".env", env_var, api_key)
        os.environ.setdefault(env_var, api_key)
        print(f"stored the key in {target.parent / '.env'} as {env_var}")
    print(f"added endpoint {name!r} with {len(the_preset.models)} models to {target}")
    return 0


def validate_with_plugins(config: SystemConfig) -> None:
    check_plugins(config, load_plugins(disabled=config.plugins.disabled))
