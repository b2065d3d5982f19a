"""``coop service``: run an application service (document analysis, data insight, ...)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
from cyclopts import App, Parameter

from .._errors import ConfigError, ValidationError
from .._services import ServiceManager
from ._common import Common, emit_json, load, table


def register(app: App) -> None:
    app.command(service)


def _parameters(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"expected key=value, got {pair!r}", field="--param", value=pair)
        values[name.strip()] = value
    return values


def _read(file: Path) -> str | bytes:
    """A text file as text; PDF, DOCX and other binary files as bytes."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(file)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def service(
    service_type: str | None = None,
    /,
    *,
    content: str | None = None,
    file: Path | None = None,
    param: Annotated[list[str] | None, Parameter(consume_multiple=False)] = None,
    list_: Annotated[bool, Parameter(name="--list")] = False,
    out: Path | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Run an application service on text or a file and print its result.

    Parameters
    ----------
    service_type
        The service (``coop service --list`` shows them).
    content
        The text to process ("-" reads standard input).
    file
        A file to process instead: text, Markdown, HTML, CSV, JSON, PDF or DOCX.
    param
        A service parameter as key=value; repeat for several.
    list_
        List the installed services, their parameters and valid values.
    out
        Folder to write the files a service makes (a chart PNG, say).
    json_
        Print the whole response (result, data, models, usage, cost) as JSON.
    """
    config, plugins = load(common)
    manager = ServiceManager(_dispatcher(config, plugins))
    if list_:
        return _list(manager, json_)
    if service_type is None:
        raise ConfigError("give a service (coop service --list shows them)", key="service_type")
    cls = manager.service(service_type)
    parameters = cls.validate(_parameters(param or []))
    if (content is None) == (file is None):
        raise ConfigError("give --content TEXT or --file PATH (one of them)", key="--content")
    body: str | bytes = sys.stdin.read() if content == "-" else (content or "")
    if file is not None:
        body = _read(file)
        if "filename" in parameters and not parameters["filename"]:
            parameters["filename"] = file.name  # tells the service the format

    async def main() -> Any:
        async with manager:
            return await manager.run(service_type, body, parameters)

    response = anyio.run(main)
    if out is not None and response.files:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in response.files.items():
            (out / Path(name).name).write_bytes(data)
    if json_:
        emit_json(response.to_dict())
        return 0
    print(response.result)
    summary = (
        f"[{service_type}: {response.calls} model call(s) on {', '.join(response.models) or 'no model'}, "
        f"{response.prompt_tokens + response.completion_tokens} tokens, ${response.cost:.6f}, "
        f"{response.latency:.2f}s]"
    )
    print(summary, file=sys.stderr)
    if response.files and out is None:
        print(f"{len(response.files)} file(s) made; --out DIR writes them", file=sys.stderr)
    return 0


def _dispatcher(config: Any, plugins: Any) -> Any:
    from .._dispatch import Dispatcher

    return Dispatcher(config, plugins=plugins, health_checks=False)


def _list(manager: ServiceManager, as_json: bool) -> int:
    services = manager.services()
    if as_json:
        emit_json(
            [
                {
                    "name": name,
                    "description": cls.description,
                    "parameters": [
                        {
                            "name": p.name,
                            "type": p.type.__name__,
                            "choices": list(p.choices) if p.choices else None,
                            "default": p.default,
                            "required": p.required,
                            "description": p.description,
                        }
                        for p in cls.parameters
                    ],
                }
                for name, cls in services.items()
            ]
        )
        return 0
    if not services:
        print("no service plugin is installed (pip install 'llm-coop[all]')", file=sys.stderr)
        return 0
    for name, cls in services.items():
        print(f"{name}: {cls.description}")
        rows = [
            [
                p.name,
                p.type.__name__,
                " | ".join(p.choices) if p.choices else "",
                "(required)" if p.required else repr(p.default),
                p.description,
            ]
            for p in cls.parameters
        ]
        if rows:
            print(table(["parameter", "type", "valid values", "default", "what"], rows))
        print()
    return 0
