"""Anthropic's Messages API on the gateway: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Where nothing needs translating, nothing is: when the plan is one model whose every
deployment (fallbacks included) is on a provider that serves the Messages API
natively (:meth:`coop.Provider.serves_native_messages`, the ``anthropic`` provider),
the client's body goes upstream as is, only the model id and the key replaced, and
the upstream's bytes come back unchanged, streams as they arrive
(``x-coop-passthrough: 1``). Thinking signatures, ``cache_control``, citations and
fields coop has never heard of survive; the dispatcher still picks the deployment,
fails over before the first byte, and records usage and cost from the answer.

Otherwise (``auto`` routed elsewhere, cooperations, OpenAI-compatible upstreams;
``x-coop-passthrough: 0``) it is a front like chat completions: the Messages body is translated into
an OpenAI-shaped chat request, planned and run by the one dispatcher (so
``model="auto"``, cooperations, failover and cost behave exactly as on
``/v1/chat/completions``), and the answer is translated back into a ``message``
object or Anthropic's stream of typed events. What cannot be translated is
refused with a 400 in Anthropic's error shape, naming the field:

* requests: ``system`` (a string or text blocks) becomes a system message; text,
  image (base64 or URL) and document blocks become content parts; ``tool_use``
  blocks become an assistant's ``tool_calls`` and ``tool_result`` blocks ``tool``
  messages (each must answer a ``tool_use`` of the assistant turn just before);
  ``thinking`` blocks become ``reasoning_content``; ``stop_sequences``,
  ``metadata.user_id`` and ``tool_choice`` are renamed; ``top_k`` and ``thinking``
  travel as extra fields. The ``thinking`` parameter is honoured only where every
  model the plan may call is served by an Anthropic endpoint; elsewhere it is a 400;
* answers: ``reasoning_content`` becomes a ``thinking`` block, text a ``text``
  block, tool calls ``tool_use`` blocks, finish reasons stop reasons, usage
  ``input_tokens``/``output_tokens``;
* streams: ``message_start``, ``ping``, ``content_block_start`` /
  ``content_block_delta`` (``text_delta``, ``thinking_delta``, ``input_json_delta``) /
  ``content_block_stop`` per block, ``message_delta`` (stop reason, usage),
  ``message_stop``; an error after the first event is an ``error`` event.

Auth is the gateway's (``x-api-key`` or ``Authorization: Bearer``); an
``anthropic-version`` header, when sent, must be a date (``2023-06-01``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from .._config import SystemConfig
from .._dispatch import Progress
from .._errors import CoopError, UnknownModelError
from .._plan import Plan
from .._redact import redact
from .._usage import estimate_messages_tokens, estimate_tokens
from .._wire import UNSET, ChatChunk, Usage
from ._http import ClientDisconnected, HTTPError, Receive, Scope, Send, error_for, send_bytes

if TYPE_CHECKING:
    from ._app import GatewayApp, RequestContext

__all__ = ["count_tokens", "messages", "to_chat_request"]

log = logging.getLogger("coop.server")

_JSON = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Top-level keys of a Messages request this front understands.
_KEYS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "tools",
        "tool_choice",
        "stream",
        "thinking",
        "service_tier",
        "cache_control",
        "coop",
    }
)
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
#: Anthropic's error type for a status (anything else: 4xx invalid_request_error, 5xx api_error).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
    504: "timeout_error",
}


# ------------------------------------------------------------------------------- errors


def _bad(field: str, why: str) -> HTTPError:
    return HTTPError(400, f"{field}: {why}"[:500], param=field, code="invalid_value")


def _error_json(error: HTTPError, request_id: str) -> bytes:
    kind = _ERROR_TYPES.get(error.status) or (
        "invalid_request_error" if error.status < 500 else "api_error"
    )
    body = {
        "type": "error",
        "error": {"type": kind, "message": redact(error.message)},
        "request_id": request_id,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def _in_anthropic_shape(
    ctx: RequestContext, send: Send, work: Callable[[Send], Awaitable[None]]
) -> None:
    """Run ``work``; an error before the response started is answered in Anthropic's shape."""
    started = False

    async def tracking(message: dict[str, Any]) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await work(tracking)
    except ClientDisconnected:
        raise
    except Exception as exc:
        if started:
            raise
        error = error_for(exc)
        if error.status >= 500 and not isinstance(exc, CoopError | HTTPError | TimeoutError):
            log.exception("internal error on /v1/messages")
        ctx.status = error.status
        await send_bytes(
            send, error.status, _error_json(error, ctx.request_id), [*_JSON, *error.headers]
        )


