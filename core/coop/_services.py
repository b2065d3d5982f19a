"""Application services: a task-specific use of the models, with checkable output.

A service plugin (document analysis, data insight, decision support, ...) declares
its parameters and implements ``process``; the :class:`ServiceManager` validates the
parameters, hands the service a :class:`ServiceContext` whose model calls go through
the one request path (routing, cooperation, failover, cost), and totals what the
calls used. A service computes what code can compute and asks the models only for
what needs a model; a failure is an error, never text inside a success.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ._errors import (
    CoopError,
    ServiceError,
    ValidationError,
    did_you_mean,
)
from ._plan import Limits, Plan
from ._usage import estimate_messages_tokens
from ._wire import parse_chat_request

if TYPE_CHECKING:
    from ._config import CooperationConfig
    from ._dispatch import Dispatcher, DispatchResult
    from ._engine import OpenAIEngine

__all__ = [
    "Completion",
    "Service",
    "ServiceContext",
    "ServiceManager",
    "ServiceParameter",
    "ServiceResponse",
    "ServiceResult",
]

#: Completion tokens reserved for the answer when ``max_tokens`` is not given.
DEFAULT_ANSWER_TOKENS = 1024
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@attrs.frozen
class ServiceParameter:
    """One parameter a service takes: its type, its valid values, its default."""

    name: str
    description: str = ""
    #: ``str``, ``int``, ``float`` or ``bool``; CLI strings are converted to it.
    type: type = str
    #: The valid values, when there is a fixed set.
    choices: tuple[str, ...] | None = None
    default: Any = None
    required: bool = False

    def convert(self, value: Any) -> Any:
        """``value`` as this parameter's type, or a :class:`ValidationError` naming it."""
        if value is None:
            return None
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, bool):
                    converted: Any = value
                elif str(value).strip().lower() in _TRUE | _FALSE:
                    converted = str(value).strip().lower() in _TRUE
                else:
                    raise ValueError
            elif kind in (int, float):
                if isinstance(value, bool):
                    raise ValueError
                converted = kind(value)
            elif isinstance(value, list | dict):
                # JSON given as JSON (over HTTP, from Python) reads as the text the CLI gives.
                converted = json.dumps(value, ensure_ascii=False)
            else:
                converted = value if isinstance(value, str) else kind(value)
        except (TypeError, ValueError):
            raise ValidationError(
                f"expected {kind.__name__}, got {value!r}", field=self.name, value=value
            ) from None
        if self.choices is not None and converted not in self.choices:
            hint = did_you_mean(str(converted), self.choices)
            raise ValidationError(
                f"{converted!r} is not one of {', '.join(self.choices)}{hint}",
                field=self.name,
                value=converted,
            )
        return converted


@attrs.define
class ServiceResult:
    """What a service's ``process`` returns: the answer for people and for programs."""

    #: Markdown for people.
    result: str
    #: Structured, checkable output (figures computed by code, sections, scores).
    data: dict[str, Any] = attrs.field(factory=dict)
    #: Files the service made (``{"chart.png": b"..."}``), returned base64 over HTTP.
    files: dict[str, bytes] = attrs.field(factory=dict, repr=False)


@attrs.define
class Completion:
    """One model call a service made, and what it cost."""

    text: str
    #: The logical model or cooperation that answered.
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    result: DispatchResult | None = attrs.field(default=None, repr=False, eq=False)


@attrs.define
class ServiceResponse:
    """``ServiceManager.process_request``'s answer: the result or the error, and the bill."""

    service: str
    success: bool
    result: str = ""
    data: dict[str, Any] = attrs.field(factory=dict)
    error: str | None = None
    error_type: str | None = None
    #: Logical models (or cooperations) that answered, in call order, without repeats.
    models: list[str] = attrs.field(factory=list)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    files: dict[str, bytes] = attrs.field(factory=dict, repr=False)

    @property
    def text(self) -> str:
        return self.result

    def to_dict(self) -> dict[str, Any]:
        import base64

        return {
            "service": self.service,
            "success": self.success,
            "result": self.result,
            "data": self.data,
            "error": self.error,
            "error_type": self.error_type,
            "models": self.models,
            "calls": self.calls,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "cost": round(self.cost, 8),
            "latency": round(self.latency, 4),
            "files": {name: base64.b64encode(body).decode() for name, body in self.files.items()},
        }


