"""``coop ask``, ``coop models`` and ``coop config test``: the engine from a terminal."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from cyclopts import App, Parameter

from .._engine import InferenceRequest, OpenAIEngine
from .._errors import CoopError
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


def test(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Check each endpoint: list its models, then one tiny chat; print latency and errors."""
    config, plugins = load(common)

    async def main() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with OpenAIEngine(config, plugins=plugins, health_checks=False) as engine:
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

    rows = anyio.run(main)
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
