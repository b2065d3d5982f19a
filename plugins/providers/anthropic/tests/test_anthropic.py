"""The anthropic provider against FakeAnthropic over real loopback HTTP.

FakeAnthropic validates requests as the real API does where translation bugs show
(a ``system`` role in messages, OpenAI image parts, a ``tool_result`` without its
``tool_use``, temperature above 1, a missing ``max_tokens``), so a request it
accepts is one Anthropic would accept too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_runner import apply_preset
from coop import (
    AuthenticationError,
    BadRequestError,
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
    Usage,
    open_http_client,
    parse_chat_request,
)
from coop_anthropic import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    PRESET,
    AnthropicProvider,
    StreamTranslator,
    to_anthropic,
)
from fakes import Answer, FakeAnthropic, Fault, ToolCall
from provider_config import one_endpoint

KEY = "sk-ant-test"
MODEL = "claude-haiku-4-5"
CALL = ProviderCall(model=MODEL, api_key=KEY, timeouts=Timeouts(5, 5, 10))
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def request(*messages: dict[str, Any], **extra: Any) -> Any:
    msgs = list(messages) or [{"role": "user", "content": "hello there"}]
    return parse_chat_request({"model": "m", "messages": msgs, **extra})


@pytest.fixture
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_keys=[KEY]) as up:
        yield up


@asynccontextmanager
async def provider(up: FakeAnthropic, **options: Any) -> AsyncIterator[AnthropicProvider]:
    http = open_http_client()
    try:
        endpoint = EndpointConfig(
            name="claude", provider="anthropic", base_url=up.url + "/v1", options=options
        )
        yield AnthropicProvider(endpoint, http)
    finally:
        await http.aclose()


async def collect(p: AnthropicProvider, req: Any) -> list[ChatChunk]:
    return [chunk async for chunk in p.stream(req, CALL)]


def arguments(chunks: list[ChatChunk]) -> dict[int, dict[str, Any]]:
    """Tool calls reassembled from stream deltas, as an OpenAI SDK does: index → call."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})  # type: ignore[arg-type]
                if tc.id:
                    call["id"] = tc.id
                if tc.function and tc.function.name:
                    call["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    call["arguments"] += tc.function.arguments
    return calls


# ------------------------------------------------------------------------ plain chat


@pytest.mark.anyio
async def test_chat_speaks_the_messages_api(upstream: FakeAnthropic) -> None:
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
    assert response.text == "echo: hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == MODEL and response.id.startswith("msg_")
    usage = response.usage
    assert usage and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        2,
        3,
        5,
    )
    sent = upstream.last_request
    assert sent.method == "POST" and sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in sent.headers
    # Anthropic requires max_tokens; a request without one gets the default.
    assert sent.json["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
    ]


@pytest.mark.anyio
async def test_default_max_tokens_comes_from_the_endpoint_options(
    upstream: FakeAnthropic,
) -> None:
    async with provider(upstream, max_tokens=1000) as p:
        await p.chat(request(), CALL)
        assert upstream.last_request.json["max_tokens"] == 1000
        await p.chat(request(max_tokens=50, max_completion_tokens=70), CALL)
        assert upstream.last_request.json["max_tokens"] == 70


@pytest.mark.anyio
async def test_request_translation_on_the_recorded_body(upstream: FakeAnthropic) -> None:
    req = request(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        temperature=1.5,
        top_p=0.9,
        stop="END",
        user="user-42",
        max_tokens=300,
    )
    async with provider(upstream) as p:
        response = await p.chat(req, CALL)
    assert response.text == "echo: What is in these pictures? [image] [image]"
    body = upstream.last_request.json
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]
    assert body["temperature"] == 1.0  # OpenAI allows up to 2, Anthropic up to 1
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["max_tokens"] == 300


