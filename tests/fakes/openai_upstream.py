"""FakeOpenAI: an OpenAI-compatible upstream (OpenAI, DeepSeek, vLLM, Ollama speak this).

It answers deterministically so tests can assert on content and usage, and speaks the real
wire shapes (the schemas in OpenAI's OpenAPI description) so provider code is exercised as in
production.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Mapping
from json.encoder import encode_basestring as _quote
from typing import Any, ClassVar

from .http import (
    _NO_JSON,
    Answer,
    FakeUpstream,
    JsonReply,
    Reply,
    Request,
    StreamReply,
    _encode,
    count_tokens,
    dumps,
)

__all__ = ["FakeOpenAI"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_DEFAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to sample from this model."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    408: ("server_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_DONE = b"data: [DONE]\n\n"
_ECHO = Answer()  # marker: no scripted answer, echo the request
# Non-text parts echo as FakeAnthropic echoes their translations (a file becomes a document).
_PLACEHOLDERS = {"image_url": "[image]", "file": "[document]", "input_audio": "[audio]"}


def _usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _usage_json(prompt: int, completion: int, reasoning: int) -> str:
    """`_usage(...)` as JSON, assembled by hand for speed (see `_chat`)."""
    return (
        f'{{"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion},'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
        f'"completion_tokens_details":{{"reasoning_tokens":{reasoning},'
        '"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
    )


def _sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def text_of(content: Any) -> str:
    """Flatten OpenAI message content (a string or a list of parts) to text for echo and usage."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                parts.append(str(part.get("text", "")))
            elif kind in _PLACEHOLDERS:
                parts.append(_PLACEHOLDERS[kind])
    return " ".join(parts)


def echo_text(messages: list[Any]) -> str:
    """The default answer: "echo: " + the last user message, or the trailing tool results.

    Trailing tool messages render as `[tool_result <tool_call_id>] <content>`, exactly as
    FakeAnthropic renders tool_result blocks, so translation tests can compare the two.
    """
    msgs = [m for m in messages if isinstance(m, dict)]
    if msgs and msgs[-1].get("role") == "tool":
        tail: list[dict[str, Any]] = []
        for m in reversed(msgs):
            if m.get("role") != "tool":
                break
            tail.append(m)
        rendered = [
            f"[tool_result {m.get('tool_call_id')}] {text_of(m.get('content'))}"
            for m in reversed(tail)
        ]
        return "echo: " + " ".join(rendered)
    for m in reversed(msgs):
        if m.get("role") == "user":
            return "echo: " + text_of(m.get("content"))
    return "echo: "


