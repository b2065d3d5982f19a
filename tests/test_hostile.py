"""Hostile input: every request a hostile or careless client can send gets a clear 4xx.

Lone surrogates, wrong types in ``/v1/cooperate``, fan-out past ``[server] max_fanout``,
a body shorter than its Content-Length, oversized headers, and a web page driving an
open loopback gateway (DNS rebinding, CSRF). Each answer is an OpenAI-shaped error
naming what was wrong, and the upstream sees nothing of a refused request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from coop.server import create_app
from fakes import FakeOpenAI
from test_gateway import (
    GATEWAY_KEYS,
    PLUGINS,
    Gateway,
    assert_error,
    assert_serving,
    chat_body,
    eventually,
    gateway_config,
    port_of,
)


@contextlib.contextmanager
def serve(config: Any) -> Iterator[Gateway]:
    """``coop serve``'s protocol (httptools, its head bound) on an ephemeral loopback port."""
    app = create_app(config, plugins=PLUGINS, health_checks=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            loop="uvloop",
            http="coop.server._serve:BoundedHttpToolsProtocol",
            h11_max_incomplete_event_size=config.server.max_header_bytes,
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started or not thread.is_alive(), "the gateway to start")
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Gateway(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def gw(up: FakeOpenAI) -> Iterator[Gateway]:
    config = gateway_config(up, body_timeout=0.5, max_header_bytes=16 * 1024)
    with serve(config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def keyed(up: FakeOpenAI) -> Iterator[Gateway]:
    with serve(gateway_config(up, api_keys=GATEWAY_KEYS)) as gateway:
        gateway.key = GATEWAY_KEYS[0]
        yield gateway


def post(gw: Gateway, path: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with gw.http() as http:
        return http.post(
            path, content=content, headers={"content-type": "application/json", **headers}
        )


# -- lone surrogates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            b'{"model":"m","messages":[{"role":"user","content":"a\\ud800b"}]}',
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"m","stream":true,"messages":[{"role":"user","content":"\\udfffx"}]}',
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"m","user":"\\ud800","messages":[{"role":"user","content":"x"}]}',
            "user",
        ),
        ("/v1/chat/completions", b'{"model":"m\\uDBFF","messages":[]}', "model"),
        ("/v1/completions", b'{"model":"m","prompt":"a\\ud800b"}', "prompt"),
        ("/v1/route", b'{"prompt":"a\\ud800b"}', "prompt"),
        ("/v1/cooperate", b'{"query":"a\\ud800b","models":["m","big"]}', "query"),
        (
            "/v1/cooperate",
            b'{"query":"q","models":["m"],"options":{"prompt\\ud800":"x"}}',
            "options.prompt?",
        ),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    gw: Gateway, up: FakeOpenAI, path: str, body: bytes, param: str
) -> None:
    before = len(up.requests)
    error = assert_error(post(gw, path, body), 400, code="invalid_encoding")
    assert error["param"] == param
    assert "surrogate" in error["message"]
    assert len(up.requests) == before


