"""The engine against real loopback upstreams that misbehave on purpose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import coop
import pytest
from coop import (
    InferenceRequest,
    MissingSecretError,
    NoHealthyDeploymentError,
    OpenAIEngine,
    RetryPolicy,
    SystemConfig,
    UnknownModelError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    hookimpl,
    load_plugins,
    parse_chat_request,
)
from fakes import Answer, FakeOpenAI, Fault

pytestmark = pytest.mark.anyio


class FakeProvider(coop.OpenAICompatibleProvider):
    name = "fake-openai"


class _Plugin:
    @hookimpl
    def coop_register_providers(self, register: Any) -> None:
        register(FakeProvider)


PLUGINS = load_plugins(extra={"fake-openai": _Plugin()})
#: Circuits open on the first sick failure here, so the tests below see each transition;
#: tests/test_resilience.py covers the thresholds.
FAST = RetryPolicy(
    max_attempts=4,
    backoff_base=0.01,
    backoff_max=0.05,
    max_wait=2.0,
    base_cooldown=0.4,
    failure_threshold=1,
)


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=["k1", "k2"]) as server:
        yield server


@pytest.fixture
def up2() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=["k1", "k2"]) as server:
        yield server


def config(
    *endpoints: FakeOpenAI,
    keys: list[str] | None = None,
    timeout: float = 5.0,
    fallbacks: Any = None,
    **model: Any,
) -> SystemConfig:
    data: dict[str, Any] = {
        "endpoints": {
            f"e{i}": {
                "provider": "fake-openai",
                "base_url": up.base_url,
                "api_keys": keys or ["k1"],
                "timeout": timeout,
                "health_check_interval": 0,
            }
            for i, up in enumerate(endpoints)
        },
        "models": {
            "m": {
                "deployments": [
                    {"endpoint": f"e{i}", "path": "gpt-4o-mini"} for i in range(len(endpoints))
                ],
                **model,
            },
        },
    }
    if fallbacks:
        data["models"]["m"]["fallbacks"] = ["backup"]
        data["models"]["backup"] = {"endpoint": f"e{len(endpoints) - 1}", "path": "gpt-4o"}
    return SystemConfig.from_dict(data)


def chat(text: str = "hello", **extra: Any) -> coop.ChatRequest:
    return parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    )


async def test_chat_reports_model_deployment_usage_and_cost(up: FakeOpenAI) -> None:
    cfg = config(up, price={"input": 1.0, "output": 2.0})
    async with OpenAIEngine(cfg, plugins=PLUGINS, retry=FAST) as engine:
        result = await engine.chat(chat("ping"))
    assert result.text == "echo: ping"
    assert (
        result.model == "m"
        and result.deployment == "e0/gpt-4o-mini"
        and result.provider == "fake-openai"
    )
    assert result.usage.prompt_tokens > 0 and not result.usage.estimated
    expected = (result.usage.prompt_tokens * 1.0 + result.usage.completion_tokens * 2.0) / 1e6
    assert result.cost == pytest.approx(expected)
    assert up.last_request.headers["authorization"] == "Bearer k1"
    assert up.last_request.json["model"] == "gpt-4o-mini"


async def test_seed_api_inference_and_stream(up: FakeOpenAI) -> None:
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        response = await engine.inference(InferenceRequest(prompt="hi there", model_name="m"))
        assert response.success and response.text == "echo: hi there"
        assert response.deployment == "e0/gpt-4o-mini" and response.latency > 0
        pieces = [
            p async for p in engine.stream(InferenceRequest(prompt="stream me", model_name="m"))
        ]
    assert "".join(pieces) == "echo: stream me" and len(pieces) > 1


async def test_failover_to_a_healthy_deployment(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.set_mode(Fault.status(503))
    async with OpenAIEngine(config(up, up2), plugins=PLUGINS, retry=FAST) as engine:
        for _ in range(4):
            result = await engine.chat(chat())
            assert result.deployment == "e1/gpt-4o-mini"
    # After the first failure the sick deployment cools down and gets no more traffic.
    assert up.request_count == 1
    assert up2.request_count == 4


async def test_cooldown_then_half_open_probe_brings_it_back(
    up: FakeOpenAI, up2: FakeOpenAI
) -> None:
    up.set_mode(Fault.status(500))
    async with OpenAIEngine(config(up, up2), plugins=PLUGINS, retry=FAST) as engine:
        await engine.chat(chat())
        state = engine.models["m"].deployments[0]
        assert state.state() == "open"
        up.clear_faults()
        await anyio.sleep(0.45)  # base cooldown 0.4 s
        assert state.state() == "half-open"
        for _ in range(6):
            await engine.chat(chat())
        assert state.state() == "closed"
    assert up.request_count >= 2  # the probe and later traffic reached it again


async def test_recooling_never_shortens_and_grows(up: FakeOpenAI) -> None:
    up.set_mode(Fault.status(503))
    async with OpenAIEngine(
        config(up),
        plugins=PLUGINS,
        retry=RetryPolicy(max_attempts=1, base_cooldown=0.2, failure_threshold=1),
    ) as engine:
        with pytest.raises(coop.UpstreamUnavailableError):
            await engine.chat(chat())
        state = engine.models["m"].deployments[0]
        first = state.current_cooldown
        await anyio.sleep(0.25)
        with pytest.raises(coop.UpstreamUnavailableError):
            await engine.chat(chat())
        assert state.current_cooldown == 2 * first


async def test_revoked_key_is_skipped(up: FakeOpenAI) -> None:
    up.revoke_key("k1")
    async with OpenAIEngine(config(up, keys=["k1", "k2"]), plugins=PLUGINS, retry=FAST) as engine:
        for _ in range(5):
            await engine.chat(chat())
        keys = engine.models["m"].deployments[0].keys
        assert keys.revoked(keys.keys[0]) and not keys.revoked(keys.keys[1])
    used = [r.headers["authorization"] for r in up.requests if r.path.endswith("/completions")]
    assert used.count("Bearer k1") == 1  # tried once, then out of rotation
    assert used.count("Bearer k2") == 5
    # the endpoint's GET /models rejected it too: the key itself is bad
    checks = [r.headers["authorization"] for r in up.requests if r.path.endswith("/models")]
    assert checks == ["Bearer k1"]


async def test_rate_limited_key_cools_while_the_other_serves(up: FakeOpenAI) -> None:
    up.rate_limit_key("k1", retry_after=30)
    async with OpenAIEngine(config(up, keys=["k1", "k2"]), plugins=PLUGINS, retry=FAST) as engine:
        for _ in range(4):
            await engine.chat(chat())
        snap = engine.models["m"].deployments[0].keys.snapshot()
    assert snap[0]["cooling_for"] > 25 and not snap[0]["revoked"]
    assert [r.headers["authorization"] for r in up.requests].count("Bearer k1") == 1


async def test_retry_after_is_honoured(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.rate_limited(retry_after=0.3))
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        started = time.monotonic()
        result = await engine.chat(chat())
        elapsed = time.monotonic() - started
    assert result.text == "echo: hello"
    assert elapsed >= 0.28  # waited for the upstream's Retry-After, then succeeded
    assert up.request_count == 2


async def test_waits_for_the_earliest_cooldown_instead_of_failing(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.status(503))
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        result = await engine.chat(chat())
    assert result.text == "echo: hello" and up.request_count == 2


async def test_a_stall_is_cut_at_the_timeout(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.set_mode(Fault.stall(10))
    async with OpenAIEngine(config(up, up2, timeout=0.5), plugins=PLUGINS, retry=FAST) as engine:
        started = time.monotonic()
        result = await engine.chat(chat())
        assert time.monotonic() - started < 3
        assert result.deployment == "e1/gpt-4o-mini"
        assert engine.models["m"].deployments[0].state() == "open"


async def test_a_stall_everywhere_raises_a_timeout(up: FakeOpenAI) -> None:
    up.set_mode(Fault.stall(10))
    async with OpenAIEngine(
        config(up, timeout=0.3), plugins=PLUGINS, retry=RetryPolicy(max_attempts=2, max_wait=0.1)
    ) as engine:
        with pytest.raises((UpstreamTimeoutError, NoHealthyDeploymentError)) as caught:
            await engine.chat(chat())
    assert "timed out" in str(caught.value) or "no answer" in str(caught.value)


async def test_fallbacks_answer_when_every_deployment_fails(
    up: FakeOpenAI, up2: FakeOpenAI
) -> None:
    up.set_mode(Fault.status(503))
    up2.set_mode(Fault.status(503), model="gpt-4o-mini")
    async with OpenAIEngine(config(up, up2, fallbacks=True), plugins=PLUGINS, retry=FAST) as engine:
        result = await engine.chat(chat())
    assert result.model == "backup" and result.deployment == "e1/gpt-4o"


async def test_context_window_error_goes_to_fallback(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.context_length_exceeded(), model="gpt-4o-mini")
    async with OpenAIEngine(config(up, fallbacks=True), plugins=PLUGINS, retry=FAST) as engine:
        result = await engine.chat(chat())
    assert result.model == "backup"


async def test_bad_request_is_not_retried(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.set_mode(
        Fault.status(
            400, {"error": {"message": "bad temperature", "type": "invalid_request_error"}}
        )
    )
    async with OpenAIEngine(config(up, up2), plugins=PLUGINS, retry=FAST) as engine:
        with pytest.raises(coop.BadRequestError) as caught:
            await engine.chat(chat())
    assert caught.value.status == 400 and "bad temperature" in caught.value.body
    assert "bad temperature" not in str(caught.value)  # upstream text is never echoed
    assert up.request_count + up2.request_count == 1


async def test_stream_fails_over_before_the_first_chunk(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.set_mode(Fault.status(503))
    async with OpenAIEngine(config(up, up2), plugins=PLUGINS, retry=FAST) as engine:
        started: list[str] = []
        finished: list[Any] = []
        chunks = [
            c
            async for c in engine.stream_chat(
                chat("abc def", stream=True),
                on_start=lambda dep, model: started.append(dep),
                on_finish=lambda usage, cost: finished.append(usage),
            )
        ]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in chunks
        if c.choices and isinstance(c.choices[0].delta.content, str)
    )
    assert text == "echo: abc def"
    assert started == ["e1/gpt-4o-mini"]
    assert finished[0].prompt_tokens > 0
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage


async def test_stream_usage_chunk_when_asked(up: FakeOpenAI) -> None:
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        chunks = [
            c
            async for c in engine.stream_chat(
                chat("x", stream=True, stream_options={"include_usage": True})
            )
        ]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


async def test_a_cut_stream_raises_a_clear_error(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.cut_stream(after_chunks=2))
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        received = []
        with pytest.raises(UpstreamProtocolError) as caught:
            async for chunk in engine.stream_chat(chat("one two three four", stream=True)):
                received.append(chunk)
    assert received  # bytes reached the caller: no silent retry after that
    assert "stream ended before [DONE]" in str(caught.value)
    assert caught.value.deployment == "e0/gpt-4o-mini"


async def test_error_event_mid_stream(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.error_event_mid_stream())
    async with OpenAIEngine(config(up), plugins=PLUGINS, retry=FAST) as engine:
        with pytest.raises(coop.UpstreamError):
            async for _ in engine.stream_chat(chat("one two three four", stream=True)):
                pass


@pytest.mark.parametrize("fault", [Fault.malformed_json(), Fault.wrong_content_type()])
async def test_garbage_becomes_a_typed_error_with_status_and_snippet(
    up: FakeOpenAI, fault: Fault
) -> None:
    up.set_mode(fault)
    async with OpenAIEngine(
        config(up), plugins=PLUGINS, retry=RetryPolicy(max_attempts=1)
    ) as engine:
        with pytest.raises(UpstreamProtocolError) as caught:
            await engine.chat(chat())
    assert caught.value.status == 200
    assert caught.value.body


async def test_dropped_connection_is_retried_elsewhere(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.set_mode(Fault.drop())
    async with OpenAIEngine(config(up, up2), plugins=PLUGINS, retry=FAST) as engine:
        result = await engine.chat(chat())
    assert result.deployment == "e1/gpt-4o-mini"


async def test_unknown_model_lists_the_available_ones(up: FakeOpenAI) -> None:
    async with OpenAIEngine(config(up), plugins=PLUGINS) as engine:
        with pytest.raises(UnknownModelError) as caught:
            await engine.chat(chat(), model="gpt-5")
    assert "model 'gpt-5' does not exist" in str(caught.value) and "m" in caught.value.available


async def test_unset_key_variable_is_named(up: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COOP_TEST_MISSING_KEY", raising=False)
    async with OpenAIEngine(
        config(up, keys=["env:COOP_TEST_MISSING_KEY"]), plugins=PLUGINS
    ) as engine:
        with pytest.raises(MissingSecretError) as caught:
            await engine.chat(chat())
    assert caught.value.variable == "COOP_TEST_MISSING_KEY"


async def test_missing_usage_is_estimated_and_marked(up: FakeOpenAI) -> None:
    up.answer_fn = lambda request: Answer(content="a fairly short answer")
    up.set_mode(None)

    async with OpenAIEngine(config(up), plugins=PLUGINS) as engine:
        original = engine.providers["e0"].parse_response

        def strip_usage(data: Any) -> Any:
            data.pop("usage", None)
            return original(data)

        engine.providers["e0"].parse_response = strip_usage  # type: ignore[method-assign]
        result = await engine.chat(chat())
    assert result.usage.estimated and result.usage.completion_tokens > 0


async def test_active_health_check_uses_the_model_list(up: FakeOpenAI) -> None:
    async with OpenAIEngine(config(up), plugins=PLUGINS) as engine:
        report = await engine.check_endpoint("e0")
    assert report["ok"] and report["models"] == 2
    assert [r.path for r in up.requests] == ["/v1/models"]


async def test_least_inflight_spreads_concurrent_load(up: FakeOpenAI, up2: FakeOpenAI) -> None:
    up.latency = up2.latency = 0.05
    async with (
        OpenAIEngine(config(up, up2), plugins=PLUGINS) as engine,
        anyio.create_task_group() as tg,
    ):
        for _ in range(20):
            tg.start_soon(engine.chat, chat())
    assert up.request_count == up2.request_count == 10


async def test_concurrency_cap_is_respected(up: FakeOpenAI) -> None:
    up.latency = 0.05
    cfg = config(up)
    cfg.models["m"].deployments[0].max_concurrency = 2
    peak = 0
    async with OpenAIEngine(cfg, plugins=PLUGINS) as engine:
        state_holder: list[Any] = []

        async def watch() -> None:
            nonlocal peak
            state = engine.models["m"].deployments[0]
            state_holder.append(state)
            for _ in range(60):
                peak = max(peak, state.in_flight)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            for _ in range(6):
                tg.start_soon(engine.chat, chat())
    assert up.request_count == 6 and peak <= 2


async def test_a_rejected_key_is_tried_again_later(up: FakeOpenAI) -> None:
    up.revoke_key("k1")
    async with OpenAIEngine(
        config(up, keys=["k1"]), plugins=PLUGINS, retry=RetryPolicy(max_attempts=1)
    ) as engine:
        with pytest.raises(coop.AuthenticationError):
            await engine.chat(chat())
        pool = engine.models["m"].deployments[0].keys
        pool.revoke_for = 0.0  # as if the revocation period had passed
        pool.keys[0].revoked_until = 0.0
        pool.keys[0].blocked.clear()
        up.add_key("k1")  # an operator fixed the key upstream
        result = await engine.chat(chat())
    assert result.text == "echo: hello"
