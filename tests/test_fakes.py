"""The fake upstreams speak the real wire formats and misbehave exactly as asked.

Everything else tests provider code against these fakes, so a fake that drifts from the real
API (or a fault that does not happen) would make those tests lie.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from fakes import Answer, FakeAnthropic, FakeOpenAI, Fault, ToolCall
from openai.types.chat import ChatCompletionMessageParam

KEY = "sk-test-0123456789"
HEADERS = {"authorization": f"Bearer {KEY}"}
A_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
USER_HI = [{"role": "user", "content": "hello there"}]
SDK_HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
# One pooled client for the plain calls: a new httpx client per call costs more than the call.
HTTP = httpx.Client(timeout=5)


# --------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=[KEY]) as fake:
        yield fake
    assert fake.handler_errors == 0


@pytest.fixture
def ant() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_keys=[KEY]) as fake:
        yield fake
    assert fake.handler_errors == 0


def chat(fake: FakeOpenAI, *, timeout: float = 5.0, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": USER_HI, **body}
    return HTTP.post(
        fake.base_url + "/chat/completions", json=payload, headers=HEADERS, timeout=timeout
    )


def sse_data(lines: Iterator[str]) -> list[str]:
    """The `data:` payloads of an SSE stream, in order."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def stream_chat(fake: FakeOpenAI, **body: Any) -> list[str]:
    payload = {"model": "gpt-4o-mini", "messages": USER_HI, "stream": True, **body}
    with HTTP.stream(
        "POST", fake.base_url + "/chat/completions", json=payload, headers=HEADERS
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return sse_data(r.iter_lines())


def messages(
    fake: FakeAnthropic, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER_HI, **body}
    return HTTP.post(fake.url + "/v1/messages", json=payload, headers=headers or A_HEADERS)


def anthropic_events(fake: FakeAnthropic, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER_HI, "stream": True}
    payload.update(body)
    with HTTP.stream("POST", fake.url + "/v1/messages", json=payload, headers=A_HEADERS) as r:
        assert r.status_code == 200
        return parse_events(r.iter_lines())


def parse_events(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: ") :])))
    return out


# --------------------------------------------------------------------------- OpenAPI schemas

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "openai-openapi.yaml"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` → JSON Schema, as the spec's README warns."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="module")
def schema() -> Any:
    """validate(name, instance) against a component of OpenAI's own OpenAPI description."""
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not found")
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    with SPEC.open() as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    components = _nullable(spec["components"])

    def validate(name: str, instance: Any) -> None:
        root = {"components": components, "$ref": f"#/components/schemas/{name}"}
        jsonschema.Draft202012Validator(root).validate(instance)

    return validate


# --------------------------------------------------------------------------- FakeOpenAI: wire shapes


def test_chat_echoes_and_matches_openai_schema(up: FakeOpenAI, schema: Any) -> None:
    r = chat(up, model="gpt-4o")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    schema("CreateChatCompletionResponse", body)
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: hello there",
        "refusal": None,
        "annotations": [],
    }
    assert choice["logprobs"] is None
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 2
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == 5


def test_chat_echo_takes_last_user_message_with_parts(up: FakeOpenAI) -> None:
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    assert chat(up, messages=msgs).json()["choices"][0]["message"]["content"] == (
        "echo: look at [image]"
    )


def test_chat_stream_sequence_with_usage(up: FakeOpenAI, schema: Any) -> None:
    data = stream_chat(up, stream_options={"include_usage": True})
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    for c in chunks:
        schema("CreateChatCompletionStreamResponse", c)
        assert c["object"] == "chat.completion.chunk"
        assert c["id"] == chunks[0]["id"]
        assert c["model"] == "gpt-4o-mini"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text_chunks = [c for c in chunks[1:-2]]
    assert len(text_chunks) >= 2, "content must come in several chunks"
    assert "".join(c["choices"][0]["delta"]["content"] for c in text_chunks) == "echo: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chat_stream_without_usage(up: FakeOpenAI) -> None:
    chunks = [json.loads(d) for d in stream_chat(up)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_scripted_tool_calls(up: FakeOpenAI, schema: Any) -> None:
    calls = [ToolCall("get_weather", {"city": "Paris"}, id="call_1"), ToolCall("now", "{}")]
    up.script(Answer(tool_calls=calls))
    body = chat(up).json()
    schema("CreateChatCompletionResponse", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    tc = choice["message"]["tool_calls"]
    assert tc[0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert tc[1]["id"].startswith("call_")
    assert tc[1]["function"] == {"name": "now", "arguments": "{}"}


def test_streamed_tool_call_deltas(up: FakeOpenAI, schema: Any) -> None:
    args = {"city": "Paris", "unit": "celsius", "days": 3}
    up.script(Answer(tool_calls=[ToolCall("a", args), ToolCall("b", {"x": [1, 2]})]))
    chunks = [json.loads(d) for d in stream_chat(up)[:-1]]
    for c in chunks:
        schema("CreateChatCompletionStreamResponse", c)
    calls: dict[int, dict[str, str]] = {}
    pieces = 0
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls", []):
            slot = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
            if "id" in tc:
                slot["id"] = tc["id"]
            fn = tc.get("function", {})
            slot["name"] += fn.get("name", "")
            slot["arguments"] += fn.get("arguments", "")
            pieces += 1
    assert [calls[i]["name"] for i in sorted(calls)] == ["a", "b"]
    assert json.loads(calls[0]["arguments"]) == args
    assert json.loads(calls[1]["arguments"]) == {"x": [1, 2]}
    assert pieces >= 6, "arguments must be split across several deltas"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_reasoning_content_deepseek_style(up: FakeOpenAI) -> None:
    up.script(Answer(content="42", reasoning="think it through"), Answer("x", reasoning="hmm ok"))
    msg = chat(up).json()["choices"][0]["message"]
    assert msg["reasoning_content"] == "think it through"
    assert msg["content"] == "42"
    chunks = [json.loads(d) for d in stream_chat(up)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "hmm ok"
    assert "".join(d.get("content") or "" for d in deltas) == "x"
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    assert last_reasoning < first_content


def test_scripts_are_fifo_and_filter_by_model(up: FakeOpenAI) -> None:
    up.script("for b", model="b")
    up.script("one", "two")
    content = [
        chat(up, model=m).json()["choices"][0]["message"]["content"] for m in ("a", "a", "a", "b")
    ]
    assert content == ["one", "two", "echo: hello there", "for b"]
    up.answer_fn = lambda req: f"n={len(req['messages'])}"
    assert chat(up).json()["choices"][0]["message"]["content"] == "n=1"


def test_max_tokens_and_stop(up: FakeOpenAI) -> None:
    up.script("one two three four five")
    c = chat(up, max_tokens=2).json()
    assert c["choices"][0]["message"]["content"] == "one two"
    assert c["choices"][0]["finish_reason"] == "length"
    assert c["usage"]["completion_tokens"] == 2
    up.script("one two three four five")
    c = chat(up, stop=[" three"]).json()
    assert c["choices"][0]["message"]["content"] == "one two"
    assert c["choices"][0]["finish_reason"] == "stop"


def test_legacy_completions(up: FakeOpenAI, schema: Any) -> None:
    url = up.base_url + "/completions"
    body = HTTP.post(url, json={"model": "m", "prompt": "say hi"}, headers=HEADERS).json()
    schema("CreateCompletionResponse", body)
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "echo: say hi"
    payload = {"model": "m", "prompt": "say hi", "stream": True}
    with HTTP.stream("POST", url, json=payload, headers=HEADERS) as r:
        data = sse_data(r.iter_lines())
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "echo: say hi"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_models(up: FakeOpenAI, schema: Any) -> None:
    body = HTTP.get(up.base_url + "/models", headers=HEADERS).json()
    schema("ListModelsResponse", body)
    assert [m["id"] for m in body["data"]] == ["gpt-4o-mini", "gpt-4o"]
    one = HTTP.get(up.base_url + "/models/gpt-4o", headers=HEADERS).json()
    assert one["id"] == "gpt-4o"
    missing = HTTP.get(up.base_url + "/models/nope", headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_paths_without_v1_prefix_work(up: FakeOpenAI) -> None:
    r = HTTP.post(
        up.url + "/chat/completions", json={"model": "m", "messages": USER_HI}, headers=HEADERS
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        ({"messages": USER_HI}, 400, None, None),
        ({"model": "m"}, 400, "missing_required_parameter", "messages"),
        ({"model": "m", "messages": []}, 400, None, "messages"),
    ],
)
def test_request_validation(
    up: FakeOpenAI,
    schema: Any,
    payload: dict[str, Any],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    r = HTTP.post(up.base_url + "/chat/completions", json=payload, headers=HEADERS)
    assert r.status_code == status
    schema("ErrorResponse", r.json())
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["param"] == param


def test_bad_json_unknown_path_and_strict_models(up: FakeOpenAI) -> None:
    r = HTTP.post(up.base_url + "/chat/completions", content=b"{nope", headers=HEADERS)
    assert r.status_code == 400
    assert "could not parse the JSON body" in r.json()["error"]["message"]
    r = HTTP.post(up.base_url + "/nothing", json={}, headers=HEADERS)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (POST /v1/nothing)"
    up.strict_models = True
    r = chat(up, model="gpt-9")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- FakeOpenAI: auth


def test_auth_missing_wrong_revoked_and_added_keys(up: FakeOpenAI, schema: Any) -> None:
    url = up.base_url + "/chat/completions"
    payload = {"model": "m", "messages": USER_HI}
    r = HTTP.post(url, json=payload)
    assert r.status_code == 401
    schema("ErrorResponse", r.json())
    assert "didn't provide an API key" in r.json()["error"]["message"]
    r = HTTP.post(url, json=payload, headers={"authorization": "Bearer sk-wrong-key-123"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert chat(up).status_code == 200
    up.revoke_key(KEY)
    assert chat(up).status_code == 401
    up.add_key(KEY)
    assert chat(up).status_code == 200
    assert up.pending_faults == 0


def test_rate_limited_key(up: FakeOpenAI) -> None:
    up.add_key("sk-other")
    up.rate_limit_key(KEY, retry_after=3)
    r = chat(up)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    other = HTTP.post(
        up.base_url + "/chat/completions",
        json={"model": "m", "messages": USER_HI},
        headers={"authorization": "Bearer sk-other"},
    )
    assert other.status_code == 200
    up.clear_rate_limit(KEY)
    assert chat(up).status_code == 200


def test_no_keys_configured_accepts_anything() -> None:
    with FakeOpenAI() as fake:
        r = HTTP.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": USER_HI})
        assert r.status_code == 200
        assert fake.last_request.api_key is None


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "status", "err_type", "code"),
    [
        (Fault.status(500), 500, "server_error", None),
        (Fault.status(503), 503, "server_error", None),
        (Fault.status(429), 429, "requests", "rate_limit_exceeded"),
        (Fault.context_length_exceeded(), 400, "invalid_request_error", "context_length_exceeded"),
    ],
)
def test_status_faults_have_openai_error_shape(
    up: FakeOpenAI, schema: Any, fault: Fault, status: int, err_type: str, code: str | None
) -> None:
    up.queue_fault(fault)
    r = chat(up)
    assert r.status_code == status
    schema("ErrorResponse", r.json())
    assert r.json()["error"]["type"] == err_type
    assert r.json()["error"]["code"] == code
    assert chat(up).status_code == 200, "a queued fault strikes once"


def test_rate_limited_fault_and_custom_status(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.rate_limited(retry_after=2))
    up.queue_fault(Fault.status(418, {"teapot": True}, {"X-Extra": "yes"}))
    up.queue_fault(Fault.status(502, "<html>bad gateway</html>", {"content-type": "text/html"}))
    r = chat(up)
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    r = chat(up)
    assert (r.status_code, r.json(), r.headers["x-extra"]) == (418, {"teapot": True}, "yes")
    r = chat(up)
    assert (r.status_code, r.headers["content-type"], r.text) == (
        502,
        "text/html",
        "<html>bad gateway</html>",
    )


def test_drop_closes_without_answer(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        chat(up)
    assert chat(up).status_code == 200


def test_stall_says_nothing_until_client_times_out(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.stall())
    with pytest.raises(httpx.ReadTimeout):
        chat(up, timeout=0.3)
    assert chat(up).status_code == 200
    up.queue_fault(Fault.stall(0.05))
    with pytest.raises(httpx.RemoteProtocolError):
        chat(up)


def test_cut_stream_ends_without_done(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.cut_stream(after_chunks=3))
    got: list[str] = []
    payload = {"model": "m", "messages": USER_HI, "stream": True}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        HTTP.stream("POST", up.base_url + "/chat/completions", json=payload, headers=HEADERS) as r,
    ):
        for line in r.iter_lines():
            got.extend(sse_data(iter([line])))
    assert len(got) == 3
    assert "[DONE]" not in got
    up.queue_fault(Fault.cut_stream())
    with pytest.raises(httpx.RemoteProtocolError):
        chat(up)


def test_malformed_json(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.malformed_json(), times=2)
    r = chat(up)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    data = stream_chat(up)
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[1])
    assert data[-1] == "[DONE]"


def test_wrong_content_type(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.wrong_content_type())
    r = chat(up)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<html>")


def test_error_event_mid_stream(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.error_event_mid_stream(after_chunks=2))
    data = stream_chat(up)
    assert len(data) == 3
    assert "[DONE]" not in data
    assert json.loads(data[1])["choices"][0]["delta"]["content"]
    err = json.loads(data[2])["error"]
    assert err["type"] == "server_error"
    assert set(err) == {"message", "type", "param", "code"}
    up.queue_fault(
        Fault.error_event_mid_stream(
            1, {"message": "boom", "type": "x", "param": None, "code": "c"}
        )
    )
    assert json.loads(stream_chat(up)[1])["error"]["message"] == "boom"


def test_slow_stream_and_delay(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.slow_stream(0.03))
    t0 = time.monotonic()
    data = stream_chat(up)
    assert time.monotonic() - t0 >= 0.03 * len(data) * 0.9
    up.queue_fault(Fault.delay(0.2))
    t0 = time.monotonic()
    assert chat(up).status_code == 200
    assert time.monotonic() - t0 >= 0.19


def test_latency_does_not_block_other_requests(up: FakeOpenAI) -> None:
    up.latency = 0.3
    results: list[int] = []

    def one() -> None:
        results.append(chat(up).status_code)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert results == [200] * 8
    assert 0.3 <= elapsed < 1.5, "eight 0.3 s answers in parallel, not in series (2.4 s)"


def test_fault_queue_order_times_and_filters(up: FakeOpenAI) -> None:
    up.queue_fault(Fault.status(500), times=2)
    up.queue_fault(Fault.status(503))
    up.queue_fault(Fault.status(502), model="b")
    up.queue_fault(Fault.status(404), path="/v1/models")
    assert up.pending_faults == 5
    assert [chat(up, model="a").status_code for _ in range(4)] == [500, 500, 503, 200]
    assert chat(up, model="b").status_code == 502
    assert HTTP.get(up.base_url + "/models", headers=HEADERS).status_code == 404
    assert up.pending_faults == 0
    assert [r.fault.status_code if r.fault else None for r in up.requests] == [
        500, 500, 503, None, 502, 404,
    ]  # fmt: skip


def test_standing_modes(up: FakeOpenAI) -> None:
    up.set_mode(Fault.status(503), model="a")
    up.queue_fault(Fault.status(500), model="a")
    assert [chat(up, model="a").status_code for _ in range(3)] == [500, 503, 503]
    assert chat(up, model="b").status_code == 200
    up.set_mode(Fault.status(429))
    assert chat(up, model="b").status_code == 429
    up.set_mode(None, model="a")
    up.set_mode(None)
    assert chat(up, model="a").status_code == 200
    up.set_mode(Fault.drop())
    up.clear_faults()
    assert chat(up).status_code == 200


# --------------------------------------------------------------------------- recording, HTTP details


def test_records_requests_and_resets(up: FakeOpenAI) -> None:
    chat(up, model="gpt-4o", temperature=0.5)
    rec = up.last_request
    assert (rec.method, rec.path, rec.model, rec.api_key) == (
        "POST",
        "/v1/chat/completions",
        "gpt-4o",
        KEY,
    )
    assert rec.json["temperature"] == 0.5
    assert rec.headers["content-type"] == "application/json"
    assert json.loads(rec.body) == rec.json
    up.revoke_key(KEY)
    up.latency = 1.0
    up.queue_fault(Fault.drop())
    up.reset()
    assert up.requests == []
    assert up.request_count == 0
    assert up.pending_faults == 0
    assert up.latency == 0.0
    assert chat(up).status_code == 200, "reset restores the keys the fake was built with"


def test_counts_are_thread_safe(up: FakeOpenAI) -> None:
    def work() -> None:
        with httpx.Client(headers=HEADERS) as client:
            for _ in range(25):
                client.post(
                    up.base_url + "/chat/completions", json={"model": "m", "messages": USER_HI}
                )

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert up.request_count == 100
    assert len(up.requests) == 100


def test_keep_alive_and_chunked_request_body(up: FakeOpenAI) -> None:
    with httpx.Client(headers=HEADERS) as client:
        for _ in range(20):
            client.post(up.base_url + "/chat/completions", json={"model": "m", "messages": USER_HI})

        def body() -> Iterator[bytes]:
            raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "in chunks"}]})
            for i in range(0, len(raw), 7):
                yield raw[i : i + 7].encode()

        r = client.post(up.base_url + "/chat/completions", content=body())
    assert up.connections_opened == 1
    assert up.last_request.headers["transfer-encoding"] == "chunked"
    assert r.json()["choices"][0]["message"]["content"] == "echo: in chunks"


def test_pipelined_requests_and_connection_close(up: FakeOpenAI) -> None:
    body = json.dumps({"model": "m", "messages": USER_HI}).encode()
    req = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
        + KEY.encode()
        + b"\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    last = req.replace(b"host: x\r\n", b"host: x\r\nconnection: close\r\n")
    with socket.create_connection(("127.0.0.1", up.port)) as s:
        s.sendall(req + req + last)
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.count(b'"echo: hello there"') == 3
    assert b"connection: close" in data


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_split_writes_mid_line_still_parse(schema: Any) -> None:
    """SSE events cut into 5-byte writes (mid-line, mid-UTF-8) still make the same stream."""
    msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "héllo 世界世界世界 ok"}]
    with FakeOpenAI(write_size=5) as fake:
        payload = {"model": "m", "messages": msgs, "stream": True}
        with HTTP.stream("POST", fake.base_url + "/chat/completions", json=payload) as r:
            raw = list(r.iter_raw())
        assert len(raw) > 50
        assert any(not piece.endswith(b"\n") for piece in raw)
        assert any(not _is_utf8(piece) for piece in raw), "a write should split a character"
        lines = b"".join(raw).decode().splitlines()
        chunks = [json.loads(d) for d in sse_data(iter(lines))[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "echo: héllo 世界世界世界 ok"
        client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=msgs, stream=True)
        assert (
            "".join(c.choices[0].delta.content or "" for c in stream)
            == "echo: héllo 世界世界世界 ok"
        )
        assert fake.handler_errors == 0


def test_close_delimited_stream() -> None:
    with FakeOpenAI(chunked=False) as fake:
        payload = {"model": "m", "messages": USER_HI, "stream": True}
        with HTTP.stream("POST", fake.base_url + "/chat/completions", json=payload) as r:
            assert "transfer-encoding" not in r.headers
            assert r.headers["connection"] == "close"
            data = sse_data(r.iter_lines())
        assert data[-1] == "[DONE]"


def test_stop_refuses_connections_and_restart_reuses_port() -> None:
    fake = FakeOpenAI().start()
    port = fake.port
    fake.stop()
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        HTTP.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})
    with fake:
        assert fake.port == port
        assert HTTP.get(fake.base_url + "/models").status_code == 200


def test_stop_while_stalled_is_clean() -> None:
    fake = FakeOpenAI().start()
    fake.set_mode(Fault.stall())
    errors: list[BaseException] = []

    def call() -> None:
        try:
            HTTP.post(
                fake.base_url + "/chat/completions",
                json={"model": "m", "messages": USER_HI},
                timeout=5,
            )
        except httpx.HTTPError as e:
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    while fake.request_count == 0:
        time.sleep(0.01)
    fake.stop()
    t.join(5)
    assert len(errors) == 1


# --------------------------------------------------------------------------- the openai SDK against FakeOpenAI


def test_openai_sdk_sync(up: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=up.base_url, api_key=KEY, max_retries=0)
    resp = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hey"}]
    )
    assert resp.choices[0].message.content == "echo: hey"
    assert resp.model == "gpt-4o"
    assert resp.usage is not None and resp.usage.total_tokens == 3
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hey you"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hey you"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o"]
    up.script(Answer(tool_calls=[ToolCall("lookup", {"q": "x"})]))
    msg = client.chat.completions.create(model="m", messages=SDK_HI).choices[0].message
    assert msg.tool_calls is not None
    call = msg.tool_calls[0]
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"q": "x"}


def test_openai_sdk_maps_fault_errors(up: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=up.base_url, api_key=KEY, max_retries=0, timeout=0.5)
    up.queue_fault(Fault.rate_limited())
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=SDK_HI)
    up.queue_fault(Fault.context_length_exceeded())
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=SDK_HI)
    assert bad.value.code == "context_length_exceeded"
    up.queue_fault(Fault.status(503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=SDK_HI)
    up.queue_fault(Fault.stall())
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=SDK_HI)
    up.queue_fault(Fault.error_event_mid_stream(2))
    stream = client.chat.completions.create(model="m", messages=SDK_HI, stream=True)
    with pytest.raises(openai.APIError):
        list(stream)
    bad_key = openai.OpenAI(base_url=up.base_url, api_key="sk-nope-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.chat.completions.create(model="m", messages=SDK_HI)


@pytest.mark.anyio
async def test_openai_async_sdk_under_any_backend(up: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=up.base_url, api_key=KEY, max_retries=0)
    try:
        resp = await client.chat.completions.create(model="m", messages=SDK_HI)
        assert resp.choices[0].message.content == "echo: hello there"
        stream = await client.chat.completions.create(model="m", messages=SDK_HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == "echo: hello there"
    finally:
        await client.close()


@pytest.mark.anyio
async def test_httpx_async_faults_under_any_backend(up: FakeOpenAI) -> None:
    up.latency = 0.2
    async with httpx.AsyncClient(base_url=up.base_url, headers=HEADERS) as client:
        payload = {"model": "m", "messages": USER_HI}
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await client.post("/chat/completions", json=payload)).status_code)

        with anyio.fail_after(2.0):
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
        assert statuses == [200] * 6
        up.queue_fault(Fault.cut_stream(2))
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream(
                "POST", "/chat/completions", json={**payload, "stream": True}
            ) as r:
                async for _ in r.aiter_lines():
                    pass
        up.queue_fault(Fault.drop())
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/chat/completions", json=payload)


# --------------------------------------------------------------------------- FakeAnthropic


def test_anthropic_message_shape(ant: FakeAnthropic) -> None:
    r = messages(ant, system="be kind")
    assert r.status_code == 200
    assert r.headers["request-id"].startswith("req_")
    body = r.json()
    assert body["id"].startswith("msg_")
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-sonnet-4-5"
    assert body["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 4
    assert body["usage"]["output_tokens"] == 3


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"model": None}, "model: Field required"),
        ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "Input tag 'image_url'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}],
                    }
                ]
            },
            "unexpected `tool_use_id`",
        ),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": [{"name": "f", "parameters": {}}]}, "input_schema: Field required"),
        ({"system": [{"type": "image"}]}, "system:"),
    ],
)
def test_anthropic_validation(ant: FakeAnthropic, change: dict[str, Any], fragment: str) -> None:
    payload: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER_HI}
    for k, v in change.items():
        if v is None:
            payload.pop(k)
        else:
            payload[k] = v
    r = HTTP.post(ant.url + "/v1/messages", json=payload, headers=A_HEADERS)
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert fragment in body["error"]["message"]


def test_anthropic_headers_and_auth(ant: FakeAnthropic) -> None:
    r = messages(ant, headers={"x-api-key": KEY})
    assert r.status_code == 400
    assert "anthropic-version" in r.json()["error"]["message"]
    r = messages(ant, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    ant.revoke_key(KEY)
    r = messages(ant)
    assert (r.status_code, r.json()["error"]["type"]) == (401, "authentication_error")
    ant.add_key(KEY)
    ant.rate_limit_key(KEY, retry_after=5)
    r = messages(ant)
    assert (r.status_code, r.json()["error"]["type"], r.headers["retry-after"]) == (
        429,
        "rate_limit_error",
        "5",
    )


@pytest.mark.parametrize(
    ("fault", "status", "err_type"),
    [
        (Fault.status(529), 529, "overloaded_error"),
        (Fault.status(500), 500, "api_error"),
        (Fault.rate_limited(), 429, "rate_limit_error"),
        (Fault.context_length_exceeded(), 400, "invalid_request_error"),
    ],
)
def test_anthropic_status_faults(
    ant: FakeAnthropic, fault: Fault, status: int, err_type: str
) -> None:
    ant.queue_fault(fault)
    r = messages(ant)
    assert r.status_code == status
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == err_type
    assert messages(ant).status_code == 200


def test_anthropic_stream_event_order(ant: FakeAnthropic) -> None:
    events = anthropic_events(ant)
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(d["type"] == n for n, d in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "echo: hello there"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3


def test_anthropic_tool_use_stream_and_message(ant: FakeAnthropic) -> None:
    args = {"location": "San Francisco, CA", "unit": "fahrenheit"}
    ant.script(Answer("Let me check.", tool_calls=[ToolCall("get_weather", args, id="toolu_1")]))
    body = messages(ant, tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]).json()
    assert body["stop_reason"] == "tool_use"
    assert body["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": args},
    ]
    ant.script(Answer(tool_calls=[ToolCall("get_weather", args)]))
    events = anthropic_events(ant)
    starts = [d for n, d in events if n == "content_block_start"]
    assert starts[0]["content_block"]["type"] == "tool_use"
    assert starts[0]["content_block"]["id"].startswith("toolu_")
    assert starts[0]["content_block"]["input"] == {}
    partial = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert all(
        d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta"
    )
    assert len([p for p in partial if p]) >= 2
    assert json.loads("".join(partial)) == args
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_tool_result_echo_matches_openai(ant: FakeAnthropic, up: FakeOpenAI) -> None:
    a_msgs = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21C"}],
        },
    ]
    text = messages(ant, messages=a_msgs).json()["content"][0]["text"]
    assert "sunny, 21C" in text
    o_msgs = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny, 21C"},
    ]
    assert chat(up, messages=o_msgs).json()["choices"][0]["message"]["content"] == text
    missing = [*a_msgs[:2], {"role": "user", "content": "forgot the result"}]
    r = messages(ant, messages=missing)
    assert r.status_code == 400
    assert "without `tool_result`" in r.json()["error"]["message"]


def test_anthropic_stop_sequences_max_tokens_and_thinking(ant: FakeAnthropic) -> None:
    ant.script("alpha beta END gamma")
    body = messages(ant, stop_sequences=["END"]).json()
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")
    assert body["content"][0]["text"] == "alpha beta "
    ant.script("one two three")
    body = messages(ant, max_tokens=2).json()
    assert (body["stop_reason"], body["content"][0]["text"]) == ("max_tokens", "one two")
    ant.script(Answer("42", reasoning="let me think"))
    body = messages(ant).json()
    assert body["content"][0] == {
        "type": "thinking",
        "thinking": "let me think",
        "signature": "fake-signature",
    }
    ant.script(Answer("42", reasoning="let me think"))
    deltas = [d["delta"]["type"] for n, d in anthropic_events(ant) if n == "content_block_delta"]
    assert (
        deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "text_delta"
    )


def test_anthropic_error_event_and_cut_stream(ant: FakeAnthropic) -> None:
    ant.queue_fault(Fault.error_event_mid_stream(after_chunks=3))
    events = anthropic_events(ant)
    assert [n for n, _ in events] == ["message_start", "content_block_start", "ping", "error"]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    ant.queue_fault(Fault.cut_stream(2))
    with pytest.raises(httpx.RemoteProtocolError):
        anthropic_events(ant)


def test_anthropic_count_tokens_and_models(ant: FakeAnthropic) -> None:
    r = HTTP.post(
        ant.url + "/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-5", "messages": USER_HI, "system": "a b"},
        headers=A_HEADERS,
    )
    assert r.json() == {"input_tokens": 4}
    models = HTTP.get(ant.url + "/v1/models", headers=A_HEADERS).json()
    assert [m["id"] for m in models["data"]] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert models["has_more"] is False


@pytest.mark.anyio
async def test_anthropic_stream_under_any_backend(ant: FakeAnthropic) -> None:
    payload = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": USER_HI, "stream": True}
    async with (
        httpx.AsyncClient(base_url=ant.url, headers=A_HEADERS) as client,
        client.stream("POST", "/v1/messages", json=payload) as r,
    ):
        lines = [line async for line in r.aiter_lines()]
    names = [n for n, _ in parse_events(iter(lines))]
    assert names[0] == "message_start" and names[-1] == "message_stop"


# --------------------------------------------------------------------------- command line


def test_command_line_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [
        sys.executable,
        "-m",
        "fakes",
        "openai",
        "--port",
        "0",
        "--latency-ms",
        "10",
        "--models",
        "a,b",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert [m["id"] for m in HTTP.get(url + "/v1/models").json()["data"]] == ["a", "b"]
        r = HTTP.post(url + "/v1/chat/completions", json={"model": "a", "messages": USER_HI})
        assert r.json()["choices"][0]["message"]["content"] == "echo: hello there"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "served 2 requests" in err
