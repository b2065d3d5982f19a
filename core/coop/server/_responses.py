"""OpenAI's Responses API (``POST /v1/responses``) as a front onto the one request path.

A Responses body is translated into the chat-completions body it means
(:func:`chat_body`), planned and run by the dispatcher exactly as
``/v1/chat/completions`` is (so ``model="auto"``, cooperations, failover and cost
all work), and the chat answer is translated back: a ``response`` object
(:func:`response_object`) or the Responses stream events (:class:`EventStream`).

Stateless by default: a response is stored only when the request says
``store: true`` (OpenAI's default is true; coop's stays false, so nothing is kept
that the client did not ask to keep). A stored response, with the conversation
that led to it as chat messages, goes to the gateway's state backend
(``[state]``: the embedded SQLite file, memory, or Redis) under namespace
``responses`` for 30 days; ``previous_response_id`` prepends that conversation to
the new input (the earlier ``instructions`` are not carried over, as on OpenAI),
and ``GET``/``DELETE /v1/responses/{id}`` read and delete it. An unknown id is a
404 naming it. Without a state backend both fields are refused with a 400 naming
the field. ``conversation``, ``background`` and stored ``prompt`` templates are
refused. A client that does not store sends the whole input again, its
``function_call`` items included, as the openai SDKs do with ``store=False``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from .._dispatch import DispatchResult, Progress
from .._state import StateError
from .._wire import ChatChunk, ChatResponse, Usage, to_wire
from ._app import _SSE_HEADERS, _coop_headers, _route_header
from ._http import HTTPError, Receive, Send, error_for, send_json

if TYPE_CHECKING:
    from ._app import GatewayApp, RequestContext

__all__ = ["EventStream", "chat_body", "response_object", "serve_responses"]

log = logging.getLogger("coop.server")

#: Parameters copied to the chat body unchanged (same name, same meaning).
_SAME = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
)
#: Parameters accepted and not forwarded: echoed (metadata) or nothing to do statelessly.
_ACCEPTED = ("metadata", "include", "stream_options", "model", "input", "instructions")
#: Item types of OpenAI's hosted tools: coop cannot run them.
_HOSTED_ITEMS = frozenset(
    {
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
        "compaction",
    }
)
_ROLES = ("user", "system", "developer", "assistant")
_STATELESS = "coop's Responses API is stateless here (no state backend to keep responses in)"
#: Where stored responses live in the state backend, and for how long (OpenAI keeps 30 days).
NAMESPACE = "responses"
STORE_TTL = 30 * 24 * 3600.0


def _bad(param: str, why: str, code: str = "invalid_value") -> HTTPError:
    return HTTPError(400, f"{param}: {why}"[:500], param=param, code=code)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


# -- request: Responses → chat ---------------------------------------------------------------


def chat_body(
    data: Any, *, stream: bool, previous: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The chat-completions body a Responses request means; a 400 names what cannot be.

    ``previous`` is the stored conversation ``previous_response_id`` names (chat
    messages), put after the instructions and before the new input.
    """
    if not isinstance(data, dict):
        raise HTTPError(400, "request body must be a JSON object", code="invalid_json")
    _refuse_state(data, continued=previous is not None)
    body: dict[str, Any] = {}
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", f"required: a model name, 'auto' or a cooperation, got {_kind(model)}")
    body["model"] = model
    messages: list[dict[str, Any]] = []
    instructions = data.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            messages.append({"role": "system", "content": instructions})
    elif instructions is not None:
        raise _bad("instructions", f"must be a string, got {_kind(instructions)}")
    known_calls: set[str] = set()
    for message in previous or ():
        messages.append(message)
        known_calls.update(c.get("id") for c in message.get("tool_calls") or ())
    given = data.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        messages += _input_messages(given, known_calls)
    else:
        raise _bad("input", f"required: a string or an array of input items, got {_kind(given)}")
    if not any(m["role"] != "system" for m in messages):
        raise _bad("input", "must contain at least one item")
    body["messages"] = messages
    for name in _SAME:
        if data.get(name) is not None:
            body[name] = data[name]
    if data.get("max_output_tokens") is not None:
        body["max_tokens"] = data["max_output_tokens"]
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        body["reasoning_effort"] = reasoning["effort"]
    elif reasoning is not None and not isinstance(reasoning, dict):
        raise _bad("reasoning", f"must be an object, got {_kind(reasoning)}")
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", f"must be an array, got {_kind(tools)}")
        if tools:
            body["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    if data.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(data["tool_choice"])
    text = data.get("text")
    if text is not None:
        _text_options(text, body)
    if data.get("top_logprobs"):
        raise _bad(
            "top_logprobs", "is not supported on coop's /v1/responses", "unsupported_parameter"
        )
    if data.get("max_tool_calls") is not None:
        raise _bad(
            "max_tool_calls", "is not supported on coop's /v1/responses", "unsupported_parameter"
        )
    if data.get("truncation") not in (None, "disabled"):
        raise _bad(
            "truncation",
            "only 'disabled' is supported: coop does not drop input items to fit a context window",
            "unsupported_parameter",
        )
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata", f"must be an object of strings, got {_kind(metadata)}")
    known = {*_SAME, *_ACCEPTED, "max_output_tokens", "reasoning", "tools", "tool_choice", "text"}
    known |= {"top_logprobs", "max_tool_calls", "truncation", "stream", "coop"}
    known |= {"previous_response_id", "store", "conversation", "background", "prompt"}
    for key in data:
        if key not in known:
            raise _bad(key, "unknown parameter for /v1/responses", "unknown_parameter")
    if "coop" in data:  # per-request limits, read by the gateway as on chat completions
        body["coop"] = data["coop"]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _refuse_state(data: dict[str, Any], *, continued: bool = False) -> None:
    """Type-check ``store``/``previous_response_id``; refuse what needs state coop has not."""
    previous = data.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise _bad("previous_response_id", f"must be a response id string, got {_kind(previous)}")
    if previous is not None and not continued:
        raise _bad(
            "previous_response_id",
            f"{_STATELESS}; send the whole conversation in 'input' instead",
            "unsupported_parameter",
        )
    store = data.get("store")
    if store is not None and not isinstance(store, bool):
        raise _bad("store", f"must be a boolean, got {_kind(store)}")
    for name, why in (
        ("conversation", "send the whole conversation in 'input' instead"),
        ("prompt", "stored prompt templates need state; send the prompt in 'input'"),
    ):
        if data.get(name) is not None:
            raise _bad(name, f"{_STATELESS}; {why}", "unsupported_parameter")
    if data.get("background") is True:
        raise _bad(
            "background",
            f"{_STATELESS}: a background response could not be fetched later",
            "unsupported_parameter",
        )


def _input_messages(items: list[Any], known_calls: set[str] | None = None) -> list[dict[str, Any]]:
    """Input items → chat messages; ``known_calls``: call ids of the stored conversation."""
    messages: list[dict[str, Any]] = []
    calls: set[str] = set(known_calls or ())
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, f"must be an input item object, got {_kind(item)}")
        kind = item.get("type")
        if (kind is None and "role" in item) or kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            arguments = item.get("arguments")
            for key, value in (("call_id", call_id), ("name", name), ("arguments", arguments)):
                if not isinstance(value, str):
                    raise _bad(f"{where}.{key}", f"required: a string, got {_kind(value)}")
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            calls.add(cast(str, call_id))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _bad(f"{where}.call_id", f"required: a string, got {_kind(call_id)}")
            if call_id not in calls:
                raise _bad(
                    f"{where}.call_id",
                    f"no function_call item with call_id {call_id!r} before it in 'input' "
                    "(or in the response previous_response_id names); send the "
                    "function_call item back with its output",
                )
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(
                    _output_text(p, f"{where}.output[{j}]") for j, p in enumerate(output)
                )
            elif not isinstance(output, str):
                raise _bad(f"{where}.output", f"required: a string, got {_kind(output)}")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # a model's own earlier reasoning: chat upstreams take none back
        elif kind == "item_reference":
            raise _bad(
                f"{where}.type",
                "'item_reference' items are not supported: send the item itself, or "
                "continue a stored response with previous_response_id",
                "unsupported_parameter",
            )
        elif kind in _HOSTED_ITEMS:
            raise _bad(
                f"{where}.type",
                f"{kind!r} items belong to a tool OpenAI hosts, which coop cannot run; "
                "coop accepts message, function_call, function_call_output and reasoning items",
                "unsupported_parameter",
            )
        else:
            raise _bad(
                f"{where}.type",
                f"unknown input item type {str(kind)[:100]!r}; expected message, function_call, "
                "function_call_output or reasoning",
            )
    return messages


