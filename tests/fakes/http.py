"""A minimal, fast HTTP/1.1 server on asyncio Protocols, plus the machinery every fake shares.

Why not aiohttp or an ASGI server: the fakes sit behind the gateway in benchmarks, so they must
cost almost nothing per request, and they must be free to misbehave at the byte level (drop a
connection, cut a chunked body, split an SSE event mid-line), which frameworks do not allow.
Each fake runs its own asyncio loop in a daemon thread, so tests under asyncio, trio or no
event loop at all can talk to it over loopback.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import email.utils
import itertools
import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

__all__ = [
    "Answer",
    "FakeUpstream",
    "Fault",
    "HTTPServer",
    "JsonReply",
    "RecordedRequest",
    "Request",
    "Responder",
    "StreamReply",
    "ToolCall",
    "count_tokens",
]

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
_EXTRA_PHRASES = {529: "Site Overloaded"}

# --------------------------------------------------------------------------- HTTP layer


@dataclass(slots=True)
class Request:
    """One parsed HTTP request; headers are lower-cased, duplicates joined with ", "."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    body: bytes = b""
    keep_alive: bool = True

    def json(self) -> Any:
        """Parse the body as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


class HTTPError(Exception):
    """A request the parser refuses; answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_phrases: dict[int, str] = {}


def _phrase(status: int) -> str:
    phrase = _phrases.get(status)
    if phrase is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = _EXTRA_PHRASES.get(status, "Unknown")
        _phrases[status] = phrase
    return phrase


_date_cache: list[Any] = [0, ""]


def _http_date() -> str:
    """RFC 7231 date, recomputed once a second because formatting it costs per request."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
    return str(_date_cache[1])


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    extra = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    return f"HTTP/1.1 {status} {_phrase(status)}\r\ndate: {_http_date()}\r\n{extra}\r\n".encode(
        "latin-1"
    )


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in headers.items()} if headers else {}


_ids = itertools.count(1)
_ID_SALT = os.urandom(6).hex()
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode = json.JSONDecoder().decode


def dumps(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes, non-ASCII left raw as real providers send it."""
    return _encode(obj).encode()


