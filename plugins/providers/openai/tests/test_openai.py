"""The openai provider against FakeOpenAI over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_runner import apply_preset
from coop import (
    AuthenticationError,
    ChatChunk,
    ContextWindowExceededError,
    EndpointConfig,
    OpenAIEngine,
    ProviderCall,
    RateLimitError,
    Timeouts,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamUnavailableError,
    open_http_client,
    parse_chat_request,
)
from coop_openai import PRESET, OpenAIProvider, is_reasoning_model
from fakes import Answer, FakeOpenAI, Fault
from provider_config import one_endpoint

KEY = "sk-test-openai"
CALL = ProviderCall(model="gpt-4o-mini", api_key=KEY, timeouts=Timeouts(5, 5, 10))


def request(**extra: Any) -> Any:
    return parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hello there"}], **extra}
    )


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=[KEY], models=["gpt-4o-mini", "o3-mini"]) as up:
        yield up


@asynccontextmanager
async def provider(up: FakeOpenAI, **options: Any) -> AsyncIterator[OpenAIProvider]:
    http = open_http_client()
    try:
        endpoint = EndpointConfig(
            name="oa", provider="openai", base_url=up.base_url, options=options
        )
        yield OpenAIProvider(endpoint, http)
    finally:
        await http.aclose()


async def collect(p: OpenAIProvider, req: Any, call: ProviderCall = CALL) -> list[ChatChunk]:
    return [chunk async for chunk in p.stream(req, call)]


@pytest.mark.anyio
async def test_chat_answers_with_usage(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
    assert response.text == "echo: hello there"
    assert response.usage and response.usage.prompt_tokens == 2
    sent = upstream.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "gpt-4o-mini"


@pytest.mark.anyio
async def test_stream_reassembles_content_and_ends_with_usage(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        chunks = await collect(p, request(stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.text for c in chunks) == "echo: hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3  # type: ignore[union-attr]
    assert upstream.last_request.json["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_o_series_gets_max_completion_tokens_and_no_sampling_params(
    upstream: FakeOpenAI,
) -> None:
    call = ProviderCall(model="o3-mini", api_key=KEY, timeouts=Timeouts(5, 5, 10))
    async with provider(upstream) as p:
        await p.chat(request(max_tokens=50, temperature=0.2, top_p=0.9, presence_penalty=1), call)
        sent = upstream.last_request.json
        assert sent["max_completion_tokens"] == 50
        assert not {"max_tokens", "temperature", "top_p", "presence_penalty"} & set(sent)
        # Chat models keep what they were given.
        await p.chat(request(max_tokens=50, temperature=0.2), CALL)
        sent = upstream.last_request.json
        assert sent["max_tokens"] == 50 and sent["temperature"] == 0.2
        assert "max_completion_tokens" not in sent


@pytest.mark.anyio
async def test_drop_unsupported_false_forwards_sampling_params(upstream: FakeOpenAI) -> None:
    call = ProviderCall(model="o4-mini", api_key=KEY, timeouts=Timeouts(5, 5, 10))
    async with provider(upstream, drop_unsupported=False) as p:
        await p.chat(request(max_tokens=9, max_completion_tokens=20, temperature=0.5), call)
    sent = upstream.last_request.json
    assert sent["max_completion_tokens"] == 20 and "max_tokens" not in sent
    assert sent["temperature"] == 0.5


def test_reasoning_model_detection() -> None:
    for model in ("o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "openai/o3"):
        assert is_reasoning_model(model), model
    for model in ("gpt-4o", "gpt-4.1-mini", "gpt-5-chat-latest", "omni-moderation-latest"):
        assert not is_reasoning_model(model), model


def test_preset_catalogue_is_complete() -> None:
    ids = {m.id for m in PRESET.models}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini"} <= ids
    for info in PRESET.models:
        assert info.context_window and info.price_input and info.price_output, info
        assert info.tier in ("light", "reasoning", "complex")
    assert PRESET.model("o3-mini").tier == "reasoning"  # type: ignore[union-attr]
    assert PRESET.model("gpt-4o-mini").tier == "light"  # type: ignore[union-attr]
    assert PRESET.model("gpt-4.1").tier == "complex"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_revoked_key_is_an_authentication_error(upstream: FakeOpenAI) -> None:
    upstream.revoke_key(KEY)
    async with provider(upstream) as p:
        with pytest.raises(AuthenticationError) as info:
            await p.chat(request(), CALL)
    assert info.value.status == 401 and "Incorrect API key" in info.value.body


@pytest.mark.anyio
async def test_rate_limit_carries_retry_after(upstream: FakeOpenAI) -> None:
    upstream.rate_limit_key(KEY, retry_after=7)
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError) as info:
            await p.chat(request(), CALL)
        assert info.value.status == 429 and info.value.retry_after == 7
        with pytest.raises(RateLimitError):
            await collect(p, request(stream=True))


@pytest.mark.anyio
async def test_context_length_exceeded(upstream: FakeOpenAI) -> None:
    upstream.queue_fault(Fault.context_length_exceeded())
    async with provider(upstream) as p:
        with pytest.raises(ContextWindowExceededError) as info:
            await p.chat(request(), CALL)
    assert info.value.status == 400 and "context_length_exceeded" in info.value.body


@pytest.mark.anyio
async def test_503_is_unavailable(upstream: FakeOpenAI) -> None:
    upstream.queue_fault(Fault.status(503))
    async with provider(upstream) as p:
        with pytest.raises(UpstreamUnavailableError) as info:
            await p.chat(request(), CALL)
    assert info.value.status == 503 and "overloaded" in info.value.body
    assert info.value.deployment == "oa/gpt-4o-mini"


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "snippet"),
    [(Fault.wrong_content_type(), "Bad Gateway"), (Fault.malformed_json(), "chatcmpl")],
    ids=["wrong-content-type", "malformed-json"],
)
async def test_garbage_becomes_a_protocol_error_with_status_and_snippet(
    upstream: FakeOpenAI, fault: Fault, snippet: str, stream: bool
) -> None:
    upstream.queue_fault(fault)
    async with provider(upstream) as p:
        with pytest.raises(UpstreamProtocolError) as info:
            if stream:
                await collect(p, request(stream=True))
            else:
                await p.chat(request(), CALL)
    assert info.value.status == 200 and snippet in info.value.body


@pytest.mark.anyio
async def test_cut_stream_raises_a_protocol_error(upstream: FakeOpenAI) -> None:
    upstream.queue_fault(Fault.cut_stream(after_chunks=2))
    upstream.queue_fault(Fault.cut_stream())
    async with provider(upstream) as p:
        with pytest.raises(UpstreamProtocolError, match="connection cut") as info:
            await collect(p, request(stream=True))
        assert info.value.status == 200
        with pytest.raises(UpstreamConnectionError):  # a JSON body cut halfway
            await p.chat(request(), CALL)


@pytest.mark.anyio
async def test_error_event_mid_stream_is_mapped(upstream: FakeOpenAI) -> None:
    upstream.queue_fault(
        Fault.error_event_mid_stream(
            after_chunks=2,
            error={"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"},
        )
    )
    upstream.queue_fault(Fault.error_event_mid_stream(after_chunks=2))
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError) as limited:
            await collect(p, request(stream=True))
        assert "slow down" in limited.value.body
        with pytest.raises(UpstreamUnavailableError) as failed:
            await collect(p, request(stream=True))
        assert "server_error" in failed.value.body


@pytest.mark.anyio
async def test_list_models_is_the_health_check(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        assert await p.list_models(CALL) == ["gpt-4o-mini", "o3-mini"]


@pytest.mark.anyio
async def test_through_the_engine_with_failover_and_usage(upstream: FakeOpenAI) -> None:
    config = one_endpoint("openai", upstream.base_url, KEY, {"mini": "gpt-4o-mini"})
    upstream.queue_fault(Fault.status(503))
    upstream.script(Answer(content="four"))
    async with OpenAIEngine(config) as engine:
        result = await engine.chat(request(), model="mini")
        assert result.response.text == "four" and result.attempts == 2
        assert result.cost > 0  # priced from the preset's catalogue
        chunks = [
            c
            async for c in engine.stream_chat(
                request(stream=True, stream_options={"include_usage": True}), model="mini"
            )
        ]
    assert "".join(c.text for c in chunks) == "echo: hello there"
    assert chunks[-1].usage.total_tokens == 5  # type: ignore[union-attr]


def test_preset_feeds_coop_config_preset(tmp_path: Path) -> None:
    config = apply_preset(tmp_path, "openai", "OPENAI_API_KEY")
    endpoint = config.endpoints["openai"]
    assert endpoint.provider == "openai" and endpoint.base_url == "https://api.openai.com/v1"
    assert endpoint.api_keys == ["env:OPENAI_API_KEY"]
    assert config.models["gpt_4o_mini"].deployments[0].path == "gpt-4o-mini"
    assert config.models["gpt_4o_mini"].price.input == 0.15
    assert config.models["o3_mini"].tier == "reasoning"
    assert 'OPENAI_API_KEY="k"' in (tmp_path / ".env").read_text()