def _output_text(part: Any, where: str) -> str:
    if (
        isinstance(part, dict)
        and part.get("type") in ("input_text", "output_text")
        and isinstance(part.get("text"), str)
    ):
        return cast(str, part["text"])
    raise _bad(where, "a function_call_output carries text here (input_text parts)")


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _bad(f"{where}.role", f"expected one of {', '.join(_ROLES)}, got {role!r}"[:200])
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(
            f"{where}.content", f"required: a string or an array of parts, got {_kind(content)}"
        )
    parts = [_part(p, f"{where}.content[{j}]", role) for j, p in enumerate(content)]
    if role != "user":  # assistant, system and developer messages carry text only
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str, role: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad(where, f"must be a content part object, got {_kind(part)}")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        if not isinstance(part.get(key), str):
            raise _bad(f"{where}.{key}", f"required: a string, got {_kind(part.get(key))}")
        return {"type": "text", "text": part[key]}
    if role != "user":
        raise _bad(
            f"{where}.type",
            f"a {role} message carries text only (input_text, output_text), not {kind!r}"[:300],
        )
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            why = (
                "file_id needs OpenAI's Files API, which coop does not serve; "
                if part.get("file_id") is not None
                else ""
            )
            raise _bad(f"{where}.image_url", f"{why}required: a URL or a data: URL")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise _bad(
                f"{where}.file_data",
                "required: the file as a data: URL (file_id and file_url need OpenAI's "
                "Files API, which coop does not serve)",
            )
        file = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise _bad(
        f"{where}.type",
        f"unknown content part type {str(kind)[:100]!r}; expected input_text, input_image "
        "or input_file",
    )


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise _bad(where, f"must be a tool object, got {_kind(tool)}")
    kind = tool.get("type")
    if kind != "function":
        raise _bad(
            f"{where}.type",
            f"{str(kind)[:100]!r} tools are not supported: coop forwards function tools only "
            "(OpenAI's hosted tools run on OpenAI's side)",
            "unsupported_parameter",
        )
    if not isinstance(tool.get("name"), str):
        raise _bad(f"{where}.name", f"required: a string, got {_kind(tool.get('name'))}")
    function = {"name": tool["name"]}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _bad("tool_choice", f"expected none, auto, required or an object, got {choice!r}")
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        if not isinstance(choice.get("name"), str):
            raise _bad("tool_choice.name", "required: the function's name")
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _bad(
        "tool_choice",
        "expected none, auto, required or {'type': 'function', 'name': ...}; "
        f"got {json.dumps(choice)[:100]}",
        "unsupported_parameter",
    )


