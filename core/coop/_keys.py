"""Managed gateway keys: named keys with their own models, rate limits and budget.

A :class:`KeyManager` sits on a :class:`~coop._state.StateBackend`, so what has to
hold in total (a key's requests per minute, its tokens per minute, its spend, a
revocation) holds across every worker and replica sharing that backend:

- the CLI (``coop keys``) creates, lists, revokes and rotates keys; a new key is shown
  once and only its SHA-256 is stored;
- the gateway keeps a local copy (digest → record) for the hot path, refreshed every
  ``[state] sync_interval`` seconds and at once on a ``keys.changed`` event from any
  replica, so a revocation is seen everywhere well within a second;
- before a request, :meth:`KeyManager.admit` checks the budget and counts the request
  against the rpm and tpm windows (the backend's atomic ``hit``); after it,
  :meth:`KeyManager.settle` adds the request's real cost to the key's spend and
  corrects the token count upwards when the answer used more than estimated.

What is spent is what coop computes per upstream call (``OpenAIEngine`` records it
through :class:`coop.Metrics`): the requests's calls are collected through a context
variable by :meth:`KeyManager.tap`, cooperation members and failover attempts included.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import attrs

from ._errors import CoopError, ValidationError, did_you_mean
from ._state import (
    PERIODS,
    KeyNotFoundError,
    KeyRecord,
    StateBackend,
    StateError,
    hash_key,
    new_key,
    period_start,
)

__all__ = [
    "KeyManager",
    "KeyRefusedError",
    "KeyStats",
    "KeyUsage",
    "parse_expires",
]

log = logging.getLogger("coop.keys")

#: What a key's name may be: it appears in metrics labels, bucket names and logs.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Relative expiry: ``30d``, ``12h``, ``90m``.
_RELATIVE = re.compile(r"(\d+)\s*([dhm])")
#: The event a replica publishes when it changed a key; every replica re-reads the keys.
EVENT = "keys.changed"
#: A limit so high that ``hit`` always counts: used to add tokens after the fact.
_UNLIMITED = 10**15
#: A request's calls, collected while it runs (see :meth:`KeyManager.tap`).
_CURRENT: contextvars.ContextVar[_Tally | None] = contextvars.ContextVar("coop_key_tally")


class KeyRefusedError(CoopError):
    """A managed key's request refused: revoked, expired, a model it may not use, a limit
    reached or its budget spent. Carries what the HTTP answer needs."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        reason: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        retry_after: float | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.error_type = type
        self.code, self.reason, self.param = code, reason, param
        self.retry_after = retry_after
        self.headers = list(headers)
        if retry_after is not None:
            self.headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))


@attrs.define
class KeyStats:
    """One key's figures in this process (``/status``, ``/metrics``): each replica
    reports its own; sum them across replicas as any counter."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: float = 0.0
    #: reason (rpm, tpm, budget, model, revoked, expired) → requests refused.
    refusals: Counter[str] = attrs.field(factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "spend_usd": round(self.spend, 8),
            "refusals": dict(sorted(self.refusals.items())),
        }


@attrs.frozen
class KeyUsage:
    """A key as ``coop keys list`` shows it: never the key, its use in the current window."""

    record: KeyRecord
    #: The window the figures are for: the budget's day or month, else the month (UTC).
    window: str
    spend: float
    requests: int
    tokens: int

    def status(self, now: float) -> str:
        if self.record.revoked:
            return "revoked"
        if self.record.expires is not None and self.record.expires <= now:
            return "expired"
        return "active"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        r = self.record
        return {
            "name": r.name,
            "hint": r.hint,
            "status": self.status(time.time() if now is None else now),
            "created": _iso(r.created),
            "expires": None if r.expires is None else _iso(r.expires),
            "rpm": r.rpm,
            "tpm": r.tpm,
            "budget": r.budget,
            "period": r.period,
            "models": list(r.models),
            "window": self.window,
            "spend": round(self.spend, 8),
            "requests": self.requests,
            "tokens": self.tokens,
        }


class _Tally:
    """What one request's upstream calls used (filled by :meth:`KeyManager.tap`)."""

    __slots__ = ("completion_tokens", "cost", "prompt_tokens", "refused")

    def __init__(self) -> None:
        self.cost = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        #: Refused by the key's own rules after admission (a model, tpm): not a request.
        self.refused = False