class ServiceContext:
    """What a service may use: model calls on the one request path, and model facts.

    Every call is recorded, so the manager can report models, usage and cost.
    """

    def __init__(self, dispatcher: Dispatcher, *, limits: Limits | None = None) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config
        self.limits = limits or Limits()
        self.calls: list[Completion] = []

    def target(self, model: str, messages: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The logical model or cooperation a call on ``model`` would run (``auto`` routes)."""
        request = parse_chat_request(
            {"model": model, "messages": list(messages or [{"role": "user", "content": "?"}])}
        )
        plan = self.dispatcher.plan(request, limits=self.limits)
        return plan.target

    def context_window(self, target: str) -> int | None:
        """Tokens ``target`` accepts: a model's ``context_window``; a cooperation's smallest
        member's; ``None`` when not configured."""
        models = self.config.models
        if target in models:
            return models[target].context_window
        coop = self.config.cooperations.get(target)
        if coop is None:
            return None
        names = coop.models or [s["model"] for s in coop.stages]
        windows = [models[n].context_window for n in names if n in models]
        known = [w for w in windows if w is not None]
        return min(known) if known else None

    async def complete(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str = "auto",
        max_tokens: int | None = None,
        **parameters: Any,
    ) -> Completion:
        """Ask ``model`` (a logical model, a cooperation, or ``auto``) and record the call.

        Raises :class:`ServiceError` before any call when the prompt and the answer's
        ``max_tokens`` would not fit the target's context window.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        body: dict[str, Any] = {"model": model, "messages": list(messages), **parameters}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        request = parse_chat_request(body)
        plan = self.dispatcher.plan(request, limits=self.limits)
        window = self.context_window(plan.target)
        if window is not None:
            needed = estimate_messages_tokens(list(messages)) + (
                max_tokens or min(DEFAULT_ANSWER_TOKENS, window // 4)
            )
            if needed > window:
                raise ServiceError(
                    f"a request of ~{needed} tokens does not fit {plan.target}'s context "
                    f"window of {window}; split the input first (ServiceContext.fits)"
                )
        return await self._run(plan)

    async def _run(self, plan: Plan) -> Completion:
        """Run ``plan`` and record what it cost."""
        started = time.perf_counter()
        result = await self.dispatcher.run(plan)
        completion = Completion(
            text=result.text,
            model=result.model,
            prompt_tokens=result.usage.prompt_tokens or 0,
            completion_tokens=result.usage.completion_tokens or 0,
            cost=result.cost,
            latency=time.perf_counter() - started,
            result=result,
        )
        self.calls.append(completion)
        return completion

    def fits(self, target: str, prompt_tokens: int, answer_tokens: int | None = None) -> bool:
        """Whether a prompt of ``prompt_tokens`` and its answer fit ``target``'s window."""
        window = self.context_window(target)
        if window is None:
            return True
        return prompt_tokens + (answer_tokens or min(DEFAULT_ANSWER_TOKENS, window // 4)) <= window

    async def cooperate(
        self, messages: str | Sequence[Mapping[str, Any]], cooperation: CooperationConfig
    ) -> Completion:
        """Run an ad-hoc cooperation (several models on one question) and record it."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        request = parse_chat_request(
            {"model": cooperation.name or "cooperation", "messages": list(messages)}
        )
        plan = self.dispatcher.plan_cooperation(request, cooperation, limits=self.limits)
        return await self._run(plan)


class Service(abc.ABC):
    """Base class of service plugins; set a unique ``name`` (the ``service_type``).

    Declare ``parameters`` (their types and valid values are checked before
    ``process`` runs, and ``coop service --list`` shows them). ``content`` is text,
    or bytes for a binary document (PDF, DOCX).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[ServiceParameter, ...]] = ()

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})

    @abc.abstractmethod
    async def process(
        self, content: str | bytes, parameters: Mapping[str, Any], context: ServiceContext
    ) -> ServiceResult:
        """Process ``content`` with validated ``parameters``; raise a CoopError on failure."""

    @classmethod
    def validate(cls, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """``parameters`` converted and completed with defaults; unknown names refused."""
        given = dict(parameters or {})
        known = {p.name: p for p in cls.parameters}
        for name in given:
            if name not in known:
                valid = ", ".join(sorted(known)) or "none"
                raise ValidationError(
                    f"unknown parameter for service {cls.name!r}{did_you_mean(name, known)}; "
                    f"valid: {valid}",
                    field=name,
                    value=given[name],
                )
        values: dict[str, Any] = {}
        for name, spec in known.items():
            value = spec.convert(given.get(name))
            if value is None:
                if spec.required:
                    raise ValidationError(f"service {cls.name!r} needs this parameter", field=name)
                value = spec.default
            values[name] = value
        return values


class ServiceManager:
    """``await ServiceManager(engine).process_request(service_type=..., content=..., parameters=...)``.

    Takes an :class:`OpenAIEngine` (the original API), a :class:`Dispatcher`, or a
    config. ``process_request`` never raises for a failed service: it answers
    ``success=False`` with the ``error``; :meth:`run` raises instead.
    """

    def __init__(self, engine: OpenAIEngine | Dispatcher | Any = None) -> None:
        from ._dispatch import Dispatcher
        from ._engine import OpenAIEngine

        if isinstance(engine, Dispatcher):
            self.dispatcher = engine
        elif isinstance(engine, OpenAIEngine):
            self.dispatcher = Dispatcher(engine.config, plugins=engine.plugins, engine=engine)
        else:
            self.dispatcher = Dispatcher(engine)
        self.plugins = self.dispatcher.plugins

    def services(self) -> dict[str, type[Service]]:
        """Every installed service by name."""
        return dict(sorted(self.plugins.services().items()))

    def service(self, service_type: str) -> type[Service]:
        return self.plugins.get("service", service_type)  # type: ignore[no-any-return]

    async def run(
        self,
        service_type: str,
        content: str | bytes,
        parameters: Mapping[str, Any] | None = None,
        *,
        limits: Limits | None = None,
    ) -> ServiceResponse:
        """Run a service; raises a :class:`CoopError` subclass when it fails."""
        cls = self.service(service_type)
        values = cls.validate(parameters)
        if not content or (isinstance(content, str) and not content.strip()):
            raise ValidationError(
                "content is empty: give the text or file to process", field="content"
            )
        await self.dispatcher.engine.initialize()
        context = ServiceContext(self.dispatcher, limits=limits)
        started = time.perf_counter()
        result = await cls().process(content, values, context)
        if not isinstance(result, ServiceResult):
            raise ServiceError(
                f"service {service_type!r} returned {type(result).__name__}, not a ServiceResult"
            )
        return _response(service_type, context, started, result=result)

    async def process_request(
        self,
        service_type: str,
        content: str | bytes,
        parameters: Mapping[str, Any] | None = None,
    ) -> ServiceResponse:
        """The original system's call: the result, or ``success=False`` and the error."""
        started = time.perf_counter()
        try:
            return await self.run(service_type, content, parameters)
        except CoopError as exc:
            response = ServiceResponse(
                service=service_type,
                success=False,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            response.latency = time.perf_counter() - started
            return response

    async def __aenter__(self) -> ServiceManager:
        await self.dispatcher.engine.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispatcher.engine.shutdown()


def _response(
    service: str, context: ServiceContext, started: float, *, result: ServiceResult
) -> ServiceResponse:
    models: list[str] = []
    for call in context.calls:
        if call.model not in models:
            models.append(call.model)
    return ServiceResponse(
        service=service,
        success=True,
        result=result.result,
        data=result.data,
        models=models,
        calls=len(context.calls),
        prompt_tokens=sum(c.prompt_tokens for c in context.calls),
        completion_tokens=sum(c.completion_tokens for c in context.calls),
        cost=sum(c.cost for c in context.calls),
        latency=time.perf_counter() - started,
        files=result.files,
    )