def test_tools_and_tool_choice_translation() -> None:
    def body(**extra: Any) -> dict[str, Any]:
        return to_anthropic(request(tools=[WEATHER_TOOL], **extra), MODEL)

    assert body()["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert "tool_choice" not in body()
    assert body(tool_choice="auto")["tool_choice"] == {"type": "auto"}
    assert body(tool_choice="none")["tool_choice"] == {"type": "none"}
    assert body(tool_choice="required")["tool_choice"] == {"type": "any"}
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert body(tool_choice=named)["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert body(parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    bare = to_anthropic(request(tools=[{"type": "function", "function": {"name": "now"}}]), MODEL)
    assert bare["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_what_anthropic_cannot_express_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="n must be 1"):
        to_anthropic(request(n=2), MODEL)
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(BadRequestError, match=r"messages\[0\]\.content\[0\]"):
        to_anthropic(request({"role": "user", "content": [audio]}), MODEL)
    broken = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
        ],
    }
    with pytest.raises(BadRequestError, match="not valid JSON"):
        to_anthropic(request({"role": "user", "content": "hi"}, broken), MODEL)


# ------------------------------------------------------------------------ tool use


@pytest.mark.anyio
async def test_tool_calls_round_trip(upstream: FakeAnthropic) -> None:
    upstream.script(
        Answer(
            content="Let me look.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="toolu_paris"),
                ToolCall("get_weather", {"city": "Oslo"}, id="toolu_oslo"),
            ],
        )
    )
    question = {"role": "user", "content": "Weather in Paris and Oslo?"}
    async with provider(upstream) as p:
        # Anthropic tool_use → OpenAI tool_calls.
        first = await p.chat(request(question, tools=[WEATHER_TOOL]), CALL)
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        assert message.content == "Let me look."
        calls = message.tool_calls or []
        assert [(c.id, c.function.name) for c in calls] == [  # type: ignore[union-attr]
            ("toolu_paris", "get_weather"),
            ("toolu_oslo", "get_weather"),
        ]
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr, arg-type]

        # OpenAI tool_calls + tool messages → Anthropic tool_use + one user turn of results.
        followup = request(
            question,
            message.to_wire(),
            {"role": "tool", "tool_call_id": "toolu_paris", "content": "18C sunny"},
            {
                "role": "tool",
                "tool_call_id": "toolu_oslo",
                "content": [{"type": "text", "text": "4C"}],
            },
            {"role": "user", "content": "Which is warmer?"},
            tools=[WEATHER_TOOL],
        )
        second = await p.chat(followup, CALL)
    sent = upstream.last_request.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {
            "type": "tool_use",
            "id": "toolu_paris",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
        {"type": "tool_use", "id": "toolu_oslo", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_paris", "content": "18C sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_oslo",
            "content": [{"type": "text", "text": "4C"}],
        },
        {"type": "text", "text": "Which is warmer?"},
    ]
    assert second.text == (
        "echo: [tool_result toolu_paris] 18C sunny [tool_result toolu_oslo] 4C Which is warmer?"
    )


@pytest.mark.anyio
async def test_stream_tool_use_becomes_indexed_tool_call_deltas(upstream: FakeAnthropic) -> None:
    upstream.script(
        Answer(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="toolu_a"),
                ToolCall("get_time", {"zone": "Europe/Oslo"}, id="toolu_b"),
            ]
        )
    )
    async with provider(upstream) as p:
        chunks = await collect(p, request(tools=[WEATHER_TOOL], stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]  # type: ignore[index]
    # The first delta of each call carries id, type and name; fragments follow, by index.
    assert (deltas[0].index, deltas[0].id, deltas[0].type) == (0, "toolu_a", "function")
    assert deltas[0].function.name == "get_weather"  # type: ignore[union-attr]
    heads = [d for d in deltas if d.id]
    fragments = [d for d in deltas if not d.id]
    assert [d.id for d in heads] == ["toolu_a", "toolu_b"]
    assert fragments and all(not f.function.name and f.function.arguments for f in fragments)  # type: ignore[union-attr]
    assert [d.index for d in deltas] == sorted(d.index for d in deltas)
    calls = arguments(chunks)
    assert calls[0]["name"] == "get_weather" and calls[1]["name"] == "get_time"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert json.loads(calls[1]["arguments"]) == {"zone": "Europe/Oslo"}
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2] is finish[0]


# ------------------------------------------------------------------------ streaming