def _check_version(scope: Scope) -> None:
    for key, value in scope["headers"]:
        if key == b"anthropic-version":
            version = value.decode("latin-1").strip()
            if not _VERSION.fullmatch(version):
                raise _bad(
                    "anthropic-version",
                    f"expected an API version date such as 2023-06-01, got {version[:40]!r}",
                )


# --------------------------------------------------------------------------- requests


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "an array" if isinstance(value, list) else "an object"
    )


def _text_of(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{where}.text", f"a text block needs a string 'text', got {_kind(text)}")
    return text


def _image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise _bad(f"{where}.source", "an image block needs a source object")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if media not in _IMAGE_TYPES:
            raise _bad(
                f"{where}.source.media_type",
                f"expected one of {', '.join(_IMAGE_TYPES)}, got {media!r}",
            )
        if not isinstance(data, str) or not data:
            raise _bad(f"{where}.source.data", "expected base64 image data")
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise _bad(f"{where}.source.url", "expected the image's URL")
    else:
        raise _bad(
            f"{where}.source.type",
            f"image sources are 'base64' or 'url' here (no Files API), got {kind!r}",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    source = source if isinstance(source, Mapping) else {}
    kind, data = source.get("type"), source.get("data")
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": data}
    if kind == "base64" and isinstance(data, str):
        media = source.get("media_type") or "application/pdf"
        file: dict[str, Any] = {"file_data": f"data:{media};base64,{data}"}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    raise _bad(
        f"{where}.source",
        "document sources are base64 (PDF) or text here (no URL or Files API sources)",
    )


def _tool_result_parts(block: Mapping[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool_result's content: (its text, its images)."""
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if content is None:
        pass
    elif isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            here = f"{where}.content[{k}]"
            kind = inner.get("type") if isinstance(inner, Mapping) else None
            if kind == "text":
                texts.append(_text_of(inner, here))
            elif kind == "image":
                images.append(_image_part(inner, here))
            else:
                raise _bad(
                    f"{here}.type",
                    f"a tool_result holds text and image blocks, not {kind!r}",
                )
    else:
        raise _bad(f"{where}.content", f"expected a string or content blocks, got {_kind(content)}")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _user_turn(content: Any, where: str, expected: dict[str, str]) -> list[dict[str, Any]]:
    """One Anthropic user turn → OpenAI messages: tool messages first, then the user's parts."""
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    answered: set[str] = set()
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, here)})
        elif kind == "image":
            parts.append(_image_part(block, here))
        elif kind == "document":
            parts.append(_document_part(block, here))
        elif kind == "tool_result":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str) or tool_id not in expected:
                raise _bad(
                    f"{here}.tool_use_id",
                    f"no tool_use with id {tool_id!r} in the assistant message just before "
                    "(each tool_result answers a tool_use of the previous assistant turn)",
                )
            if tool_id in answered:
                raise _bad(f"{here}.tool_use_id", f"tool_use {tool_id!r} is answered twice")
            answered.add(tool_id)
            text, images = _tool_result_parts(block, here)
            tools.append({"role": "tool", "tool_call_id": tool_id, "content": text})
            tool_images += images
        elif kind in ("tool_use", "thinking", "redacted_thinking"):
            raise _bad(
                f"{here}.type",
                f"a user message cannot hold a {kind!r} block (only the assistant's can)",
            )
        else:
            raise _bad(
                f"{here}.type",
                f"unsupported content block type {kind!r} "
                "(use text, image, document or tool_result)",
            )
    missing = [tool_id for tool_id in expected if tool_id not in answered]
    if expected and missing:
        raise _bad(
            f"{where}.content",
            f"tool_use ids {missing} have no tool_result block in this message "
            "(each tool_use must be answered in the next user message)",
        )
    if tool_images:  # OpenAI's tool messages carry text only: the images follow as the user's
        parts = [
            {"type": "text", "text": "(images from the tool results above)"},
            *tool_images,
            *parts,
        ]
    messages = list(tools)
    if parts:
        if all(p["type"] == "text" for p in parts):
            messages.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
        else:
            messages.append({"role": "user", "content": parts})
    return messages


