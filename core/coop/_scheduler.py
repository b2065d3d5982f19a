"""CooperationScheduler: several models on one task, sequential, parallel or pipeline.

Parallel runs use one task group (``_fanout``), so wall time follows the slowest model,
not the sum; each model has its own timeout and a quorum decides whether enough
answered. Cancelling the caller cancels every upstream call. Integration is a
strategy plugin (voting, judge, ...), looked up by name like any third-party one.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs

from ._config import CooperationConfig
from ._errors import (
    CooperationError,
    CoopError,
    UnknownModelError,
    UnsupportedParameterError,
    ValidationError,
)
from ._fanout import run_all
from ._plan import honourable_parameters
from ._redact import redact
from ._strategies import Candidate, Integration, StrategyContext
from ._wire import UNSET, ChatMessage, ChatRequest, ChatResponse, parse_chat_request, to_wire

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

__all__ = [
    "DEFAULT_TEMPLATES",
    "CooperationResult",
    "CooperationScheduler",
    "ModelOutput",
    "Query",
    "render",
]

#: What a cooperation answers: a prompt, OpenAI-shaped messages, or the client's whole
#: request (its parameters then reach every member).
Query = str | list[dict[str, Any]] | ChatRequest

#: Parameters that shape an answer: a strategy's own calls (a judge, an aggregator)
#: run without them, since their answers are read by the strategy, not the client.
_ANSWER_SHAPE = {
    "tools": UNSET,
    "tool_choice": UNSET,
    "parallel_tool_calls": UNSET,
    "functions": UNSET,
    "function_call": UNSET,
    "response_format": UNSET,
    "n": UNSET,
    "logprobs": UNSET,
    "top_logprobs": UNSET,
}


#: Pipeline stage prompts; ``{query}`` is the user's task, ``{previous}`` the last
#: stage's output and ``{history}`` every earlier stage. Override in
#: ``[cooperations.X] templates``.
DEFAULT_TEMPLATES: dict[str, str] = {
    "analysis": "Analyse the following task in depth: the key facts, the dimensions that matter, risks and open questions.\n\nTask:\n{query}",
    "summary": "Summarise the analysis below into a clear, well-structured answer to the original task.\n\nOriginal task:\n{query}\n\nAnalysis:\n{previous}",
    "translation": "Translate the text below faithfully. Keep formatting.\n\nText:\n{previous}",
    "critique": "Critique the answer below to the task: list concrete errors, gaps and improvements.\n\nTask:\n{query}\n\nAnswer:\n{previous}",
    "improve": "Rewrite the answer to the task, fixing every point of the critique.\n\nTask:\n{query}\n\nEarlier work:\n{history}",
    "extraction": "Extract the key entities, numbers and facts from the text below as a bulleted list.\n\nText:\n{previous}",
    "answer": "{query}",
    "sequential": "Task:\n{query}\n\nA previous model answered:\n{previous}\n\nGive a better, corrected final answer to the task.",
}


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders with values; any other brace is left alone.

    One pass over the template only: user text is never formatted or scanned
    for placeholders, so a ``{`` or ``{previous}`` in a prompt is just text.
    """
    return _PLACEHOLDER.sub(
        lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template
    )


@attrs.define
class ModelOutput:
    """One model's contribution: its answer or its error, with timing and cost."""

    model: str
    text: str = ""
    success: bool = True
    error: str | None = None
    latency: float = 0.0
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    deployment: str | None = None
    stage: str | None = None
    #: Tool calls the model made, in wire form (``None``: it answered in text).
    tool_calls: list[dict[str, Any]] | None = None
    #: The model's whole response, kept so the winning answer reaches the client intact.
    response: ChatResponse | None = attrs.field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda a, _: a.name != "response")


