"""Shared state behind one interface: managed keys, limits, spend, health events, stored objects.

Why an interface: one gateway process keeps everything in memory, but several workers or
replicas must behave as one. What has to hold *in total* (rate limits, budgets, revocations)
is decided in the backend, atomically; what only has to *spread* (a deployment's cooldown,
an upstream key that was rejected) stays local on the hot path and is published as an
event that the other replicas apply to their own state.

Events carry durations, never timestamps ("cool deployment D for 5 s"), so replicas whose
clocks disagree still agree on what to do. Limits use the backend's clock (Redis ``TIME``,
or this process's for the embedded backends) for the same reason.

Backends: :class:`MemoryState` here (one process; tests and benchmarks), SQLite (the
embedded default, a file beside coop.toml, stdlib only) and Redis (``[state] backend =
"redis"``), both in their own modules. :func:`open_state` picks one from ``[state]``.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio
import attrs

from ._errors import CoopError

__all__ = [
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyRecord",
    "LimitVerdict",
    "MemoryState",
    "StateBackend",
    "StateError",
    "StateUnavailableError",
    "hash_key",
    "new_key",
    "open_state",
    "state_path",
]

#: Printed prefix of every managed key: a leaked key is recognisable (and greppable) as coop's.
KEY_PREFIX = "sk-coop-"
PERIODS = ("day", "month")


class StateError(CoopError):
    """A state backend refused or failed an operation."""


class StateUnavailableError(StateError):
    """The backend cannot be reached (Redis down, wrong password, bad URL)."""


class KeyExistsError(StateError):
    """A managed key with this name already exists (names are unique across replicas)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a key named {name!r} already exists; pick another name or rotate it")
        self.name = name


