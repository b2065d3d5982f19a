"""Managed gateway keys: the KeyManager, ``coop keys``, and the gateway holding a key to
its models, limits and budget, seen through the official openai and anthropic SDKs.

The gateway runs on uvicorn in a thread (``serve_in_thread``) over a SQLite state file;
the tests change keys through their own :class:`KeyManager` on the same file, as the CLI
(another process) does. The in-process ASGI tests at the end run under asyncio and trio.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import anyio
import httpx
import openai
import pytest
from coop import SystemConfig, ValidationError
from coop._keys import KeyManager, KeyRefusedError, parse_expires
from coop._state import KeyExistsError, KeyNotFoundError, MemoryState, hash_key
from coop._state_sqlite import SQLiteState
from coop.server import create_app
from fakes import FakeOpenAI
from test_gateway import PLUGINS, Gateway, eventually, serve_in_thread, sse

T = TypeVar("T")
BOUND = 15.0
MODELS = ["m", "big", "auto", "council"]
#: USD per million tokens: 1000 makes a token cost $0.001, so small answers cross small budgets.
PRICE = {"input": 1000.0, "output": 1000.0}


def keys_config(up: FakeOpenAI, state: Path | None, **server: Any) -> SystemConfig:
    """Two priced models on one fake endpoint, a cooperation, routing tiers; ``state``:
    the SQLite file (None: in memory)."""
    data: dict[str, Any] = {
        "server": {"access_log": "off", **server},
        "endpoints": {
            "fake": {
                "provider": "fake-openai",
                "base_url": up.base_url,
                "api_keys": ["sk-upstream-secret-0123456789"],
                "health_check_interval": 0,
            }
        },
        "models": {
            "m": {"endpoint": "fake", "path": "gpt-4o-mini", "tier": "light", "price": PRICE},
            "big": {"endpoint": "fake", "path": "gpt-4o", "tier": "reasoning", "price": PRICE},
        },
        "routing": {"light": "m", "reasoning": "big", "complex": "council"},
        "cooperations": {
            "council": {"mode": "parallel", "models": ["m", "big"], "strategy": "voting"}
        },
        "state": {"backend": "memory"}
        if state is None
        else {"backend": "sqlite", "path": str(state), "sync_interval": 0.1},
    }
    return SystemConfig.from_dict(data)


def admin(path: Path, work: Callable[[KeyManager], Awaitable[T]]) -> T:
    """Run ``work`` on a KeyManager of its own over the state file (what ``coop keys`` does)."""

    async def main() -> T:
        state = SQLiteState(path)
        await state.open()
        try:
            return await work(KeyManager(state, known_models=MODELS))
        finally:
            await state.aclose()

    return anyio.run(main)


def known(gw: Gateway, path: Path, work: Callable[[KeyManager], Awaitable[T]]) -> T:
    """``admin(path, work)`` for a ``work`` that makes a key, then wait until the gateway's
    copy has it (a gateway with no managed key yet only sees the first one at its next
    refresh, up to ``sync_interval`` later: until then it asks for no key)."""
    made = admin(path, work)
    name = made[1].name  # type: ignore[index]
    eventually(lambda: name in gw.app.key_manager._names, f"the gateway to see key {name!r}")
    return made


def ask(gw: Gateway, key: str, model: str = "m", text: str = "hi", **kw: Any) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=BOUND)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def gw(up: FakeOpenAI, state_file: Path) -> Iterator[Gateway]:
    with serve_in_thread(keys_config(up, state_file)) as gateway:
        yield gateway


# -- the KeyManager ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_stores_only_the_hash_and_rotate_replaces_it() -> None:
    state = MemoryState()
    manager = KeyManager(state, known_models=MODELS)
    key, record = await manager.create("alice", rpm=5, budget=2.5, models=["m"])
    assert key.startswith("sk-coop-") and len(key) > 40
    assert record.digest == hash_key(key) and record.hint == key[:12]
    assert record.period == "month"  # a budget without a period is monthly
    stored = await state.list_keys()
    assert key not in repr(stored) and key not in json.dumps([r.to_dict() for r in stored])
    assert await state.find_key(hash_key(key)) == record
    new, rotated = await manager.rotate("alice")
    assert new != key and rotated.rpm == 5 and rotated.budget == 2.5
    assert await state.find_key(hash_key(key)) is None
    assert (await state.find_key(hash_key(new))) == rotated


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("limits", "field", "words"),
    [
        ({"budget": 0}, "--budget", "a budget of 0 would refuse every request; omit --budget"),
        ({"budget": -3}, "--budget", "a budget of -3 would refuse every request"),
        ({"budget": math.nan}, "--budget", "omit --budget for no budget"),
        ({"rpm": 0}, "--rpm", "an rpm of 0 would refuse every request; omit --rpm"),
        ({"tpm": -1}, "--tpm", "omit --tpm for no limit"),
        ({"models": ["m", "gpt-5"]}, "--models", "unknown model 'gpt-5'; configured: auto, big"),
        ({"models": ["bgi"]}, "--models", "(did you mean 'big'?)"),
        ({"expires": "next tuesday"}, "--expires", "is not a date: use YYYY-MM-DD"),
        ({"expires": "2020-01-01"}, "--expires", "'2020-01-01' is in the past"),
        ({"budget": 5, "period": "week"}, "--period", "'week' is not a budget period; use day"),
        ({"period": "day"}, "--period", "a period needs a budget: add --budget USD"),
    ],
)
async def test_bad_values_are_refused_naming_the_option(
    limits: dict[str, Any], field: str, words: str
) -> None:
    state = MemoryState()
    with pytest.raises(ValidationError) as caught:
        await KeyManager(state, known_models=MODELS).create("k", **limits)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert await state.list_keys() == []  # nothing half-made


@pytest.mark.anyio
async def test_names_are_unique_and_unknown_names_list_the_known_ones() -> None:
    state = MemoryState()
    manager = KeyManager(state, known_models=MODELS)
    with pytest.raises(ValidationError, match="not a key name"):
        await manager.create("two words")
    await manager.create("alice")
    with pytest.raises(KeyExistsError, match="'alice' already exists"):
        await manager.create("alice")
    await manager.create("bob")
    with pytest.raises(
        KeyNotFoundError, match=r"no managed key named 'carol' \(known: alice, bob\)"
    ):
        await manager.revoke("carol")
    with pytest.raises(KeyNotFoundError, match="known: alice, bob"):
        await manager.rotate("carol")
    await manager.revoke("bob")
    with pytest.raises(ValidationError, match="'bob' is revoked and stays so"):
        await manager.rotate("bob")


def test_two_creators_of_one_name_at_once_one_wins(tmp_path: Path) -> None:
    """Two processes' managers on one SQLite file, racing: exactly one key is made."""
    path = tmp_path / "race.sqlite3"

    async def race() -> list[object]:
        states = [SQLiteState(path), SQLiteState(path)]
        for state in states:
            await state.open()
        outcomes: list[object] = []

        async def one(state: SQLiteState) -> None:
            try:
                outcomes.append(await KeyManager(state).create("shared"))
            except KeyExistsError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            for state in states:
                tg.start_soon(one, state)
        for state in states:
            await state.aclose()
        return outcomes

    outcomes = anyio.run(race)
    assert sum(isinstance(o, KeyExistsError) for o in outcomes) == 1
    assert len(admin(path, lambda m: m.state.list_keys())) == 1


