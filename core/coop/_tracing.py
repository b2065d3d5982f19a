"""OpenTelemetry tracing (``[monitoring] tracing = true``; ``pip install 'llm-coop[tracing]'``).

One trace per gateway request, named and attributed after the OpenTelemetry GenAI
semantic conventions::

    POST /v1/chat/completions          SERVER    http.*, coop.request_id
    └─ route                           INTERNAL  coop.route.* (model "auto" only)
       └─ cooperate council            INTERNAL  coop.cooperation.* (cooperations only)
          ├─ chat m                    INTERNAL  gen_ai.* for the logical model (a member call)
          │  ├─ chat gpt-4o-mini       CLIENT    gen_ai.*, server.*, one per upstream attempt
          │  └─ chat gpt-4o            CLIENT    (a retry or a failover: another attempt)
          └─ chat big ...

Off by default, and then free: nothing here imports ``opentelemetry`` until a
:class:`Tracing` is made, and the engine, dispatcher and gateway make one only when
the configuration asks (:func:`tracing_for`). The engine's and dispatcher's calls
are wrapped on the instance (:meth:`Tracing.instrument_engine`,
:meth:`Tracing.instrument_dispatcher`), so with tracing off their request path has
not one more instruction; the gateway checks one attribute per request.

Spans are made current with OpenTelemetry's context, which lives in ``contextvars``:
asyncio and trio tasks both start with a copy of their spawner's context, so the
members of a parallel cooperation are children of their cooperation span under both.
An async generator never holds a span current across a ``yield`` (the consumer's
context would change under it): the context is attached around each ``__anext__``.

No secret reaches a span: attributes are model names, deployment ids, counts and
error classes; error messages go through :func:`coop._redact.redact`; request
headers and message contents are never recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._redact import redact
from ._wire import UNSET

if TYPE_CHECKING:
    from ._config import MonitoringConfig, SystemConfig

__all__ = ["EXPORTERS", "Tracing", "missing_packages", "tracing_for"]

#: ``[monitoring] tracing_exporter`` values. ``none``: coop adds no exporter of its own,
#: spans go to the process's global tracer provider (``opentelemetry-instrument``, or
#: the application that embeds coop), or nowhere.
EXPORTERS = ("otlp", "console", "none")
EXTRA = "pip install 'llm-coop[tracing]'"
_OTLP = "opentelemetry.exporter.otlp.proto.http.trace_exporter"

#: The engine call being made (operation, its gen_ai.request.* attributes): read by
#: its attempt spans.
_CALL: contextvars.ContextVar[tuple[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "coop_tracing_call", default=None
)

#: ChatRequest field -> gen_ai.request.* attribute.
_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(exporter: str) -> tuple[str, str] | None:
    """``(key, message)`` when ``[monitoring] tracing`` cannot run in this environment."""
    if not _installed("opentelemetry.trace"):
        return "monitoring.tracing", f"needs the OpenTelemetry API: {EXTRA}"
    if exporter != "none" and not _installed("opentelemetry.sdk.trace"):
        return (
            "monitoring.tracing_exporter",
            f"{exporter!r} needs the OpenTelemetry SDK (opentelemetry-sdk): {EXTRA}",
        )
    if exporter == "otlp" and not _installed(_OTLP):
        return (
            "monitoring.tracing_exporter",
            f'"otlp" needs the OTLP exporter (opentelemetry-exporter-otlp-proto-http): {EXTRA}, '
            'or tracing_exporter = "console" or "none"',
        )
    return None


def tracing_for(config: SystemConfig) -> Tracing | None:
    """The tracer ``config`` asks for, or ``None`` (tracing off: nothing imported)."""
    monitoring = config.monitoring
    return Tracing(monitoring) if monitoring.tracing else None


def _given(value: Any) -> bool:
    return value is not None and value is not UNSET


def _server_of(provider: Any) -> tuple[str, int] | None:
    try:
        url = urlsplit(provider.base_url)
    except Exception:  # a provider without a URL (simulated, replay)
        return None
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.hostname, port


class Tracing:
    """Makes coop's spans; one per engine (the dispatcher and gateway share it)."""

    def __init__(self, monitoring: MonitoringConfig) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from . import __version__

        self._context, self._trace = context, trace
        self._kinds = SpanKind
        self._status, self._error = Status, StatusCode.ERROR
        self.provider: Any = None
        exporter = monitoring.tracing_exporter
        if exporter == "none":
            source: Any = trace.get_tracer_provider()
        else:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            if exporter == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                span_exporter: Any = OTLPSpanExporter(endpoint=monitoring.tracing_endpoint)
            else:
                import sys

                from opentelemetry.sdk.trace.export import ConsoleSpanExporter

                span_exporter = ConsoleSpanExporter(out=sys.stderr)
            resource = Resource.create({"service.name": monitoring.tracing_service_name})
            source = self.provider = TracerProvider(resource=resource)
            self.provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self.tracer = source.get_tracer("coop", __version__)
        self._deployments: dict[str, dict[str, Any]] = {}

    def shutdown(self) -> None:
        """Flush and stop the exporter coop made (nothing when spans go to the global one)."""
        if self.provider is not None:
            self.provider.shutdown()

    # -- span plumbing -------------------------------------------------------------------

    def _fail(self, span: Any, exc: BaseException) -> None:
        if isinstance(exc, GeneratorExit):
            return  # the consumer stopped reading: not an error
        kind = type(exc).__name__
        if not isinstance(exc, Exception):
            kind = "cancelled"  # asyncio.CancelledError, trio.Cancelled
        message = redact(str(exc))[:500] if isinstance(exc, Exception) else kind
        span.set_attribute("error.type", kind)
        span.add_event("exception", {"exception.type": kind, "exception.message": message})
        span.set_status(self._status(self._error, f"{kind}: {message}"))

    @contextlib.contextmanager
    def _current(self, span: Any) -> Iterator[Any]:
        """``span`` current for the block; an exception marks it failed; ends it."""
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            self._fail(span, exc)
            raise
        finally:
            self._context.detach(token)
            span.end()

    async def _iterate(
        self,
        span: Any,
        inner: Any,
        call: tuple[str, dict[str, Any]] | None = None,
    ) -> AsyncIterator[Any]:
        """``inner``'s items with ``span`` current while each is made (never across a yield)."""
        ctx = self._trace.set_span_in_context(span)
        try:
            while True:
                token = self._context.attach(ctx)
                mark = _CALL.set(call) if call is not None else None
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    if mark is not None:
                        _CALL.reset(mark)
                    self._context.detach(token)
                yield item
        except BaseException as exc:
            self._fail(span, exc)
            raise
        finally:
            try:
                await inner.aclose()
            finally:
                span.end()

    # -- the gateway ---------------------------------------------------------------------

    def start_server(self, scope: dict[str, Any], route: str | None, request_id: str) -> Any:
        """The SERVER span of one HTTP request, made current; ``end_server`` closes it.

        A client's W3C ``traceparent`` makes it a child of the client's trace.
        """
        from opentelemetry.propagate import extract

        carrier = {}
        for key, value in scope["headers"]:
            if key in (b"traceparent", b"tracestate"):
                carrier[key.decode()] = value.decode("latin-1")
        method = scope["method"]
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "coop.request_id": request_id,
        }
        if route is not None:
            attributes["http.route"] = route
        span = self.tracer.start_span(
            f"{method} {route}" if route else method,
            context=extract(carrier) if carrier else None,
            kind=self._kinds.SERVER,
            attributes=attributes,
        )
        return span, self._context.attach(self._trace.set_span_in_context(span))

    def end_server(
        self, handle: Any, status: int, model: str | None, deployment: str | None
    ) -> None:
        span, token = handle
        self._context.detach(token)
        out: dict[str, Any] = {"http.response.status_code": status}
        if model:
            out["coop.model"] = model
        if deployment:
            out["coop.deployment"] = deployment
        if status >= 500 or status == 0:
            out["error.type"] = str(status) if status else "no_response"
            span.set_status(self._status(self._error))
        span.set_attributes(out)
        span.end()

    # -- the dispatcher: route and cooperation spans -------------------------------------

    def instrument_dispatcher(self, dispatcher: Any) -> None:
        """Wrap ``dispatcher.run`` and ``dispatcher.stream`` (this instance only)."""
        run, stream = dispatcher.run, dispatcher.stream

        @functools.wraps(run)
        async def traced_run(plan: Any, **kwargs: Any) -> Any:
            with contextlib.ExitStack() as spans:
                route = coop_span = None
                if plan.decision is not None:
                    route = spans.enter_context(self._current(self._route_span(plan)))
                if plan.kind == "cooperation":
                    coop_span = spans.enter_context(self._current(self._cooperation_span(plan)))
                result = await run(plan, **kwargs)
                if coop_span is not None and result.cooperation is not None:
                    self._cooperation_result(coop_span, result)
                if route is not None:
                    route.set_attribute("coop.route.answered_by", result.model)
                return result

        @functools.wraps(stream)
        def traced_stream(plan: Any, **kwargs: Any) -> Any:
            inner = stream(plan, **kwargs)
            if plan.kind == "model" and plan.decision is not None:
                return self._iterate(self._route_span(plan), inner)
            return inner  # a cooperation streams from run(): traced there

        dispatcher.run, dispatcher.stream = traced_run, traced_stream

    def _route_span(self, plan: Any) -> Any:
        decision = plan.decision
        return self.tracer.start_span(
            "route",
            attributes={
                "coop.route.router": decision.router,
                "coop.route.task": decision.task_type,
                "coop.route.complexity": decision.complexity,
                "coop.route.tier": decision.tier,
                "coop.route.target": decision.target,
                "coop.route.target_kind": decision.target_kind,
                "coop.route.kind": plan.kind,
                "coop.route.confidence": float(decision.confidence),
                "coop.route.reason": redact("; ".join(decision.reasons))[:1000],
                "coop.route.elapsed_ms": float(decision.elapsed_ms),
            },
        )

    def _cooperation_span(self, plan: Any) -> Any:
        cooperation = plan.cooperation
        members = list(cooperation.models) or [
            str(s.get("model")) for s in cooperation.stages if isinstance(s, dict)
        ]
        attributes: dict[str, Any] = {
            "coop.cooperation.name": plan.target,
            "coop.cooperation.mode": cooperation.mode,
            "coop.cooperation.members": members,
        }
        if cooperation.strategy:
            attributes["coop.cooperation.strategy"] = cooperation.strategy
        return self.tracer.start_span(f"cooperate {plan.target}", attributes=attributes)

    @staticmethod
    def _cooperation_result(span: Any, result: Any) -> None:
        outcome = result.cooperation
        out = {
            "gen_ai.usage.input_tokens": outcome.prompt_tokens,
            "gen_ai.usage.output_tokens": outcome.completion_tokens,
            "coop.cost_usd": float(outcome.cost),
            "coop.cooperation.answered": sum(o.success for o in outcome.outputs),
            "coop.cooperation.failed": len(outcome.failed),
            "coop.cooperation.extra_calls": len(outcome.extra_calls),
        }
        if outcome.confidence is not None:
            out["coop.cooperation.confidence"] = float(outcome.confidence)
        span.set_attributes(out)

    # -- the engine: one span per model call, one CLIENT span per upstream attempt -------

    def instrument_engine(self, engine: Any) -> None:
        """Wrap ``engine.chat``, ``embed``, ``stream_chat`` and ``_run`` (this instance only)."""
        chat, embed, stream_chat, run = engine.chat, engine.embed, engine.stream_chat, engine._run

        @functools.wraps(chat)
        async def traced_chat(request: Any, *, model: str | None = None, **kwargs: Any) -> Any:
            params = _request_attributes(request)
            span = self._call_span("chat", model or request.model, params)
            mark = _CALL.set(("chat", params))
            try:
                with self._current(span):
                    result = await chat(request, model=model, **kwargs)
                    out = {
                        "coop.model": result.model,
                        "coop.deployment": result.deployment,
                        "gen_ai.provider.name": result.provider,
                        "gen_ai.system": result.provider,
                        "coop.attempts": result.attempts,
                        "coop.cost_usd": float(result.cost),
                    }
                    _response(out, result.response)
                    _usage(out, result.usage)
                    span.set_attributes(out)
                    return result
            finally:
                _CALL.reset(mark)

        @functools.wraps(embed)
        async def traced_embed(request: Any, **kwargs: Any) -> Any:
            span = self._call_span("embeddings", request.model, {})
            mark = _CALL.set(("embeddings", {}))
            try:
                with self._current(span):
                    result = await embed(request, **kwargs)
                    span.set_attributes(
                        {
                            "coop.model": result.model,
                            "coop.deployment": result.deployment,
                            "coop.attempts": result.attempts,
                            "gen_ai.usage.input_tokens": result.prompt_tokens,
                            "coop.cost_usd": float(result.cost),
                        }
                    )
                    return result
            finally:
                _CALL.reset(mark)

        @functools.wraps(stream_chat)
        def traced_stream_chat(
            request: Any,
            *,
            model: str | None = None,
            on_start: Callable[[str, str], None] | None = None,
            on_finish: Callable[[Any, float], None] | None = None,
            **kwargs: Any,
        ) -> AsyncIterator[Any]:
            params = _request_attributes(request)
            span = self._call_span("chat", model or request.model, {**params, "coop.stream": True})

            def started(deployment: str, used: str) -> None:
                span.set_attributes({"coop.model": used, "coop.deployment": deployment})
                if on_start is not None:
                    on_start(deployment, used)

            def finished(usage: Any, cost: float) -> None:
                out: dict[str, Any] = {"coop.cost_usd": float(cost)}
                _usage(out, usage)
                span.set_attributes(out)
                if on_finish is not None:
                    on_finish(usage, cost)

            inner = stream_chat(
                request, model=model, on_start=started, on_finish=finished, **kwargs
            )
            return self._iterate(span, inner, ("chat", params))

        @functools.wraps(run)
        async def traced_run(name: str, runner: Any, until: float | None = None) -> Any:
            return await run(name, self._attempts(runner), until)

        engine.chat, engine.embed = traced_chat, traced_embed
        engine.stream_chat, engine._run = traced_stream_chat, traced_run

    def _call_span(self, operation: str, model: str, params: dict[str, Any]) -> Any:
        attributes = {"gen_ai.operation.name": operation, "gen_ai.request.model": model, **params}
        return self.tracer.start_span(f"{operation} {model}", attributes=attributes)

    def _deployment(self, deployment: Any) -> dict[str, Any]:
        """The attributes an attempt on ``deployment`` always has (made once per deployment)."""
        known = self._deployments.get(deployment.id)
        if known is None:
            provider = type(deployment.provider).name
            known = {
                "gen_ai.provider.name": provider,
                "gen_ai.system": provider,
                "gen_ai.request.model": deployment.path,
                "coop.model": deployment.model,
                "coop.deployment": deployment.id,
                "coop.endpoint": deployment.endpoint,
            }
            server = _server_of(deployment.provider)
            if server is not None:
                known["server.address"], known["server.port"] = server
            self._deployments[deployment.id] = known
        return known

    def _attempts(self, runner: Any) -> Any:
        """``runner`` with a CLIENT span around each upstream attempt."""
        operation, params = _CALL.get() or ("chat", {})
        count = 0

        async def attempt(deployment: Any, call: Any, seconds: float) -> Any:
            nonlocal count
            count += 1
            attributes = {
                "gen_ai.operation.name": operation,
                **params,
                **self._deployment(deployment),
                "coop.attempt": count,
            }
            span = self.tracer.start_span(
                f"{operation} {deployment.path}", kind=self._kinds.CLIENT, attributes=attributes
            )
            with self._current(span):
                result = await runner(deployment, call, seconds)
                out: dict[str, Any] = {}
                if isinstance(result, tuple):  # a stream: (iterator, first chunk)
                    _response(out, result[1])
                else:
                    _response(out, result)
                    usage = getattr(result, "usage", None)
                    if usage is not None and not isinstance(usage, int | float | str):
                        _usage(out, usage)
                    tokens = getattr(result, "prompt_tokens", None)
                    if isinstance(tokens, int):  # embeddings
                        out["gen_ai.usage.input_tokens"] = tokens
                span.set_attributes(out)
                return result

        return attempt


