"""The OpenAI wire types: lossless round trips, strict errors, schema-valid output."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import attrs
import jsonschema
import pytest
from coop._errors import CoopError, ValidationError
from coop._wire import (
    UNSET,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ContentPart,
    FunctionCall,
    Tool,
    ToolCall,
    Usage,
    chunk_to_sse,
    converter,
    from_wire,
    parse_chat_request,
    response_json,
    to_wire,
)
from openapi_schema import validate


@pytest.fixture(scope="module")
def schema() -> Any:
    """``schema("CreateChatCompletionResponse")(data)`` raises if data does not validate."""
    return lambda name: functools.partial(validate, name)


def canonical(data: Any) -> str:
    """JSON text with sorted keys: unlike ``==`` it tells ``1`` from ``1.0`` and ``True``."""
    return json.dumps(data, sort_keys=True)


RICH_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "developer", "content": "Answer in JSON.", "name": "ops"},
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
                    "x_part_note": "unknown field at part level",
                },
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}},
            ],
            "x_message_note": {"nested": [1, 2.5, None, True]},
        },
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "猫"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat 🐱"},
        {"role": "assistant", "content": "A cat.", "reasoning_content": "It has whiskers."},
        {"role": "user", "content": "And the colour?"},
    ],
    "frequency_penalty": 0.5,
    "presence_penalty": -1,
    "logit_bias": {"50256": -100, "1234": 5},
    "logprobs": True,
    "top_logprobs": 3,
    "max_tokens": 512,
    "max_completion_tokens": 1024,
    "n": 1,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {"type": "object", "properties": {"colour": {"type": "string"}}},
        },
    },
    "seed": 42,
    "service_tier": "auto",
    "stop": ["\n\n", "END"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 1,
    "top_p": 0.9,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a word up.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": False,
            },
        },
        {"type": "custom", "custom": {"name": "grammar_tool", "format": {"type": "text"}}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "parallel_tool_calls": False,
    "user": "user-1234",
    "modalities": ["text"],
    "prediction": {"type": "content", "content": "The colour is"},
    "reasoning_effort": "low",
    "metadata": {"team": "search"},
    "store": False,
    "web_search_options": {"search_context_size": "low"},
    "verbosity": "low",
    "prompt_cache_key": "k1",
    "safety_identifier": "sid-1",
    "top_k": 40,
    "x_vendor": {"anything": ["goes", 1, None]},
}


def valid_request(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    data.update(changes)
    return data


# ------------------------------------------------------------------------ round trips


def test_rich_request_is_valid_openai_json(schema: Any) -> None:
    schema("CreateChatCompletionRequest")(RICH_REQUEST)


def test_rich_request_round_trips_losslessly() -> None:
    original = copy.deepcopy(RICH_REQUEST)
    req = parse_chat_request(RICH_REQUEST)
    assert canonical(to_wire(req)) == canonical(original)
    assert original == RICH_REQUEST  # the input is not modified


def test_a_parsed_request_keeps_its_source_as_the_upstream_body_and_evolve_drops_it() -> None:
    body = copy.deepcopy(RICH_REQUEST)
    req = parse_chat_request(body)
    assert req.source == to_wire(req) and req.source is not body
    body["temperature"] = 1.9  # the caller's dict changing later does not reach the request
    assert req.source["temperature"] == RICH_REQUEST["temperature"]
    assert attrs.evolve(req, model="other").source is None  # a changed request is written anew
    assert req == attrs.evolve(req)  # source takes no part in equality
    assert "source" not in to_wire(req)


def test_rich_request_is_typed() -> None:
    req = parse_chat_request(RICH_REQUEST)
    user = req.messages[2]
    assert isinstance(user.content, list)
    assert all(isinstance(p, ContentPart) for p in user.content)
    assert user.content[1].image_url == {"url": "https://example.com/cat.png", "detail": "high"}
    assert user.content[1].extra == {"x_part_note": "unknown field at part level"}
    assert user.extra == {"x_message_note": {"nested": [1, 2.5, None, True]}}
    call = req.messages[3].tool_calls[0]  # type: ignore[index]
    assert isinstance(call, ToolCall) and isinstance(call.function, FunctionCall)
    assert call.function.arguments == '{"q": "猫"}'
    assert req.messages[5].reasoning_content == "It has whiskers."
    assert isinstance(req.tools, list) and isinstance(req.tools[0], Tool)
    assert req.tools[0].function.name == "lookup"  # type: ignore[union-attr]
    assert req.tools[1].custom == {"name": "grammar_tool", "format": {"type": "text"}}
    assert req.tool_choice == {"type": "function", "function": {"name": "lookup"}}
    assert req.extra == {"top_k": 40, "x_vendor": {"anything": ["goes", 1, None]}}
    assert req.temperature == 1 and type(req.temperature) is int  # never coerced
    assert req.stream is True and req.stream_options == {"include_usage": True}


def test_explicit_null_and_absent_stay_different() -> None:
    data = valid_request(
        temperature=None,
        tools=None,
        stop=None,
        messages=[
            {"role": "user", "content": "hi", "name": None},
            {"role": "assistant", "content": None, "tool_calls": None},
        ],
    )
    req = parse_chat_request(data)
    assert req.temperature is None and req.top_p is UNSET
    assert req.messages[1].content is None and req.messages[0].refusal is UNSET
    out = to_wire(req)
    assert out == data
    assert "top_p" not in out and out["temperature"] is None
    assert "refusal" not in out["messages"][0]


def test_python_built_request_writes_only_what_was_set() -> None:
    req = ChatRequest(
        model="m",
        messages=[ChatMessage(role="user", content=[ContentPart(type="text", text="hi")])],
        max_tokens=5,
        extra={"top_k": 3},
    )
    assert to_wire(req) == {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 5,
        "top_k": 3,
    }
    assert req.to_wire() == to_wire(req)
    assert ChatRequest.from_wire(req.to_wire()) == req


def test_dicts_inside_objects_are_written_as_they_are() -> None:
    msg = ChatMessage(role="assistant", tool_calls=[{"id": "c", "type": "function"}])  # type: ignore[list-item]
    assert to_wire(msg) == {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}


def test_upstream_response_round_trips_and_validates(schema: Any) -> None:
    data = {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": {
                    "content": [
                        {"token": "Hello", "logprob": -0.1, "bytes": [72], "top_logprobs": []}
                    ],
                    "refusal": None,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 1,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "x_upstream": "kept",
    }
    schema("CreateChatCompletionResponse")(data)
    resp = from_wire(ChatResponse, data)
    assert resp.text == "Hello" and resp.usage.total_tokens == 10  # type: ignore[union-attr]
    assert canonical(to_wire(resp)) == canonical(data)


def test_upstream_chunks_round_trip(schema: Any) -> None:
    chunks = [
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
            "obfuscation": "abc",
        },
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]
    for data in chunks:
        schema("CreateChatCompletionStreamResponse")(data)
        assert canonical(to_wire(from_wire(ChatChunk, data))) == canonical(data)
    delta = from_wire(ChatChunk, chunks[1]).choices[0].delta
    assert delta.tool_calls[0].index == 0  # type: ignore[index]


def test_converter_handles_containers() -> None:
    msgs = converter.structure([{"role": "user", "content": "a"}], list[ChatMessage])
    assert msgs == [ChatMessage(role="user", content="a")]
    assert converter.unstructure(msgs) == [{"role": "user", "content": "a"}]
    assert to_wire(msgs) == [{"role": "user", "content": "a"}]


# ------------------------------------------------------------------------ validation

ERROR_CASES = [
    # (request changes, field, value, words the message must contain)
    ({"temperature": "hot"}, "temperature", "hot", ["expected a number", "'hot'"]),
    ({"temperature": "0.5"}, "temperature", "0.5", ["expected a number", "'0.5'"]),
    ({"temperature": 2.5}, "temperature", 2.5, ["between 0 and 2", "2.5"]),
    ({"temperature": -0.1}, "temperature", -0.1, ["between 0 and 2"]),
    ({"top_p": 1.5}, "top_p", 1.5, ["between 0 and 1", "1.5"]),
    ({"n": 0}, "n", 0, ["between 1 and 128", "0"]),
    ({"n": 1.0}, "n", 1.0, ["expected an integer", "1.0"]),
    ({"n": "1"}, "n", "1", ["expected an integer", "'1'"]),
    ({"max_tokens": True}, "max_tokens", True, ["expected an integer", "True"]),
    ({"max_tokens": 0}, "max_tokens", 0, ["at least 1", "0"]),
    ({"max_completion_tokens": -5}, "max_completion_tokens", -5, ["at least 1", "-5"]),
    ({"presence_penalty": 3}, "presence_penalty", 3, ["between -2 and 2", "3"]),
    ({"frequency_penalty": -2.5}, "frequency_penalty", -2.5, ["between -2 and 2"]),
    ({"top_logprobs": 21}, "top_logprobs", 21, ["between 0 and 20"]),
    ({"stream": 1}, "stream", 1, ["expected a boolean", "1"]),
    ({"stream": "true"}, "stream", "true", ["expected a boolean"]),
    ({"stop": 5}, "stop", 5, ["a string, an array or null", "5"]),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", ["a", "b", "c", "d", "e"], ["up to 4"]),
    ({"stop": ["a", 1]}, "stop[1]", 1, ["expected a string", "1"]),
    ({"logit_bias": {"42": "x"}}, "logit_bias.42", "x", ["expected a number"]),
    ({"logit_bias": {"42": 101}}, "logit_bias.42", 101, ["between -100 and 100"]),
    ({"metadata": {"k": 1}}, "metadata.k", 1, ["expected a string"]),
    ({"model": 5}, "model", 5, ["expected a string", "5"]),
    ({"model": None}, "model", None, ["expected a string", "None"]),
    ({"messages": "hi"}, "messages", "hi", ["expected an array", "'hi'"]),
    ({"messages": []}, "messages", [], ["at least one message"]),
    ({"messages": [{"role": "user", "content": "x"}, 7]}, "messages[1]", 7, ["expected an object"]),
    ({"messages": [{"content": "x"}]}, "messages[0].role", None, ["missing", "user"]),
    (
        {"messages": [{"role": "bot", "content": "x"}]},
        "messages[0].role",
        "bot",
        ["one of", "'bot'"],
    ),
    ({"messages": [{"role": "user"}]}, "messages[0].content", None, ["required", "'user'"]),
    (
        {"messages": [{"role": "tool", "content": "x"}]},
        "messages[0].tool_call_id",
        None,
        ["required", "'tool'"],
    ),
    (
        {"messages": [{"role": "user", "content": "a"}] * 2 + [{"role": "user", "content": 5}]},
        "messages[2].content",
        5,
        ["expected a string, an array or null", "5"],
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
        "messages[0].content[0].text",
        3,
        ["expected a string"],
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
        None,
        ["required", "'text' part"],
    ),
    (
        {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
        "messages[0].content[0].type",
        None,
        ["missing", "a string"],
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content[0].image_url",
        {},
        ["'url'"],
    ),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"id": 1}]}]},
        "messages[0].tool_calls[0].id",
        1,
        ["expected a string"],
    ),
    (
        {"tools": [{"type": "function", "function": {"name": 3}}]},
        "tools[0].function.name",
        3,
        ["expected a string", "3"],
    ),
    (
        {"tools": [{"type": "function", "function": {"description": "d"}}]},
        "tools[0].function.name",
        None,
        ["missing"],
    ),
    ({"tools": [{"type": "function"}]}, "tools[0].function", None, ["required"]),
    ({"tools": {"type": "function"}}, "tools", {"type": "function"}, ["expected an array"]),
    ({"tool_choice": "sometimes"}, "tool_choice", "sometimes", ["none, auto, required"]),
    ({"tool_choice": 1}, "tool_choice", 1, ["a string, an object or null"]),
    ({"response_format": "json"}, "response_format", "json", ["expected an object"]),
]


@pytest.mark.parametrize(("changes", "field", "value", "words"), ERROR_CASES)
def test_validation_errors_name_field_and_value(
    changes: dict[str, Any], field: str, value: Any, words: list[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_chat_request(valid_request(**changes))
    err = info.value
    assert err.field == field
    assert err.value == value and type(err.value) is type(value)
    assert str(err).startswith(f"{field}: ")
    for word in words:
        assert word in str(err)


@pytest.mark.parametrize("body", [[], "text", None, 3, True, [{"model": "m"}]])
def test_request_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(ValidationError, match="request body must be a JSON object, got") as info:
        parse_chat_request(body if not isinstance(body, str) else json.dumps(body))
    assert info.value.field is None


def test_raw_json_bodies() -> None:
    raw = json.dumps(RICH_REQUEST, ensure_ascii=False).encode()
    assert parse_chat_request(raw) == parse_chat_request(RICH_REQUEST)
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_chat_request(b'{"model": ')
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_chat_request(b"\xff\xfe")


def test_validation_error_is_a_coop_400() -> None:
    with pytest.raises(ValidationError) as info:
        parse_chat_request({"model": "m"})
    assert isinstance(info.value, CoopError) and isinstance(info.value, ValueError)
    assert info.value.http_status == 400 and info.value.error_type == "invalid_request_error"
    assert str(info.value) == "messages: required field is missing; expected an array"


def test_from_wire_checks_responses_too() -> None:
    with pytest.raises(ValidationError) as info:
        from_wire(
            ChatResponse,
            {"model": "m", "choices": [{"message": {"role": "assistant", "content": 1}}]},
        )
    assert info.value.field == "choices[0].message.content"
    with pytest.raises(ValidationError, match=r"usage\.prompt_tokens: expected an integer"):
        from_wire(ChatResponse, {"model": "m", "usage": {"prompt_tokens": "9"}})
    with pytest.raises(ValidationError, match="expected an object, got 'x'"):
        from_wire(ChatChunk, "x")


# ------------------------------------------------------------------ helpers and build


def test_text_helpers() -> None:
    parts = [
        ContentPart(type="text", text="one"),
        ContentPart(type="image_url", image_url={"url": "u"}),
        ContentPart(type="text", text="two"),
    ]
    assert ChatMessage(role="user", content=parts).text == "one\ntwo"
    assert ChatMessage(role="user", content="plain").text == "plain"
    assert ChatMessage(role="assistant", content=None).text == ""
    assert ChatMessage(role="assistant").text == ""
    req = parse_chat_request(RICH_REQUEST)
    text = req.prompt_text()
    assert text.startswith("Answer in JSON.\nBe brief.\nWhat is in this picture?\n")
    assert text.endswith("a cat 🐱\nA cat.\nAnd the colour?")
    assert ChatResponse(model="m").text == ""


def test_usage_defaults_and_estimated_flag() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=4, estimated=True)
    assert usage.total_tokens == 7
    assert to_wire(usage) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert from_wire(Usage, to_wire(usage)).estimated is False


def test_repr_hides_unset_fields() -> None:
    msg = ChatMessage(role="user", content="hi")
    assert repr(msg) == "ChatMessage(role='user', content='hi')"
    assert repr(UNSET) == "UNSET" and not UNSET


BUILD_CASES = [
    {},
    {"usage": Usage(prompt_tokens=5, completion_tokens=2)},
    {"finish_reason": "length", "id": "chatcmpl-fixed", "created": 5},
    {"reasoning_content": "thinking..."},
    {
        "text": None,
        "finish_reason": "tool_calls",
        "tool_calls": [
            ToolCall(id="call_1", type="function", function=FunctionCall(name="f", arguments="{}")),
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    },
]


@pytest.mark.parametrize("kwargs", BUILD_CASES)
def test_response_build_matches_openai_schema(schema: Any, kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    text = kwargs.pop("text", "Bonjour, 世界")
    resp = ChatResponse.build("m", text, **kwargs)
    data = to_wire(resp)
    schema("CreateChatCompletionResponse")(data)
    assert data["id"].startswith("chatcmpl-") and isinstance(data["created"], int)
    assert data["object"] == "chat.completion" and data["model"] == "m"
    choice = data["choices"][0]
    assert choice["logprobs"] is None and choice["message"]["refusal"] is None
    assert choice["message"]["content"] == text and choice["message"]["role"] == "assistant"
    assert json.loads(response_json(resp)) == data
    assert from_wire(ChatResponse, data) == resp
    if "tool_calls" in kwargs:
        assert [c["id"] for c in choice["message"]["tool_calls"]] == ["call_1", "call_2"]


def test_response_json_is_compact_utf8() -> None:
    body = response_json(ChatResponse.build("m", "世界", id="x", created=1))
    assert "世界".encode() in body and b": " not in body and b", " not in body
    assert response_json({"a": "\ud800"}) == b'{"a":"\\ud800"}'  # lone surrogate: escaped


CHUNK_CASES = [
    {"role": "assistant", "content": ""},
    {"content": "tok"},
    {"reasoning_content": "hmm"},
    {"finish_reason": "stop"},
    {"usage": Usage(prompt_tokens=1, completion_tokens=2)},
    {"content": "last", "finish_reason": "length", "usage": Usage(prompt_tokens=1)},
    {
        "tool_calls": [
            {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]
    },
    {"tool_calls": [ToolCall(index=0, function=FunctionCall(arguments='{"a"'))]},
]


@pytest.mark.parametrize("kwargs", CHUNK_CASES)
def test_chunk_build_matches_openai_schema(schema: Any, kwargs: dict[str, Any]) -> None:
    chunk = ChatChunk.build("m", id="chatcmpl-s", created=7, **kwargs)
    data = to_wire(chunk)
    schema("CreateChatCompletionStreamResponse")(data)
    assert data["id"] == "chatcmpl-s" and data["created"] == 7
    assert data["object"] == "chat.completion.chunk"
    if set(kwargs) == {"usage"}:
        assert data["choices"] == [] and data["usage"]["total_tokens"] == 3
    else:
        (choice,) = data["choices"]
        assert choice["finish_reason"] == kwargs.get("finish_reason")
        assert "finish_reason" in choice and choice["logprobs"] is None
    sse = chunk_to_sse(chunk)
    assert sse.startswith(b"data: {") and sse.endswith(b"}\n\n") and sse.count(b"\n") == 2
    assert json.loads(sse[6:]) == data


def test_chunk_build_defaults() -> None:
    chunk = ChatChunk.build("m", "hi")
    assert chunk.id.startswith("chatcmpl-") and chunk.text == "hi"
    assert ChatChunk.build("m", "x").id != chunk.id
    assert ChatChunk.build("m", finish_reason="stop").text == ""


def test_sloppy_upstream_response_is_written_schema_valid(schema: Any) -> None:
    # No refusal, no logprobs, no id/created/object: seen from local servers and proxies.
    data = {"model": "qwen", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    with pytest.raises(jsonschema.ValidationError):
        schema("CreateChatCompletionResponse")(data)  # the fixture does reject bad data
    out = to_wire(from_wire(ChatResponse, data))
    schema("CreateChatCompletionResponse")(out)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None}
    assert out["choices"][0]["logprobs"] is None and out["choices"][0]["finish_reason"] == "stop"
    assert data == {
        "model": "qwen",
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
    }


def test_nan_is_out_of_every_range() -> None:
    with pytest.raises(ValidationError, match="between 0 and 2, got nan"):
        parse_chat_request(
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}'
        )


def test_converter_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="role: required field is missing"):
        converter.structure([{"content": "x"}], list[ChatMessage])
