"""``coop serve`` and the commands that ask a running gateway: ``health``, ``status``."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import App, Parameter

from .._errors import ConfigError, CoopError, MissingSecretError
from .._redact import redact_data
from ._common import Common, emit_json, load, table


def register(app: App) -> None:
    app.command(serve)
    app.command(health)
    app.command(status)


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    allow_unauthenticated: bool = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Run the OpenAI-compatible gateway (the simulated models when nothing is configured).

    Parameters
    ----------
    host
        Address to bind (default [server] host, 127.0.0.1).
    port
        Port (default [server] port, 8080).
    workers
        Worker processes (default [server] workers, 1).
    allow_unauthenticated
        Serve on a non-loopback address without [server] api_keys.
    """
    from ..server import check_bind
    from ..server import serve as run

    config, plugins = load(common)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}", key="--workers")
    check_bind(config, host or config.server.host, allow_unauthenticated=allow_unauthenticated)
    summary = (
        f"{config.source}; {len(config.models)} models, {len(config.cooperations)} cooperations, "
        f"router {config.routing.router}"
    )

    def listening(url: str) -> None:
        print(f"coop gateway listening on {url}/v1 ({summary})", flush=True)
        if config.embedded:
            print(
                "no coop.toml and no keys: serving the simulated models "
                "(coop init writes a starter file)",
                flush=True,
            )

    run(
        config,
        plugins=plugins,
        host=host,
        port=port,
        workers=workers,
        allow_unauthenticated=allow_unauthenticated,
        on_listening=listening,
    )
    return 0


def _get(url: str | None, path: str, common: Common, api_key: str | None) -> tuple[int, Any]:
    import httpx

    config, _ = load(common, check=False)
    base = (url or config.server.base_url).rstrip("/")
    headers = {}
    key = api_key
    if key is None and config.server.api_keys:
        try:
            key = config.server.resolved_api_keys()[0]
        except MissingSecretError:
            key = None
    if key:
        headers["authorization"] = f"Bearer {key}"
    try:
        response = httpx.get(base + path, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise CoopError(
            f"cannot reach the gateway at {base}: {type(exc).__name__}: {exc} (is 'coop serve' running?)"
        ) from None
    try:
        return response.status_code, response.json()
    except ValueError:
        raise CoopError(
            f"{base}{path} did not answer JSON (status {response.status_code})"
        ) from None


def health(
    *,
    url: str | None = None,
    api_key: str | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Ask a running gateway whether it is alive and ready.

    Parameters
    ----------
    url
        Gateway base URL (default from [server]: http://host:port).
    api_key
        Key to send (default: the first of [server] api_keys).
    """
    status_code, live = _get(url, "/health", common, api_key)
    ready_code, ready = _get(url, "/health/ready", common, api_key)
    if json_:
        emit_json({"live": live, "ready": ready, "ok": status_code == 200 and ready_code == 200})
    else:
        print(f"live: {live.get('status')} (version {live.get('version')})")
        print(
            f"ready: {ready.get('status')} ({', '.join(ready.get('healthy_models', [])) or 'no healthy model'})"
        )
    return 0 if status_code == 200 and ready_code == 200 else 1


def status(
    *,
    url: str | None = None,
    api_key: str | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Show a running gateway's deployments: health, in-flight, latency, error rate.

    Parameters
    ----------
    url
        Gateway base URL (default from [server]: http://host:port).
    api_key
        Key to send (default: the first of [server] api_keys).
    """
    code, data = _get(url, "/status", common, api_key)
    data = redact_data(data)  # a gateway of another version may not mask what it sends
    if code != 200:
        raise CoopError(f"status answered {code}: {data.get('error', {}).get('message', data)}")
    if json_:
        emit_json(data)
        return 0
    metrics = data["metrics"]["total"]
    print(
        f"coop {data['version']} up {data['uptime_s']:.0f}s, {data['in_flight']} in flight, "
        f"{metrics['requests']} requests, success {metrics['success_rate']}, cost ${metrics['cost_usd']}"
    )
    rows = []
    for model, deployments in data["models"].items():
        for dep in deployments:
            rows.append(
                [
                    model,
                    dep["id"],
                    dep["state"],
                    dep["in_flight"],
                    dep["latency_ms"],
                    dep["error_rate"],
                    dep["cooling_for"],
                ]
            )
    print(
        table(
            ["model", "deployment", "health", "in flight", "latency ms", "error rate", "cooling s"],
            rows,
        )
    )
    _print_metrics(data)
    return 0


def _print_metrics(data: dict[str, Any]) -> None:
    """``coop status``'s per model figures, routing, cooperations and resources (what
    ``/metrics`` exports, as tables; a gateway of another version may lack some)."""
    metrics = data.get("metrics") or {}
    rows = [
        [
            model,
            m.get("requests"),
            m.get("errors"),
            m.get("success_rate"),
            m.get("latency_p50_ms"),
            m.get("latency_p95_ms"),
            m.get("latency_p99_ms"),
            m.get("ttft_p50_ms"),
            m.get("prompt_tokens"),
            m.get("completion_tokens"),
            m.get("cost_usd"),
        ]
        for model, m in (metrics.get("models") or {}).items()
    ]
    if rows:
        print()
        print(
            table(
                ["model", "requests", "errors", "success", "p50 ms", "p95 ms", "p99 ms",
                 "ttft p50 ms", "tokens in", "tokens out", "cost $"],
                rows,
            )
        )  # fmt: skip
    for title, key in (("routing", "routing_decisions"), ("cooperations", "cooperations")):
        counts = metrics.get(key) or {}
        if counts:
            print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    resources = data.get("resources") or {}
    process, host = resources.get("process"), resources.get("host")
    if process and host:
        print(
            f"process: cpu {process['cpu_seconds']:.1f}s, "
            f"rss {process['resident_memory_bytes'] / 2**20:.0f} MiB, "
            f"{process['open_connections']} connections; "
            f"host: cpu {host['cpu_percent']:.0f}%, "
            f"memory {host['memory_used_bytes'] / 2**30:.1f}/"
            f"{host['memory_total_bytes'] / 2**30:.1f} GiB, "
            f"network {host['network_sent_bytes'] / 2**20:.0f} MiB out, "
            f"{host['network_received_bytes'] / 2**20:.0f} MiB in"
        )
