"""Embedding requests and answers: what ``/v1/embeddings`` and ``engine.embed`` carry.

An :class:`EmbeddingRequest` holds OpenAI's fields (``input`` as a string, a list of
strings, a token array or a list of token arrays; ``dimensions``; ``encoding_format``;
``user``); :func:`parse_embedding_request` checks a JSON body into one with errors
naming the field. A provider answers an :class:`EmbeddingResponse` (the vectors and
the upstream's token count); the engine returns an :class:`EmbeddingResult` (vectors,
usage, cost, the deployment that served it).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._errors import ValidationError
from ._usage import estimate_tokens

__all__ = [
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingResult",
    "encode_embedding",
    "parse_embedding_request",
]

#: OpenAI's limit on the items of one request.
MAX_INPUTS = 2048
_FORMATS = ("float", "base64")


@attrs.define
class EmbeddingRequest:
    """One embeddings request: ``input`` is a string, a list of strings, a token
    array (list of ints) or a list of token arrays."""

    model: str
    input: Any
    dimensions: int | None = None
    encoding_format: str | None = None
    user: str | None = None

    def inputs(self) -> list[str | list[int]]:
        """``input`` as a list of items (each a string or a token array), checked."""
        value = self.input
        if isinstance(value, str):
            items: list[Any] = [value]
        elif isinstance(value, list) and value and all(_is_token(t) for t in value):
            items = [value]
        elif isinstance(value, list):
            items = list(value)
        else:
            raise ValidationError(
                "must be a string, an array of strings, an array of integers (tokens) "
                "or an array of token arrays",
                field="input",
            )
        if not items:
            raise ValidationError("must not be empty", field="input")
        if len(items) > MAX_INPUTS:
            raise ValidationError(
                f"at most {MAX_INPUTS} inputs per request (got {len(items)})", field="input"
            )
        for i, item in enumerate(items):
            if isinstance(item, str):
                if not item:
                    raise ValidationError("must not be an empty string", field=f"input[{i}]")
            elif isinstance(item, list) and all(_is_token(t) for t in item):
                if not item:
                    raise ValidationError("must not be an empty token array", field=f"input[{i}]")
            else:
                raise ValidationError(
                    "must be a string or an array of integers (tokens); "
                    "all items of input must be of one kind",
                    field=f"input[{i}]",
                )
        kinds = {isinstance(item, str) for item in items}
        if len(kinds) > 1:
            raise ValidationError(
                "mixes strings and token arrays; send one kind per request", field="input"
            )
        return items

    def check(self) -> None:
        """Raise :class:`ValidationError` for a field of the wrong type or value."""
        if not isinstance(self.model, str) or not self.model:
            raise ValidationError("is required (the embedding model)", field="model")
        self.inputs()
        if self.dimensions is not None and (
            not isinstance(self.dimensions, int)
            or isinstance(self.dimensions, bool)
            or self.dimensions < 1
        ):
            raise ValidationError("must be a positive integer", field="dimensions")
        if self.encoding_format is not None and self.encoding_format not in _FORMATS:
            raise ValidationError(
                f"must be one of {', '.join(_FORMATS)} (got {self.encoding_format!r})",
                field="encoding_format",
            )
        if self.user is not None and not isinstance(self.user, str):
            raise ValidationError("must be a string", field="user")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def token_count(item: str | Sequence[int]) -> int:
    """Tokens of one input item: a token array's length, else the estimate."""
    return len(item) if not isinstance(item, str) else max(1, estimate_tokens(item))


def parse_embedding_request(data: Any) -> EmbeddingRequest:
    """A JSON body checked into an :class:`EmbeddingRequest` (errors name the field)."""
    if not isinstance(data, Mapping):
        raise ValidationError("the request body must be a JSON object")
    if "input" not in data:
        raise ValidationError("is required", field="input")
    if "model" not in data:
        raise ValidationError("is required (the embedding model)", field="model")
    request = EmbeddingRequest(
        model=data["model"],
        input=data["input"],
        dimensions=data.get("dimensions"),
        encoding_format=data.get("encoding_format"),
        user=data.get("user"),
    )
    request.check()
    return request


@attrs.define
class EmbeddingResponse:
    """What a provider answers: one vector per input, in input order."""

    vectors: list[list[float]]
    model: str = ""
    #: The upstream's count; ``None`` when it gave none (the engine estimates then).
    prompt_tokens: int | None = None


@attrs.define
class EmbeddingResult:
    """What :meth:`coop.OpenAIEngine.embed` returns."""

    vectors: list[list[float]]
    model: str
    deployment: str
    provider: str
    prompt_tokens: int
    cost: float
    latency: float
    attempts: int = 1
    errors: list[str] = attrs.field(factory=list)
    #: Whether ``prompt_tokens`` is coop's estimate (the upstream gave no usage).
    estimated: bool = False

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}

    def to_openai(self, encoding_format: str | None = None) -> dict[str, Any]:
        """OpenAI's ``CreateEmbeddingResponse`` body."""
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": encode_embedding(vector, encoding_format),
                }
                for i, vector in enumerate(self.vectors)
            ],
            "model": self.model,
            "usage": self.usage,
        }


def encode_embedding(vector: Sequence[float], encoding_format: str | None = None) -> Any:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


def decode_embedding(value: Any) -> list[float]:
    """An upstream's vector (floats, or base64 of little-endian float32) as floats."""
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        return [float(x) for x in value]
    raise ValueError("not an embedding vector")