def _text_options(text: Any, body: dict[str, Any]) -> None:
    if not isinstance(text, dict):
        raise _bad("text", f"must be an object, got {_kind(text)}")
    if text.get("verbosity") is not None:
        body["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        body["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise _bad("text.format.type", f"expected text, json_object or json_schema, got {kind!r}")
    if not isinstance(fmt.get("name"), str):
        raise _bad("text.format.name", "required for json_schema: a string")
    if not isinstance(fmt.get("schema"), dict):
        raise _bad("text.format.schema", "required for json_schema: a JSON schema object")
    schema = {"name": fmt["name"], "schema": fmt["schema"]}
    for key in ("strict", "description"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    body["response_format"] = {"type": "json_schema", "json_schema": schema}


# -- answer: chat → Responses ----------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    wire = to_wire(usage)
    prompt = wire.get("prompt_tokens_details") or {}
    completion = wire.get("completion_tokens_details") or {}
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": int(prompt.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt.get("cache_write_tokens") or 0),
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
        "total_tokens": usage.total_tokens,
    }


def _echo_tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": t["name"],
            "description": t.get("description"),
            "parameters": t.get("parameters"),
            "strict": t.get("strict"),
        }
        for t in data.get("tools") or ()
    ]


def _envelope(
    data: dict[str, Any], rid: str, created: int, model: str, status: str
) -> dict[str, Any]:
    """A response object's fields that echo the request (every field the schema requires)."""
    text = data.get("text") if isinstance(data.get("text"), dict) else {}
    envelope: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": data.get("instructions"),
        "max_output_tokens": data.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": data.get("parallel_tool_calls", True),
        "previous_response_id": data.get("previous_response_id"),
        "reasoning": None,
        "store": data.get("store") is True,
        "temperature": data.get("temperature"),
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "tool_choice": data.get("tool_choice", "auto"),
        "tools": _echo_tools(data),
        "top_p": data.get("top_p"),
        "truncation": "disabled",
        "metadata": data.get("metadata") or {},
    }
    if isinstance(data.get("user"), str):
        envelope["user"] = data["user"]
    return envelope


