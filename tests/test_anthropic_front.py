"""Anthropic's Messages API on the gateway, driven by the official ``anthropic`` SDK.

uvicorn on loopback with FakeOpenAI (and FakeAnthropic) behind it: every request goes
through the one request path (``auto``, cooperations), the SDK parses each answer into
its own types, and the raw SSE is checked for Anthropic's event order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock
from coop import SystemConfig
from fakes import Answer, FakeAnthropic, FakeOpenAI, Fault
from fakes.http import ToolCall
from test_gateway import BOUND, Gateway, gateway_config, serve_in_thread

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def gw(up: FakeOpenAI) -> Iterator[Gateway]:
    with serve_in_thread(gateway_config(up)) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "up" in request.fixturenames:
        request.getfixturevalue("up").reset()


def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url, api_key=gw.key or "unused", max_retries=0, timeout=BOUND
    )


def bodies(up: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in up.requests if r.path.endswith("/chat/completions")]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event; the name must match the data's type."""
    events = []
    for raw in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in raw.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append((lines["event"], data))
    return events


def check_order(names: list[str]) -> None:
    """message_start, ping?, (block start, deltas, block stop)*, message_delta, message_stop."""
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_block = False
    for name in names[1:-2]:
        if name == "content_block_start":
            assert not open_block
            open_block = True
        elif name == "content_block_delta":
            assert open_block
        elif name == "content_block_stop":
            assert open_block
            open_block = False
        else:
            assert name == "ping"
    assert not open_block


# -- create ------------------------------------------------------------------------------------


def test_create_translates_every_parameter_and_the_sdk_parses_the_message(
    up: FakeOpenAI, gw: Gateway
) -> None:
    raw = client(gw).messages.with_raw_response.create(
        model="m",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "What is coop?"}]},
        ],
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},  # not in this SDK's signature
        stop_sequences=["END"],
        metadata={"user_id": "u-7"},
        extra_headers={"anthropic-version": "2023-06-01"},
    )
    message = raw.parse()
    assert isinstance(message, Message)
    assert raw.headers["x-coop-model"] == "m" and "x-coop-cost" in raw.headers
    assert message.model == "m" and message.role == "assistant"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [type(b) for b in message.content] == [TextBlock]
    assert message.content[0].text == "echo: What is coop?"  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (body,) = bodies(up)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief.\n\nBe kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is coop?"},
    ]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["top_k"] == 40 and body["stop"] == ["END"] and body["user"] == "u-7"


def test_images_base64_and_url_become_image_parts(up: FakeOpenAI, gw: Gateway) -> None:
    client(gw).messages.create(
        model="m",
        max_tokens=16,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                    },
                    {"type": "text", "text": "Compare them"},
                ],
            }
        ],
    )
    (body,) = bodies(up)
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "Compare them"},
    ]


