"""Property-based fuzzing of the HTTP API, from OpenAI's own OpenAPI description.

Hypothesis builds chat-completion bodies from the spec's ``CreateChatCompletionRequest``
schema, then mutates them (wrong types, lone surrogates, huge numbers, deep nesting,
unknown keys), and also throws random methods, paths, headers and bytes at the
gateway. The gateway runs in-process (its ASGI app in one asyncio loop) in front of a
loopback fake upstream. Whatever arrives: no 5xx, every error in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``, and no traceback in any body.

Bounded: a fixed number of examples per property and a deadline per example, so the
whole file runs in well under a minute (``COOP_FUZZ_EXAMPLES`` raises the count).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
from coop.server import GatewayApp, create_app
from fakes import FakeOpenAI
from openapi_schema import _components
from test_gateway import PLUGINS, gateway_config

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("COOP_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms per example: a real upstream round trip stays far below
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    derandomize=True,  # the suite is reproducible; COOP_FUZZ_SEED varies it locally
)
if os.environ.get("COOP_FUZZ_SEED"):
    FUZZ = settings(FUZZ, derandomize=False)

SERVED = ["m", "big", "council", "auto"]
POST_PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/route", "/v1/cooperate"]
PATHS = [*POST_PATHS, "/v1/models", "/health", "/health/ready", "/status", "/metrics"]


# -- the gateway, in-process --------------------------------------------------------------


class Exchange:
    """One request through the ASGI app: what it sent back."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""


