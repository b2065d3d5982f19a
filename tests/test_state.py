"""The state backends' contract (coop._state): one suite, run on memory and SQLite here and
on Redis in test_state_redis.py; plus SQLite across reopens and processes, and open_state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from coop import SystemConfig
from coop._state import (
    KeyExistsError,
    KeyNotFoundError,
    KeyRecord,
    MemoryState,
    StateBackend,
    hash_key,
    new_key,
    open_state,
    state_path,
)
from coop._state_sqlite import SQLiteState

pytestmark = pytest.mark.anyio


def record(name: str, **fields: object) -> KeyRecord:
    key = new_key()
    return KeyRecord(name=name, digest=hash_key(key), hint=key[:12], created=time.time(), **fields)  # type: ignore[arg-type]


class FakeClock:
    """A clock the test moves; backends whose limits use their own clock (Redis) skip it."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class StateContract:
    """What every backend must do. Subclasses provide the ``state`` fixture (opened) and
    ``advance(state, seconds)`` to move its clock (or sleep, for a backend on a server clock)."""

    async def advance(self, state: StateBackend, seconds: float) -> None:
        state._clock.now += seconds  # type: ignore[attr-defined]

    async def test_create_find_list(self, state: StateBackend) -> None:
        a = record("alice", rpm=10, models=("m1", "m2"), budget=2.5, period="day")
        await state.create_key(a)
        await state.create_key(record("bob"))
        assert [r.name for r in await state.list_keys()] == ["alice", "bob"]
        found = await state.find_key(a.digest)
        assert found == a
        assert found.models == ("m1", "m2")
        assert await state.find_key(hash_key("sk-coop-nope")) is None

    async def test_duplicate_name_refused(self, state: StateBackend) -> None:
        first = record("team")
        await state.create_key(first)
        with pytest.raises(KeyExistsError, match="'team' already exists"):
            await state.create_key(record("team"))
        assert [r.digest for r in await state.list_keys()] == [first.digest]

    async def test_revoke_and_replace(self, state: StateBackend) -> None:
        old = record("svc")
        await state.create_key(old)
        revoked = await state.revoke_key("svc")
        assert revoked.revoked
        found = await state.find_key(old.digest)
        assert found is not None and found.revoked
        new = record("svc")
        previous = await state.replace_key("svc", new)
        assert previous.digest == old.digest
        assert await state.find_key(old.digest) is None
        assert (await state.find_key(new.digest)) == new

    async def test_unknown_name(self, state: StateBackend) -> None:
        await state.create_key(record("known"))
        with pytest.raises(KeyNotFoundError, match=r"'ghost' \(known: known\)"):
            await state.revoke_key("ghost")
        with pytest.raises(KeyNotFoundError):
            await state.replace_key("ghost", record("ghost"))

    async def test_sliding_window(self, state: StateBackend) -> None:
        window = 2.0
        verdicts = [await state.hit("b", limit=3, window=window) for _ in range(3)]
        assert all(v.allowed for v in verdicts)
        assert [v.remaining for v in verdicts] == [2, 1, 0]
        refused = await state.hit("b", limit=3, window=window)
        assert not refused.allowed
        assert 0 < refused.retry_after <= window
        # another bucket is independent
        assert (await state.hit("other", limit=3, window=window)).allowed
        await self.advance(state, refused.retry_after + 0.05)
        assert (await state.hit("b", limit=3, window=window)).allowed

    async def test_amount_counts_and_refusal_counts_nothing(self, state: StateBackend) -> None:
        assert (await state.hit("t", limit=100, window=60, amount=70)).allowed
        refused = await state.hit("t", limit=100, window=60, amount=40)
        assert not refused.allowed and refused.remaining == 30
        assert (await state.hit("t", limit=100, window=60, amount=30)).allowed

    async def test_spend(self, state: StateBackend) -> None:
        assert await state.spend("k", "2026-11-30") == 0.0
        assert await state.add_spend("k", "2026-11-30", 0.25) == pytest.approx(0.25)
        assert await state.add_spend("k", "2026-11-30", 0.5) == pytest.approx(0.75)
        assert await state.spend("k", "2026-11-30") == pytest.approx(0.75)
        assert await state.spend("k", "2026-12-01") == 0.0

    async def test_put_get_ttl(self, state: StateBackend) -> None:
        await state.put("cache", "a", {"x": 1}, ttl=1.0)
        await state.put("cache", "b", {"y": [1, 2]})
        assert await state.get("cache", "a") == {"x": 1}
        assert await state.get("other", "a") is None
        await self.advance(state, 1.2)
        assert await state.get("cache", "a") is None
        assert await state.get("cache", "b") == {"y": [1, 2]}

    async def test_events(self, state: StateBackend) -> None:
        got: list[dict[str, object]] = []
        listening = anyio.Event()

        async def listen() -> None:
            async for event in state.events():
                if event.get("type") == "hello":
                    listening.set()  # subscribed: what is published now arrives
                    continue
                got.append(event)
                if len(got) == 2:
                    return

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(listen)
                while not listening.is_set():  # however long subscribing takes here
                    await state.publish({"type": "hello"})
                    with anyio.move_on_after(0.1):
                        await listening.wait()
                await state.publish({"type": "cool", "deployment": "e/m", "for": 5.0})
                await state.publish({"type": "cool", "deployment": "e/n", "for": 1.0})
        assert got == [
            {"type": "cool", "deployment": "e/m", "for": 5.0},
            {"type": "cool", "deployment": "e/n", "for": 1.0},
        ]


