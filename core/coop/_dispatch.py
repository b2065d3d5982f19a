"""Dispatcher: the one request path. Plan a request once, then run that plan.

The gateway's APIs, the CLI, services and embedding apps all call
:meth:`Dispatcher.plan` and then :meth:`Dispatcher.run` or :meth:`Dispatcher.stream`,
so ``model="auto"`` and ``model="council"`` mean the same thing everywhere, the
decision reported is the one that ran, and no front chooses between modes or
rebuilds requests. It owns the engine, the router (through the shared routing
policy) and the cooperation scheduler.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import attrs

from ._config import CooperationConfig, SystemConfig
from ._engine import NativeResult, OpenAIEngine
from ._errors import UnknownModelError, ValidationError
from ._plan import Limits, Plan, honourable_parameters
from ._plugins import Plugins, load_plugins
from ._redact import redact
from ._route_policy import RoutingPolicy
from ._routing import CascadingRouter, RouteDecision
from ._scheduler import CooperationResult, CooperationScheduler
from ._wire import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    Usage,
    from_wire,
    parse_chat_request,
    to_wire,
)

__all__ = ["DispatchResult", "Dispatcher", "Progress"]

#: Cooperation modes, in the order error messages list them.
MODES = ("sequential", "parallel", "pipeline")


@attrs.frozen
class Progress:
    """A cooperation's progress note, sent to streaming clients as an SSE comment."""

    text: str


@attrs.define
class DispatchResult:
    response: ChatResponse
    #: The logical model or cooperation that answered.
    model: str
    deployment: str | None
    usage: Usage
    cost: float
    latency: float
    route: RouteDecision | None = None
    cooperation: CooperationResult | None = None
    plan: Plan | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def text(self) -> str:
        return self.response.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "deployment": self.deployment,
            "usage": to_wire(self.usage),
            "usage_estimated": bool(getattr(self.usage, "estimated", False)),
            "cost": round(self.cost, 8),
            "latency": round(self.latency, 4),
            "route": self.route.to_dict() if self.route else None,
            "cooperation": self.cooperation.to_dict() if self.cooperation else None,
            "response": to_wire(self.response),
        }


