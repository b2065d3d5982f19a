"""OpenAI's Responses API and ``GET /v1/models/{id}`` on the gateway, with the official SDK.

The gateway (uvicorn on loopback) runs over a fake OpenAI chat upstream: every
Responses request goes through the one chat request path, so what the upstream
receives is checked as well as what the SDK parses. Bodies are validated against
OpenAI's own description (``Response``, ``Model``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fakes import Answer, FakeOpenAI, Fault
from fakes.http import ToolCall
from openapi_schema import validate
from test_gateway import Gateway, gateway_config, serve_in_thread

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
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
def _fresh_upstream(up: FakeOpenAI) -> None:
    up.reset()


def chat_bodies(up: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in up.requests if r.path.endswith("/chat/completions")]


def post(gw: Gateway, body: dict[str, Any]) -> httpx.Response:
    with gw.http() as http:
        return http.post("/v1/responses", json=body)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


# -- responses.create ----------------------------------------------------------------------


def test_create_with_a_string_input(up: FakeOpenAI, gw: Gateway) -> None:
    raw = gw.client().responses.with_raw_response.create(model="m", input="hello there")
    assert raw.headers["x-coop-model"] == "m"
    response = raw.parse()
    assert response.output_text == "echo: hello there"
    assert response.status == "completed"
    assert response.model == "m"
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    validate("Response", json.loads(raw.text))
    sent = chat_bodies(up)[-1]
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]


def test_create_with_messages_instructions_and_parameters(up: FakeOpenAI, gw: Gateway) -> None:
    response = gw.client().responses.create(
        model="m",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "first"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            },
        ],
        max_output_tokens=50,
        temperature=0.3,
        top_p=0.9,
        metadata={"ticket": "42"},
    )
    assert response.output_text.startswith("echo: what is this?")
    assert response.instructions == "Be brief."
    assert response.metadata == {"ticket": "42"}
    assert response.temperature == 0.3
    sent = chat_bodies(up)[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][2] == {"role": "assistant", "content": "ok"}
    assert sent["messages"][3]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png"},
    }
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.3 and sent["top_p"] == 0.9
    assert "metadata" not in sent  # echoed on the response, not sent upstream


def test_text_format_json_schema_reaches_the_upstream(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: '{"answer": 42}'
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    raw = gw.client().responses.with_raw_response.create(
        model="m",
        input="the answer?",
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
        },
    )
    assert json.loads(raw.parse().output_text) == {"answer": 42}
    validate("Response", json.loads(raw.text))
    assert chat_bodies(up)[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    gw.client().responses.create(model="m", input="x", text={"format": {"type": "json_object"}})
    assert chat_bodies(up)[-1]["response_format"] == {"type": "json_object"}


def test_auto_and_a_cooperation_answer_behind_responses(up: FakeOpenAI, gw: Gateway) -> None:
    raw = gw.client().responses.with_raw_response.create(model="auto", input="hi")
    assert raw.headers["x-coop-route"]
    assert raw.parse().output_text == "echo: hi"
    assert raw.parse().model in ("m", "big", "council")
    council = gw.client().responses.with_raw_response.create(model="council", input="vote")
    assert council.headers["x-coop-model"] == "council"
    assert council.parse().output_text == "echo: vote"
    assert len(chat_bodies(up)) >= 3  # both members were asked
    validate("Response", json.loads(council.text))


# -- function calls ------------------------------------------------------------------------


def test_function_call_round_trip(up: FakeOpenAI, gw: Gateway) -> None:
    client = gw.client()
    up.answer_fn = lambda body: Answer(tool_calls=[ToolCall("get_weather", {"city": "Bonn"})])
    raw = client.responses.with_raw_response.create(
        model="m",
        input="weather in Bonn?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
    )
    first = raw.parse()
    validate("Response", json.loads(raw.text))
    sent = chat_bodies(up)[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER["parameters"],
            },
        }
    ]
    assert sent["tool_choice"] == "auto"
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Bonn"}
    assert first.output_text == ""
    assert first.tools[0].name == "get_weather"  # type: ignore[union-attr]

    up.answer_fn = None  # the echo: it renders the tool result it received
    second = client.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "weather in Bonn?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == f"echo: [tool_result {call.call_id}] sunny, 21C"
    messages = chat_bodies(up)[-1]["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"}


def test_tool_choice_naming_a_function(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(tool_calls=[ToolCall("get_weather", {"city": "Rome"})])
    gw.client().responses.create(
        model="m",
        input="weather?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert chat_bodies(up)[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


# -- streaming -----------------------------------------------------------------------------


def test_stream_events_in_order(up: FakeOpenAI, gw: Gateway) -> None:
    with gw.client().responses.stream(model="m", input="stream me") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in kinds
    tail = [k for k in kinds if k != "response.output_text.delta"][4:]
    assert tail == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: stream me"
    assert final.output_text == "echo: stream me"
    assert final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens > 0
    validate("Response", events[-1].response.model_dump(mode="json", exclude_unset=True))  # type: ignore[union-attr]


def test_stream_function_call_events(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
    with gw.client().responses.stream(
        model="m",
        input="weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[2] == "response.output_item.added"
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"


def test_stream_of_a_cooperation(up: FakeOpenAI, gw: Gateway) -> None:
    with gw.client().responses.stream(model="council", input="together") as stream:
        final = stream.get_final_response()
    assert final.output_text == "echo: together"
    assert final.model == "council"


def test_stream_error_before_the_first_event_is_a_json_error(gw: Gateway) -> None:
    with (
        pytest.raises(openai.NotFoundError) as caught,
        gw.client().responses.stream(model="nope", input="x") as stream,
    ):
        list(stream)
    assert caught.value.status_code == 404


# -- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
    ],
)
def test_state_is_refused_naming_the_field(gw: Gateway, extra: dict[str, Any], param: str) -> None:
    error = error_of(post(gw, {"model": "m", "input": "hi", **extra}), 400)
    assert error["param"] == param
    assert "stateless" in error["message"] and param in error["message"]


def test_the_sdk_sees_not_found_for_an_unknown_previous_response_id(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError, match="resp_1"):
        gw.client().responses.create(model="m", input="hi", previous_response_id="resp_1")


def test_store_false_is_accepted(gw: Gateway) -> None:
    response = gw.client().responses.create(model="m", input="hi", store=False)
    assert response.output_text == "echo: hi"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": [{"type": "telepathy"}]}, "input[0].type", "unknown input item type"),
        ({"input": [{"type": "web_search_call"}]}, "input[0].type", "hosts"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "not supported"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
            "input[0].call_id",
            "no function_call",
        ),
        ({"input": 5}, "input", "string or an array"),
        ({"input": []}, "input", "at least one"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "expected one of"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_video"}]}]},
            "input[0].content[0].type",
            "unknown content part type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
            "Files API",
        ),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "function tools"),
        ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type", "json_schema"),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}},
            "text.format.schema",
            "required",
        ),
        ({"input": "x", "frobnicate": 1}, "frobnicate", "unknown parameter"),
        ({"input": "x", "truncation": "auto"}, "truncation", "disabled"),
    ],
)
def test_bad_input_is_a_400_naming_it(
    up: FakeOpenAI, gw: Gateway, body: dict[str, Any], param: str, words: str
) -> None:
    error = error_of(post(gw, {"model": "m", **body}), 400)
    assert error["param"] == param
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    assert not chat_bodies(up)


def test_missing_model_and_unknown_model(gw: Gateway) -> None:
    assert error_of(post(gw, {"input": "x"}), 400)["param"] == "model"
    assert error_of(post(gw, {"model": "nope", "input": "x"}), 404)["code"] == "model_not_found"


# -- GET /v1/models/{id} -------------------------------------------------------------------


def test_models_retrieve_matches_the_list(gw: Gateway) -> None:
    client = gw.client()
    listed = {m.id: m.model_dump() for m in client.models.list()}
    for name in ("m", "council", "auto"):
        model = client.models.retrieve(name)
        assert model.model_dump() == listed[name]
    with gw.http() as http:
        body = http.get("/v1/models/council").json()
    validate("Model", body)
    assert body["coop"]["kind"] == "cooperation"


def test_models_retrieve_unknown_is_a_404_listing_the_known(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().models.retrieve("councl")
    with gw.http() as http:
        error = error_of(http.get("/v1/models/councl"), 404)
    assert error["code"] == "model_not_found"
    assert "did you mean 'council'" in error["message"]
    assert "auto" in error["message"] and "big" in error["message"]
    assert caught.value.status_code == 404


def test_a_stream_failing_midway_ends_with_error_and_response_failed(
    up: FakeOpenAI, gw: Gateway
) -> None:
    up.script("a longer answer in several pieces")
    up.queue_fault(Fault.cut_stream(after_chunks=3))
    with gw.http() as http:
        response = http.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
    assert response.status_code == 200
    events = [
        json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: ")
    ]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    validate("Response", failed)
    assert events[-2]["message"] == failed["error"]["message"]