def test_expiry_forms() -> None:
    now = datetime(2027, 1, 15, tzinfo=UTC).timestamp()
    feb = datetime(2027, 2, 1, tzinfo=UTC).timestamp()
    assert parse_expires("2027-02-01", now=now) == feb  # 00:00 UTC that day
    assert parse_expires("2027-02-01T12:00", now=now) == feb + 12 * 3600
    assert parse_expires("2027-02-01T12:00+02:00", now=now) == feb + 10 * 3600
    assert parse_expires("30d", now=now) == now + 30 * 86400
    assert parse_expires("12h", now=now) == now + 12 * 3600


# -- the gateway through the SDKs --------------------------------------------------------


def test_with_a_managed_key_every_request_needs_one(gw: Gateway, state_file: Path) -> None:
    with gw.http() as http:  # no key yet: open, as before
        assert http.post("/v1/chat/completions", json=_body()).status_code == 200
    key, _ = known(gw, state_file, lambda m: m.create("alice"))
    eventually(lambda: gw.app._auth_on, "the gateway to see the new key")
    with gw.http() as http:
        missing = http.post("/v1/chat/completions", json=_body())
        wrong = http.post(
            "/v1/chat/completions", json=_body(), headers={"authorization": "Bearer sk-coop-x"}
        )
        public = http.get("/health")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert public.status_code == 200
    assert ask(gw, key).choices[0].message.content == "echo: hi"


