"""The gateway over real HTTP: uvicorn on a loopback port, FakeOpenAI behind it, the official SDK in front.

Each gateway runs in its own thread and event loop, so these tests drive it the same
way whether their own body runs under asyncio, trio or no loop at all. Responses and
stream chunks are checked against OpenAI's own OpenAPI schemas. Every robustness test
ends by asking the gateway for one more ordinary answer: an error must never cost the
next request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import coop
import httpx
import openai
import pytest
import uvicorn
from coop import RetryPolicy, SystemConfig, hookimpl, load_plugins
from coop.server import GatewayApp, create_app
from fakes import Answer, FakeOpenAI, Fault
from openapi_schema import validate

# -- harness ----------------------------------------------------------------------------


class FakeProvider(coop.OpenAICompatibleProvider):
    name = "fake-openai"


class _Plugin:
    @hookimpl
    def coop_register_providers(self, register: Any) -> None:
        register(FakeProvider)


PLUGINS = load_plugins(extra={"fake-openai": _Plugin()})
#: One attempt: each upstream fault reaches the client as it is, with no retry or cooldown.
ONE_SHOT = RetryPolicy(
    max_attempts=1, backoff_base=0.01, backoff_max=0.05, max_wait=1.0, base_cooldown=0.05
)
FAST = RetryPolicy(
    max_attempts=3, backoff_base=0.01, backoff_max=0.05, max_wait=1.0, base_cooldown=0.2
)
#: Two keys: a test that gets one revoked (401) or cooled (429) still has the other.
UPSTREAM_KEYS = ["sk-upstream-secret-0123456789", "sk-upstream-secret-9876543210"]
GATEWAY_KEYS = ["sk-gw-alpha-0001", "sk-gw-bravo-0002"]
BOUND = 15.0  # seconds any wait for an event may take before the test fails


def gateway_config(up: FakeOpenAI, **server: Any) -> SystemConfig:
    """Two logical models on one fake endpoint, a cooperation, and routing tiers."""
    return SystemConfig.from_dict(
        {
            "server": {"access_log": "off", "max_body_bytes": 1024 * 1024, **server},
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
            },
            "routing": {"light": "m", "reasoning": "big", "complex": "council"},
            "cooperations": {
                "council": {"mode": "parallel", "models": ["m", "big"], "strategy": "voting"}
            },
        }
    )


@dataclass
class Gateway:
    """A running gateway and the ways tests talk to it."""

    app: GatewayApp
    url: str
    key: str | None = None

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    def client(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("api_key", self.key or "unused")
        return openai.OpenAI(base_url=self.base_url, max_retries=0, timeout=BOUND, **kw)

    def aclient(self, **kw: Any) -> openai.AsyncOpenAI:
        kw.setdefault("api_key", self.key or "unused")
        return openai.AsyncOpenAI(base_url=self.base_url, max_retries=0, timeout=BOUND, **kw)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=BOUND)

    def status(self) -> dict[str, Any]:
        with self.http() as http:
            return http.get("/status").json()  # type: ignore[no-any-return]


@contextlib.contextmanager
def serve_in_thread(
    config: SystemConfig, *, retry: RetryPolicy = FAST, plugins: coop.Plugins | None = None
) -> Iterator[Gateway]:
    """uvicorn (uvloop + httptools, as ``coop serve``) on an ephemeral loopback port."""
    app = create_app(config, plugins=plugins or PLUGINS, health_checks=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, name="coop-gateway", daemon=True)
    thread.start()
    eventually(lambda: server.started or not thread.is_alive(), "the gateway to start")
    assert server.started, "the gateway did not start"
    assert app.dispatcher is not None
    app.dispatcher.engine.retry = retry
    for model in app.dispatcher.engine.models.values():
        for deployment in model.deployments:  # made at startup with the default policy
            deployment.base_cooldown = retry.base_cooldown
    port = server.servers[0].sockets[0].getsockname()[1]
    keys = config.server.resolved_api_keys()
    try:
        yield Gateway(app, f"http://127.0.0.1:{port}", keys[0] if keys else None)
    finally:
        server.should_exit = True
        thread.join(BOUND)


def eventually(condition: Callable[[], Any], what: str = "the condition") -> None:
    """Wait for ``condition()`` to hold; fail after :data:`BOUND` seconds (a hang, not a speed check)."""
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def chat_body(text: str = "hello gateway", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def assert_error(
    response: httpx.Response, status: int, *, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error with this status; returns its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validate("ErrorResponse", body)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def assert_serving(gw: Gateway) -> None:
    """The gateway still answers an ordinary request after whatever the test did to it."""
    with gw.http() as http:
        response = http.post("/v1/chat/completions", json=chat_body("still there?"))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: still there?"


def sse(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The JSON events of an SSE body and whether it ended with ``data: [DONE]``."""
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    done = bool(events) and events[-1] == "[DONE]"
    return [json.loads(e) for e in events if e != "[DONE]"], done