@pytest.mark.anyio
async def test_stream_text_is_translated_in_order(upstream: FakeAnthropic) -> None:
    upstream.script("The quick brown fox jumps")
    async with provider(upstream) as p:
        chunks = await collect(p, request(stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text_chunks = chunks[1:-2]
    assert len(text_chunks) == 5 and all(c.text for c in text_chunks)
    assert "".join(c.text for c in chunks) == "The quick brown fox jumps"
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 5)  # type: ignore[union-attr]
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("msg_")
    assert upstream.last_request.json["stream"] is True


@pytest.mark.anyio
async def test_thinking_is_surfaced_as_reasoning_content(upstream: FakeAnthropic) -> None:
    upstream.script(Answer(content="42", reasoning="six times seven"))
    upstream.script(Answer(content="42", reasoning="six times seven"))
    async with provider(upstream) as p:
        response = await p.chat(request(), CALL)
        chunks = await collect(p, request(stream=True))
    assert response.text == "42"
    assert response.choices[0].message.reasoning_content == "six times seven"
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    assert reasoning == "six times seven"
    assert "".join(c.text for c in chunks) == "42"


@pytest.mark.anyio
async def test_max_tokens_stop_reason_is_length(upstream: FakeAnthropic) -> None:
    upstream.script("one two three four five six")
    async with provider(upstream) as p:
        response = await p.chat(request(max_tokens=2), CALL)
    assert response.text == "one two" and response.choices[0].finish_reason == "length"


@pytest.mark.anyio
async def test_error_event_mid_stream_raises_the_mapped_error(upstream: FakeAnthropic) -> None:
    upstream.queue_fault(Fault.error_event_mid_stream(after_chunks=4))
    upstream.queue_fault(
        Fault.error_event_mid_stream(
            after_chunks=4, error={"type": "rate_limit_error", "message": "slow down"}
        )
    )
    async with provider(upstream) as p:
        received: list[ChatChunk] = []
        with pytest.raises(UpstreamUnavailableError, match="overloaded_error") as overloaded:
            async for chunk in p.stream(request(stream=True), CALL):
                received.append(chunk)
        assert received and received[0].choices[0].delta.role == "assistant"
        assert "overloaded_error" in overloaded.value.body
        assert overloaded.value.deployment == f"claude/{MODEL}"
        with pytest.raises(RateLimitError, match="rate_limit_error"):
            await collect(p, request(stream=True))


@pytest.mark.anyio
async def test_cut_stream_raises_a_protocol_error(upstream: FakeAnthropic) -> None:
    upstream.queue_fault(Fault.cut_stream(after_chunks=4))
    async with provider(upstream) as p:
        with pytest.raises(UpstreamProtocolError, match="message_stop") as info:
            await collect(p, request(stream=True))
    assert info.value.status == 200


def test_translator_ignores_pings_and_unknown_events() -> None:
    translator = StreamTranslator(MODEL)
    start = {"type": "message_start", "message": {"id": "msg_1", "model": MODEL, "usage": {}}}
    assert [c.choices[0].delta.role for c in translator.feed(start)] == ["assistant"]
    assert translator.feed({"type": "ping"}) == []
    assert translator.feed({"type": "some_future_event", "x": 1}) == []
    assert not translator.finished
    chunks = translator.feed({"type": "message_stop"})
    assert translator.finished and chunks[0].choices[0].finish_reason == "stop"


# ------------------------------------------------------------------------ errors


@pytest.mark.anyio
async def test_error_mapping(upstream: FakeAnthropic) -> None:
    async with provider(upstream) as p:
        upstream.queue_fault(Fault.status(529))
        with pytest.raises(UpstreamUnavailableError) as overloaded:
            await p.chat(request(), CALL)
        assert overloaded.value.status == 529 and "overloaded_error" in overloaded.value.body

        upstream.queue_fault(Fault.context_length_exceeded())
        with pytest.raises(ContextWindowExceededError) as too_long:
            await p.chat(request(), CALL)
        assert too_long.value.status == 400 and "prompt is too long" in too_long.value.body

        upstream.rate_limit_key(KEY, retry_after=3)
        with pytest.raises(RateLimitError) as limited:
            await collect(p, request(stream=True))
        assert limited.value.retry_after == 3
        upstream.clear_rate_limit()

        upstream.revoke_key(KEY)
        with pytest.raises(AuthenticationError) as denied:
            await p.chat(request(), CALL)
        assert denied.value.status == 401 and "x-api-key" in denied.value.body


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "snippet"),
    [(Fault.wrong_content_type(), "Bad Gateway"), (Fault.malformed_json(), "bro")],
    ids=["wrong-content-type", "malformed-json"],
)
async def test_garbage_becomes_a_protocol_error_with_status_and_snippet(
    upstream: FakeAnthropic, fault: Fault, snippet: str, stream: bool
) -> None:
    upstream.queue_fault(fault)
    if fault.kind == "malformed_json" and not stream:
        snippet = '"type":"message"'  # the body is cut halfway
    async with provider(upstream) as p:
        with pytest.raises(UpstreamProtocolError) as info:
            if stream:
                await collect(p, request(stream=True))
            else:
                await p.chat(request(), CALL)
    assert info.value.status == 200 and snippet in info.value.body