class Responder:
    """Writes the one response to one request: either `respond()` or a stream.

    States: fresh → (respond | start_stream → send* → end) → finished. `abort()` and `cut()`
    end the connection at any point, which is how faults are made.
    """

    __slots__ = ("_chunked", "_conn", "_keep_alive", "finished", "started")

    def __init__(self, conn: _Connection, keep_alive: bool) -> None:
        self._conn = conn
        self._keep_alive = keep_alive
        self._chunked = True
        self.started = False
        self.finished = False

    @property
    def closed(self) -> bool:
        """True once the peer went away or the connection was closed."""
        return self._conn.closed

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Send a whole response with a Content-Length body."""
        extra = ""
        if headers:
            for k, v in headers.items():
                if k.lower() == "content-type":
                    content_type = v
                elif k.lower() != "content-length":
                    extra += f"{k}: {v}\r\n"
        if not self._keep_alive:
            extra += "connection: close\r\n"
        head = (
            f"HTTP/1.1 {status} {_phrase(status)}\r\ndate: {_http_date()}\r\n"
            f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
        )
        self.started = self.finished = True
        self._conn.write(head.encode("latin-1") + body)
        self._conn.response_done(self._keep_alive)

    def respond_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send `obj` as a JSON body."""
        self.respond(status, dumps(obj), headers)

    def start_stream(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str = "text/event-stream",
        chunked: bool = True,
    ) -> None:
        """Send the head of a streamed response: chunked, or delimited by closing the connection."""
        hdrs = {"content-type": content_type, "cache-control": "no-cache", **_lower(headers)}
        self._chunked = chunked
        if chunked:
            hdrs["transfer-encoding"] = "chunked"
        else:
            self._keep_alive = False
        if not self._keep_alive:
            hdrs["connection"] = "close"
        self.started = True
        self._conn.write(_head(status, hdrs))

    async def send(self, data: bytes) -> None:
        """Write one piece of the body as its own write (and chunk), then wait for the socket."""
        if not data or self._conn.closed:
            return
        self._conn.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
        await self._conn.drain()

    async def end(self) -> None:
        """Finish the stream properly: the terminating chunk, or closing the connection."""
        if self.finished:
            return
        self.finished = True
        if self._chunked and not self._conn.closed:
            self._conn.write(b"0\r\n\r\n")
        self._conn.response_done(self._keep_alive)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, bypassing framing: for deliberately broken responses."""
        self.started = True
        self._conn.write(data)

    def cut(self) -> None:
        """Close after flushing what was written, without finishing the body."""
        self.finished = True
        self._conn.close()

    def abort(self) -> None:
        """Drop the connection at once, without a word."""
        self.finished = True
        self._conn.abort()


Handler = Callable[[Request, Responder], Awaitable[None] | None]


class _Connection(asyncio.Protocol):
    """One client connection: parses requests one at a time and hands them to the handler.

    A handler that answers synchronously costs no task; one that returns an awaitable runs as a
    task, and further (pipelined) requests wait in the buffer until its response is done.
    """

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._pending: Request | None = None  # head parsed, body still arriving
        self._body_end = 0
        self._chunk_body = bytearray()
        self._can_write = True
        self._drain_waiter: asyncio.Future[None] | None = None

    # asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        self.server.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self._task is not None:
            self._task.cancel()
        self._wake_drain()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        self._wake_drain()

    # writing --------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._can_write or self.closed:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    def _wake_drain(self) -> None:
        w, self._drain_waiter = self._drain_waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()

    def response_done(self, keep_alive: bool) -> None:
        if not keep_alive:
            self.close()

    # reading --------------------------------------------------------------------------------
    def _process(self) -> None:
        """Parse and dispatch every complete request in the buffer, one response at a time."""
        while not self._busy and not self.closed:
            try:
                req = self._parse()
            except HTTPError as e:
                body = json.dumps({"error": {"message": str(e), "type": "invalid_request_error"}})
                Responder(self, False).respond(e.status, body.encode())
                return
            if req is None:
                return
            self._dispatch(req)

    def _dispatch(self, req: Request) -> None:
        resp = Responder(self, req.keep_alive)
        try:
            result = self.server.handler(req, resp)
        except Exception:
            self._handler_failed(resp)
            return
        if result is None:
            if not resp.finished:
                self._handler_failed(resp)
            return
        self._busy = True
        self._task = asyncio.ensure_future(self._run(result, resp))

    async def _run(self, result: Awaitable[None], resp: Responder) -> None:
        try:
            await result
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            self._handler_failed(resp)
        finally:
            self._task = None
            self._busy = False
        if not resp.finished and not self.closed:
            self._handler_failed(resp)
        elif not self.closed and self._buf:
            self._process()

    def _handler_failed(self, resp: Responder) -> None:
        """A bug in a handler: answer 500 if nothing was sent yet, else drop the connection."""
        if sys.exc_info()[0] is not None:
            traceback.print_exc()
        else:
            print("fake server: handler ended without a response", file=sys.stderr)
        if resp.started:
            self.abort()
        else:
            resp.respond(500, b'{"error":{"message":"fake server handler failed"}}')
        if self.server.on_error is not None:
            self.server.on_error()

    def _parse(self) -> Request | None:
        buf = self._buf
        req = self._pending
        if req is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise HTTPError(431, "request head too large")
                return None
            req = self._parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            te = req.headers.get("transfer-encoding", "").lower()
            if "chunked" in te:
                self._body_end = -1
                self._chunk_body = bytearray()
            else:
                try:
                    length = int(req.headers.get("content-length", "0"))
                except ValueError:
                    raise HTTPError(400, "bad content-length") from None
                if length < 0 or length > MAX_BODY:
                    raise HTTPError(413, "body too large")
                self._body_end = length
            if req.headers.get("expect", "").lower() == "100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._pending = req
        if self._body_end >= 0:
            if len(buf) < self._body_end:
                return None
            req.body = bytes(buf[: self._body_end])
            del buf[: self._body_end]
        else:
            if not self._parse_chunks():
                return None
            req.body = bytes(self._chunk_body)
        self._pending = None
        return req

    def _parse_chunks(self) -> bool:
        """Consume chunked-body framing from the buffer; True once the last chunk and trailers are in."""
        buf = self._buf
        while True:
            nl = buf.find(b"\r\n")
            if nl < 0:
                return False
            try:
                size = int(bytes(buf[:nl]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HTTPError(400, "bad chunk size") from None
            if size == 0:
                end = buf.find(b"\r\n\r\n", nl)  # trailers, usually none
                if end == nl:
                    del buf[: nl + 4]
                    return True
                if end < 0:
                    return False
                del buf[: end + 4]
                return True
            if len(buf) < nl + 2 + size + 2:
                return False
            self._chunk_body += buf[nl + 2 : nl + 2 + size]
            if len(self._chunk_body) > MAX_BODY:
                raise HTTPError(413, "body too large")
            del buf[: nl + 2 + size + 2]

    @staticmethod
    def _parse_head(head: bytes) -> Request:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HTTPError(400, "bad request line") from None
        if not version.startswith("HTTP/1."):
            raise HTTPError(505, "only HTTP/1.x")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise HTTPError(400, "bad header line")
            name = name.lower()  # RFC 9112: no whitespace before the colon
            value = value.strip()
            if name in headers:
                value = f"{headers[name]}, {value}"
            headers[name] = value
        path, _, qs = target.partition("?")
        conn = headers.get("connection", "").lower()
        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        query = dict(parse_qsl(qs)) if qs else {}
        return Request(method, target, path, query, version, headers, b"", keep)


class HTTPServer:
    """Serves `handler` on its own asyncio loop in a daemon thread.

    `start()` blocks until listening; `stop()` closes every connection, cancels every handler
    and joins the thread. Restarting binds the same port again, so a test can take an upstream
    down and bring it back.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.connections: set[_Connection] = set()
        self.connections_opened = 0
        self.on_error: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._thread is not None

    def start(self, timeout: float = 10.0) -> None:
        """Start listening (an ephemeral port when port is 0) and return once ready."""
        if self._thread is not None:
            raise RuntimeError("server already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(
                        lambda: _Connection(self), self.host, self.port, backlog=1024
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fake-http-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("fake server did not start in time")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection, cancel handlers, stop the loop thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._loop = self._server = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


# --------------------------------------------------------------------------- shared fake machinery


def count_tokens(text: str) -> int:
    """The fakes' tokenizer: one token per whitespace-separated word, so tests can predict usage."""
    return len(text.split())


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call in a scripted answer; `arguments` is a dict or a JSON string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text the wire carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return _encode(self.arguments)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a fake model says, in provider-neutral terms.

    `reasoning` is DeepSeek's `reasoning_content` on OpenAI and a thinking block on Anthropic.
    `finish_reason` may use either vocabulary (`stop`/`length`/`tool_calls` or
    `end_turn`/`max_tokens`/`tool_use`); each fake maps it. Token counts default to
    `count_tokens` of the request and of the answer.
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


AnswerLike = Answer | str
AnswerFn = Callable[[Any], AnswerLike]


@dataclass(frozen=True, slots=True)
class Fault:
    """One way an upstream misbehaves. Build with the class methods, then `queue_fault()` or
    `set_mode()` on a fake.

    `after` counts SSE events (`data:` events, the role chunk included) written before the
    fault strikes a stream.
    """

    kind: str
    status_code: int = 0
    body: Any = None
    headers: Mapping[str, str] | None = None
    seconds: float | None = None
    after: int = 0
    error: Mapping[str, Any] | None = None

    @classmethod
    def status(cls, code: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with this status; `body` None gives the provider's own error body for it,
        a dict/list is sent as JSON, str/bytes as they are."""
        return cls("status", status_code=code, body=body, headers=headers)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        """429 in the provider's shape with a Retry-After header."""
        return cls("status", status_code=429, headers={"retry-after": _fmt_secs(retry_after)})

    @classmethod
    def context_length_exceeded(cls) -> Fault:
        """400 with the provider's real "prompt too long" error (OpenAI code
        `context_length_exceeded`)."""
        return cls("context_length_exceeded", status_code=400)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def stall(cls, seconds: float | None = None) -> Fault:
        """Accept and say nothing, then close after `seconds` (None: until the client leaves or
        the server stops): for timeout tests."""
        return cls("stall", seconds=seconds)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds` (one slow request, e.g. for hedging)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def cut_stream(cls, after_chunks: int = 2) -> Fault:
        """Stream `after_chunks` events then close without finishing (no `[DONE]`, no final
        chunk); a non-streaming answer is cut halfway through its body."""
        return cls("cut_stream", after=after_chunks)

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 whose JSON body (or second SSE event) is not valid JSON."""
        return cls("malformed_json")

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """200 with an HTML page, as a misconfigured proxy would send."""
        return cls("wrong_content_type")

    @classmethod
    def error_event_mid_stream(
        cls, after_chunks: int = 2, error: Mapping[str, Any] | None = None
    ) -> Fault:
        """Stream `after_chunks` events, then a provider-shaped error event, then end the
        stream; `error` overrides the error object. A non-streaming request gets a 500."""
        return cls("error_event", after=after_chunks, error=error)

    @classmethod
    def slow_stream(cls, delay_per_chunk: float) -> Fault:
        """Pause `delay_per_chunk` seconds before each streamed write."""
        return cls("slow_stream", seconds=delay_per_chunk)


def _fmt_secs(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else str(s)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the fake saw it. `json` is the parsed body (None if absent or invalid);
    `fault` is the fault it triggered, if any."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    api_key: str | None
    model: str | None
    fault: Fault | None
    time: float


@dataclass(slots=True)
class JsonReply:
    """A whole JSON response a fake decided on."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamReply:
    """A streamed response a fake decided on: the SSE events, already encoded, in order."""

    events: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Reply = JsonReply | StreamReply


@dataclass(slots=True)
class _Rule:
    fault: Fault
    model: str | None
    path: str | None

    def matches(self, model: str | None, path: str) -> bool:
        return (self.model is None or self.model == model) and (
            self.path is None or self.path == path
        )


_NO_JSON = object()


class FakeUpstream(abc.ABC):
    """What every fake provider shares: lifecycle, keys, faults, scripted answers, recording.

    Arguments (all also plain attributes, changeable while serving, except host/port):
    `models` listed by `/v1/models` (and the only ones accepted when `strict_models`);
    `api_keys` the valid keys (None: no auth at all); `latency` seconds before each model
    answer (not before status/drop/stall faults or auth errors), slept on the server loop so
    other requests proceed; `chunk_delay` seconds before each streamed write; `write_size`
    cuts the SSE byte stream into writes of that many bytes (mid-line, mid-character);
    `chunked` False streams close-delimited; `record` False keeps only the count.

    Per request: count and record → key check (401/429) → fault (queued, else standing) →
    latency → the provider's answer (scripted, else `answer_fn`, else the echo).
    Subclasses implement `_api_key`, `_auth_error`, `_error`, `_context_length_error`,
    `_route`, `_error_event` and `_malformed_event`.
    """

    provider: ClassVar[str] = "fake"
    default_models: ClassVar[tuple[str, ...]] = ()
    api_prefix: ClassVar[str] = ""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[str] | None = None,
        api_keys: Iterable[str] | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        write_size: int | None = None,
        chunked: bool = True,
        strict_models: bool = False,
        record: bool = True,
    ) -> None:
        self.models: list[str] = list(models if models is not None else self.default_models)
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.write_size = write_size
        self.chunked = chunked
        self.strict_models = strict_models
        self.record = record
        self.answer_fn: AnswerFn | None = None
        self._initial_keys = None if api_keys is None else set(api_keys)
        self._initial = (
            latency,
            chunk_delay,
            write_size,
            chunked,
            strict_models,
            list(self.models),
        )
        self._lock = threading.Lock()
        self._keys: set[str] | None = None if api_keys is None else set(api_keys)
        self._limited: dict[str, float] = {}
        self._queue: deque[_Rule] = deque()
        self._modes: list[_Rule] = []
        self._scripts: deque[tuple[str | None, AnswerLike]] = deque()
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self.handler_errors = 0
        self.server = HTTPServer(self._handle, host, port)
        self.server.on_error = self._count_error

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Listen (ephemeral port by default) and return once ready."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice; `start()` again reuses the port."""
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (known after the first `start()`)."""
        return self.server.port

    @property
    def url(self) -> str:
        """Root URL, e.g. `http://127.0.0.1:43210`."""
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def base_url(self) -> str:
        """What an SDK client takes as its base URL."""
        return self.url + self.api_prefix

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far: shows whether a client reuses connections."""
        return self.server.connections_opened

    # recording ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every recorded request, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Requests received (counted even when `record` is off)."""
        return self._count

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent recorded request."""
        with self._lock:
            return self._requests[-1]

    def reset(self) -> None:
        """Back to the configuration the fake was built with; forget requests and counters."""
        with self._lock:
            self._requests.clear()
            self._count = 0
            self.handler_errors = 0
            self._queue.clear()
            self._modes.clear()
            self._scripts.clear()
            self._limited.clear()
            self._keys = None if self._initial_keys is None else set(self._initial_keys)
            (
                self.latency,
                self.chunk_delay,
                self.write_size,
                self.chunked,
                self.strict_models,
                models,
            ) = self._initial
            self.models = list(models)
            self.answer_fn = None

    def _count_error(self) -> None:
        self.handler_errors += 1

    # keys -----------------------------------------------------------------------------------
    def add_key(self, key: str) -> None:
        """Accept this key from now on (turns auth on if it was off)."""
        with self._lock:
            if self._keys is None:
                self._keys = set()
            self._keys.add(key)

    def revoke_key(self, key: str) -> None:
        """Reject this key from now on with a 401 (turns auth on if it was off)."""
        with self._lock:
            if self._keys is None:
                self._keys = set()
            self._keys.discard(key)

    def rate_limit_key(self, key: str, retry_after: float = 1.0) -> None:
        """Answer every request with this key 429 + Retry-After until `clear_rate_limit`."""
        with self._lock:
            self._limited[key] = retry_after

    def clear_rate_limit(self, key: str | None = None) -> None:
        """Lift the rate limit on one key, or on all."""
        with self._lock:
            if key is None:
                self._limited.clear()
            else:
                self._limited.pop(key, None)

    # faults and answers -------------------------------------------------------------------------
    def queue_fault(
        self, fault: Fault, *, times: int = 1, model: str | None = None, path: str | None = None
    ) -> None:
        """Strike the next `times` matching requests (FIFO, one fault per request)."""
        with self._lock:
            self._queue.extend(_Rule(fault, model, path) for _ in range(times))

    def set_mode(
        self, fault: Fault | None, *, model: str | None = None, path: str | None = None
    ) -> None:
        """Strike every matching request until cleared (None clears this model/path's mode).

        Queued faults go first; several modes may stand, one per (model, path)."""
        with self._lock:
            self._modes = [r for r in self._modes if (r.model, r.path) != (model, path)]
            if fault is not None:
                self._modes.append(_Rule(fault, model, path))

    def clear_faults(self) -> None:
        """Forget queued faults and standing modes."""
        with self._lock:
            self._queue.clear()
            self._modes.clear()

    @property
    def pending_faults(self) -> int:
        """Queued faults not yet consumed."""
        return len(self._queue)

    def script(self, *answers: AnswerLike, model: str | None = None) -> None:
        """Queue answers (FIFO, one per completion request, optionally only for `model`);
        a str is an `Answer(content=...)`. Unscripted requests get `answer_fn` or the echo."""
        with self._lock:
            self._scripts.extend((model, a) for a in answers)

    def _next_answer(self, model: str | None, request_json: Any) -> Answer | None:
        if not self._scripts and self.answer_fn is None:
            return None
        with self._lock:
            for i, (m, a) in enumerate(self._scripts):
                if m is None or m == model:
                    del self._scripts[i]
                    return Answer(content=a) if isinstance(a, str) else a
        if self.answer_fn is not None:
            a = self.answer_fn(request_json)
            return Answer(content=a) if isinstance(a, str) else a
        return None

    # per-request flow -------------------------------------------------------------------------
    def _handle(self, req: Request, resp: Responder) -> Awaitable[None] | None:
        """Record, check the key, pick a fault, then answer: synchronously on the fast path."""
        parsed: Any = _NO_JSON
        model = None
        if req.body:
            try:
                parsed = _decode(req.body.decode())
            except ValueError:
                parsed = _NO_JSON
            else:
                if isinstance(parsed, dict):
                    m = parsed.get("model")
                    model = m if isinstance(m, str) else None
        key = self._api_key(req)
        with self._lock:
            self._count += 1
            if self._keys is not None and key not in self._keys:
                auth: JsonReply | None = self._auth_error(key)
            elif key is not None and key in self._limited:
                secs = self._limited[key]
                auth = self._error(429, headers={"retry-after": _fmt_secs(secs)})
            else:
                auth = None
            fault = None if auth is not None else self._take_fault(model, req.path)
            if self.record:
                self._requests.append(
                    RecordedRequest(
                        req.method,
                        req.path,
                        req.query,
                        req.headers,
                        req.body,
                        None if parsed is _NO_JSON else parsed,
                        key,
                        model,
                        fault,
                        time.time(),
                    )
                )
        if auth is not None:
            self._write_json(resp, auth)
            return None
        if fault is None and not self.latency:
            reply = self._route(req, parsed)
            if isinstance(reply, JsonReply):
                self._write_json(resp, reply)
                return None
            return self._stream(resp, reply, None)
        return self._slow_path(req, resp, parsed, fault)

    def _take_fault(self, model: str | None, path: str) -> Fault | None:
        if not self._queue and not self._modes:
            return None
        for i, rule in enumerate(self._queue):
            if rule.matches(model, path):
                del self._queue[i]
                return rule.fault
        for rule in self._modes:
            if rule.matches(model, path):
                return rule.fault
        return None

    async def _slow_path(
        self, req: Request, resp: Responder, parsed: Any, fault: Fault | None
    ) -> None:
        kind = fault.kind if fault is not None else ""
        if fault is not None and kind == "drop":
            resp.abort()
            return
        if fault is not None and kind == "stall":
            if fault.seconds is None:
                await asyncio.Event().wait()
            await asyncio.sleep(fault.seconds or 0)
            resp.cut()
            return
        if fault is not None and kind == "status":
            self._write_json(resp, self._status_reply(fault))
            return
        if fault is not None and kind == "context_length_exceeded":
            self._write_json(resp, self._context_length_error())
            return
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and kind == "delay":
            await asyncio.sleep(fault.seconds or 0)
        if fault is not None and kind == "wrong_content_type":
            page = (
                b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            )
            resp.respond(200, page, content_type="text/html; charset=utf-8")
            return
        reply = self._route(req, parsed)
        if isinstance(reply, StreamReply):
            await self._stream(resp, reply, fault)
            return
        if fault is None or reply.status >= 400 or kind in ("delay", "slow_stream"):
            self._write_json(resp, reply)
        elif kind == "malformed_json":
            body = reply.body if isinstance(reply.body, bytes) else dumps(reply.body)
            resp.respond(200, body[: len(body) // 2], reply.headers)
        elif kind == "cut_stream":
            body = reply.body if isinstance(reply.body, bytes) else dumps(reply.body)
            hdrs = {
                "content-type": "application/json",
                "content-length": str(len(body)),
                **reply.headers,
            }
            resp.send_raw(_head(200, hdrs) + body[: len(body) // 2])
            resp.cut()
        elif kind == "error_event":
            self._write_json(resp, self._error(500))
        else:
            self._write_json(resp, reply)

    def _status_reply(self, fault: Fault) -> JsonReply:
        hdrs = _lower(fault.headers)
        if fault.body is None:
            reply = self._error(fault.status_code)
            reply.headers.update(hdrs)
            return reply
        return JsonReply(fault.status_code, fault.body, hdrs)

    @staticmethod
    def _write_json(resp: Responder, reply: JsonReply) -> None:
        body = reply.body
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, bytes):
            ctype = reply.headers.get("content-type", "application/json")
            resp.respond(reply.status, body, reply.headers, content_type=ctype)
        else:
            resp.respond_json(reply.status, body, reply.headers)

    async def _stream(self, resp: Responder, reply: StreamReply, fault: Fault | None) -> None:
        """Write the events one write each, applying stream faults, chunk delay and write splits."""
        kind = fault.kind if fault is not None else ""
        events = reply.events
        stop_at = len(events)
        if kind in ("cut_stream", "error_event"):
            stop_at = min(fault.after, len(events)) if fault is not None else stop_at
        if kind == "malformed_json" and events:
            events = list(events)
            events[min(1, len(events) - 1)] = self._malformed_event()
        delay = fault.seconds if kind == "slow_stream" and fault is not None else self.chunk_delay
        size = self.write_size
        resp.start_stream(200, reply.headers, chunked=self.chunked)
        pos = 0  # bytes streamed so far: cuts fall every `size` bytes of the whole stream
        for n, ev in enumerate(events[:stop_at], 1):
            pieces = [ev]
            if size:
                first = size - pos % size
                pieces = [ev[:first]] + [ev[i : i + size] for i in range(first, len(ev), size)]
            pos += len(ev)
            for piece in pieces:
                if delay:
                    await asyncio.sleep(delay)
                await resp.send(piece)
                if resp.closed:
                    return
            if not delay and n % 16 == 0:
                await asyncio.sleep(0)  # long streams interleave with others, as upstreams do
        if kind == "cut_stream":
            resp.cut()
            return
        if kind == "error_event" and fault is not None:
            await resp.send(self._error_event(fault.error))
        await resp.end()

    # provider hooks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _api_key(self, req: Request) -> str | None:
        """The key the request carries, in this provider's header."""

    @abc.abstractmethod
    def _auth_error(self, key: str | None) -> JsonReply:
        """The provider's answer to a missing or wrong key."""

    @abc.abstractmethod
    def _error(
        self,
        status: int,
        message: str | None = None,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JsonReply:
        """An error body in the provider's own shape."""

    @abc.abstractmethod
    def _context_length_error(self) -> JsonReply:
        """The provider's 'prompt too long' error."""

    @abc.abstractmethod
    def _route(self, req: Request, parsed: Any) -> Reply:
        """The reply to a request that passed the key and fault checks."""

    @abc.abstractmethod
    def _error_event(self, error: Mapping[str, Any] | None) -> bytes:
        """A stream event carrying an error, in the provider's shape."""

    @abc.abstractmethod
    def _malformed_event(self) -> bytes:
        """A stream event whose data is not JSON."""

    # helpers for subclasses -------------------------------------------------------------------
    @staticmethod
    def new_id(prefix: str) -> str:
        """A unique id in the provider's style (salted counter: cheaper than randomness)."""
        return f"{prefix}{_ID_SALT}{next(_ids):012x}"

    @staticmethod
    def truncate(
        text: str, max_tokens: int | None, stops: Sequence[str]
    ) -> tuple[str, str | None, bool]:
        """Apply stop sequences then a token cap: (text, stop sequence hit, cap hit)."""
        hit = None
        cut = len(text)
        for s in stops:
            i = text.find(s) if s else -1
            if 0 <= i < cut:
                cut, hit = i, s
        text = text[:cut]
        if max_tokens is not None and count_tokens(text) > max_tokens:
            words = text.split()
            return " ".join(words[:max_tokens]), None, True
        return text, hit, False

    @staticmethod
    def split_text(text: str) -> list[str]:
        """Split into word-sized pieces (whitespace kept) so a stream has several deltas."""
        out: list[str] = []
        start = 0
        n = len(text)
        while start < n:
            i = start
            while i < n and text[i].isspace():
                i += 1
            while i < n and not text[i].isspace():
                i += 1
            out.append(text[start:i])
            start = i
        return out

    @staticmethod
    def split_json(text: str, parts: int = 3) -> list[str]:
        """Split a JSON string into `parts` arbitrary pieces, as a model streams arguments."""
        if len(text) < parts:
            return [text] if text else []
        step = -(-len(text) // parts)
        return [text[i : i + step] for i in range(0, len(text), step)]
