"""``store`` and ``previous_response_id`` on ``/v1/responses``, with the official openai SDK.

Stored responses live in the gateway's state backend (memory here, the embedded
SQLite file in the restart test). What the upstream receives on the second turn is
checked: the first turn's conversation, then the new input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from coop import SystemConfig
from coop._state import MemoryState, StateUnavailableError
from fakes import Answer, FakeOpenAI
from fakes.http import ToolCall
from openapi_schema import validate
from test_gateway import Gateway, gateway_config, serve_in_thread


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


def test_a_two_turn_conversation_through_previous_response_id(up: FakeOpenAI, gw: Gateway) -> None:
    client = gw.client()
    first = client.responses.create(
        model="m", instructions="Be brief.", input="My name is Ada.", store=True
    )
    assert first.store is True and first.output_text == "echo: My name is Ada."
    second = client.responses.create(
        model="m", input="What is my name?", previous_response_id=first.id, store=True
    )
    assert second.previous_response_id == first.id
    third = client.responses.create(model="m", input="Thanks.", previous_response_id=second.id)
    assert third.store is False
    turn1, turn2, turn3 = chat_bodies(up)
    assert turn1["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
    ]
    # the earlier instructions are not carried over (as on OpenAI); the conversation is
    assert turn2["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "echo: My name is Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert turn3["messages"] == [
        *turn2["messages"],
        {"role": "assistant", "content": "echo: What is my name?"},
        {"role": "user", "content": "Thanks."},
    ]
    with pytest.raises(openai.NotFoundError):  # store defaults to false: third was not kept
        client.responses.retrieve(third.id)


def test_retrieve_returns_the_stored_response(gw: Gateway) -> None:
    client = gw.client()
    created = client.responses.create(model="m", input="keep me", store=True)
    with gw.http() as http:
        raw = http.get(f"/v1/responses/{created.id}")
    assert raw.status_code == 200
    validate("Response", raw.json())
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    assert fetched.output_text == "echo: keep me"


def test_a_stored_stream_can_be_retrieved_and_continued(up: FakeOpenAI, gw: Gateway) -> None:
    client = gw.client()
    with client.responses.stream(model="m", input="streamed turn", store=True) as stream:
        final = stream.get_final_response()
    assert final.store is True
    fetched = client.responses.retrieve(final.id)
    assert fetched.output_text == "echo: streamed turn" and fetched.status == "completed"
    with client.responses.stream(model="m", input="next", previous_response_id=final.id) as stream:
        stream.get_final_response()
    assert chat_bodies(up)[-1]["messages"] == [
        {"role": "user", "content": "streamed turn"},
        {"role": "assistant", "content": "echo: streamed turn"},
        {"role": "user", "content": "next"},
    ]


def test_a_function_call_round_trip_through_previous_response_id(
    up: FakeOpenAI, gw: Gateway
) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    up.script(Answer(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_7")]))
    up.script("It is sunny in Paris.")
    client = gw.client()
    asked = client.responses.create(
        model="m",
        input="Weather in Paris?",
        tools=[tool],
        store=True,  # type: ignore[list-item]
    )
    (call,) = [item for item in asked.output if item.type == "function_call"]
    answered = client.responses.create(
        model="m",
        previous_response_id=asked.id,
        tools=[tool],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answered.output_text == "It is sunny in Paris."
    messages = chat_bodies(up)[-1]["messages"]
    assert messages[0] == {"role": "user", "content": "Weather in Paris?"}
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == "call_7"
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_7", "content": "sunny"}


def test_unknown_ids_are_404s_naming_the_id(gw: Gateway) -> None:
    client = gw.client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_nope")
    assert "resp_nope" in str(caught.value)
    with gw.http() as http:
        response = http.post(
            "/v1/responses", json={"model": "m", "input": "x", "previous_response_id": "resp_gone"}
        )
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "resp_gone" in error["message"] and error["param"] == "previous_response_id"
    assert error["type"] == "invalid_request_error"
    with gw.http() as http:
        for path in ("/v1/responses/", "/v1/responses/resp_1/input_items"):
            missing = http.get(path)
            assert (
                missing.status_code == 404 and "no endpoint" in missing.json()["error"]["message"]
            )


def test_delete_forgets_a_stored_response(gw: Gateway) -> None:
    client = gw.client()
    created = client.responses.create(model="m", input="forget me", store=True)
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"store": "yes"}, "store"), ({"previous_response_id": 7}, "previous_response_id")],
)
def test_bad_types_are_400s_naming_the_field(
    gw: Gateway, extra: dict[str, Any], param: str
) -> None:
    with gw.http() as http:
        response = http.post("/v1/responses", json={"model": "m", "input": "x", **extra})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_without_a_state_backend_both_fields_are_refused(up: FakeOpenAI) -> None:
    with serve_in_thread(gateway_config(up)) as gateway:
        state, gateway.app.state = gateway.app.state, None
        try:
            with gateway.http() as http:
                for extra, param in (
                    ({"store": True}, "store"),
                    ({"previous_response_id": "resp_1"}, "previous_response_id"),
                ):
                    response = http.post(
                        "/v1/responses", json={"model": "m", "input": "x", **extra}
                    )
                    assert response.status_code == 400, response.text
                    error = response.json()["error"]
                    assert error["param"] == param and "[state]" in error["message"]
                assert http.post("/v1/responses", json={"model": "m", "input": "x"}).is_success
        finally:
            gateway.app.state = state


def test_the_embedded_sqlite_state_keeps_responses_across_restarts(
    up: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite"

    def config() -> SystemConfig:
        base = gateway_config(up)
        return SystemConfig.from_dict(
            {
                "server": {"access_log": "off"},
                "endpoints": {
                    name: {
                        "provider": e.provider,
                        "base_url": e.base_url,
                        "api_keys": e.api_keys,
                        "health_check_interval": 0,
                    }
                    for name, e in base.endpoints.items()
                },
                "models": {"m": {"endpoint": "fake", "path": "gpt-4o-mini"}},
                "state": {"backend": "sqlite", "path": str(path)},
            }
        )

    with serve_in_thread(config()) as gateway:
        created = gateway.client().responses.create(model="m", input="persist", store=True)
    assert path.exists()
    with serve_in_thread(config()) as gateway:
        fetched = gateway.client().responses.retrieve(created.id)
        again = gateway.client().responses.create(
            model="m", input="still there?", previous_response_id=created.id
        )
    assert fetched.output_text == "echo: persist"
    assert again.output_text == "echo: still there?"
    assert chat_bodies(up)[-1]["messages"][:2] == [
        {"role": "user", "content": "persist"},
        {"role": "assistant", "content": "echo: persist"},
    ]


class _DownState(MemoryState):
    async def put(self, *args: Any, **kwargs: Any) -> None:
        raise StateUnavailableError("the state backend is down (test)")


def test_a_failing_backend_costs_the_stored_copy_not_the_answer(up: FakeOpenAI) -> None:
    with serve_in_thread(gateway_config(up)) as gateway:
        state, gateway.app.state = gateway.app.state, _DownState()
        try:
            client = gateway.client()
            response = client.responses.create(model="m", input="hi", store=True)
            with client.responses.stream(model="m", input="hi", store=True) as stream:
                streamed = stream.get_final_response()
            with pytest.raises(openai.NotFoundError):
                client.responses.retrieve(response.id)
        finally:
            gateway.app.state = state
    assert response.output_text == "echo: hi" and response.store is False
    assert streamed.output_text == "echo: hi"
