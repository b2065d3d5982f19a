"""The OpenAI chat protocol, for every upstream that speaks it.

OpenAI, AIGC Best, DeepSeek, vLLM, Ollama, llama.cpp and LM Studio all accept
the same ``/chat/completions`` request, so one public base class carries the
protocol and the provider plugins only add presets and quirks (a third-party
plugin can subclass it the same way).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ._embeddings import EmbeddingRequest, EmbeddingResponse, decode_embedding
from ._errors import ValidationError
from ._providers import Provider, ProviderCall
from ._upstream import error_from_payload
from ._wire import ChatChunk, ChatRequest, ChatResponse, from_wire, to_wire

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(Provider):
    """Speaks ``POST {base_url}/chat/completions`` (and ``GET /models``).

    Subclasses set ``name`` and ``preset`` and may override :meth:`prepare_body`
    for quirks. Streams always ask the upstream for usage (``include_usage``)
    so cost is known; the engine hides that chunk from a client that did not ask.
    """

    name = "openai-compatible"
    #: Whether the upstream understands ``stream_options.include_usage``.
    stream_usage = True

    def headers(self, call: ProviderCall) -> dict[str, str]:
        headers = super().headers(call)
        if call.api_key:
            headers.setdefault("authorization", f"Bearer {call.api_key}")
        return headers

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        """The JSON body sent upstream: the client's request with the upstream model id.

        A copy of the request's ``source`` when it has one (the client's own JSON), so
        the request is not written out again; only top-level keys may be changed here.
        """
        source = request.source
        body = dict(source) if source is not None else to_wire(request)
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

    def parse_response(self, data: Any) -> ChatResponse:
        return from_wire(ChatResponse, data)

    def parse_chunk(self, data: Any) -> ChatChunk:
        return from_wire(ChatChunk, data)

    def verbatim(self, data: Any) -> bool:
        """Whether clients may be sent the upstream's body exactly as it came.

        Yes when :meth:`parse_response` is this class's own (an override may change
        the answer, so a subclass that overrides it says for itself) and the body is
        :meth:`is_complete`. Skipping the re-serialisation saves about 7% of the gateway's
        CPU per request (docs/performance.md).
        """
        return type(self).parse_response is OpenAICompatibleProvider.parse_response and (
            self.is_complete(data)
        )

    @staticmethod
    def is_complete(data: Any) -> bool:
        """Whether a chat completion body already has every field coop would fill in.

        coop's output always has ``id``, ``object``, ``created``, ``model``; each choice's
        ``index``, ``finish_reason`` (never null) and ``logprobs``; each message's
        ``content`` (a string or null) and ``refusal``; usage's three counts. Tool calls
        are normalised field by field, so a message with them is never complete here.
        """
        if not (
            "id" in data
            and data.get("object") == "chat.completion"
            and "created" in data
            and "model" in data
        ):
            return False
        for choice in data.get("choices") or ():
            message = choice.get("message")
            if (
                "index" not in choice
                or choice.get("finish_reason") is None
                or "logprobs" not in choice
                or not isinstance(message, dict)
                or not isinstance(message.get("content", 0), str | None)
                or "refusal" not in message
                or "tool_calls" in message
                or "function_call" in message
            ):
                return False
        usage = data.get("usage")
        return usage is None or (
            "prompt_tokens" in usage and "completion_tokens" in usage and "total_tokens" in usage
        )

    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        body = self.prepare_body(request, call, stream=False)
        response = await self.send_json("POST", "/chat/completions", call, body)
        raw = await response.read()
        data = self.decode_json(raw, response, call)
        try:
            parsed = self.parse_response(data)
        except ValidationError as exc:
            raise self.protocol_error(
                f"upstream response is not a chat completion: {exc}", call, response.status, ""
            ) from None
        # json.loads also reads UTF-16/32 and a UTF-8 BOM; clients get plain UTF-8 only
        if raw[:1] == b"{" and raw[1:2] != b"\x00" and self.verbatim(data):
            parsed.source = raw
        return parsed

    async def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        body = self.prepare_body(request, call, stream=True)
        response = await self.send_json(
            "POST", "/chat/completions", call, body, accept="text/event-stream"
        )
        try:
            finished = False
            async for event in self.sse_events(response, call):
                data = event.data
                if not data:
                    continue
                if data.strip() == "[DONE]":
                    return
                payload = self.event_json(event, call, response.status)
                if self.is_error_payload(payload):
                    raise error_from_payload(
                        None,
                        payload,
                        body=data[:500],
                        provider=self.name,
                        deployment=self.deployment_label(call),
                    )
                try:
                    chunk = self.parse_chunk(payload)
                except ValidationError as exc:
                    raise self.protocol_error(
                        f"stream chunk is not a chat completion chunk: {exc}",
                        call,
                        response.status,
                        data[:500],
                    ) from None
                if any(c.finish_reason for c in chunk.choices or ()):
                    finished = True
                yield chunk
            if not finished:
                raise self.protocol_error(
                    "stream ended before [DONE] (connection cut)", call, response.status, ""
                )
        finally:
            await response.aclose()

    async def embed(self, request: EmbeddingRequest, call: ProviderCall) -> EmbeddingResponse:
        """``POST {base_url}/embeddings``; vectors always asked for as floats upstream
        (the gateway encodes base64 for its own client)."""
        body: dict[str, Any] = {"model": call.model, "input": request.input}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        body["encoding_format"] = "float"
        response = await self.send_json("POST", "/embeddings", call, body)
        data = await self.read_json(response, call)
        try:
            items = sorted(data["data"], key=lambda item: int(item.get("index", 0)))
            vectors = [decode_embedding(item["embedding"]) for item in items]
            usage = data.get("usage") or {}
            tokens = usage.get("prompt_tokens")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self.protocol_error(
                "upstream response is not an embedding list",
                call,
                response.status,
                str(data)[:500],
            ) from None
        return EmbeddingResponse(
            vectors=vectors,
            model=str(data.get("model") or call.model),
            prompt_tokens=tokens if isinstance(tokens, int) else None,
        )

    async def list_models(self, call: ProviderCall) -> list[str]:
        response = await self.send_json("GET", "/models", call)
        data = await self.read_json(response, call)
        try:
            return [str(item["id"]) for item in data["data"]]
        except (KeyError, TypeError):
            raise self.protocol_error(
                "upstream /models is not a model list", call, response.status, str(data)[:500]
            ) from None
