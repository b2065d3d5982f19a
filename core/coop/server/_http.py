"""Small ASGI helpers: read a bounded body, send JSON, OpenAI-shaped errors.

The gateway is a raw ASGI application rather than a framework app because every
microsecond on the request path is overhead added to every call (measured in
docs/performance.md); these helpers are all the framework it needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._errors import CoopError, UpstreamError, ValidationError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = ["HTTPError", "error_body", "read_body", "send_bytes", "send_error", "send_json"]

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
    ) -> None:
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        super().__init__(message)


class ClientDisconnected(Exception):
    """The client went away while we were reading its request."""


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type, "param": param, "code": code}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def error_for(exc: BaseException) -> HTTPError:
    """Map any coop error to the status and OpenAI error shape a client expects."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, ValidationError):
        return HTTPError(400, str(exc), param=exc.field, code="invalid_value")
    if isinstance(exc, UpstreamError):
        status = exc.http_status
        code = type(exc).__name__
        if exc.status == 400 or exc.status == 422:
            status = 400
        message = str(exc)
        return HTTPError(status, message, type=exc.error_type, code=_snake(code))
    if isinstance(exc, CoopError):
        return HTTPError(
            exc.http_status, str(exc), type=exc.error_type, code=_snake(type(exc).__name__)
        )
    if isinstance(exc, TimeoutError):
        return HTTPError(504, "the request timed out", type="timeout_error", code="timeout")
    return HTTPError(
        500, "internal error (see the server log)", type="server_error", code="internal_error"
    )


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
    extra = list(headers)
    if error.status == 401:
        extra.append((b"www-authenticate", b"Bearer"))
    await send_bytes(
        send,
        error.status,
        error_body(error.message, error.type, error.param, error.code),
        [*_JSON_HEADERS, *extra],
    )