def raw_request(port: int, body: bytes, path: str = "/v1/chat/completions") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def port_of(gw: Gateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


# -- fixtures ---------------------------------------------------------------------------


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


# -- conformance with the official SDK ----------------------------------------------------


def test_chat_completion_with_the_sdk_is_schema_valid_and_names_model_and_deployment(
    gw: Gateway,
) -> None:
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "user", "content": "hello gateway"}],
        extra_headers={"x-request-id": "req-test-123"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-coop-model"] == "m"
    assert raw.headers["x-coop-deployment"] == "fake/gpt-4o-mini"
    assert raw.headers["x-request-id"] == "req-test-123"
    validate("CreateChatCompletionResponse", raw.http_response.json())


def test_a_request_id_is_made_when_none_or_an_unsafe_one_is_sent(gw: Gateway) -> None:
    with gw.http() as http:
        plain = http.post("/v1/chat/completions", json=chat_body())
        odd = http.post(
            "/v1/chat/completions", json=chat_body(), headers={"x-request-id": "two words"}
        )
    for response in (plain, odd):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert plain.headers["x-request-id"] != odd.headers["x-request-id"]


@pytest.mark.anyio
async def test_async_sdk_chat_and_stream(gw: Gateway) -> None:
    async with gw.aclient() as client:
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "from async land"}]
        )
        assert completion.choices[0].message.content == "echo: from async land"
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "stream it please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage: Any = None
        async for chunk in stream:
            pieces.extend(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
    assert "".join(pieces) == "echo: stream it please"
    assert usage is not None and usage.completion_tokens == 4


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_with_the_sdk(gw: Gateway, include_usage: bool) -> None:
    stream = gw.client().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
    )
    chunks = list(stream)
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert text == "echo: one two three"
    finish = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finish == ["stop"]
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    if include_usage:
        assert with_usage == [chunks[-1]], "usage comes once, in the last chunk"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3
    else:
        assert with_usage == []


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_on_the_wire_is_schema_valid_and_ends_with_done(
    gw: Gateway, include_usage: bool
) -> None:
    body = chat_body("check the wire", stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with gw.http() as http:
        response = http.post("/v1/chat/completions", json=body, headers={"x-request-id": "s-1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-coop-model"] == "m"
    assert response.headers["x-coop-deployment"] == "fake/gpt-4o-mini"
    assert response.headers["x-request-id"] == "s-1"
    chunks, done = sse(response.text)
    assert done, "a stream ends with data: [DONE]"
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        assert all(c.get("usage") is None for c in chunks[:-1])
    else:
        assert all(c.get("usage") is None for c in chunks)


def test_models_list_has_models_auto_and_cooperations(gw: Gateway) -> None:
    client = gw.client()
    ids = [model.id for model in client.models.list()]
    assert ids == ["auto", "big", "m", "council"]
    with gw.http() as http:
        validate("ListModelsResponse", http.get("/v1/models").json())


def test_auto_routes_and_says_where(gw: Gateway, up: FakeOpenAI) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-coop-model"] in {"m", "big", "council"}
    assert re.fullmatch(r"\w+/\w+", raw.headers["x-coop-route"])
    validate("CreateChatCompletionResponse", raw.http_response.json())


def test_a_cooperation_answers_and_streams_as_one_model(gw: Gateway) -> None:
    client = gw.client()
    completion = client.chat.completions.create(
        model="council", messages=[{"role": "user", "content": "agree on this"}]
    )
    assert completion.choices[0].message.content == "echo: agree on this"
    with gw.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={**chat_body("agree on this", stream=True), "model": "council"},
        )
    assert response.status_code == 200 and response.headers["x-coop-model"] == "council"
    assert response.text.startswith(": "), "progress notes go out as SSE comments"
    chunks, done = sse(response.text)
    assert done
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
        "echo: agree on this"
    )


