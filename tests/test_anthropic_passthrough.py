"""``/v1/messages`` relayed byte for byte to Anthropic upstreams, with the official SDK.

A model served only by ``anthropic`` endpoints gets the client's Messages body as is
(model id and key replaced) and the client gets the upstream's bytes unchanged, with
failover, usage and cost still the engine's. Everything else keeps the translation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from coop import Dispatcher, SystemConfig, ValidationError, parse_chat_request
from fakes import FakeAnthropic, FakeOpenAI, Fault
from fakes.anthropic_upstream import _event
from fakes.http import JsonReply, StreamReply, dumps
from test_gateway import BOUND, PLUGINS, Gateway, serve_in_thread

GATEWAY_KEY = "sk-gw-client-key-0001"
KEY_A = "sk-ant-upstream-aaaa-0123456789"
KEY_B = "sk-ant-upstream-bbbb-0123456789"
USER = [{"role": "user", "content": "2+2?"}]

#: An answer with what coop's translation knows nothing of: a signed thinking block, a
#: citation, cache usage, a server-tool usage field and a top-level field from the future.
MESSAGE: dict[str, Any] = {
    "id": "msg_01PassThrough",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "2 plus 2 is 4", "signature": "EqQBCkYIARgCIkA="},
        {
            "type": "text",
            "text": "4",
            "citations": [
                {
                    "type": "char_location",
                    "cited_text": "2+2=4",
                    "document_index": 0,
                    "document_title": "sums",
                    "start_char_index": 0,
                    "end_char_index": 5,
                }
            ],
        },
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 11,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 100,
        "output_tokens": 20,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    },
    "container": None,
    "future_field": {"x": 1},
}


def stream_events(message: dict[str, Any]) -> list[bytes]:
    """The message as Anthropic streams it, with a signature_delta and a future event."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"]}}
    start["usage"]["output_tokens"] = 1
    thinking, text = message["content"]
    return [
        _event("message_start", {"type": "message_start", "message": start}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        _event("ping", {"type": "ping"}),
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": thinking["thinking"]},
            },
        ),
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": thinking["signature"]},
            },
        ),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": text["text"]},
            },
        ),
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "citations_delta", "citation": text["citations"][0]},
            },
        ),
        _event("content_block_stop", {"type": "content_block_stop", "index": 1}),
        _event("future_event", {"type": "future_event", "detail": "kept"}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]


def reply(body: dict[str, Any]) -> JsonReply | StreamReply:
    message = {**MESSAGE, "model": body["model"]}
    if body.get("stream"):
        return StreamReply(stream_events(message), {"request-id": "req_upstream_secret_id"})
    return JsonReply(200, message, {"request-id": "req_upstream_secret_id"})


def expected_bytes(model: str, stream: bool) -> bytes:
    message = {**MESSAGE, "model": model}
    return b"".join(stream_events(message)) if stream else dumps(message)


def config(a: FakeAnthropic, b: FakeAnthropic, up: FakeOpenAI) -> SystemConfig:
    endpoint = {"provider": "anthropic", "timeout": 10, "health_check_interval": 0}
    return SystemConfig.from_dict(
        {
            "server": {"access_log": "off", "api_keys": [GATEWAY_KEY]},
            "endpoints": {
                "claude_a": {**endpoint, "base_url": a.url + "/v1", "api_keys": [KEY_A]},
                "claude_b": {**endpoint, "base_url": b.url + "/v1", "api_keys": [KEY_B]},
                "oai": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": ["sk-oai-upstream-0123456789"],
                    "health_check_interval": 0,
                },
            },
            "models": {
                "sonnet": {
                    "deployments": [
                        {"endpoint": "claude_a", "path": "claude-sonnet-4-5"},
                        {"endpoint": "claude_b", "path": "claude-sonnet-4-5"},
                    ],
                    "price": {"input": 3.0, "output": 15.0},
                    "tier": "reasoning",
                },
                "mixed": {
                    "endpoint": "claude_a",
                    "path": "claude-haiku-4-5",
                    "fallbacks": ["m"],
                },
                "m": {"endpoint": "oai", "path": "gpt-4o-mini", "tier": "light"},
            },
            "routing": {"light": "m", "reasoning": "sonnet", "complex": "sonnet"},
            "cooperations": {"pair": {"mode": "parallel", "models": ["sonnet", "m"]}},
        }
    )


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI]]:
    with (
        FakeAnthropic(api_keys=[KEY_A]) as a,
        FakeAnthropic(api_keys=[KEY_B]) as b,
        FakeOpenAI(api_keys=["sk-oai-upstream-0123456789"]) as up,
    ):
        yield a, b, up


