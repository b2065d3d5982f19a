"""``coop route`` (explain a routing decision) and ``coop eval routing``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import attrs
from cyclopts import App, Parameter

from .._config import SystemConfig
from .._dispatch import Dispatcher
from .._errors import ConfigError, ValidationError
from .._jsonl import read_jsonl
from .._plan import Limits, Plan
from .._plugins import Plugins
from .._route_eval import evaluate_routing, load_rows
from .._wire import ChatRequest, parse_chat_request
from ._common import Common, emit_json, load

eval_app = App(name="eval", help="Measure routing or a cooperation against labelled data.")


def register(app: App) -> None:
    app.command(route)
    app.command(eval_app)


def register_train(app: App) -> None:
    """``coop router train FILE --router NAME``: after the plugins' commands, so the
    classifier's own ``router train`` stays the default and other routers plug in."""
    if "router" in app:
        router_app = app["router"]
    else:
        router_app = App(name="router", help="Train routers.")
        app.command(router_app)
    previous = None
    if "train" in router_app:
        previous = router_app["train"].default_command
        del router_app["train"]

    def train(
        file: Path,
        *more: Path,
        router: str = "classifier",
        out: Annotated[Path | None, Parameter(name="--out")] = None,
        cv: int = 0,
        epochs: int | None = None,
        quiet: bool = False,
        common: Common = Common(),  # noqa: B008
    ) -> int:
        """Train a router on JSON lines: the classifier on ``task_type`` rows, ``outcome``
        on rows with ``outcomes``.

        Parameters
        ----------
        file
            Training JSON lines; more files may follow.
        router
            The router to train (a router plugin that can be trained).
        out
            Where to write the model (default: the router's own choice).
        cv
            Also report k-fold cross-validated figures (k = this number, 0 = skip).
        epochs
            Training epochs (classifier only).
        quiet
            Print only the result line.
        """
        config, plugins = load(common, check=False)
        cls = plugins.get("router", router)
        trainer = getattr(cls, "train_cli", None)
        if trainer is None and previous is not None and router == "classifier":
            return previous(file, *more, out=out, cv=cv, epochs=epochs, quiet=quiet)
        if trainer is None:
            raise ConfigError(f"router {router!r} cannot be trained", key="--router")
        return trainer([file, *more], out=out, cv=cv, quiet=quiet, config=config)

    router_app.command(train, name="train")


def _dispatcher(config: SystemConfig, plugins: Plugins, router: str | None) -> Dispatcher:
    """The dispatcher whose plans ``coop route`` shows: the gateway's, or another router's."""
    if router is not None and router != config.routing.router:
        plugins.get("router", router)  # an unknown name fails here, with the known ones
        config = attrs.evolve(
            config, routing=attrs.evolve(config.routing, router=router, options={})
        )
    return Dispatcher(config, plugins=plugins, health_checks=False)


def _request(row: dict[str, Any]) -> ChatRequest:
    """A row (``prompt`` or ``messages``, optional ``tools``) as the request ``auto`` gets."""
    return parse_chat_request({**row, "model": "auto"})


def _read_batch(path: Path) -> list[ChatRequest]:
    """Every row's request, checked before any decision is written."""
    batch = []
    for number, row in read_jsonl(path):
        data: dict[str, Any] = {k: row[k] for k in ("messages", "tools") if k in row}
        if not isinstance(row.get("messages"), list):
            if not isinstance(row.get("prompt"), str):
                raise ConfigError(
                    "a row needs 'prompt' (a string) or 'messages' (a list)",
                    path=str(path),
                    line=number,
                )
            data["messages"] = [{"role": "user", "content": row["prompt"]}]
        try:
            batch.append(_request(data))
        except ValidationError as exc:
            raise ConfigError(str(exc), path=str(path), line=number) from None
    return batch


def _decision(plan: Plan) -> dict[str, Any]:
    assert plan.decision is not None
    data = plan.decision.to_dict()
    data["plan"] = {"kind": plan.kind, "target": plan.target}
    return data


def _explain(plan: Plan) -> str:
    decision = plan.decision
    assert decision is not None
    lines = [
        f"task type:  {decision.task_type} ({decision.language})",
        f"complexity: {decision.complexity}",
        f"tier:       {decision.tier}",
        f"target:     {decision.target} ({decision.target_kind}) by router {decision.router} in {decision.elapsed_ms:.3f} ms",
        "why:",
        *[f"  - {reason}" for reason in decision.reasons],
    ]
    if decision.candidates:
        lines.append("candidates:")
        for c in decision.candidates:
            extra = f" est ${c['estimated_cost']:.6f}" if "estimated_cost" in c else ""
            why = f" ({c['why_not']})" if c.get("why_not") else ""
            lines.append(
                f"  - {c['name']} [{c['kind']}] {'eligible' if c['eligible'] else 'not eligible'}{extra}{why}"
            )
    if plan.cascade is not None:
        cheap, strong, samples = plan.cascade
        lines.append(f"plan:       cascade: {cheap} sampled {samples}x, {strong} if they disagree")
    return "\n".join(lines)


def route(
    prompt: str | None = None,
    /,
    *,
    batch: Path | None = None,
    router: str | None = None,
    system: str | None = None,
    max_cost: float | None = None,
    max_latency: float | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Show how a prompt would be routed: task type, complexity, tier, target and why.

    Parameters
    ----------
    prompt
        The prompt ("-" reads standard input).
    batch
        A JSON lines file of rows with "prompt" (or "messages"): one decision per line, in order.
    router
        Router plugin to use instead of [routing] router.
    system
        A system prompt to route with.
    max_cost
        USD limit per request; candidates estimated above it are skipped.
    max_latency
        Seconds; candidates with slower recent latency are skipped.
    """
    config, plugins = load(common)
    dispatcher = _dispatcher(config, plugins, router)
    limits = Limits(max_cost=max_cost, max_latency=max_latency)
    if batch is not None:
        if prompt is not None:
            raise ConfigError("give a prompt or --batch, not both", key="--batch")
        requests = _read_batch(batch)
        out = sys.stdout
        for request in requests:
            plan = dispatcher.plan(request, limits=limits)
            out.write(json.dumps(_decision(plan), ensure_ascii=False) + "\n")
        return 0
    if prompt is None:
        raise ConfigError("give a prompt (or --batch FILE.jsonl)", key="prompt")
    if prompt == "-":
        prompt = sys.stdin.read()
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    plan = dispatcher.plan(_request({"messages": messages}), limits=limits)
    if json_:
        emit_json(_decision(plan))
    else:
        print(_explain(plan))
    return 0


@eval_app.command(name="routing")
def eval_routing(
    file: Path,
    /,
    *,
    router: str | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Accuracy per task type and tier, a confusion matrix and decision latency; on rows
    with "outcomes", APGR, cpt50, cpt80, accuracy and cost beside a random router.

    Parameters
    ----------
    file
        JSON lines with "prompt" (or "messages") and "task_type" and/or "tier", or "outcomes".
    router
        Router plugin to evaluate (default: [routing] router).
    """
    config, plugins = load(common)
    rows = load_rows(file)
    name = router or config.routing.router
    prices = {m: (c.price.input, c.price.output) for m, c in config.models.items()}
    report = evaluate_routing(
        plugins.get("router", name)(
            config.routing.options if name == config.routing.router else {}
        ),
        rows,
        prices=prices,
    )
    if json_:
        emit_json(report.to_dict())
    else:
        print(report.format())
    return 0
