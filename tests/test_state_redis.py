"""RedisState on a real redis-server (tests/redis_server.py): the state contract, names
taken atomically, Redis' clock for limits, clear errors, and serving through an outage."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import test_gateway_process
from coop import SystemConfig
from coop._state import (
    KeyExistsError,
    StateBackend,
    StateError,
    StateUnavailableError,
    open_state,
)
from coop._state_redis import RedisState, mask_url
from fakes import FakeOpenAI, Fault
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    redis_server_auth_fixture,
    redis_server_fixture,
)
from test_gateway_process import BOUND
from test_state import StateContract, record

pytestmark = pytest.mark.anyio

#: ``serve(config, *args)``: a ``coop serve`` process (the fixture of test_gateway_process).
serve_fixture = test_gateway_process.serve


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
    heard = anyio.Event()

    async def until_heard(n: int) -> None:
        """Publish ``n`` (or a hello first) until the listener has it: however long
        (re)subscribing takes on this machine."""
        nonlocal heard
        heard = anyio.Event()
        while not heard.is_set():
            await sender.publish({"hello": n})
            with anyio.move_on_after(0.1):
                await heard.wait()
        await sender.publish({"n": n})

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:

                async def listen() -> None:
                    async for event in listener.events():
                        if "hello" in event:
                            heard.set()
                            continue
                        got.append(event)
                        if event.get("n") == 2:
                            tasks.cancel_scope.cancel()

                tasks.start_soon(listen)
                await until_heard(1)
                for _ in range(1000):
                    if got:
                        break
                    await anyio.sleep(0.01)
                redis_server.restart()
                # the first calls after the restart meet dead connections: both fall back
                await sender.hit("poke", limit=1000, window=1)
                await listener.hit("poke", limit=1000, window=1)
                while not (listener.up and sender.up):
                    await sender.probe()  # the listener probes on its own (its events loop)
                    await anyio.sleep(0.1)
                await until_heard(2)
                await anyio.sleep(25)
    finally:
        await listener.aclose()
        await sender.aclose()
    assert listener.outages == 1 and listener.resyncs == 1
    assert [e["n"] for e in got] == [1, 2]


# -- several `coop serve` processes sharing one Redis -------------------------------------------


def _replica_config(folder: Path, ups: list[Any], redis_url: str) -> Path:
    lines = []
    for i, up in enumerate(ups):
        lines += [
            f"[endpoints.fake{i}]",
            'provider = "gwtest-openai"',
            f'base_url = "{up.base_url}"',
            'api_keys = ["sk-upstream"]',
            "health_check_interval = 0",
            "",
        ]
    lines += [
        "[models.m]",
        "deployments = ["
        + ", ".join(f'{{endpoint = "fake{i}", path = "gpt-4o-mini"}}' for i in range(len(ups)))
        + "]",
        "",
        # one deployment alone: a request there fails over nowhere, so its circuit opens
        *(f'[models.solo{i}]\nendpoint = "fake{i}"\npath = "gpt-4o-mini"\n' for i in (0, 2)),
        "[resilience]",
        "failure_threshold = 2",
        "cooldown_base = 30",
        "backoff_base = 0.01",
        "",
        "[state]",
        'backend = "redis"',
        f'url = "{redis_url}"',
        'prefix = "replicas:"',
    ]
    path = folder / "coop.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _status(http: httpx.Client, url: str) -> dict[str, Any]:
    response = http.get(url.removesuffix("/v1") + "/status")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _circuit(status: dict[str, Any], endpoint: str) -> str:
    """The circuit of ``endpoint``'s deployment of model m."""
    (dep,) = [d for d in status["models"]["m"] if d["endpoint"] == endpoint]
    return str(dep["state"])


def _ask(http: httpx.Client, url: str, text: str = "hi", model: str = "m") -> httpx.Response:
    return http.post(
        url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )


def _listeners(server: RedisServer) -> int:
    """Subscribers of the replicas' event channel, as Redis counts them."""
    import redis

    with redis.Redis.from_url(server.url) as client:
        return int(dict(client.pubsub_numsub("replicas:events"))[b"replicas:events"])