def test_legacy_completions(gw: Gateway) -> None:
    client = gw.client()
    raw = client.completions.with_raw_response.create(model="m", prompt="say this", max_tokens=5)
    completion = raw.parse()
    assert completion.choices[0].text == "echo: say this"
    assert raw.headers["x-coop-model"] == "m"
    validate("CreateCompletionResponse", raw.http_response.json())
    stream = client.completions.create(
        model="m", prompt="say this", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.text for chunk in chunks for c in chunk.choices) == "echo: say this"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    with gw.http() as http:
        response = http.post(
            "/v1/completions", json={"model": "m", "prompt": "say this", "stream": True}
        )
    events, done = sse(response.text)
    assert done and events
    for event in events:
        # the spec has no legacy chunk schema: OpenAI streams the response shape with a
        # null finish_reason until the last chunk
        final = {**event, "choices": [{**c, "finish_reason": "stop"} for c in event["choices"]]}
        validate("CreateCompletionResponse", final)
    assert [c["finish_reason"] for e in events for c in e["choices"]][-1] == "stop"


def test_unknown_fields_are_passed_through_to_the_upstream(gw: Gateway, up: FakeOpenAI) -> None:
    gw.client().chat.completions.create(
        model="m",
        messages=[cast(Any, {"role": "user", "content": "hi", "x_message_note": [1, None]})],
        extra_body={"top_k": 3, "x_vendor": {"mode": "turbo"}, "coop": {"max_cost": 1}},
    )
    sent = up.last_request.json
    assert sent["top_k"] == 3 and sent["x_vendor"] == {"mode": "turbo"}
    assert sent["messages"][0]["x_message_note"] == [1, None]
    assert sent["model"] == "gpt-4o-mini", "the upstream gets its own model id"
    assert "coop" not in sent, "coop's own options stay in the gateway"
    assert up.last_request.api_key in UPSTREAM_KEYS


def test_route_and_cooperate_endpoints(gw: Gateway) -> None:
    with gw.http() as http:
        decision = http.post("/v1/route", json={"prompt": "what is 2+2?"})
        result = http.post(
            "/v1/cooperate",
            json={"query": "pick one", "models": ["m", "big"], "strategy": "voting"},
        )
    assert decision.status_code == 200 and decision.json()["target"] in {"m", "big", "council"}
    assert result.status_code == 200, result.text
    assert result.json()["text"] == "echo: pick one"


# -- errors raise the SDK's matching exceptions --------------------------------------------