@attrs.define(eq=False)
class Admission:
    """One request admitted for a key: settle it once the answer is out."""

    record: KeyRecord
    tally: _Tally
    token: contextvars.Token[_Tally | None] | None
    #: Tokens counted against the tpm window before the request (the estimate).
    counted: int = 0
    settled: bool = False


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expires(value: str, *, now: float | None = None) -> float:
    """``--expires``: a date (``2027-01-31``: the key stops working at 00:00 UTC that day),
    a date and time (``2027-01-31T12:00``, UTC unless it names an offset) or a
    duration from now (``30d``, ``12h``, ``90m``). Must be in the future."""
    now = time.time() if now is None else now
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        seconds = amount * {"d": 86400, "h": 3600, "m": 60}[unit]
        if seconds <= 0:
            raise ValidationError(f"{value!r} is not in the future", field="--expires", value=value)
        return now + seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{value!r} is not a date: use YYYY-MM-DD (the key stops working at 00:00 UTC "
            "that day), YYYY-MM-DDTHH:MM (UTC) or a duration such as 30d, 12h, 90m",
            field="--expires",
            value=value,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ts = parsed.timestamp()
    if ts <= now:
        raise ValidationError(
            f"{value!r} is in the past (now is {_iso(now)}); give a later date",
            field="--expires",
            value=value,
        )
    return ts


def _positive_int(name: str, value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"must be a whole number, got {value!r}", field=name, value=value)
    if value <= 0:
        raise ValidationError(
            f"{what} of {value} would refuse every request; omit {name} for no limit",
            field=name,
            value=value,
        )
    return value


def _tokens_of(request: Any) -> int:
    """Tokens a chat request may use: its prompt's estimate plus its ``max_tokens``."""
    from ._usage import estimate_messages_tokens

    total = estimate_messages_tokens(request.wire_messages())
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(request, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return total + value
    return total


class KeyManager:
    """Managed keys over a state backend: the CLI's operations and the gateway's checks.

    ``known_models``: what a key's ``models`` may name (``SystemConfig.served_names()``);
    ``None`` skips that check (a tool with no configuration at hand).
    """

    def __init__(
        self,
        state: StateBackend,
        *,
        known_models: Iterable[str] | None = None,
        sync_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.known_models = None if known_models is None else sorted(set(known_models))
        self.sync_interval = sync_interval
        self._clock = clock
        #: digest → record: every managed key, revoked and expired ones included.
        self._by_digest: dict[str, KeyRecord] = {}
        self._names: dict[str, KeyRecord] = {}
        self.stats: dict[str, KeyStats] = {}
        #: (name, window) → usage not written yet (see :meth:`flush`).
        self._pending: Counter[tuple[str, str]] = Counter()
        #: Called with ``True``/``False`` when managed keys start/stop existing.
        self.on_change: Callable[[bool], None] | None = None
        self._synced = False

    # -- the CLI's operations -------------------------------------------------------------

    def check_models(self, models: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for raw in models:
            name = raw.strip()
            if not name:
                continue
            if self.known_models is not None and name not in self.known_models:
                raise ValidationError(
                    f"unknown model {name!r}{did_you_mean(name, self.known_models)}; "
                    f"configured: {', '.join(self.known_models) or 'none'}",
                    field="--models",
                    value=name,
                )
            if name not in out:
                out.append(name)
        return tuple(out)

    def _record(
        self,
        name: str,
        key: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        budget: float | None = None,
        period: str | None = None,
        models: Iterable[str] = (),
        expires: float | str | None = None,
    ) -> KeyRecord:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError(
                f"{name!r} is not a key name: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                field="--name",
                value=name,
            )
        rpm = _positive_int("--rpm", rpm, "an rpm")
        tpm = _positive_int("--tpm", tpm, "a tpm")
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int | float):
                raise ValidationError(
                    f"must be an amount in USD, got {budget!r}", field="--budget", value=budget
                )
            if not math.isfinite(budget) or budget <= 0:
                raise ValidationError(
                    f"a budget of {budget:g} would refuse every request; omit --budget for "
                    "no budget (revoke the key to stop it)",
                    field="--budget",
                    value=budget,
                )
            period = period or "month"
        if period is not None and period not in PERIODS:
            raise ValidationError(
                f"{period!r} is not a budget period; use {' or '.join(PERIODS)}",
                field="--period",
                value=period,
            )
        if period is not None and budget is None:
            raise ValidationError(
                "a period needs a budget: add --budget USD", field="--period", value=period
            )
        if isinstance(expires, str):
            expires = parse_expires(expires, now=self._clock())
        return KeyRecord(
            name=name,
            digest=hash_key(key),
            hint=key[:12],
            created=self._clock(),
            rpm=rpm,
            tpm=tpm,
            budget=None if budget is None else float(budget),
            period=period,
            models=self.check_models(models),
            expires=expires,
        )

    async def create(self, name: str, **limits: Any) -> tuple[str, KeyRecord]:
        """A new key (returned once: only its hash is stored) and its record.

        Raises :class:`ValidationError` for a bad value and :class:`KeyExistsError`
        when the name is taken (atomic in the backend: of two replicas creating the
        same name at once, one wins).
        """
        key = new_key()
        record = self._record(name, key, **limits)
        await self.state.create_key(record)
        await self._changed(name, "created")
        return key, record

    async def _known(self) -> list[str]:
        return [r.name for r in await self.state.list_keys()]

    async def _get(self, name: str) -> KeyRecord:
        for record in await self.state.list_keys():
            if record.name == name:
                return record
        raise KeyNotFoundError(name, await self._known())

    async def revoke(self, name: str) -> KeyRecord:
        """Stop the key everywhere (kept, marked revoked, for listings and audit)."""
        record = await self._get(name)
        if record.revoked:
            return record
        revoked = await self.state.revoke_key(name)
        await self._changed(name, "revoked")
        return revoked

    async def rotate(self, name: str) -> tuple[str, KeyRecord]:
        """A new secret for the key ``name`` (same limits, spend and name); the old one
        stops working. A revoked key stays revoked: create a new one instead."""
        old = await self._get(name)
        if old.revoked:
            raise ValidationError(
                f"key {name!r} is revoked and stays so; create a new key with another name",
                field="--name",
                value=name,
            )
        key = new_key()
        record = attrs.evolve(old, digest=hash_key(key), hint=key[:12], created=self._clock())
        await self.state.replace_key(name, record)
        await self._changed(name, "rotated")
        return key, record

    async def list(self) -> list[KeyUsage]:
        """Every key with its spend, requests and tokens in its current window."""
        now = self._clock()
        out = []
        for record in await self.state.list_keys():
            window = period_start(record.period or "month", now)
            spend = await self.state.spend(record.name, window)
            requests = await self.state.spend(record.name, "requests:" + window)
            tokens = await self.state.spend(record.name, "tokens:" + window)
            out.append(KeyUsage(record, window, spend, int(requests), int(tokens)))
        return out

    async def _changed(self, name: str, action: str) -> None:
        await self.state.publish({"type": EVENT, "name": name, "action": action})
        with contextlib.suppress(StateError):
            await self.sync()

    # -- the local copy -----------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any managed key exists (revoked ones count: revoking the last key
        must not open the gateway)."""
        return bool(self._names)

    async def sync(self) -> None:
        """Re-read every key from the backend into the local copy."""
        records = await self.state.list_keys()
        before = bool(self._names)
        self._names = {r.name: r for r in records}
        self._by_digest = {r.digest: r for r in records}
        self._synced = True
        if bool(self._names) != before and self.on_change is not None:
            self.on_change(bool(self._names))

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the local copy fresh: every ``sync_interval`` and on every key event."""
        try:
            await self.sync()
        except StateError as exc:
            log.warning("managed keys not loaded yet: %s", exc)
        task_status.started()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._listen)
                failing = False
                while True:
                    await anyio.sleep(self.sync_interval)
                    await self.flush()
                    try:
                        await self.sync()
                    except StateError as exc:
                        if not failing:
                            log.warning(
                                "managed keys: re-sync failed (%s); using the local copy", exc
                            )
                        failing = True
                    else:
                        failing = False
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush()

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.state.events():
                    if event.get("type") != EVENT:
                        continue
                    name = event.get("name")
                    if event.get("action") == "revoked" and name in self._names:
                        # refuse it here at once, before the re-read below answers
                        record = attrs.evolve(self._names[name], revoked=True)
                        self._names[name] = record
                        self._by_digest[record.digest] = record
                    with contextlib.suppress(StateError):
                        await self.sync()
            except StateError as exc:
                log.warning("managed keys: event stream lost (%s); re-subscribing", exc)
            await anyio.sleep(self.sync_interval)

    # -- the gateway's checks -----------------------------------------------------------

    def lookup(self, key: str) -> KeyRecord | str | None:
        """The local record for ``key``; its digest when the local copy does not know it
        (created since the last sync: ask :meth:`find`)."""
        digest = hash_key(key)
        record = self._by_digest.get(digest)
        return record if record is not None else digest

    async def find(self, digest: str) -> KeyRecord | None:
        record = await self.state.find_key(digest)
        if record is not None:
            self._by_digest[digest] = record
            self._names.setdefault(record.name, record)
        return record

    def check_usable(self, record: KeyRecord) -> None:
        """Refuse a revoked or expired key (401, as any key that does not work)."""
        if record.revoked:
            self._refused(record, "revoked")
            raise KeyRefusedError(
                "this API key was revoked; ask for a new one",
                status=401,
                code="invalid_api_key",
                reason="revoked",
            )
        if record.expires is not None and record.expires <= self._clock():
            self._refused(record, "expired")
            raise KeyRefusedError(
                f"this API key expired at {_iso(record.expires)}; ask for a new one",
                status=401,
                code="expired_api_key",
                reason="expired",
            )

    def check_plan(self, record: KeyRecord, requested: str, plan: Any) -> None:
        """Refuse (403) a plan that uses a model the key may not use.

        The model asked for must be on the key's list (a model or a cooperation name).
        ``auto`` is allowed when the list names ``auto``; otherwise the router's choice
        (both models of a cascade) must be on the list, and the request is refused,
        naming the choice and the allowed models, when it is not.
        """
        allowed = record.models
        if not allowed or (requested in allowed and requested != "auto"):
            return
        if requested == "auto":
            if "auto" in allowed:
                return
            cascade = getattr(plan, "cascade", None)
            targets = list(cascade[:2]) if cascade else [plan.target]
            outside = [t for t in targets if t not in allowed]
            if not outside:
                return
            self._refused(record, "model")
            raise KeyRefusedError(
                f"model 'auto' routed this request to {', '.join(map(repr, outside))}, which "
                f"key {record.name!r} may not use; it may use: {', '.join(allowed)} (name one "
                "of them as the model)",
                status=403,
                code="model_not_allowed",
                reason="model",
                param="model",
            )
        self.check_names(record, [requested])

    def check_names(self, record: KeyRecord, names: Iterable[str]) -> None:
        """Refuse (403) when any of ``names`` is not on the key's list of models."""
        allowed = record.models
        if not allowed:
            return
        outside = [n for n in names if n not in allowed]
        if outside:
            self._refused(record, "model")
            raise KeyRefusedError(
                f"key {record.name!r} may not use model "
                f"{', '.join(map(repr, outside))}; it may use: {', '.join(allowed)}",
                status=403,
                code="model_not_allowed",
                reason="model",
                param="model",
            )

    def _refused(self, record: KeyRecord, reason: str) -> None:
        tally = _CURRENT.get(None)
        if tally is not None:
            tally.refused = True
        stats = self.stats.get(record.name)
        if stats is None:
            stats = self.stats[record.name] = KeyStats()
        stats.refusals[reason] += 1

    def window(self, record: KeyRecord) -> str:
        return period_start(record.period or "month", self._clock())

    async def admit(self, record: KeyRecord) -> Admission:
        """Check the budget and count the request against rpm; start collecting its cost.

        Raises :class:`KeyRefusedError`: 429 ``insufficient_quota``/``budget_exceeded``
        (with ``x-should-retry: false``: retrying does not help) for a spent budget,
        429 ``rate_limit_exceeded`` with ``Retry-After`` for the rpm limit.
        """
        if record.budget is not None:
            window = self.window(record)
            spent = await self.state.spend(record.name, window)
            if spent >= record.budget:
                self._refused(record, "budget")
                until = "tomorrow (00:00 UTC)" if record.period == "day" else "next month (UTC)"
                raise KeyRefusedError(
                    f"key {record.name!r} has spent its budget of ${record.budget:g} for "
                    f"{window} (${spent:.4f}); it resets {until}",
                    status=429,
                    type="insufficient_quota",
                    code="budget_exceeded",
                    reason="budget",
                    headers=[(b"x-should-retry", b"false")],
                )
        if record.rpm is not None:
            verdict = await self.state.hit(f"key:{record.name}:rpm", limit=record.rpm, window=60.0)
            if not verdict.allowed:
                self._refused(record, "rpm")
                raise KeyRefusedError(
                    f"key {record.name!r} reached its limit of {record.rpm} requests per "
                    f"minute; retry in {max(1, math.ceil(verdict.retry_after))}s",
                    status=429,
                    type="requests",
                    code="rate_limit_exceeded",
                    reason="rpm",
                    retry_after=verdict.retry_after,
                )
        tally = _Tally()
        return Admission(record, tally, _CURRENT.set(tally))

    async def admit_tokens(
        self, admission: Admission, request: Any = None, *, tokens: int = 0
    ) -> None:
        """Count the request's estimated tokens (prompt + ``max_tokens``) against tpm."""
        record = admission.record
        if record.tpm is None:
            return
        if request is not None:
            tokens = _tokens_of(request)
        if tokens > record.tpm:
            self._refused(record, "tpm")
            raise KeyRefusedError(
                f"this request may use {tokens} tokens (prompt estimate + max_tokens), more "
                f"than key {record.name!r}'s limit of {record.tpm} tokens per minute; send "
                "less or lower max_tokens",
                status=429,
                type="tokens",
                code="rate_limit_exceeded",
                reason="tpm",
                headers=[(b"x-should-retry", b"false")],
            )
        verdict = await self.state.hit(
            f"key:{record.name}:tpm", limit=record.tpm, window=60.0, amount=max(tokens, 1)
        )
        if not verdict.allowed:
            self._refused(record, "tpm")
            raise KeyRefusedError(
                f"key {record.name!r} reached its limit of {record.tpm} tokens per minute; "
                f"retry in {max(1, math.ceil(verdict.retry_after))}s",
                status=429,
                type="tokens",
                code="rate_limit_exceeded",
                reason="tpm",
                retry_after=verdict.retry_after,
            )
        admission.counted = max(tokens, 1)

    @staticmethod
    def tap(cost: float, prompt_tokens: int, completion_tokens: int) -> None:
        """Called by :class:`coop.Metrics` for every upstream answer: adds it to the
        running request's tally, when that request came with a managed key."""
        tally = _CURRENT.get(None)
        if tally is not None:
            tally.cost += cost
            tally.prompt_tokens += prompt_tokens
            tally.completion_tokens += completion_tokens

    async def settle(self, admission: Admission) -> None:
        """Record what the request used: spend, usage counters, tpm correction. Once."""
        if admission.settled:
            return
        admission.settled = True
        if admission.token is not None:
            with contextlib.suppress(ValueError):  # reset from another context
                _CURRENT.reset(admission.token)
        record, tally = admission.record, admission.tally
        stats = self.stats.get(record.name)
        if stats is None:
            stats = self.stats[record.name] = KeyStats()
        tokens = tally.prompt_tokens + tally.completion_tokens
        if tally.refused:  # counted in refusals; nothing was called
            return
        stats.requests += 1
        stats.prompt_tokens += tally.prompt_tokens
        stats.completion_tokens += tally.completion_tokens
        stats.spend += tally.cost
        window = self.window(record)
        pending = self._pending
        pending[(record.name, "requests:" + window)] += 1
        if tokens:
            pending[(record.name, "tokens:" + window)] += tokens
        try:
            if tally.cost > 0:
                if record.budget is not None:  # the next request must see it: now
                    await self.state.add_spend(record.name, window, tally.cost)
                else:
                    pending[(record.name, window)] += tally.cost
            extra = tokens - admission.counted
            if record.tpm is not None and extra > 0:
                await self.state.hit(
                    f"key:{record.name}:tpm", limit=_UNLIMITED, window=60.0, amount=extra
                )
        except StateError as exc:
            log.warning("key %r: usage not recorded: %s", record.name, exc)

    async def flush(self) -> None:
        """Write the usage counters (and the spend of keys without a budget) gathered
        since the last flush: one write per key and counter, not one per request."""
        pending, self._pending = self._pending, Counter()
        for (name, window), amount in pending.items():
            try:
                await self.state.add_spend(name, window, amount)
            except StateError as exc:
                self._pending[(name, window)] += amount  # kept for the next flush
                log.warning("key %r: usage not recorded yet: %s", name, exc)

    def snapshot(self) -> dict[str, Any]:
        """``/status``: per key name, this process's figures (never a key)."""
        names = set(self._names) | set(self.stats)
        return {
            name: (self.stats.get(name) or KeyStats()).to_dict() | {"status": self._status(name)}
            for name in sorted(names)
        }

    def _status(self, name: str) -> str:
        record = self._names.get(name)
        if record is None:
            return "unknown"
        if record.revoked:
            return "revoked"
        if record.expires is not None and record.expires <= self._clock():
            return "expired"
        return "active"


def describe(record: KeyRecord) -> str:
    """One line about a key's limits, for the CLI."""
    parts = []
    if record.rpm is not None:
        parts.append(f"{record.rpm} rpm")
    if record.tpm is not None:
        parts.append(f"{record.tpm} tpm")
    if record.budget is not None:
        parts.append(f"${record.budget:g}/{record.period}")
    if record.models:
        parts.append("models " + ",".join(record.models))
    if record.expires is not None:
        parts.append("expires " + _iso(record.expires))
    return "; ".join(parts) or "no limits"