@pytest.mark.anyio
async def test_cut_body_is_a_connection_error(upstream: FakeAnthropic) -> None:
    upstream.queue_fault(Fault.cut_stream())
    async with provider(upstream) as p:
        with pytest.raises(UpstreamConnectionError):
            await p.chat(request(), CALL)


@pytest.mark.anyio
async def test_list_models_is_the_health_check(upstream: FakeAnthropic) -> None:
    async with provider(upstream) as p:
        assert await p.list_models(CALL) == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    sent = upstream.last_request
    assert (sent.method, sent.path) == ("GET", "/v1/models")
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION


# ------------------------------------------------------------------------ engine, preset


@pytest.mark.anyio
async def test_through_the_engine(upstream: FakeAnthropic) -> None:
    config = one_endpoint("anthropic", upstream.url + "/v1", KEY, {"haiku": MODEL}, name="claude")
    upstream.queue_fault(Fault.status(529))
    async with OpenAIEngine(config) as engine:
        result = await engine.chat(request(), model="haiku")
        assert result.response.text == "echo: hello there" and result.attempts == 2
        assert result.provider == "anthropic" and result.cost > 0
        upstream.script(Answer(tool_calls=[ToolCall("get_weather", {"city": "Rome"}, id="t1")]))
        chunks = [
            c
            async for c in engine.stream_chat(
                request(stream=True, tools=[WEATHER_TOOL]), model="haiku"
            )
        ]
    assert json.loads(arguments(chunks)[0]["arguments"]) == {"city": "Rome"}
    assert not any(isinstance(c.usage, Usage) for c in chunks)  # the client did not ask


def test_preset_catalogue() -> None:
    for info in PRESET.models:
        assert info.id.startswith("claude-") and info.context_window == 200_000
        assert info.price_input and info.price_output and info.tier and info.alias
    assert PRESET.model("claude-haiku-4-5").tier == "light"  # type: ignore[union-attr]


def test_preset_feeds_coop_config_preset(tmp_path: Path) -> None:
    config = apply_preset(tmp_path, "anthropic", "ANTHROPIC_API_KEY")
    endpoint = config.endpoints["anthropic"]
    assert endpoint.provider == "anthropic"
    assert endpoint.base_url == "https://api.anthropic.com/v1"
    assert endpoint.api_keys == ["env:ANTHROPIC_API_KEY"]
    haiku = config.models["claude_haiku"]
    assert haiku.deployments[0].path == "claude-haiku-4-5"
    assert (haiku.price.input, haiku.price.output, haiku.tier) == (1.0, 5.0, "light")
    assert 'ANTHROPIC_API_KEY="k"' in (tmp_path / ".env").read_text()


@pytest.mark.anyio
async def test_translated_output_fits_openais_schemas(upstream: FakeAnthropic) -> None:
    from openapi_schema import validate

    answer = Answer(
        content="Checking.",
        reasoning="weather needs a tool",
        tool_calls=[ToolCall("get_weather", {"city": "Lima"}, id="toolu_lima")],
    )
    upstream.script(answer, answer)
    async with provider(upstream) as p:
        response = await p.chat(request(tools=[WEATHER_TOOL]), CALL)
        chunks = await collect(p, request(tools=[WEATHER_TOOL], stream=True))
    validate("CreateChatCompletionResponse", response.to_wire())
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.to_wire())
