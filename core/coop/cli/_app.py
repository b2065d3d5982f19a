"""The ``coop`` application: commands, and errors turned into one clear line.

Usage errors (bad config, bad arguments, unknown names) exit with 2, runtime
failures (an upstream down) with 1; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import cyclopts
from cyclopts import App, Parameter

from .. import __version__
from .._errors import (
    ConfigError,
    CoopError,
    PluginError,
    UnknownModelError,
    ValidationError,
)
from .._redact import install_log_redaction, redact
from ._config_cmds import config_app, init
from ._plugins_cmd import plugins

USAGE_ERRORS = (ConfigError, ValidationError, UnknownModelError, PluginError)


def build_app() -> App:
    """A fresh application (plugins may add commands through ``coop_register_commands``)."""
    app = App(
        name="coop",
        version=__version__,
        help="Route LLM requests to the right model and make several models cooperate.",
        default_parameter=Parameter(negative=()),
    )
    app.command(init)
    app.command(config_app)
    app.command(plugins)
    for module in _command_modules():
        module.register(app)
    _plugin_commands(app)
    _router_train(app)
    return app


def _router_train(app: App) -> None:
    try:
        from ._route_cmds import register_train
    except ModuleNotFoundError:
        return
    register_train(app)


def _command_modules() -> list:
    import importlib

    found = []
    for name in (
        "_engine_cmds",
        "_serve_cmds",
        "_route_cmds",
        "_cooperate_cmds",
        "_service_cmds",
        "_alerts_cmds",
        "_keys_cmds",
        "_plugin_cmds",
    ):
        try:
            found.append(importlib.import_module(f"coop.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"coop.cli.{name}":
                raise
    return found


def _plugin_commands(app: App) -> None:
    if os.environ.get("COOP_DISABLE_PLUGIN_COMMANDS"):
        return
    from .._plugins import load_plugins

    try:
        loaded = load_plugins()
        loaded.call_hook("coop_register_commands", app=app)
    except Exception as exc:  # a plugin's command must never break the CLI
        print(f"coop: warning: plugin commands not loaded: {exc}", file=sys.stderr)


def stdin_operand(args: Sequence[str]) -> list[str]:
    """``-`` (standard input) as an operand, which cyclopts would take for an unknown option.

    A bare ``-`` is never an option (POSIX); each one before the end of options
    moves just after a ``--`` (added at the end when there is none), so
    ``coop ask - --json`` parses as ``coop ask --json -- -``. Every command takes
    at most one positional argument, so moving it keeps the meaning.
    """
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    dashes = [token for token in args[:end] if token == "-"]
    if not dashes:
        return args
    head = [token for token in args[:end] if token != "-"]
    return [*head, "--", *dashes, *args[end + 1 :]]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("COOP_DEBUG"))
    while args and args[0] == "--debug":  # `coop --debug CMD`: the flag belongs to every command
        args.pop(0)
    install_log_redaction()  # warnings printed before any handler exists mask secrets too
    try:
        app = build_app()
        result = app(stdin_operand(args), exit_on_error=False, print_error=True)
    except cyclopts.CycloptsError:
        return _exit(2)
    except CoopError as exc:
        if debug:
            raise
        print(f"coop: error: {redact(str(exc))}", file=sys.stderr)
        return _exit(2 if isinstance(exc, USAGE_ERRORS) else 1)
    except KeyboardInterrupt:
        return _exit(130)
    except BrokenPipeError:  # `coop ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _exit(0)
    except Exception as exc:
        if debug:
            raise
        print(
            f"coop: internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return _exit(1)
    return _exit(result if isinstance(result, int) else 0)


def _exit(code: int) -> int:
    if __name__ != "__main__" and sys.argv and os.path.basename(sys.argv[0]) == "coop":
        sys.exit(code)
    return code