def test_unknown_model_is_a_404_listing_the_models(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().chat.completions.create(
            model="gpt-5-ultra", messages=[{"role": "user", "content": "hi"}]
        )
    message = str(info.value)
    for name in ("auto", "big", "council", "m"):
        assert name in message
    assert info.value.code == "model_not_found" and info.value.param == "model"
    validate("ErrorResponse", info.value.response.json())
    assert_serving(gw)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_invalid_fields_are_a_400_naming_the_param(
    gw: Gateway, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gw.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    assert info.value.param == param
    assert param in str(info.value)
    validate("ErrorResponse", info.value.response.json())
    assert_serving(gw)


@pytest.mark.parametrize(
    ("fault", "status", "sdk_error", "code"),
    [
        (Fault.status(429), 429, openai.RateLimitError, "rate_limit_exceeded"),
        (Fault.status(400), 400, openai.BadRequestError, "upstream_bad_request"),
        (Fault.context_length_exceeded(), 400, openai.BadRequestError, "context_length_exceeded"),
        (Fault.status(500), 502, openai.InternalServerError, "upstream_error"),
        (Fault.status(502), 502, openai.InternalServerError, "upstream_error"),
        (Fault.status(503), 503, openai.InternalServerError, "upstream_overloaded"),
        (Fault.status(401), 502, openai.InternalServerError, "upstream_authentication_failed"),
        (Fault.status(404), 502, openai.InternalServerError, "upstream_not_found"),
        (Fault.drop(), 502, openai.InternalServerError, "upstream_error"),
        (Fault.malformed_json(), 502, openai.InternalServerError, "upstream_error"),
        (Fault.wrong_content_type(), 502, openai.InternalServerError, "upstream_error"),
    ],
    ids=lambda v: v.kind if isinstance(v, Fault) else None,
)
def test_upstream_errors_map_to_the_sdk_exception_for_their_status(
    fault: Fault, status: int, sdk_error: type[openai.APIStatusError], code: str
) -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(fault)
        with pytest.raises(sdk_error) as info:
            gw.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == status
        assert info.value.code == code
        body = info.value.response.json()
        validate("ErrorResponse", body)
        for key in UPSTREAM_KEYS:
            assert key[-4:] not in info.value.response.text, "never quote coop's own key"
        assert_serving(gw)


COMPLETE_ANSWER = (
    b'{"id": "chatcmpl-up1", "object": "chat.completion", "created": 1700000000,\n'
    b' "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_up",\n'
    b' "choices": [{"index": 0, "message": {"role": "assistant", "content": "caf\\u00e9 \xe2\x98\x95",'
    b' "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],\n'
    b' "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},'
    b' "x_vendor": {"cached": true}}'
)


def test_a_complete_upstream_answer_is_sent_byte_for_byte() -> None:
    """Nothing for coop to fill in: the client gets the upstream's bytes, spacing and
    escapes and vendor fields included, and the SDK and the schema accept them."""
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(Fault.status(200, COMPLETE_ANSWER))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body("hi"))
        assert response.status_code == 200
        assert response.content == COMPLETE_ANSWER
        assert response.headers["x-coop-model"] == "m"
        validate("CreateChatCompletionResponse", response.json())
        assert response.json()["choices"][0]["message"]["content"] == "café ☕"
        assert_serving(gw)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_complete_answer_in_another_encoding_reaches_the_client_as_utf8(encoding: str) -> None:
    answer = json.loads(COMPLETE_ANSWER)
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(Fault.status(200, json.dumps(answer).encode(encoding)))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body("hi"))
        assert response.status_code == 200, response.text
        assert response.content[:1] == b"{"
        assert json.loads(response.content.decode("utf-8")) == answer


def test_an_incomplete_upstream_answer_is_completed_to_openais_schema() -> None:
    """An upstream that leaves out ``refusal``, ``logprobs`` and ``id`` and sends a null
    ``finish_reason`` is not passed through: coop writes the fields OpenAI requires."""
    sparse = {
        "object": "chat.completion",
        "created": 1700000000,
        "model": "local-llama",
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": None}],
    }
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(Fault.status(200, sparse))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body("hi"))
        assert response.status_code == 200, response.text
        body = response.json()
        validate("CreateChatCompletionResponse", body)
        choice = body["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
        assert choice["index"] == 0 and choice["message"]["refusal"] is None
        assert body["id"].startswith("chatcmpl-") and body["model"] == "local-llama"
        assert_serving(gw)


def test_upstream_rate_limit_passes_retry_after_on() -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(Fault.rate_limited(retry_after=7))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body())
        assert_error(response, 429, code="rate_limit_exceeded")
        assert response.headers["retry-after"] == "7"


def test_upstream_timeout_is_a_504() -> None:
    with FakeOpenAI() as up:
        config = gateway_config(up)
        config.endpoints["fake"].timeout = 0.3
        with serve_in_thread(config, retry=ONE_SHOT) as gw:
            up.queue_fault(Fault.stall(None))
            with pytest.raises(openai.InternalServerError) as info:
                gw.client().chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert info.value.status_code == 504
            assert info.value.code == "upstream_timeout"
            assert_serving(gw)


