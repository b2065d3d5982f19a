"""FakeAnthropic: Anthropic's native Messages API, for testing the OpenAI ⇄ Anthropic translation.

It validates requests the way the real API does where translation bugs show up (a `system`
role in `messages`, an OpenAI `image_url` part, a `tool_result` without its `tool_use`,
temperature above 1, a missing `max_tokens`), and echoes what it understood.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .http import (
    _NO_JSON,
    Answer,
    FakeUpstream,
    JsonReply,
    Reply,
    Request,
    StreamReply,
    count_tokens,
    dumps,
)

__all__ = ["FakeAnthropic"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_BLOCKS = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
}


def _event(name: str, obj: Any) -> bytes:
    data = dumps(obj)
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def text_of(content: Any) -> str:
    """Flatten Anthropic content (string or blocks) to text for echo and token counts.

    A tool_result renders as `[tool_result <tool_use_id>] <content>` (with ` error` after the
    id when `is_error`), the same text FakeOpenAI gives a tool message.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for b in content:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            parts.append(str(b.get("text", "")))
        elif kind in ("image", "document"):
            parts.append(f"[{kind}]")
        elif kind == "tool_result":
            err = " error" if b.get("is_error") else ""
            parts.append(
                f"[tool_result {b.get('tool_use_id')}{err}] {text_of(b.get('content', ''))}"
            )
        elif kind == "tool_use":
            parts.append(f"[tool_use {b.get('name')}] {json.dumps(b.get('input'))}")
    return " ".join(parts)


