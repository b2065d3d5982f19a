"""The access log: one line per request, written without the logging machinery when it can be.

Why: through :mod:`logging` a line costs a LogRecord, the redacting filter, a Formatter
and a locked, flushed handler: about 1,000 Python opcodes, 17% of a whole proxied
request (benchmarks/monitoring.py --opcodes). When the ``coop.access`` records would only
reach the plain stderr handler that ``coop serve`` sets up, this module writes the same
line itself (same format, same redaction). As soon as someone configures logging
differently (a handler on ``coop.access``, a file, another format or level), every line
goes through :mod:`logging` again, exactly as before.

Both formats are redacted: the path and the model name come from the client.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from .._redact import RedactingFilter, redact

__all__ = ["AccessLog"]

access_log = logging.getLogger("coop.access")

#: The format ``coop serve`` gives logging.basicConfig; the fast path writes exactly this.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class AccessLog:
    """Writes access lines in ``"text"`` or ``"json"`` format (``"off"``: nothing)."""

    def __init__(self, mode: str, *, stream: TextIO | None = None) -> None:
        self.mode = mode
        self._stream = stream
        self._second = -1
        self._stamp = ""
        self._direct: TextIO | None = None

    def _direct_stream(self) -> TextIO | None:
        """The stream to write to directly, or None when logging must see the record."""
        if self._stream is not None:
            return self._stream
        if access_log.handlers or not access_log.propagate:
            return None
        if not access_log.isEnabledFor(logging.INFO):
            return None
        root = logging.getLogger()
        if len(root.handlers) != 1:
            return None
        handler = root.handlers[0]
        if type(handler) is not logging.StreamHandler or handler.level > logging.INFO:
            return None
        formatter = handler.formatter
        if formatter is None or formatter._fmt != LOG_FORMAT or formatter.datefmt is not None:
            return None
        if any(not isinstance(f, RedactingFilter) for f in handler.filters):
            return None
        return handler.stream

    def write(
        self,
        *,
        method: str,
        path: str,
        status: int,
        ms: float,
        model: str | None,
        deployment: str | None,
        request_id: str,
        client: str | None,
    ) -> None:
        if self.mode == "json":
            record: dict[str, Any] = {
                "ts": round(time.time(), 3),
                "request_id": request_id,
                "method": method,
                "path": redact(path),
                "status": status,
                "ms": round(ms, 2),
                "model": None if model is None else redact(model),
                "deployment": deployment,
                "client": client,
            }
            sys.stderr.write(json.dumps(record, separators=(",", ":")) + "\n")
            return
        message = (
            f"{method} {path} {status} {ms:.1f}ms model={model or '-'} "
            f"deployment={deployment or '-'} id={request_id}"
        )
        now = time.time()
        second = int(now)
        if second != self._second:
            # once a second, not once a request: the timestamp's date part, and whether
            # logging is still set up as coop serve left it (a change shows within 1 s)
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._direct = self._direct_stream()
        stream = self._direct
        if stream is None:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s", message)  # the handlers' filters redact it
            return
        try:
            stamp = f"{self._stamp},{int((now - second) * 1000):03d}"
            stream.write(f"{stamp} INFO coop.access: {redact(message)}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail the request
            pass
