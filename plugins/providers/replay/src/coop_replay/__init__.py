"""The ``replay`` provider: answers from recordings, keyed by model and prompt.

Recordings are JSON lines ``{"model", "prompt" | "messages", "text" | "response"}``.
The key is the upstream model id plus the last user message with whitespace
normalised, so a recording made through the gateway replays from the CLI too.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from coop import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ConfigError,
    Provider,
    ProviderCall,
    UpstreamNotFoundError,
    estimate_messages_tokens,
    estimate_tokens,
    from_wire,
    hookimpl,
    read_jsonl,
    to_wire,
)

__all__ = ["ReplayProvider", "prompt_key", "record_line"]


def _last_user(messages: Iterable[Mapping[str, Any]]) -> str:
    for message in reversed(list(messages)):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
            return str(content or "")
    return ""


def prompt_key(model: str, messages: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    return model, re.sub(r"\s+", " ", _last_user(messages)).strip()


def record_line(model: str, messages: list[dict[str, Any]], text: str) -> str:
    """One recording, as ``coop ask/cooperate --record`` writes it."""
    return json.dumps(
        {"model": model, "prompt": _last_user(messages), "text": text}, ensure_ascii=False
    )


class ReplayProvider(Provider):
    """Serves recorded answers; ``options.file`` and/or ``options.records``."""

    name = "replay"
    requires_api_key = False

    def __init__(self, endpoint: Any, http: Any = None) -> None:
        super().__init__(endpoint, http)
        self._answers: dict[tuple[str, str], str] = {}
        options = getattr(endpoint, "options", None) or {}
        if options.get("file"):
            self.load_file(Path(options["file"]))
        for record in options.get("records") or ():
            self.add(record)

    def add(self, record: Mapping[str, Any], *, where: str = "records") -> None:
        model = record.get("model")
        if not isinstance(model, str):
            raise ConfigError("a recording needs 'model'", key=where)
        messages = record.get("messages") or [{"role": "user", "content": record.get("prompt", "")}]
        if "text" in record:
            text = record["text"]
        elif isinstance(record.get("response"), Mapping):
            text = from_wire(ChatResponse, dict(record["response"])).text
        else:
            raise ConfigError("a recording needs 'text' or 'response'", key=where)
        self._answers[prompt_key(model, messages)] = str(text)

    def load_file(self, path: Path) -> None:
        name = getattr(self.endpoint, "name", "?")
        try:
            records = read_jsonl(path)
        except ConfigError as exc:  # the file itself: say which option named it
            raise ConfigError(
                f"cannot read recordings: {exc.reason}",
                path=str(path),
                key=f"endpoints.{name}.options.file",
            ) from None
        for number, record in records:
            self.add(record, where=f"{path}:{number}")

    def _answer(self, request: ChatRequest, call: ProviderCall) -> tuple[str, list[dict[str, Any]]]:
        messages = to_wire(request)["messages"]
        key = prompt_key(call.model, messages)
        if key not in self._answers:
            raise UpstreamNotFoundError(
                f"no recording for model {call.model!r} and prompt {key[1][:80]!r}",
                status=404,
                provider=self.name,
            )
        return self._answers[key], messages

    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        text, messages = self._answer(request, call)
        prompt = estimate_messages_tokens(messages)
        completion = estimate_tokens(text)
        return from_wire(
            ChatResponse,
            {
                "id": f"chatcmpl-replay{uuid.uuid4().hex[:16]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )

    async def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        text, _ = self._answer(request, call)
        ident, created = f"chatcmpl-replay{uuid.uuid4().hex[:16]}", int(time.time())
        for delta, finish in (
            ({"role": "assistant", "content": ""}, None),
            ({"content": text}, None),
            ({}, "stop"),
        ):
            yield from_wire(
                ChatChunk,
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": call.model,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                    ],
                },
            )

    async def list_models(self, call: ProviderCall) -> list[str]:
        return sorted({model for model, _ in self._answers})


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(ReplayProvider)