class TestMemory(StateContract):
    @pytest.fixture
    async def state(self) -> AsyncIterator[StateBackend]:
        state = MemoryState(clock=FakeClock())
        await state.open()
        yield state
        await state.aclose()


class TestSQLite(StateContract):
    @pytest.fixture
    async def state(self, tmp_path: Path) -> AsyncIterator[StateBackend]:
        state = SQLiteState(tmp_path / "s.sqlite3", clock=FakeClock(), poll=0.05)
        await state.open()
        yield state
        await state.aclose()


class TestSQLiteInline(TestSQLite):
    """The same on the event loop's thread (``threaded=False``), as the benchmark compares."""

    @pytest.fixture
    async def state(self, tmp_path: Path) -> AsyncIterator[StateBackend]:
        state = SQLiteState(tmp_path / "s.sqlite3", clock=FakeClock(), poll=0.05, threaded=False)
        await state.open()
        yield state
        await state.aclose()


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = SQLiteState(path)
    await first.open()
    alice = record("alice", budget=1.0, period="month")
    await first.create_key(alice)
    await first.add_spend("alice", "2026-11", 0.4)
    await first.put("store", "r1", {"text": "hi"}, ttl=3600)
    await first.aclose()

    again = SQLiteState(path)
    await again.open()
    try:
        assert await again.find_key(alice.digest) == alice
        assert await again.spend("alice", "2026-11") == pytest.approx(0.4)
        assert await again.get("store", "r1") == {"text": "hi"}
        with pytest.raises(KeyExistsError):
            await again.create_key(record("alice"))
    finally:
        await again.aclose()


_WORKER = textwrap.dedent(
    """
    import json, sys, anyio, time
    from coop._state import KeyExistsError, KeyRecord
    from coop._state_sqlite import SQLiteState

    async def main(path, who, start):
        state = SQLiteState(path)
        await state.open()
        while time.time() < start:
            await anyio.sleep(0.005)
        allowed = 0
        for _ in range(40):
            allowed += (await state.hit("shared", limit=50, window=60)).allowed
            await state.add_spend("k", "w", 0.01)
        try:
            await state.create_key(KeyRecord(name="same", digest=who, hint="x", created=0.0))
            won = True
        except KeyExistsError:
            won = False
        await state.aclose()
        print(json.dumps({"allowed": allowed, "won": won}))

    anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]))
    """
)