def _assistant_turn(content: Any, where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """One assistant turn → (its OpenAI message, the tool_use ids it asks: id → name)."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}, {}
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    asked: dict[str, str] = {}
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_of(block, here))
        elif kind == "thinking":
            text = block.get("thinking")
            if not isinstance(text, str):
                raise _bad(f"{here}.thinking", "a thinking block needs a string 'thinking'")
            thinking.append(text)
        elif kind == "tool_use":
            tool_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(tool_id, str) or not tool_id:
                raise _bad(f"{here}.id", "a tool_use block needs a string id")
            if not isinstance(name, str) or not name:
                raise _bad(f"{here}.name", "a tool_use block needs the tool's name")
            if not isinstance(arguments, dict):
                raise _bad(f"{here}.input", f"expected an object, got {_kind(arguments)}")
            if tool_id in asked:
                raise _bad(f"{here}.id", f"tool_use id {tool_id!r} appears twice")
            asked[tool_id] = name
            calls.append(
                {
                    "id": tool_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": json.dumps(arguments, ensure_ascii=False),
                    },
                }
            )
        elif kind == "redacted_thinking":
            raise _bad(
                f"{here}.type",
                "redacted_thinking blocks are encrypted for Anthropic's own API and cannot "
                "be passed through coop; leave them out",
            )
        elif kind in ("image", "document", "tool_result"):
            raise _bad(
                f"{here}.type",
                f"an assistant message cannot hold a {kind!r} block (only a user's can)",
            )
        else:
            raise _bad(
                f"{here}.type",
                f"unsupported content block type {kind!r} (use text, thinking or tool_use)",
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return message, asked


def _system(system: Any) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _bad("system", f"expected a string or an array of text blocks, got {_kind(system)}")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, Mapping) else _kind(block)
            raise _bad(f"system[{i}].type", f"system blocks must be text blocks, got {kind!r}")
        texts.append(_text_of(block, f"system[{i}]"))
    return "\n\n".join(t for t in texts if t)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools", f"expected an array of tools, got {_kind(tools)}")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise _bad(where, f"expected a tool object, got {_kind(tool)}")
        kind = tool.get("type", "custom")
        if kind not in ("custom", None):
            raise _bad(
                f"{where}.type",
                f"Anthropic server tool {kind!r} runs only on Anthropic's own API; "
                "coop forwards client tools (name, description, input_schema)",
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.name", "a tool needs a name")
        if not isinstance(schema, Mapping):
            raise _bad(f"{where}.input_schema", "a tool needs a JSON schema object")
        function: dict[str, Any] = {"name": name, "parameters": dict(schema)}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """Anthropic's tool_choice → (OpenAI's tool_choice, parallel_tool_calls)."""
    if not isinstance(choice, Mapping):
        raise _bad("tool_choice", f"expected an object with a type, got {_kind(choice)}")
    kind = choice.get("type")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad("tool_choice.disable_parallel_tool_use", "expected a boolean")
    if kind == "auto":
        out: Any = "auto"
    elif kind == "any":
        out = "required"
    elif kind == "none":
        out = "none"
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("tool_choice.name", "a 'tool' choice needs the tool's name")
        out = {"type": "function", "function": {"name": name}}
    else:
        raise _bad("tool_choice.type", f"expected auto, any, tool or none, got {kind!r}")
    return out, (False if parallel else None)


def _number(data: Mapping[str, Any], key: str, low: float, high: float | None) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, f"expected a number, got {_kind(value)}")
    if not (value >= low and (high is None or value <= high)):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise _bad(key, f"must be {bound}, got {value!r}")
    return value


def to_chat_request(data: Any, *, counting: bool = False) -> dict[str, Any]:
    """The OpenAI-shaped chat request (a dict for :func:`coop.parse_chat_request`) of a
    Messages request. ``counting``: a count_tokens body (no ``max_tokens``).

    Raises :class:`HTTPError` (400) naming the field for what is malformed or
    cannot be translated.
    """
    if not isinstance(data, dict):
        raise HTTPError(400, "request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(data) - _KEYS - ({"max_tokens"} if counting else set()))
    if unknown:
        raise _bad(
            unknown[0],
            "unknown or unsupported parameter; coop accepts " + ", ".join(sorted(_KEYS - {"coop"})),
        )
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "required: a model, a cooperation or 'auto'")
    out: dict[str, Any] = {"model": model}
    max_tokens = data.get("max_tokens")
    if not counting or max_tokens is not None:
        if max_tokens is None:
            raise _bad(
                "max_tokens", "required: the most tokens the answer may have (an integer >= 1)"
            )
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad("max_tokens", f"expected an integer >= 1, got {max_tokens!r}")
        out["max_tokens"] = max_tokens
    messages: list[dict[str, Any]] = []
    if data.get("system") is not None:
        system = _system(data["system"])
        if system:
            messages.append({"role": "system", "content": system})
    turns = data.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _bad("messages", "required: a non-empty array of user and assistant messages")
    expected: dict[str, str] = {}
    for i, turn in enumerate(turns):
        where = f"messages[{i}]"
        if not isinstance(turn, Mapping):
            raise _bad(where, f"expected a message object, got {_kind(turn)}")
        role, content = turn.get("role"), turn.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(b, Mapping) for b in content)
        ):
            raise _bad(f"{where}.content", "expected a string or an array of content blocks")
        extra = sorted(set(turn) - {"role", "content"})
        if extra:
            raise _bad(f"{where}.{extra[0]}", "unknown key (a message has role and content)")
        if role == "user":
            messages += _user_turn(content, where, expected)
            expected = {}
        elif role == "assistant":
            if expected:
                raise _bad(
                    where,
                    f"tool_use ids {list(expected)} have no tool_result: the message after "
                    "an assistant's tool_use must be a user message answering it",
                )
            message, expected = _assistant_turn(content, where)
            messages.append(message)
        else:
            raise _bad(f"{where}.role", f"expected 'user' or 'assistant', got {role!r}")
    out["messages"] = messages
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise _bad("stop_sequences", "expected an array of non-empty strings")
        if len(stops) > 4:  # what OpenAI-compatible upstreams take
            raise _bad("stop_sequences", f"at most 4 sequences through coop, got {len(stops)}")
        if stops:
            out["stop"] = list(stops)
    for key, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = _number(data, key, low, high)
        if value is not None:
            out[key] = value
    top_k = data.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise _bad("top_k", f"expected an integer >= 0, got {top_k!r}")
        out["top_k"] = top_k
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise _bad("metadata", f"expected an object, got {_kind(metadata)}")
        unknown = sorted(set(metadata) - {"user_id"})
        if unknown:
            raise _bad(f"metadata.{unknown[0]}", "unknown key (metadata has user_id)")
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise _bad("metadata.user_id", f"expected a string, got {_kind(user)}")
        if user:
            out["user"] = user
    if data.get("tools") is not None:
        tools = _tools(data["tools"])
        if tools:
            out["tools"] = tools
    if data.get("tool_choice") is not None:
        choice, parallel = _tool_choice(data["tool_choice"])
        if "tools" in out:
            out["tool_choice"] = choice
            if parallel is not None:
                out["parallel_tool_calls"] = parallel
        elif choice not in ("auto", "none"):
            raise _bad("tool_choice", "names a tool to use, but the request has no tools")
    thinking = data.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, Mapping) else None
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise _bad("thinking.budget_tokens", f"expected an integer >= 1, got {budget!r}")
        elif kind not in ("adaptive", "between_tools", "disabled"):
            raise _bad(
                "thinking.type",
                f"expected enabled, adaptive, between_tools or disabled, got {kind!r}",
            )
        if kind != "disabled":
            out["thinking"] = dict(thinking)  # type: ignore[arg-type]
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", f"expected a boolean, got {_kind(stream)}")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tier = data.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise _bad("service_tier", f"expected 'auto' or 'standard_only', got {tier!r}")
    if "coop" in data:  # coop's own limits object, as on chat completions
        out["coop"] = data["coop"]
    return out


def _planned_models(config: SystemConfig, plan: Plan) -> list[str]:
    """Every logical model the plan may call: its members, judges and fallbacks."""
    names: list[str] = []
    if plan.kind == "cascade" and plan.cascade is not None:
        names += plan.cascade[:2]
    elif plan.kind == "cooperation" and plan.cooperation is not None:
        cooperation = plan.cooperation
        names += cooperation.models
        names += [s["model"] for s in cooperation.stages if isinstance(s, dict) and "model" in s]
        for key in ("judge", "aggregator"):
            if isinstance(cooperation.options.get(key), str):
                names.append(cooperation.options[key])
    else:
        names.append(plan.target)
    seen: list[str] = []
    while names:
        name = names.pop(0)
        if name in seen or name not in config.models:
            continue
        seen.append(name)
        names += config.models[name].fallbacks
    return seen


def _check_thinking(config: SystemConfig, plan: Plan) -> None:
    """``thinking`` reaches only Anthropic endpoints: refuse a plan that may call another."""
    for name in _planned_models(config, plan):
        for deployment in config.models[name].deployments:
            endpoint = config.endpoints.get(deployment.endpoint)
            provider = endpoint.provider if endpoint is not None else "?"
            if provider != "anthropic":
                raise _bad(
                    "thinking",
                    f"extended thinking needs an Anthropic upstream, but model {name!r} "
                    f"(for {plan.target!r}) is served by provider {provider!r}; leave "
                    "'thinking' out (reasoning models still return their thinking) or "
                    "name a model served by the anthropic provider",
                )


# --------------------------------------------------------------------------- answers


def _message_id() -> str:
    return "msg_" + os.urandom(12).hex()


def _usage(usage: Usage | None, fallback_input: int = 0) -> dict[str, Any]:
    if usage is None:
        return {"input_tokens": fallback_input, "output_tokens": 0}
    prompt = usage.prompt_tokens or 0
    details = usage.prompt_tokens_details
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out: dict[str, Any] = {
        "input_tokens": prompt - cached
        if isinstance(cached, int) and 0 < cached <= prompt
        else prompt,
        "output_tokens": usage.completion_tokens or 0,
    }
    if isinstance(cached, int) and 0 < cached <= prompt:
        out["cache_read_input_tokens"] = cached
    return out


def _tool_input(arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        raise HTTPError(
            502,
            "the model's tool call arguments are not valid JSON",
            type="server_error",
            code="upstream_error",
        ) from None
    if not isinstance(value, dict):
        raise HTTPError(
            502,
            "the model's tool call arguments are not a JSON object",
            type="server_error",
            code="upstream_error",
        )
    return value


def to_message(result: Any) -> dict[str, Any]:
    """A :class:`coop.DispatchResult` as a Messages API ``message``."""
    response = result.response
    choice = response.choices[0] if response.choices else None
    message = choice.message if choice is not None else None
    content: list[dict[str, Any]] = []
    calls: list[Any] = []
    if message is not None:
        reasoning = message.reasoning_content
        if isinstance(reasoning, str) and reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
        text = message.text or (message.refusal if isinstance(message.refusal, str) else "")
        if text:
            content.append({"type": "text", "text": text})
        calls = [c for c in (message.tool_calls or ()) if c.function not in (UNSET, None)]
        for call in calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id
                    if isinstance(call.id, str) and call.id
                    else "toolu_" + os.urandom(12).hex(),
                    "name": call.function.name or "",
                    "input": _tool_input(call.function.arguments),
                }
            )
    finish = choice.finish_reason if choice is not None else "stop"
    stop = "tool_use" if calls else _STOP_REASONS.get(str(finish), "end_turn")
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(result.usage),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return b"event: " + name.encode() + b"\ndata: " + payload.encode() + b"\n\n"


class StreamTranslator:
    """OpenAI chunks → Anthropic stream events, one chunk at a time.

    Blocks open as their kind of delta first arrives (thinking, text, a tool call)
    and close when another kind starts or the stream ends. ``finish`` gives the
    closing events (``message_delta`` with stop reason and usage, ``message_stop``).
    """

    def __init__(self, model: str, input_tokens: int) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.index = -1
        self.open: str | None = None  # "text", "thinking", or "tool:<openai index>"
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.used_tools = False
        self.output_text: list[str] = []
        self._buffered: dict[int, list[str]] = {}

    def start(self) -> list[bytes]:
        message = {
            "id": _message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [
            _event("message_start", {"type": "message_start", "message": message}),
            _event("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.index += 1
        self.open = kind
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.index, "delta": delta},
        )

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        events: list[bytes] = []
        if chunk.usage not in (UNSET, None):
            self.usage = chunk.usage  # type: ignore[assignment]
        for choice in chunk.choices or ():
            if choice.index not in (0, UNSET, None):
                continue
            delta = choice.delta
            reasoning = delta.reasoning_content
            if isinstance(reasoning, str) and reasoning:
                if self.open != "thinking":
                    events += self._open(
                        "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                    )
                events.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
            text = delta.content if isinstance(delta.content, str) else ""
            if not text and isinstance(delta.refusal, str):
                text = delta.refusal
            if text:
                if self.open != "text":
                    events += self._open("text", {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": text}))
                self.output_text.append(text)
            for call in delta.tool_calls or ():
                events += self._tool_call(call)
            if choice.finish_reason is not None:
                self.stop_reason = _STOP_REASONS.get(choice.finish_reason, "end_turn")
        return events

    def _tool_call(self, call: Any) -> list[bytes]:
        index = call.index if isinstance(call.index, int) else 0
        function = call.function if call.function not in (UNSET, None) else None
        arguments = function.arguments if function is not None else None
        name = function.name if function is not None else None
        events: list[bytes] = []
        if self.open != f"tool:{index}":
            if not isinstance(name, str) or not name:
                # a fragment of a call whose block is closed already: keep it for the end
                if isinstance(arguments, str) and arguments:
                    self._buffered.setdefault(index, []).append(arguments)
                return []
            self.used_tools = True
            tool_id = (
                call.id if isinstance(call.id, str) and call.id else "toolu_" + os.urandom(12).hex()
            )
            events += self._open(
                f"tool:{index}", {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
            )
        if isinstance(arguments, str) and arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
            self.output_text.append(arguments)
        return events

    def finish(self) -> list[bytes]:
        if self._buffered:
            raise HTTPError(
                502,
                "the upstream interleaved the arguments of parallel tool calls, which "
                "Anthropic's stream cannot express",
                type="server_error",
                code="upstream_error",
            )
        events = self._close()
        stop = self.stop_reason or "end_turn"
        if self.used_tools and stop == "end_turn":
            stop = "tool_use"
        usage = _usage(self.usage, self.input_tokens)
        if self.usage is None:
            usage["output_tokens"] = estimate_tokens("".join(self.output_text))
        events.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events


# --------------------------------------------------------------------------- endpoints


def _count(chat: dict[str, Any]) -> int:
    total = estimate_messages_tokens(chat["messages"])
    if chat.get("tools"):
        total += estimate_tokens(json.dumps(chat["tools"], ensure_ascii=False))
    return total


def _native_target(app: GatewayApp, data: Any) -> bool:
    """Whether ``data`` names a model every deployment of which serves the Messages API
    natively (so a body coop cannot translate may still pass through as is)."""
    model = data.get("model") if isinstance(data, dict) else None
    return (
        isinstance(model, str)
        and app.dispatcher is not None
        and app.dispatcher.engine.serves_native_messages(model)
    )


def _check_native(data: dict[str, Any]) -> None:
    """What a body relayed as is must still have: the rest is the upstream's to judge."""
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise _bad("model", "required: a model, a cooperation or 'auto'")
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens", "required: the most tokens the answer may have (an integer >= 1)")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("max_tokens", f"expected an integer >= 1, got {max_tokens!r}")
    turns = data.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _bad("messages", "required: a non-empty array of user and assistant messages")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", f"expected a boolean, got {_kind(stream)}")