def test_auto_and_a_cooperation_answer_behind_messages(up: FakeOpenAI, gw: Gateway) -> None:
    raw = client(gw).messages.with_raw_response.create(
        model="auto", max_tokens=16, messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-coop-route"] and raw.headers["x-coop-model"] in ("m", "big")
    assert raw.parse().model == raw.headers["x-coop-model"]
    message = client(gw).messages.create(
        model="council", max_tokens=16, messages=[{"role": "user", "content": "vote"}]
    )
    assert message.model == "council" and message.content[0].text == "echo: vote"  # type: ignore[union-attr]
    assert sorted(b["model"] for b in bodies(up)[1:]) == ["gpt-4o", "gpt-4o-mini"]


def test_reasoning_content_becomes_a_thinking_block(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(content="42", reasoning="6 times 7")
    message = client(gw).messages.create(
        model="m", max_tokens=16, messages=[{"role": "user", "content": "6*7?"}]
    )
    assert isinstance(message.content[0], ThinkingBlock)
    assert message.content[0].thinking == "6 times 7"
    assert message.content[1].text == "42"  # type: ignore[union-attr]


# -- tools ------------------------------------------------------------------------------------


def test_a_tools_round_trip(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(
        tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_1")],
        finish_reason="tool_calls",
    )
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client(gw).messages.create(
        model="m",
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=ask,  # type: ignore[arg-type]
    )
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert isinstance(use, ToolUseBlock)
    assert use.name == "get_weather" and use.input == {"city": "Oslo"}
    sent = bodies(up)[0]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    up.answer_fn = None
    second = client(gw).messages.create(
        model="m",
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            *ask,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],  # type: ignore[arg-type]
    )
    assert second.stop_reason == "end_turn"
    sent = bodies(up)[1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "sunny, 21 C",
    }
    assert sent["messages"][3] == {"role": "user", "content": "Thanks"}


# -- streams ----------------------------------------------------------------------------------


def test_stream_text_with_the_sdk_and_raw_event_order(up: FakeOpenAI, gw: Gateway) -> None:
    with client(gw).messages.stream(
        model="m", max_tokens=32, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream me" and final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    with httpx.Client(timeout=BOUND) as http:
        response = http.post(
            gw.url + "/v1/messages",
            json={
                "model": "m",
                "max_tokens": 32,
                "stream": True,
                "messages": [{"role": "user", "content": "stream me"}],
            },
        )
    assert response.status_code == 200 and response.headers["x-coop-model"] == "m"
    events = sse_events(response.text)
    names = [name for name, _ in events]
    check_order(names)
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert {d["delta"]["type"] for n, d in events if n == "content_block_delta"} == {"text_delta"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] > 0


def test_stream_tool_use_sends_input_json_deltas(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(
        content="Let me look.",
        tool_calls=[ToolCall("get_weather", {"city": "Lima"}, id="call_9")],
        finish_reason="tool_calls",
    )
    request: dict[str, Any] = {
        "model": "m",
        "max_tokens": 64,
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather in Lima?"}],
    }
    with client(gw).messages.stream(**request) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Lima"}  # type: ignore[union-attr]
    with httpx.Client(timeout=BOUND) as http:
        response = http.post(gw.url + "/v1/messages", json={**request, "stream": True})
    events = sse_events(response.text)
    check_order([n for n, _ in events])
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["text", "tool_use"]
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"city": "Lima"}


def test_a_streamed_cooperation_pings_then_answers(up: FakeOpenAI, gw: Gateway) -> None:
    with client(gw).messages.stream(
        model="council", max_tokens=16, messages=[{"role": "user", "content": "together"}]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.model == "council" and final.content[0].text == "echo: together"  # type: ignore[union-attr]
    assert events[0] == "message_start" and events[-1] == "message_stop"


# -- count_tokens -----------------------------------------------------------------------------


def test_count_tokens(gw: Gateway) -> None:
    short = client(gw).messages.count_tokens(
        model="m", messages=[{"role": "user", "content": "hello"}]
    )
    longer = client(gw).messages.count_tokens(
        model="auto",
        system="You are a helpful assistant.",
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "hello " * 50}],
    )
    assert 0 < short.input_tokens < longer.input_tokens


# -- thinking ---------------------------------------------------------------------------------


def test_thinking_passes_through_to_an_anthropic_upstream() -> None:
    with FakeAnthropic(api_keys=["sk-ant-test-0123456789"]) as ant:
        config = SystemConfig.from_dict(
            {
                "server": {"access_log": "off"},
                "endpoints": {
                    "claude": {
                        "provider": "anthropic",
                        "base_url": ant.url + "/v1",
                        "api_keys": ["sk-ant-test-0123456789"],
                        "health_check_interval": 0,
                    }
                },
                "models": {"sonnet": {"endpoint": "claude", "path": "claude-sonnet-4-5"}},
                "routing": {"light": "sonnet", "reasoning": "sonnet", "complex": "sonnet"},
            }
        )
        ant.answer_fn = lambda body: Answer(content="4", reasoning="2 plus 2")
        with serve_in_thread(config) as gateway:
            request: dict[str, Any] = {
                "model": "sonnet",
                "max_tokens": 2048,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [{"role": "user", "content": "2+2?"}],
            }
            message = client(gateway).messages.create(**request)
            with client(gateway).messages.stream(**request) as stream:
                streamed = stream.get_final_message()
        sent = [r.json for r in ant.requests if r.path.endswith("/messages")]
    assert sent[0]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    for answer in (message, streamed):
        assert [b.type for b in answer.content] == ["thinking", "text"]
        assert answer.content[0].thinking == "2 plus 2"  # type: ignore[union-attr]


def test_thinking_is_refused_where_the_upstream_cannot_think(gw: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gw).messages.create(
            model="m",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "hi"}],
        )
    assert "thinking" in caught.value.message and "'fake-openai'" in caught.value.message


