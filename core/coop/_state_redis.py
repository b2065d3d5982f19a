"""The shared state backend: Redis (``[state] backend = "redis"``), through redis-py's
asyncio client (``pip install 'llm-coop[redis]'``).

What must hold in total across replicas is decided in Redis, atomically:

- a rate-limit hit is one Lua script over a sorted set, timed with Redis ``TIME``: the
  replicas' own clocks never enter, so clock skew between them does not matter;
- spend is ``INCRBYFLOAT`` on one key per (key name, budget window), expiring after the
  longest window;
- a key name is taken by a Lua script (exists? then refuse, else write the record and
  its digest index), so of two replicas creating the same name at once exactly one wins.

Events go over pub/sub on ``{prefix}events``; objects are plain keys with a TTL.

Redis is never allowed to hang a request: every call is bounded by ``timeout`` seconds.
When a call fails the backend marks Redis down, logs a warning once, and serves from a
local :class:`~coop._state.MemoryState` (keys last seen in Redis, limits per replica,
spend counted locally). Writes made meanwhile are kept; when Redis answers again
(:meth:`RedisState.probe`, run by the event listener every second) they are replayed
(spend pushed, keys created or revoked meanwhile written) and the keys are pulled again.

redis-py's asyncio client runs on asyncio only: under trio :meth:`RedisState.open`
refuses with a :class:`~coop._state.StateError` that says so (``coop serve`` runs on
asyncio by default).
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, TypeVar

import anyio
import sniffio

from ._state import (
    KeyExistsError,
    KeyNotFoundError,
    KeyRecord,
    LimitVerdict,
    MemoryState,
    StateBackend,
    StateError,
    StateUnavailableError,
)

__all__ = ["RedisState", "mask_url"]

log = logging.getLogger("coop.state")
_T = TypeVar("_T")

#: Seconds a spend counter lives (longer than the longest budget window, a month).
SPEND_TTL = 40 * 86400

_CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# KEYS: keys, digests, revoked; ARGV: name, new json, new digest
_REPLACE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
local old_digest = cjson.decode(old)['digest']
local revoked = redis.call('HEXISTS', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], old_digest)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return {old, revoked}
"""

