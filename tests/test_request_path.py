"""One request path: plans carry the client's parameters and limits into every model call.

Through the real gateway (uvicorn on loopback) with the official openai SDK as client and a
fake OpenAI upstream recording what each member received; the dispatcher-level tests run
under asyncio and trio.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import coop
import httpx
import openai
import pytest
from coop import Limits, RetryPolicy, SystemConfig
from fakes import Answer, FakeOpenAI, Fault
from fakes.http import ToolCall
from openapi_schema import validate
from test_gateway import PLUGINS, UPSTREAM_KEYS, Gateway, serve_in_thread

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def path_config(up: FakeOpenAI, **extra: Any) -> SystemConfig:
    """Three models on one fake endpoint and one cooperation per kind of strategy."""
    data: dict[str, Any] = {
        "server": {"access_log": "off"},
        "endpoints": {
            "fake": {
                "provider": "fake-openai",
                "base_url": up.base_url,
                "api_keys": UPSTREAM_KEYS,
                "timeout": 10,
                "health_check_interval": 0,
            }
        },
        "models": {
            "m": {"endpoint": "fake", "path": "gpt-4o-mini", "tier": "light"},
            "big": {"endpoint": "fake", "path": "gpt-4o", "tier": "reasoning"},
            "large": {"endpoint": "fake", "path": "gpt-4.1", "tier": "complex"},
        },
        "routing": {"light": "m", "reasoning": "big", "complex": "synth"},
        "cooperations": {
            "council": {"mode": "parallel", "models": ["m", "big", "large"]},
            "synth": {
                "mode": "parallel",
                "models": ["m", "big"],
                "strategy": "ensemble",
                "options": {"aggregator": "large"},
            },
            "chain": {
                "mode": "pipeline",
                "stages": [{"model": "m", "task": "analysis"}, {"model": "big", "task": "summary"}],
            },
        },
    }
    data.update(extra)
    return SystemConfig.from_dict(data)


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def gw(up: FakeOpenAI) -> Iterator[Gateway]:
    with serve_in_thread(path_config(up)) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "up" in request.fixturenames:
        request.getfixturevalue("up").reset()


def bodies(up: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in up.requests if r.path.endswith("/chat/completions")]


# -- cooperations honour the request ---------------------------------------------------------


def test_every_member_of_a_cooperation_gets_the_clients_parameters(
    up: FakeOpenAI, gw: Gateway
) -> None:
    up.answer_fn = lambda body: '{"answer": 42}'
    reply = gw.client().chat.completions.create(
        model="council",
        messages=[{"role": "user", "content": "the answer as JSON"}],
        temperature=0.2,
        top_p=0.9,
        max_tokens=77,
        seed=7,
        stop=["\n\n"],
        response_format={"type": "json_object"},
        user="u-1",
    )
    sent = bodies(up)
    assert sorted(b["model"] for b in sent) == ["gpt-4.1", "gpt-4o", "gpt-4o-mini"]
    for body in sent:
        assert body["temperature"] == 0.2 and body["top_p"] == 0.9
        assert body["max_tokens"] == 77 and body["seed"] == 7 and body["stop"] == ["\n\n"]
        assert body["response_format"] == {"type": "json_object"} and body["user"] == "u-1"
        assert "stream" not in body
    assert json.loads(reply.choices[0].message.content or "") == {"answer": 42}
    assert reply.model == "council"


def test_a_vote_over_tool_calls_returns_the_agreed_call_to_the_sdk(
    up: FakeOpenAI, gw: Gateway
) -> None:
    # Two members call the tool with the same arguments written differently, one dissents.
    calls = {
        "gpt-4o-mini": '{"city": "Paris"}',
        "gpt-4o": '{ "city" :"Paris" }',
        "gpt-4.1": '{"city": "Rome"}',
    }
    up.answer_fn = lambda body: Answer(
        tool_calls=[ToolCall("get_weather", calls[body["model"]])], finish_reason="tool_calls"
    )
    raw = httpx.post(
        gw.base_url + "/chat/completions",
        json={
            "model": "council",
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
        },
        timeout=10,
    )
    validate("CreateChatCompletionResponse", raw.json())
    reply = openai.types.chat.ChatCompletion.model_validate(raw.json())
    assert all(b["tools"] == [WEATHER_TOOL] and b["tool_choice"] == "auto" for b in bodies(up))
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_a_streamed_vote_over_tool_calls_streams_the_call(up: FakeOpenAI, gw: Gateway) -> None:
    up.answer_fn = lambda body: Answer(
        tool_calls=[ToolCall("get_weather", {"city": "Oslo"})], finish_reason="tool_calls"
    )
    stream = gw.client().chat.completions.create(
        model="council",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                if call.function and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert names == ["get_weather"] and json.loads(arguments) == {"city": "Oslo"}
    assert finish == "tool_calls"


@pytest.mark.parametrize(
    ("model", "extra", "param", "named"),
    [
        ("synth", {"tools": [WEATHER_TOOL]}, "tools", "ensemble"),
        ("synth", {"response_format": {"type": "json_object"}}, "response_format", "ensemble"),
        ("council", {"n": 2}, "n", "council"),
        ("chain", {"tools": [WEATHER_TOOL]}, "tools", "pipeline"),
    ],
)
def test_a_parameter_a_cooperation_cannot_honour_is_refused_before_any_call(
    up: FakeOpenAI, gw: Gateway, model: str, extra: dict[str, Any], param: str, named: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **extra
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param and named in error["message"]
    assert up.request_count == 0  # refused before a single upstream call


def test_auto_with_tools_skips_a_cooperation_that_cannot_compare_tool_calls(
    up: FakeOpenAI, gw: Gateway
) -> None:
    prompt = (
        "Write a comprehensive analysis comparing the long-term economic impacts of remote "
        "work on urban real estate markets, labor productivity, and regional inequality, "
        "with recommendations for policymakers."
    )
    route = httpx.post(
        gw.base_url + "/route",
        json={"messages": [{"role": "user", "content": prompt}]},
        timeout=10,
    ).json()
    assert route["tier"] == "complex" and route["target"] == "synth"
    with_tools = httpx.post(
        gw.base_url + "/route",
        json={"messages": [{"role": "user", "content": prompt}], "tools": [WEATHER_TOOL]},
        timeout=10,
    ).json()
    assert with_tools["target"] == "large" and with_tools["signals"]["tools"] == 1
    refused = next(c for c in with_tools["candidates"] if c["name"] == "synth")
    assert "ensemble" in refused["why_not"]
    up.answer_fn = lambda body: Answer(tool_calls=[ToolCall("get_weather", {"city": "Bonn"})])
    raw = gw.client().chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": prompt}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert raw.headers["x-coop-model"] == "large"
    assert raw.parse().choices[0].message.tool_calls is not None


def test_route_counts_attachments(gw: Gateway) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    decision = httpx.post(
        gw.base_url + "/route",
        json={
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}
            ]
        },
        timeout=10,
    ).json()
    assert decision["signals"]["attachments"] == {"image": 1}
    assert any("attachments: 1 image" in r for r in decision["reasons"])


def test_the_decision_served_is_the_decision_routed_under_a_cost_limit(
    up: FakeOpenAI, gw: Gateway
) -> None:
    prompt = "Prove that the square root of 2 is irrational, step by step."
    headers = {"x-coop-max-cost": "0"}
    routed = httpx.post(
        gw.base_url + "/route",
        json={"messages": [{"role": "user", "content": prompt}]},
        headers=headers,
        timeout=10,
    ).json()
    raw = gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}], extra_headers=headers
    )
    assert raw.headers["x-coop-route"] == f"{routed['tier']}/{routed['task_type']}"
    assert raw.headers["x-coop-model"] == routed["target"]
    assert up.request_count == 1


def test_cooperate_endpoint_passes_parameters_and_checks_its_fields(
    up: FakeOpenAI, gw: Gateway
) -> None:
    reply = httpx.post(
        gw.base_url + "/cooperate",
        json={"query": "2+2?", "models": ["m", "big"], "temperature": 0.1, "max_tokens": 9},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert [o["success"] for o in reply.json()["outputs"]] == [True, True]
    assert all(b["temperature"] == 0.1 and b["max_tokens"] == 9 for b in bodies(up))
    bad = httpx.post(
        gw.base_url + "/cooperate",
        json={"query": "2+2?", "models": "m,big"},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "models"
    unknown = httpx.post(
        gw.base_url + "/cooperate", json={"query": "q", "models": ["m", "gpt-9"]}, timeout=10
    )
    assert unknown.status_code == 404 or unknown.status_code == 400
    assert "gpt-9" in unknown.json()["error"]["message"]


# -- balancing state and deadlines belong to the request's own model -----------------------


def two_deployment_config(up: FakeOpenAI) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "balancing": "round-robin",
            "endpoints": {
                "fake": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": UPSTREAM_KEYS,
                    "health_check_interval": 0,
                }
            },
            "models": {
                "a": {
                    "deployments": [
                        {"endpoint": "fake", "path": "a-1"},
                        {"endpoint": "fake", "path": "a-2"},
                    ]
                },
                "b": {
                    "deployments": [
                        {"endpoint": "fake", "path": "b-1"},
                        {"endpoint": "fake", "path": "b-2"},
                    ]
                },
            },
        }
    )


@pytest.mark.anyio
async def test_round_robin_turns_are_kept_per_model(up: FakeOpenAI) -> None:
    async with coop.OpenAIEngine(two_deployment_config(up), plugins=PLUGINS) as engine:
        used: dict[str, set[str]] = {"a": set(), "b": set()}
        for _ in range(4):  # interleaved: a, b, a, b, ...
            for name in ("a", "b"):
                request = coop.parse_chat_request(
                    {"model": name, "messages": [{"role": "user", "content": "hi"}]}
                )
                result = await engine.chat(request)
                used[name].add(result.deployment or "")
    assert used == {"a": {"fake/a-1", "fake/a-2"}, "b": {"fake/b-1", "fake/b-2"}}


@pytest.mark.anyio
async def test_a_plan_deadline_stops_retries_and_cooldown_waits(up: FakeOpenAI) -> None:
    up.set_mode(Fault.status(503))
    config = two_deployment_config(up)
    async with coop.Dispatcher(config, plugins=PLUGINS, health_checks=False) as dispatcher:
        dispatcher.engine.retry = RetryPolicy(
            max_attempts=50, backoff_base=0.05, backoff_max=0.2, max_wait=30.0
        )
        request = coop.parse_chat_request(
            {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
        )
        plan = dispatcher.plan(request, limits=Limits.within(0.5))
        started = time.monotonic()
        # between attempts the last upstream error; mid-attempt (a slow machine) the
        # deadline's TimeoutError: either way it ends, and in time
        with pytest.raises((coop.CoopError, TimeoutError)):
            await dispatcher.run(plan)
        elapsed = time.monotonic() - started
    # Without the plan's deadline the engine would wait up to max_wait (30 s) for a cooldown.
    assert elapsed < 10.0


@pytest.mark.anyio
async def test_plans_name_their_kind_and_carry_the_request(up: FakeOpenAI) -> None:
    config = path_config(up)
    async with coop.Dispatcher(config, plugins=PLUGINS, health_checks=False) as dispatcher:
        base = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.3}
        model = dispatcher.plan(coop.parse_chat_request({**base, "model": "m"}))
        council = dispatcher.plan(coop.parse_chat_request({**base, "model": "council"}))
        auto = dispatcher.plan(coop.parse_chat_request({**base, "model": "auto"}))
        with pytest.raises(coop.UnknownModelError):
            dispatcher.plan(coop.parse_chat_request({**base, "model": "gpt-9"}))
    assert (model.kind, model.target, model.decision) == ("model", "m", None)
    assert council.kind == "cooperation" and council.cooperation is not None
    assert council.request.temperature == 0.3
    assert auto.decision is not None and auto.target == auto.decision.target
    assert auto.request.model == auto.target and auto.request.temperature == 0.3


@pytest.mark.anyio
async def test_a_cooperation_plan_runs_with_the_clients_parameters(up: FakeOpenAI) -> None:
    up.answer_fn = lambda body: Answer(tool_calls=[ToolCall("get_weather", {"city": "Lima"})])
    async with coop.Dispatcher(path_config(up), plugins=PLUGINS, health_checks=False) as d:
        request = coop.parse_chat_request(
            {
                "model": "council",
                "messages": [{"role": "user", "content": "weather in Lima?"}],
                "tools": [WEATHER_TOOL],
                "seed": 3,
            }
        )
        plan = d.plan(request, limits=Limits.within(10.0))
        result = await d.run(plan)
        chunks = [c async for c in d.stream(plan) if isinstance(c, coop.ChatChunk)]
    assert all(b["seed"] == 3 and b["tools"] == [WEATHER_TOOL] for b in bodies(up))
    assert result.cooperation is not None and result.cooperation.confidence == 1.0
    message = result.response.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"
    assert result.response.choices[0].finish_reason == "tool_calls"
    streamed = [c for chunk in chunks for ch in chunk.choices for c in ch.delta.tool_calls or ()]
    assert [c.function.name for c in streamed] == ["get_weather"]
