"""Small ASGI helpers: read a bounded body, send JSON, OpenAI-shaped errors.

The gateway is a raw ASGI application rather than a framework app because every
microsecond on the request path is overhead added to every call (measured in
docs/performance.md); these helpers are all the framework it needs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    CoopError,
    RateLimitError,
    UnknownModelError,
    UnsupportedParameterError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    ValidationError,
)
from .._keys import KeyRefusedError
from .._redact import redact

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = [
    "ClientDisconnected",
    "HTTPError",
    "error_body",
    "error_for",
    "read_body",
    "send_bytes",
    "send_error",
    "send_json",
]

_JSON_HEADERS = [(b"content-type", b"application/json")]


class HTTPError(Exception):
    """An error answered directly by the gateway (bad JSON, auth, body too large)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        self.headers = list(headers)
        super().__init__(message)


class ClientDisconnected(Exception):
    """The client went away while we were reading its request."""


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    """The OpenAI error object; every error body and SSE error event is built here, so
    secrets are masked here (:func:`coop._redact.redact`)."""
    return json.dumps(
        {
            "error": {
                "message": redact(message),
                "type": type,
                "param": None if param is None else redact(param),
                "code": code,
            }
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def error_for(exc: BaseException) -> HTTPError:
    """Map any error to the status and OpenAI error shape a client expects.

    The status says whose fault it is, because the OpenAI SDKs turn it into an
    exception class: 400/404 the request's, 401 the client's key, 429 slow down,
    502 the upstream failed or answered garbage, 503 the upstream (or every
    deployment) is overloaded, 504 it took too long. An upstream 401 is a 502,
    never a 401: the client's key was fine, coop's upstream key was not. Upstream
    bodies are not echoed (they can quote coop's own key, masked or not): an
    :class:`UpstreamError` reads as a summary by status and class.
    """
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, KeyRefusedError):  # a managed key's model, limit or budget
        return HTTPError(
            exc.http_status,
            str(exc),
            type=exc.error_type,
            param=exc.param,
            code=exc.code,
            headers=exc.headers,
        )
    if isinstance(exc, UnsupportedParameterError):
        return HTTPError(400, str(exc), param=exc.field, code="unsupported_parameter")
    if isinstance(exc, ValidationError):
        return HTTPError(400, str(exc), param=exc.field, code="invalid_value")
    if isinstance(exc, UnknownModelError):
        return HTTPError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    if isinstance(exc, ConfigError):  # e.g. an endpoint's env:KEY unset: the operator's problem
        return HTTPError(
            500, f"gateway misconfigured: {exc}", type="server_error", code="config_error"
        )
    if isinstance(exc, CoopError):
        return HTTPError(
            exc.http_status,
            str(exc),
            type=exc.error_type,
            code=_snake(type(exc).__name__),
            headers=_retry_after(exc) if exc.http_status == 503 else (),
        )
    if isinstance(exc, TimeoutError):
        return HTTPError(
            504,
            "the request timed out ([server] request_timeout)",
            type="timeout_error",
            code="timeout",
        )
    return HTTPError(
        500, "internal error (see the server log)", type="server_error", code="internal_error"
    )


def _upstream_error(exc: UpstreamError) -> HTTPError:
    where = f" [{exc.deployment}]" if exc.deployment else ""
    said = f" (upstream status {exc.status})" if exc.status is not None else ""
    summary = str(exc)  # a summary by class and status: never the upstream's own text
    if isinstance(exc, ContextWindowExceededError):
        return HTTPError(400, summary, param="messages", code="context_length_exceeded")
    if isinstance(exc, BadRequestError):
        return HTTPError(400, summary, code="upstream_bad_request")
    if isinstance(exc, RateLimitError):
        headers = []
        if exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
        return HTTPError(
            429, summary, type="rate_limit_error", code="rate_limit_exceeded", headers=headers
        )
    if isinstance(exc, AuthenticationError):
        return HTTPError(
            502,
            f"the upstream rejected the gateway's own credentials{said}{where}",
            type="server_error",
            code="upstream_authentication_failed",
        )
    if isinstance(exc, UpstreamTimeoutError):
        return HTTPError(504, summary, type="timeout_error", code="upstream_timeout")
    if isinstance(exc, UpstreamNotFoundError):
        return HTTPError(502, summary, type="server_error", code="upstream_not_found")
    if isinstance(exc, UpstreamUnavailableError) and exc.status in (503, 529):
        return HTTPError(
            503,
            summary,
            type="server_error",
            code="upstream_overloaded",
            headers=_retry_after(exc),
        )
    return HTTPError(502, summary, type="server_error", code="upstream_error")


def _retry_after(exc: BaseException) -> list[tuple[bytes, bytes]]:
    """A 503's ``Retry-After``: the engine's seconds until a deployment is back, at least 1."""
    seconds = getattr(exc, "retry_after", None) or 0.0
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name.removesuffix("Error")):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out) or "error"


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 past ``limit`` bytes (checked as it arrives)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        body = message.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise HTTPError(
                    413, f"request body exceeds {limit} bytes", code="request_too_large"
                )
            chunks.append(body)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    await send_bytes(send, status, body, [*_JSON_HEADERS, *headers])


async def send_error(
    send: Send, error: HTTPError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    extra = [*error.headers, *headers]
    if error.status == 401:
        extra.append((b"www-authenticate", b"Bearer"))
    await send_bytes(
        send,
        error.status,
        error_body(error.message, error.type, error.param, error.code),
        [*_JSON_HEADERS, *extra],
    )
