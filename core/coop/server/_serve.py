"""Run the gateway under uvicorn (uvloop + httptools), one or several workers.

uvicorn with uvloop and httptools was chosen by measurement (docs/performance.md).
SIGTERM stops accepting connections and drains in-flight requests for up to
``[server] shutdown_timeout`` seconds, then the process exits with status 0: a
drained shutdown is a clean one to an orchestrator (uvicorn itself re-raises the
signal, which makes every rolling restart look like a crash).
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._config import SystemConfig
from .._errors import ConfigError, CoopError
from .._plugins import Plugins
from .._redact import install_log_redaction, remember_config
from ._app import GatewayApp, create_app

__all__ = ["app_factory", "check_bind", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the gateway reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _has_managed_keys(config: SystemConfig) -> bool:
    """Whether the state backend holds managed keys (then every request needs a key)."""
    import anyio

    from .._state import open_state

    async def look() -> bool:
        state = open_state(config)
        await state.open()
        try:
            return bool(await state.list_keys())
        finally:
            await state.aclose()

    return anyio.run(look)


def check_bind(config: SystemConfig, host: str, *, allow_unauthenticated: bool = False) -> None:
    """Refuse an open gateway on a reachable address: it would spend the upstream credit of anyone who finds it."""
    if (
        not config.server.api_keys
        and not is_loopback(host)
        and not (allow_unauthenticated or config.server.allow_unauthenticated)
        and not _has_managed_keys(config)
    ):
        raise ConfigError(
            f"refusing to serve on {host} with no [server] api_keys and no managed keys: "
            "anyone who can reach it could spend your upstream credit; set api_keys, create "
            "a key (coop keys create --name NAME), bind 127.0.0.1, or pass "
            "--allow-unauthenticated",
            key="server.api_keys",
        )
    config.server.resolved_api_keys()  # fail now, naming the variable, not at the first request


def tune_gc() -> None:
    """Collect garbage less often in a serving process.

    Each request allocates hundreds of short-lived objects, so with CPython's default
    threshold (700) the young generation is collected every few requests; 10,000 makes
    that about 14 times rarer, and a collection is still only a fraction of a
    millisecond. ``gc.freeze()`` moves the objects alive after start-up
    (modules, config, plugins) out of the collector's sight for good. Measured with
    callgrind on ``coop serve`` under load: 4.5% fewer instructions per request.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(10_000, older, oldest)


def app_factory() -> GatewayApp:
    """Entry for uvicorn's ``--factory`` workers: the config path comes from the parent."""
    path = os.environ.get("COOP_SERVE_CONFIG")
    config = SystemConfig.load(path) if path else SystemConfig.discover()
    app = create_app(config)
    remember_config(config)
    install_log_redaction()  # this worker's handlers, configured by uvicorn before the factory
    tune_gc()
    return app


def _bounded_httptools() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a bound on a request's head (line + headers).

        httptools has no limit of its own: uvicorn would buffer 64 MiB of headers
        before the application sees the request. Bytes that arrive while a request's
        head is still incomplete are counted; past the bound the client gets a 431
        and the connection is closed. The bound is uvicorn's
        ``h11_max_incomplete_event_size``, which bounds the same thing under h11, so
        one setting (``[server] max_header_bytes``) serves both and survives the
        trip to ``--workers`` processes. The application checks the parsed headers
        against it again (a head that came in one read).
        """

        _in_head = False
        _head_bytes = 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            was_in_head = self._in_head
            super().data_received(data)
            if not (was_in_head and self._in_head):
                return
            self._head_bytes += len(data)
            limit = self.config.h11_max_incomplete_event_size
            if limit and self._head_bytes > limit and not self.transport.is_closing():
                message = (
                    b'{"error":{"message":"request headers exceed '
                    + str(limit).encode()
                    + b' bytes ([server] max_header_bytes)","type":"invalid_request_error",'
                    b'"param":null,"code":"request_header_fields_too_large"}}'
                )
                self.transport.write(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    b"content-type: application/json\r\nconnection: close\r\n"
                    b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
                )
                self.transport.close()

    return BoundedHttpToolsProtocol


def __getattr__(name: str) -> Any:  # uvicorn imports the protocol by name in --workers processes
    if name == "BoundedHttpToolsProtocol":
        cls = _bounded_httptools()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _server_class() -> type[Any]:
    import uvicorn

    class GatewayServer(uvicorn.Server):
        """uvicorn's server, saying where it listens and exiting 0 after a drained SIGTERM."""

        on_listening: Callable[[str], None] | None = None

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.on_listening is not None and self.servers:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                self.on_listening(f"http://{shown}:{port}")

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)
            if signal.SIGINT in self._captured_signals:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C still ends as an interrupt (130)

    return GatewayServer


def serve(
    config: SystemConfig,
    *,
    plugins: Plugins | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    allow_unauthenticated: bool = False,
    log_level: str | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_listening(url)`` is called once bound (port 0 picks one)."""
    import uvicorn

    server = config.server
    host = host or server.host
    port = port if port is not None else server.port
    workers = workers or server.workers
    check_bind(config, host, allow_unauthenticated=allow_unauthenticated)
    level = (log_level or config.log_level).lower()
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    remember_config(config)  # every record and traceback logged from here on masks its secrets
    install_log_redaction()
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        loop="uvloop",
        http="coop.server._serve:BoundedHttpToolsProtocol",
        h11_max_incomplete_event_size=server.max_header_bytes,
        log_level="warning" if level == "info" else level,
        access_log=False,  # coop writes its own, with model, deployment and request id
        server_header=False,
        timeout_graceful_shutdown=int(server.shutdown_timeout) or None,
        lifespan="on",
        backlog=4096,
    )
    if workers > 1:
        if config.path:
            os.environ["COOP_SERVE_CONFIG"] = str(Path(config.path).resolve())
        if on_listening is not None:
            on_listening(f"http://{host}:{port}")
        uvicorn.run("coop.server:app_factory", factory=True, workers=workers, **options)
        return
    tune_gc()
    instance = _server_class()(uvicorn.Config(create_app(config, plugins=plugins), **options))
    install_log_redaction()  # after uvicorn.Config, which sets up uvicorn's own handlers
    instance.on_listening = on_listening
    try:
        instance.run()
    except SystemExit:  # uvicorn's way to report a port it cannot bind or a failed startup
        if instance.started:
            raise
    if not instance.started:
        raise CoopError(f"the gateway did not start on {host}:{port} (see the error above)")