class FakeAnthropic(FakeUpstream):
    """An Anthropic Messages API upstream on loopback; `base_url` is the root, as the SDK expects.

    Serves `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models[/{id}]`.
    Requires `anthropic-version`; the key travels in `x-api-key`.
    """

    provider: ClassVar[str] = "anthropic"
    #: When set, `POST /v1/messages` (once validated) answers with what it returns for the
    #: parsed body: exact bytes or events, for testing a gateway that relays them as is.
    reply_fn: Callable[[dict[str, Any]], Reply] | None = None
    default_models: ClassVar[tuple[str, ...]] = ("claude-sonnet-4-5", "claude-haiku-4-5")
    api_prefix: ClassVar[str] = ""

    # auth and errors ------------------------------------------------------------------------
    def _api_key(self, req: Request) -> str | None:
        key = req.headers.get("x-api-key")
        if key is not None:
            return key
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token else None

    def _auth_error(self, key: str | None) -> JsonReply:
        return self._error(401, "x-api-key header is required" if not key else "invalid x-api-key")

    def _error(
        self,
        status: int,
        message: str | None = None,
        *,
        type: str | None = None,
        code: Any = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JsonReply:
        d_type, d_msg = _DEFAULT_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}")
        )
        rid = self.new_id("req_")
        body = {
            "type": "error",
            "error": {"type": type or d_type, "message": message if message is not None else d_msg},
            "request_id": rid,
        }
        return JsonReply(status, body, {"request-id": rid, **(headers or {})})

    def _context_length_error(self) -> JsonReply:
        return self._error(400, "prompt is too long: 210000 tokens > 200000 maximum")

    def _error_event(self, error: Mapping[str, Any] | None) -> bytes:
        err = (
            dict(error)
            if error is not None
            else {"type": "overloaded_error", "message": "Overloaded"}
        )
        return _event("error", {"type": "error", "error": err})

    def _malformed_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bro\n\n'

    # routing --------------------------------------------------------------------------------
    def _route(self, req: Request, parsed: Any) -> Reply:
        if "anthropic-version" not in req.headers:
            return self._error(400, "anthropic-version: header is required")
        path = req.path
        if req.method == "POST" and path == "/v1/messages":
            return self._messages(parsed)
        if req.method == "POST" and path == "/v1/messages/count_tokens":
            bad = self._validate(parsed, count_only=True)
            if bad is not None:
                return bad
            return JsonReply(200, {"input_tokens": self._input_tokens(parsed)})
        if req.method == "GET" and path == "/v1/models":
            data = [self._model_obj(m) for m in self.models]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return JsonReply(
                200, {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )
        if req.method == "GET" and path.startswith("/v1/models/"):
            mid = path[len("/v1/models/") :]
            if mid in self.models:
                return JsonReply(200, self._model_obj(mid))
            return self._error(404, f"model: {mid}")
        return self._error(404, "Not Found")

    @staticmethod
    def _model_obj(mid: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": mid,
            "display_name": mid,
            "created_at": "2025-01-01T00:00:00Z",
        }

    def _validate(self, parsed: Any, count_only: bool = False) -> JsonReply | None:
        """The checks where translation bugs surface, with the real API's messages."""
        if parsed is _NO_JSON or not isinstance(parsed, dict):
            return self._error(400, "There was an error parsing the body of your request as JSON.")
        if not isinstance(parsed.get("model"), str):
            return self._error(400, "model: Field required")
        if not count_only:
            mt = parsed.get("max_tokens")
            if "max_tokens" not in parsed:
                return self._error(400, "max_tokens: Field required")
            if not isinstance(mt, int) or isinstance(mt, bool):
                return self._error(400, "max_tokens: Input should be a valid integer")
            if mt < 1:
                return self._error(400, "max_tokens: Input should be greater than or equal to 1")
        msgs = parsed.get("messages")
        if "messages" not in parsed:
            return self._error(400, "messages: Field required")
        if not isinstance(msgs, list):
            return self._error(400, "messages: Input should be a valid list")
        if not msgs:
            return self._error(400, "messages: at least one message is required")
        system = parsed.get("system")
        if (
            system is not None
            and not isinstance(system, str)
            and (
                not isinstance(system, list)
                or any(not isinstance(b, dict) or b.get("type") != "text" for b in system)
            )
        ):
            return self._error(
                400, "system: Input should be a valid string or a list of text blocks"
            )
        bad = self._validate_messages(msgs)
        if bad is not None:
            return bad
        temp = parsed.get("temperature")
        if temp is not None and (not isinstance(temp, int | float) or not 0 <= temp <= 1):
            return self._error(400, "temperature: Input should be less than or equal to 1")
        stops = parsed.get("stop_sequences")
        if stops is not None and (
            not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
        ):
            return self._error(400, "stop_sequences: Input should be a valid list of strings")
        tools = parsed.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                return self._error(400, "tools: Input should be a valid list")
            for i, t in enumerate(tools):
                if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                    return self._error(400, f"tools.{i}.name: Field required")
                if "type" not in t and not isinstance(t.get("input_schema"), dict):
                    return self._error(400, f"tools.{i}.custom.input_schema: Field required")
        if self.strict_models and parsed["model"] not in self.models:
            return self._error(404, f"model: {parsed['model']}")
        return None

    def _validate_messages(self, msgs: list[Any]) -> JsonReply | None:
        prev_tool_uses: set[str] = set()
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                return self._error(400, f"messages.{i}: Input should be a valid dictionary")
            role = m.get("role")
            if role == "system":
                return self._error(
                    400,
                    'messages: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.',
                )
            if role not in ("user", "assistant"):
                return self._error(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = m.get("content")
            if isinstance(content, str):
                blocks: list[Any] = []
            elif isinstance(content, list):
                blocks = content
            else:
                return self._error(400, f"messages.{i}.content: Input should be a valid list")
            uses: set[str] = set()
            results: set[str] = set()
            for j, b in enumerate(blocks):
                kind = b.get("type") if isinstance(b, dict) else None
                if kind not in _BLOCKS:
                    return self._error(
                        400,
                        f"messages.{i}.content.{j}: Input tag '{kind}' found using 'type' does "
                        "not match any of the expected tags: "
                        + ", ".join(f"'{t}'" for t in sorted(_BLOCKS)),
                    )
                assert isinstance(b, dict)
                if kind == "text" and not isinstance(b.get("text"), str):
                    return self._error(400, f"messages.{i}.content.{j}.text.text: Field required")
                if kind == "image" and not isinstance(b.get("source"), dict):
                    return self._error(
                        400, f"messages.{i}.content.{j}.image.source: Field required"
                    )
                if kind == "tool_use":
                    if role != "assistant":
                        return self._error(
                            400,
                            f"messages.{i}.content.{j}: tool_use blocks are only allowed in assistant messages",
                        )
                    if not isinstance(b.get("id"), str) or not isinstance(b.get("name"), str):
                        return self._error(
                            400, f"messages.{i}.content.{j}.tool_use.id: Field required"
                        )
                    if not isinstance(b.get("input"), dict):
                        return self._error(
                            400,
                            f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary",
                        )
                    uses.add(b["id"])
                if kind == "tool_result":
                    tid = b.get("tool_use_id")
                    if not isinstance(tid, str):
                        return self._error(
                            400, f"messages.{i}.content.{j}.tool_result.tool_use_id: Field required"
                        )
                    if tid not in prev_tool_uses:
                        return self._error(
                            400,
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {tid}. Each `tool_result` block must have a "
                            "corresponding `tool_use` block in the previous message.",
                        )
                    results.add(tid)
            if prev_tool_uses and not prev_tool_uses <= results:
                missing = ", ".join(sorted(prev_tool_uses - results))
                return self._error(
                    400,
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {missing}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message.",
                )
            prev_tool_uses = uses
        return None

    @staticmethod
    def _input_tokens(parsed: dict[str, Any]) -> int:
        system = parsed.get("system")
        n = count_tokens(text_of(system)) if system is not None else 0
        return n + sum(
            count_tokens(text_of(m.get("content")))
            for m in parsed["messages"]
            if isinstance(m, dict)
        )

    # messages -------------------------------------------------------------------------------
    def _messages(self, parsed: Any) -> Reply:
        bad = self._validate(parsed)
        if bad is not None:
            return bad
        if self.reply_fn is not None:
            return self.reply_fn(parsed)
        model: str = parsed["model"]
        msgs: list[dict[str, Any]] = parsed["messages"]
        last_user = next((m for m in reversed(msgs) if m.get("role") == "user"), None)
        echo = "echo: " + (text_of(last_user.get("content")) if last_user else "")
        answer = self._next_answer(model, parsed) or Answer(content=echo)
        text = answer.content
        stop_reason = "tool_use" if answer.tool_calls else "end_turn"
        stop_seq: str | None = None
        if text:
            text, stop_seq, capped = self.truncate(
                text, parsed["max_tokens"], parsed.get("stop_sequences") or []
            )
            if capped:
                stop_reason = "max_tokens"
            elif stop_seq is not None and not answer.tool_calls:
                stop_reason = "stop_sequence"
        if answer.finish_reason:
            stop_reason = _STOP.get(answer.finish_reason, answer.finish_reason)
        content: list[dict[str, Any]] = []
        if answer.reasoning is not None:
            content.append(
                {"type": "thinking", "thinking": answer.reasoning, "signature": "fake-signature"}
            )
        if text or not answer.tool_calls:
            content.append({"type": "text", "text": text or ""})
        for tc in answer.tool_calls:
            args = json.loads(tc.arguments) if isinstance(tc.arguments, str) else dict(tc.arguments)
            content.append(
                {
                    "type": "tool_use",
                    "id": tc.id or self.new_id("toolu_"),
                    "name": tc.name,
                    "input": args,
                }
            )
        input_tokens = (
            answer.prompt_tokens if answer.prompt_tokens is not None else self._input_tokens(parsed)
        )
        output_tokens = answer.completion_tokens
        if output_tokens is None:
            output_tokens = (
                count_tokens(text or "")
                + count_tokens(answer.reasoning or "")
                + sum(count_tokens(tc.arguments_json) + 1 for tc in answer.tool_calls)
            )
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        rid = self.new_id("req_")
        msg = {
            "id": self.new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_seq if stop_reason == "stop_sequence" else None,
            "usage": usage,
        }
        if parsed.get("stream") is True:
            return StreamReply(self._events(msg), {"request-id": rid})
        return JsonReply(200, msg, {"request-id": rid})

    def _events(self, msg: dict[str, Any]) -> list[bytes]:
        """The real event sequence: message_start, per block start/ping/deltas/stop, message_delta, message_stop."""
        usage = msg["usage"]
        start = {
            **msg,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events = [_event("message_start", {"type": "message_start", "message": start})]
        for i, block in enumerate(msg["content"]):
            kind = block["type"]
            first: dict[str, Any]
            if kind == "text":
                first = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in self.split_text(block["text"])]
            elif kind == "thinking":
                first = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": p}
                    for p in self.split_text(block["thinking"])
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                raw = dumps(block["input"]).decode()
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [
                    {"type": "input_json_delta", "partial_json": p} for p in self.split_json(raw)
                ]
            events.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": first},
                )
            )
            if i == 0:
                events.append(_event("ping", {"type": "ping"}))
            events.extend(
                _event(
                    "content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}
                )
                for d in deltas
            )
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": i}))
        delta = {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]}
        events.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events