@attrs.define
class CooperationResult:
    """The integrated answer and everything that led to it."""

    text: str
    mode: str
    strategy: str | None
    outputs: list[ModelOutput]
    integration: Integration | None = None
    latency: float = 0.0
    #: Model calls the strategy itself made (judge, aggregator, critique...).
    extra_calls: list[ModelOutput] = attrs.field(factory=list)
    failed: dict[str, str] = attrs.field(factory=dict)
    name: str | None = None

    @property
    def answer(self) -> ModelOutput | None:
        """The member output whose answer is the result, when the result is one verbatim."""
        winner = self.integration.winner if self.integration else None
        for output in reversed(self.outputs):
            if output.success and output.text == self.text and winner in (None, output.model):
                return output
        return None

    @property
    def cost(self) -> float:
        return sum(o.cost for o in self.outputs) + sum(o.cost for o in self.extra_calls)

    @property
    def prompt_tokens(self) -> int:
        return sum(o.prompt_tokens for o in (*self.outputs, *self.extra_calls))

    @property
    def completion_tokens(self) -> int:
        return sum(o.completion_tokens for o in (*self.outputs, *self.extra_calls))

    @property
    def evidence(self) -> dict[str, Any]:
        return self.integration.evidence if self.integration else {}

    @property
    def confidence(self) -> float | None:
        return self.integration.confidence if self.integration else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "text": self.text,
            "mode": self.mode,
            "strategy": self.strategy,
            "confidence": self.confidence,
            "winner": self.integration.winner if self.integration else None,
            "evidence": self.evidence,
            "outputs": [o.to_dict() for o in self.outputs],
            "extra_calls": [o.to_dict() for o in self.extra_calls],
            "failed": self.failed,
            "latency": round(self.latency, 4),
            "cost": round(self.cost, 8),
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }


Progress = Callable[[str, dict[str, Any]], None]