def _planning_request(data: dict[str, Any]) -> dict[str, Any]:
    """A chat request to plan a body that is relayed as is (only its target and limits
    matter): its text, for the request's size."""
    texts: list[str] = []
    for turn in data["messages"]:
        content = turn.get("content") if isinstance(turn, Mapping) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                b["text"]
                for b in content
                if isinstance(b, Mapping) and isinstance(b.get("text"), str)
            ]
    out: dict[str, Any] = {
        "model": data["model"],
        "max_tokens": data["max_tokens"],
        "messages": [{"role": "user", "content": "\n".join(texts)}],
    }
    if "coop" in data:
        out["coop"] = data["coop"]
    return out


async def messages(
    app: GatewayApp, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
) -> None:
    """``POST /v1/messages``: relayed as is to a model served only by native Messages
    upstreams (``x-coop-passthrough: 1``), translated onto the chat path otherwise."""

    async def work(send: Send) -> None:
        from ._app import _coop_headers, _route_header

        _check_version(scope)
        data = await app._request_json(receive, ctx)
        untranslatable: HTTPError | None = None
        try:
            chat = to_chat_request(data)
        except HTTPError as exc:
            if not _native_target(app, data):
                raise
            _check_native(data)
            chat, untranslatable = _planning_request(data), exc
        plan = app._plan(ctx, chat)
        assert app.dispatcher is not None
        if ctx.admission is not None:
            await app._admit_tokens(ctx, plan.request)
        ctx.response_headers.append((b"request-id", ctx.request_id.encode()))
        if plan.decision is not None:
            ctx.response_headers.append(_route_header(plan.decision))
        if app.dispatcher.serves_native_messages(plan):
            ctx.response_headers.append((b"x-coop-passthrough", b"1"))
            await _passthrough(app, plan, data, scope, receive, send, ctx)
            return
        if untranslatable is not None:
            raise untranslatable
        ctx.response_headers.append((b"x-coop-passthrough", b"0"))
        if "thinking" in chat:
            _check_thinking(app.config, plan)
        if chat.get("stream"):
            await app._guard(receive, _stream(app, plan, send, ctx, _count(chat)))
            return
        result = await app._guard(receive, app.dispatcher.run(plan))
        ctx.model, ctx.deployment = result.model, result.deployment
        ctx.response_headers += _coop_headers(result.model, result.deployment, result.cost)
        body = json.dumps(to_message(result), ensure_ascii=False, separators=(",", ":"))
        await send_bytes(send, 200, body.encode(), _JSON)

    await _in_anthropic_shape(ctx, send, work)