def _wait(check: Any, bound: float, what: str) -> float:
    """Seconds until ``check()`` holds (fails after ``bound``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > bound:
            pytest.fail(f"{what}: not within {bound}s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_replicas_share_cooldowns_and_survive_a_redis_outage(
    serve_fixture: Any, tmp_path: Path, redis_server: RedisServer, anyio_backend: str
) -> None:
    """Two `coop serve` on one Redis: a deployment failing on A is avoided by B within a
    second; Redis stopped and started mid-run loses no request; afterwards both re-sync and
    events flow again (B's new cooldown reaches A)."""
    ups = [FakeOpenAI().start() for _ in range(3)]
    try:
        config = _replica_config(tmp_path, ups, redis_server.url)
        served, urls = [], []
        for _ in range(2):  # one after the other: each is listening before the next starts
            served.append(serve_fixture(config, "--port", "0"))
            urls.append(served[-1].url())
        a, b = urls
        with httpx.Client(timeout=BOUND) as http:
            for url in (a, b):
                assert _status(http, url)["state"]["backend"] == "redis"
                assert _status(http, url)["state"]["up"] is True

            listeners = _listeners(redis_server)
            assert listeners >= 2  # each replica listens for the others' events

            # 1. fake0 dies; A opens its circuit; B avoids it within a second
            ups[0].set_mode(Fault.drop())
            assert _ask(http, a, model="solo0").status_code >= 500
            assert _circuit(_status(http, a), "fake0") == "open"
            took = _wait(lambda: _circuit(_status(http, b), "fake0") == "open", 5, "B hears")
            assert took < 1.0, f"B applied A's cooldown after {took:.2f}s"
            cooling = next(d for d in _status(http, b)["models"]["m"] if d["endpoint"] == "fake0")
            assert 25 < cooling["cooling_for"] <= 30
            seen = ups[0].request_count
            for _ in range(10):
                assert _ask(http, b).status_code == 200
            assert ups[0].request_count == seen  # B never tried the sick deployment

            # 2. Redis stops and starts while requests run on both: none is lost
            answers: list[int] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(timeout=BOUND) as client:
                    i = 0
                    while not stop.is_set():
                        answers.append(_ask(client, (a, b)[i % 2], f"r{i}").status_code)
                        i += 1

            worker = threading.Thread(target=load)
            worker.start()
            time.sleep(0.5)
            redis_server.stop()
            time.sleep(2.0)
            redis_server.start()
            time.sleep(0.5)
            stop.set()
            worker.join(BOUND)
            assert len(answers) > 20 and set(answers) == {200}, answers

            # 3. both notice Redis is back and re-sync; events flow again (B → A)
            for url in (a, b):
                _wait(lambda url=url: _status(http, url)["state"]["up"], 10, "re-sync")
            _wait(lambda: _listeners(redis_server) >= listeners, 5, "all listen again")
            ups[2].set_mode(Fault.drop())
            assert _ask(http, b, model="solo2").status_code >= 500
            assert _circuit(_status(http, b), "fake2") == "open"
            try:
                _wait(lambda: _circuit(_status(http, a), "fake2") == "open", 1.5, "A hears B")
            except BaseException:
                print("A", _status(http, a)["state"], "".join(served[0].stderr)[-3000:])
                print("B", _status(http, b)["state"], "".join(served[1].stderr)[-3000:])
                raise
            assert "password" not in json.dumps(_status(http, a)["state"])
            # the outage shows in /metrics: served locally meanwhile, up again now
            metrics = http.get(a.removesuffix("/v1") + "/metrics").text
            assert 'coop_state_backend_up{backend="redis"} 1.0' in metrics
            fallback = re.search(r'coop_state_fallback_total\{backend="redis"\} ([\d.]+)', metrics)
            assert fallback is not None and float(fallback.group(1)) > 0
            assert re.search(r'coop_state_events_total\{outcome="applied"\} [1-9]', metrics)
    finally:
        for up in ups:
            up.stop()


def test_serve_with_redis_down_says_so_and_exits(serve_fixture: Any, tmp_path: Path) -> None:
    """`coop serve` against a Redis that is not there: a clear error, the password masked,
    no traceback, a non-zero exit."""
    from redis_server import free_port

    ups = [FakeOpenAI().start() for _ in range(3)]
    try:
        url = f"redis://:pw-not-shown-123@127.0.0.1:{free_port()}/0"
        served = serve_fixture(_replica_config(tmp_path, ups, url), "--port", "0")
        assert served.wait() != 0
    finally:
        for up in ups:
            up.stop()
    err = "".join(served.stderr)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in err, err
    assert "pw-not-shown-123" not in err and "Traceback" not in err
