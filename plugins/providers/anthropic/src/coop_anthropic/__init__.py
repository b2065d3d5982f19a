"""The ``anthropic`` provider: Anthropic's native Messages API behind OpenAI's chat format.

Clients, routers and cooperations speak OpenAI's wire format only; this plugin
translates at the edge, both ways, so Claude models sit in the same pools,
fallback chains and votes as every other model:

* requests (:func:`to_anthropic`): system/developer messages become ``system``,
  content parts become blocks (data: URLs become base64 image or document
  sources), assistant ``tool_calls`` become ``tool_use`` blocks and ``tool``
  messages ``tool_result`` blocks of one user turn, tools and ``tool_choice`` are
  renamed, and ``max_tokens`` (which Anthropic requires) gets a default;
* responses (:func:`from_anthropic`): text, ``tool_calls``, thinking as
  ``reasoning_content``, stop reasons as finish reasons, usage;
* streams (:class:`StreamTranslator`): Anthropic's typed events become OpenAI
  chunks: a role chunk, content and tool-call deltas, a finish chunk, a usage chunk.

It also serves the Messages API natively (:meth:`AnthropicProvider.native_messages`):
the gateway's ``/v1/messages`` relays a request for an Anthropic-only model as is,
only the model id and the credentials replaced, and the upstream's bytes back
unchanged (thinking signatures, cache fields, citations, fields added after this
was written), reading the usage on the way.

Errors keep their meaning: Anthropic's error bodies and mid-stream ``error``
events go through :func:`coop.error_from_payload` (``overloaded_error``/529 is
"unavailable", so the engine fails over).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from coop import (
    BadRequestError,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ConfigError,
    ModelInfo,
    NativeReply,
    Preset,
    Provider,
    ProviderCall,
    SSEDecoder,
    UpstreamConnectionError,
    UpstreamProtocolError,
    Usage,
    ValidationError,
    error_from_payload,
    error_from_response,
    hookimpl,
    to_wire,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "PRESET",
    "AnthropicProvider",
    "StreamTranslator",
    "from_anthropic",
    "to_anthropic",
]

#: The API version every request names (the one whose shapes this module speaks).
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` when the client gave none: Anthropic refuses a request without it.
DEFAULT_MAX_TOKENS = 4096

PRESET = Preset(
    name="anthropic",
    base_url="https://api.anthropic.com/v1",
    api_key_env="ANTHROPIC_API_KEY",
    description="Anthropic Claude via the native Messages API (translated to OpenAI's format).",
    models=(
        ModelInfo("claude-haiku-4-5", 200_000, 1.00, 5.00, tier="light", alias="claude_haiku"),
        ModelInfo(
            "claude-sonnet-4-5", 200_000, 3.00, 15.00, tier="reasoning", alias="claude_sonnet"
        ),
        ModelInfo("claude-opus-4-5", 200_000, 5.00, 25.00, tier="complex", alias="claude_opus"),
        ModelInfo(
            "claude-opus-4-1", 200_000, 15.00, 75.00, tier="complex", alias="claude_opus_4_1"
        ),
        ModelInfo(
            "claude-sonnet-4-0", 200_000, 3.00, 15.00, tier="reasoning", alias="claude_sonnet_4"
        ),
        ModelInfo(
            "claude-3-5-haiku-latest", 200_000, 0.80, 4.00, tier="light", alias="claude_haiku_3_5"
        ),
    ),
)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: Anthropic-only request keys a client may send beside OpenAI's (LiteLLM-style).
_PASSTHROUGH = ("top_k", "thinking")
_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


# ----------------------------------------------------------------------------- requests


def _unsupported(message: str, field: str) -> BadRequestError:
    """A request Anthropic cannot express: a 400 naming the field, never retried."""
    return BadRequestError(f"{field}: {message}", provider="anthropic")


def _data_url(url: str, field: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` → (media type, data)."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise _unsupported("expected a base64 data: URL", field)
    return head[5 : -len(";base64")] or "application/octet-stream", data


def _image_block(image_url: Any, field: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, Mapping) else None
    if not isinstance(url, str):
        raise _unsupported("expected an object with a string 'url'", field)
    if url.startswith("data:"):
        media_type, data = _data_url(url, field)
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _file_block(file: Any, field: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str):
        raise _unsupported("only inline files (file_data) reach Anthropic, not file_id", field)
    if data.startswith("data:"):
        media_type, payload = _data_url(data, field)
    else:
        media_type, payload = "application/pdf", data
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _blocks(content: Any, field: str) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) → Anthropic content blocks (empty text left out)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{field}[{j}]"
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise _unsupported(f"a {kind!r} part needs a string {kind!r}", where)
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": text}
        elif kind == "image_url":
            block = _image_block(part.get("image_url"), f"{where}.image_url")
        elif kind == "file":
            block = _file_block(part.get("file"), f"{where}.file")
        else:
            raise _unsupported(f"content part type {kind!r} has no Anthropic equivalent", where)
        if "cache_control" in part:  # prompt caching, as LiteLLM clients send it
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _text(content: Any, field: str) -> str:
    return "\n".join(
        b["text"] for b in _blocks(content, field) if b["type"] == "text" and b["text"]
    )


def _tool_use(call: Mapping[str, Any], field: str) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _unsupported("a tool call needs a function with a name", field)
    if not isinstance(call.get("id"), str):
        raise _unsupported("a tool call needs the id its tool message answers", f"{field}.id")
    raw = function.get("arguments")
    try:
        arguments = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except ValueError:
        raise _unsupported(
            f"tool call arguments are not valid JSON: {str(raw)[:80]!r}", f"{field}.arguments"
        ) from None
    if not isinstance(arguments, dict):
        raise _unsupported("tool call arguments must encode a JSON object", f"{field}.arguments")
    return {
        "type": "tool_use",
        "id": call["id"],
        "name": function["name"],
        "input": arguments,
    }


def _tool_result(message: Mapping[str, Any], field: str) -> dict[str, Any]:
    content = message.get("content")
    result: Any
    if content is None or isinstance(content, str):
        result = content or ""
    else:
        result = _blocks(content, f"{field}.content")
    return {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}


def _messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, Anthropic turns); consecutive turns of one role are merged.

    Merging puts every ``tool_result`` answering one assistant turn into the single
    user turn Anthropic requires right after it, results first.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text(message.get("content"), f"{where}.content")
            if text:
                system.append(text)
        elif role == "user":
            add("user", _blocks(message.get("content"), f"{where}.content"))
        elif role == "tool":
            add("user", [_tool_result(message, where)])
        elif role == "assistant":
            blocks = _blocks(message.get("content"), f"{where}.content")
            for k, call in enumerate(message.get("tool_calls") or ()):
                blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]"))
            add("assistant", blocks)
        else:
            raise _unsupported(f"role {role!r} has no Anthropic equivalent (use tools)", where)
    return system, turns


def _tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type", "function") == "function" else None
        if not isinstance(function, Mapping):
            raise _unsupported(
                f"tool type {tool.get('type')!r} has no Anthropic equivalent", f"tools[{i}]"
            )
        out.append(_tool_definition(function))
    return out


def _tool_definition(function: Mapping[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        definition["description"] = function["description"]
    definition["input_schema"] = function.get("parameters") or dict(_EMPTY_SCHEMA)
    return definition


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        if not isinstance(name, str):
            raise _unsupported("expected {'type': 'function', 'function': {'name'}}", "tool_choice")
        result = {"type": "tool", "name": name}
    else:
        raise _unsupported(f"unknown tool_choice {choice!r}", "tool_choice")
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


def _json_instruction(response_format: Any) -> str | None:
    """Anthropic has no JSON mode: ``response_format`` becomes a system instruction."""
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "Respond with a single valid JSON object and nothing else."
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return (
            "Respond with a single valid JSON object and nothing else, matching this JSON "
            f"schema: {json.dumps(schema, ensure_ascii=False)}"
        )
    return None


def to_anthropic(
    request: ChatRequest, model: str, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request (without ``stream``).

    Raises :class:`coop.BadRequestError` naming the field for what Anthropic cannot
    express (``n`` > 1, audio parts, custom tools).
    """
    wire = to_wire(request)
    if isinstance(wire.get("n"), int) and wire["n"] > 1:
        raise _unsupported("Anthropic returns one choice per request; n must be 1", "n")
    system, turns = _messages(wire["messages"])
    instruction = _json_instruction(wire.get("response_format"))
    if instruction:
        system.append(instruction)
    max_tokens = wire.get("max_completion_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = wire.get("max_tokens")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens if isinstance(max_tokens, int) else default_max_tokens,
        "messages": turns,
    }
    if system:
        body["system"] = "\n\n".join(system)
    temperature = wire.get("temperature")
    if isinstance(temperature, int | float):
        body["temperature"] = min(float(temperature), 1.0)  # OpenAI's range is 0-2
    if isinstance(wire.get("top_p"), int | float):
        body["top_p"] = wire["top_p"]
    stop = wire.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = list(stop)
    user = wire.get("user") or wire.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    tools = wire.get("tools")
    if not tools and wire.get("functions"):  # OpenAI's deprecated spelling
        tools = [{"type": "function", "function": f} for f in wire["functions"]]
    if tools:
        body["tools"] = _tools(tools)
        choice = wire.get("tool_choice", wire.get("function_call"))
        if isinstance(choice, Mapping) and "name" in choice and "type" not in choice:
            choice = {"type": "function", "function": choice}
        translated = _tool_choice(choice, wire.get("parallel_tool_calls"))
        if translated is not None:
            body["tool_choice"] = translated
    for key in _PASSTHROUGH:
        if key in wire:
            body[key] = wire[key]
    return body