@pytest.mark.parametrize(
    "fault", [Fault.error_event_mid_stream(after_chunks=2), Fault.cut_stream(after_chunks=2)]
)
def test_a_stream_failing_midway_ends_with_an_error_event_not_done(fault: Fault) -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.script("a longer answer in several pieces")
        up.queue_fault(fault)
        with pytest.raises(openai.APIError):
            for _ in gw.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                pass
        up.script("a longer answer in several pieces")
        up.queue_fault(fault)
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body(stream=True))
        assert response.status_code == 200
        events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
        assert events[-1] != "[DONE]", "a client must be able to tell a broken stream"
        validate("ErrorResponse", json.loads(events[-1]))
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", json.loads(event))
        assert_serving(gw)


def test_a_stream_failing_before_its_first_chunk_is_an_ordinary_error() -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        up.queue_fault(Fault.status(503))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body(stream=True))
        assert_error(response, 503, code="upstream_overloaded")
        assert_serving(gw)


# -- authentication -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(up: FakeOpenAI) -> Iterator[Gateway]:
    with serve_in_thread(gateway_config(up, api_keys=GATEWAY_KEYS, access_log="json")) as gw:
        yield gw


def test_bearer_keys_are_checked(secured: Gateway) -> None:
    for key in GATEWAY_KEYS:
        completion = secured.client(api_key=key).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.AuthenticationError) as info:
        secured.client(api_key="sk-gw-alpha-0002").models.list()
    assert info.value.code == "invalid_api_key"
    assert info.value.response.headers["www-authenticate"] == "Bearer"
    validate("ErrorResponse", info.value.response.json())


def test_x_api_key_header_and_missing_keys(secured: Gateway) -> None:
    with httpx.Client(base_url=secured.url, timeout=BOUND) as http:
        ok = http.get("/v1/models", headers={"x-api-key": GATEWAY_KEYS[1]})
        lower = http.get("/v1/models", headers={"authorization": f"bearer {GATEWAY_KEYS[0]}"})
        missing = http.post("/v1/chat/completions", json=chat_body())
        wrong = http.get("/v1/models", headers={"x-api-key": "nope"})
        for path in ("/status", "/metrics"):
            assert_error(http.get(path), 401, code="missing_api_key")
        assert http.get("/health").status_code == 200, "liveness needs no key"
        assert http.get("/health/ready").status_code == 200
    assert ok.status_code == 200 and lower.status_code == 200
    assert_error(missing, 401, code="missing_api_key")
    assert_error(wrong, 401, code="invalid_api_key")


def test_json_access_log_has_one_line_per_request_and_no_key(
    secured: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    with httpx.Client(base_url=secured.url, timeout=BOUND) as http:
        http.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={"authorization": f"Bearer {GATEWAY_KEYS[0]}", "x-request-id": "log-ok"},
        )
        http.get("/v1/models", headers={"x-api-key": "sk-wrong-key", "x-request-id": "log-401"})
        http.get("/health", headers={"x-request-id": "log-health"})
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    by_id = {r["request_id"]: r for r in records}
    assert len(records) == 3 and set(by_id) == {"log-ok", "log-401", "log-health"}
    assert by_id["log-ok"]["status"] == 200 and by_id["log-ok"]["model"] == "m"
    assert by_id["log-ok"]["deployment"] == "fake/gpt-4o-mini"
    assert by_id["log-401"]["status"] == 401
    assert by_id["log-health"]["path"] == "/health"
    for secret in (*GATEWAY_KEYS, "sk-wrong-key", *UPSTREAM_KEYS):
        assert secret not in err


# -- bad input: right status, OpenAI-shaped body, and the next request still served ----------


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b'{"model": "m", "messages": [', 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b"\xff\xfe\x00not utf-8", 400, "invalid_encoding", None),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "caf\xe9"}]}',
            400,
            "invalid_encoding",
            None,
        ),
        (b"[1, 2, 3]", 400, None, None),
        (b'"just a string"', 400, None, None),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json", None),
        (b'{"model": "m"}', 400, "invalid_value", "messages"),
        (b'{"model": "m", "messages": []}', 400, "invalid_value", "messages"),
        (b'{"model": "m", "messages": "hello"}', 400, "invalid_value", "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "invalid_value", "model"),
        (
            b'{"model": 5, "messages": [{"role": "user", "content": "hi"}]}',
            400,
            "invalid_value",
            "model",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user"}]}',
            400,
            "invalid_value",
            "messages[0].content",
        ),
        (
            b'{"model": "m", "messages": [{"role": "robot", "content": "x"}]}',
            400,
            "invalid_value",
            "messages[0].role",
        ),
        (
            b'{"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "m", "max_tokens": 1.5, "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_value",
            "stream",
        ),
        (
            b'{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "x"}]}',
            400,
            "invalid_value",
            "temperature",
        ),
    ],
    ids=lambda v: None if isinstance(v, bytes) else v,
)
def test_bad_bodies(
    gw: Gateway, body: bytes, status: int, code: str | None, param: str | None
) -> None:
    with gw.http() as http:
        response = http.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    error = assert_error(response, status, code=code)
    if param is not None:
        assert error["param"] == param
        assert param in error["message"]
    assert_serving(gw)


