"""``coop cooperate`` (several models on one task) and ``coop eval cooperation``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
from cyclopts import App, Parameter

from .._config import CooperationConfig
from .._coop_eval import evaluate_voting, load_rows
from .._dispatch import MODES, Dispatcher
from .._errors import ConfigError, UnknownModelError, ValidationError
from .._wire import parse_chat_request
from ._common import Common, emit_json, load
from ._route_cmds import eval_app


def register(app: App) -> None:
    app.command(cooperate)


def _split(models: str) -> list[str]:
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ValidationError("give at least one model", field="--models", value=models)
    return names


def cooperate(
    query: str,
    /,
    *,
    models: str | None = None,
    mode: str = "parallel",
    strategy: str | None = None,
    cooperation: str | None = None,
    quorum: int | None = None,
    timeout: float | None = None,
    record: Path | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Run several models on one task and print the integrated answer.

    Parameters
    ----------
    query
        The task ("-" reads standard input).
    models
        Comma-separated logical models (pipeline: one stage each, in order).
    mode
        parallel, sequential or pipeline.
    strategy
        Integration strategy (voting, weighted, ensemble, judge, refine, debate).
    cooperation
        Run a [cooperations.NAME] entry instead of --models/--mode/--strategy. Without
        --models or --cooperation, the cooperation [routing] complex names runs.
    quorum
        Answers needed for a parallel run to succeed.
    timeout
        Seconds each model may take.
    record
        Append every model's answer to this JSON lines file (for the replay provider).
    json_
        Print the whole result (every output, votes, timing, cost) as JSON.
    """
    if query == "-":
        query = sys.stdin.read()
    config, plugins = load(common)
    if mode not in MODES:
        raise ValidationError(
            f"{mode!r} is not one of {', '.join(MODES)}", field="--mode", value=mode
        )
    if cooperation is None and models is None:
        cooperation = config.routing.complex
        if cooperation not in config.cooperations:
            raise ConfigError(
                "give --models a,b,c or --cooperation NAME ([routing] complex names no "
                "cooperation to run by default)",
                key="--models",
            )
    if cooperation is not None and cooperation not in config.cooperations:
        raise UnknownModelError(cooperation, list(config.cooperations))
    if cooperation is not None:
        spec = config.cooperations[cooperation]
    else:
        names = _split(models or "")
        spec = CooperationConfig(
            name="",
            mode=mode,
            models=[] if mode == "pipeline" else names,
            stages=[
                {"model": m, "task": task}
                for m, task in zip(names, _pipeline_tasks(len(names)), strict=True)
            ]
            if mode == "pipeline"
            else [],
            strategy=strategy or ("voting" if mode == "parallel" else None),
            quorum=quorum,
            timeout=timeout,
        )
    live = sys.stderr.isatty() and not json_

    def progress(event: str, data: dict[str, Any]) -> None:
        if live or event == "failed":
            note = f"  {data.get('model')}: {event}"
            if data.get("latency") is not None:
                note += f" in {data['latency']:.2f}s"
            if data.get("error"):
                note += f" ({data['error']})"
            print(note, file=sys.stderr, flush=True)

    async def main() -> Any:
        async with Dispatcher(config, plugins=plugins, health_checks=False) as dispatcher:
            request = parse_chat_request(
                {
                    "model": spec.name or "cooperation",
                    "messages": [{"role": "user", "content": query}],
                }
            )
            plan = dispatcher.plan_cooperation(request, spec)
            done = await dispatcher.run(plan, on_progress=progress)
            return done.cooperation

    result = anyio.run(main)
    if record is not None:
        _record(record, query, result)
    if json_:
        emit_json(result.to_dict())
        return 0
    print(result.text)
    evidence = result.evidence
    summary = f"[{result.mode}"
    if result.strategy:
        summary += f", {result.strategy}"
    if result.confidence is not None:
        summary += f", confidence {result.confidence:.2f}"
    summary += f", {len([o for o in result.outputs if o.success])}/{len(result.outputs)} answered, {result.latency:.2f}s, ${result.cost:.6f}]"
    print(summary, file=sys.stderr)
    if evidence.get("method") == "text-similarity":
        print("no extractable answers: voted on text agreement", file=sys.stderr)
    return 0


def _pipeline_tasks(n: int) -> list[str]:
    """Default stage tasks for ``--mode pipeline``: analysis first, summary last."""
    if n == 1:
        return ["answer"]
    return ["analysis", *["critique"] * (n - 2), "summary"]


def record_answers(path: Path, rows: list[tuple[str | None, str, str]]) -> None:
    """Append ``(deployment, prompt, text)`` rows in the replay provider's format.

    The key is the upstream model id (the deployment's path), so a replay
    endpoint can stand in for the real one under the same ``path``.
    """
    import json

    with path.open("a", encoding="utf-8") as handle:
        for deployment, prompt, text in rows:
            if deployment:
                model = deployment.split("/", 1)[1] if "/" in deployment else deployment
                line = {"model": model, "prompt": prompt, "text": text}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _record(path: Path, query: str, result: Any) -> None:
    record_answers(path, [(o.deployment, query, o.text) for o in result.outputs if o.success])


def eval_cooperation(
    file: Path,
    /,
    *,
    models: str,
    strategy: str = "voting",
    mode: str = "parallel",
    folds: int = 5,
    save: Path | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Accuracy of a cooperation on recorded answers, against each single model.

    Rows hold a reference answer ("ground_truth" or "answer") and each model's recorded
    output (text, or {"solution", "is_correct"}). Learned settings (weights) come from
    k-fold cross-validation, never from the rows they are scored on. --save then learns
    them on all the rows and writes them for use: with weighted, the weights file that
    [cooperations.X] options = { weights_file = "FILE" } reads.

    Parameters
    ----------
    file
        JSON lines of recorded answers.
    models
        Comma-separated names of the models (keys in each row).
    strategy
        Integration strategy to evaluate.
    mode
        Only parallel can be replayed offline.
    folds
        k of the cross-validation.
    save
        Write the settings the strategy learns on all the rows to this JSON file
        (atomically); only for strategies that learn (weighted).
    """
    if mode != "parallel":
        raise ValidationError(
            "only --mode parallel can be evaluated on recorded answers", field="--mode", value=mode
        )
    _, plugins = load(common, check=False)
    names = _split(models)
    try:
        rows = load_rows(file)
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(file)) from None
    cls = plugins.get("strategy", strategy)
    if save is not None and not cls.learns:
        raise ValidationError(
            f"strategy {strategy!r} learns nothing to save; use --save with a strategy that "
            "learns settings (weighted), or leave it out",
            field="--save",
            value=str(save),
        )
    if save is not None and not save.absolute().parent.is_dir():
        raise ConfigError(f"no such folder: {save.parent}", key="--save")
    report = anyio.run(lambda: evaluate_voting(rows, names, strategy, folds=folds, plugins=plugins))
    if json_:
        emit_json(report.to_dict())
    else:
        print(report.format())
    if save is not None:
        from .._coop_eval import learn_settings, save_learned

        learned = learn_settings(rows, names, strategy, plugins=plugins)
        save_learned(save, learned, strategy=strategy, models=names, rows=str(file))
        print(
            f"saved {', '.join(learned)} learned on all {len(rows)} rows to {save}", file=sys.stderr
        )
    return 0


eval_app.command(eval_cooperation, name="cooperation")  # once, at import