def _finish(envelope: dict[str, Any], finish_reason: str | None) -> None:
    """Status from the chat finish reason: a cut answer is ``incomplete``, with the reason."""
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
        finish_reason or ""
    )
    if reason is not None:
        envelope["status"] = "incomplete"
        envelope["incomplete_details"] = {"reason": reason}
    else:
        envelope["status"] = "completed"
        envelope["completed_at"] = int(time.time())


def _message_item(
    text: str, status: str = "completed", refusal: str | None = None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _call_item(
    call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": _new_id("fc"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    data: dict[str, Any], result: DispatchResult, rid: str | None = None
) -> dict[str, Any]:
    """The ``response`` object for a finished chat answer (``data``: the Responses body)."""
    response: ChatResponse = result.response
    envelope = _envelope(data, rid or _new_id("resp"), response.created, result.model, "completed")
    output: list[dict[str, Any]] = []
    finish = None
    if response.choices:
        choice = response.choices[0]
        finish = choice.finish_reason
        message = to_wire(choice.message)
        refusal = message.get("refusal")
        if choice.message.text or refusal:
            output.append(_message_item(choice.message.text, refusal=refusal))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            output.append(
                _call_item(
                    call.get("id") or _new_id("call"),
                    function.get("name") or "",
                    function.get("arguments") or "",
                )
            )
    envelope["output"] = output
    usage = _usage(result.usage)
    if usage is not None:
        envelope["usage"] = usage
    _finish(envelope, finish)
    return envelope


class EventStream:
    """Chat stream chunks → the Responses stream events, in the SDK's order.

    ``response.created``, ``response.in_progress``; per output item
    ``response.output_item.added``, then for a message ``response.content_part.added``,
    ``response.output_text.delta``..., ``response.output_text.done``,
    ``response.content_part.done``, and for a function call
    ``response.function_call_arguments.delta``..., ``...done``; each item ends with
    ``response.output_item.done``; the stream ends with ``response.completed``
    (or ``error`` then ``response.failed``).
    """

    def __init__(self, data: dict[str, Any], model: str) -> None:
        self.data = data
        self.envelope = _envelope(data, _new_id("resp"), int(time.time()), model, "in_progress")
        self.output: list[dict[str, Any]] = []
        self.sequence = 0
        self.open: dict[str, Any] | None = None  # the item receiving deltas
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return f"event: {kind}\ndata: {data}\n\n".encode()

    def start(self) -> list[bytes]:
        snapshot = dict(self.envelope)
        return [
            self.event("response.created", response=snapshot),
            self.event("response.in_progress", response=snapshot),
        ]

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        events = self._close()
        self.output.append(item)
        self.open = item
        index = len(self.output) - 1
        events.append(self.event("response.output_item.added", output_index=index, item=dict(item)))
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"] = [part]
            events.append(
                self.event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                )
            )
        return events

    def _close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = self.output.index(item)
        events = []
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(
                self.event("response.output_text.done", **ids, text=part["text"], logprobs=[])
            )
            events.append(self.event("response.content_part.done", **ids, part=part))
        else:
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        events: list[bytes] = []
        if chunk.usage:
            self.usage = cast(Usage, chunk.usage)
        for choice in chunk.choices or ():
            if choice.index:
                continue
            delta = choice.delta
            content = delta.content
            if isinstance(content, str) and content:
                if self.open is None or self.open["type"] != "message":
                    events += self._add(_message_item("", "in_progress"))
                item = cast(dict[str, Any], self.open)
                item["content"][0]["text"] += content
                events.append(
                    self.event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=len(self.output) - 1,
                        content_index=0,
                        delta=content,
                        logprobs=[],
                    )
                )
            for call in delta.tool_calls or ():
                events += self._call_delta(call)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return events

    def _call_delta(self, call: Any) -> list[bytes]:
        events: list[bytes] = []
        index = call.index if isinstance(call.index, int) else len(self.calls)
        function = call.function
        name = getattr(function, "name", None)
        piece = getattr(function, "arguments", None)
        item = self.calls.get(index)
        if item is None:
            call_id = call.id if isinstance(call.id, str) and call.id else _new_id("call")
            item = _call_item(call_id, name if isinstance(name, str) else "", "", "in_progress")
            self.calls[index] = item
            events += self._add(item)
        elif isinstance(name, str) and name and not item["name"]:
            item["name"] = name
        if isinstance(piece, str) and piece:
            item["arguments"] += piece
            if item is self.open:
                events.append(
                    self.event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=self.output.index(item),
                        delta=piece,
                    )
                )
        return events

    def complete(self, model: str) -> list[bytes]:
        events = self._close()
        envelope = self.envelope
        envelope["model"] = model
        envelope["output"] = self.output
        usage = _usage(self.usage)
        if usage is not None:
            envelope["usage"] = usage
        _finish(envelope, self.finish_reason)
        kind = "response.completed" if envelope["status"] == "completed" else "response.incomplete"
        events.append(self.event(kind, response=envelope))
        return events

    def fail(self, exc: BaseException) -> list[bytes]:
        error = error_for(exc)
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        envelope = self.envelope
        envelope["status"] = "failed"
        envelope["output"] = self.output
        envelope["error"] = {"code": code, "message": error.message}
        return [
            self.event("error", code=error.code, message=error.message, param=error.param),
            self.event("response.failed", response=envelope),
        ]