class Gateway:
    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(app.startup())

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Exchange:
        return self.loop.run_until_complete(
            asyncio.wait_for(self._request(method, path, body, headers or []), 30)
        )

    async def _request(
        self, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Exchange:
        out = Exchange()
        given = False
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out.status = message["status"]
                out.headers = dict(message.get("headers", []))
            else:
                out.body += message.get("body", b"")

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode("utf-8", "surrogateescape"),
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8080"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        try:
            await self.app(scope, receive, send)
        finally:
            gone.set()
        return out

    def close(self) -> None:
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with FakeOpenAI() as up:
        config = gateway_config(up, request_timeout=10, max_body_bytes=256 * 1024)
        gw = Gateway(create_app(config, plugins=PLUGINS, health_checks=False))
        try:
            yield gw
        finally:
            gw.close()


def check(exchange: Exchange, what: Any) -> None:
    """The properties every answer has, whatever was asked."""
    assert 100 <= exchange.status < 500, (exchange.status, exchange.body[:500], what)
    assert b"Traceback" not in exchange.body, (exchange.body[:500], what)
    assert b'File "' not in exchange.body, (exchange.body[:500], what)
    content_type = exchange.headers.get(b"content-type", b"")
    if exchange.status >= 400:
        assert content_type.startswith(b"application/json"), (exchange.status, what)
        body = json.loads(exchange.body)
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"], error
        assert isinstance(error["type"], str), error
        assert error["param"] is None or isinstance(error["param"], str), error
        assert error["code"] is None or isinstance(error["code"], str), error
    elif content_type.startswith(b"text/event-stream"):
        for line in exchange.body.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                json.loads(line[6:])  # every event is JSON: a chunk or an error object
    elif content_type.startswith(b"application/json"):
        json.loads(exchange.body)


# -- bodies from the OpenAPI description ------------------------------------------------------


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _components()["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def from_schema(node: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for values valid under one schema of the spec (small, depth-limited)."""
    if not isinstance(node, dict):
        return st.none()
    node = _resolve(node)
    if depth > 5:
        return st.none()
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([from_schema(n, depth + 1) for n in node[key]])
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = _resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return from_schema(merged, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**node, "type": k}, depth) for k in kind])
    if kind == "string":
        return st.text(max_size=12)
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        return st.integers(
            min_value=None if low is None else math.ceil(low),
            max_value=None if high is None else math.floor(high),
        ).filter(lambda v: abs(v) < 10**12)
    if kind == "number":
        return st.floats(
            min_value=node.get("minimum"), max_value=node.get("maximum"), allow_nan=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(node.get("items", {}), depth + 1), min_size=0, max_size=2)
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = [k for k in node.get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        return st.fixed_dictionaries(
            {k: from_schema(props[k], depth + 1) for k in required},
            optional={k: from_schema(props[k], depth + 1) for k in optional[:40]},
        )
    return st.none()


@functools.cache
def _chat_schema() -> st.SearchStrategy[Any]:
    return from_schema({"$ref": "#/components/schemas/CreateChatCompletionRequest"})


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A CreateChatCompletionRequest from the spec, naming one of the gateway's models."""
    body = draw(_chat_schema())
    body["model"] = draw(st.sampled_from(SERVED))
    if draw(st.booleans()):
        body["messages"] = [{"role": "user", "content": draw(st.text(min_size=1, max_size=20))}]
    body["stream"] = draw(st.sampled_from([False, False, True]))
    body.pop("n", None)  # n > 1 is answered with a 400 for cooperations: fine, but dull
    return body  # type: ignore[no-any-return]


HOSTILE = st.one_of(
    st.sampled_from(
        [
            "a\ud800b",
            "\udfff",
            1e308,
            -1e308,
            10**40,
            -(10**40),
            -1,
            0,
            True,
            None,
            [],
            {},
            [[[]]],
            {"a": {"b": {}}},
            "",
            "x" * 5000,
        ]
    ),
    st.text(max_size=8),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A valid body made hostile: wrong types, surrogates, huge numbers, deep nesting."""
    body = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "nested", "add", "drop", "message"]))
        keys = sorted(body)
        if how == "replace" and keys:
            body[draw(st.sampled_from(keys))] = draw(HOSTILE)
        elif how == "nested" and keys:
            value: Any = draw(HOSTILE)
            for _ in range(draw(st.integers(50, 400))):
                value = [value] if draw(st.booleans()) else {"k": value}
            body[draw(st.sampled_from(keys))] = value
        elif how == "add":
            body[draw(st.text(max_size=10))] = draw(HOSTILE)
        elif how == "drop" and keys:
            body.pop(draw(st.sampled_from(keys)))
        elif how == "message" and isinstance(body.get("messages"), list):
            body["messages"].append(
                {draw(st.sampled_from(["role", "content", "name", "x"])): draw(HOSTILE)}
            )
    text = json.dumps(body, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:  # deeper than the parser's own recursion limit
        text = text[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}"
    return text.encode("utf-8", "surrogatepass").replace(b"\xed\xa0\x80", b"\\ud800")


def _body_bytes(body: Any) -> bytes:
    # lone surrogates go out as JSON escapes, as a hostile client would send them
    return json.dumps(body, allow_nan=True).encode()


# -- the properties ---------------------------------------------------------------------


@FUZZ
@given(body=chat_bodies())
def test_valid_chat_bodies_from_the_spec(gateway: Gateway, body: dict[str, Any]) -> None:
    exchange = gateway.request(
        "POST", "/v1/chat/completions", _body_bytes(body), [(b"content-type", b"application/json")]
    )
    check(exchange, body)


@FUZZ
@given(path=st.sampled_from(POST_PATHS), body=mutated(chat_bodies()))
def test_mutated_bodies_on_every_post_endpoint(gateway: Gateway, path: str, body: bytes) -> None:
    check(gateway.request("POST", path, body, [(b"content-type", b"application/json")]), body[:300])


@st.composite
def cooperate_bodies(draw: st.DrawFn) -> bytes:
    names = st.sampled_from(["m", "big", "nope", ""])
    body: dict[str, Any] = {
        "query": draw(st.one_of(st.text(max_size=10), HOSTILE)),
        "mode": draw(st.one_of(st.sampled_from(["parallel", "sequential", "pipeline"]), HOSTILE)),
        "models": draw(st.one_of(st.lists(names, max_size=20), HOSTILE)),
        "stages": draw(
            st.one_of(
                st.lists(st.fixed_dictionaries({"model": names}, optional={"task": HOSTILE})),
                HOSTILE,
            )
        ),
        "strategy": draw(
            st.one_of(
                st.sampled_from(["voting", "weighted", "judge", "ensemble", "debate", "refine"]),
                HOSTILE,
            )
        ),
        "options": draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(
                        ["rounds", "layers", "weights", "judge", "aggregator", "threshold"]
                    ),
                    HOSTILE,
                    max_size=3,
                ),
                HOSTILE,
            )
        ),
        "quorum": draw(st.one_of(st.integers(-2, 30), HOSTILE)),
        "timeout": draw(st.one_of(st.floats(0.1, 5), HOSTILE)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=6)):
        body.pop(key, None)
    return _body_bytes(body)


@FUZZ
@given(body=cooperate_bodies())
def test_cooperate_bodies(gateway: Gateway, body: bytes) -> None:
    check(
        gateway.request("POST", "/v1/cooperate", body, [(b"content-type", b"application/json")]),
        body,
    )


HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            b"content-type",
            b"authorization",
            b"x-api-key",
            b"x-request-id",
            b"x-coop-max-cost",
            b"x-coop-max-latency",
            b"content-length",
            b"origin",
            b"sec-fetch-site",
            b"host",
        ]
    ),
    st.binary(min_size=1, max_size=12).map(bytes.lower),
)


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"]),
    path=st.one_of(st.sampled_from(PATHS), st.text(max_size=30).map(lambda p: "/" + p)),
    headers=st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=40)), max_size=6),
    body=st.one_of(st.binary(max_size=300), st.just(b"{}"), st.just(b'{"model":"m"}')),
)
def test_random_requests(
    gateway: Gateway, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    check(gateway.request(method, path, body, headers), (method, path, headers, body[:100]))
