"""The ``simulated`` provider: in-process models so coop runs with no keys and no network.

Answers are deterministic and labelled ``[simulated <model>]`` so nobody mistakes
them for a real model's. Arithmetic found in the prompt is evaluated, which
gives cooperations (voting) something real to agree on. Latency, streaming
pace, failure rate and context window come from the endpoint's ``options`` and
can be set per model under ``options.models.<upstream id>``.
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from coop import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContextWindowExceededError,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    Preset,
    Provider,
    ProviderCall,
    UpstreamUnavailableError,
    estimate_messages_tokens,
    estimate_tokens,
    from_wire,
    hookimpl,
    to_wire,
)

__all__ = ["SimulatedProvider"]

PRESET = Preset(
    name="simulated",
    base_url="simulated://local",
    description="Offline simulated models (no keys, deterministic answers).",
    models=(
        ModelInfo("sim-light", 32768, 0.1, 0.2, tier="light", alias="sim-light"),
        ModelInfo("sim-reasoning", 65536, 1.0, 4.0, tier="reasoning", alias="sim-reasoning"),
        ModelInfo("sim-large", 131072, 3.0, 12.0, tier="complex", alias="sim-large"),
    ),
)

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_EXPR = re.compile(r"[-+(]*\d[\d.\s+\-*/×÷^()]*[\d)]")


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 12:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("not arithmetic")


def arithmetic_answer(text: str) -> str | None:
    """The value of the last arithmetic expression in ``text`` (``"12 * 7"`` → ``"84"``)."""
    for match in reversed(_EXPR.findall(text[-4000:])):
        expr = match.replace("×", "*").replace("÷", "/").replace("^", "**").strip()
        if not re.search(r"\d\s*[-+*/]", expr):
            continue
        try:
            value = _evaluate(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{value:.6g}" if isinstance(value, float) else str(value)
    return None


def _last_user_text(messages: list[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


class SimulatedProvider(Provider):
    """Deterministic in-process models with configurable latency and faults."""

    name = "simulated"
    preset = PRESET
    requires_api_key = False

    def __init__(self, endpoint: Any, http: Any = None) -> None:
        super().__init__(endpoint, http)
        self._calls = 0

    def _option(self, model: str, key: str, default: Any) -> Any:
        options = getattr(self.endpoint, "options", None) or {}
        per_model = (options.get("models") or {}).get(model) or {}
        return per_model.get(key, options.get(key, default))

    def _check(self, model: str, messages: list[Mapping[str, Any]]) -> int:
        prompt_tokens = estimate_messages_tokens(messages)
        info = PRESET.model(model)
        window = self._option(model, "context_window", info.context_window if info else 32768)
        if prompt_tokens > window:
            raise ContextWindowExceededError(
                f"prompt of ~{prompt_tokens} tokens exceeds {model}'s context window of {window}",
                status=400,
                provider=self.name,
            )
        self._calls += 1
        rate = float(self._option(model, "failure_rate", 0.0))
        if rate > 0:
            seed = self._option(model, "seed", 0)
            digest = hashlib.blake2b(f"{seed}:{self._calls}".encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") / 2**64 < rate:
                raise UpstreamUnavailableError(
                    "simulated failure (failure_rate)", status=503, provider=self.name
                )
        return prompt_tokens

    def answer(self, model: str, messages: list[Mapping[str, Any]]) -> str:
        """The deterministic answer ``model`` gives to ``messages``."""
        question = _last_user_text(messages).strip()
        label = f"[simulated {model}]"
        if not question:
            return f"{label} Hello! This is a simulated model; configure a real endpoint to get real answers."
        value = arithmetic_answer(question)
        if value is not None:
            return f"{label} Working it out step by step gives {value}.\nA: {value}"
        words = question.split()
        gist = " ".join(words[:24]) + (" ..." if len(words) > 24 else "")
        if not words or len(gist) > 200:
            gist = question[:120] + ("..." if len(question) > 120 else "")
        return f"{label} A simulated answer to: {gist}"

    async def chat(self, request: ChatRequest, call: ProviderCall) -> ChatResponse:
        messages = to_wire(request)["messages"]
        prompt_tokens = self._check(call.model, messages)
        await anyio.sleep(float(self._option(call.model, "latency", 0.0)))
        text = self._limit(request, self.answer(call.model, messages))
        completion_tokens = estimate_tokens(text)
        n = request.n if isinstance(request.n, int) else 1
        return from_wire(
            ChatResponse,
            {
                "id": f"chatcmpl-sim{uuid.uuid4().hex[:20]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for i in range(max(1, n))
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens * max(1, n),
                    "total_tokens": prompt_tokens + completion_tokens * max(1, n),
                },
                "system_fingerprint": "coop-simulated",
            },
        )

    def _limit(self, request: ChatRequest, text: str) -> str:
        limit = request.max_completion_tokens
        if not isinstance(limit, int):
            limit = request.max_tokens
        if isinstance(limit, int) and estimate_tokens(text) > limit:
            return text[: max(1, limit * 4)]
        return text

    async def stream(self, request: ChatRequest, call: ProviderCall) -> AsyncIterator[ChatChunk]:
        messages = to_wire(request)["messages"]
        prompt_tokens = self._check(call.model, messages)
        await anyio.sleep(float(self._option(call.model, "latency", 0.0)))
        delay = float(self._option(call.model, "chunk_delay", 0.0))
        text = self._limit(request, self.answer(call.model, messages))
        ident = f"chatcmpl-sim{uuid.uuid4().hex[:20]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> ChatChunk:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": call.model,
                "system_fingerprint": "coop-simulated",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                if usage is None
                else [],
            }
            if usage is not None:
                data["usage"] = usage
            return from_wire(ChatChunk, data)

        yield chunk({"role": "assistant", "content": ""})
        pieces = re.findall(r"\S+\s*|\s+", text)
        for piece in pieces:
            if delay:
                await anyio.sleep(delay)
            yield chunk({"content": piece})
        yield chunk({}, finish="stop")
        options = request.stream_options if isinstance(request.stream_options, dict) else {}
        if options.get("include_usage"):
            completion_tokens = estimate_tokens(text)
            yield chunk(
                {},
                usage={
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            )

    async def embed(self, request: EmbeddingRequest, call: ProviderCall) -> EmbeddingResponse:
        """Deterministic unit vectors seeded by a hash of the model and each input
        (``dimensions`` honoured, 256 by default): equal inputs, equal vectors."""
        items = request.inputs()
        self._check(call.model, [])
        await anyio.sleep(float(self._option(call.model, "latency", 0.0)))
        size = request.dimensions or int(self._option(call.model, "dimensions", 256))
        vectors = [_unit_vector(f"{call.model}\0{item!r}", size) for item in items]
        tokens = sum(len(i) if isinstance(i, list) else max(1, estimate_tokens(i)) for i in items)
        return EmbeddingResponse(vectors=vectors, model=call.model, prompt_tokens=tokens)

    async def list_models(self, call: ProviderCall) -> list[str]:
        return [m.id for m in PRESET.models]


def _unit_vector(seed: str, size: int) -> list[float]:
    """``size`` floats from blake2b in counter mode, scaled to length 1 (float32-exact)."""
    values: list[float] = []
    counter = 0
    while len(values) < size:
        block = hashlib.blake2b(f"{counter}:{seed}".encode(), digest_size=64).digest()
        values.extend(v / 2**31 for v in struct.unpack("<16i", block))
        counter += 1
    del values[size:]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{size}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{size}f", packed))


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(SimulatedProvider)
