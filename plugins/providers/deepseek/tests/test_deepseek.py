"""The deepseek provider against FakeOpenAI (DeepSeek speaks the OpenAI protocol)."""

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
from coop_deepseek import PRESET, DeepSeekProvider, is_reasoner
from fakes import Answer, FakeOpenAI, Fault
from provider_config import one_endpoint

KEY = "sk-deepseek-test"
CHAT = ProviderCall(model="deepseek-chat", api_key=KEY, timeouts=Timeouts(5, 5, 10))
REASONER = ProviderCall(model="deepseek-reasoner", api_key=KEY, timeouts=Timeouts(5, 5, 10))


def request(*messages: dict[str, Any], **extra: Any) -> Any:
    msgs = list(messages) or [{"role": "user", "content": "what is 6 * 7"}]
    return parse_chat_request({"model": "m", "messages": msgs, **extra})


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=[KEY], models=["deepseek-chat", "deepseek-reasoner"]) as up:
        yield up


@asynccontextmanager
async def provider(up: FakeOpenAI) -> AsyncIterator[DeepSeekProvider]:
    http = open_http_client()
    try:
        yield DeepSeekProvider(
            EndpointConfig(name="ds", provider="deepseek", base_url=up.base_url), http
        )
    finally:
        await http.aclose()


async def collect(p: DeepSeekProvider, req: Any, call: ProviderCall) -> list[ChatChunk]:
    return [chunk async for chunk in p.stream(req, call)]


@pytest.mark.anyio
async def test_chat_and_stream(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        response = await p.chat(request(), CHAT)
        chunks = await collect(p, request(stream=True), CHAT)
    assert response.text == "echo: what is 6 * 7"
    assert "".join(c.text for c in chunks) == "echo: what is 6 * 7"
    assert chunks[-1].usage.total_tokens == 11  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_reasoning_content_is_surfaced_in_messages_and_deltas(upstream: FakeOpenAI) -> None:
    thought = "six sevens are forty-two"
    upstream.script(
        Answer(content="42", reasoning=thought), Answer(content="42", reasoning=thought)
    )
    async with provider(upstream) as p:
        response = await p.chat(request(), REASONER)
        chunks = await collect(p, request(stream=True), REASONER)
    message = response.choices[0].message
    assert message.content == "42" and message.reasoning_content == thought
    assert response.to_wire()["choices"][0]["message"]["reasoning_content"] == thought
    streamed = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    assert streamed == thought
    assert "".join(c.text for c in chunks) == "42"
    usage = chunks[-1].usage
    assert usage.completion_tokens_details["reasoning_tokens"] == 4  # type: ignore[union-attr, index]


@pytest.mark.anyio
async def test_reasoning_content_is_sent_back_for_thinking_tool_turns(
    upstream: FakeOpenAI,
) -> None:
    # DeepSeek answers 400 when a thinking-mode tool-call turn comes back without it.
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "I need the weather first.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    }
    tool = {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    async with provider(upstream) as p:
        await p.chat(request({"role": "user", "content": "weather?"}, assistant, tool), REASONER)
    sent = upstream.last_request.json["messages"][1]
    assert sent["reasoning_content"] == "I need the weather first."


@pytest.mark.anyio
async def test_reasoner_drops_the_parameters_it_rejects(upstream: FakeOpenAI) -> None:
    params = {
        "temperature": 0.3,
        "top_p": 0.8,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "logprobs": True,
        "top_logprobs": 2,
    }
    async with provider(upstream) as p:
        await p.chat(request(max_tokens=100, **params), REASONER)
        sent = upstream.last_request.json
        assert not set(params) & set(sent)
        assert sent["max_tokens"] == 100 and sent["model"] == "deepseek-reasoner"
        await p.chat(request(**params), CHAT)
        assert set(params) <= set(upstream.last_request.json)


def test_reasoner_detection() -> None:
    assert is_reasoner("deepseek-reasoner") and is_reasoner("deepseek-ai/DeepSeek-R1")
    assert not is_reasoner("deepseek-chat") and not is_reasoner("deepseek-ai/DeepSeek-V3")


@pytest.mark.anyio
async def test_error_mapping(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        upstream.queue_fault(Fault.status(503))
        with pytest.raises(UpstreamUnavailableError) as unavailable:
            await p.chat(request(), CHAT)
        assert unavailable.value.status == 503

        upstream.queue_fault(Fault.context_length_exceeded())
        with pytest.raises(ContextWindowExceededError):
            await p.chat(request(), CHAT)

        upstream.queue_fault(Fault.error_event_mid_stream(after_chunks=2))
        with pytest.raises(UpstreamUnavailableError):
            await collect(p, request(stream=True), CHAT)

        upstream.queue_fault(Fault.cut_stream(after_chunks=2))
        with pytest.raises(UpstreamProtocolError, match="connection cut"):
            await collect(p, request(stream=True), REASONER)

        upstream.queue_fault(Fault.wrong_content_type())
        with pytest.raises(UpstreamProtocolError) as garbage:
            await p.chat(request(), CHAT)
        assert garbage.value.status == 200 and "Bad Gateway" in garbage.value.body

        upstream.rate_limit_key(KEY, retry_after=2)
        with pytest.raises(RateLimitError) as limited:
            await p.chat(request(), CHAT)
        assert limited.value.retry_after == 2

        upstream.revoke_key(KEY)
        with pytest.raises(AuthenticationError):
            await p.chat(request(), CHAT)


@pytest.mark.anyio
async def test_through_the_engine_reasoning_reaches_the_caller(upstream: FakeOpenAI) -> None:
    config = one_endpoint("deepseek", upstream.base_url, KEY, {"r1": "deepseek-reasoner"})
    upstream.script(Answer(content="42", reasoning="think"), Answer(content="42", reasoning="hm"))
    async with OpenAIEngine(config) as engine:
        result = await engine.chat(request(), model="r1")
        chunks = [c async for c in engine.stream_chat(request(stream=True), model="r1")]
    assert result.response.choices[0].message.reasoning_content == "think"
    assert "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices) == "hm"


def test_preset_feeds_coop_config_preset(tmp_path: Path) -> None:
    config = apply_preset(tmp_path, "deepseek", "DEEPSEEK_API_KEY")
    endpoint = config.endpoints["deepseek"]
    assert endpoint.provider == "deepseek" and endpoint.base_url == PRESET.base_url
    assert endpoint.api_keys == ["env:DEEPSEEK_API_KEY"]
    assert config.models["deepseek_reasoner"].tier == "reasoning"
    assert config.models["deepseek_chat"].deployments[0].path == "deepseek-chat"
    assert config.models["deepseek_chat"].context_window == 131_072
    assert 'DEEPSEEK_API_KEY="k"' in (tmp_path / ".env").read_text()