@pytest.fixture(scope="module")
def gw(fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI]) -> Iterator[Gateway]:
    with serve_in_thread(config(*fakes)) as gateway:
        gateway.key = GATEWAY_KEY
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI]) -> None:
    for fake in fakes:
        fake.reset()
    for fake in fakes[:2]:
        fake.reply_fn = reply


def client(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0, timeout=BOUND)


def anthropic_requests(*fakes: FakeAnthropic) -> list[Any]:
    return [r for f in fakes for r in f.requests if r.path == "/v1/messages"]


def status(gw: Gateway) -> dict[str, Any]:
    return httpx.get(gw.url + "/status", headers=gw.headers(), timeout=BOUND).json()


# -- bytes ---------------------------------------------------------------------------------


def test_a_message_passes_through_byte_for_byte(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    a, b, _ = fakes
    raw = client(gw).messages.with_raw_response.create(
        model="sonnet",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        system=[{"type": "text", "text": "Be exact.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "2+2=4"},
                        "title": "sums",
                        "citations": {"enabled": True},
                    },
                    {"type": "text", "text": "2+2?", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
        extra_body={"context_management": {"edits": []}},  # a field coop does not know
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert raw.headers["x-coop-passthrough"] == "1"
    assert raw.headers["x-coop-model"] == "sonnet" and float(raw.headers["x-coop-cost"]) > 0
    assert raw.http_response.content == expected_bytes("claude-sonnet-4-5", stream=False)
    message = raw.parse()
    assert message.content[0].type == "thinking"
    assert message.content[0].signature == "EqQBCkYIARgCIkA="  # type: ignore[union-attr]
    assert message.content[1].citations[0].cited_text == "2+2=4"  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens == 100
    (sent,) = anthropic_requests(a, b)
    body = sent.json
    assert body["model"] == "claude-sonnet-4-5"  # the upstream id, not the logical name
    assert body["context_management"] == {"edits": []}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"][0]["citations"] == {"enabled": True}
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


def test_a_stream_passes_through_byte_for_byte(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    request: dict[str, Any] = {
        "model": "sonnet",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": USER,
    }
    with httpx.Client(timeout=BOUND) as http:
        response = http.post(
            gw.url + "/v1/messages",
            json={**request, "stream": True},
            headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200
    assert response.headers["x-coop-passthrough"] == "1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == expected_bytes("claude-sonnet-4-5", stream=True)
    with client(gw).messages.stream(**request) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "EqQBCkYIARgCIkA="  # type: ignore[union-attr]


# -- keys ----------------------------------------------------------------------------------


def test_keys_stay_on_their_side(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    a, b, _ = fakes
    seen: list[bytes] = []
    for stream in (False, True):
        with httpx.Client(timeout=BOUND) as http:
            response = http.post(
                gw.url + "/v1/messages",
                json={"model": "sonnet", "max_tokens": 64, "messages": USER, "stream": stream},
                headers={"x-api-key": GATEWAY_KEY, "authorization": f"Bearer {GATEWAY_KEY}"},
            )
        assert response.status_code == 200
        seen.append(response.content + json.dumps(dict(response.headers)).encode())
    sent = anthropic_requests(a, b)
    assert len(sent) == 2
    for request in sent:
        assert request.api_key in (KEY_A, KEY_B)  # the endpoint's key
        assert request.headers.get("x-api-key") == request.api_key
        assert GATEWAY_KEY not in json.dumps(request.headers) + request.body.decode()
    for answer in seen:
        for secret in (KEY_A, KEY_B, "req_upstream_secret_id"):
            assert secret.encode() not in answer


def test_a_wrong_gateway_key_is_refused_before_any_upstream_call(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    bad = anthropic.Anthropic(base_url=gw.url, api_key=KEY_A, max_retries=0, timeout=BOUND)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="sonnet", max_tokens=8, messages=USER)  # type: ignore[arg-type]
    assert anthropic_requests(*fakes[:2]) == []


# -- failover, usage, cost -----------------------------------------------------------------


@pytest.mark.parametrize(("code", "stream"), [(529, False), (503, True), (529, True)])
def test_an_overloaded_deployment_fails_over_to_the_next(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], code: int, stream: bool
) -> None:
    a, b, _ = fakes
    a.set_mode(Fault.status(code))  # the first deployment, which a fresh gateway tries first
    try:
        with serve_in_thread(config(*fakes)) as gateway, httpx.Client(timeout=BOUND) as http:
            response = http.post(
                gateway.url + "/v1/messages",
                json={"model": "sonnet", "max_tokens": 64, "messages": USER, "stream": stream},
                headers={"x-api-key": GATEWAY_KEY},
            )
            snapshot = httpx.get(
                gateway.url + "/status", headers={"x-api-key": GATEWAY_KEY}, timeout=BOUND
            ).json()
    finally:
        a.set_mode(None)
    assert response.status_code == 200
    assert response.headers["x-coop-passthrough"] == "1"
    assert response.headers["x-coop-deployment"] == "claude_b/claude-sonnet-4-5"
    assert response.content == expected_bytes("claude-sonnet-4-5", stream=stream)
    assert len(anthropic_requests(a)) == 1 and len(anthropic_requests(b)) == 1
    attempts = snapshot["metrics"]["attempts"]
    failed = [k for k, v in attempts.items() if "claude_a" in k and "ok" not in v]
    assert failed, attempts


def test_usage_and_cost_reach_status(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    before = status(gw)["metrics"]["models"].get("sonnet", {})
    for stream in (False, True):
        with httpx.Client(timeout=BOUND) as http:
            response = http.post(
                gw.url + "/v1/messages",
                json={"model": "sonnet", "max_tokens": 64, "messages": USER, "stream": stream},
                headers={"x-api-key": GATEWAY_KEY},
            )
        assert response.status_code == 200
    after = status(gw)["metrics"]["models"]["sonnet"]
    assert after["requests"] - before.get("requests", 0) == 2
    # input 11 + cache writes 7 + cache reads 100, for each request
    assert after["prompt_tokens"] - before.get("prompt_tokens", 0) == 2 * 118
    assert after["completion_tokens"] - before.get("completion_tokens", 0) == 2 * 20
    cost = 2 * (118 * 3.0 + 20 * 15.0) / 1e6
    assert after["cost_usd"] - before.get("cost_usd", 0.0) == pytest.approx(cost, abs=2e-6)


# -- what keeps the translation --------------------------------------------------------------


def test_translation_where_something_needs_translating(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    a, b, up = fakes
    c = client(gw)
    for model in ("m", "pair", "mixed"):  # OpenAI upstream, a cooperation, an OpenAI fallback
        raw = c.messages.with_raw_response.create(model=model, max_tokens=32, messages=USER)  # type: ignore[arg-type]
        assert raw.headers["x-coop-passthrough"] == "0", (model, raw.headers)
        assert raw.parse().content
    hello = [{"role": "user", "content": "Hello there"}]
    raw = c.messages.with_raw_response.create(model="auto", max_tokens=32, messages=hello)  # type: ignore[arg-type]
    assert raw.headers["x-coop-model"] == "m", raw.headers  # the light tier
    assert raw.headers["x-coop-passthrough"] == "0"  # on the OpenAI upstream
    assert up.requests
    a.reset()
    b.reset()
    a.reply_fn = b.reply_fn = reply
    hard = [{"role": "user", "content": "Prove Fermat's last theorem step by step. " * 40}]
    raw = c.messages.with_raw_response.create(model="auto", max_tokens=32, messages=hard)  # type: ignore[arg-type]
    assert raw.headers["x-coop-model"] == "sonnet", raw.headers  # the Anthropic-only model
    assert raw.headers["x-coop-passthrough"] == "1"
    assert raw.http_response.content == expected_bytes("claude-sonnet-4-5", stream=False)


def test_untranslatable_blocks_are_refused_where_they_cannot_pass_through(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    content = [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]
    future = {"context_management": {"edits": []}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gw).messages.create(
            model="m",
            max_tokens=8,
            messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
            extra_body=future,
        )
    assert "context_management" in str(caught.value)
    message = client(gw).messages.create(
        model="sonnet",
        max_tokens=8,
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
        extra_body=future,
    )
    assert message.id == "msg_01PassThrough"


def test_bad_input_is_still_refused_before_the_upstream(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    with httpx.Client(timeout=BOUND) as http:
        response = http.post(
            gw.url + "/v1/messages",
            json={"model": "sonnet", "messages": USER, "future": 1},
            headers={"x-api-key": GATEWAY_KEY},
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]
    assert anthropic_requests(*fakes[:2]) == []


def test_an_upstream_400_comes_back_in_anthropics_shape(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(gw).messages.create(
            model="sonnet",
            max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "hologram"}]}],  # type: ignore[list-item]
        )
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    # coop's own summary: an upstream's error text may quote the key coop sent
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert len(anthropic_requests(*fakes[:2])) == 1  # a 400 is not retried elsewhere


def test_a_stream_cut_midway_ends_with_an_error_event(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI], gw: Gateway
) -> None:
    for fake in fakes[:2]:
        fake.set_mode(Fault.cut_stream(after_chunks=3))
    try:
        with httpx.Client(timeout=BOUND) as http:
            response = http.post(
                gw.url + "/v1/messages",
                json={"model": "sonnet", "max_tokens": 64, "messages": USER, "stream": True},
                headers={"x-api-key": GATEWAY_KEY},
            )
    finally:
        for fake in fakes[:2]:
            fake.set_mode(None)
    assert response.status_code == 200
    first = stream_events({**MESSAGE, "model": "claude-sonnet-4-5"})[0]
    assert response.content.startswith(first)  # the upstream's bytes, as far as they came
    assert response.content.endswith(b"\n\n") and b"event: error\n" in response.content
    assert b"event: message_stop" not in response.content


# -- the Python API, under asyncio and trio ------------------------------------------------


@pytest.mark.anyio
async def test_the_dispatcher_relays_bytes_with_failover(
    fakes: tuple[FakeAnthropic, FakeAnthropic, FakeOpenAI],
) -> None:
    a = fakes[0]
    a.set_mode(Fault.status(529))
    body: dict[str, Any] = {"model": "sonnet", "max_tokens": 64, "messages": USER}
    try:
        async with Dispatcher(config(*fakes), plugins=PLUGINS, health_checks=False) as dispatcher:
            plan = dispatcher.plan(parse_chat_request({"model": "sonnet", "messages": USER}))
            assert dispatcher.serves_native_messages(plan)
            whole = await dispatcher.native_messages(plan, body)
            stream = await dispatcher.native_messages(plan, {**body, "stream": True}, stream=True)
            assert stream.rest is not None
            chunks = [stream.body] + [chunk async for chunk in stream.rest]
            mixed = dispatcher.plan(parse_chat_request({"model": "mixed", "messages": USER}))
            assert not dispatcher.serves_native_messages(mixed)  # an OpenAI fallback
            with pytest.raises(ValidationError):
                await dispatcher.native_messages(mixed, {**body, "model": "mixed"})
            totals = dispatcher.engine.metrics.snapshot()["models"]["sonnet"]
    finally:
        a.set_mode(None)
    assert whole.body == expected_bytes("claude-sonnet-4-5", stream=False)
    assert b"".join(chunks) == expected_bytes("claude-sonnet-4-5", stream=True)
    assert whole.deployment == "claude_b/claude-sonnet-4-5" and whole.attempts == 2
    for result in (whole, stream):
        assert result.usage is not None and result.usage.prompt_tokens == 118
        assert result.usage.completion_tokens == 20
        assert result.cost == pytest.approx((118 * 3.0 + 20 * 15.0) / 1e6)
    assert totals["requests"] == 2 and totals["prompt_tokens"] == 2 * 118
    assert len(anthropic_requests(a)) == 1  # tried once, then the other deployment only
