"""The custom provider against FakeOpenAI standing in for vLLM, Ollama or llama.cpp."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_runner import apply_preset
from coop import (
    ChatChunk,
    ConfigError,
    ContextWindowExceededError,
    EndpointConfig,
    OpenAIEngine,
    ProviderCall,
    SystemConfig,
    Timeouts,
    UpstreamProtocolError,
    UpstreamUnavailableError,
    Usage,
    open_http_client,
    parse_chat_request,
    response_json,
)
from coop_custom import CustomProvider
from fakes import FakeOpenAI, Fault

MODEL = "qwen3:8b"
CALL = ProviderCall(model=MODEL, api_key=None, timeouts=Timeouts(5, 5, 10))


def request(**extra: Any) -> Any:
    return parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi local"}], **extra}
    )


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=[MODEL]) as up:  # no keys: auth off, as on a local server
        yield up


@asynccontextmanager
async def provider(up: FakeOpenAI | None, **options: Any) -> AsyncIterator[CustomProvider]:
    http = open_http_client()
    try:
        endpoint = EndpointConfig(
            name="local",
            provider="custom",
            base_url=up.base_url if up is not None else None,
            options=options,
        )
        yield CustomProvider(endpoint, http)
    finally:
        await http.aclose()


async def collect(p: CustomProvider, req: Any) -> list[ChatChunk]:
    return [chunk async for chunk in p.stream(req, CALL)]


def engine_config(base_url: str | None, **endpoint: Any) -> SystemConfig:
    settings: dict[str, Any] = {"provider": "custom", "health_check_interval": 0, **endpoint}
    if base_url is not None:
        settings["base_url"] = base_url
    return SystemConfig.from_dict(
        {
            "endpoints": {"local": settings},
            "models": {"local": {"endpoint": "local", "path": MODEL}},
        }
    )


@pytest.mark.anyio
async def test_no_key_needed_and_none_sent(upstream: FakeOpenAI) -> None:
    async with OpenAIEngine(engine_config(upstream.base_url)) as engine:
        result = await engine.chat(request(), model="local")
        chunks = [c async for c in engine.stream_chat(request(stream=True), model="local")]
    assert result.response.text == "echo: hi local"
    assert "".join(c.text for c in chunks) == "echo: hi local"
    assert all("authorization" not in r.headers for r in upstream.requests)


@pytest.mark.anyio
async def test_a_key_is_sent_when_configured(upstream: FakeOpenAI) -> None:
    upstream.add_key("sk-vllm")
    config = engine_config(upstream.base_url, api_keys=["sk-vllm"])
    async with OpenAIEngine(config) as engine:
        await engine.chat(request(), model="local")
    assert upstream.last_request.headers["authorization"] == "Bearer sk-vllm"


@pytest.mark.anyio
async def test_stream_usage_false_sends_no_stream_options(upstream: FakeOpenAI) -> None:
    async with provider(upstream, stream_usage=False) as p:
        chunks = await collect(p, request(stream=True, stream_options={"include_usage": True}))
    assert "stream_options" not in upstream.last_request.json
    assert "".join(c.text for c in chunks) == "echo: hi local"
    assert not any(isinstance(c.usage, Usage) for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.anyio
async def test_stream_usage_by_default(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        chunks = await collect(p, request(stream=True))
    assert upstream.last_request.json["stream_options"] == {"include_usage": True}
    assert isinstance(chunks[-1].usage, Usage)


@pytest.mark.anyio
async def test_stream_usage_must_be_a_boolean(upstream: FakeOpenAI) -> None:
    async with provider(upstream, stream_usage="no") as p:
        with pytest.raises(ConfigError, match=r"endpoints\.local\.options\.stream_usage"):
            await collect(p, request(stream=True))


@pytest.mark.anyio
async def test_missing_base_url_names_the_key() -> None:
    async with provider(None) as p:
        with pytest.raises(ConfigError, match=r"endpoints\.local\.base_url"):
            await p.chat(request(), CALL)
    async with OpenAIEngine(engine_config(None)) as engine:
        with pytest.raises(ConfigError, match=r"endpoints\.local\.base_url"):
            await engine.chat(request(), model="local")


@pytest.mark.anyio
async def test_ollama_style_reasoning_is_renamed(upstream: FakeOpenAI) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "4",
                    "refusal": None,
                    "reasoning": "2 + 2",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    upstream.queue_fault(Fault.status(200, body=body))
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
    message = response.choices[0].message
    assert message.reasoning_content == "2 + 2" and "reasoning" not in message.extra
    # complete otherwise, but renamed: the client must not get the upstream's bytes
    assert response.source is None
    sent = json.loads(response_json(response))
    assert sent["choices"][0]["message"]["reasoning_content"] == "2 + 2"

    del body["choices"][0]["message"]["reasoning"]  # nothing to rename: served as it came
    raw = json.dumps(body).encode()
    upstream.queue_fault(Fault.status(200, body=raw))
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
    assert response.source == raw and response_json(response) == raw


@pytest.mark.anyio
async def test_error_mapping(upstream: FakeOpenAI) -> None:
    async with provider(upstream) as p:
        upstream.queue_fault(Fault.status(503))
        with pytest.raises(UpstreamUnavailableError):
            await p.chat(request(), CALL)
        upstream.queue_fault(Fault.context_length_exceeded())
        with pytest.raises(ContextWindowExceededError):
            await p.chat(request(), CALL)
        upstream.queue_fault(Fault.wrong_content_type())
        with pytest.raises(UpstreamProtocolError, match="event stream"):
            await collect(p, request(stream=True))
        upstream.queue_fault(Fault.error_event_mid_stream(after_chunks=1))
        with pytest.raises(UpstreamUnavailableError):
            await collect(p, request(stream=True))
        upstream.queue_fault(Fault.cut_stream(after_chunks=2))
        with pytest.raises(UpstreamProtocolError, match="connection cut"):
            await collect(p, request(stream=True))


def test_preset_feeds_coop_config_preset(tmp_path: Path) -> None:
    config = apply_preset(tmp_path, "custom", "CUSTOM_API_KEY")
    endpoint = config.endpoints["custom"]
    assert endpoint.provider == "custom" and endpoint.base_url == "http://127.0.0.1:8000/v1"
    assert endpoint.api_keys == ["env:CUSTOM_API_KEY"]
    assert 'CUSTOM_API_KEY="k"' in (tmp_path / ".env").read_text()