def test_a_key_created_a_moment_ago_works_at_once(gw: Gateway, state_file: Path) -> None:
    known(gw, state_file, lambda m: m.create("first"))
    eventually(lambda: gw.app._auth_on, "the gateway to see the first key")
    gw.app.key_manager.sync_interval = 3600  # no re-read: the lookup of an unknown digest
    time.sleep(0.3)  # the running loop's current sleep ends
    key, _ = admin(state_file, lambda m: m.create("second"))
    assert ask(gw, key).choices[0].message.content == "echo: hi"


def test_a_key_is_held_to_its_models(gw: Gateway, state_file: Path) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("light-only", models=["m"]))
    assert ask(gw, key, "m").choices[0].message.content == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        ask(gw, key, "big")
    error = caught.value.body
    assert caught.value.status_code == 403
    assert error["code"] == "model_not_allowed"  # type: ignore[index]
    assert "may not use model 'big'; it may use: m" in error["message"]  # type: ignore[index]
    # auto is routed, then refused when the router's choice is not on the list
    with pytest.raises(openai.PermissionDeniedError, match="routed this request to 'big'"):
        ask(gw, key, "auto", text="Prove that there are infinitely many primes, step by step.")
    with pytest.raises(openai.PermissionDeniedError, match="'council'"):
        ask(gw, key, "council")
    # an ad-hoc cooperation: every member must be allowed
    with gw.http() as http:
        coop = http.post(
            "/v1/cooperate",
            json={"query": "hi", "models": ["m", "big"]},
            headers={"authorization": f"Bearer {key}"},
        )
    assert coop.status_code == 403 and "'big'" in coop.json()["error"]["message"]


def test_auto_may_be_allowed_as_such(gw: Gateway, state_file: Path) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("router", models=["auto"]))
    assert ask(gw, key, "auto").choices[0].message.content == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError):
        ask(gw, key, "m")


def test_rpm_gives_429_with_retry_after(gw: Gateway, state_file: Path) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("slow", rpm=2))
    for _ in range(2):
        ask(gw, key)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(gw, key)
    response = caught.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert caught.value.code == "rate_limit_exceeded"
    assert "limit of 2 requests per minute" in caught.value.message
    stats = gw.app.key_manager.stats["slow"]
    assert stats.requests == 2 and stats.refusals["rpm"] == 1


def test_tpm_counts_the_estimate_before_and_the_real_use_after(
    gw: Gateway, state_file: Path
) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("tokens", tpm=60))
    with pytest.raises(openai.RateLimitError, match="more than key"):
        ask(gw, key, max_tokens=100)  # can never fit: says so, not "retry later"
    ask(gw, key, max_tokens=20)  # about 9 + 20 counted
    with pytest.raises(openai.RateLimitError) as caught:
        ask(gw, key, max_tokens=40)
    assert caught.value.response.headers["retry-after"]
    assert gw.app.key_manager.stats["tokens"].refusals["tpm"] == 2


def test_a_spent_budget_is_insufficient_quota_and_the_sdk_does_not_retry(
    gw: Gateway, up: FakeOpenAI, state_file: Path
) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("capped", budget=0.005, period="day"))
    first = ask(gw, key, text="one two three")  # ~$0.015: crosses the budget, still answered
    assert first.choices[0].message.content == "echo: one two three"
    seen = up.request_count
    retrying = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=3, timeout=BOUND)
    with pytest.raises(openai.RateLimitError) as caught:
        retrying.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.status_code == 429
    assert error.type == "insufficient_quota" and error.code == "budget_exceeded"
    assert error.response.headers["x-should-retry"] == "false"
    assert "spent its budget of $0.005" in error.message
    assert up.request_count == seen  # nothing reached the upstream
    assert gw.app.key_manager.stats["capped"].refusals["budget"] == 1  # asked once: no retry
    usage = admin(state_file, lambda m: m.list())  # a budget's spend is written at once
    assert usage[0].spend == pytest.approx(gw.app.key_manager.stats["capped"].spend)
    assert usage[0].spend > 0.005
    # the request and token counters every sync_interval, in one write each
    eventually(lambda: admin(state_file, lambda m: m.list())[0].requests == 1, "the counters")
    assert admin(state_file, lambda m: m.list())[0].tokens > 0


