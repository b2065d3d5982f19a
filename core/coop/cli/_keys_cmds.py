"""``coop keys``: managed gateway keys, on the state backend of coop.toml (``[state]``).

The default backend is a SQLite file beside coop.toml, so the keys survive restarts and
every gateway process on the host sees them; with ``[state] backend = "redis"`` every
replica sharing that Redis does. A new key is printed once: only its hash is stored.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
from cyclopts import App, Parameter

from .._errors import ValidationError
from .._keys import KeyManager, KeyUsage, describe
from .._state import KeyExistsError, KeyNotFoundError, open_state
from ._common import Common, emit_json, load, table

_T = TypeVar("_T")

keys_app = App(
    name="keys",
    help="Create, list, revoke and rotate managed gateway keys (names, models, limits, budgets).",
)


def register(app: App) -> None:
    app.command(keys_app)


def _run(common: Common, work: Callable[[KeyManager], Awaitable[_T]]) -> _T:
    config, _ = load(common, check=False)

    async def main() -> _T:
        state = open_state(config)
        await state.open()
        try:
            manager = KeyManager(
                state,
                known_models=config.served_names(),
                sync_interval=config.state.sync_interval,
            )
            return await work(manager)
        finally:
            await state.aclose()

    return anyio.run(main)


def _usage_error(exc: Exception) -> int:
    """A bad value, a taken name or an unknown one: one line, exit 2."""
    print(f"coop: error: {exc}", file=sys.stderr)
    return 2


@keys_app.command
def create(
    *,
    name: str,
    rpm: int | None = None,
    tpm: int | None = None,
    budget: float | None = None,
    period: str | None = None,
    models: str | None = None,
    expires: str | None = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Create a key and print it once (only its hash is stored).

    Parameters
    ----------
    name
        The key's name: how listings, /status and /metrics show it (1-64 letters,
        digits, '.', '_', '-').
    rpm
        Requests per minute, in total across every gateway sharing the state.
    tpm
        Tokens per minute (prompt estimate + max_tokens before a request, real usage after).
    budget
        Spend limit in USD per period; once spent, requests are refused until the period
        ends. Omit for no budget (0 is refused: it would refuse every request).
    period
        The budget's period: day or month (UTC; default month).
    models
        Comma-separated models (or cooperations, or auto) the key may use; default all.
    expires
        When the key stops working: YYYY-MM-DD (00:00 UTC that day), YYYY-MM-DDTHH:MM
        (UTC), or a duration from now such as 30d, 12h.
    """
    listed = [m for m in (models or "").split(",") if m.strip()]
    if models is not None and not listed:
        return _usage_error(ValidationError("give at least one model name", field="--models"))
    try:
        key, record = _run(
            common,
            lambda m: m.create(
                name,
                rpm=rpm,
                tpm=tpm,
                budget=budget,
                period=period,
                models=listed,
                expires=expires,
            ),
        )
    except (ValidationError, KeyExistsError) as exc:
        return _usage_error(exc)
    if json_:
        emit_json({"name": record.name, "key": key} | _fields(record.to_dict()))
        return 0
    print(key)
    print(
        f"key {record.name!r} created ({describe(record)}); this is the only time it is "
        "shown: store it now",
        file=sys.stderr,
    )
    return 0


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """A record's public fields (never its digest)."""
    out = {k: v for k, v in data.items() if k not in ("digest", "name")}
    for key in ("created", "expires"):
        if out.get(key) is not None:
            out[key] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(out[key]))
    return out


@keys_app.command(name="list")
def list_(
    *,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """List the keys with their limits, spend and use in the current period (never the key)."""
    keys: list[KeyUsage] = _run(common, lambda m: m.list())
    now = time.time()
    if json_:
        emit_json([k.to_dict(now) for k in keys])
        return 0
    if not keys:
        print("no managed keys (coop keys create --name NAME)")
        return 0
    rows = []
    for k in keys:
        r = k.record
        spend = f"${k.spend:.4f}" + (f" / ${r.budget:g}" if r.budget is not None else "")
        rows.append(
            [
                r.name,
                r.hint + "...",
                k.status(now),
                ",".join(r.models) or "all",
                r.rpm or "-",
                r.tpm or "-",
                spend,
                k.window,
                k.requests,
                k.tokens,
            ]
        )
    headers = ["name", "key", "status", "models", "rpm", "tpm", "spend", "period", "requests"]
    print(table([*headers, "tokens"], rows))
    return 0


@keys_app.command
def revoke(
    *,
    name: str,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Revoke a key: every gateway sharing the state refuses it within a second.

    Parameters
    ----------
    name
        The key's name (coop keys list).
    """
    try:
        record = _run(common, lambda m: m.revoke(name))
    except KeyNotFoundError as exc:
        return _usage_error(exc)
    if json_:
        emit_json({"name": record.name, "revoked": True})
    else:
        print(f"key {record.name!r} revoked")
    return 0


@keys_app.command
def rotate(
    *,
    name: str,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    common: Common = Common(),  # noqa: B008
) -> int:
    """Give a key a new secret (same name, limits and spend); the old one stops working.

    Parameters
    ----------
    name
        The key's name (coop keys list).
    """
    try:
        key, record = _run(common, lambda m: m.rotate(name))
    except (KeyNotFoundError, ValidationError) as exc:
        return _usage_error(exc)
    if json_:
        emit_json({"name": record.name, "key": key} | _fields(record.to_dict()))
        return 0
    print(key)
    print(
        f"key {record.name!r} rotated: the old key no longer works; this is the only time "
        "the new one is shown",
        file=sys.stderr,
    )
    return 0


__all__ = ["keys_app", "register"]