# -- the endpoint ------------------------------------------------------------------------------


def _state(app: GatewayApp, field: str) -> Any:
    """The gateway's state backend, or a 400 naming ``field`` when it has none."""
    state = getattr(app, "state", None)
    if state is None:
        raise _bad(field, f"{_STATELESS}; configure [state] in coop.toml", "unsupported_parameter")
    return state


async def _load(app: GatewayApp, rid: str, field: str) -> dict[str, Any]:
    """The stored response ``rid`` and its conversation; a 404 naming it when there is none."""
    found = await _state(app, field).get(NAMESPACE, rid)
    if not isinstance(found, dict) or found.get("deleted") or "response" not in found:
        raise HTTPError(
            404,
            f"Response with id {rid!r} not found (stored only with store: true, "
            "kept 30 days, gone once deleted).",
            param=field if field != "id" else None,
            code="response_not_found",
        )
    return found


def _assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A response's output items as the chat message they were (text and tool calls)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
            )
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


async def _save(
    app: GatewayApp, response: dict[str, Any], conversation: list[dict[str, Any]]
) -> bool:
    """Store ``response`` with the chat messages that led to it and its own answer.

    A backend that fails here costs the client its stored copy, not the answer it
    paid for: logged, and ``False``.
    """
    answer = _assistant_message(response.get("output") or [])
    messages = [*conversation, *([answer] if answer else [])]
    try:
        await _state(app, "store").put(
            NAMESPACE, response["id"], {"response": response, "messages": messages}, ttl=STORE_TTL
        )
    except StateError as exc:
        log.warning("response %s not stored: %s", response["id"], exc)
        return False
    return True