def test_sqlite_two_processes(tmp_path: Path) -> None:
    """Two processes on one file: the limit holds in total, spend adds up, one name wins."""
    path = tmp_path / "shared.sqlite3"

    async def create() -> None:
        state = SQLiteState(path)
        await state.open()
        await state.aclose()

    anyio.run(create)  # the schema exists before the race
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), who, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a" * 64, "b" * 64)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["allowed"] for r in results) == 50  # 80 hits, a limit of 50 in total
    assert sorted(r["won"] for r in results) == [False, True]

    async def spent() -> float:
        state = SQLiteState(path)
        await state.open()
        try:
            return await state.spend("k", "w")
        finally:
            await state.aclose()

    assert anyio.run(spent) == pytest.approx(0.8)


def _config(tmp_path: Path | None, state: str = "") -> SystemConfig:
    text = '[endpoints.e]\nprovider = "simulated"\n[models.m]\nendpoint = "e"\npath = "x"\n'
    if tmp_path is None:
        return SystemConfig.from_dict(
            {
                "endpoints": {"e": {"provider": "simulated"}},
                "models": {"m": {"endpoint": "e", "path": "x"}},
            }
        )
    path = tmp_path / "coop.toml"
    path.write_text(text + state, encoding="utf-8")
    return SystemConfig.load(path)


def test_open_state_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # beside coop.toml by default
    config = _config(tmp_path)
    assert config.state.backend == "sqlite"
    assert state_path(config) == tmp_path / "coop-state.sqlite3"
    assert isinstance(open_state(config), SQLiteState)
    # a relative path is relative to coop.toml
    config = _config(tmp_path, '[state]\npath = "data/s.db"\n')
    assert state_path(config) == tmp_path / "data" / "s.db"
    # memory on request, and for a config built in code (tests, embedding)
    assert isinstance(open_state(_config(tmp_path, '[state]\nbackend = "memory"\n')), MemoryState)
    assert isinstance(open_state(_config(None)), MemoryState)
    # no coop.toml at all: the user data directory
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cfg = _config(None)
    cfg.source = "(environment)"
    assert state_path(cfg) == tmp_path / "xdg" / "coop" / "coop-state.sqlite3"


async def test_sqlite_unopenable_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    state = SQLiteState(blocker / "sub" / "s.sqlite3")
    from coop._state import StateUnavailableError

    with pytest.raises(StateUnavailableError, match=r"cannot open the state file .*\[state\] path"):
        await state.open()


async def test_gateway_opens_and_closes_its_state(tmp_path: Path) -> None:
    from coop.server import create_app

    config = _config(tmp_path)
    app = create_app(config, health_checks=False)
    await app.startup()
    try:
        assert isinstance(app.state, SQLiteState)
        assert app.dispatcher is not None and app.dispatcher.engine.state is app.state
        await app.state.create_key(record("k"))
    finally:
        await app.shutdown()
    assert (tmp_path / "coop-state.sqlite3").is_file()
    assert app.state._db is None  # closed


# -- replica health events (coop._state_events) --------------------------------------------