class CooperationScheduler:
    """``CooperationScheduler(engine)``: the seed's API for multi-model tasks."""

    def __init__(self, engine: Any, *, templates: Mapping[str, str] | None = None) -> None:
        self.engine = engine
        self.templates = {**DEFAULT_TEMPLATES, **(templates or {})}

    # -- plumbing -------------------------------------------------------------

    def _check_models(self, models: Sequence[str]) -> None:
        if not models:
            raise ValidationError(
                "a cooperation needs at least one model", field="models", value=list(models)
            )
        known = self.engine.config.models
        for model in models:
            if model not in known:
                raise UnknownModelError(model, list(known))

    def _strategy(self, name: str | None, settings: Mapping[str, Any]) -> Any:
        if name is None:
            return None
        plugins = self.engine.plugins
        return plugins.get("strategy", name)(settings)

    async def _call(
        self,
        request: ChatRequest,
        *,
        model: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        stage: str | None = None,
        on_progress: Progress | None = None,
    ) -> ModelOutput:
        """Run ``request`` on ``model`` (default: its own); a failure is recorded in the
        output, never raised."""
        model = model or request.model
        started = time.perf_counter()
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        if on_progress:
            on_progress("started", {"model": model, "stage": stage})
        try:
            if timeout is not None:
                with anyio.fail_after(timeout):
                    result = await self.engine.chat(request, model=model, deadline=deadline)
            else:
                result = await self.engine.chat(request, model=model, deadline=deadline)
        except (CoopError, TimeoutError) as exc:
            message = (
                f"timed out after {timeout:g}s"
                if isinstance(exc, TimeoutError) and not isinstance(exc, CoopError)
                else redact(f"{type(exc).__name__}: {exc}")  # a summary, never upstream text
            )
            output = ModelOutput(
                model=model,
                success=False,
                error=message,
                latency=time.perf_counter() - started,
                stage=stage,
            )
        else:
            response = result.response
            calls = None
            if response.choices:
                message_calls = response.choices[0].message.tool_calls
                if isinstance(message_calls, list) and message_calls:
                    calls = to_wire(response.choices[0].message)["tool_calls"]
            output = ModelOutput(
                model=model,
                text=result.text,
                latency=time.perf_counter() - started,
                cost=result.cost,
                prompt_tokens=result.usage.prompt_tokens or 0,
                completion_tokens=result.usage.completion_tokens or 0,
                deployment=result.deployment,
                stage=stage,
                tool_calls=calls,
                response=response,
            )
        if on_progress:
            on_progress(
                "finished" if output.success else "failed",
                {"model": model, "stage": stage, "latency": output.latency, "error": output.error},
            )
        return output

    def check(self, cooperation: CooperationConfig, request: ChatRequest) -> None:
        """Raise :class:`UnsupportedParameterError` (a 400 on the wire) for a request
        whose parameters this cooperation cannot honour.

        Sampling parameters reach every member whatever the strategy; ``tools``,
        ``response_format`` and ``n`` only where the cooperation can integrate what
        they ask for. Nothing is dropped silently.
        """
        used = honourable_parameters(request)
        if not used:
            return
        why = self.unhonoured(cooperation, used)
        if why is not None:
            param, reason = why
            raise UnsupportedParameterError(reason, field=param)

    def unhonoured(
        self, cooperation: CooperationConfig, used: frozenset[str]
    ) -> tuple[str, str] | None:
        """``(parameter, reason)`` for the first of ``used`` the cooperation cannot honour."""
        label = f"cooperation {cooperation.name!r}" if cooperation.name else "this cooperation"
        for param in sorted(used):
            if param == "n":
                return param, (
                    f"must be 1 for {label}: a cooperation integrates its members' "
                    "answers into one choice"
                )
            if cooperation.mode == "pipeline" and param == "tools":
                return param, (
                    f"not supported by {label} (mode pipeline): each stage reads "
                    "the previous stage's text; call a model directly or use a parallel "
                    "cooperation with a strategy that compares tool calls (voting)"
                )
            if cooperation.mode == "sequential" and param == "tools" and not cooperation.strategy:
                return param, (
                    f"not supported by {label} (mode sequential): each model "
                    "improves the previous model's text"
                )
            strategy = cooperation.strategy or (
                "voting" if cooperation.mode == "parallel" else None
            )
            if strategy is None:
                continue  # sequential/pipeline without a strategy: the last answer is the result
            cls = self.engine.plugins.get("strategy", strategy)
            if param not in cls.honours:
                what = "tool calls" if param == "tools" else "JSON answers"
                return param, (
                    f"not supported by {label}: its strategy {strategy!r} cannot "
                    f"integrate {what}; use strategy 'voting' or call a model directly"
                )
        return None

    def _base(self, query: Query) -> tuple[ChatRequest, list[dict[str, Any]]]:
        """The request members are built from, and its messages as plain dicts."""
        if isinstance(query, ChatRequest):
            if not query.messages:
                raise ValidationError("empty query", field="messages", value=[])
            return query, query.wire_messages()
        messages = _messages(query)
        return parse_chat_request({"model": "cooperation", "messages": messages}), messages

    async def _integrate(
        self,
        strategy_name: str | None,
        query: str,
        outputs: list[ModelOutput],
        models: Sequence[str],
        settings: Mapping[str, Any],
        extra: list[ModelOutput],
        base: ChatRequest | None = None,
        deadline: float | None = None,
    ) -> Integration | None:
        strategy = self._strategy(strategy_name, settings)
        if strategy is None:
            return None
        weights = settings.get("weights") or {}
        candidates = [
            Candidate(
                model=o.model,
                text=o.text,
                weight=float(weights.get(o.model, 1.0)),
                latency=o.latency,
                cost=o.cost,
                tool_calls=o.tool_calls,
            )
            for o in outputs
            if o.success
        ]

        async def complete(model: str, messages: list[dict[str, Any]]) -> str:
            request = parse_chat_request({"model": model, "messages": messages})
            if base is not None:  # the client's sampling parameters, not its answer's shape
                request = attrs.evolve(
                    base, model=model, messages=request.messages, stream=False, **_ANSWER_SHAPE
                )
            output = await self._call(request, stage="strategy", deadline=deadline)
            extra.append(output)
            if not output.success:
                raise CooperationError(f"strategy call to {model} failed: {output.error}")
            return output.text

        fmt = base.response_format if base is not None else None
        context = StrategyContext(
            query=query,
            complete=complete,
            models=list(models),
            settings=dict(settings),
            response_format=fmt if isinstance(fmt, dict) else None,
        )
        return await strategy.integrate(candidates, context)

    # -- the three modes ---------------------------------------------------------

    async def create_parallel_task(
        self,
        query: Query,
        models: Sequence[str],
        integration_strategy: str | None = "voting",
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
        on_progress: Progress | None = None,
        deadline: float | None = None,
    ) -> CooperationResult:
        """Ask every model at once; integrate the answers with the strategy.

        Given a :class:`ChatRequest`, every model receives its parameters
        (``temperature``, ``max_tokens``, ``tools``...); ``deadline`` (a
        ``time.monotonic()`` value) bounds every call.
        """
        self._check_models(models)
        base, messages = self._base(query)
        if isinstance(query, ChatRequest):
            self.check(
                CooperationConfig(
                    name="", mode="parallel", models=list(models), strategy=integration_strategy
                ),
                base,
            )
        started = time.perf_counter()
        outputs: list[ModelOutput | None] = [None] * len(models)

        async def one(i: int, model: str) -> None:
            # Every member sends the client's own request: providers read the upstream
            # model from the deployment and never stream from ``chat``, and none changes
            # a request, so one object serves all (no copy per member).
            outputs[i] = await self._call(
                base, model=model, timeout=timeout, deadline=deadline, on_progress=on_progress
            )

        await run_all(functools.partial(one, i, model) for i, model in enumerate(models))
        done = [o for o in outputs if o is not None]
        return await self._finish(
            "parallel",
            integration_strategy,
            _last_user(messages),
            done,
            models,
            quorum,
            options,
            started,
            base=base,
            deadline=deadline,
        )

    async def create_sequential_task(
        self,
        query: Query,
        models: Sequence[str],
        integration_strategy: str | None = None,
        *,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
        on_progress: Progress | None = None,
        deadline: float | None = None,
    ) -> CooperationResult:
        """Each model sees the task and the previous model's answer and improves it.

        Without a strategy the last successful answer is the result; with one, the
        strategy integrates every step's answer.
        """
        self._check_models(models)
        base, messages = self._base(query)
        if isinstance(query, ChatRequest):
            self.check(
                CooperationConfig(
                    name="", mode="sequential", models=list(models), strategy=integration_strategy
                ),
                base,
            )
        task = _last_user(messages)
        started = time.perf_counter()
        outputs: list[ModelOutput] = []
        previous = ""
        for model in models:
            if previous:
                prompt = render(self.templates["sequential"], {"query": task, "previous": previous})
                step = [*base.messages[:-1], ChatMessage(role="user", content=prompt)]
            else:
                step = base.messages
            member = attrs.evolve(base, model=model, messages=step, stream=False)
            output = await self._call(
                member,
                timeout=timeout,
                deadline=deadline,
                stage="sequential",
                on_progress=on_progress,
            )
            outputs.append(output)
            if output.success:
                previous = output.text
        if integration_strategy is None:
            return self._result_without_strategy("sequential", outputs, started, quorum=1)
        return await self._finish(
            "sequential",
            integration_strategy,
            task,
            outputs,
            models,
            1,
            options,
            started,
            base=base,
            deadline=deadline,
        )

    async def create_pipeline_task(
        self,
        query: Query,
        pipeline_config: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        templates: Mapping[str, str] | None = None,
        on_progress: Progress | None = None,
        deadline: float | None = None,
    ) -> CooperationResult:
        """Run stages in order (``{"model": ..., "task": ...}``); each sees the earlier outputs.

        Every stage gets the client's sampling parameters; ``response_format`` only
        the last, whose answer is the result.
        """
        if not pipeline_config:
            raise ValidationError("a pipeline needs at least one stage", field="stages", value=[])
        for i, stage in enumerate(pipeline_config):
            if not isinstance(stage, Mapping) or "model" not in stage:
                raise ValidationError(
                    "each stage needs a 'model'", field=f"stages[{i}]", value=stage
                )
        self._check_models([s["model"] for s in pipeline_config])
        base, messages = self._base(query)
        if isinstance(query, ChatRequest):
            self.check(
                CooperationConfig(name="", mode="pipeline", stages=list(pipeline_config)), base
            )
        chosen = {**self.templates, **(templates or {})}
        task = _last_user(messages)
        system = [m for m in base.messages[:-1] if m.role == "system"]
        middle = attrs.evolve(base, response_format=UNSET)
        started = time.perf_counter()
        outputs: list[ModelOutput] = []
        previous = task
        history: list[str] = []
        last = len(pipeline_config) - 1
        for i, stage in enumerate(pipeline_config):
            name = str(stage.get("task") or "answer")
            template = stage.get("prompt") or chosen.get(name)
            if template is None:
                raise ValidationError(
                    f"unknown stage task {name!r}; known: {', '.join(sorted(chosen))} (or give 'prompt')",
                    field=f"stages[{i}].task",
                    value=name,
                )
            prompt = render(
                template,
                {"query": task, "previous": previous, "history": "\n\n".join(history) or task},
            )
            member = attrs.evolve(
                base if i == last else middle,
                model=stage["model"],
                messages=[*system, ChatMessage(role="user", content=prompt)],
                stream=False,
            )
            output = await self._call(
                member, timeout=timeout, deadline=deadline, stage=name, on_progress=on_progress
            )
            outputs.append(output)
            if not output.success:
                raise CooperationError(
                    f"pipeline stopped at stage {i + 1} ({name} on {stage['model']})",
                    failures={stage["model"]: RuntimeError(output.error)},
                )
            previous = output.text
            history.append(f"[{name} by {stage['model']}]\n{output.text}")
        result = CooperationResult(
            text=previous,
            mode="pipeline",
            strategy=None,
            outputs=outputs,
            latency=time.perf_counter() - started,
        )
        return result

    async def run(
        self,
        cooperation: CooperationConfig,
        query: Query,
        *,
        on_progress: Progress | None = None,
        deadline: float | None = None,
    ) -> CooperationResult:
        """Run a ``[cooperations.NAME]`` entry (or one made for the request)."""
        options = dict(cooperation.options)
        if cooperation.mode == "pipeline":
            result = await self.create_pipeline_task(
                query,
                cooperation.stages,
                timeout=cooperation.timeout,
                templates=cooperation.templates,
                on_progress=on_progress,
                deadline=deadline,
            )
        elif cooperation.mode == "sequential":
            result = await self.create_sequential_task(
                query,
                cooperation.models,
                cooperation.strategy,
                timeout=cooperation.timeout,
                options=options,
                on_progress=on_progress,
                deadline=deadline,
            )
        elif cooperation.mode == "parallel":
            result = await self.create_parallel_task(
                query,
                cooperation.models,
                cooperation.strategy or "voting",
                quorum=cooperation.quorum,
                timeout=cooperation.timeout,
                options=options,
                on_progress=on_progress,
                deadline=deadline,
            )
        else:
            raise ValidationError(
                "must be one of sequential, parallel, pipeline",
                field="mode",
                value=cooperation.mode,
            )
        result.name = cooperation.name or None
        return result

    # -- integration ----------------------------------------------------------------

    def _result_without_strategy(
        self, mode: str, outputs: list[ModelOutput], started: float, *, quorum: int
    ) -> CooperationResult:
        ok = [o for o in outputs if o.success]
        failed = {o.model: o.error or "failed" for o in outputs if not o.success}
        if len(ok) < quorum:
            raise CooperationError(
                f"{mode} cooperation failed: no model answered",
                failures={m: RuntimeError(e) for m, e in failed.items()},
            )
        return CooperationResult(
            text=ok[-1].text,
            mode=mode,
            strategy=None,
            outputs=outputs,
            failed=failed,
            latency=time.perf_counter() - started,
        )

    async def _finish(
        self,
        mode: str,
        strategy: str | None,
        query: str,
        outputs: list[ModelOutput],
        models: Sequence[str],
        quorum: int | None,
        options: Mapping[str, Any] | None,
        started: float,
        *,
        base: ChatRequest | None = None,
        deadline: float | None = None,
    ) -> CooperationResult:
        ok = [o for o in outputs if o.success]
        failed = {o.model: o.error or "failed" for o in outputs if not o.success}
        needed = quorum or 1
        if len(ok) < needed:
            raise CooperationError(
                f"{mode} cooperation needs {needed} answer(s), got {len(ok)} of {len(outputs)}",
                failures={m: RuntimeError(e) for m, e in failed.items()},
            )
        extra: list[ModelOutput] = []
        integration = await self._integrate(
            strategy, query, ok, models, options or {}, extra, base, deadline
        )
        text = integration.text if integration else ok[-1].text
        if integration is not None and failed:
            integration.evidence.setdefault("failed", failed)
        return CooperationResult(
            text=text,
            mode=mode,
            strategy=strategy,
            outputs=outputs,
            integration=integration,
            extra_calls=extra,
            failed=failed,
            latency=time.perf_counter() - started,
        )


def _messages(query: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(query, str):
        return [{"role": "user", "content": query}]
    if not query:
        raise ValidationError("empty query", field="messages", value=[])
    return list(query)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