def test_a_surrogate_pair_is_an_ordinary_character(gw: Gateway) -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
    response = post(gw, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: \U0001f600"


# -- /v1/cooperate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"timeout": "x"}, "timeout"),
        ({"timeout": 1e400}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"quorum": "x"}, "quorum"),
        ({"quorum": 0}, "quorum"),
        ({"quorum": 3}, "quorum"),
        ({"quorum": True}, "quorum"),
        ({"models": "m"}, "models"),
        ({"models": [1, 2]}, "models[0]"),
        ({"models": [["m"]]}, "models[0]"),
        ({"mode": "pipeline", "models": [], "stages": "m"}, "stages"),
        ({"mode": "pipeline", "models": [], "stages": [1]}, "stages[0]"),
        ({"mode": "pipeline", "models": [], "stages": [{"model": 1}]}, "stages[0].model"),
        (
            {"mode": "pipeline", "models": [], "stages": [{"model": "m", "task": 5}]},
            "stages[0].task",
        ),
        (
            {"mode": "pipeline", "models": [], "stages": [{"model": "m", "prompt": ["x"]}]},
            "stages[0].prompt",
        ),
        ({"mode": ["parallel"]}, "mode"),
        ({"strategy": 5}, "strategy"),
        ({"strategy": "nope"}, "strategy"),
        ({"options": "x"}, "options"),
        ({"options": {"rounds": "x"}}, "options.rounds"),
        ({"options": {"weights": "x"}}, "options.weights"),
        ({"options": {"weights": {"m": "x"}}}, "options.weights.m"),
        ({"strategy": "weighted", "options": {"default_weight": "x"}}, "options.default_weight"),
        ({"strategy": "judge", "options": {"judge": 5}}, "options.judge"),
        ({"options": {"weights_file": "/etc/passwd"}}, "options.weights_file"),
        ({"options": {"majority": 5}}, "options.majority"),
        (
            {"strategy": "debate", "options": {"time_budget": "x", "rounds": 1}},
            "options.time_budget",
        ),
    ],
)
def test_cooperate_answers_wrong_types_with_a_400_naming_the_field(
    gw: Gateway, extra: dict[str, Any], param: str
) -> None:
    body = {"query": "what is 2+2?", "models": ["m", "big"], **extra}
    error = assert_error(post(gw, "/v1/cooperate", body), 400)
    assert error["param"] == param, error


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "x" * 10, "models": 5},
        {"messages": [1], "models": ["m"]},
        {"messages": {"role": "user"}, "models": ["m"]},
        {"query": 5, "models": ["m"]},
        [],
        "x",
    ],
)
def test_cooperate_answers_a_malformed_query_with_a_400(gw: Gateway, body: Any) -> None:
    assert_error(post(gw, "/v1/cooperate", body), 400)


@pytest.mark.parametrize(
    ("extra", "calls"),
    [
        ({"models": ["m"] * 1000}, 1000),
        ({"mode": "sequential", "models": ["m", "big"] * 9}, 18),
        ({"mode": "pipeline", "models": [], "stages": [{"model": "m"}] * 17}, 17),
        ({"models": ["m", "big"], "strategy": "debate", "options": {"rounds": 1000}}, 2002),
        ({"models": ["m"] * 6, "strategy": "ensemble", "options": {"layers": 3}}, 19),
        ({"models": ["m", "big"] * 4, "strategy": "debate"}, 24),
    ],
)
def test_cooperate_fanout_past_max_fanout_is_refused_before_any_call(
    gw: Gateway, up: FakeOpenAI, extra: dict[str, Any], calls: int
) -> None:
    before = len(up.requests)
    body = {"query": "what is 2+2?", **extra}
    error = assert_error(post(gw, "/v1/cooperate", body), 400, code="fanout_limit_exceeded")
    assert f"could make {calls} model calls" in error["message"]
    assert "max_fanout" in error["message"] and "16" in error["message"]
    assert len(up.requests) == before


def test_max_fanout_is_configurable(up: FakeOpenAI) -> None:
    with serve(gateway_config(up, max_fanout=2)) as small:
        body = {"query": "what is 2+2?", "models": ["m", "big"]}
        assert post(small, "/v1/cooperate", body).status_code == 200
        body["strategy"] = "judge"  # two members and the judge's call
        assert_error(post(small, "/v1/cooperate", body), 400, code="fanout_limit_exceeded")


def test_a_cooperation_within_the_bound_runs(gw: Gateway) -> None:
    body = {"query": "what is 2+2?", "models": ["m", "big"] * 8}
    response = post(gw, "/v1/cooperate", body)
    assert response.status_code == 200, response.text
    assert_serving(gw)


# -- slow bodies and big headers ------------------------------------------------------------


def _raw(gw: Gateway, data: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send ``data``, read until the gateway closes; the answer and how long it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def test_a_body_shorter_than_its_content_length_is_a_408_within_body_timeout(
    gw: Gateway,
) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: 100\r\n\r\n"
    )
    answer, took = _raw(gw, head + b'{"model":')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_timeout"
    assert "body_timeout" in body["error"]["message"]
    assert took < 3, f"held for {took:.1f}s with body_timeout = 0.5"
    assert_serving(gw)