async def serve_responses(
    app: GatewayApp, receive: Receive, send: Send, ctx: RequestContext
) -> None:
    """``POST /v1/responses``: translate, plan and run as chat completions, translate back;
    with ``store: true`` keep the answer, with ``previous_response_id`` continue one."""
    data = await app._request_json(receive, ctx)
    stream = isinstance(data, dict) and data.get("stream") is True
    previous: list[dict[str, Any]] | None = None
    if isinstance(data, dict):
        rid = data.get("previous_response_id")
        if isinstance(rid, str):
            previous = list((await _load(app, rid, "previous_response_id"))["messages"])
        if data.get("store") is True:
            _state(app, "store")
    body = chat_body(data, stream=stream, previous=previous)
    skip = 1 if body["messages"] and data.get("instructions") else 0  # instructions: not kept
    conversation = [dict(m) for m in body["messages"][skip:]]
    store = data.get("store") is True
    plan = app._plan(ctx, body)
    dispatcher = app.dispatcher
    assert dispatcher is not None
    if ctx.admission is not None:
        await app._admit_tokens(ctx, plan.request)
    if plan.decision is not None:
        ctx.response_headers.append(_route_header(plan.decision))
    if stream:
        await app._guard(
            receive, _stream(app, data, plan, send, ctx, conversation if store else None)
        )
        return
    result = await app._guard(receive, dispatcher.run(plan))
    ctx.model, ctx.deployment = result.model, result.deployment
    ctx.response_headers += _coop_headers(result.model, result.deployment, result.cost)
    response = response_object(data, result)
    if store and not await _save(app, response, conversation):
        response["store"] = False  # say so: it cannot be retrieved or continued
    await send_json(send, 200, response)


async def serve_stored(app: GatewayApp, scope: Any, send: Send, ctx: RequestContext) -> None:
    """``GET /v1/responses/{id}`` (the stored response) and ``DELETE`` (forget it)."""
    rid = scope["path"].removeprefix("/v1/responses/")
    if not rid or "/" in rid:  # input_items and the like are not served
        raise HTTPError(
            404, f"no endpoint {scope['method']} {scope['path'][:200]}", code="not_found"
        )
    found = await _load(app, rid, "id")
    if scope["method"] == "DELETE":
        await _state(app, "id").put(NAMESPACE, rid, {"deleted": True}, ttl=STORE_TTL)
        await send_json(send, 200, {"id": rid, "object": "response.deleted", "deleted": True})
        return
    await send_json(send, 200, found["response"])


async def _stream(
    app: GatewayApp,
    data: dict[str, Any],
    plan: Any,
    send: Send,
    ctx: RequestContext,
    conversation: list[dict[str, Any]] | None = None,
) -> None:
    """The stream as Responses events; headers go out with the dispatcher's first item,
    so an error before it is an ordinary JSON error, one after it ``error`` +
    ``response.failed`` events."""
    dispatcher = app.dispatcher
    assert dispatcher is not None
    events = EventStream(data, plan.target)
    started = False

    def on_start(deployment: str | None, model: str) -> None:
        ctx.model, ctx.deployment = model, deployment

    async def emit(chunks: list[bytes]) -> None:
        nonlocal started
        if not started:
            started = True
            headers = [
                *_SSE_HEADERS,
                *_coop_headers(ctx.model or plan.target, ctx.deployment, None),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            chunks = events.start() + chunks
        if chunks:
            await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})

    items = cast(AsyncGenerator[Any, None], dispatcher.stream(plan, on_start=on_start))
    try:
        async for item in items:
            if isinstance(item, Progress):
                note = b": " + item.text.replace("\n", " ").encode() + b"\n\n"
                await emit([note])
            else:
                await emit(events.feed(item))
    except Exception as exc:
        if not started:
            raise
        ctx.status = error_for(exc).status
        await send(
            {"type": "http.response.body", "body": b"".join(events.fail(exc)), "more_body": True}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    finally:
        await items.aclose()
    completed = events.complete(ctx.model or plan.target)
    if conversation is not None:  # store: true; kept before the client hears it is done
        await _save(app, events.envelope, conversation)
    await emit(completed)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