def test_bad_limits_and_legacy_fields(gw: Gateway) -> None:
    with gw.http() as http:
        cost = http.post(
            "/v1/chat/completions", json=chat_body(), headers={"x-coop-max-cost": "cheap"}
        )
        prompt = http.post("/v1/completions", json={"model": "m", "prompt": {"a": 1}})
        echo = http.post("/v1/completions", json={"model": "m", "prompt": "x", "echo": True})
    assert assert_error(cost, 400)["param"] == "max_cost"
    assert assert_error(prompt, 400)["param"] == "prompt"
    assert assert_error(echo, 400)["param"] == "echo"
    assert_serving(gw)


def test_unknown_paths_and_methods(gw: Gateway) -> None:
    with gw.http() as http:
        assert_error(http.get("/v1/nothing-here"), 404, code="not_found")
        wrong = http.get("/v1/chat/completions")
        assert_error(wrong, 405, code="method_not_allowed")
        assert wrong.headers["allow"] == "POST"
        assert_error(http.delete("/v1/models"), 405, code="method_not_allowed")
    assert_serving(gw)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_body_is_a_413(gw: Gateway, chunked: bool) -> None:
    limit = gw.app.config.server.max_body_bytes
    huge = json.dumps(chat_body("x" * (2 * limit))).encode()
    content: Any = (
        iter([huge[i : i + 65536] for i in range(0, len(huge), 65536)]) if chunked else huge
    )
    with gw.http() as http:
        response = http.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
    assert_error(response, 413, code="request_too_large")
    assert_serving(gw)


def test_a_body_just_under_the_limit_is_served(gw: Gateway, up: FakeOpenAI) -> None:
    limit = gw.app.config.server.max_body_bytes
    text = "y" * (limit - 200)
    with gw.http() as http:
        response = http.post("/v1/chat/completions", json=chat_body(text))
    assert response.status_code == 200
    assert up.last_request.json["messages"][0]["content"] == text


def test_a_client_sending_half_a_body_then_leaving(gw: Gateway) -> None:
    body = json.dumps(chat_body()).encode()
    with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=BOUND) as sock:
        sock.sendall(raw_request(port_of(gw), body)[: -len(body) // 2])
    eventually(lambda: gw.status()["in_flight"] == 0, "in-flight back to 0")
    assert_serving(gw)


# -- hang-ups cancel upstream work; timeouts bound it ----------------------------------------


def test_a_client_hanging_up_mid_stream_cancels_the_upstream_stream() -> None:
    with FakeOpenAI(chunk_delay=0.05) as up, serve_in_thread(gateway_config(up)) as gw:
        up.script(Answer(content=" ".join(["word"] * 1000)))  # 50 s if it ran to the end
        body = json.dumps(chat_body(stream=True)).encode()
        with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=BOUND) as sock:
            sock.sendall(raw_request(port_of(gw), body))
            received = b""
            while received.count(b"data: ") < 3:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")
            assert len(up.server.connections) == 1
        # the gateway closes its upstream connection (a finished stream would stay pooled)
        eventually(lambda: not up.server.connections, "the upstream connection to close")
        eventually(lambda: gw.status()["in_flight"] == 0, "in-flight back to 0")
        deployments = gw.status()["models"]["m"]
        assert deployments[0]["in_flight"] == 0
        assert_serving(gw)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_client_leaving_a_slow_request_cancels_the_upstream_call(path: str) -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up)) as gw:
        up.queue_fault(Fault.stall(None))  # the upstream says nothing until its client leaves
        payload: dict[str, Any] = chat_body()
        if path == "/v1/completions":
            payload = {"model": "m", "prompt": "slow"}
        with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=BOUND) as sock:
            sock.sendall(raw_request(port_of(gw), json.dumps(payload).encode(), path))
            eventually(lambda: up.request_count == 1, "the upstream to get the request")
            assert gw.status()["in_flight"] == 1
        eventually(lambda: not up.server.connections, "the upstream connection to close")
        eventually(lambda: gw.status()["in_flight"] == 0, "in-flight back to 0")
        assert_serving(gw)


