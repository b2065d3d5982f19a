"""``coop ask``, ``coop models`` and ``coop config test``: the engine from a terminal."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from cyclopts import App, Parameter

from .._engine import InferenceRequest, OpenAIEngine, RetryPolicy
from .._errors import CoopError
from .._redact import redact_data
from ._common import Common, emit_json, load, table
from ._config_cmds import config_app


def register(app: App) -> None:
    app.command(ask)
    app.command(models)


def ask(
    prompt: str,
    /,
    *,
    model: str | None = None,
    no_stream: bool = False,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    record: Path | None = None,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Ask a model (or "auto", the router) and print the answer as it streams.

    Parameters
    ----------
    prompt
        The question. Use "-" to read it from standard input.
    model
        A logical model, a cooperation, or "auto" (default: the router decides).
    no_stream
        Wait for the whole answer instead of streaming it.
    json_
        Print the whole result as JSON (implies --no-stream).
    system
        A system prompt.
    max_tokens
        Upper bound on the answer's tokens.
    temperature
        Sampling temperature, 0-2.
    record
        Append the answer to this JSON lines file (for the replay provider).
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    config, plugins = load(common)
    from .._dispatch import Dispatcher

    async def main() -> int:
        async with Dispatcher(config, plugins=plugins, health_checks=False) as gateway:
            request = InferenceRequest(
                prompt=prompt,
                model_name=model or "auto",
                system_prompt=system,
                max_tokens=max_tokens,
                temperature=temperature,
            ).to_chat_request("auto")
            if json_ or no_stream or record is not None:
                result = await gateway.complete(request)
                if record is not None:
                    from ._cooperate_cmds import record_answers

                    record_answers(record, [(result.deployment, prompt, result.text)])
                if json_:
                    emit_json(result.to_dict())
                else:
                    print(result.text)
                return 0
            async for piece in gateway.stream_text(request):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0

    return anyio.run(main)


def models(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """List logical models, their deployments and health (plus cooperations)."""
    config, plugins = load(common)

    async def main() -> dict[str, Any]:
        async with OpenAIEngine(config, plugins=plugins, health_checks=False) as engine:
            return engine.deployment_snapshot()

    snapshot = anyio.run(main)
    if json_:
        emit_json(
            {
                "models": [
                    {
                        "name": name,
                        "tier": config.models[name].tier,
                        "context_window": config.models[name].context_window,
                        "price": {
                            "input": config.models[name].price.input,
                            "output": config.models[name].price.output,
                        },
                        "fallbacks": config.models[name].fallbacks,
                        "deployments": deployments,
                    }
                    for name, deployments in snapshot.items()
                ],
                "cooperations": [
                    {
                        "name": c.name,
                        "mode": c.mode,
                        "models": c.models or [s["model"] for s in c.stages],
                        "strategy": c.strategy,
                    }
                    for c in config.cooperations.values()
                ],
            }
        )
        return 0
    rows = []
    for name, deployments in snapshot.items():
        for dep in deployments:
            rows.append(
                [name, config.models[name].tier or "", dep["id"], dep["weight"], dep["state"]]
            )
    print(table(["model", "tier", "deployment", "weight", "health"], rows))
    for coop in config.cooperations.values():
        print(
            f"cooperation {coop.name}: {coop.mode} over {', '.join(coop.models or [s['model'] for s in coop.stages])} ({coop.strategy or 'default'})"
        )
    return 0


#: How long ``config test`` waits for a host to resolve or accept a connection.
PROBE_TIMEOUT = 5.0


async def unreachable(endpoint: str, base_url: str | None) -> str | None:
    """Why ``base_url``'s host cannot be reached at all, or ``None`` if it can be.

    ``config test`` asks this after a failed model listing: a name that does not
    resolve, a refused connection or a silent host will not answer a chat either,
    so the chat is not tried (no retries, no cooldown waits).
    """
    url = urlsplit(base_url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    host = url.hostname
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return None
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"endpoint {endpoint!r}: host {host!r} does not resolve ({exc.strerror or exc})"
    except TimeoutError:
        return f"endpoint {endpoint!r}: host {host!r} did not resolve within {PROBE_TIMEOUT:g}s"
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            stream = await anyio.connect_tcp(host, port)
        await stream.aclose()
    except TimeoutError:
        return (
            f"endpoint {endpoint!r}: {host}:{port} did not accept a connection "
            f"within {PROBE_TIMEOUT:g}s"
        )
    except OSError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"endpoint {endpoint!r}: {host}:{port} refused the connection (nothing listening)"
            )
        return f"endpoint {endpoint!r}: cannot connect to {host}:{port} ({cause.strerror or cause})"
    return None


def _base_url(engine: OpenAIEngine, endpoint: str) -> str | None:
    try:
        return getattr(engine.providers[endpoint], "base_url", None)
    except CoopError:  # no base_url: the listing's own error says so
        return None


def test(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Check each endpoint: list its models, then one tiny chat; print latency and errors.

    Each check is one attempt, without retries; an endpoint whose host does not
    resolve or refuses connections is reported at once, and its chat not tried.
    """
    config, plugins = load(common)

    async def main() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with OpenAIEngine(
            config, plugins=plugins, health_checks=False, retry=RetryPolicy(max_attempts=1)
        ) as engine:
            for name in config.endpoints:
                listing = await engine.check_endpoint(name)
                model = next(
                    (m.name for m in config.models.values() if m.deployments[0].endpoint == name),
                    None,
                )
                chat: dict[str, Any] = {
                    "ok": None,
                    "latency_ms": None,
                    "error": "no model uses this endpoint",
                }
                if not listing["ok"]:
                    why = await unreachable(name, _base_url(engine, name))
                    if why is not None:
                        listing["error"] = why
                        chat["error"] = "not tried: the endpoint is unreachable"
                        model = None
                if model is not None:
                    started = time.perf_counter()
                    try:
                        request = InferenceRequest(
                            prompt="Reply with the word: ok", model_name=model, max_tokens=5
                        )
                        await engine.chat(request.to_chat_request(model), model=model)
                        chat = {
                            "ok": True,
                            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                            "error": None,
                        }
                    except CoopError as exc:
                        chat = {
                            "ok": False,
                            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                rows.append(
                    {
                        "endpoint": name,
                        "provider": config.endpoints[name].provider,
                        "list_models": listing,
                        "chat": chat,
                        "model": model,
                    }
                )
        return rows

    rows = redact_data(anyio.run(main))  # errors name endpoints, never their keys
    if json_:
        emit_json(rows)
    else:
        print(
            table(
                ["endpoint", "provider", "models ok", "models ms", "chat ok", "chat ms", "error"],
                [
                    [
                        r["endpoint"],
                        r["provider"],
                        r["list_models"]["ok"],
                        r["list_models"]["latency_ms"],
                        r["chat"]["ok"],
                        r["chat"]["latency_ms"],
                        r["list_models"]["error"] or r["chat"]["error"] or "",
                    ]
                    for r in rows
                ],
            )
        )
    failed = any(not r["list_models"]["ok"] or r["chat"]["ok"] is False for r in rows)
    return 1 if failed else 0


config_app.command(test, name="test")  # once, at import: build_app may run twice