# ---------------------------------------------------------------------------- responses


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, Mapping):
        return None
    cache_read = usage.get("cache_read_input_tokens") or 0
    prompt = (
        (usage.get("input_tokens") or 0)
        + (usage.get("cache_creation_input_tokens") or 0)
        + cache_read
    )
    completion = usage.get("output_tokens") or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={"cached_tokens": cache_read},
    )


def _arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def from_anthropic(data: Mapping[str, Any]) -> ChatResponse:
    """An OpenAI chat completion for a Messages API response.

    Raises :class:`coop.ValidationError` when ``data`` is not a message.
    """
    content = data.get("content")
    if data.get("type") != "message" or not isinstance(content, list):
        raise ValidationError("expected a Messages API object with content blocks")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": _arguments(block.get("input")),
                    },
                }
            )
    text = "".join(texts) if texts or not calls else None
    stop_reason = data.get("stop_reason")
    return ChatResponse.build(
        str(data.get("model") or ""),
        text,
        finish_reason=_FINISH.get(str(stop_reason), "stop"),
        usage=_usage(data.get("usage")),
        id=str(data.get("id") or "") or None,
        reasoning_content="".join(thinking) if thinking else None,
        tool_calls=calls or None,
    )


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time.

    Kept apart from the HTTP code so the mapping can be driven (and tested) with
    events alone. ``finished`` is true once ``message_stop`` arrived: a stream that
    ends before it was cut.
    """

    def __init__(self, model: str, *, provider: str = "anthropic", deployment: str = "") -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.finished = False
        self._provider, self._deployment = provider, deployment
        self._started = False
        self._tools: dict[int, int] = {}  # content block index → tool call index
        self._stop_reason: str | None = None
        self._usage: dict[str, Any] = {}

    def _chunk(self, **kw: Any) -> ChatChunk:
        return ChatChunk.build(self.model, id=self.id or None, created=self.created, **kw)

    def _start(self) -> list[ChatChunk]:
        if self._started:
            return []
        self._started = True
        return [self._chunk(content="", role="assistant")]

    def feed(self, data: Mapping[str, Any], body: str = "") -> list[ChatChunk]:
        """The chunks one event (decoded ``data``) becomes; raises on an ``error`` event."""
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = str(message.get("id") or self.id)
            self.model = str(message.get("model") or self.model)
            self._usage.update(message.get("usage") or {})
            return self._start()
        if kind == "content_block_start":
            return self._start() + self._block_start(data)
        if kind == "content_block_delta":
            return self._start() + self._block_delta(data)
        if kind == "message_delta":
            delta = data.get("delta") or {}
            self._stop_reason = delta.get("stop_reason") or self._stop_reason
            usage = data.get("usage")
            if isinstance(usage, Mapping):  # cumulative counts: the last one wins
                self._usage.update({k: v for k, v in usage.items() if v is not None})
            return []
        if kind == "message_stop":
            self.finished = True
            finish = _FINISH.get(str(self._stop_reason), "stop")
            chunks = [*self._start(), self._chunk(finish_reason=finish)]
            usage = _usage(self._usage)
            if usage is not None and self._usage:
                chunks.append(self._chunk(usage=usage))
            return chunks
        if kind == "error":
            raise error_from_payload(
                None, data, body=body, provider=self._provider, deployment=self._deployment
            )
        return []  # ping, content_block_stop, and event types added after this was written

    def _block_start(self, data: Mapping[str, Any]) -> list[ChatChunk]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            index = len(self._tools)
            self._tools[int(data.get("index", index))] = index
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk(tool_calls=[call])]
        if kind == "text" and block.get("text"):
            return [self._chunk(content=block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk(reasoning_content=block["thinking"])]
        return []

    def _block_delta(self, data: Mapping[str, Any]) -> list[ChatChunk]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk(content=delta["text"])]
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tools.get(int(data.get("index", -1)))
            if index is None:
                raise UpstreamProtocolError(
                    "input_json_delta for a content block that is not a tool_use",
                    provider=self._provider,
                    deployment=self._deployment,
                )
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk(tool_calls=[call])]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk(reasoning_content=delta["thinking"])]
        return []  # signature_delta, citations_delta, empty deltas


# ----------------------------------------------------------------------------- provider


class AnthropicProvider(Provider):
    """``POST {base_url}/messages`` and ``GET {base_url}/models``, translated.

    Endpoint option ``max_tokens`` sets the default output limit (4096) used when a
    request names none.
    """

    name = "anthropic"
    preset = PRESET

    def _default_max_tokens(self) -> int:
        options = getattr(self.endpoint, "options", None) or {}
        value = options.get("max_tokens", DEFAULT_MAX_TOKENS)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"expected a positive integer, got {value!r}",
                key=f"endpoints.{getattr(self.endpoint, 'name', '?')}.options.max_tokens",
            )
        return value

    def headers(self, call: ProviderCall) -> dict[str, str]:
        headers = super().headers(call)
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if call.api_key:
            headers.setdefault("x-api-key", call.api_key)
        return headers

    def prepare_body(
        self, request: ChatRequest, call: ProviderCall, *, stream: bool
    ) -> dict[str, Any]:
        """The Messages API body sent upstream (override for gateway quirks)."""
        body = to_anthropic(request, call.model, default_max_tokens=self._default_max_tokens())
        if stream:
            body["stream"] = True
        return body

    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        body = self.prepare_body(request, call, stream=False)
        response = await self.send_json("POST", "/messages", call, body)
        data = await self.read_json(response, call)
        try:
            return from_anthropic(data)
        except (ValidationError, AttributeError, TypeError) as exc:
            where = f" ({exc.field})" if isinstance(exc, ValidationError) and exc.field else ""
            raise self.protocol_error(  # the answer's own text stays on .body, never in the message
                f"upstream response is not a message{where}",
                call,
                response.status,
                json.dumps(data)[:500],
            ) from None

    async def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        body = self.prepare_body(request, call, stream=True)
        response = await self.send_json("POST", "/messages", call, body, accept="text/event-stream")
        try:
            translator = StreamTranslator(
                call.model, provider=self.name, deployment=self.deployment_label(call)
            )
            async for event in self.sse_events(response, call, end="message_stop"):
                if not event.data:
                    continue
                data = self.event_json(event, call, response.status)
                if not isinstance(data, Mapping):
                    raise self.protocol_error(
                        "stream event is not an object", call, response.status, event.data[:500]
                    )
                if "type" not in data and event.event != "message":
                    data = {**data, "type": event.event}
                try:
                    chunks = translator.feed(data, event.data[:500])
                except (AttributeError, TypeError, ValueError):
                    raise self.protocol_error(  # the event's text stays on .body
                        "unexpected stream event",
                        call,
                        response.status,
                        event.data[:500],
                    ) from None
                for chunk in chunks:
                    yield chunk
                if translator.finished:
                    return
            raise self.protocol_error(
                "stream ended before message_stop (connection cut)", call, response.status, ""
            )
        finally:
            await response.aclose()

    async def native_messages(
        self,
        body: Mapping[str, Any],
        call: ProviderCall,
        *,
        stream: bool,
        headers: Mapping[str, str],
    ) -> NativeReply:
        """``POST {base_url}/messages`` with the client's body, relayed byte for byte.

        The client's ``anthropic-version`` and ``anthropic-beta`` headers are kept; the
        key is the endpoint's. A non-2xx answer, and a stream whose first event is an
        ``error``, raise typed errors (so the engine fails over); after that the bytes
        are the client's, usage read from ``message_start``/``message_delta`` on the way.
        """
        assert self.http is not None, "the engine hands every provider its HTTP client"
        sent = self.headers(call)
        for name in ("anthropic-version", "anthropic-beta"):
            if headers.get(name):
                sent[name] = headers[name]
        sent["accept"] = "text/event-stream" if stream else "application/json"
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = await self.http.request(
            "POST", self.base_url + "/messages", headers=sent, content=content,
            timeouts=call.timeouts,
        )  # fmt: skip
        if response.status >= 400:
            raw = await response.read()
            raise error_from_response(
                response.status, raw, response.headers,
                provider=self.name, deployment=self.deployment_label(call),
            )  # fmt: skip
        relayed = {"content-type": response.headers.get("content-type", "application/json")}
        if not stream:
            raw = await response.read()
            data = self.decode_json(raw, response, call)
            if not isinstance(data, Mapping) or data.get("type") != "message":
                raise self.protocol_error(
                    "upstream response is not a message", call, response.status, raw[:500]
                )
            return NativeReply(response.status, relayed, raw, usage=_usage(data.get("usage")))
        if "event-stream" not in relayed["content-type"]:
            raw = await response.read()
            await response.aclose()
            raise self.protocol_error(
                f"expected an event stream, got content type {relayed['content-type']!r}",
                call,
                response.status,
                raw[:500],
            )
        return await _NativeStream(self, response, call, relayed).start()

    async def list_models(self, call: ProviderCall) -> list[str]:
        response = await self.send_json("GET", "/models?limit=1000", call)
        data = await self.read_json(response, call)
        try:
            return [str(item["id"]) for item in data["data"]]
        except (KeyError, TypeError):
            raise self.protocol_error(
                "upstream /models is not a model list",
                call,
                response.status,
                json.dumps(data)[:500],
            ) from None


class _NativeStream:
    """An upstream Messages stream relayed as bytes, its events parsed on the side for
    usage and errors."""

    def __init__(
        self,
        provider: AnthropicProvider,
        response: Any,
        call: ProviderCall,
        headers: dict[str, str],
    ) -> None:
        self.provider, self.response, self.call = provider, response, call
        self.chunks = response.aiter_bytes().__aiter__()
        self.decoder = SSEDecoder()
        self.usage: dict[str, Any] = {}
        self.reply = NativeReply(response.status, headers, b"")
        self.finished = False

    def _see(self, data: bytes, *, first: bool) -> None:
        for event in self.decoder.feed(data):
            try:
                payload = json.loads(event.data) if event.data else None
            except ValueError:
                payload = None
            if not isinstance(payload, Mapping):
                continue
            kind = payload.get("type", event.event)
            if kind == "message_start":
                message = payload.get("message")
                if isinstance(message, Mapping) and isinstance(message.get("usage"), Mapping):
                    self.usage.update(message["usage"])
            elif kind == "message_delta" and isinstance(payload.get("usage"), Mapping):
                self.usage.update({k: v for k, v in payload["usage"].items() if v is not None})
            elif kind == "message_stop":
                self.finished = True
            elif kind == "error":
                if first:  # nothing reached the client yet: a typed error, so the engine fails over
                    raise error_from_payload(
                        self.response.status, payload, body=event.data[:500],
                        provider=self.provider.name,
                        deployment=self.provider.deployment_label(self.call),
                    )  # fmt: skip
                error = payload.get("error")
                kind = error.get("type") if isinstance(error, Mapping) else None
                self.reply.error = str(kind or "error")
            self.reply.usage = _usage(self.usage) if self.usage else None

    async def start(self) -> NativeReply:
        """Read up to the first whole event (so an error event there can fail over)."""
        head = b""
        try:
            while True:
                try:
                    chunk = await self.chunks.__anext__()
                except StopAsyncIteration:
                    raise self.provider.protocol_error(
                        "stream ended before its first event", self.call, self.response.status, head
                    ) from None
                head += chunk
                self._see(chunk, first=True)
                if b"\n\n" in head or b"\r\n\r\n" in head or b"\r\r" in head:
                    break
        except BaseException:
            await self.response.aclose()
            raise
        self.reply.body = head
        self.reply.rest = self._rest()
        return self.reply

    async def _rest(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                self._see(chunk, first=False)
                yield chunk
            if not self.finished and self.reply.error is None:
                raise self.provider.protocol_error(
                    "stream ended before message_stop (connection cut)",
                    self.call,
                    self.response.status,
                    "",
                )
        except UpstreamConnectionError as exc:
            raise self.provider.protocol_error(
                f"stream ended before message_stop (connection cut: {exc})",
                self.call,
                self.response.status,
                "",
            ) from exc
        finally:
            await self.response.aclose()


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(AnthropicProvider)
