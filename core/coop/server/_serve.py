"""Run the gateway under uvicorn (uvloop + httptools), one or several workers.

uvicorn with uvloop and httptools was chosen by measurement (docs/performance.md).
SIGTERM stops accepting connections and drains in-flight requests for up to
``[server] shutdown_timeout`` seconds before exiting.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from .._config import SystemConfig
from .._errors import ConfigError
from .._plugins import Plugins
from ._app import GatewayApp, create_app

__all__ = ["app_factory", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_factory() -> GatewayApp:
    """Entry for uvicorn's ``--factory`` workers: the config path comes from the parent."""
    path = os.environ.get("COOP_SERVE_CONFIG")
    config = SystemConfig.load(path) if path else SystemConfig.discover()
    return create_app(config)


def serve(
    config: SystemConfig,
    *,
    plugins: Plugins | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    allow_unauthenticated: bool = False,
    log_level: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM."""
    import uvicorn

    server = config.server
    host = host or server.host
    port = port if port is not None else server.port
    workers = workers or server.workers
    if (
        not server.api_keys
        and not is_loopback(host)
        and not (allow_unauthenticated or server.allow_unauthenticated)
    ):
        raise ConfigError(
            f"refusing to serve on {host} with no [server] api_keys: anyone who can reach it could spend "
            "your upstream credit; set api_keys, bind 127.0.0.1, or pass --allow-unauthenticated",
            key="server.api_keys",
        )
    server.resolved_api_keys()  # fail now, naming the variable, not at the first request
    level = (log_level or config.log_level).lower()
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = dict(
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning" if level == "info" else level,
        access_log=False,
        timeout_graceful_shutdown=int(server.shutdown_timeout) or None,
        lifespan="on",
        backlog=4096,
    )
    if workers > 1:
        if config.path:
            os.environ["COOP_SERVE_CONFIG"] = str(Path(config.path).resolve())
        uvicorn.run("coop.server:app_factory", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(config, plugins=plugins), **options)
