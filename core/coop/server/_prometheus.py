"""``GET /metrics`` in Prometheus' text exposition format."""

from __future__ import annotations

import time
from typing import Any


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(engine: Any, *, in_flight: int, started: float) -> str:
    snap = engine.metrics.snapshot()
    lines = [
        "# HELP coop_uptime_seconds Seconds since the gateway started.",
        "# TYPE coop_uptime_seconds gauge",
        f"coop_uptime_seconds {time.time() - started:.3f}",
        "# HELP coop_in_flight_requests Requests being served now.",
        "# TYPE coop_in_flight_requests gauge",
        f"coop_in_flight_requests {in_flight}",
    ]
    series: list[tuple[str, str, str, list[tuple[str, float]]]] = [
        ("coop_requests_total", "counter", "Requests per logical model.", []),
        ("coop_request_errors_total", "counter", "Failed requests per logical model.", []),
        ("coop_tokens_total", "counter", "Tokens per logical model and direction.", []),
        ("coop_cost_usd_total", "counter", "Cost in USD per logical model.", []),
        ("coop_latency_seconds", "gauge", "Recent latency quantiles per logical model.", []),
    ]
    for model, m in snap["models"].items():
        label = f'model="{_esc(model)}"'
        series[0][3].append((label, m["requests"]))
        series[1][3].append((label, m["errors"]))
        series[2][3].append((label + ',direction="prompt"', m["prompt_tokens"]))
        series[2][3].append((label + ',direction="completion"', m["completion_tokens"]))
        series[3][3].append((label, m["cost_usd"]))
        for q, key in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
            if m[key] is not None:
                series[4][3].append((label + f',quantile="{q}"', m[key] / 1000))
    for name, kind, help_text, rows in series:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {value:g}" for labels, value in rows)
    lines.append("# HELP coop_deployment_healthy 1 when the deployment's circuit is not open.")
    lines.append("# TYPE coop_deployment_healthy gauge")
    lines.append("# HELP coop_deployment_in_flight Requests in flight per deployment.")
    lines.append("# TYPE coop_deployment_in_flight gauge")
    for model, deployments in engine.deployment_snapshot().items():
        for dep in deployments:
            labels = f'model="{_esc(model)}",deployment="{_esc(dep["id"])}"'
            lines.append(f"coop_deployment_healthy{{{labels}}} {1 if dep['healthy'] else 0}")
            lines.append(f"coop_deployment_in_flight{{{labels}}} {dep['in_flight']}")
    return "\n".join(lines) + "\n"