def test_a_body_timeout_never_exceeds_request_timeout(up: FakeOpenAI) -> None:
    app = create_app(gateway_config(up, request_timeout=0.3, body_timeout=30), plugins=PLUGINS)
    assert app._body_timeout == 0.3


def test_headers_past_max_header_bytes_are_a_431(gw: Gateway) -> None:
    # one read: the application sees the whole head and refuses it before any other work
    big = b"x-filler: " + b"a" * (20 * 1024) + b"\r\n"
    head = b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n" + big + b"\r\n"
    answer, _ = _raw(gw, head)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"max_header_bytes" in answer
    assert_serving(gw)


def test_a_huge_head_is_cut_off_while_it_arrives(gw: Gateway) -> None:
    """64 MiB of headers are not read in full: the connection closes after max_header_bytes."""
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port_of(gw)), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nx-filler: ")
        chunk = b"a" * 65536
        with contextlib.suppress(OSError):
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        with contextlib.suppress(OSError):
            answer = sock.recv(65536)
    assert sent < 8 * 1024 * 1024, f"the gateway read {sent} bytes of headers"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert_serving(gw)


# -- browsers against an open loopback gateway ------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "192.168.1.5", "localhost.evil"]
)
def test_an_open_gateway_refuses_a_host_that_is_not_loopback(
    gw: Gateway, up: FakeOpenAI, host: str
) -> None:
    before = len(up.requests)
    error = assert_error(post(gw, "/v1/chat/completions", chat_body(), host=host), 421)
    assert error["code"] == "host_not_allowed" and "allowed_hosts" in error["message"]
    with gw.http() as http:
        assert http.get("/v1/models", headers={"host": host}).status_code == 421
    assert len(up.requests) == before


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:1234", "127.0.0.1:8080", "[::1]:8080"])
def test_an_open_gateway_answers_loopback_hosts(gw: Gateway, host: str) -> None:
    assert post(gw, "/v1/chat/completions", chat_body(), host=host).status_code == 200


def test_allowed_hosts_adds_names(up: FakeOpenAI) -> None:
    with serve(gateway_config(up, allowed_hosts=["coop.internal"])) as named:
        assert (
            post(named, "/v1/chat/completions", chat_body(), host="coop.internal:80").status_code
            == 200
        )
        assert post(named, "/v1/chat/completions", chat_body(), host="other").status_code == 421


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"origin": "https://evil.example"}, 403, "cross_site_request"),
        ({"origin": "null"}, 403, "cross_site_request"),
        ({"origin": "http://127.0.0.1.evil.example"}, 403, "cross_site_request"),
        ({"sec-fetch-site": "cross-site"}, 403, "cross_site_request"),
        ({"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ({"content-type": "text/plain;charset=UTF-8"}, 415, "unsupported_media_type"),
        ({"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"content-type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
    ],
)
def test_an_open_gateway_refuses_cross_site_requests(
    gw: Gateway, up: FakeOpenAI, headers: dict[str, str], status: int, code: str
) -> None:
    before = len(up.requests)
    assert_error(post(gw, "/v1/chat/completions", chat_body(), **headers), status, code=code)
    assert len(up.requests) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://localhost:3000"},
        {"origin": "http://127.0.0.1:8080"},
        {"sec-fetch-site": "same-origin"},
        {"content-type": "application/json; charset=utf-8"},
    ],
)
def test_an_open_gateway_answers_local_pages(gw: Gateway, headers: dict[str, str]) -> None:
    assert post(gw, "/v1/chat/completions", chat_body(), **headers).status_code == 200


def test_a_keyed_gateway_answers_any_host_but_still_wants_json(keyed: Gateway) -> None:
    body = chat_body()
    response = post(
        keyed, "/v1/chat/completions", body, host="gw.example", origin="https://app.example"
    )
    assert response.status_code == 200, response.text
    assert_error(post(keyed, "/v1/chat/completions", body, **{"content-type": "text/plain"}), 415)
    with httpx.Client(base_url=keyed.url) as anonymous:  # no key: 401 comes first
        response = anonymous.post(
            "/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"}
        )
    assert_error(response, 401)
