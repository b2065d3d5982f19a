"""``coop alerts``: the alert rules of coop.toml, and their state in a running gateway."""

from __future__ import annotations

import sys
from typing import Annotated, Any

from cyclopts import App, Parameter

from .._errors import CoopError
from ._common import Common, emit_json, load, table


def register(app: App) -> None:
    app.command(alerts)


def _condition(rule: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in rule["labels"].items())
    metric = f"{rule['metric']}{{{labels}}}" if labels else rule["metric"]
    return f"{metric} {rule['op']} {rule['threshold']:g}"


def alerts(
    *,
    url: str | None = None,
    api_key: str | None = None,
    offline: bool = False,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """List the alert rules ([[monitoring.alerts]]) and their state.

    Asks the running gateway (``GET /alerts``) for each rule's state; with ``--offline``,
    or when no gateway answers at the default URL, checks and lists the rules of coop.toml.

    Parameters
    ----------
    url
        Gateway base URL (default from [server]: http://host:port).
    api_key
        Key to send (default: the first of [server] api_keys).
    offline
        Do not ask a gateway: check and list the configured rules.
    """
    config, _ = load(common, check=False)
    data: dict[str, Any] | None = None
    if not offline:
        from ._serve_cmds import _get

        try:
            code, answer = _get(url, "/alerts", common, api_key)
        except CoopError as exc:
            if url is not None:
                raise
            print(f"coop: {exc}; listing the configured rules", file=sys.stderr)
        else:
            if code != 200:
                error = answer.get("error", {}) if isinstance(answer, dict) else {}
                raise CoopError(f"alerts answered {code}: {error.get('message', answer)}")
            data = answer
    if data is None:
        data = {
            "rules": [
                {
                    "name": r.name,
                    "metric": r.metric,
                    "labels": dict(r.labels),
                    "op": r.op,
                    "threshold": r.threshold,
                    "window": r.window,
                    "for": r.for_,
                    "state": None,
                }
                for r in config.monitoring.alerts
            ],
            "webhooks": [{"url": u} for u in config.monitoring.webhooks],
        }
    if json_:
        emit_json(data)
        return 0
    if not data["rules"]:
        print(f"no alert rules ({config.source}: add [[monitoring.alerts]])")
    else:
        rows = [
            [
                r["name"],
                _condition(r),
                f"{r['window']:g}s",
                f"{r['for']:g}s",
                r["state"] or "-",
                "" if r.get("value") is None else f"{r['value']:.4g}",
                r.get("since") or "",
            ]
            for r in data["rules"]
        ]
        print(table(["rule", "condition", "window", "for", "state", "value", "since"], rows))
    for hook in data.get("webhooks", []):
        counts = ", ".join(
            f"{k} {hook[k]}"
            for k in ("queued", "delivered", "retries", "failed", "dropped")
            if k in hook
        )
        print(f"webhook {hook['url']}" + (f": {counts}" if counts else ""))
    return 0
