"""The gateway: an OpenAI-compatible ASGI application over the Dispatcher.

Every endpoint is a thin translation between HTTP and the Python API; nothing
here decides routing, retries or integration. The request path is kept short:
one body read, one JSON parse, one validation, one dispatch, one serialisation.

Work that talks to an upstream runs under a *guard*: a client that hangs up
cancels it (so its upstream request is closed, not left running), and
``[server] request_timeout`` bounds it (504). Under asyncio the guard is one
sweep timer shared by every request (:class:`_AsyncioGuard`): an anyio task group
and cancel scope per request cost about a third of the gateway's throughput at 32
connections, and even a watcher task and a timer per request cost a tenth of its
CPU (docs/performance.md). Other event loops get the portable anyio version.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import importlib.resources
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

import anyio
import attrs
import sniffio

from .. import __version__
from .._config import CooperationConfig, SystemConfig
from .._dispatch import Dispatcher, Progress
from .._errors import ConfigError, CoopError, did_you_mean
from .._plan import Limits, Plan
from .._plugins import Plugins
from .._redact import redact_data, remember_config
from .._routing import RouteDecision
from .._services import ServiceManager
from .._wire import ChatChunk, chunk_to_sse, parse_chat_request, response_json, to_wire
from ._access import AccessLog
from ._http import (
    ClientDisconnected,
    HTTPError,
    Receive,
    Scope,
    Send,
    error_body,
    error_for,
    read_body,
    send_bytes,
    send_error,
    send_json,
)

__all__ = ["GatewayApp", "create_app"]

log = logging.getLogger("coop.server")

_T = TypeVar("_T")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON = [(b"content-type", b"application/json")]
_DONE = b"data: [DONE]\n\n"
#: ``GET /v1/models/{id}``: one model object (the SDK's ``models.retrieve``).
_MODEL_PATHS = ("/v1/models/", "/models/")
#: /v1/completions parameters chat has no equivalent for, and the value that asks for nothing.
_LEGACY_NEUTRAL: dict[str, object] = {"echo": False, "best_of": 1, "suffix": "", "logprobs": 0}
#: A client's ``x-request-id`` is echoed only when it is this tame (it goes into a header and logs).
_SAFE_ID = re.compile(r"[\w.:@/+=-]{1,128}", re.ASCII)
#: Request headers the gateway reads; collected in one pass over the header list.
_WANTED = frozenset(
    {
        b"x-request-id",
        b"authorization",
        b"x-api-key",
        b"x-coop-max-cost",
        b"x-coop-max-latency",
        b"content-length",
        b"content-type",
        b"host",
        b"origin",
        b"sec-fetch-site",
    }
)
#: Host names an open gateway answers (DNS rebinding sends the attacker's name instead).
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
#: A JSON string escape of a UTF-16 surrogate: only then can a parsed string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

Handler = Callable[[Scope, Receive, Send, "RequestContext"], Awaitable[None]]


@attrs.define(slots=True)
class RequestContext:
    """What one request carries between the entry point, its handler and the access log."""

    request_id: str
    started: float
    headers: dict[bytes, str]
    status: int = 0
    model: str | None = None
    deployment: str | None = None
    response_headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)
    #: The managed key (coop._state.KeyRecord) the request came with; None for a static one.
    key: Any = None
    #: Its admission (coop._keys.Admission): settled once the answer is out.
    admission: Any = None


def _parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(
            400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HTTPError(
            400, f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    except RecursionError:  # '[[[[...' thousands deep
        raise HTTPError(400, "request body is nested too deeply", code="invalid_json") from None
    if _SURROGATE_ESCAPE.search(body):  # rare: the walk runs only when an escape is there
        where = _surrogate_at(data, "")
        if where is not None:
            raise HTTPError(
                400,
                f"{where or 'body'}: contains a lone UTF-16 surrogate (\\ud800-\\udfff "
                "without its pair), which is not valid Unicode",
                param=where or None,
                code="invalid_encoding",
            )
    return data


def _surrogate_at(value: Any, path: str) -> str | None:
    """The path (``messages[0].content``) of the first string holding a lone surrogate."""
    if isinstance(value, str):
        return path if _LONE_SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if _LONE_SURROGATE.search(key):
                return _LONE_SURROGATE.sub("?", here)
            found = _surrogate_at(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _surrogate_at(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _limits(ctx: RequestContext, data: Any) -> tuple[float | None, float | None]:
    """Per-request routing limits: ``x-coop-max-cost``/``x-coop-max-latency`` headers or a ``coop`` body object."""
    headers = ctx.headers
    if (
        b"x-coop-max-cost" not in headers
        and b"x-coop-max-latency" not in headers
        and not (isinstance(data, dict) and "coop" in data)
    ):
        return None, None  # the common case, answered without the loop below
    options = data.pop("coop", None) if isinstance(data, dict) else None
    options = options if isinstance(options, dict) else {}
    values: list[float | None] = []
    for name, header in (("max_cost", b"x-coop-max-cost"), ("max_latency", b"x-coop-max-latency")):
        raw = ctx.headers.get(header)
        value: Any = raw if raw is not None else options.get(name)
        if value is None:
            values.append(None)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise HTTPError(400, f"{name} must be a number, got {value!r}", param=name) from None
        if not number >= 0:  # also refuses NaN
            raise HTTPError(400, f"{name} must be >= 0, got {number:g}", param=name)
        values.append(number)
    return values[0], values[1]


class GatewayApp:
    """ASGI callable. ``lifespan`` opens the dispatcher in the server's event loop."""

    def __init__(
        self, config: SystemConfig, *, plugins: Plugins | None = None, health_checks: bool = True
    ) -> None:
        self.config = config
        self._plugins = plugins
        self._health_checks = health_checks
        self.dispatcher: Dispatcher | None = None
        self.started = time.time()
        #: Requests doing model work now (health, status and metrics are not counted).
        self.in_flight = 0
        self._keys: list[bytes] = []
        #: Managed keys (coop._keys.KeyManager over ``self.state``), made at startup.
        self.key_manager: Any = None
        #: Whether requests need a key: [server] api_keys set or any managed key exists.
        self._auth_on = False
        self._access = config.server.access_log
        self._access_log = AccessLog(self._access)
        self._timeout = config.server.request_timeout
        self._max_header = config.server.max_header_bytes
        self._body_timeout = min(config.server.body_timeout, self._timeout)
        #: Host names (lower case, no port) an open gateway answers; "*" turns the check off.
        self._hosts = _LOOPBACK_NAMES | {h.lower() for h in config.server.allowed_hosts}
        self._asyncio_guard: _AsyncioGuard | None = None
        #: coop._tracing.Tracing when [monitoring] tracing is on (set at startup), else None.
        self._tracing: Any = None
        self.alerts: Any = None  # coop._alerts.AlertManager, made at startup
        #: The shared state ([state]: coop._state.open_state), opened at startup.
        self.state: Any = None
        #: Health events between replicas (coop._state_events.ReplicaSync), made at startup.
        self.replicas: Any = None
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/chat/completions"): self.chat_completions,
            ("POST", "/v1/completions"): self.completions,
            ("POST", "/v1/responses"): self.responses,
            ("POST", "/responses"): self.responses,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", "/embeddings"): self.embeddings,
            ("POST", "/completions"): self.completions,
            ("GET", "/v1/services"): self.list_services,
            ("GET", "/v1/models"): self.models,
            ("GET", "/models"): self.models,
            ("POST", "/v1/messages"): self.anthropic_messages,
            ("POST", "/v1/messages/count_tokens"): self.anthropic_count_tokens,
            ("POST", "/v1/route"): self.route,
            ("POST", "/v1/cooperate"): self.cooperate,
            ("GET", "/health"): self.health,
            ("GET", "/health/ready"): self.ready,
            ("GET", "/status"): self.status,
            ("GET", "/metrics"): self.metrics,
            ("GET", "/dashboard"): self.dashboard,
            ("GET", "/alerts"): self.alerts_route,
        }
        self._paths = {path for _, path in self._routes}
        self._public = frozenset({"/health", "/health/ready", "/dashboard"})
        #: What a managed key's rpm and budget count (the endpoints that call upstreams).
        self._limited = frozenset(
            {
                self.chat_completions,
                self.completions,
                self.responses,
                self.embeddings,
                self.anthropic_messages,
                self.cooperate,
                self.run_service,
            }
        )
        self._counted = frozenset(
            {
                self.chat_completions,
                self.completions,
                self.responses,
                self.embeddings,
                self.anthropic_messages,
                self.anthropic_count_tokens,
                self.route,
                self.cooperate,
                self.run_service,
            }
        )

    # -- lifecycle ----------------------------------------------------------------

    async def startup(self) -> None:
        self._keys = [k.encode() for k in self.config.server.resolved_api_keys()]
        remember_config(self.config)  # what leaves the process is masked (coop._redact)
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        self._asyncio_guard = _AsyncioGuard(self._timeout) if library == "asyncio" else None
        self.dispatcher = Dispatcher(
            self.config, plugins=self._plugins, health_checks=self._health_checks
        )
        self._tracing = self.dispatcher.engine.tracing
        from .._state import open_state

        self.state = open_state(self.config)
        await self.state.open()
        self.dispatcher.engine.state = self.state
        try:
            await self.dispatcher.engine.initialize()
        except BaseException:
            await self.state.aclose()
            raise
        from .._state_events import ReplicaSync

        self.replicas = ReplicaSync(self.dispatcher.engine, self.state)
        self.replicas.attach()
        self.dispatcher.engine.replicas = self.replicas
        from .._alerts import AlertManager

        self.alerts = AlertManager(self.config.monitoring, self.dispatcher.engine)
        await self._start_keys()

    async def _start_keys(self) -> None:
        """Managed keys over the shared state: loaded now, kept fresh by ``run`` (lifespan)."""
        self._auth_on = bool(self._keys)
        if self.state is None:
            return
        from .._keys import KeyManager
        from .._state import StateError

        assert self.dispatcher is not None
        metrics = self.dispatcher.engine.metrics
        manager = KeyManager(
            self.state,
            known_models=self.config.served_names(),
            sync_interval=self.config.state.sync_interval,
        )

        def on_change(active: bool) -> None:
            self._auth_on = bool(self._keys) or active
            metrics.tap = manager.tap if active else None

        manager.on_change = on_change
        self.key_manager = manager
        try:
            await manager.sync()
        except StateError as exc:
            log.warning("managed keys not loaded: %s", exc)

    async def shutdown(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.engine.shutdown()
        if self.replicas is not None:
            self.replicas.closing = True
        if self.state is not None:
            await self.state.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Startup, the background tasks (alerts, managed keys, replica events), shutdown.

        The background tasks run in a task group entered after startup and left before
        shutdown: scopes the engine opened at startup (its health checks) close in the
        reverse order, the tasks stop before the state they use is closed, and all of it
        ends before "shutdown.complete" (uvicorn closes the loop right after that).
        """
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            await self.startup()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        async with anyio.create_task_group() as tasks:
            if self.alerts is not None and self.config.monitoring.alerts:
                tasks.start_soon(self.alerts.run)
            if self.key_manager is not None:
                tasks.start_soon(self.key_manager.run)
            if self.replicas is not None:
                tasks.start_soon(self.replicas.run)
            await send({"type": "lifespan.startup.complete"})
            while message["type"] != "lifespan.shutdown":
                message = await receive()
            tasks.cancel_scope.cancel()
        await self.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    # -- the ASGI entry ---------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return
        if self.dispatcher is None:  # a server without lifespan support
            await self.startup()
        headers: dict[bytes, str] = {}
        size = 0
        for key, value in scope["headers"]:
            size += len(key) + len(value)
            if key in _WANTED:
                headers[key] = value.decode("latin-1")
        given_id = headers.get(b"x-request-id")
        request_id = given_id if given_id and _SAFE_ID.fullmatch(given_id) else os.urandom(16).hex()
        ctx = RequestContext(request_id, time.perf_counter(), headers)
        ctx.response_headers.append((b"x-request-id", request_id.encode()))
        sent_start = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal sent_start
            if message["type"] == "http.response.start":
                sent_start = True
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), *ctx.response_headers]
            await send(message)

        path = scope["path"]
        handler = self._routes.get((scope["method"], path))
        if handler is None and path.startswith("/v1/services/") and scope["method"] == "POST":
            handler = self.run_service
        elif handler is None and scope["method"] == "GET" and path.startswith(_MODEL_PATHS):
            handler = self.model
        elif handler is None and path.startswith("/v1/responses/"):
            handler = self.stored_response if scope["method"] in ("GET", "DELETE") else None
        counted = handler in self._counted
        if counted:
            self.in_flight += 1
        traced = None
        if self._tracing is not None:
            traced = self._tracing.start_server(scope, self._http_route(path, handler), request_id)
        try:
            if size > self._max_header:
                raise HTTPError(
                    431,
                    f"request headers exceed {self._max_header} bytes ([server] max_header_bytes)",
                    code="request_header_fields_too_large",
                    headers=[(b"connection", b"close")],
                )
            if not self._auth_on:
                self._check_browser(scope, headers)
            if handler is None:
                self._no_route(scope["method"], path)
            if self._auth_on and path not in self._public:
                found = self._authenticate(ctx)
                if found is not None:  # a managed key: its checks, its limits
                    await self._admit(ctx, found, handler)
                    if ctx.admission is not None:
                        tracking_send = self._settling(tracking_send, ctx)
            if scope["method"] == "POST" and b"content-type" in headers:
                _check_json_type(headers[b"content-type"])
            await handler(scope, receive, tracking_send, ctx)
        except ClientDisconnected:
            ctx.status = 499
        except asyncio.CancelledError:
            # uvicorn cancels what is still running once SIGTERM's drain time is up: answer
            # 503 (a stream has said so in an error event already), log it, no traceback
            if self._asyncio_guard is None:
                raise
            _withdraw_cancel()
            if not sent_start:
                try:
                    await send_error(tracking_send, _SHUTTING_DOWN)
                except OSError:
                    ctx.status = 499
            else:
                ctx.status = _SHUTTING_DOWN.status
        except Exception as exc:
            error = error_for(exc)
            if error.status >= 500 and not isinstance(exc, CoopError | HTTPError | TimeoutError):
                log.exception("internal error on %s %s", scope["method"], path)
            if not sent_start:
                try:
                    await self._send_error(tracking_send, error, path, ctx)
                except OSError:
                    ctx.status = 499
            else:
                ctx.status = error.status
        finally:
            if counted:
                self.in_flight -= 1
            if ctx.admission is not None:
                await self._settle(ctx)
            if self._access != "off":
                self._log_access(scope, ctx)
            if traced is not None:
                self._tracing.end_server(traced, ctx.status, ctx.model, ctx.deployment)

    def _http_route(self, path: str, handler: Handler | None) -> str | None:
        """The route template of a request (``http.route`` of its span), None if unknown."""
        if handler is None:
            return None
        if handler == self.run_service:
            return "/v1/services/{service}"
        if handler == self.model:
            return path[: path.index("/models/") + 8] + "{model}"
        return path

    def _no_route(self, method: str, path: str) -> NoReturn:
        if path in self._paths:
            allowed = ", ".join(sorted(m for m, p in self._routes if p == path))
            raise HTTPError(
                405,
                f"method {method} not allowed on {path} (use {allowed})",
                code="method_not_allowed",
                headers=[(b"allow", allowed.encode())],
            )
        raise HTTPError(404, f"no endpoint {method} {path}", code="not_found")

    def _check_browser(self, scope: Scope, headers: dict[bytes, str]) -> None:
        """On an open gateway, refuse what a web page could make a browser send.

        With no keys, any page the user visits could post to the gateway (CSRF) or
        rename it through DNS rebinding and read the answers. Keys stop both (a
        browser cannot add them without the gateway's consent), so these checks run
        only without them: the Host must be a loopback name (or ``[server]
        allowed_hosts``) when the connection came in on a loopback address, and a
        browser's ``Origin`` / ``Sec-Fetch-Site`` must not name another site.
        """
        if "*" in self._hosts:
            return
        host = headers.get(b"host")
        server = scope.get("server")
        if (
            host is not None
            and (server is None or _is_loopback_ip(server[0]))
            and _host_name(host) not in self._hosts
        ):
            raise HTTPError(
                421,
                f"this gateway has no API keys and answers only for localhost, not for "
                f"Host {host[:100]!r}; add the name to [server] allowed_hosts, or set "
                "[server] api_keys",
                code="host_not_allowed",
            )
        origin = headers.get(b"origin")
        if origin is not None and _host_name(origin.partition("://")[2]) not in self._hosts:
            raise HTTPError(
                403,
                f"cross-site request refused: Origin {origin[:100]!r} is not this machine; "
                "a gateway without API keys answers only local clients ([server] api_keys, "
                "allowed_hosts)",
                code="cross_site_request",
            )
        if headers.get(b"sec-fetch-site", "").lower() == "cross-site":
            raise HTTPError(
                403,
                "cross-site request refused (Sec-Fetch-Site: cross-site); a gateway without "
                "API keys answers only local clients ([server] api_keys)",
                code="cross_site_request",
            )

    def _authenticate(self, ctx: RequestContext) -> Any:
        """``None`` for a static key ([server] api_keys, compared in constant time); for a
        managed key its record, or its digest when the local copy does not know it yet."""
        given = None
        auth = ctx.headers.get(b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif ctx.headers.get(b"x-api-key"):
            given = ctx.headers[b"x-api-key"].strip()
        if not given:
            raise HTTPError(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                type="invalid_request_error",
                code="missing_api_key",
            )
        candidate = given.encode("latin-1")
        ok = False
        for key in self._keys:  # every key is compared: the time does not say which matched
            ok |= hmac.compare_digest(candidate, key)
        if ok:
            return None
        if self.key_manager is not None and self.key_manager.active:
            # a managed key: its record from the local copy, or its digest to look up
            return self.key_manager.lookup(given)  # type: ignore[no-any-return]
        raise _invalid_key()

    async def _admit(self, ctx: RequestContext, found: Any, handler: Handler) -> None:
        """A managed key: usable (not revoked or expired), then, on an endpoint that calls
        upstreams, its budget and rpm (coop._keys.KeyManager.admit)."""
        manager = self.key_manager
        record = found if not isinstance(found, str) else await manager.find(found)
        if record is None:
            raise _invalid_key()
        manager.check_usable(record)
        ctx.key = record
        if handler in self._limited:
            ctx.admission = await manager.admit(record)

    async def _admit_tokens(
        self, ctx: RequestContext, request: Any = None, tokens: int = 0
    ) -> None:
        """A managed key's tpm: the request's estimated tokens, counted before it runs."""
        if ctx.admission is not None:
            await self.key_manager.admit_tokens(ctx.admission, request, tokens=tokens)

    def _settling(self, send: Send, ctx: RequestContext) -> Send:
        """``send`` that records the key's usage just before the answer's last byte, so
        the client's next request already sees this one's spend."""

        async def settling_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await self._settle(ctx)
            await send(message)

        return settling_send

    async def _settle(self, ctx: RequestContext) -> None:
        admission = ctx.admission
        if admission is None or admission.settled:
            return
        try:
            with anyio.CancelScope(shield=True):
                await self.key_manager.settle(admission)
        except Exception:  # never the client's problem
            log.exception("recording the usage of key %r failed", admission.record.name)

    async def _send_error(
        self, send: Send, error: HTTPError, path: str, ctx: RequestContext
    ) -> None:
        """An error answer in the shape of the API asked: Anthropic's on /v1/messages."""
        if path.startswith("/v1/messages"):
            from ._anthropic import _error_json

            await send_bytes(
                send,
                error.status,
                _error_json(error, ctx.request_id),
                [*_JSON, *error.headers, (b"request-id", ctx.request_id.encode())],
            )
            return
        await send_error(send, error)

    def _log_access(self, scope: Scope, ctx: RequestContext) -> None:
        client = scope.get("client")
        self._access_log.write(
            method=scope["method"],
            path=scope["path"],
            status=ctx.status,
            ms=(time.perf_counter() - ctx.started) * 1000,
            model=ctx.model,
            deployment=ctx.deployment,
            request_id=ctx.request_id,
            client=client[0] if client else None,
        )

    # -- the guard: hang-ups cancel, request_timeout bounds ------------------------------

    async def _guard(self, receive: Receive, work: Awaitable[_T]) -> _T:
        """Await ``work``; a client that hangs up cancels it (and its upstream call).

        Raises :class:`ClientDisconnected` after a hang-up and ``TimeoutError``
        (504) past ``[server] request_timeout``.
        """
        if self._asyncio_guard is not None:
            return await self._asyncio_guard.run(receive, work)
        return await _guard_anyio(receive, work, self._timeout)

    # -- chat ---------------------------------------------------------------------

    async def _request_json(self, receive: Receive, ctx: RequestContext) -> Any:
        limit = self.config.server.max_body_bytes
        declared = ctx.headers.get(b"content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte is read
            raise HTTPError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        body = await self._read_body(receive, limit)
        if not body:
            raise HTTPError(
                400, "request body is empty; expected a JSON object", code="invalid_json"
            )
        return _parse_json(body)

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        """The body within ``[server] body_timeout``: a client that stalls gets a 408."""
        try:
            if self._asyncio_guard is not None:
                return await self._asyncio_guard.run(
                    None, read_body(receive, limit), self._body_timeout
                )
            with anyio.fail_after(self._body_timeout):
                return await read_body(receive, limit)
        except TimeoutError:
            raise HTTPError(
                408,
                f"the request body did not arrive within {self._body_timeout:g}s "
                "([server] body_timeout); send the whole body its Content-Length announces",
                code="request_timeout",
                headers=[(b"connection", b"close")],
            ) from None

    def _plan(self, ctx: RequestContext, data: Any) -> Plan:
        """The one plan for this request: limits from headers or body, resolved once."""
        max_cost, max_latency = _limits(ctx, data)
        request = parse_chat_request(data)
        assert self.dispatcher is not None
        limits = Limits(max_cost, max_latency, time.monotonic() + self._timeout)
        plan = self.dispatcher.plan(request, limits=limits)
        ctx.model = plan.target
        if ctx.key is not None:
            self.key_manager.check_plan(ctx.key, request.model, plan)
        model = self.config.models.get(plan.target) if plan.kind == "model" else None
        if model is not None and model.kind == "embedding":
            raise HTTPError(
                400,
                f"{plan.target!r} is an embedding model: use /v1/embeddings",
                param="model",
                code="model_not_supported",
            )
        return plan

    async def chat_completions(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        plan = self._plan(ctx, await self._request_json(receive, ctx))
        assert self.dispatcher is not None
        if ctx.admission is not None:
            await self._admit_tokens(ctx, plan.request)
        if plan.decision is not None:
            ctx.response_headers.append(_route_header(plan.decision))
        if plan.request.stream is True:
            await self._guard(receive, self._stream(plan, send, ctx, _chat_sse))
            return
        result = await self._guard(receive, self.dispatcher.run(plan))
        ctx.model, ctx.deployment = result.model, result.deployment
        ctx.response_headers += _coop_headers(result.model, result.deployment, result.cost)
        await send_bytes(send, 200, response_json(result.response), _JSON)

    async def _stream(
        self,
        plan: Plan,
        send: Send,
        ctx: RequestContext,
        encode: Callable[[ChatChunk], bytes | None],
    ) -> None:
        """Send the dispatcher's stream as SSE, ending in ``data: [DONE]``.

        Headers go out with the first chunk, once the deployment is known; an error
        before that is an ordinary JSON error, one after it an ``error`` event.
        """
        assert self.dispatcher is not None
        started = False

        def on_start(deployment: str | None, model: str) -> None:
            ctx.model, ctx.deployment = model, deployment

        async def start() -> None:
            nonlocal started
            if not started:
                started = True
                headers = [
                    *_SSE_HEADERS,
                    *_coop_headers(ctx.model or plan.target, ctx.deployment, None),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})

        # an async generator: closing it closes the upstream response on every exit path
        stream = cast(AsyncGenerator[Any, None], self.dispatcher.stream(plan, on_start=on_start))
        try:
            async for item in stream:
                if isinstance(item, Progress):
                    body: bytes | None = b": " + item.text.replace("\n", " ").encode() + b"\n\n"
                else:
                    body = encode(item)
                    if body is None:
                        continue
                await start()
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except Exception as exc:
            if not started:
                raise
            error = error_for(exc)
            ctx.status = error.status
            payload = (
                b"data: " + error_body(error.message, error.type, error.param, error.code) + b"\n\n"
            )
            await send({"type": "http.response.body", "body": payload, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        except asyncio.CancelledError:
            if not started or not self._cancelled_by_server():
                raise
            # the server gave up draining (SIGTERM past shutdown_timeout): say so, then end
            _withdraw_cancel()
            error = _SHUTTING_DOWN
            ctx.status = error.status
            payload = (
                b"data: " + error_body(error.message, error.type, error.param, error.code) + b"\n\n"
            )
            await send({"type": "http.response.body", "body": payload, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        finally:
            await stream.aclose()
        await start()
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})

    def _cancelled_by_server(self) -> bool:
        """Whether the cancellation now landing came from the server (shutdown), not the guard."""
        guard = self._asyncio_guard
        if guard is None:
            return False
        entry = guard._live.get(asyncio.current_task())  # type: ignore[arg-type]
        return entry is None or entry.why is None

    async def anthropic_messages(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """Anthropic's Messages API, translated onto the one request path (``_anthropic``)."""
        from ._anthropic import messages

        await messages(self, scope, receive, send, ctx)

    async def anthropic_count_tokens(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        from ._anthropic import count_tokens

        await count_tokens(self, scope, receive, send, ctx)

    async def completions(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """The legacy prompt form, served by the chat path."""
        data = await self._request_json(receive, ctx)
        if not isinstance(data, dict):
            raise HTTPError(400, "request body must be a JSON object")
        prompt = data.pop("prompt", None)
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise HTTPError(
                400, "prompt must be a string (or a list of one string)", param="prompt"
            )
        # legacy-only parameters: accepted at their neutral value, refused otherwise
        for name, neutral in _LEGACY_NEUTRAL.items():
            value = data.pop(name, None)
            if value is not None and not (type(value) is type(neutral) and value == neutral):
                raise HTTPError(400, f"{name} is not supported on /v1/completions", param=name)
        data["messages"] = [{"role": "user", "content": prompt}]
        plan = self._plan(ctx, data)
        assert self.dispatcher is not None
        if ctx.admission is not None:
            await self._admit_tokens(ctx, plan.request)
        if plan.decision is not None:
            ctx.response_headers.append(_route_header(plan.decision))
        if plan.request.stream is True:
            await self._guard(receive, self._stream(plan, send, ctx, _completion_sse))
            return
        result = await self._guard(receive, self.dispatcher.run(plan))
        ctx.model, ctx.deployment = result.model, result.deployment
        ctx.response_headers += _coop_headers(result.model, result.deployment, result.cost)
        response = to_wire(result.response)
        await send_json(
            send,
            200,
            {
                "id": _completion_id(response.get("id", "")),
                "object": "text_completion",
                "created": response.get("created", int(time.time())),
                "model": response.get("model"),
                "choices": [
                    {
                        "index": c.get("index", 0),
                        "text": (c.get("message") or {}).get("content") or "",
                        "logprobs": None,
                        "finish_reason": c.get("finish_reason") or "stop",
                    }
                    for c in response.get("choices", [])
                ],
                "usage": to_wire(result.usage),
            },
        )

    # -- models, routing, cooperation -------------------------------------------------

    async def models(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        await send_json(send, 200, {"object": "list", "data": self.model_data()})

    async def model(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        """``GET /v1/models/{id}``: the entry ``/v1/models`` lists for that id, or a 404."""
        name = scope["path"].split("/models/", 1)[1]
        data = self.model_data()
        for entry in data:
            if entry["id"] == name:
                await send_json(send, 200, entry)
                return
        known = [entry["id"] for entry in data]
        raise HTTPError(
            404,
            f"no model {name[:100]!r}{did_you_mean(name, known)}; known: {', '.join(known)}",
            param="model",
            code="model_not_found",
        )

    async def stored_response(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """``GET``/``DELETE /v1/responses/{id}``: a response stored with ``store: true``."""
        from ._responses import serve_stored

        await serve_stored(self, scope, send, ctx)

    async def responses(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """OpenAI's Responses API, translated onto the chat path (``_responses``)."""
        from ._responses import serve_responses

        await serve_responses(self, receive, send, ctx)

    async def embeddings(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """OpenAI's embeddings API on the embedding models (``_embeddings``)."""
        from ._embeddings import serve_embeddings

        await serve_embeddings(self, receive, send, ctx)

    def model_data(self) -> list[dict[str, Any]]:
        """The model objects ``/v1/models`` lists: ``auto``, the models, the cooperations."""
        created = int(self.started)
        data = [
            {
                "id": "auto",
                "object": "model",
                "created": created,
                "owned_by": "coop",
                "coop": {"kind": "router", "router": self.config.routing.router},
            }
        ]
        for name, model in sorted(self.config.models.items()):
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "coop",
                    "coop": {
                        "kind": "model",
                        "tier": model.tier,
                        "context_window": model.context_window,
                    }
                    if model.kind == "chat"
                    else {
                        "kind": "embedding",
                        "dimensions": model.dimensions,
                        "context_window": model.context_window,
                    },
                }
            )
        for name, coop in sorted(self.config.cooperations.items()):
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "coop",
                    "coop": {"kind": "cooperation", "mode": coop.mode, "strategy": coop.strategy},
                }
            )
        return data

    async def route(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        """The decision ``model="auto"`` would get for this body (tools and attachments count)."""
        data = await self._request_json(receive, ctx)
        if (
            isinstance(data, dict)
            and "messages" not in data
            and isinstance(data.get("prompt"), str)
        ):
            data["messages"] = [{"role": "user", "content": data.pop("prompt")}]
        if isinstance(data, dict):
            data["model"] = "auto"
        plan = self._plan(ctx, data)
        assert plan.decision is not None
        body = plan.decision.to_dict()
        body["plan"] = {
            "kind": plan.kind,
            "target": plan.target,
            "cascade": None
            if plan.cascade is None
            else dict(zip(("cheap", "strong", "samples"), plan.cascade, strict=True)),
        }
        await send_json(send, 200, body)

    async def cooperate(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """An ad-hoc cooperation: ``{"query" | "messages", "mode", "models" | "stages", ...}``.

        Every OpenAI chat parameter in the body (``temperature``, ``tools``...) reaches
        the members, as on ``/v1/chat/completions``.
        """
        data = await self._request_json(receive, ctx)
        if not isinstance(data, dict):
            raise HTTPError(400, "request body must be a JSON object")
        assert self.dispatcher is not None
        cooperation = _cooperation_of(data)
        strategies = self.dispatcher.plugins.names("strategy")
        if cooperation.strategy is not None and cooperation.strategy not in strategies:
            raise HTTPError(
                400,
                f"unknown strategy {cooperation.strategy[:100]!r}"
                f"{did_you_mean(cooperation.strategy, strategies)}; "
                f"available: {', '.join(sorted(strategies))}",
                param="strategy",
                code="invalid_value",
            )
        calls = fanout(cooperation)
        if calls > self.config.server.max_fanout:
            raise HTTPError(
                400,
                f"this cooperation could make {calls} model calls; the gateway allows "
                f"{self.config.server.max_fanout} per request ([server] max_fanout): use "
                "fewer models, stages or rounds",
                param="models" if cooperation.models else "stages",
                code="fanout_limit_exceeded",
            )
        query: Any = (
            data.pop("messages", None) or data.pop("query", None) or data.pop("prompt", None)
        )
        if isinstance(query, str):
            query = [{"role": "user", "content": query}]
        if not query or not isinstance(query, list):
            raise HTTPError(400, "give 'query' (a string) or 'messages'", param="query")
        data["messages"] = query
        data["model"] = cooperation.name or "cooperation"
        max_cost, max_latency = _limits(ctx, data)
        request = parse_chat_request(data)
        limits = Limits(max_cost, max_latency, time.monotonic() + self._timeout)
        plan = self.dispatcher.plan_cooperation(request, cooperation, limits=limits)
        ctx.model = plan.target
        if ctx.key is not None:
            self.key_manager.check_names(ctx.key, _members(cooperation))
            await self._admit_tokens(ctx, plan.request)
        try:
            result = await self._guard(receive, self.dispatcher.run(plan))
        except ConfigError as exc:  # a strategy refusing a setting the client sent: a 400
            if exc.key is None or exc.key not in cooperation.options:
                raise
            raise _invalid(f"options.{exc.key}", exc.reason) from None
        assert result.cooperation is not None
        await send_json(send, 200, result.cooperation.to_dict())

    # -- application services ----------------------------------------------------------

    async def list_services(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        assert self.dispatcher is not None
        data = [
            {
                "name": name,
                "description": cls.description,
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type.__name__,
                        "choices": list(p.choices) if p.choices else None,
                        "default": p.default,
                        "required": p.required,
                    }
                    for p in cls.parameters
                ],
            }
            for name, cls in sorted(self.dispatcher.plugins.services().items())
        ]
        await send_json(send, 200, {"object": "list", "data": data})

    async def run_service(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """``POST /v1/services/{type}`` with ``{"content" | "content_base64", "parameters"}``."""
        import base64
        import binascii

        service_type = scope["path"].removeprefix("/v1/services/")
        assert self.dispatcher is not None
        services = self.dispatcher.plugins.services()
        if service_type not in services:
            known = ", ".join(sorted(services)) or "none installed"
            raise HTTPError(
                404,
                f"no service {service_type[:100]!r}{did_you_mean(service_type, services)}; "
                f"available: {known}",
                code="service_not_found",
            )
        data = await self._request_json(receive, ctx)
        if not isinstance(data, dict):
            raise HTTPError(400, "request body must be a JSON object")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise HTTPError(400, "parameters must be an object", param="parameters")
        content: str | bytes | None = data.get("content")
        if data.get("content_base64") is not None:
            try:
                content = base64.b64decode(str(data["content_base64"]), validate=True)
            except (binascii.Error, ValueError):
                raise HTTPError(
                    400, "content_base64 is not valid base64", param="content_base64"
                ) from None
        if not isinstance(content, str | bytes) or not content:
            raise HTTPError(
                400, "give 'content' (text) or 'content_base64' (a file)", param="content"
            )
        if ctx.key is not None and ctx.key.models:
            raise HTTPError(
                403,
                f"services choose their own models, and key {ctx.key.name!r} may use only "
                f"{', '.join(ctx.key.models)}; use a key without a models list",
                param="model",
                code="model_not_allowed",
            )
        manager = ServiceManager(self.dispatcher)
        limits = Limits(deadline=time.monotonic() + self._timeout)
        response = await self._guard(
            receive, manager.run(service_type, content, parameters, limits=limits)
        )
        ctx.model = ",".join(response.models) or None
        await send_json(send, 200, response.to_dict())

    # -- health and status --------------------------------------------------------------

    async def health(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        await send_json(send, 200, {"status": "ok", "version": __version__})

    def _healthy_models(self) -> list[str]:
        assert self.dispatcher is not None
        engine = self.dispatcher.engine
        return [name for name in engine.models if engine.healthy(name)]

    async def ready(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        healthy = self._healthy_models()
        status = 200 if healthy else 503
        await send_json(
            send,
            status,
            {"status": "ready" if healthy else "unavailable", "healthy_models": healthy},
        )

    def status_data(self) -> dict[str, Any]:
        """What ``/status`` shows, every string redacted (``last_error``, URLs...)."""
        from .._resources import resource_usage

        assert self.dispatcher is not None
        engine = self.dispatcher.engine
        return redact_data(
            {
                "version": __version__,
                "uptime_s": round(time.time() - self.started, 3),
                "in_flight": self.in_flight,
                "config": self.config.source,
                "router": self.config.routing.router,
                "endpoints": {
                    name: {"provider": e.provider, "base_url": e.base_url}
                    for name, e in self.config.endpoints.items()
                },
                "models": engine.deployment_snapshot(),
                "cooperations": sorted(self.config.cooperations),
                "metrics": engine.metrics.snapshot(),
                "resources": resource_usage(),
                # the shared state's backend, whether it answers, and the replica events
                "state": {**self.state.describe(), **self.replicas.describe()}
                if self.state is not None and self.replicas is not None
                else {},
                # managed keys by name: this process's figures, never a key
                "gateway_keys": self.key_manager.snapshot() if self.key_manager else {},
            }
        )

    async def status(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> None:
        await send_json(send, 200, self.status_data())

    async def alerts_route(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        data = self.alerts.status() if self.alerts is not None else {"rules": [], "webhooks": []}
        await send_json(send, 200, data)

    async def dashboard(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        """The live page (public: it holds no data; its ``/status`` polls need the key)."""
        await send_bytes(send, 200, _dashboard_page(), _DASHBOARD_HEADERS)

    async def metrics(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext
    ) -> None:
        from ._prometheus import CONTENT_TYPE, make_registry, render_metrics

        assert self.dispatcher is not None
        if getattr(self, "_registry", None) is None:  # one per app, never the global one
            self._registry = make_registry(
                self.dispatcher.engine,
                in_flight=lambda: self.in_flight,
                started=self.started,
                keys=lambda: {} if self.key_manager is None else self.key_manager.stats,
            )
        body = render_metrics(self._registry)
        await send_bytes(send, 200, body, [(b"content-type", CONTENT_TYPE)])


# -- helpers ----------------------------------------------------------------------------


@functools.cache
def _dashboard_page() -> bytes:
    return importlib.resources.files("coop.server").joinpath("dashboard.html").read_bytes()


_DASHBOARD_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        b"frame-ancestors 'none'",
    ),
]


def _host_name(host: str) -> str:
    """``Example.COM:8080`` → ``example.com``; ``[::1]:80`` → ``[::1]``."""
    host = host.strip().lower().rstrip("/")
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].rstrip(".")


def _is_loopback_ip(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "localhost")


#: Media types a POST body may declare; a browser cannot send these cross-site without a preflight.
_JSON_TYPES = frozenset({"application/json", "text/json"})


def _check_json_type(content_type: str) -> None:
    media = content_type.partition(";")[0].strip().lower()
    if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise HTTPError(
        415,
        f"request body must be JSON (Content-Type: application/json), not {media[:100]!r}",
        param="content-type",
        code="unsupported_media_type",
    )


#: ``/v1/cooperate`` keys that describe the cooperation; the rest is the chat request.
_COOPERATION_KEYS = ("mode", "models", "stages", "strategy", "quorum", "timeout", "options")


def _cooperation_of(data: dict[str, Any]) -> CooperationConfig:
    """The ad-hoc cooperation a ``/v1/cooperate`` body describes (its keys are removed).

    Everything here comes from the client, so every value is checked for its type
    before the scheduler or a strategy reads it: a wrong one is a 400 naming it.
    """
    spec = {key: data.pop(key) for key in _COOPERATION_KEYS if key in data}
    mode = spec.get("mode", "parallel")
    if mode not in ("sequential", "parallel", "pipeline"):
        raise HTTPError(
            400,
            f"mode {mode!r} is not one of sequential, parallel, pipeline"[:300],
            param="mode",
            code="invalid_value",
        )
    checks: dict[str, tuple[type | tuple[type, ...], str]] = {
        "models": (list, "a list of model names"),
        "stages": (list, 'a list of {"model": ..., "task": ...} objects'),
        "strategy": (str, "a strategy name"),
        "quorum": (int, "a positive integer"),
        "timeout": ((int, float), "a number of seconds"),
        "options": (dict, "an object"),
    }
    for key, (kind, what) in checks.items():
        value = spec.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise _invalid(key, f"must be {what}, got {value!r}")
    timeout = spec.get("timeout")
    if timeout is not None and not 0 < timeout < math.inf:
        raise _invalid("timeout", f"must be a number of seconds > 0, got {timeout!r}")
    if isinstance(spec.get("quorum"), int) and spec["quorum"] < 1:
        raise _invalid("quorum", "must be >= 1")
    models = spec.get("models") or []
    for i, model in enumerate(models):
        if not isinstance(model, str):
            raise _invalid(f"models[{i}]", f"must be a model name, got {model!r}")
    stages = spec.get("stages") or []
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise _invalid(
                f"stages[{i}]", f'must be an object {{"model": ..., "task": ...}}, got {stage!r}'
            )
        if not isinstance(stage.get("model"), str):
            raise _invalid(f"stages[{i}].model", "must be a model name")
        for key, value in stage.items():
            if key not in ("model", "task", "prompt"):
                raise _invalid(f"stages[{i}].{key}", "unknown key (use model, task, prompt)")
            if not isinstance(value, str):
                raise _invalid(f"stages[{i}].{key}", f"must be a string, got {value!r}")
    options = spec.get("options") or {}
    for key in _SERVER_ONLY_OPTIONS:
        if key in options:
            raise _invalid(f"options.{key}", "is read from the server's own configuration only")
    for key, low in (("rounds", 0), ("layers", 1)):
        value = options.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < low
        ):
            raise _invalid(f"options.{key}", f"must be an integer >= {low}, got {value!r}")
    weights = options.get("weights")
    if weights is not None and not isinstance(weights, dict):
        raise _invalid("options.weights", f"must be an object of model: weight, got {weights!r}")
    for key, value in [*(weights or {}).items(), ("default_weight", options.get("default_weight"))]:
        if key == "default_weight" and value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value < math.inf
        ):
            where = (
                "options.default_weight" if key == "default_weight" else f"options.weights.{key}"
            )
            raise _invalid(where, f"must be a number >= 0, got {value!r}")
    for key in ("judge", "aggregator"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise _invalid(f"options.{key}", f"must be a model name, got {options[key]!r}")
    quorum = spec.get("quorum")
    members = len(models) or len(stages)
    if quorum is not None and members and quorum > members:
        raise _invalid("quorum", f"must be at most the number of models ({members}), got {quorum}")
    return CooperationConfig(
        name="",
        mode=mode,
        models=list(models),
        strategy=spec.get("strategy"),
        stages=list(stages),
        quorum=spec.get("quorum"),
        timeout=timeout,
        options=dict(options),
    )


def _members(cooperation: CooperationConfig) -> list[str]:
    """Every model an ad-hoc cooperation names: members, stages, judge, aggregator."""
    names = list(cooperation.models)
    names += [s["model"] for s in cooperation.stages if isinstance(s.get("model"), str)]
    for key in ("judge", "aggregator"):
        if isinstance(cooperation.options.get(key), str):
            names.append(cooperation.options[key])
    return names


#: Strategy settings naming files on the gateway's machine: configuration, never a client's.
_SERVER_ONLY_OPTIONS = ("weights_file",)


def _invalid(param: str, why: str) -> HTTPError:
    return HTTPError(400, f"{param}: {why}"[:300], param=param, code="invalid_value")


def fanout(cooperation: CooperationConfig) -> int:
    """The most model calls a cooperation can make: its members plus its strategy's calls.

    Members are the models (parallel, sequential) or stages (pipeline). The built-in
    strategies' own calls follow their settings: ``debate`` asks every member again
    each round (``rounds``, default 2), ``refine`` drafts once then critiques and
    improves each round (``rounds``, default 1), ``ensemble`` asks every member again
    for each extra layer (``layers``, default 1) and then its aggregator, ``judge``
    makes one call; voting strategies make none. Any other strategy counts one call
    per member plus one.
    """
    members = len(cooperation.models) or len(cooperation.stages)
    strategy = cooperation.strategy
    if strategy is None or strategy in ("voting", "weighted"):
        return members
    options = cooperation.options
    if strategy == "debate":
        return members * (1 + int(options.get("rounds", 2)))
    if strategy == "refine":
        return members + 1 + 2 * int(options.get("rounds", 1))
    if strategy == "ensemble":
        return members * int(options.get("layers", 1)) + 1
    if strategy == "judge":
        return members + 1
    return 2 * members + 1


#: What a request still running when the server stops draining is told (and logged as).
_SHUTTING_DOWN = HTTPError(
    503,
    "the gateway is shutting down and stopped this request after its drain time "
    "([server] shutdown_timeout); retry it",
    type="server_error",
    code="server_shutting_down",
    headers=[(b"retry-after", b"1"), (b"connection", b"close")],
)


def _invalid_key() -> HTTPError:
    return HTTPError(401, "invalid API key", type="invalid_request_error", code="invalid_api_key")


def _withdraw_cancel() -> None:
    """The request answers the cancellation itself: take it back so the task ends normally."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _route_header(decision: RouteDecision) -> tuple[bytes, bytes]:
    return (b"x-coop-route", f"{decision.tier}/{decision.task_type}".encode())


def _coop_headers(
    model: str, deployment: str | None, cost: float | None
) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-coop-model", model.encode())]
    if deployment:
        headers.append((b"x-coop-deployment", deployment.encode()))
    if cost is not None:
        headers.append((b"x-coop-cost", f"{cost:.8f}".encode()))
    return headers


def _chat_sse(chunk: ChatChunk) -> bytes:
    return chunk_to_sse(chunk)


def _completion_id(chat_id: str) -> str:
    return "cmpl-" + chat_id.removeprefix("chatcmpl-") if chat_id else "cmpl-coop"


def _completion_sse(chunk: ChatChunk) -> bytes | None:
    """A chat chunk as a legacy ``text_completion`` chunk (``None``: nothing to say)."""
    choices = []
    for choice in chunk.choices or ():
        content = getattr(choice.delta, "content", None)
        text = content if isinstance(content, str) else ""
        if not text and choice.finish_reason is None:
            continue  # the role-only opening chunk, tool-call pieces
        choices.append(
            {
                "text": text,
                "index": choice.index,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    data: dict[str, Any] = {
        "id": _completion_id(chunk.id),
        "object": "text_completion",
        "created": chunk.created,
        "model": chunk.model,
        "choices": choices,
    }
    if chunk.usage:
        data["usage"] = to_wire(chunk.usage)
    elif not choices:
        return None
    return chunk_to_sse(data)


class _Entry:
    """One guarded request: its task, its ``receive``, and why it was stopped, if it was."""

    __slots__ = ("deadline", "receive", "started", "task", "watcher", "why")

    def __init__(
        self, task: asyncio.Task[Any], receive: Receive | None, now: float, timeout: float
    ):
        self.task, self.receive, self.started = task, receive, now
        self.deadline = now + timeout
        self.watcher: asyncio.Future[Any] | None = None
        self.why: str | None = None

    def stop(self, why: str) -> None:
        if self.why is None:
            self.why = why
            self.task.cancel()

    def watch(self) -> None:
        assert self.receive is not None
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._on_message)

    def _on_message(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if future.exception() is None and future.result().get("type") != "http.disconnect":
            return
        self.stop("gone")

    def unwatch(self) -> None:
        if self.watcher is not None and not self.watcher.done():
            self.watcher.remove_done_callback(self._on_message)
            self.watcher.cancel()


class _AsyncioGuard:
    """The guard on asyncio: one sweep timer for every request in flight, none per request.

    Every ``tick`` seconds while requests are in flight, one callback cancels those past
    ``request_timeout`` and starts the hang-up watcher (a future on ``receive()``) of
    those older than a tick. A request that finishes within a tick, as most do against
    a fast upstream, costs a dict insert and delete: no task, no timer. Measured on
    uvicorn, a watcher and a timer per request cost about 10% of the gateway's CPU per
    request. The price: a hang-up is noticed up to two ticks late, a timeout up to one.
    """

    def __init__(self, timeout: float, tick: float = 0.1) -> None:
        self.timeout = timeout
        self.tick = min(tick, timeout / 4)
        self._live: dict[asyncio.Task[Any], _Entry] = {}
        self._sweeping: asyncio.TimerHandle | None = None

    async def run(
        self, receive: Receive | None, work: Awaitable[_T], timeout: float | None = None
    ) -> _T:
        """Await ``work`` under the sweep; ``receive=None``: no hang-up watcher (a body read)."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        entry = _Entry(task, receive, loop.time(), self.timeout if timeout is None else timeout)
        self._live[task] = entry
        if self._sweeping is None:
            self._sweeping = loop.call_later(self.tick, self._sweep, loop)
        try:
            result = await work
        except asyncio.CancelledError:
            if entry.why is not None and task.uncancel() == 0:
                raise _stopped(entry.why) from None
            raise
        finally:
            del self._live[task]
            entry.unwatch()
        if entry.why is not None:  # it landed as the work finished: withdraw it, say why
            task.uncancel()
            raise _stopped(entry.why)
        return result

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for entry in list(self._live.values()):
            if entry.why is not None:
                continue
            if now >= entry.deadline:
                entry.stop("timeout")
            elif (
                entry.watcher is None
                and entry.receive is not None
                and now - entry.started >= self.tick
            ):
                entry.watch()
        self._sweeping = loop.call_later(self.tick, self._sweep, loop) if self._live else None


def _stopped(reason: str) -> Exception:
    if reason == "timeout":
        return TimeoutError("request_timeout")
    return ClientDisconnected()


async def _guard_anyio(receive: Receive, work: Awaitable[_T], timeout: float) -> _T:
    """The guard on any event loop anyio supports (trio, say): a watcher task per request.

    The work's own exceptions are caught inside the task group and raised outside it,
    so a client sees a 504 or a 502, not an ExceptionGroup turned into a 500.
    """
    outcome: dict[str, Any] = {}

    async def watch(scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            with anyio.fail_after(timeout):
                outcome["result"] = await work
        except Exception as exc:
            outcome["error"] = exc
        tg.cancel_scope.cancel()
    if "error" in outcome:
        raise outcome["error"]
    if "result" not in outcome:
        raise ClientDisconnected()
    return outcome["result"]  # type: ignore[no-any-return]


def create_app(
    config: SystemConfig | None = None,
    *,
    plugins: Plugins | None = None,
    health_checks: bool = True,
) -> GatewayApp:
    """The gateway as an ASGI application (for uvicorn, granian or tests)."""
    return GatewayApp(
        config if config is not None else SystemConfig(),
        plugins=plugins,
        health_checks=health_checks,
    )
