"""Keep secrets inside the process: mask every configured key, and anything shaped like one.

coop holds a team's upstream keys and its own client keys. Whatever leaves the process
(HTTP error bodies, SSE error events, cooperation results and progress notes, ``/status``,
CLI output, log records) goes through :func:`redact` at its exit, which masks

- every secret a loaded configuration resolves: endpoint ``api_keys``, ``[server] api_keys``,
  the value behind any ``env:NAME`` reference, endpoint header values, and the password of a
  ``user:password@`` URL (:func:`remember_config` collects them; a process remembers every
  configuration it loaded, so a record logged later is still covered), and
- shapes that are secrets whatever the configuration says: ``sk-...`` keys (masked or not),
  ``Bearer <token>``, ``x-api-key: <value>``/``api_key=<value>`` pairs, runs of ``****``
  around a key's visible ends, and URL credentials.

Upstream error text is not echoed in the first place (see :mod:`coop._upstream`); this is
the second line. :class:`RedactingFilter` applies the same to log records, tracebacks
included; :func:`install_log_redaction` puts it on the handlers ``coop serve`` and the CLI use.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "redact_data",
    "remember",
    "remember_config",
    "secrets_of",
]

MASK = "***"
#: Shorter values are not masked: a two-letter key would turn every "ab" in a message into ***.
MIN_SECRET = 6

_GENERIC = re.compile(
    r"""
    (?P<sk>\bsk-[A-Za-z0-9_\-*.]{6,})                                  # sk-..., sk-ant-..., sk-proj-ab***yz
    | (?P<bearer>\bbearer\s+)[A-Za-z0-9][\w.~+/=\-]{3,}                # Bearer <token>
    | (?P<pair>\b(?:x-api-key|api[_-]?key|access[_-]?token|secret|password|authorization)
        ["']?\s*[:=]\s*["']?)(?!bearer\s)[A-Za-z0-9][^\s"',;}<>]{3,}   # api_key=..., "x-api-key": "..."
    | (?P<stars>[A-Za-z0-9_\-]{0,12}\*{4,}[A-Za-z0-9_\-]{0,12})        # ab****yz: a masked key's ends
    | (?P<userinfo>://)[^/\s:@]+:[^/\s@]+@                             # scheme://user:password@
    """,
    re.VERBOSE | re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_exact: re.Pattern[str] | None = None


def remember(secrets: Iterable[str]) -> None:
    """Add ``secrets`` to those :func:`redact` masks, for the rest of the process."""
    global _secrets, _exact
    new = {s for s in secrets if isinstance(s, str) and len(s.strip()) >= MIN_SECRET}
    new = {s.strip() for s in new} | new
    with _lock:
        if new <= _secrets:
            return
        _secrets = _secrets | new
        ordered = sorted(_secrets, key=len, reverse=True)  # the longest first: no half-masked key
        _exact = re.compile("|".join(re.escape(s) for s in ordered))


def secrets_of(config: Any, *, env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value ``config`` (a :class:`coop.SystemConfig`) refers to.

    Unset ``env:`` variables are skipped: there is nothing to leak.
    """
    env = os.environ if env is None else env
    found: set[str] = set()

    def value_of(raw: Any) -> None:
        if not isinstance(raw, str):
            return
        if raw.startswith("env:"):
            value = env.get(raw[4:].strip())
            if value:
                found.add(value)
        else:
            found.add(raw)

    def walk(node: Any, depth: int = 0) -> None:  # env: references anywhere in the settings
        if depth > 8:
            return
        if isinstance(node, str):
            if node.startswith("env:"):
                value_of(node)
        elif isinstance(node, Mapping):
            for item in node.values():
                walk(item, depth + 1)
        elif isinstance(node, list | tuple | set):
            for item in node:
                walk(item, depth + 1)

    server = getattr(config, "server", None)
    for key in getattr(server, "api_keys", None) or ():
        value_of(key)
    for endpoint in (getattr(config, "endpoints", None) or {}).values():
        for key in getattr(endpoint, "api_keys", None) or ():
            value_of(key)
        for header in (getattr(endpoint, "headers", None) or {}).values():
            value_of(header)
        walk(getattr(endpoint, "options", None))
        password = _password(getattr(endpoint, "base_url", None))
        if password:
            found.add(password)
    for section in ("models", "cooperations"):
        for item in (getattr(config, section, None) or {}).values():
            walk(getattr(item, "options", None))
    return found


def _password(url: Any) -> str | None:
    if not isinstance(url, str) or "@" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def remember_config(config: Any, *, env: Mapping[str, str] | None = None) -> None:
    """Remember every secret of ``config`` (see :func:`secrets_of`)."""
    remember(secrets_of(config, env=env))


def _generic(match: re.Match[str]) -> str:
    for prefix in ("bearer", "pair"):
        if match.group(prefix):
            return match.group(prefix) + MASK
    if match.group("userinfo"):
        return f"://{MASK}@"
    return MASK


def redact(text: str) -> str:
    """``text`` with every remembered secret and every secret-shaped string masked."""
    if not text:
        return text
    exact = _exact
    if exact is not None:
        text = exact.sub(MASK, text)
    return _GENERIC.sub(_generic, text)


def redact_data(data: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, its traceback and its stack (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_coop_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._coop_redacted = True
        return True


_FILTER = RedactingFilter()


def install_log_redaction(
    loggers: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "coop"),
) -> RedactingFilter:
    """Put the redacting filter on every handler of ``loggers`` (idempotent).

    A filter on a handler sees the records of every logger that propagates to it, which a
    filter on a logger does not; call this after the handlers exist (after
    ``logging.basicConfig`` and uvicorn's logging setup). Python's last-resort handler (what
    prints a warning when no handler is configured, as in the CLI) is covered too.
    """
    last_resort = logging.lastResort
    if last_resort is not None and _FILTER not in last_resort.filters:
        last_resort.addFilter(_FILTER)
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    return _FILTER
