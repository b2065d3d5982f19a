"""RedisState on a real redis-server (tests/redis_server.py): the state contract, names
taken atomically, Redis' clock for limits, clear errors, and serving through an outage."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from coop import SystemConfig
from coop._state import (
    KeyExistsError,
    StateBackend,
    StateError,
    StateUnavailableError,
    open_state,
)
from coop._state_redis import RedisState, mask_url
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    redis_server_auth_fixture,
    redis_server_fixture,
)
from test_state import StateContract, record

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's client is asyncio-only; trio is refused (test below)


class TestRedis(StateContract):
    @pytest.fixture
    async def state(self, redis_server: RedisServer) -> AsyncIterator[StateBackend]:
        state = RedisState(redis_server.url, prefix="t:")
        await state.open()
        yield state
        await state.aclose()

    async def advance(self, state: StateBackend, seconds: float) -> None:
        await anyio.sleep(seconds)  # Redis keeps time with its own clock


async def test_two_replicas_create_one_name_at_once(redis_server: RedisServer) -> None:
    a, b = RedisState(redis_server.url), RedisState(redis_server.url)
    await a.open()
    await b.open()
    try:
        for round_ in range(20):
            outcomes: list[str] = []

            async def create(
                state: RedisState, who: str, name: str, outcomes: list[str] = outcomes
            ) -> None:
                try:
                    await state.create_key(record(name))
                    outcomes.append(who)
                except KeyExistsError:
                    outcomes.append("refused")

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(create, a, "a", f"team-{round_}")
                tasks.start_soon(create, b, "b", f"team-{round_}")
            assert sorted(outcomes)[-1] == "refused" and len(outcomes) == 2
            assert outcomes.count("refused") == 1
        assert len(await a.list_keys()) == 20
    finally:
        await a.aclose()
        await b.aclose()


async def test_limits_use_redis_clock_not_the_replicas(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas, one an hour ahead: the limit holds in total, retry_after is sane."""
    real = time.time
    a, b = RedisState(redis_server.url), RedisState(redis_server.url)
    await a.open()
    await b.open()
    try:
        allowed = 0
        for i in range(10):
            # every other hit from a replica whose clock is off by an hour (either way)
            skew = 0.0 if i % 2 else (3600.0 if i % 4 else -3600.0)
            monkeypatch.setattr(time, "time", lambda skew=skew: real() + skew)
            verdict = await (a if i % 2 else b).hit("skew", limit=4, window=2.0)
            allowed += verdict.allowed
            if not verdict.allowed:
                assert 0 < verdict.retry_after <= 2.0
        assert allowed == 4
        monkeypatch.setattr(time, "time", real)
        await anyio.sleep(2.1)
        assert (await b.hit("skew", limit=4, window=2.0)).allowed
    finally:
        await a.aclose()
        await b.aclose()


async def test_down_at_start(tmp_path: Path) -> None:
    from redis_server import free_port

    state = RedisState(f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0", timeout=0.3)
    with pytest.raises(StateUnavailableError) as caught:
        await state.open()
    text = str(caught.value)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in text and "[state] url" in text
    assert "hunter2-pw" not in text


async def test_wrong_password(redis_server_auth: RedisServer) -> None:
    wrong = redis_server_auth.url.replace(redis_server_auth.password or "", "not-the-pw")
    with pytest.raises(StateUnavailableError, match="rejected the credentials") as caught:
        await RedisState(wrong).open()
    assert "not-the-pw" not in str(caught.value)
    assert redis_server_auth.password not in str(caught.value)
    no_password = redis_server_auth.url.replace(f":{redis_server_auth.password}@", "")
    with pytest.raises(StateUnavailableError, match="rejected the credentials"):
        await RedisState(no_password).open()
    right = RedisState(redis_server_auth.url)
    await right.open()
    await right.create_key(record("ok"))
    await right.aclose()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis//localhost:6379", "scheme must be redis://"),
        ("http://localhost:6379/0", "scheme must be redis://, rediss:// or unix://, not http://"),
        ("redis://localhost:63x9/0", "is not a valid URL"),
        ("redis://:pw-secret@localhost:6379/zero", "the database must be a number"),
        ("redis:///0", "names no host"),
    ],
)
async def test_url_typo_is_a_config_error(tmp_path: Path, url: str, says: str) -> None:
    path = tmp_path / "coop.toml"
    path.write_text(
        '[endpoints.e]\nprovider = "simulated"\n[models.m]\nendpoint = "e"\npath = "x"\n'
        f'[state]\nbackend = "redis"\nurl = "{url}"\n',
        encoding="utf-8",
    )
    with pytest.raises(StateError, match=r"\[state\] url") as caught:
        open_state(SystemConfig.load(path))
    assert says in str(caught.value)
    assert "pw-secret" not in str(caught.value)


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://user:pw@h/2") == "rediss://user:***@h/2"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"