#: Client headers a relayed request keeps (its credentials never leave the gateway).
_RELAYED_HEADERS = (b"anthropic-version", b"anthropic-beta")


async def _passthrough(
    app: GatewayApp,
    plan: Plan,
    data: dict[str, Any],
    scope: Scope,
    receive: Receive,
    send: Send,
    ctx: RequestContext,
) -> None:
    """The client's body to the upstream as is, the upstream's bytes back as they come.

    The dispatcher picks the deployment and fails over exactly as for a translated
    request; only the model id and the key are replaced. An error before the first
    byte is a JSON error in Anthropic's shape; one mid-stream an ``error`` event.
    """
    from ._app import _coop_headers

    assert app.dispatcher is not None
    body = {k: v for k, v in data.items() if k != "coop"}
    headers = {
        key.decode(): value.decode("latin-1")
        for key, value in scope["headers"]
        if key in _RELAYED_HEADERS and value
    }
    stream = data.get("stream") is True
    dispatcher = app.dispatcher

    async def relay() -> None:
        result = await dispatcher.native_messages(plan, body, stream=stream, headers=headers)
        ctx.model, ctx.deployment = result.model, result.deployment
        ctype = result.reply.headers.get("content-type", "application/json")
        head = [(b"content-type", ctype.encode("latin-1"))]
        if result.rest is None:
            head += _coop_headers(result.model, result.deployment, result.cost)
            await send_bytes(send, result.reply.status, result.body, head)
            return
        head += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        head += _coop_headers(result.model, result.deployment, None)
        rest = result.rest
        try:
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": result.body, "more_body": True})
            try:
                async for chunk in rest:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except ClientDisconnected:
                raise
            except Exception as exc:
                error = error_for(exc)
                ctx.status = error.status
                payload = json.loads(_error_json(error, ctx.request_id))
                payload.pop("request_id", None)
                await send(
                    {
                        "type": "http.response.body",
                        "body": _event("error", payload),
                        "more_body": True,
                    }
                )
        finally:
            await cast(AsyncGenerator[bytes, None], rest).aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    await app._guard(receive, relay())