class Dispatcher:
    """``async with Dispatcher(config) as d: await d.run(d.plan(request))``."""

    def __init__(
        self,
        config: SystemConfig | None = None,
        *,
        plugins: Plugins | None = None,
        health_checks: bool = True,
        http_backend: str | None = None,
        engine: OpenAIEngine | None = None,
    ) -> None:
        self.config = config if config is not None else SystemConfig()
        self.plugins = plugins or load_plugins(disabled=self.config.plugins.disabled)
        #: An engine the caller already has (``ServiceManager(engine)``) is used as is.
        self.engine = engine or OpenAIEngine(
            self.config,
            plugins=self.plugins,
            health_checks=health_checks,
            http_backend=http_backend,
        )
        self.scheduler = CooperationScheduler(self.engine)
        router_cls = self.plugins.get("router", self.config.routing.router)
        self.router = router_cls(self.config.routing.options)
        self.policy = RoutingPolicy(
            self.config,
            self.router,
            healthy=self.engine.healthy,
            latency_of=self._latency_of,
            unhonoured=self._unhonoured,
        )
        if self.engine.tracing is not None:  # route and cooperation spans; off: untouched
            self.engine.tracing.instrument_dispatcher(self)

    def _latency_of(self, name: str) -> float | None:
        model = self.engine.models.get(name)
        if not model:
            return None
        known = [d.latency_ewma for d in model.deployments if d.latency_ewma is not None]
        return min(known) if known else None

    def _unhonoured(self, name: str, used: frozenset[str]) -> str | None:
        """Why the cooperation ``name`` cannot take a request using ``used``, or ``None``."""
        why = self.scheduler.unhonoured(self.config.cooperations[name], used)
        return None if why is None else why[1]

    async def __aenter__(self) -> Dispatcher:
        await self.engine.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.shutdown()

    # -- planning ----------------------------------------------------------------------

    def route(
        self,
        request: ChatRequest,
        *,
        limits: Limits | None = None,
        needs: frozenset[str] | None = None,
    ) -> RouteDecision:
        """The router's decision for ``request`` (tools and attachments count).

        ``needs`` is :func:`honourable_parameters` of the request, when already known.
        """
        limits = limits or Limits()
        return self.policy.decide(
            request.wire_messages(),
            max_cost=limits.max_cost,
            max_latency=limits.max_latency,
            needs=honourable_parameters(request) if needs is None else needs,
            tools=len(request.tools) if isinstance(request.tools, list) else 0,
        )

    def plan(self, request: ChatRequest, *, limits: Limits | None = None) -> Plan:
        """Resolve ``request`` once: a model, a configured cooperation, or the router's choice.

        Raises :class:`UnknownModelError` for a name that is none of these and
        :class:`UnsupportedParameterError` (400) for parameters the target cannot honour.
        """
        limits = limits or Limits()
        name = request.model
        if name == "auto":
            used = honourable_parameters(request)
            decision = self.route(request, limits=limits, needs=used)
            self.engine.metrics.record_route(decision.tier, decision.target)
            if decision.target_kind == "cooperation":
                return self._cooperation_plan(
                    request, self.config.cooperations[decision.target], limits, decision
                )
            if isinstance(self.router, CascadingRouter):
                if not used:
                    return self._cascade_plan(request, decision, limits)
                decision.reasons.append(
                    f"no cascade: its samples are compared as text, and the request "
                    f"carries {', '.join(sorted(used))}; sent to {decision.target}"
                )
            return Plan(
                "model", decision.target, _retarget(request, decision.target), limits, decision
            )
        if name in self.config.models:
            return Plan("model", name, request, limits)
        if name in self.config.cooperations:
            return self._cooperation_plan(request, self.config.cooperations[name], limits, None)
        raise UnknownModelError(name, self.config.served_names())

    def plan_cooperation(
        self,
        request: ChatRequest,
        cooperation: CooperationConfig,
        *,
        limits: Limits | None = None,
    ) -> Plan:
        """Plan an ad-hoc cooperation (``/v1/cooperate``, ``coop cooperate --models``)."""
        if cooperation.mode not in MODES:
            raise ValidationError(
                f"must be one of {', '.join(MODES)}", field="mode", value=cooperation.mode
            )
        members = cooperation.models or [
            s.get("model") for s in cooperation.stages if isinstance(s, dict)
        ]
        if not members:
            field = "stages" if cooperation.mode == "pipeline" else "models"
            raise ValidationError("give at least one model", field=field, value=members)
        for member in members:
            if member not in self.config.models:
                raise UnknownModelError(str(member), list(self.config.models))
        if cooperation.strategy is not None:
            self.plugins.get("strategy", cooperation.strategy)
        return self._cooperation_plan(request, cooperation, limits or Limits(), None)

    def _cooperation_plan(
        self,
        request: ChatRequest,
        cooperation: CooperationConfig,
        limits: Limits,
        decision: RouteDecision | None,
    ) -> Plan:
        self.scheduler.check(cooperation, request)
        target = cooperation.name or "cooperation"
        return Plan(
            "cooperation",
            target,
            _retarget(request, target),
            limits,
            decision,
            cooperation=cooperation,
        )

    def _cascade_plan(self, request: ChatRequest, decision: RouteDecision, limits: Limits) -> Plan:
        routing = self.config.routing
        options = routing.options
        cheap = str(options.get("cheap") or routing.light or decision.target)
        strong = options.get("strong")
        if not strong:
            strong = (
                decision.target
                if decision.target != cheap
                else (routing.reasoning or decision.target)
            )
        for model in (cheap, str(strong)):
            if model not in self.config.models:
                raise UnknownModelError(model, list(self.config.models))
        samples = int(options.get("samples", 2))
        return Plan(
            "cascade",
            cheap,
            request,
            limits,
            decision,
            cascade=(cheap, str(strong), samples),
        )

    # -- running -----------------------------------------------------------------------

    async def run(
        self,
        plan: Plan,
        *,
        on_progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DispatchResult:
        """Run a plan to its whole answer."""
        started = time.perf_counter()
        self.engine.metrics.record_plan(plan.kind, plan.target)
        if plan.kind == "cooperation":
            return await self._run_cooperation(plan, started, on_progress)
        if plan.kind == "cascade":
            return await self._run_cascade(plan, started)
        chat = await self.engine.chat(
            plan.request, model=plan.target, deadline=plan.limits.deadline
        )
        return DispatchResult(
            response=chat.response,
            model=chat.model,
            deployment=chat.deployment,
            usage=chat.usage,
            cost=chat.cost,
            latency=time.perf_counter() - started,
            route=plan.decision,
            plan=plan,
        )

    async def complete(
        self,
        request: ChatRequest,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
        on_progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DispatchResult:
        """``run(plan(request))``: the whole answer to one request."""
        limits = Limits(max_cost=max_cost, max_latency=max_latency)
        return await self.run(self.plan(request, limits=limits), on_progress=on_progress)

    async def _run_cooperation(
        self,
        plan: Plan,
        started: float,
        on_progress: Callable[[str, dict[str, Any]], None] | None,
    ) -> DispatchResult:
        assert plan.cooperation is not None
        cooperation = plan.cooperation
        try:
            result = await self.scheduler.run(
                cooperation,
                plan.request,
                on_progress=on_progress,
                deadline=plan.limits.deadline,
            )
        except Exception as exc:
            self.engine.metrics.record_cooperation(
                plan.target, cooperation.mode, cooperation.strategy or "", type(exc).__name__
            )
            raise
        self.engine.metrics.record_cooperation(
            plan.target, cooperation.mode, cooperation.strategy or "", "ok"
        )
        usage = from_wire(
            Usage,
            {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        )
        return DispatchResult(
            response=_cooperation_response(plan.target, result, usage),
            model=plan.target,
            deployment=None,
            usage=usage,
            cost=result.cost,
            latency=time.perf_counter() - started,
            route=plan.decision,
            cooperation=result,
            plan=plan,
        )

    async def _run_cascade(self, plan: Plan, started: float) -> DispatchResult:
        """A cascading router's run: the cheap model (sampled), the strong one on doubt."""
        assert plan.cascade is not None and plan.decision is not None
        assert isinstance(self.router, CascadingRouter)
        cheap, strong, samples = plan.cascade
        request, deadline = plan.request, plan.limits.deadline
        usage_total = {"prompt_tokens": 0, "completion_tokens": 0}

        async def complete(model: str, messages: list[dict[str, Any]]) -> tuple[str, float]:
            member = attrs.evolve(request, model=model, stream=False)
            if messages is not original:  # a router may ask its own question
                member.messages = parse_chat_request(
                    {"model": model, "messages": messages}
                ).messages
            result = await self.engine.chat(member, model=model, deadline=deadline)
            usage_total["prompt_tokens"] += result.usage.prompt_tokens or 0
            usage_total["completion_tokens"] += result.usage.completion_tokens or 0
            return result.text, result.cost

        original = request.wire_messages()
        outcome = await self.router.run(
            original, complete=complete, cheap=cheap, strong=strong, samples=samples
        )
        decision = plan.decision
        decision.reasons.extend(outcome.reasons)
        decision.target = outcome.model
        usage = from_wire(Usage, {**usage_total, "total_tokens": sum(usage_total.values())})
        return DispatchResult(
            response=ChatResponse.build(outcome.model, outcome.text, usage=usage),
            model=outcome.model,
            deployment=None,
            usage=usage,
            cost=outcome.total_cost_usd,
            latency=time.perf_counter() - started,
            route=decision,
            plan=plan,
        )

    async def stream(
        self,
        plan: Plan,
        *,
        on_start: Callable[[str | None, str], None] | None = None,
        on_finish: Callable[[Usage, float], None] | None = None,
    ) -> AsyncIterator[ChatChunk | Progress]:
        """Chunks of the answer; a cooperation sends :class:`Progress` notes, then its answer."""
        if plan.kind == "model":
            self.engine.metrics.record_plan(plan.kind, plan.target)
            async for chunk in self.engine.stream_chat(
                plan.request,
                model=plan.target,
                on_start=on_start,
                on_finish=on_finish,
                deadline=plan.limits.deadline,
            ):
                yield chunk
            return
        if on_start is not None:
            on_start(None, plan.target)

        send, receive = anyio.create_memory_object_stream[Any](100)

        def progress(event: str, data: dict[str, Any]) -> None:
            note = f"{data.get('model')} {event}"
            if data.get("latency") is not None:
                note += f" in {data['latency']:.2f}s"
            if data.get("error"):
                note += f": {redact(data['error'])}"  # an SSE comment: leaves the process
            with contextlib.suppress(
                anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
            ):
                send.send_nowait(Progress(note))

        outcome: dict[str, Any] = {}

        async def work() -> None:
            async with send:
                try:
                    outcome["result"] = await self.run(plan, on_progress=progress)
                except Exception as exc:
                    outcome["error"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(work)
            async with receive:
                async for note in receive:
                    yield note
        if "error" in outcome:
            raise outcome["error"]
        result: DispatchResult = outcome["result"]
        for chunk in _answer_chunks(result, plan.request):
            yield chunk
        if on_finish is not None:
            on_finish(result.usage, result.cost)

    # -- native APIs ---------------------------------------------------------------------

    def serves_native_messages(self, plan: Plan) -> bool:
        """Whether ``plan`` can send an Anthropic Messages body upstream as is: it runs
        one model (not a cooperation or a cascade) whose every deployment, fallbacks
        included, is on a provider serving the Messages API natively."""
        return plan.kind == "model" and self.engine.serves_native_messages(plan.target)

    async def native_messages(
        self,
        plan: Plan,
        body: dict[str, Any],
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> NativeResult:
        """Run ``plan`` with the client's own Messages ``body`` (see
        :meth:`serves_native_messages`): the engine's failover, the upstream's bytes."""
        if not self.serves_native_messages(plan):
            raise ValidationError(
                f"{plan.target!r} cannot take a Messages body as is: it is not one model "
                "whose every deployment serves the Messages API natively",
                field="model",
                value=plan.target,
            )
        self.engine.metrics.record_plan(plan.kind, plan.target)
        return await self.engine.native_messages(
            body,
            model=plan.target,
            stream=stream,
            headers=headers,
            deadline=plan.limits.deadline,
        )

    async def stream_text(self, request: ChatRequest) -> AsyncIterator[str]:
        """The answer's text as it comes, for ``model``, ``auto`` or a cooperation."""
        async for item in self.stream(self.plan(request)):
            if isinstance(item, ChatChunk):
                for choice in item.choices or ():
                    content = getattr(choice.delta, "content", None)
                    if isinstance(content, str) and content:
                        yield content


def _retarget(request: ChatRequest, model: str) -> ChatRequest:
    """``request`` for another target, with the client's JSON kept as the upstream body
    (providers write the upstream model id into it themselves)."""
    if request.model == model:
        return request
    routed = attrs.evolve(request, model=model)
    routed.source = request.source
    return routed


def _cooperation_response(name: str, result: CooperationResult, usage: Usage) -> ChatResponse:
    """The cooperation's answer as a chat completion.

    When the result is one member's answer verbatim (a vote's winner), that member's
    whole message is kept: its tool calls, its refusal, its reasoning text.
    """
    answer = result.answer
    response = answer.response if answer is not None else None
    if response is not None and response.choices:
        first = response.choices[0]
        return ChatResponse(
            model=name,
            choices=[
                Choice(
                    index=0,
                    message=first.message,
                    finish_reason=first.finish_reason or "stop",
                    logprobs=first.logprobs,  # the winner's text, so its logprobs still hold
                )
            ],
            usage=usage,
        )
    return ChatResponse.build(name, result.text, usage=usage)


def _answer_chunks(result: DispatchResult, request: ChatRequest) -> list[ChatChunk]:
    """A finished answer as a stream: role, content (or tool calls), finish, usage."""
    ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), result.model
    message = result.response.choices[0].message if result.response.choices else None
    finish = result.response.choices[0].finish_reason if result.response.choices else "stop"
    chunks = [ChatChunk.build(model, "", id=ident, created=created, role="assistant")]
    if result.text:
        chunks.append(ChatChunk.build(model, result.text, id=ident, created=created))
    calls = getattr(message, "tool_calls", None)
    if isinstance(calls, list) and calls:
        wire = to_wire(message)["tool_calls"]
        for i, call in enumerate(wire):
            call["index"] = i
        chunks.append(ChatChunk.build(model, id=ident, created=created, tool_calls=wire))
    chunks.append(ChatChunk.build(model, id=ident, created=created, finish_reason=finish or "stop"))
    options = request.stream_options
    if isinstance(options, dict) and options.get("include_usage"):
        chunks.append(ChatChunk.build(model, id=ident, created=created, usage=result.usage))
    return chunks
