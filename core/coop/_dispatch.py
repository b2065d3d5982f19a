"""Dispatcher: one chat request to a model, a cooperation, or the router's choice.

The gateway, the CLI and embedding apps all go through here, so ``model="auto"``
and ``model="council"`` mean the same thing everywhere and no logic lives only in
a front. It owns the engine, the router (through the shared routing policy) and
the cooperation scheduler.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from ._config import SystemConfig
from ._engine import OpenAIEngine
from ._errors import UnknownModelError
from ._plugins import Plugins, load_plugins
from ._route_policy import RoutingPolicy
from ._routing import RouteDecision
from ._scheduler import CooperationResult, CooperationScheduler
from ._wire import ChatChunk, ChatRequest, ChatResponse, Usage, from_wire, to_wire

__all__ = ["DispatchResult", "Dispatcher", "Progress"]


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


def _messages_of(request: ChatRequest) -> list[dict[str, Any]]:
    return to_wire(request)["messages"]


class Dispatcher:
    """``async with Dispatcher(config) as d: await d.complete(request)``."""

    def __init__(
        self,
        config: SystemConfig | None = None,
        *,
        plugins: Plugins | None = None,
        health_checks: bool = True,
        http_backend: str | None = None,
    ) -> None:
        self.config = config if config is not None else SystemConfig()
        self.plugins = plugins or load_plugins(disabled=self.config.plugins.disabled)
        self.engine = OpenAIEngine(
            self.config,
            plugins=self.plugins,
            health_checks=health_checks,
            http_backend=http_backend,
        )
        self.scheduler = CooperationScheduler(self.engine)
        router_cls = self.plugins.get("router", self.config.routing.router)
        self.router = router_cls(self.config.routing.options)
        #: A router that also runs the request (``cascade``): cheap model first, then escalate.
        self._cascades = callable(getattr(self.router, "run", None))
        self.policy = RoutingPolicy(
            self.config,
            self.router,
            healthy=self.engine.healthy,
            latency_of=self._latency_of,
        )

    def _latency_of(self, name: str) -> float | None:
        model = self.engine.models.get(name)
        if not model:
            return None
        known = [d.latency_ewma for d in model.deployments if d.latency_ewma is not None]
        return min(known) if known else None

    async def __aenter__(self) -> Dispatcher:
        await self.engine.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.shutdown()

    # -- routing ---------------------------------------------------------------------

    def route(
        self,
        request: ChatRequest,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
    ) -> RouteDecision:
        return self.policy.decide(_messages_of(request), max_cost=max_cost, max_latency=max_latency)

    def resolve(
        self,
        request: ChatRequest,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
    ) -> tuple[str, RouteDecision | None]:
        """The model or cooperation to run, and the routing decision when ``auto``."""
        name = request.model
        if name == "auto":
            decision = self.route(request, max_cost=max_cost, max_latency=max_latency)
            if self._cascades and decision.target_kind == "model":
                return "auto", decision  # the cascade decides while it runs
            return decision.target, decision
        if name in self.config.models or name in self.config.cooperations:
            return name, None
        raise UnknownModelError(name, self.config.served_names())

    # -- running -----------------------------------------------------------------------

    async def complete(
        self,
        request: ChatRequest,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
        on_progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> DispatchResult:
        started = time.perf_counter()
        target, decision = self.resolve(request, max_cost=max_cost, max_latency=max_latency)
        if target == "auto" and decision is not None:
            return await self._cascade(request, decision, started)
        if target in self.config.cooperations:
            result = await self.scheduler.run(
                self.config.cooperations[target], _messages_of(request), on_progress=on_progress
            )
            usage = from_wire(
                Usage,
                {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "total_tokens": result.prompt_tokens + result.completion_tokens,
                },
            )
            response = ChatResponse.build(target, result.text, usage=usage)
            return DispatchResult(
                response=response,
                model=target,
                deployment=None,
                usage=usage,
                cost=result.cost,
                latency=time.perf_counter() - started,
                route=decision,
                cooperation=result,
            )
        chat = await self.engine.chat(request, model=target)
        return DispatchResult(
            response=chat.response,
            model=chat.model,
            deployment=chat.deployment,
            usage=chat.usage,
            cost=chat.cost,
            latency=time.perf_counter() - started,
            route=decision,
        )

    async def _cascade(
        self, request: ChatRequest, decision: RouteDecision, started: float
    ) -> DispatchResult:
        """Run a cascading router: the cheap model (sampled), the strong one if they disagree."""
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
        for name in (cheap, strong):
            if name not in self.config.models:
                raise UnknownModelError(name, list(self.config.models))
        usage_total = {"prompt_tokens": 0, "completion_tokens": 0}

        async def complete(model: str, messages: list[dict[str, Any]]) -> tuple[str, float]:
            result = await self.engine.chat(
                attrs.evolve(request, model=model, stream=False), model=model
            )
            usage_total["prompt_tokens"] += result.usage.prompt_tokens or 0
            usage_total["completion_tokens"] += result.usage.completion_tokens or 0
            return result.text, result.cost

        outcome = await self.router.run(
            _messages_of(request),
            complete=complete,
            cheap=cheap,
            strong=str(strong),
            samples=int(options.get("samples", 2)),
        )
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
        )

    async def stream(
        self,
        request: ChatRequest,
        *,
        max_cost: float | None = None,
        max_latency: float | None = None,
        on_start: Callable[[str | None, str], None] | None = None,
        on_finish: Callable[[Usage, float], None] | None = None,
    ) -> AsyncIterator[ChatChunk | Progress]:
        """Chunks of the answer; a cooperation sends :class:`Progress` notes, then its answer."""
        target, _ = self.resolve(request, max_cost=max_cost, max_latency=max_latency)
        if target not in self.config.cooperations and target != "auto":
            async for chunk in self.engine.stream_chat(
                request, model=target, on_start=on_start, on_finish=on_finish
            ):
                yield chunk
            return
        if on_start is not None:
            on_start(None, target)
        import anyio

        send, receive = anyio.create_memory_object_stream[Any](100)

        def progress(event: str, data: dict[str, Any]) -> None:
            note = f"{data.get('model')} {event}"
            if data.get("latency") is not None:
                note += f" in {data['latency']:.2f}s"
            if data.get("error"):
                note += f": {data['error']}"
            with contextlib.suppress(
                anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
            ):
                send.send_nowait(Progress(note))

        outcome: dict[str, Any] = {}

        async def run() -> None:
            async with send:
                try:
                    outcome["result"] = await self.complete(
                        attrs.evolve(request, model=target), on_progress=progress
                    )
                except Exception as exc:
                    outcome["error"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            async with receive:
                async for note in receive:
                    yield note
        if "error" in outcome:
            raise outcome["error"]
        result: DispatchResult = outcome["result"]
        ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), result.model
        yield ChatChunk.build(model, "", id=ident, created=created, role="assistant")
        yield ChatChunk.build(model, result.text, id=ident, created=created)
        yield ChatChunk.build(model, id=ident, created=created, finish_reason="stop")
        if request.stream_options and _get(request.stream_options, "include_usage"):
            yield ChatChunk.build(model, id=ident, created=created, usage=result.usage)
        if on_finish is not None:
            on_finish(result.usage, result.cost)

    async def stream_text(self, request: ChatRequest) -> AsyncIterator[str]:
        async for item in self.stream(request):
            if isinstance(item, ChatChunk):
                for choice in item.choices or ():
                    content = getattr(choice.delta, "content", None)
                    if isinstance(content, str) and content:
                        yield content


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
