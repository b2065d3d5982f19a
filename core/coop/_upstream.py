"""Turn an upstream's error answer into the matching typed :class:`UpstreamError`.

Shared by every provider so that a 429 means the same thing (and carries the same
``retry_after``) whichever protocol produced it.

The error's message is a summary by status and class ("upstream rejected the credentials,
code invalid_api_key"), never the upstream's own text: real providers quote the key they
received ("Incorrect API key provided: sk-...") and that message would otherwise travel to
clients, ``/status`` and logs. The raw body stays on ``.body`` for debugging in Python.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ._errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    RateLimitError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["error_from_payload", "error_from_response", "parse_retry_after"]

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input is too long",
    "reduce the length",
)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``/``retry-after`` (delta or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: An upstream error ``code``/``type`` worth repeating: a short snake_case identifier
#: (``invalid_api_key``, ``overloaded_error``), which cannot carry a key or free text.
_SAFE_CODE = re.compile(r"[a-z][a-z_]{1,47}")


def _summary(kind: str, code: str) -> str:
    return f"{kind}, code {code}" if _SAFE_CODE.fullmatch(code) else kind


def _message_of(payload: Any) -> tuple[str, str]:
    """(message, code-or-type) from OpenAI's or Anthropic's error shape."""
    if isinstance(payload, Mapping):
        error = payload.get("error", payload)
        if isinstance(error, Mapping):
            message = error.get("message") or error.get("detail") or ""
            code = error.get("code") or error.get("type") or ""
            return str(message), str(code)
        if isinstance(error, str):
            return error, ""
    return "", ""


def error_from_payload(
    status: int | None,
    payload: Any,
    *,
    body: str = "",
    headers: Mapping[str, str] | None = None,
    provider: str | None = None,
    deployment: str | None = None,
) -> UpstreamError:
    """The typed error for an error payload (also used for errors inside streams).

    The upstream's message only decides the class (a context-window hint); it is not
    repeated: ``.body`` keeps it for debugging.
    """
    message, code = _message_of(payload)
    text = f"{message} {code}".lower()
    kw: dict[str, Any] = {
        "status": status,
        "body": body,
        "provider": provider,
        "deployment": deployment,
    }
    if status == 429 or code in ("rate_limit_error", "rate_limit_exceeded"):
        return RateLimitError(
            _summary("upstream rate limit reached", code),
            retry_after=parse_retry_after(headers or {}),
            **kw,
        )
    if status in (401, 403) or code in (
        "authentication_error",
        "permission_error",
        "invalid_api_key",
    ):
        return AuthenticationError(_summary("upstream rejected the credentials", code), **kw)
    if status == 404:
        return UpstreamNotFoundError(_summary("upstream has no such model or path", code), **kw)
    if status == 408:
        return UpstreamTimeoutError(_summary("upstream timed out", code), **kw)
    if any(hint in text for hint in _CONTEXT_HINTS) and (status is None or 400 <= status < 500):
        return ContextWindowExceededError(
            _summary("the prompt does not fit the model's context window", code), **kw
        )
    if (status is not None and 400 <= status < 500) or code == "invalid_request_error":
        return BadRequestError(_summary("upstream refused the request", code), **kw)
    if status is None:  # an error event inside a stream
        return UpstreamUnavailableError(_summary("upstream reported an error", code), **kw)
    return UpstreamUnavailableError(_summary("upstream unavailable", code), **kw)


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str | None = None,
    deployment: str | None = None,
) -> UpstreamError:
    """The typed error for a non-2xx answer: a summary by status and class; ``.body`` holds a
    snippet of the answer (Python only, never sent on)."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = None
    return error_from_payload(
        status, payload, body=text, headers=headers, provider=provider, deployment=deployment
    )