_REVOKE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
redis.call('HSET', KEYS[3], ARGV[1], 1)
return old
"""

_FIND = """
local name = redis.call('HGET', KEYS[2], ARGV[1])
if not name then return false end
local data = redis.call('HGET', KEYS[1], name)
if not data then return false end
return {data, redis.call('HEXISTS', KEYS[3], name)}
"""

# A sliding window on a sorted set: score = Redis TIME in microseconds, member =
# "<time>:<nonce>:<amount>", with the window's running total in a companion key (so a hit
# costs what expired since the last one, not the whole window). KEYS: the set, the total;
# ARGV: limit, window (µs), amount, nonce. Returns {allowed, retry_after µs, remaining}.
_HIT = """
local key, total = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local used = tonumber(redis.call('GET', total) or '0')
local expired = redis.call('ZRANGEBYSCORE', key, '-inf', now - window)
if #expired > 0 then
  for i = 1, #expired do
    used = used - tonumber(string.match(expired[i], ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
end
if used < 0 or redis.call('EXISTS', key) == 0 then used = 0 end
if used + amount > limit then
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local freed = 0
  local wait = window
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if used - freed + amount <= limit then
      wait = tonumber(entries[i + 1]) + window - now
      break
    end
  end
  redis.call('SET', total, used, 'PX', math.floor(window / 1000) + 1000)
  local left = limit - used
  if left < 0 then left = 0 end
  return {0, wait, left}
end
redis.call('ZADD', key, now, now .. ':' .. ARGV[4] .. ':' .. amount)
redis.call('PEXPIRE', key, math.floor(window / 1000) + 1000)
redis.call('SET', total, used + amount, 'PX', math.floor(window / 1000) + 1000)
return {1, 0, limit - used - amount}
"""


def mask_url(url: str) -> str:
    """``url`` with its password (and a user's password) replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class RedisState(StateBackend):
    """Managed keys, limits, spend, events and objects in Redis, shared by every replica."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "coop:",
        timeout: float = 0.5,
        retry_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.safe_url = mask_url(url)
        self.prefix = prefix
        #: Seconds any one Redis call may take before it counts as Redis being down.
        self.timeout = timeout
        #: Seconds between attempts to reach Redis again while it is down.
        self.retry_interval = retry_interval
        #: Whether Redis answered the last call (``coop_state_backend_up``).
        self.up = False
        #: Operations served on local state because Redis did not answer
        #: (``coop_state_fallback_total``).
        self.fallbacks = 0
        #: Times Redis was lost mid-run, and times it was re-synced after coming back.
        self.outages = 0
        self.resyncs = 0
        self.local = MemoryState()
        #: Spend per (name, window) as Redis last reported it: the base of local counting.
        self._known_spend: dict[tuple[str, str], float] = {}
        #: Writes made on local state while Redis was down, replayed when it returns.
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._probing = False
        k = prefix
        self._keys_key, self._digests_key, self._revoked_key = (
            f"{k}keys",
            f"{k}key-digests",
            f"{k}keys-revoked",
        )
        self.channel = f"{k}events"

    @classmethod
    def from_config(cls, state: Any) -> RedisState:
        """From ``[state]`` (a :class:`coop.StateConfig`): a clear error on a bad URL."""
        url = state.resolved_url()
        if not url:
            raise StateError('[state] backend = "redis" needs url = "redis://host:6379/0"')
        _check_url(url)
        return cls(url, prefix=state.prefix)

    # -- connection ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        if library != "asyncio":
            raise StateError(
                f'[state] backend = "redis" needs asyncio (redis-py\'s client is asyncio-only), '
                f"not {library}: run the gateway on asyncio (the default), or use "
                'backend = "sqlite" under trio'
            )
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise StateError(
                "[state] backend = \"redis\" needs redis-py: pip install 'llm-coop[redis]'"
            ) from None
        _check_url(self.url)
        try:
            client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                decode_responses=True,
                health_check_interval=0,
                retry_on_timeout=False,
            )
        except ValueError as exc:
            raise StateError(f"[state] url {self.safe_url!r} is not a Redis URL: {exc}") from None
        self._client = client
        self._scripts = {
            name: client.register_script(body)
            for name, body in (
                ("create", _CREATE),
                ("replace", _REPLACE),
                ("revoke", _REVOKE),
                ("find", _FIND),
                ("hit", _HIT),
            )
        }
        try:
            with anyio.fail_after(max(self.timeout * 4, 2.0)):
                await client.ping()
            await self._pull_keys()
        except BaseException as exc:
            self._client = None
            await client.aclose()
            if isinstance(exc, Exception):
                raise self._unavailable(exc) from None
            raise
        self.up = True

    def _unavailable(self, exc: BaseException) -> StateUnavailableError:
        """A clear error for a Redis that cannot be used; never the password."""
        from redis import exceptions as rex

        text = str(exc).replace(self.url, self.safe_url)
        parts = urllib.parse.urlsplit(self.url)
        if parts.password:
            text = text.replace(parts.password, "***")
        if isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError) or (
            isinstance(exc, rex.ResponseError)
            and any(w in text for w in ("WRONGPASS", "NOAUTH", "invalid password"))
        ):
            return StateUnavailableError(
                f"Redis at {self.safe_url} rejected the credentials ([state] url): {text}"
            )
        if isinstance(exc, TimeoutError):
            text = text or f"no answer within {self.timeout:g}s"
        return StateUnavailableError(
            f"cannot reach Redis at {self.safe_url} ([state] url): "
            f"{type(exc).__name__}: {text or 'no answer'}"
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self.up = False
        if client is not None:
            with anyio.move_on_after(self.timeout * 2, shield=True):
                await client.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StateUnavailableError(
                f"Redis at {self.safe_url} is not open (call 'await state.open()')"
            )
        return self._client

    async def _call(
        self,
        remote: Callable[[], Awaitable[_T]],
        local: Callable[[], Awaitable[_T]],
        pending: tuple[str, tuple[Any, ...]] | None = None,
    ) -> _T:
        """``remote()`` bounded by ``timeout``; on local state while Redis is down."""
        self.client  # noqa: B018 - raises when not open
        if self.up:
            try:
                with anyio.fail_after(self.timeout):
                    return await remote()
            except (StateError, LookupError):
                raise
            except Exception as exc:
                if not _is_outage(exc):
                    raise self._unavailable(exc) from None
                self._lost(exc)
        self.fallbacks += 1
        result = await local()
        if pending is not None:
            self._pending.append(pending)
        return result

    def _lost(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            self.outages += 1
            log.warning(
                "state: Redis at %s stopped answering (%s); serving on local state "
                "(limits per replica, spend kept and pushed back) until it returns",
                self.safe_url,
                type(exc).__name__,
            )

    async def probe(self) -> bool:
        """While Redis is down: try it; if it answers, replay what was written locally and
        pull the keys again. Returns whether Redis is up."""
        if self.up or self._client is None:
            return self.up
        if self._probing:
            return False
        self._probing = True
        try:
            with anyio.fail_after(self.timeout * 2):
                # connections made before the outage are dead (a restarted Redis): drop
                # them all, or the next call on one would look like a new outage
                await self._client.connection_pool.disconnect()
                await self._client.ping()
            await self._resync()
        except Exception:
            return False
        finally:
            self._probing = False
        self.up = True
        self.resyncs += 1
        log.warning("state: Redis at %s is back; local state re-synced", self.safe_url)
        return True

    async def _resync(self) -> None:
        pending, self._pending = self._pending, []
        try:
            while pending:
                op, args = pending[0]
                with anyio.fail_after(self.timeout * 4):
                    try:
                        await getattr(self, f"_remote_{op}")(*args)
                    except KeyExistsError as exc:
                        log.warning("state: while Redis was down, %s; kept the one in Redis", exc)
                    except KeyNotFoundError:
                        pass
                pending.pop(0)
            with anyio.fail_after(self.timeout * 4):
                await self._pull_keys()
        except BaseException:
            self._pending = pending + self._pending  # not replayed: keep for the next try
            raise
        # what was counted locally now lives in Redis
        self.local._spend.clear()

    async def _pull_keys(self) -> None:
        records = await self._remote_list()
        self.local._keys = {r.name: r for r in records}

    # -- managed keys ----------------------------------------------------------------------

    async def _remote_create(self, record: KeyRecord) -> None:
        data = json.dumps(record.to_dict())
        created = await self._scripts["create"](
            keys=[self._keys_key, self._digests_key, self._revoked_key],
            args=[record.name, data, record.digest],
        )
        if not int(created):
            raise KeyExistsError(record.name)
        if record.revoked:
            await self.client.hset(self._revoked_key, record.name, 1)

    async def create_key(self, record: KeyRecord) -> None:
        async def remote() -> None:
            await self._remote_create(record)
            self.local._keys[record.name] = record

        await self._call(remote, lambda: self.local.create_key(record), ("create", (record,)))

    async def _remote_replace(self, name: str, record: KeyRecord) -> KeyRecord:
        found = await self._scripts["replace"](
            keys=[self._keys_key, self._digests_key, self._revoked_key],
            args=[name, json.dumps(record.to_dict()), record.digest],
        )
        if not found:
            raise KeyNotFoundError(name, await self.client.hkeys(self._keys_key))
        return _record(found[0], found[1])

    async def replace_key(self, name: str, record: KeyRecord) -> KeyRecord:
        async def remote() -> KeyRecord:
            old = await self._remote_replace(name, record)
            self.local._keys[name] = record
            return old

        return await self._call(
            remote, lambda: self.local.replace_key(name, record), ("replace", (name, record))
        )

    async def _remote_revoke(self, name: str) -> KeyRecord:
        found = await self._scripts["revoke"](
            keys=[self._keys_key, self._digests_key, self._revoked_key], args=[name]
        )
        if not found:
            raise KeyNotFoundError(name, await self.client.hkeys(self._keys_key))
        return _record(found, True)

    async def revoke_key(self, name: str) -> KeyRecord:
        async def remote() -> KeyRecord:
            record = await self._remote_revoke(name)
            self.local._keys[name] = record
            return record

        return await self._call(remote, lambda: self.local.revoke_key(name), ("revoke", (name,)))

    async def _remote_list(self) -> list[KeyRecord]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._keys_key)
            pipe.hgetall(self._revoked_key)
            keys, revoked = await pipe.execute()
        return sorted(
            (_record(data, name in revoked) for name, data in keys.items()), key=lambda r: r.name
        )

    async def list_keys(self) -> list[KeyRecord]:
        async def remote() -> list[KeyRecord]:
            records = await self._remote_list()
            self.local._keys = {r.name: r for r in records}
            return records

        return await self._call(remote, self.local.list_keys)

    async def find_key(self, digest: str) -> KeyRecord | None:
        async def remote() -> KeyRecord | None:
            found = await self._scripts["find"](
                keys=[self._keys_key, self._digests_key, self._revoked_key], args=[digest]
            )
            if not found:
                return None
            record = _record(found[0], found[1])
            self.local._keys[record.name] = record
            return record

        return await self._call(remote, lambda: self.local.find_key(digest))

    # -- limits and spend --------------------------------------------------------------

    async def hit(self, bucket: str, *, limit: int, window: float, amount: int = 1) -> LimitVerdict:
        async def remote() -> LimitVerdict:
            allowed, wait, left = await self._scripts["hit"](
                keys=[f"{self.prefix}rl:{bucket}", f"{self.prefix}rl-total:{bucket}"],
                args=[limit, int(window * 1_000_000), amount, secrets.token_hex(4)],
            )
            if int(allowed):
                return LimitVerdict(True, remaining=int(left))
            return LimitVerdict(
                False, retry_after=max(int(wait) / 1_000_000, 0.001), remaining=int(left)
            )

        return await self._call(
            remote, lambda: self.local.hit(bucket, limit=limit, window=window, amount=amount)
        )

    def _spend_key(self, name: str, window: str) -> str:
        return f"{self.prefix}spend:{name}:{window}"

    async def _remote_spend(self, name: str, window: str, usd: float) -> float:
        key = self._spend_key(name, window)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, SPEND_TTL)
            total, _ = await pipe.execute()
        self._known_spend[(name, window)] = float(total)
        return float(total)

    async def add_spend(self, name: str, window: str, usd: float) -> float:
        async def local() -> float:
            # Redis' last total, plus what was spent here since (pushed when Redis returns)
            return self._known_spend.get((name, window), 0.0) + await self.local.add_spend(
                name, window, usd
            )

        return await self._call(
            lambda: self._remote_spend(name, window, usd), local, ("spend", (name, window, usd))
        )

    async def spend(self, name: str, window: str) -> float:
        async def remote() -> float:
            value = await self.client.get(self._spend_key(name, window))
            total = 0.0 if value is None else float(value)
            self._known_spend[(name, window)] = total
            return total

        async def local() -> float:
            return self._known_spend.get((name, window), 0.0) + await self.local.spend(name, window)

        return await self._call(remote, local)

    # -- events ---------------------------------------------------------------------------

    async def publish(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(dict(event))

        async def remote() -> None:
            await self.client.publish(self.channel, data)

        async def local() -> None:
            return None  # other replicas cannot hear it now; the local state already has it

        await self._call(remote, local)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events from every replica; while Redis is down, tries it every ``retry_interval``
        seconds (re-syncing when it answers) and resubscribes."""
        while True:
            if not self.up and not await self.probe():
                # another listener probing now: its answer comes soon
                await anyio.sleep(0.05 if self._probing else self.retry_interval)
                continue
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                with anyio.fail_after(self.timeout * 4):
                    await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=self.retry_interval)
                    if message is None:
                        if not self.up:
                            break
                        continue
                    if message.get("type") != "message":
                        continue
                    try:
                        event = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    if isinstance(event, dict):
                        yield event
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                self._lost(exc)
            finally:
                # a dead connection closes as it can
                with anyio.move_on_after(self.timeout, shield=True), suppress(Exception):
                    await pubsub.aclose()

    # -- stored objects -------------------------------------------------------------------

    def _object_key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}obj:{namespace}:{key}"

    async def _remote_put(
        self, namespace: str, key: str, value: Mapping[str, Any], ttl: float | None
    ) -> None:
        px = None if ttl is None else max(int(ttl * 1000), 1)
        await self.client.set(self._object_key(namespace, key), json.dumps(dict(value)), px=px)

    async def put(
        self, namespace: str, key: str, value: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        await self._call(
            lambda: self._remote_put(namespace, key, value, ttl),
            lambda: self.local.put(namespace, key, value, ttl=ttl),
            ("put", (namespace, key, value, ttl)),
        )

    async def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        async def remote() -> dict[str, Any] | None:
            value = await self.client.get(self._object_key(namespace, key))
            return None if value is None else dict(json.loads(value))

        return await self._call(remote, lambda: self.local.get(namespace, key))

    # -- what /status and /metrics show ---------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "url": self.safe_url,
            "up": self.up,
            "fallbacks": self.fallbacks,
            "outages": self.outages,
            "resyncs": self.resyncs,
            "pending_writes": len(self._pending),
        }


def _record(data: str, revoked: Any) -> KeyRecord:
    record = KeyRecord.from_dict(json.loads(data))
    if int(revoked or 0) and not record.revoked:
        record = KeyRecord.from_dict(record.to_dict() | {"revoked": True})
    return record


def _check_url(url: str) -> None:
    """A clear config error for a URL that cannot be a Redis URL (``state.url``)."""
    safe = mask_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise StateError(f"[state] url {safe!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise StateError(
            f"[state] url {safe!r}: the scheme must be redis://, rediss:// or unix://, "
            f"not {parts.scheme + '://' if parts.scheme else 'missing'}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise StateError(f"[state] url {safe!r} names no host (redis://host:6379/0)")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StateError(f"[state] url {safe!r}: the database must be a number, not {db!r}")


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis is unreachable (as opposed to a bad request)."""
    from redis import exceptions as rex

    if isinstance(exc, TimeoutError | OSError | rex.ConnectionError | rex.TimeoutError):
        return not isinstance(exc, rex.AuthenticationError)
    return isinstance(exc, rex.BusyLoadingError | rex.ReadOnlyError)
