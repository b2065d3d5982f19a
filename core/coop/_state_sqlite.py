"""The embedded state backend: one SQLite file (stdlib ``sqlite3``), beside coop.toml.

Several worker processes on one host share the file: every write that must hold in total
(a new key's name, a rate-limit hit, spend) runs in a ``BEGIN IMMEDIATE`` transaction, so
the check and the write happen under SQLite's write lock; ``busy_timeout`` makes a
waiting writer wait instead of failing. WAL mode lets readers run beside the writer.

Calls run in a worker thread (``anyio.to_thread``), so a busy file never blocks the event
loop; one connection per backend, serialised by a lock. Events between processes go
through a table, polled every ``poll`` seconds by :meth:`SQLiteState.events`.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ._state import (
    KeyExistsError,
    KeyNotFoundError,
    KeyRecord,
    LimitVerdict,
    StateBackend,
    StateUnavailableError,
)

__all__ = ["SQLiteState"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hits (
    bucket TEXT NOT NULL,
    t REAL NOT NULL,
    amount INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hits_bucket_t ON hits (bucket, t);
CREATE TABLE IF NOT EXISTS spend (
    name TEXT NOT NULL,
    window TEXT NOT NULL,
    usd REAL NOT NULL,
    PRIMARY KEY (name, window)
);
CREATE TABLE IF NOT EXISTS objects (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    data TEXT NOT NULL
);
"""

#: Seconds an event stays in the table (every replica polls far more often than this).
EVENT_TTL = 60.0