def test_trio_is_refused_clearly(redis_server: RedisServer) -> None:
    import trio

    async def main() -> None:
        await RedisState(redis_server.url).open()

    with pytest.raises(StateError, match=r'backend = "redis" needs asyncio .* not trio'):
        trio.run(main)


async def test_outage_is_served_locally_and_resynced(redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url, timeout=0.3, retry_interval=0.1)
    await state.open()
    try:
        kept = record("kept")
        await state.create_key(kept)
        await state.add_spend("kept", "w", 1.0)
        await state.put("cache", "x", {"v": 1})
        redis_server.stop()
        # every call is answered, within a bound, on local state
        with anyio.fail_after(5):
            assert await state.find_key(kept.digest) == kept
            assert (await state.hit("b", limit=2, window=60)).allowed
            assert await state.add_spend("kept", "w", 0.5) == pytest.approx(1.5)
            await state.create_key(record("made-while-down"))
            await state.revoke_key("kept")
            await state.publish({"type": "x"})
        assert not state.up and state.fallbacks >= 6 and state.outages == 1
        redis_server.start()
        with anyio.fail_after(5):
            assert await state.probe()
        assert state.up and state.resyncs == 1
        other = RedisState(redis_server.url)
        await other.open()
        try:
            # spend accrued during the outage was pushed; keys made or revoked meanwhile too
            assert await other.spend("kept", "w") == pytest.approx(1.5)
            names = {r.name: r.revoked for r in await other.list_keys()}
            assert names == {"kept": True, "made-while-down": False}
            assert await other.get("cache", "x") == {"v": 1}
        finally:
            await other.aclose()
    finally:
        await state.aclose()


async def test_events_listener_reconnects(redis_server: RedisServer) -> None:
    """The event stream survives a Redis restart: it probes, re-syncs, resubscribes."""
    listener = RedisState(redis_server.url, timeout=0.3, retry_interval=0.1)
    sender = RedisState(redis_server.url, timeout=0.3, retry_interval=0.1)
    await listener.open()
    await sender.open()
    got: list[dict[str, object]] = []
    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:

                async def listen() -> None:
                    async for event in listener.events():
                        got.append(event)
                        if event.get("n") == 2:
                            tasks.cancel_scope.cancel()

                tasks.start_soon(listen)
                await anyio.sleep(0.3)
                await sender.publish({"n": 1})
                redis_server.restart()
                # the first calls after the restart meet dead connections: both fall back
                await sender.hit("poke", limit=1000, window=1)
                await listener.hit("poke", limit=1000, window=1)
                while not (listener.up and sender.up):
                    await sender.probe()  # the listener probes on its own (its events loop)
                    await anyio.sleep(0.1)
                await anyio.sleep(0.5)  # resubscribed
                await sender.publish({"n": 2})
                await anyio.sleep(10)
    finally:
        await listener.aclose()
        await sender.aclose()
    assert [e["n"] for e in got] == [1, 2]
