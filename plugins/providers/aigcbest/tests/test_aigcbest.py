"""The aigcbest provider against FakeOpenAI (AIGC Best speaks the OpenAI protocol)."""

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
    UpstreamProtocolError,
    UpstreamUnavailableError,
    open_http_client,
    parse_chat_request,
)
from coop_aigcbest import PRESET, AIGCBestProvider
from fakes import Answer, FakeOpenAI, Fault
from provider_config import one_endpoint

KEY = "sk-aigc-test"
MODELS = ["Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-V3"]
CALL = ProviderCall(model="Qwen/Qwen3-8B", api_key=KEY, timeouts=Timeouts(5, 5, 10))


def request(**extra: Any) -> Any:
    return parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "ni hao"}], **extra}
    )


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=[KEY], models=MODELS) as up:
        yield up


@asynccontextmanager
async def provider(up: FakeOpenAI) -> AsyncIterator[AIGCBestProvider]:
    http = open_http_client()
    try:
        yield AIGCBestProvider(
            EndpointConfig(name="aigc", provider="aigcbest", base_url=up.base_url), http
        )
    finally:
        await http.aclose()


async def collect(p: AIGCBestProvider, req: Any) -> list[ChatChunk]:
    return [chunk async for chunk in p.stream(req, CALL)]


def test_preset_matches_the_original_system() -> None:
    assert PRESET.base_url == "https://api2.aigcbest.top/v1"
    assert PRESET.api_key_env == "AIGCBEST_API_KEY"
    assert [m.id for m in PRESET.models] == MODELS
    tiers = {m.alias: m.tier for m in PRESET.models}
    assert tiers == {"qwen3_8b": "light", "qwen3_32b": "reasoning", "deepseek_v3": "complex"}
    for info in PRESET.models:
        assert info.context_window and info.price_input and info.price_output


@pytest.mark.anyio
async def test_chat_stream_and_models(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
        chunks = await collect(p, request(stream=True))
        models = await p.list_models(CALL)
    assert response.text == "echo: ni hao"
    assert "".join(c.text for c in chunks) == "echo: ni hao"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 2  # type: ignore[union-attr]
    assert models == MODELS
    assert upstream.last_request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
async def test_qwen3_thinking_is_passed_through(upstream: FakeOpenAI) -> None:
    upstream.script(Answer(content="hi", reasoning="greet back"))
    async with provider(upstream) as p:
        chunks = await collect(p, request(stream=True))
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices) == (
        "greet back"
    )


@pytest.mark.anyio
async def test_error_mapping(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        upstream.queue_fault(Fault.status(503))
        with pytest.raises(UpstreamUnavailableError):
            await p.chat(request(), CALL)
        upstream.queue_fault(Fault.context_length_exceeded())
        with pytest.raises(ContextWindowExceededError):
            await collect(p, request(stream=True))
        upstream.queue_fault(Fault.malformed_json())
        with pytest.raises(UpstreamProtocolError, match="malformed JSON") as bad:
            await collect(p, request(stream=True))
        assert bad.value.status == 200 and "bro" in bad.value.body
        upstream.queue_fault(Fault.cut_stream(after_chunks=1))
        with pytest.raises(UpstreamProtocolError, match="connection cut"):
            await collect(p, request(stream=True))
        upstream.rate_limit_key(KEY, retry_after=5)
        with pytest.raises(RateLimitError) as limited:
            await p.chat(request(), CALL)
        assert limited.value.retry_after == 5
        upstream.revoke_key(KEY)
        with pytest.raises(AuthenticationError):
            await p.chat(request(), CALL)


@pytest.mark.anyio
async def test_preset_defaults_need_only_a_key(upstream: FakeOpenAI) -> None:
    # The endpoint names the provider and a key; catalogue prices give the cost.
    config = one_endpoint("aigcbest", upstream.base_url, KEY, {"qwen3_8b": "Qwen/Qwen3-8B"})
    async with OpenAIEngine(config) as engine:
        result = await engine.chat(request(), model="qwen3_8b")
    assert result.response.text == "echo: ni hao"
    assert result.cost == pytest.approx((2 * 0.30 + 3 * 0.60) / 1_000_000)


def test_preset_feeds_coop_config_preset(tmp_path: Path) -> None:
    config = apply_preset(tmp_path, "aigcbest", "AIGCBEST_API_KEY")
    endpoint = config.endpoints["aigcbest"]
    assert endpoint.provider == "aigcbest" and endpoint.base_url == "https://api2.aigcbest.top/v1"
    assert endpoint.api_keys == ["env:AIGCBEST_API_KEY"]
    assert set(config.models) >= {"qwen3_8b", "qwen3_32b", "deepseek_v3"}
    assert config.models["qwen3_32b"].deployments[0].path == "Qwen/Qwen3-32B"
    assert config.models["qwen3_8b"].price.output == 0.60
    assert 'AIGCBEST_API_KEY="k"' in (tmp_path / ".env").read_text()