async def _stream(
    app: GatewayApp, plan: Plan, send: Send, ctx: RequestContext, input_tokens: int
) -> None:
    """The dispatcher's stream as Anthropic's events. Headers go out with the first
    item (once the deployment is known): an error before it is a JSON error, one after
    it an ``error`` event."""
    from ._app import _coop_headers

    assert app.dispatcher is not None
    translator = StreamTranslator(plan.target, input_tokens)
    started = False

    def on_start(deployment: str | None, model: str) -> None:
        ctx.model, ctx.deployment = model, deployment

    async def emit(events: list[bytes]) -> None:
        nonlocal started
        if not started:
            started = True
            translator.model = ctx.model or plan.target
            headers = [*_SSE_HEADERS, *_coop_headers(translator.model, ctx.deployment, None)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            events = translator.start() + events
        if events:
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})

    stream = cast(AsyncGenerator[Any, None], app.dispatcher.stream(plan, on_start=on_start))
    try:
        async for item in stream:
            if isinstance(item, Progress):  # a cooperation at work: keep the client waiting
                await emit([_event("ping", {"type": "ping"})])
            else:
                events = translator.feed(item)
                if events or not started:
                    await emit(events)
        await emit(translator.finish())
    except Exception as exc:
        if not started:
            raise
        error = error_for(exc)
        ctx.status = error.status
        payload = json.loads(_error_json(error, ctx.request_id))
        payload.pop("request_id", None)
        await send(
            {"type": "http.response.body", "body": _event("error", payload), "more_body": True}
        )
    finally:
        await stream.aclose()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def count_tokens(
    app: GatewayApp, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
) -> None:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, estimated locally."""

    async def work(send: Send) -> None:
        _check_version(scope)
        chat = to_chat_request(await app._request_json(receive, ctx), counting=True)
        name = chat["model"]
        if name != "auto" and name not in app.config.models and name not in app.config.cooperations:
            raise UnknownModelError(name, app.config.served_names())
        ctx.model = name
        body = json.dumps({"input_tokens": _count(chat)}).encode()
        await send_bytes(send, 200, body, _JSON)

    await _in_anthropic_shape(ctx, send, work)