def test_a_stream_that_crosses_the_budget_finishes_then_the_next_is_refused(
    gw: Gateway, up: FakeOpenAI, state_file: Path
) -> None:
    up.answer_fn = lambda body: " ".join(f"word{i}" for i in range(40))
    key, _ = known(gw, state_file, lambda m: m.create("streamer", budget=0.01))
    with httpx.Client(timeout=BOUND) as http:
        body = {**_body(), "stream": True}
        headers = {"authorization": f"Bearer {key}"}
        streamed = http.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        assert streamed.status_code == 200
        chunks, done = sse(streamed.text)
        assert done  # the whole answer, though it cost ~$0.05
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text.endswith("word39")
        refused = http.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"


def test_a_revoked_key_is_refused_within_a_second(gw: Gateway, state_file: Path) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("leaver"))
    ask(gw, key)
    admin(state_file, lambda m: m.revoke("leaver"))
    revoked = time.monotonic()
    eventually(lambda: gw.app.key_manager._names["leaver"].revoked, "the revocation")
    assert time.monotonic() - revoked < 1.0
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(gw, key)
    assert gw.app.key_manager.stats["leaver"].refusals["revoked"] == 1


def test_a_rotated_key_stops_working(gw: Gateway, state_file: Path) -> None:
    old, _ = known(gw, state_file, lambda m: m.create("rotor"))
    ask(gw, old)
    new, _ = admin(state_file, lambda m: m.rotate("rotor"))
    eventually(lambda: gw.app.key_manager._names["rotor"].digest == hash_key(new), "the rotation")
    with pytest.raises(openai.AuthenticationError):
        ask(gw, old)
    assert ask(gw, new).choices[0].message.content == "echo: hi"


def test_an_expired_key_is_refused(gw: Gateway, state_file: Path) -> None:
    async def soon(manager: KeyManager) -> Any:
        return await manager.create("brief", expires=time.time() + 1.0)

    key, _ = known(gw, state_file, soon)
    ask(gw, key)
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError, match="expired at"):
        ask(gw, key)


def test_static_keys_keep_working_beside_managed_ones(up: FakeOpenAI, state_file: Path) -> None:
    config = keys_config(up, state_file, api_keys=["sk-static-admin-0001"])
    with serve_in_thread(config) as gw:
        key, _ = known(gw, state_file, lambda m: m.create("managed", rpm=1))
        assert ask(gw, "sk-static-admin-0001").choices
        assert ask(gw, key).choices
        for _ in range(3):  # no limit on a static key
            assert ask(gw, "sk-static-admin-0001").choices
        with pytest.raises(openai.AuthenticationError):
            ask(gw, "sk-static-admin-0002")


def test_anthropic_messages_answer_in_anthropics_shape(gw: Gateway, state_file: Path) -> None:
    key, _ = known(gw, state_file, lambda m: m.create("claude", rpm=2, models=["m"]))
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=BOUND)
    user = [{"role": "user", "content": "hi"}]
    assert client.messages.create(model="m", max_tokens=8, messages=user).content  # type: ignore[arg-type]
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.create(model="big", max_tokens=8, messages=user)  # type: ignore[arg-type]
    assert denied.value.body["type"] == "error"  # type: ignore[index]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="m", max_tokens=8, messages=user)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert limited.value.response.headers["retry-after"]
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-coop-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model="m", max_tokens=8, messages=user)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_per_key_figures_by_name_and_the_key_nowhere(
    gw: Gateway, state_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key, _ = known(gw, state_file, lambda m: m.create("team-a", rpm=2, models=["m"]))
    ask(gw, key)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        ask(gw, key, "big")  # counts against rpm: every request made with the key does
    with pytest.raises(openai.RateLimitError) as limited:
        ask(gw, key)
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key}"}) as http:
        status = http.get("/status")
        metrics = http.get("/metrics")
    figures = status.json()["gateway_keys"]["team-a"]
    assert figures["requests"] == 1 and figures["prompt_tokens"] > 0
    assert figures["spend_usd"] > 0 and figures["refusals"] == {"model": 1, "rpm": 1}
    assert 'coop_gateway_key_requests_total{key_name="team-a"} 1.0' in metrics.text
    assert 'coop_gateway_key_refusals_total{key_name="team-a",reason="rpm"} 1.0' in metrics.text
    assert 'coop_gateway_key_spend_usd_total{key_name="team-a"}' in metrics.text
    secret = key[12:]  # what the hint does not show
    for text in (status.text, metrics.text, caplog.text, str(limited.value), str(denied.value)):
        assert secret not in text