class SQLiteState(StateBackend):
    """Managed keys, limits, spend, events and objects in one SQLite file."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        poll: float = 0.25,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        threaded: bool = True,
    ) -> None:
        self.path = Path(path)
        self.poll = poll
        self.busy_timeout = busy_timeout
        self._clock = clock
        #: Run each call in a worker thread (the default) or inline on the event loop.
        self.threaded = threaded
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._publishes = 0

    # -- plumbing -------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        await self._run(self._connect)

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StateUnavailableError(
                f"cannot open the state file {str(self.path)!r} ([state] path): {exc}"
            ) from None
        self._db = db

    async def aclose(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            with self._lock:
                db.close()

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self.threaded:
            return await anyio.to_thread.run_sync(self._locked, fn)
        return self._locked(fn)

    def _locked(self, fn: Callable[[], _T]) -> _T:
        with self._lock:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                raise StateUnavailableError(
                    f"the state file {str(self.path)!r} failed: {exc}"
                ) from None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateUnavailableError(
                f"the state file {str(self.path)!r} is not open (call 'await state.open()')"
            )
        return self._db

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "up": self._db is not None, "path": str(self.path)}

    # -- managed keys ------------------------------------------------------------------

    async def create_key(self, record: KeyRecord) -> None:
        def create() -> None:
            db = self.db
            with _transaction(db):
                try:
                    db.execute(
                        "INSERT INTO keys (name, digest, data) VALUES (?, ?, ?)",
                        (record.name, record.digest, json.dumps(record.to_dict())),
                    )
                except sqlite3.IntegrityError:
                    raise KeyExistsError(record.name) from None

        await self._run(create)

    async def replace_key(self, name: str, record: KeyRecord) -> KeyRecord:
        def replace() -> KeyRecord:
            db = self.db
            with _transaction(db):
                old = self._get_key(db, name)
                db.execute(
                    "UPDATE keys SET name = ?, digest = ?, data = ? WHERE name = ?",
                    (record.name, record.digest, json.dumps(record.to_dict()), name),
                )
                return old

        return await self._run(replace)

    async def revoke_key(self, name: str) -> KeyRecord:
        def revoke() -> KeyRecord:
            db = self.db
            with _transaction(db):
                old = self._get_key(db, name)
                new = KeyRecord.from_dict(old.to_dict() | {"revoked": True})
                db.execute(
                    "UPDATE keys SET data = ? WHERE name = ?", (json.dumps(new.to_dict()), name)
                )
                return new

        return await self._run(revoke)

    def _get_key(self, db: sqlite3.Connection, name: str) -> KeyRecord:
        row = db.execute("SELECT data FROM keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in db.execute("SELECT name FROM keys")]
            raise KeyNotFoundError(name, known)
        return KeyRecord.from_dict(json.loads(row[0]))

    async def list_keys(self) -> list[KeyRecord]:
        def list_() -> list[KeyRecord]:
            rows = self.db.execute("SELECT data FROM keys ORDER BY name").fetchall()
            return [KeyRecord.from_dict(json.loads(r[0])) for r in rows]

        return await self._run(list_)

    async def find_key(self, digest: str) -> KeyRecord | None:
        def find() -> KeyRecord | None:
            row = self.db.execute("SELECT data FROM keys WHERE digest = ?", (digest,)).fetchone()
            return None if row is None else KeyRecord.from_dict(json.loads(row[0]))

        return await self._run(find)

    # -- limits and spend -------------------------------------------------------------

    async def hit(self, bucket: str, *, limit: int, window: float, amount: int = 1) -> LimitVerdict:
        def hit() -> LimitVerdict:
            db = self.db
            with _transaction(db):
                now = self._clock()
                db.execute("DELETE FROM hits WHERE bucket = ? AND t <= ?", (bucket, now - window))
                (used,) = db.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM hits WHERE bucket = ?", (bucket,)
                ).fetchone()
                if used + amount > limit:
                    rows = db.execute(
                        "SELECT t, amount FROM hits WHERE bucket = ? ORDER BY t", (bucket,)
                    ).fetchall()
                    return _refused(rows, used, amount, limit, window, now)
                db.execute(
                    "INSERT INTO hits (bucket, t, amount) VALUES (?, ?, ?)", (bucket, now, amount)
                )
                return LimitVerdict(True, remaining=limit - used - amount)

        return await self._run(hit)

    async def add_spend(self, name: str, window: str, usd: float) -> float:
        def add() -> float:
            db = self.db
            with _transaction(db):
                db.execute(
                    "INSERT INTO spend (name, window, usd) VALUES (?, ?, ?) "
                    "ON CONFLICT (name, window) DO UPDATE SET usd = usd + excluded.usd",
                    (name, window, usd),
                )
                row = db.execute(
                    "SELECT usd FROM spend WHERE name = ? AND window = ?", (name, window)
                ).fetchone()
                return float(row[0])

        return await self._run(add)

    async def spend(self, name: str, window: str) -> float:
        def get() -> float:
            row = self.db.execute(
                "SELECT usd FROM spend WHERE name = ? AND window = ?", (name, window)
            ).fetchone()
            return 0.0 if row is None else float(row[0])

        return await self._run(get)

    # -- events ---------------------------------------------------------------------------

    async def publish(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(dict(event))
        self._publishes += 1
        prune = self._publishes % 64 == 1

        def publish() -> None:
            db = self.db
            with _transaction(db):
                now = self._clock()
                db.execute("INSERT INTO events (t, data) VALUES (?, ?)", (now, data))
                if prune:
                    db.execute("DELETE FROM events WHERE t < ?", (now - EVENT_TTL,))

        await self._run(publish)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        def newest() -> int:
            row = self.db.execute("SELECT MAX(id) FROM events").fetchone()
            return int(row[0] or 0)

        def since(last: int) -> list[tuple[int, str]]:
            return self.db.execute(
                "SELECT id, data FROM events WHERE id > ? ORDER BY id", (last,)
            ).fetchall()

        last = await self._run(newest)
        while True:
            await anyio.sleep(self.poll)
            try:
                rows = await self._run(functools.partial(since, last))
            except StateUnavailableError:
                continue  # a locked or briefly gone file: the next poll catches up
            for row_id, data in rows:
                last = row_id
                yield json.loads(data)

    # -- stored objects -----------------------------------------------------------------

    async def put(
        self, namespace: str, key: str, value: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        data = json.dumps(dict(value))

        def put() -> None:
            expires = None if ttl is None else self._clock() + ttl
            db = self.db
            with _transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO objects (namespace, key, expires, value) "
                    "VALUES (?, ?, ?, ?)",
                    (namespace, key, expires, data),
                )

        await self._run(put)

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        def get() -> dict[str, Any] | None:
            row = self.db.execute(
                "SELECT expires, value FROM objects WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
            if row is None:
                return None
            if row[0] is not None and row[0] <= self._clock():
                db = self.db
                with _transaction(db):
                    db.execute(
                        "DELETE FROM objects WHERE namespace = ? AND key = ? AND expires <= ?",
                        (namespace, key, self._clock()),
                    )
                return None
            return dict(json.loads(row[1]))

        return await self._run(get)


def _refused(
    rows: list[tuple[float, int]], used: int, amount: int, limit: int, window: float, now: float
) -> LimitVerdict:
    """The verdict for a hit that does not fit: when enough of the oldest hits leave."""
    freed, wait = 0, window
    for t, n in rows:
        freed += n
        if used - freed + amount <= limit:
            wait = t + window - now
            break
    return LimitVerdict(False, retry_after=max(wait, 0.001), remaining=max(limit - used, 0))


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock first,
    so a read-check-write is atomic across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *exc: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")
