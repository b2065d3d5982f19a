"""What a provider plugin implements: one upstream protocol behind coop's wire types.

A provider is constructed once per configured endpoint and is stateless per call:
the engine picks the deployment and the API key, the provider only speaks the
protocol. That keeps balancing, retries and key rotation in one place (the engine).
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ._errors import UpstreamConnectionError, UpstreamProtocolError
from ._http import HTTPClient, HTTPResponse, Timeouts
from ._sse import SSEEvent, aiter_sse
from ._upstream import error_from_payload, error_from_response

if TYPE_CHECKING:
    from ._embeddings import EmbeddingRequest, EmbeddingResponse
    from ._wire import ChatChunk, ChatRequest, ChatResponse, Usage

__all__ = ["ModelInfo", "NativeReply", "Preset", "Provider", "ProviderCall"]


@attrs.frozen
class ModelInfo:
    """One model of a preset's catalogue."""

    id: str
    context_window: int | None = None
    #: USD per million tokens.
    price_input: float | None = None
    price_output: float | None = None
    #: The tier a model of this size naturally serves: light, reasoning or complex.
    tier: str | None = None
    #: A short logical name suggested for coop.toml (``qwen3_8b``).
    alias: str | None = None


@attrs.frozen
class Preset:
    """Defaults for an endpoint of a provider: ``coop config preset --name NAME``."""

    name: str
    base_url: str
    api_key_env: str | None = None
    models: tuple[ModelInfo, ...] = ()
    description: str = ""

    def model(self, model_id: str) -> ModelInfo | None:
        for info in self.models:
            if model_id in (info.id, info.alias):
                return info
        return None