# -- bad input ----------------------------------------------------------------------------------


def _post(gw: Gateway, body: Any, **headers: str) -> httpx.Response:
    with httpx.Client(timeout=BOUND) as http:
        return http.post(gw.url + "/v1/messages", json=body, headers=headers)


def _error(response: httpx.Response, status: int, kind: str = "invalid_request_error") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    return str(body["error"]["message"])


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"model": "m", "messages": USER}, "max_tokens"),
        (
            {
                "model": "m",
                "max_tokens": 8,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope"}]}
                ],
            },
            "tool_use_id",
        ),
        (
            {
                "model": "m",
                "max_tokens": 8,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
                    }
                ],
            },
            "cannot hold a 'tool_use'",
        ),
        (
            {
                "model": "m",
                "max_tokens": 8,
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                        ],
                    },
                ],
            },
            "cannot hold a 'image'",
        ),
        (
            {
                "model": "m",
                "max_tokens": 8,
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
                    },
                    {"role": "user", "content": "no result"},
                ],
            },
            "t1",
        ),
        (
            {"model": "m", "max_tokens": 8, "system": [{"type": "image"}], "messages": USER},
            "system",
        ),
        ({"model": "m", "max_tokens": 8, "temperature": 1.5, "messages": USER}, "temperature"),
        ({"model": "m", "max_tokens": 8, "frequency_penalty": 1, "messages": USER}, "frequency"),
    ],
)
def test_bad_input_is_a_400_in_anthropics_shape(gw: Gateway, body: Any, names: str) -> None:
    assert names in _error(_post(gw, body), 400)


def test_the_sdk_raises_on_bad_input(gw: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gw).messages.create(
            model="m",
            max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}],
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_model_and_bad_version_header(gw: Gateway) -> None:
    assert "nope" in _error(
        _post(gw, {"model": "nope", "max_tokens": 8, "messages": USER}), 404, "not_found_error"
    )
    bad = _post(
        gw, {"model": "m", "max_tokens": 8, "messages": USER}, **{"anthropic-version": "v1"}
    )
    assert "anthropic-version" in _error(bad, 400)
    with pytest.raises(anthropic.NotFoundError):
        client(gw).messages.count_tokens(model="nope", messages=USER)  # type: ignore[arg-type]


def test_x_api_key_authenticates(up: FakeOpenAI) -> None:
    with serve_in_thread(gateway_config(up, api_keys=["sk-gw-anthropic-0001"])) as gateway:
        gateway.key = "sk-gw-wrong-0000"
        with pytest.raises(anthropic.AuthenticationError):
            client(gateway).messages.create(model="m", max_tokens=8, messages=USER)  # type: ignore[arg-type]
        gateway.key = "sk-gw-anthropic-0001"
        message = client(gateway).messages.create(model="m", max_tokens=8, messages=USER)  # type: ignore[arg-type]
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]


def test_upstream_failures_in_anthropics_shape_before_and_during_a_stream() -> None:
    with FakeOpenAI() as broken, serve_in_thread(gateway_config(broken)) as gateway:
        broken.set_mode(Fault.status(503))
        with pytest.raises(anthropic.InternalServerError) as caught:
            client(gateway).messages.create(model="m", max_tokens=8, messages=USER)  # type: ignore[arg-type]
        assert caught.value.body["type"] == "error"  # type: ignore[index]
        assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        broken.set_mode(None)
        broken.answer_fn = lambda body: "one two three four five six seven eight"
        broken.set_mode(Fault.cut_stream(after_chunks=2))
        with httpx.Client(timeout=BOUND) as http:
            response = http.post(
                gateway.url + "/v1/messages",
                json={"model": "big", "max_tokens": 32, "stream": True, "messages": USER},
            )
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in events]