def test_request_timeout_is_a_504_and_cancels_the_upstream_call() -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up, request_timeout=0.3)) as gw:
        up.queue_fault(Fault.stall(None))
        with pytest.raises(openai.InternalServerError) as info:
            gw.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.status_code == 504 and info.value.code == "timeout"
        validate("ErrorResponse", info.value.response.json())
        eventually(lambda: not up.server.connections, "the upstream connection to close")
        assert gw.status()["in_flight"] == 0
        assert_serving(gw)


def test_request_timeout_ends_a_stream_that_stopped_moving() -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up, request_timeout=0.5)) as gw:
        up.queue_fault(Fault.slow_stream(delay_per_chunk=30))
        with gw.http() as http:
            response = http.post("/v1/chat/completions", json=chat_body(stream=True))
        assert_error(response, 504, code="timeout")
        eventually(lambda: not up.server.connections, "the upstream connection to close")
        assert_serving(gw)


# -- health, status, metrics, and the commands that read them -------------------------------


def test_health_ready_status_and_metrics(gw: Gateway) -> None:
    assert_serving(gw)
    with gw.http() as http:
        health = http.get("/health").json()
        ready = http.get("/health/ready")
        status = http.get("/status").json()
        metrics = http.get("/metrics")
    assert health["status"] == "ok" and health["version"] == coop.__version__
    assert ready.status_code == 200 and set(ready.json()["healthy_models"]) == {"m", "big"}
    assert status["in_flight"] == 0 and status["uptime_s"] >= 0
    deployment = status["models"]["m"][0]
    for key in ("id", "state", "in_flight", "latency_ms", "error_rate"):
        assert key in deployment
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    for series in (
        "coop_uptime_seconds",
        "coop_in_flight_requests",
        'coop_requests_total{model="m"}',
        'coop_tokens_total{direction="prompt",model="m"}',
        'coop_deployment_healthy{deployment="fake/gpt-4o-mini",model="m"} 1',
    ):
        assert series in text
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_ready_is_503_when_no_deployment_is_healthy() -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up), retry=ONE_SHOT) as gw:
        assert gw.app.dispatcher is not None
        for model in gw.app.dispatcher.engine.models.values():
            for deployment in model.deployments:
                deployment.base_cooldown = 60
                for _ in range(deployment.failure_threshold):  # sustained failure opens it
                    deployment.record_failure(coop.UpstreamUnavailableError("down for the test"))
        with gw.http() as http:
            response = http.get("/health/ready")
        assert response.status_code == 503 and response.json()["healthy_models"] == []


def coop_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``coop`` command as a user runs it, in a folder with no coop.toml."""
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_coop_health_and_status_commands(secured: Gateway, tmp_path: Path) -> None:
    url, key = ["--url", secured.url], ["--api-key", GATEWAY_KEYS[0]]
    human = coop_cli("health", *url, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "live: ok" in human.stdout and "ready: ready" in human.stdout
    as_json = coop_cli("health", *url, "--json", cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["ok"] is True
    table = coop_cli("status", *url, *key, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "fake/gpt-4o-mini" in table.stdout and "in flight" in table.stdout
    data = coop_cli("status", *url, *key, "--json", cwd=tmp_path)
    assert data.returncode == 0 and set(json.loads(data.stdout)["models"]) == {"m", "big"}
    refused = coop_cli("status", *url, "--api-key", "wrong", cwd=tmp_path)
    assert refused.returncode != 0 and "401" in refused.stderr


def test_coop_health_says_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = coop_cli("health", "--url", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode != 0
    assert "cannot reach the gateway" in result.stderr
