"""The OpenAI chat protocol, for every upstream that speaks it.

OpenAI, AIGC Best, DeepSeek, vLLM, Ollama, llama.cpp and LM Studio all accept
the same ``/chat/completions`` request, so one public base class carries the
protocol and the provider plugins only add presets and quirks (a third-party
plugin can subclass it the same way).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ._errors import UpstreamConnectionError, UpstreamProtocolError, ValidationError
from ._http import HTTPResponse
from ._providers import Provider, ProviderCall
from ._sse import aiter_sse
from ._upstream import error_from_payload, error_from_response
from ._wire import ChatChunk, ChatRequest, ChatResponse, from_wire, to_wire

__all__ = ["OpenAICompatibleProvider"]

_JSON = {"content-type": "application/json", "accept": "application/json"}


class OpenAICompatibleProvider(Provider):
    """Speaks ``POST {base_url}/chat/completions`` (and ``GET /models``).

    Subclasses set ``name`` and ``preset`` and may override :meth:`prepare_body`
    for quirks. Streams always ask the upstream for usage (``include_usage``)
    so cost is known; the engine hides that chunk from a client that did not ask.
    """

    name = "openai-compatible"
    #: Whether the upstream understands ``stream_options.include_usage``.
    stream_usage = True

    @property
    def base_url(self) -> str:
        url = getattr(self.endpoint, "base_url", None) or (
            self.preset.base_url if self.preset else ""
        )
        if not url:
            from ._errors import ConfigError

            raise ConfigError(
                "no base_url (set it for this endpoint)",
                key=f"endpoints.{getattr(self.endpoint, 'name', '?')}.base_url",
            )
        return url.rstrip("/")

    def headers(self, call: ProviderCall) -> dict[str, str]:
        headers = dict(_JSON)
        if call.api_key:
            headers["authorization"] = f"Bearer {call.api_key}"
        headers.update(getattr(self.endpoint, "headers", None) or {})
        headers.update(call.extra_headers)
        return headers

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        """The JSON body sent upstream: the client's request with the upstream model id."""
        body = to_wire(request)
        body["model"] = call.model
        if stream:
            body["stream"] = True
            if self.stream_usage:
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                body["stream_options"] = options
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    def _deployment(self, call: ProviderCall) -> str:
        return f"{getattr(self.endpoint, 'name', self.name)}/{call.model}"

    async def _post(
        self, path: str, body: dict[str, Any], call: ProviderCall, *, stream: bool
    ) -> HTTPResponse:
        assert self.http is not None, "the engine hands every provider its HTTP client"
        headers = self.headers(call)
        if stream:
            headers["accept"] = "text/event-stream"
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = await self.http.request(
            "POST", self.base_url + path, headers=headers, content=content, timeouts=call.timeouts
        )
        if response.status >= 400:
            raw = await response.read()
            raise error_from_response(
                response.status,
                raw,
                response.headers,
                provider=self.name,
                deployment=self._deployment(call),
            )
        return response

    def _protocol_error(
        self, message: str, call: ProviderCall, status: int, body: bytes | str
    ) -> UpstreamProtocolError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return UpstreamProtocolError(
            message, status=status, body=text, provider=self.name, deployment=self._deployment(call)
        )

    def parse_response(self, data: Any) -> ChatResponse:
        return from_wire(ChatResponse, data)

    def parse_chunk(self, data: Any) -> ChatChunk:
        return from_wire(ChatChunk, data)

    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        response = await self._post(
            "/chat/completions", self.prepare_body(request, call, stream=False), call, stream=False
        )
        raw = await response.read()
        ctype = response.headers.get("content-type", "")
        if "json" not in ctype:
            raise self._protocol_error(
                f"expected JSON, got content type {ctype or 'none'!r}",
                call,
                response.status,
                raw[:500],
            )
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._protocol_error(
                "upstream sent malformed JSON", call, response.status, raw[:500]
            ) from None
        if isinstance(data, Mapping) and "error" in data and "choices" not in data:
            raise error_from_payload(
                response.status,
                data,
                body=raw[:500].decode("utf-8", "replace"),
                provider=self.name,
                deployment=self._deployment(call),
            )
        try:
            return self.parse_response(data)
        except ValidationError as exc:
            raise self._protocol_error(
                f"upstream response is not a chat completion: {exc}",
                call,
                response.status,
                raw[:500],
            ) from None

    async def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        response = await self._post(
            "/chat/completions", self.prepare_body(request, call, stream=True), call, stream=True
        )
        try:
            ctype = response.headers.get("content-type", "")
            if "event-stream" not in ctype:
                raw = await response.read()
                raise self._protocol_error(
                    f"expected an event stream, got content type {ctype or 'none'!r}",
                    call,
                    response.status,
                    raw[:500],
                )
            finished = False
            async for event in self._events(response, call):
                data = event.data
                if not data:
                    continue
                if data.strip() == "[DONE]":
                    return
                try:
                    payload = json.loads(data)
                except ValueError:
                    raise self._protocol_error(
                        "malformed JSON in stream", call, response.status, data[:500]
                    ) from None
                if isinstance(payload, Mapping) and "error" in payload and "choices" not in payload:
                    raise error_from_payload(
                        None,
                        payload,
                        body=data[:500],
                        provider=self.name,
                        deployment=self._deployment(call),
                    )
                try:
                    chunk = self.parse_chunk(payload)
                except ValidationError as exc:
                    raise self._protocol_error(
                        f"stream chunk is not a chat completion chunk: {exc}",
                        call,
                        response.status,
                        data[:500],
                    ) from None
                if any(c.finish_reason for c in chunk.choices or ()):
                    finished = True
                yield chunk
            if not finished:
                raise self._protocol_error(
                    "stream ended before [DONE] (connection cut)", call, response.status, ""
                )
        finally:
            await response.aclose()

    async def _events(self, response: HTTPResponse, call: ProviderCall) -> AsyncIterator[Any]:
        """SSE events; a connection cut mid-stream is reported as the cut stream it is."""
        try:
            async for event in aiter_sse(response.aiter_bytes()):
                yield event
        except UpstreamConnectionError as exc:
            raise self._protocol_error(
                f"stream ended before [DONE] (connection cut: {exc})", call, response.status, ""
            ) from exc

    async def list_models(self, call: ProviderCall) -> list[str]:
        assert self.http is not None
        response = await self.http.request(
            "GET", self.base_url + "/models", headers=self.headers(call), timeouts=call.timeouts
        )
        raw = await response.read()
        if response.status >= 400:
            raise error_from_response(
                response.status,
                raw,
                response.headers,
                provider=self.name,
                deployment=self._deployment(call),
            )
        try:
            data = json.loads(raw)
            return [str(item["id"]) for item in data["data"]]
        except (ValueError, KeyError, TypeError):
            raise self._protocol_error(
                "upstream /models is not a model list", call, response.status, raw[:500]
            ) from None