class KeyNotFoundError(StateError, LookupError):
    """No managed key has this name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else " (no managed keys yet)"
        super().__init__(f"no managed key named {name!r}{hint}")
        self.name = name


def new_key() -> str:
    """A fresh gateway key: ``sk-coop-`` and 32 url-safe random bytes."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What is stored for a key: its SHA-256, hex. Keys are long and random, so a plain
    hash (no salt, no stretching) is what lookups by key need and is not guessable."""
    return hashlib.sha256(key.encode()).hexdigest()


def period_start(period: str, now: float) -> str:
    """The budget window ``now`` falls in, as a stable label (UTC): ``2026-11-30`` / ``2026-11``."""
    t = time.gmtime(now)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        if period == "day"
        else (f"{t.tm_year:04d}-{t.tm_mon:02d}")
    )


@attrs.frozen
class KeyRecord:
    """A managed gateway key as stored: never the key, only its hash and a short prefix."""

    name: str
    digest: str = attrs.field(repr=False)
    #: The first characters of the key (``sk-coop-AbC1``), to tell keys apart in listings.
    hint: str
    created: float
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    period: str | None = None
    models: tuple[str, ...] = ()
    expires: float | None = None
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"models": list(self.models)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRecord:
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["models"] = tuple(values.get("models") or ())
        return cls(**values)


@attrs.frozen
class LimitVerdict:
    """The answer of a rate-limit check: allowed, or how long to wait."""

    allowed: bool
    #: Seconds until the window has room again (0 when allowed).
    retry_after: float = 0.0
    #: Room left in the window after this hit.
    remaining: int = 0


class StateBackend(abc.ABC):
    """What every state backend provides. All methods may raise :class:`StateUnavailableError`."""

    name: ClassVar[str]

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect (and create tables); called once before use."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> dict[str, Any]:
        """What ``/status`` shows of the backend (never a secret)."""
        return {"backend": self.name, "up": True}

    # -- managed keys --------------------------------------------------------------
    @abc.abstractmethod
    async def create_key(self, record: KeyRecord) -> None:
        """Store a new key; :class:`KeyExistsError` if the name is taken (atomic)."""

    @abc.abstractmethod
    async def replace_key(self, name: str, record: KeyRecord) -> KeyRecord:
        """Swap the key stored under ``name`` (rotation); returns the old record."""

    @abc.abstractmethod
    async def revoke_key(self, name: str) -> KeyRecord:
        """Mark the key revoked (kept for listings and audit); :class:`KeyNotFoundError`."""

    @abc.abstractmethod
    async def list_keys(self) -> list[KeyRecord]: ...

    @abc.abstractmethod
    async def find_key(self, digest: str) -> KeyRecord | None:
        """The record whose hash is ``digest`` (revoked ones too), or ``None``."""

    # -- limits and spend ------------------------------------------------------------
    @abc.abstractmethod
    async def hit(self, bucket: str, *, limit: int, window: float, amount: int = 1) -> LimitVerdict:
        """Count ``amount`` against ``bucket``'s sliding window of ``window`` seconds, unless
        that would exceed ``limit`` (then nothing is counted). Atomic across replicas."""

    @abc.abstractmethod
    async def add_spend(self, name: str, window: str, usd: float) -> float:
        """Add ``usd`` to key ``name``'s spend in budget window ``window``; the new total."""

    @abc.abstractmethod
    async def spend(self, name: str, window: str) -> float: ...

    # -- events between replicas -------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, event: Mapping[str, Any]) -> None:
        """Send a JSON-able event to every replica (this one included or not: consumers
        must be idempotent)."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[dict[str, Any]]:
        """The events published by any replica, from now on."""

    # -- stored objects (Responses API ``store``, response cache) -----------------------
    @abc.abstractmethod
    async def put(
        self, namespace: str, key: str, value: Mapping[str, Any], *, ttl: float | None = None
    ) -> None: ...

    @abc.abstractmethod
    async def get(self, namespace: str, key: str) -> dict[str, Any] | None: ...


class MemoryState(StateBackend):
    """Everything in this process: what one process needs, and the benchmarks' baseline."""

    name = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[str, KeyRecord] = {}
        self._windows: dict[str, deque[tuple[float, int]]] = {}
        self._totals: dict[str, int] = {}
        self._spend: dict[tuple[str, str], float] = {}
        self._objects: dict[tuple[str, str], tuple[float | None, dict[str, Any]]] = {}
        self._subscribers: list[anyio.abc.ObjectSendStream[dict[str, Any]]] = []

    async def create_key(self, record: KeyRecord) -> None:
        if record.name in self._keys:
            raise KeyExistsError(record.name)
        self._keys[record.name] = record

    async def replace_key(self, name: str, record: KeyRecord) -> KeyRecord:
        old = self._keys.get(name)
        if old is None:
            raise KeyNotFoundError(name, list(self._keys))
        self._keys[name] = record
        return old

    async def revoke_key(self, name: str) -> KeyRecord:
        old = self._keys.get(name)
        if old is None:
            raise KeyNotFoundError(name, list(self._keys))
        self._keys[name] = attrs.evolve(old, revoked=True)
        return self._keys[name]

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda r: r.name)

    async def find_key(self, digest: str) -> KeyRecord | None:
        for record in self._keys.values():
            if secrets.compare_digest(record.digest, digest):
                return record
        return None

    async def hit(self, bucket: str, *, limit: int, window: float, amount: int = 1) -> LimitVerdict:
        now = self._clock()
        hits = self._windows.setdefault(bucket, deque())
        # the window's total is kept, so a hit costs what expired since the last one
        used = self._totals.get(bucket, 0)
        while hits and hits[0][0] <= now - window:
            used -= hits.popleft()[1]
        self._totals[bucket] = used
        if used + amount > limit:
            # room comes back as the oldest hits leave the window
            freed, wait = 0, window
            for t, n in hits:
                freed += n
                if used - freed + amount <= limit:
                    wait = t + window - now
                    break
            return LimitVerdict(False, retry_after=max(wait, 0.001), remaining=max(limit - used, 0))
        hits.append((now, amount))
        self._totals[bucket] = used + amount
        return LimitVerdict(True, remaining=limit - used - amount)

    async def add_spend(self, name: str, window: str, usd: float) -> float:
        total = self._spend.get((name, window), 0.0) + usd
        self._spend[(name, window)] = total
        return total

    async def spend(self, name: str, window: str) -> float:
        return self._spend.get((name, window), 0.0)

    async def publish(self, event: Mapping[str, Any]) -> None:
        # a slow or gone subscriber misses events; never the publisher's problem
        for stream in list(self._subscribers):
            with contextlib.suppress(
                anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                stream.send_nowait(dict(event))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1000)
        self._subscribers.append(send)
        try:
            async with receive:
                async for event in receive:
                    yield event
        finally:
            self._subscribers.remove(send)

    async def put(
        self, namespace: str, key: str, value: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        expires = None if ttl is None else self._clock() + ttl
        self._objects[(namespace, key)] = (expires, dict(value))

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        found = self._objects.get((namespace, key))
        if found is None:
            return None
        expires, value = found
        if expires is not None and expires <= self._clock():
            del self._objects[(namespace, key)]
            return None
        return dict(value)


#: The SQLite file's name when ``[state] path`` is not set.
DEFAULT_SQLITE_NAME = "coop-state.sqlite3"

#: Config sources that stand for "no coop.toml, but a real user": the state goes to the
#: user data directory. Any other source without a file (``SystemConfig.from_dict``:
#: tests, embedding) gets a :class:`MemoryState` unless ``[state] path`` names a file.
_USER_SOURCES = ("(environment)", "(embedded default)")


def state_path(config: Any) -> Path | None:
    """Where the SQLite backend of ``config`` keeps its file (``None``: in memory)."""
    from ._config import user_data_dir

    state = config.state
    base = config.path.parent if config.path is not None else None
    if state.path:
        path = Path(state.path).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return path
    if base is not None:
        return base / DEFAULT_SQLITE_NAME
    if config.source in _USER_SOURCES:
        return user_data_dir() / DEFAULT_SQLITE_NAME
    return None


def open_state(config: Any) -> StateBackend:
    """The backend ``[state]`` of ``config`` (a :class:`coop.SystemConfig`) names, not yet
    opened: ``await state.open()`` before use, ``await state.aclose()`` after."""
    state = config.state
    if state.backend == "memory":
        return MemoryState()
    if state.backend == "sqlite":
        path = state_path(config)
        if path is None:
            return MemoryState()
        from ._state_sqlite import SQLiteState

        return SQLiteState(path, poll=min(state.sync_interval, 0.25) or 0.25)
    if state.backend == "redis":
        from ._state_redis import RedisState

        return RedisState.from_config(state)
    raise StateError(f"[state] backend = {state.backend!r} is not one of sqlite, memory, redis")
