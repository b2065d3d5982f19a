"""Incremental Server-Sent-Events parsing, as the WHATWG HTML standard defines it.

Upstream streams arrive in arbitrary network chunks: a chunk may end inside a line,
inside a ``\\r\\n`` pair or inside a multi-byte UTF-8 character. :class:`SSEDecoder`
keeps that state between :meth:`~SSEDecoder.feed` calls so callers never see it.

Deliberate differences from a browser, and why:

* :meth:`SSEDecoder.flush` dispatches an event still pending at the end of the
  stream (a browser drops it): some upstreams close right after ``data: [DONE]``
  without the blank line, and losing the last chunk would lose the answer.
* A line still unfinished after ``max_line`` characters raises
  :class:`coop.UpstreamProtocolError` instead of buffering a garbage stream forever.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Final

import attrs

from ._errors import UpstreamProtocolError

__all__ = ["SSEDecoder", "SSEEvent", "aiter_sse"]

#: Default ``max_line``: far above any real chunk, small enough to stop a runaway stream.
MAX_LINE: Final = 16 * 1024 * 1024


@attrs.define  # not frozen: frozen attrs classes cost 2.5x per construction
class SSEEvent:
    """One dispatched event: type (``"message"`` unless ``event:`` said otherwise),
    data (``data:`` lines joined by newlines), the last event id and ``retry`` if given."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """The data decoded as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.data)


class SSEDecoder:
    """Turn a byte stream into :class:`SSEEvent` objects, whatever the chunk boundaries."""

    __slots__ = (
        "_after_cr",
        "_data",
        "_decoder",
        "_event",
        "_line",
        "_max_line",
        "_retry",
        "_started",
        "last_event_id",
    )

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max_line = max_line
        #: The partial last line of the previous chunk.
        self._line = ""
        #: Whether the previous chunk ended with ``\r`` (its ``\n`` may come next).
        self._after_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        #: The id of the last ``id:`` field; it persists across events, as specified.
        self.last_event_id: str | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse a chunk; return the events it completed (often none, often one)."""
        return self._text(self._decoder.decode(data))

    def flush(self) -> list[SSEEvent]:
        """End of stream: parse what is buffered and dispatch a pending event."""
        events = self._text(self._decoder.decode(b"", True))
        if self._line:
            events += self._lines([self._line, ""])
            self._line = ""
        elif self._data:
            events += self._lines([""])
        return events

    def _text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":  # a byte-order mark may open the stream
                text = text[1:]
        if "\r" in text:
            if self._after_cr and text[0] == "\n":
                text = text[1:]
            self._after_cr = text[-1:] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        elif self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if "\n" not in text:
            self._line += text
            if len(self._line) > self._max_line:
                self._overflow()
            return []
        lines = text.split("\n")
        if self._line:
            lines[0] = self._line + lines[0]
        self._line = lines.pop()
        if len(self._line) > self._max_line:
            self._overflow()
        return self._lines(lines)

    def _overflow(self) -> None:
        self._line = ""
        raise UpstreamProtocolError(
            f"server-sent event line longer than {self._max_line} characters"
        )

    def _lines(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if line.startswith("data:"):
                # The hot path: OpenAI-style streams are almost only data lines.
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif not line:
                if data:
                    events.append(
                        SSEEvent(
                            self._event or "message",
                            "\n".join(data),
                            self.last_event_id,
                            self._retry,
                        )
                    )
                    data.clear()
                self._event = ""
                self._retry = None
            elif line[0] == ":":
                continue  # a comment: keep-alive
            else:
                name, colon, value = line.partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
                if name == "event":
                    self._event = value
                elif name == "data":  # "data" without a colon: an empty data line
                    data.append(value)
                elif name == "id":
                    if "\0" not in value:
                        self.last_event_id = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    self._retry = int(value)
                # Any other field name is ignored, as specified.
        return events


async def aiter_sse(byte_iter: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield the events of an async byte stream (``response.aiter_bytes()``)."""
    decoder = SSEDecoder()
    async for chunk in byte_iter:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