def _engine_config(*ups: object) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                f"e{i}": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,  # type: ignore[attr-defined]
                    "api_keys": ["k1", "k2"],
                    "health_check_interval": 0,
                }
                for i, up in enumerate(ups)
            },
            "models": {
                "m": {
                    "deployments": [
                        {"endpoint": f"e{i}", "path": "gpt-4o-mini"} for i in range(len(ups))
                    ]
                }
            },
        }
    )


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_replicas_share_cooldowns_and_key_revocations(tmp_path: Path, backend: str) -> None:
    """Replica A opens a circuit and revokes an upstream key; B applies both within a second,
    and stops sending there. A healthy request publishes nothing. Own events are ignored."""
    from coop import OpenAIEngine, RetryPolicy, UpstreamConnectionError, parse_chat_request
    from coop._state_events import ReplicaSync
    from fakes import FakeOpenAI
    from test_resilience import PLUGINS

    ups = [FakeOpenAI(api_keys=["k1", "k2"]).start() for _ in range(2)]
    memory = MemoryState()
    states: list[StateBackend] = (
        [memory, memory]
        if backend == "memory"
        else [SQLiteState(tmp_path / "s.sqlite3", poll=0.05) for _ in range(2)]
    )
    policy = RetryPolicy(base_cooldown=30.0)
    request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    try:
        for state in states[:1] if backend == "memory" else states:
            await state.open()
        async with (
            OpenAIEngine(_engine_config(*ups), plugins=PLUGINS, retry=policy) as a,
            OpenAIEngine(_engine_config(*ups), plugins=PLUGINS, retry=policy) as b,
        ):
            sync_a, sync_b = ReplicaSync(a, states[0]), ReplicaSync(b, states[1])
            sync_a.attach()
            sync_b.attach()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(sync_a.run)
                tasks.start_soon(sync_b.run)
                await anyio.sleep(1.0)  # both listening (SQLite reads where to start)
                for _ in range(10):
                    assert (await a.chat(request)).text == "echo: hi"
                assert sync_a.published == 0 and sync_a.dropped == 0  # healthy: nothing sent

                dep_a = a.models["m"].deployments[0]
                for _ in range(dep_a.failure_threshold):
                    dep_a.record_failure(UpstreamConnectionError("cut"))
                assert dep_a.state() == "open"
                pool_a = a._key_pool("e1")
                pool_a.revoke(pool_a.keys[0])

                dep_b = b.models["m"].deployments[0]
                pool_b = b._key_pool("e1")
                # within a second, on the other replica
                started = time.monotonic()
                for _ in range(100):
                    if dep_b.state() == "open" and pool_b.revoked(pool_b.keys[0]):
                        break
                    await anyio.sleep(0.01)
                assert dep_b.state() == "open" and pool_b.revoked(pool_b.keys[0])
                assert time.monotonic() - started < 1.5
                assert 25 < dep_b.snapshot()["cooling_for"] <= 30  # the duration, not a time
                assert pool_b.snapshot()[1]["revoked"] is False
                assert sync_b.applied == 2 and sync_a.applied == 0  # own events ignored

                before = [up.request_count for up in ups]
                for _ in range(6):
                    assert (await b.chat(request)).text == "echo: hi"
                assert ups[0].request_count == before[0]  # B avoids A's sick deployment
                keys = [r.headers.get("authorization") for r in ups[1].requests[-6:]]
                assert keys == ["Bearer k2"] * 6  # and A's revoked key
                tasks.cancel_scope.cancel()
    finally:
        for state in states[:1] if backend == "memory" else states:
            await state.aclose()
        for up in ups:
            up.stop()


def test_replica_events_are_validated() -> None:
    """Malformed, unknown and endless events change nothing."""
    from coop._health import DeploymentState, KeyPool
    from coop._state_events import ReplicaSync

    dep = DeploymentState(model="m", endpoint="e", path="p", keys=KeyPool(["k"]))

    engine = SimpleNamespace(
        models={"m": SimpleNamespace(deployments=[dep])}, _pools={"e": dep.keys}
    )
    sync = ReplicaSync(engine, MemoryState())
    sync.attach()
    for event in (
        {"type": "health.cool", "deployment": "e/p", "for": "x"},
        {"type": "health.cool", "deployment": "e/p", "for": -1},
        {"type": "health.cool", "deployment": "e/p", "for": float("nan")},
        {"type": "health.cool", "deployment": "nope", "for": 5},
        {"type": "health.key", "endpoint": "e", "key": 7, "kind": "revoke", "for": 5},
        {"type": "health.key", "endpoint": "e", "key": 0, "kind": "explode", "for": 5},
        {"type": "health.cool", "deployment": "e/p", "for": 5, "origin": sync.origin},
    ):
        assert not sync.apply(event)
    assert dep.state() == "closed" and not dep.keys.revoked(dep.keys.keys[0])
    assert sync.apply({"type": "health.cool", "deployment": "e/p", "for": 1e9})
    assert dep.snapshot()["cooling_for"] <= 3600  # capped
    assert not sync.apply({"type": "health.cool", "deployment": "e/p", "for": 5})  # idempotent
