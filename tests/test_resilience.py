"""Failover that holds: circuits on sustained failure, deadlines, Retry-After, key blocks.

Unit tests drive :class:`DeploymentState` and :class:`KeyPool` on a fake clock; the engine
tests run against real loopback upstreams (tests/fakes); the soak at the end runs
benchmarks/soak.py's harness for a few hundred requests: `coop serve` in front of three
upstreams each failing 30% (500, 429, 503, drops, stalls past the timeout).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import coop
import pytest
from coop import (
    NoHealthyDeploymentError,
    OpenAIEngine,
    RetryPolicy,
    SystemConfig,
    hookimpl,
    load_plugins,
    parse_chat_request,
)
from coop._config import ResilienceConfig
from coop._health import DeploymentState, KeyPool
from coop.server._http import error_for
from fakes import FakeOpenAI, Fault

ROOT = Path(__file__).resolve().parent.parent


class FakeProvider(coop.OpenAICompatibleProvider):
    name = "fake-openai"


class _Plugin:
    @hookimpl
    def coop_register_providers(self, register: Any) -> None:
        register(FakeProvider)


PLUGINS = load_plugins(extra={"fake-openai": _Plugin()})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sick() -> coop.UpstreamError:
    return coop.UpstreamUnavailableError("down", status=500)


def deployment(clock: Clock, **kw: Any) -> DeploymentState:
    return DeploymentState(model="m", endpoint="e", path="p", clock=clock, **kw)


# -- circuits ---------------------------------------------------------------------------


def test_one_failure_does_not_open_a_circuit_but_sustained_failure_does() -> None:
    clock = Clock()
    d = deployment(clock)
    for _ in range(d.failure_threshold - 1):
        d.record_failure(sick())
    assert d.state() == "closed"
    d.record_success(0.01)
    for _ in range(d.failure_threshold - 1):
        d.record_failure(sick())
    assert d.state() == "closed", "a success in between resets the count"
    d.record_failure(sick())
    assert d.state() == "open" and d.cooldown_until == clock.now + d.base_cooldown


def test_an_error_rate_over_the_window_opens_the_circuit() -> None:
    clock = Clock()
    d = deployment(clock, failure_threshold=100, error_rate_threshold=0.5, min_requests=20)
    for i in range(30):  # 60% failing, never 100 in a row
        clock.now += 0.1
        if i % 5 < 3:
            d.record_failure(sick())
        else:
            d.record_success(0.01)
        if d.state() == "open":
            break
    assert d.state() == "open"
    assert d.successes + d.sick >= 20, "not before min_requests"


def test_a_30_percent_error_rate_never_opens_with_the_defaults() -> None:
    clock = Clock()
    d = deployment(clock)
    pattern = [True, True, False, True, True, False, True, False, True, True]  # 30% fail
    for i in range(5000):
        clock.now += 0.01
        if pattern[i % 10]:
            d.record_success(0.01)
        else:
            d.record_failure(sick())
    assert d.state() == "closed" and d.error_rate() == pytest.approx(0.3, abs=0.05)


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    d = deployment(clock, failure_threshold=100, error_window=10.0, min_requests=10)
    for _ in range(8):
        d.record_failure(sick())
        d.record_success(0.01)
    clock.now += 60  # a minute later: the failures are history
    for _ in range(200):
        d.record_success(0.01)
    for _ in range(4):
        d.record_failure(sick())
    assert d.state() == "closed"


def test_half_open_admits_a_few_probes_and_the_first_success_closes() -> None:
    clock = Clock()
    d = deployment(clock, half_open_probes=2)
    d.trip()
    assert not d.available()
    clock.now += d.base_cooldown
    assert d.state() == "half-open"
    probes = [d.begin(), d.begin()]
    assert probes == [True, True] and not d.available(), "only two probes at once"
    d.end(True)
    d.record_success(0.01)
    d.end(True)
    assert d.state() == "closed" and d.available()


def test_a_failing_probe_reopens_with_a_longer_capped_cooldown() -> None:
    clock = Clock()
    d = deployment(clock, base_cooldown=5.0, max_cooldown=12.0)
    cooldowns = []
    for _ in range(4):
        d.trip() if d.circuit == "closed" else None
        clock.now = d.cooldown_until
        assert d.state() == "half-open"
        probe = d.begin()
        d.record_failure(sick())
        d.end(probe)
        cooldowns.append(d.current_cooldown)
    assert cooldowns == [10.0, 12.0, 12.0, 12.0]


def test_a_recooling_keeps_the_later_deadline() -> None:
    clock = Clock()
    d = deployment(clock, failure_threshold=1, base_cooldown=5.0)
    d.record_failure(coop.RateLimitError("slow down", retry_after=30.0))  # no keys: the deployment
    assert d.cooldown_until == clock.now + 30.0
    d.record_failure(sick())  # an in-flight request failing later must not shorten it
    assert d.cooldown_until == clock.now + 30.0


def test_a_healthy_request_allocates_nothing_for_the_window() -> None:
    clock = Clock()
    d = deployment(clock)
    for _ in range(63):
        d.record_success(0.01)
    assert not d.marks, "no window bookkeeping per success"


# -- keys --------------------------------------------------------------------------------


def test_a_401_on_one_model_blocks_only_that_model_until_confirmed() -> None:
    clock = Clock()
    pool = KeyPool(["k1", "k2"], clock=clock)
    k1 = pool.keys[0]
    pool.record(k1, coop.AuthenticationError("no", status=401), model="gpt-4o")
    assert not pool.revoked(k1)
    assert {pool.pick("gpt-4o").value for _ in range(4)} == {"k2"}
    assert {pool.pick("gpt-4o-mini").value for _ in range(4)} == {"k1", "k2"}
    pool.record(k1, coop.AuthenticationError("no", status=401), model="o3")
    assert pool.revoked(k1), "rejected on two models: the key itself is bad"
    assert {pool.pick("gpt-4o-mini").value for _ in range(4)} == {"k2"}
    clock.now += pool.revoke_for
    assert {pool.pick("gpt-4o").value for _ in range(4)} == {"k1", "k2"}, "tried again later"


def test_a_429_cools_the_key_for_its_retry_after() -> None:
    clock = Clock()
    pool = KeyPool(["k1"], clock=clock)
    pool.record(pool.keys[0], coop.RateLimitError("slow", retry_after=3.0), model="x")
    with pytest.raises(coop.RateLimitError) as caught:
        pool.pick("x")
    assert caught.value.retry_after == pytest.approx(3.0)
    assert pool.ready_at("x") == clock.now + 3.0
    clock.now += 3.0
    assert pool.pick("x") is pool.keys[0]


# -- configuration -----------------------------------------------------------------------


def test_policy_defaults_are_the_config_defaults() -> None:
    assert RetryPolicy.from_config(ResilienceConfig()) == RetryPolicy()


def test_resilience_table_maps_onto_the_engine_policy() -> None:
    config = SystemConfig.from_dict(
        {
            "resilience": {
                "max_attempts": 7,
                "failure_threshold": 3,
                "error_rate": 0.25,
                "cooldown_base": 2,
                "cooldown_max": 30,
                "half_open_probes": 1,
                "key_block": 60,
            },
            "endpoints": {"e": {"provider": "simulated"}},
            "models": {"m": {"endpoint": "e", "path": "sim-light"}},
        }
    )
    engine = OpenAIEngine(config, plugins=PLUGINS)
    policy = engine.retry
    assert (policy.max_attempts, policy.failure_threshold, policy.error_rate) == (7, 3, 0.25)
    assert (policy.base_cooldown, policy.max_cooldown, policy.half_open_probes) == (2, 30, 1)
    assert policy.key_block == 60


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_attempts": 0}, "resilience.max_attempts: expected a positive integer, got 0"),
        ({"error_rate": 1.5}, "resilience.error_rate: expected a share between 0"),
        ({"cooldown_base": "5s"}, "resilience.cooldown_base: expected a number, got a string"),
        ({"cooldown_base": 90}, "cooldown_base (90) is larger than cooldown_max (60)"),
        ({"retries": 3}, "unknown key 'retries'"),
    ],
)
def test_bad_resilience_settings_are_named(
    tmp_path: Path, table: dict[str, Any], message: str
) -> None:
    lines = ["[resilience]", *(f"{k} = {v!r}".replace("'", '"') for k, v in table.items())]
    path = tmp_path / "coop.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(coop.ConfigError) as caught:
        SystemConfig.load(path)
    assert message in str(caught.value)
    assert "coop.toml" in str(caught.value)


# -- the engine against real upstreams ------------------------------------------------------


@pytest.fixture
def ups() -> Iterator[list[FakeOpenAI]]:
    servers = [FakeOpenAI(api_keys=["k1", "k2"]) for _ in range(3)]
    for server in servers:
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def config(*ups: FakeOpenAI, timeout: float = 5.0, keys: list[str] | None = None) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                f"e{i}": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": keys or ["k1"],
                    "timeout": timeout,
                    "health_check_interval": 0,
                }
                for i, up in enumerate(ups)
            },
            "models": {
                "m": {
                    "deployments": [
                        {"endpoint": f"e{i}", "path": "gpt-4o-mini"} for i in range(len(ups))
                    ]
                },
                "big": {"endpoint": "e0", "path": "gpt-4o"},
            },
        }
    )


def chat(model: str = "m") -> coop.ChatRequest:
    return parse_chat_request({"model": model, "messages": [{"role": "user", "content": "hi"}]})


QUICK = RetryPolicy(backoff_base=0.01, backoff_max=0.05, max_wait=3.0, base_cooldown=0.3)


@pytest.mark.anyio
async def test_no_attempt_outlives_the_deadline(ups: list[FakeOpenAI]) -> None:
    for up in ups:
        up.set_mode(Fault.stall(None))
    async with OpenAIEngine(config(*ups, timeout=5.0), plugins=PLUGINS, retry=QUICK) as engine:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await engine.chat(chat(), deadline=started + 0.6)
        elapsed = time.monotonic() - started
    assert elapsed < 0.9, f"ran {elapsed:.2f}s against a 0.6 s deadline"


@pytest.mark.anyio
async def test_waits_for_the_earliest_deployment_within_the_deadline(
    ups: list[FakeOpenAI],
) -> None:
    up = ups[0]
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=QUICK) as engine:
        engine.models["m"].deployments[0].trip()  # cooling for 0.3 s
        started = time.monotonic()
        result = await engine.chat(chat(), deadline=started + 5)
        assert 0.25 < time.monotonic() - started < 2
        assert result.text == "echo: hi"
        engine.models["m"].deployments[0].trip()
        engine.models["m"].deployments[0].trip()  # re-opened: 0.6 s, past the deadline
        with pytest.raises(NoHealthyDeploymentError) as caught:
            await engine.chat(chat(), deadline=time.monotonic() + 0.2)
    assert caught.value.retry_after > 0.4  # type: ignore[attr-defined]
    error = error_for(caught.value)
    assert error.status == 503 and (b"retry-after", b"1") in error.headers


@pytest.mark.anyio
async def test_retry_after_is_honoured_across_keys_and_deployments(
    ups: list[FakeOpenAI],
) -> None:
    a, b = ups[0], ups[1]
    a.rate_limit_key("k1", retry_after=30)
    async with OpenAIEngine(config(a, b), plugins=PLUGINS, retry=QUICK) as engine:
        for _ in range(6):
            result = await engine.chat(chat())
            assert result.deployment == "e1/gpt-4o-mini"
    assert a.request_count == 1, "the cooled key is not asked again before its Retry-After"


@pytest.mark.anyio
async def test_a_401_on_one_model_leaves_the_key_for_the_others(
    ups: list[FakeOpenAI],
) -> None:
    up = ups[0]
    up.queue_fault(Fault.status(401), model="gpt-4o")  # not allowed on that model
    async with OpenAIEngine(config(up, keys=["k1"]), plugins=PLUGINS, retry=QUICK) as engine:
        with pytest.raises(coop.CoopError):
            await engine.chat(chat("big"))
        pool = engine.models["m"].deployments[0].keys
        assert not pool.revoked(pool.keys[0]), "GET /models accepted the key"
        assert engine.healthy("m") and not engine.healthy("big")
        for _ in range(3):
            assert (await engine.chat(chat("m"))).text == "echo: hi"


@pytest.mark.anyio
async def test_a_key_the_endpoint_rejects_is_disabled_and_readiness_says_so(
    ups: list[FakeOpenAI],
) -> None:
    up = ups[0]
    up.revoke_key("k1")
    async with OpenAIEngine(config(up, keys=["k1"]), plugins=PLUGINS, retry=QUICK) as engine:
        assert engine.healthy("m") and engine.healthy("big")
        with pytest.raises(coop.CoopError):
            await engine.chat(chat("m"))
        pool = engine.models["m"].deployments[0].keys
        assert pool.revoked(pool.keys[0])
        assert not engine.healthy("m") and not engine.healthy("big")


@pytest.mark.anyio
async def test_a_dead_deployment_and_a_revoked_key_still_answer_ten_of_ten(
    ups: list[FakeOpenAI],
) -> None:
    dead, live = ups[0], ups[1]
    dead.set_mode(Fault.drop())
    live.revoke_key("k1")
    async with OpenAIEngine(
        config(dead, live, keys=["k1", "k2"]), plugins=PLUGINS, retry=QUICK
    ) as engine:
        answers = [await engine.chat(chat()) for _ in range(10)]
    assert all(a.text == "echo: hi" for a in answers)


# -- the soak ------------------------------------------------------------------------------


def _soak_module() -> Any:
    spec = importlib.util.spec_from_file_location("coop_soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_three_deployments_failing_30_percent_still_answer() -> None:
    """A short bounded soak: ≥ 99.5% of plain requests succeed, every stream ends in
    [DONE] or an error event, no request outlives request_timeout, 503s say Retry-After."""
    soak = _soak_module()
    deadline = 8.0
    started = time.monotonic()
    report = soak.run(
        requests=300, concurrency=16, timeout=1.0, deadline=deadline, stream_share=0.2
    )
    assert time.monotonic() - started < 90
    summary = "\n".join(report.lines())
    assert report.requests == 300, summary
    assert report.plain_success_rate >= 0.995, summary
    assert report.errors.get("broken_stream", 0) == 0, summary
    assert not any(k.startswith("client") for k in report.errors), summary
    assert report.slowest <= deadline + 1.0, summary
    assert report.retry_after_missing == 0, summary
    assert sum(report.upstream_faults.values()) > 0.2 * report.requests, "faults were injected"


def test_retry_after_of_a_503_is_at_least_one_second() -> None:
    error = NoHealthyDeploymentError("every deployment cools")
    error.retry_after = 0.2  # type: ignore[attr-defined]
    assert (b"retry-after", b"1") in error_for(error).headers
    error.retry_after = 12.3  # type: ignore[attr-defined]
    assert (b"retry-after", str(math.ceil(12.3)).encode()) in error_for(error).headers
    assert (b"retry-after", b"1") in error_for(NoHealthyDeploymentError("x")).headers


@pytest.mark.anyio
async def test_every_attempt_timeout_is_capped_by_the_deadline(ups: list[FakeOpenAI]) -> None:
    up = ups[0]
    up.queue_fault(Fault.stall(None))
    async with OpenAIEngine(config(up, timeout=30.0), plugins=PLUGINS, retry=QUICK) as engine:
        with anyio.fail_after(5):
            with pytest.raises(TimeoutError):
                await engine.chat(chat(), deadline=time.monotonic() + 0.5)