class FakeOpenAI(FakeUpstream):
    """An OpenAI-compatible upstream on loopback; `base_url` ends in `/v1` as SDKs expect.

    Serves `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`,
    `GET /v1/models[/{id}]`
    (also without the `/v1`, as DeepSeek allows).
    """

    provider: ClassVar[str] = "openai"
    default_models: ClassVar[tuple[str, ...]] = ("gpt-4o-mini", "gpt-4o")
    api_prefix: ClassVar[str] = "/v1"

    # auth and errors ------------------------------------------------------------------------
    def _api_key(self, req: Request) -> str | None:
        auth = req.headers.get("authorization")
        if auth is None:
            return None
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _auth_error(self, key: str | None) -> JsonReply:
        if not key:
            return self._error(401, _NO_KEY, code=None)
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        return self._error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    _UNSET: ClassVar[Any] = object()

    def _error(
        self,
        status: int,
        message: str | None = None,
        *,
        type: str | None = None,
        code: Any = _UNSET,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JsonReply:
        d_type, d_code, d_msg = _DEFAULT_ERRORS.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                f"Error {status}.",
            ),
        )
        err = {
            "message": message if message is not None else d_msg,
            "type": type or d_type,
            "param": param,
            "code": d_code if code is self._UNSET else code,
        }
        hdrs = {"x-request-id": self.new_id("req_"), **(headers or {})}
        return JsonReply(status, {"error": err}, hdrs)

    def _context_length_error(self) -> JsonReply:
        return self._error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )

    def _error_event(self, error: Mapping[str, Any] | None) -> bytes:
        err = dict(error) if error is not None else self._error(500).body["error"]
        return _sse({"error": err})

    def _malformed_event(self) -> bytes:
        return b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":{"content":"bro\n\n'

    # routing --------------------------------------------------------------------------------
    def _route(self, req: Request, parsed: Any) -> Reply:
        path = req.path[3:] if req.path.startswith("/v1/") else req.path
        if req.method == "POST" and path == "/chat/completions":
            return self._chat(parsed)
        if req.method == "POST" and path == "/completions":
            return self._legacy(parsed)
        if req.method == "POST" and path == "/embeddings":
            return self._embeddings(parsed)
        if req.method == "GET" and path == "/models":
            data = [self._model_obj(m) for m in self.models]
            return JsonReply(200, {"object": "list", "data": data})
        if req.method == "GET" and path.startswith("/models/"):
            mid = path[len("/models/") :]
            if mid in self.models:
                return JsonReply(200, self._model_obj(mid))
            return self._model_not_found(mid)
        return self._error(404, f"Invalid URL ({req.method} {req.path})", code=None)

    def _embeddings(self, parsed: Any) -> Reply:
        """Deterministic vectors (a hash of the model and the input; ``dimensions``, else 8),
        usage by the fakes' tokenizer (token arrays count their length)."""
        bad = self._validate(parsed, "input")
        if bad is not None:
            return bad
        items = parsed["input"]
        if isinstance(items, str) or (items and all(isinstance(t, int) for t in items)):
            items = [items]
        size = parsed.get("dimensions") or 8
        data, tokens = [], 0
        for i, item in enumerate(items):
            tokens += len(item) if isinstance(item, list) else count_tokens(item)
            digest = hashlib.sha256(f"{parsed['model']}:{item!r}".encode()).digest() * (
                size // 32 + 1
            )
            vector = [(b - 127.5) / 127.5 for b in digest[:size]]
            embedding: Any = vector
            if parsed.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JsonReply(
            200, {"object": "list", "data": data, "model": parsed["model"], "usage": usage}
        )

    @staticmethod
    def _model_obj(mid: str) -> dict[str, Any]:
        return {"id": mid, "object": "model", "created": 1700000000, "owned_by": "fake"}

    def _model_not_found(self, model: str) -> JsonReply:
        return self._error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def _validate(self, parsed: Any, field: str) -> JsonReply | None:
        if parsed is _NO_JSON or not isinstance(parsed, dict):
            return self._error(400, _BAD_JSON, code=None)
        model = parsed.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", code=None)
        if field not in parsed:
            return self._error(
                400,
                f"Missing required parameter: '{field}'.",
                param=field,
                code="missing_required_parameter",
            )
        if field == "messages":
            msgs = parsed["messages"]
            if not isinstance(msgs, list):
                return self._error(
                    400, "Invalid type for 'messages'.", param="messages", code="invalid_type"
                )
            if not msgs:
                return self._error(400, "[] is too short - 'messages'", param="messages", code=None)
        if self.strict_models and model not in self.models:
            return self._model_not_found(model)
        return None

    @staticmethod
    def _stops(parsed: dict[str, Any]) -> list[str]:
        stop = parsed.get("stop")
        if isinstance(stop, str):
            return [stop]
        return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []

    @staticmethod
    def _max_tokens(parsed: dict[str, Any]) -> int | None:
        for k in ("max_completion_tokens", "max_tokens"):
            v = parsed.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None

    # chat completions ---------------------------------------------------------------------------
    def _chat(self, parsed: Any) -> Reply:
        bad = self._validate(parsed, "messages")
        if bad is not None:
            return bad
        model: str = parsed["model"]
        messages: list[Any] = parsed["messages"]
        answer = self._next_answer(model, parsed) or _ECHO
        content = echo_text(messages) if answer is _ECHO else answer.content
        tool_calls = answer.tool_calls
        reasoning = answer.reasoning
        if content is None and not tool_calls:
            content = ""
        finish = "tool_calls" if tool_calls else "stop"
        max_tokens = self._max_tokens(parsed)
        if content and (max_tokens is not None or "stop" in parsed):
            content, _, capped = self.truncate(content, max_tokens, self._stops(parsed))
            if capped:
                finish = "length"
        if answer.finish_reason:
            finish = _FINISH.get(answer.finish_reason, answer.finish_reason)
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = 0
            for m in messages:
                if isinstance(m, dict):
                    prompt_tokens += count_tokens(text_of(m.get("content")))
        reasoning_tokens = count_tokens(reasoning) if reasoning else 0
        completion_tokens = answer.completion_tokens
        if completion_tokens is None:
            completion_tokens = count_tokens(content) if content else 0
            completion_tokens += reasoning_tokens
            for tc in tool_calls:
                completion_tokens += count_tokens(tc.arguments_json) + 1
        cid = self.new_id("chatcmpl-")
        created = int(time.time())
        calls = [
            {
                "id": tc.id or self.new_id("call_"),
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments_json},
            }
            for tc in tool_calls
        ]
        headers = {"x-request-id": self.new_id("req_")}
        if parsed.get("stream") is True:
            opts = parsed.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            usage = _usage(prompt_tokens, completion_tokens, reasoning_tokens)
            events = self._chat_events(
                cid, created, model, content, reasoning, calls, finish, usage, include_usage
            )
            return StreamReply(events, headers)
        if calls or reasoning is not None:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": content,
                "refusal": None,
                "annotations": [],
            }
            if calls:
                message["tool_calls"] = calls
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            msg_json = _encode(message)
        else:
            text = "null" if content is None else _quote(content)
            msg_json = f'{{"role":"assistant","content":{text},"refusal":null,"annotations":[]}}'
        # Hand-assembled around the dynamic parts: json-encoding the whole dict costs as much
        # as everything else on this path, and benchmarks lean on it. A test checks the result
        # against the OpenAPI schema.
        body = (
            f'{{"id":"{cid}","object":"chat.completion","created":{created},'
            f'"model":{_quote(model)},"choices":[{{"index":0,"message":{msg_json},'
            f'"logprobs":null,"finish_reason":{_quote(finish)}}}],'
            f'"usage":{_usage_json(prompt_tokens, completion_tokens, reasoning_tokens)}}}'
        )
        return JsonReply(200, body.encode(), headers)

    def _chat_events(
        self,
        cid: str,
        created: int,
        model: str,
        content: str | None,
        reasoning: str | None,
        tool_calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> list[bytes]:
        base: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        first: dict[str, Any] = {
            "role": "assistant",
            "content": "" if content is not None else None,
        }
        first["refusal"] = None
        events = [chunk(first)]
        if reasoning:
            events.extend(
                chunk({"content": None, "reasoning_content": p}) for p in self.split_text(reasoning)
            )
        if content:
            extra = {"reasoning_content": None} if reasoning else {}
            events.extend(chunk({"content": p, **extra}) for p in self.split_text(content))
        for i, tc in enumerate(tool_calls):
            fn = tc["function"]
            head = {
                "index": i,
                "id": tc["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            events.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                for piece in self.split_json(fn["arguments"])
            )
        events.append(chunk({}, finish))
        if include_usage:
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(_DONE)
        return events

    # legacy completions -------------------------------------------------------------------------
    def _legacy(self, parsed: Any) -> Reply:
        bad = self._validate(parsed, "prompt")
        if bad is not None:
            return bad
        model: str = parsed["model"]
        prompt = parsed["prompt"]
        prompts = (
            [p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else [str(prompt)]
        )
        prompts = prompts or [""]
        answer = self._next_answer(model, parsed)
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for i, p in enumerate(prompts):
            text = (answer.content or "") if answer is not None else "echo: " + p
            text, _, capped = self.truncate(text, self._max_tokens(parsed), self._stops(parsed))
            completion_tokens += count_tokens(text)
            finish = "length" if capped else "stop"
            choices.append({"text": text, "index": i, "logprobs": None, "finish_reason": finish})
        texts = [str(c["text"]) for c in choices]
        prompt_tokens = sum(count_tokens(p) for p in prompts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {
            "id": self.new_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        headers = {"x-request-id": self.new_id("req_")}
        if parsed.get("stream") is not True:
            return JsonReply(200, {**base, "choices": choices, "usage": usage}, headers)
        events = []
        for c, text in zip(choices, texts, strict=True):
            for piece in self.split_text(text):
                ch = {"text": piece, "index": c["index"], "logprobs": None, "finish_reason": None}
                events.append(_sse({**base, "choices": [ch]}))
            end = {
                "text": "",
                "index": c["index"],
                "logprobs": None,
                "finish_reason": c["finish_reason"],
            }
            events.append(_sse({**base, "choices": [end]}))
        opts = parsed.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage") is True:
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(_DONE)
        return StreamReply(events, headers)