# -- the CLI ----------------------------------------------------------------------------


def coop_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COOP_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(folder / ".xdg")
    env["XDG_DATA_HOME"] = str(folder / ".data")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_toml(folder: Path, up: FakeOpenAI | None = None) -> Path:
    base = up.base_url if up is not None else "http://127.0.0.1:9/v1"
    (folder / "coop.toml").write_text(
        "[endpoints.fake]\n"
        'provider = "openai"\n'
        f'base_url = "{base}"\n'
        'api_keys = ["sk-upstream"]\n'
        "health_check_interval = 0\n\n"
        "[models.m]\n"
        'endpoint = "fake"\n'
        'path = "gpt-4o-mini"\n'
        "price = { input = 1000.0, output = 1000.0 }\n\n"
        "[models.big]\n"
        'endpoint = "fake"\n'
        'path = "gpt-4o"\n',
        encoding="utf-8",
    )
    return folder / "coop.toml"


def test_cli_create_list_rotate_revoke_with_json(tmp_path: Path) -> None:
    write_toml(tmp_path)
    made = coop_cli(
        tmp_path, "keys", "create", "--name", "alice", "--rpm", "60", "--tpm", "10000",
        "--budget", "5", "--period", "day", "--models", "m,big", "--expires", "30d", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    key = created["key"]
    assert created["name"] == "alice" and key.startswith("sk-coop-")
    assert created["models"] == ["m", "big"] and created["budget"] == 5.0
    assert created["period"] == "day" and created["expires"].endswith("Z")
    assert "digest" not in created
    assert (tmp_path / "coop-state.sqlite3").exists()  # beside coop.toml
    plain = coop_cli(tmp_path, "keys", "create", "--name", "bob")
    assert plain.returncode == 0 and plain.stdout.strip().startswith("sk-coop-")
    assert "only time it is shown" in plain.stderr
    listed = coop_cli(tmp_path, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["alice", "bob"]
    assert rows[0]["status"] == "active" and rows[0]["spend"] == 0 and rows[0]["rpm"] == 60
    assert key not in listed.stdout and key[12:] not in listed.stdout
    assert rows[0]["hint"] == key[:12]
    table = coop_cli(tmp_path, "keys", "list")
    assert "alice" in table.stdout and "$0.0000 / $5" in table.stdout
    rotated = coop_cli(tmp_path, "keys", "rotate", "--name", "alice", "--json")
    assert rotated.returncode == 0
    new = json.loads(rotated.stdout)["key"]
    assert new != key and json.loads(rotated.stdout)["rpm"] == 60
    revoked = coop_cli(tmp_path, "keys", "revoke", "--name", "bob")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    rows = json.loads(coop_cli(tmp_path, "keys", "list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("alice", "active"), ("bob", "revoked")]
    assert rows[0]["hint"] == new[:12]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["create", "--name", "x", "--budget", "0"], "a budget of 0 would refuse every request"),
        (["create", "--name", "x", "--models", "m,nope"], "unknown model 'nope'; configured:"),
        (["create", "--name", "x", "--expires", "someday"], "--expires: 'someday' is not a date"),
        (["create", "--name", "x", "--budget", "1", "--period", "year"], "not a budget period"),
        (["create", "--name", "taken"], "a key named 'taken' already exists"),
        (["revoke", "--name", "ghost"], "no managed key named 'ghost' (known: taken)"),
        (["rotate", "--name", "ghost"], "no managed key named 'ghost'"),
        (["create"], "--name"),
        (["create", "--name", "x", "--rpm", "many"], "--rpm"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_clear_line(
    tmp_path: Path, args: list[str], words: str
) -> None:
    write_toml(tmp_path)
    assert coop_cli(tmp_path, "keys", "create", "--name", "taken").returncode == 0
    result = coop_cli(tmp_path, "keys", *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_survive_a_restart_of_the_gateway(tmp_path: Path, up: FakeOpenAI) -> None:
    """``coop keys`` writes the SQLite file beside coop.toml; ``coop serve`` reads it, and
    the key, its limits and its spend are there after the gateway restarts."""
    from plugin_dists import make_dist
    from test_gateway_process import PROVIDER, Served

    config = write_toml(tmp_path, up)
    text = config.read_text().replace('provider = "openai"', 'provider = "gwtest-openai"')
    config.write_text(text)
    made = coop_cli(tmp_path, "keys", "create", "--name", "ops", "--budget", "0.005", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    dist = make_dist(tmp_path / "dist", "llm-coop-gwtest", "coop_gwtest_provider", PROVIDER)
    env = {k: v for k, v in os.environ.items() if k != "COOP_CONFIG"}
    env |= {"PYTHONPATH": str(dist), "XDG_CONFIG_HOME": str(tmp_path / ".xdg")}

    def serve() -> tuple[Served, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coop", "serve", "--config", str(config), "--port", "0"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        served = Served(proc)
        return served, served.url()

    served, url = serve()
    try:
        with httpx.Client(base_url=url.removesuffix("/v1"), timeout=BOUND) as http:
            assert http.post("/v1/chat/completions", json=_body()).status_code == 401
            auth = {"authorization": f"Bearer {key}"}
            first = http.post("/v1/chat/completions", json=_body("one two three"), headers=auth)
            assert first.status_code == 200, first.text
    finally:
        served.proc.terminate()
        assert served.wait() == 0
    served, url = serve()
    try:
        with httpx.Client(base_url=url.removesuffix("/v1"), timeout=BOUND) as http:
            again = http.post("/v1/chat/completions", json=_body(), headers=auth)
        assert again.status_code == 429, again.text  # the spend was kept
        assert again.json()["error"]["code"] == "budget_exceeded"
    finally:
        served.proc.terminate()
        assert served.wait() == 0
    logs = "".join(served.stderr)
    assert key[12:] not in logs
    listed = json.loads(coop_cli(tmp_path, "keys", "list", "--json").stdout)
    assert listed[0]["requests"] == 1 and listed[0]["spend"] > 0.005


# -- in process, under asyncio and trio ---------------------------------------------------


class _Client:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()
        self.sent: list[dict[str, Any]] = []
        self._given = False

    async def receive(self) -> dict[str, Any]:
        if not self._given:
            self._given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    def headers(self) -> dict[bytes, bytes]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def _call(
    app: Any, key: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> _Client:
    client = _Client(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 1),
    }
    await app(scope, client.receive, client.send)
    return client


def _body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.anyio
async def test_in_process_limits_budget_and_revocation(up: FakeOpenAI) -> None:
    app = create_app(keys_config(up, None), plugins=PLUGINS, health_checks=False)
    await app.startup()
    try:
        manager = app.key_manager
        assert isinstance(manager.state, MemoryState)
        key, _ = await manager.create("inproc", rpm=3, budget=0.005, models=["m"])
        assert app._auth_on  # the gateway's own manager: at once
        denied = await _call(app, key, _body(model="big"))
        assert denied.status == 403 and denied.json()["error"]["code"] == "model_not_allowed"
        ok = await _call(app, key, _body("one two three"))
        assert ok.status == 200, ok.json()
        spent = await _call(app, key, _body())
        assert spent.status == 429 and spent.json()["error"]["type"] == "insufficient_quota"
        assert spent.headers()[b"x-should-retry"] == b"false"
        other, _ = await manager.create("other", rpm=1)
        assert (await _call(app, other, _body())).status == 200
        limited = await _call(app, other, _body())
        assert limited.status == 429 and int(limited.headers()[b"retry-after"]) >= 1
        await manager.revoke("other")
        gone = await _call(app, other, _body())
        assert gone.status == 401 and "revoked" in gone.json()["error"]["message"]
        third, _ = await manager.create("third", models=["m"])
        messages = await _call(
            app, third, {"model": "big", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            "/v1/messages",
        )  # fmt: skip
        assert messages.status == 403 and messages.json()["error"]["type"] == "permission_error"
        assert manager.stats["inproc"].spend > 0.005
    finally:
        await app.shutdown()


@pytest.mark.anyio
async def test_a_refusal_reaches_the_caller_as_key_refused_error() -> None:
    manager = KeyManager(MemoryState(), known_models=MODELS)
    _, record = await manager.create("tiny", rpm=1)
    await manager.admit(record)
    with pytest.raises(KeyRefusedError) as caught:
        await manager.admit(record)
    assert caught.value.http_status == 429 and caught.value.reason == "rpm"
    assert (b"retry-after", b"60") in caught.value.headers or caught.value.retry_after