@attrs.frozen
class ProviderCall:
    """Everything a provider needs for one upstream call, chosen by the engine."""

    #: The upstream model id (``Qwen/Qwen3-8B``).
    model: str
    api_key: str | None
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.define
class NativeReply:
    """An upstream's answer in its own API, relayed to the client unchanged.

    What :meth:`Provider.native_messages` returns. ``body`` is the whole body of a
    non-streaming answer; for a stream, ``body`` holds the bytes read so far (at
    least the first event) and ``rest`` yields the remaining bytes as they come.
    ``usage`` is the answer's token usage once known (a stream sets it as its events
    pass), ``error`` the upstream's own error type when a stream ended in an error
    event, ``headers`` the upstream response headers worth relaying (content type).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    rest: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    error: str | None = None

    async def aclose(self) -> None:
        """Release the upstream connection of a stream (nothing to do for a whole body)."""
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


class Provider(abc.ABC):
    """Base class of provider plugins.

    Subclasses set ``name`` (unique among providers) and may set ``preset``.
    ``endpoint`` is the :class:`coop.EndpointConfig` the provider serves and
    ``http`` the engine's shared :class:`coop.HTTPClient`: providers never build
    their own, so pooling and the transport choice stay in one place.
    Errors must be raised as :class:`coop.UpstreamError` subclasses.
    """

    name: ClassVar[str]
    #: Defaults (base URL, catalogue, prices) offered by ``coop config preset``.
    preset: ClassVar[Preset | None] = None
    #: Whether the endpoint needs an API key (local servers often don't).
    requires_api_key: ClassVar[bool] = True

    def __init__(self, endpoint: Any, http: HTTPClient | None = None) -> None:
        self.endpoint = endpoint
        self.http = http

    @abc.abstractmethod
    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        """Send one non-streaming chat request and return the whole response."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        """Send one streaming chat request; yield OpenAI-shaped chunks as they arrive."""

    async def embed(self, request: EmbeddingRequest, call: ProviderCall) -> EmbeddingResponse:
        """Embed ``request``'s inputs on ``call.model``: one vector per input, in order.

        Providers that serve embedding models override this; the default refuses.
        """
        from ._errors import BadRequestError

        raise BadRequestError(
            f"provider {self.name} does not serve embeddings",
            status=400,
            provider=self.name,
            deployment=self.deployment_label(call),
        )

    # -- native APIs (optional capabilities) -----------------------------------------------

    async def native_messages(
        self,
        body: Mapping[str, Any],
        call: ProviderCall,
        *,
        stream: bool,
        headers: Mapping[str, str],
    ) -> NativeReply:
        """Send an Anthropic Messages API body as is and return the upstream's bytes.

        An optional capability (see :meth:`serves_native_messages`): a provider whose
        upstream speaks the Messages API natively overrides it, and the gateway then
        relays ``/v1/messages`` requests byte for byte instead of translating them.
        ``body["model"]`` is already the upstream model id (``call.model``);
        ``headers`` holds the client's ``anthropic-version``/``anthropic-beta``
        headers, never its credentials. Errors before the first byte must be raised as
        :class:`coop.UpstreamError` subclasses, so the engine fails over; for a stream
        the reply must hold at least the first event.
        """
        raise NotImplementedError(f"provider {self.name} has no native Messages API")

    @classmethod
    def serves_native_messages(cls) -> bool:
        """Whether this provider implements :meth:`native_messages`."""
        return cls.native_messages is not Provider.native_messages

    # -- plumbing shared by HTTP providers -------------------------------------------

    @property
    def base_url(self) -> str:
        """The endpoint's ``base_url``, else the preset's (no trailing slash)."""
        url = getattr(self.endpoint, "base_url", None) or (
            self.preset.base_url if self.preset else ""
        )
        if not url:
            from ._errors import ConfigError

            raise ConfigError(
                "no base_url (set it for this endpoint)",
                key=f"endpoints.{getattr(self.endpoint, 'name', '?')}.base_url",
            )
        return str(url).rstrip("/")

    def headers(self, call: ProviderCall) -> dict[str, str]:
        """Request headers: JSON, the endpoint's ``headers`` and the call's extras.

        Subclasses add their credentials (``authorization``, ``x-api-key``...).
        """
        headers = {"content-type": "application/json", "accept": "application/json"}
        headers.update(getattr(self.endpoint, "headers", None) or {})
        headers.update(call.extra_headers)
        return headers

    def deployment_label(self, call: ProviderCall) -> str:
        """``endpoint/upstream-model``, as errors and /status name a deployment."""
        return f"{getattr(self.endpoint, 'name', self.name)}/{call.model}"

    def protocol_error(
        self, message: str, call: ProviderCall, status: int | None, body: bytes | str
    ) -> UpstreamProtocolError:
        """The error for an answer that is not the protocol (garbage, a cut stream)."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return UpstreamProtocolError(
            message,
            status=status,
            body=text,
            provider=self.name,
            deployment=self.deployment_label(call),
        )

    def is_error_payload(self, data: Any) -> bool:
        """Whether a 2xx JSON body is an error (OpenAI's and Anthropic's shapes)."""
        return isinstance(data, Mapping) and (
            ("error" in data and "choices" not in data) or data.get("type") == "error"
        )

    async def send_json(
        self,
        method: str,
        path: str,
        call: ProviderCall,
        body: Any = None,
        *,
        accept: str = "application/json",
    ) -> HTTPResponse:
        """Send ``body`` as JSON to ``base_url + path``; an HTTP error becomes a typed error."""
        assert self.http is not None, "the engine hands every provider its HTTP client"
        headers = self.headers(call)
        headers["accept"] = accept
        content = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = await self.http.request(
            method, self.base_url + path, headers=headers, content=content, timeouts=call.timeouts
        )
        if response.status >= 400:
            raw = await response.read()
            raise error_from_response(
                response.status,
                raw,
                response.headers,
                provider=self.name,
                deployment=self.deployment_label(call),
            )
        return response

    async def read_json(self, response: HTTPResponse, call: ProviderCall) -> Any:
        """The body as JSON: wrong content type, garbage and error payloads raise typed errors."""
        return self.decode_json(await response.read(), response, call)

    def decode_json(self, raw: bytes, response: HTTPResponse, call: ProviderCall) -> Any:
        """``raw``, the body of ``response``, as JSON (what :meth:`read_json` does once
        the body is read, for a provider that also wants the bytes)."""
        ctype = response.headers.get("content-type", "")
        if "json" not in ctype:
            raise self.protocol_error(
                f"expected JSON, got content type {ctype or 'none'!r}",
                call,
                response.status,
                raw[:500],
            )
        try:
            data = json.loads(raw)
        except ValueError:
            raise self.protocol_error(
                "upstream sent malformed JSON", call, response.status, raw[:500]
            ) from None
        if self.is_error_payload(data):
            raise error_from_payload(
                response.status,
                data,
                body=raw[:500].decode("utf-8", "replace"),
                provider=self.name,
                deployment=self.deployment_label(call),
            )
        return data

    async def sse_events(
        self, response: HTTPResponse, call: ProviderCall, *, end: str = "[DONE]"
    ) -> AsyncIterator[SSEEvent]:
        """The body's server-sent events. A body that is not an event stream, and a
        connection cut mid-stream, are :class:`UpstreamProtocolError` (naming ``end``)."""
        ctype = response.headers.get("content-type", "")
        if "event-stream" not in ctype:
            raw = await response.read()
            raise self.protocol_error(
                f"expected an event stream, got content type {ctype or 'none'!r}",
                call,
                response.status,
                raw[:500],
            )
        try:
            async for event in aiter_sse(response.aiter_bytes()):
                yield event
        except UpstreamConnectionError as exc:
            raise self.protocol_error(
                f"stream ended before {end} (connection cut: {exc})", call, response.status, ""
            ) from exc

    def event_json(self, event: SSEEvent, call: ProviderCall, status: int) -> Any:
        """An event's ``data`` as JSON; garbage is an :class:`UpstreamProtocolError`."""
        try:
            return json.loads(event.data)
        except ValueError:
            raise self.protocol_error(
                "malformed JSON in stream", call, status, event.data[:500]
            ) from None

    async def list_models(self, call: ProviderCall) -> list[str]:
        """Upstream model ids; also the cheap active health check."""
        return [m.id for m in self.preset.models] if self.preset else []

    async def aclose(self) -> None:
        """Release what the provider holds (the shared client is not its own)."""
        return None