def _request_attributes(request: Any) -> dict[str, Any]:
    """The client's generation parameters as ``gen_ai.request.*`` attributes."""
    attributes: dict[str, Any] = {}
    for field, key in _REQUEST_PARAMS:
        value = getattr(request, field, None)
        if _given(value) and isinstance(value, int | float) and not isinstance(value, bool):
            attributes[key] = value
    stop = getattr(request, "stop", None)
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = stop
    return attributes


def _usage(out: dict[str, Any], usage: Any) -> None:
    if usage is None or usage is UNSET:
        return
    if _given(usage.prompt_tokens):
        out["gen_ai.usage.input_tokens"] = int(usage.prompt_tokens)
    if _given(usage.completion_tokens):
        out["gen_ai.usage.output_tokens"] = int(usage.completion_tokens)
    if getattr(usage, "estimated", False):
        out["coop.usage.estimated"] = True


def _response(out: dict[str, Any], response: Any) -> None:
    model = getattr(response, "model", None)
    if isinstance(model, str) and model:
        out["gen_ai.response.model"] = model
    ident = getattr(response, "id", None)
    if isinstance(ident, str) and ident:
        out["gen_ai.response.id"] = ident
    choices = getattr(response, "choices", None)
    if isinstance(choices, list):
        reasons = [c.finish_reason for c in choices if isinstance(c.finish_reason, str)]
        if reasons:
            out["gen_ai.response.finish_reasons"] = reasons
