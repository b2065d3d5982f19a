"""OpenTelemetry tracing: spans of real requests through the gateway, in the SDK's memory.

uvicorn on loopback with the official openai SDK as client and a fake OpenAI upstream
(asyncio), and the bare ASGI app inside the test's event loop (asyncio and trio), with
``[monitoring] tracing = true`` and ``tracing_exporter = "none"``: coop's spans go to
the process's global tracer provider, which this module points at an
``InMemorySpanExporter``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from coop import ConfigError, SystemConfig
from coop.server import create_app
from fakes import FakeOpenAI, Fault
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_gateway import GATEWAY_KEYS, PLUGINS, UPSTREAM_KEYS, eventually, serve_in_thread
from test_gateway_asgi import Client, call

EXPORTER = InMemorySpanExporter()
SECRETS = [*UPSTREAM_KEYS, *GATEWAY_KEYS]
#: A prompt the rules router sends to the complex tier (the council).
COMPLEX = (
    "Write a comprehensive analysis comparing the long-term economic impacts of remote "
    "work on urban real estate markets, labor productivity, and regional inequality, "
    "with recommendations for policymakers."
)


@pytest.fixture(scope="module", autouse=True)
def _memory_exporter() -> Iterator[None]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    processor = SimpleSpanProcessor(EXPORTER)
    provider.add_span_processor(processor)  # type: ignore[attr-defined]
    yield
    processor.shutdown()  # keeps the exporter from collecting other modules' spans


@pytest.fixture(autouse=True)
def _fresh() -> None:
    EXPORTER.clear()


def traced_config(up: FakeOpenAI, *, tracing: bool = True, **server: Any) -> SystemConfig:
    """Two models on a fake endpoint (``m`` falls back to ``big``), routing, a council."""
    return SystemConfig.from_dict(
        {
            "server": {"access_log": "off", "api_keys": GATEWAY_KEYS, **server},
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
                "e": {"endpoint": "fake", "path": "gpt-4o-mini", "kind": "embedding"},
                "m_or_big": {
                    "endpoint": "fake",
                    "path": "gpt-4o-mini",
                    "tier": "light",
                    "fallbacks": ["big"],
                },
            },
            "routing": {"light": "m", "reasoning": "big", "complex": "council"},
            "cooperations": {
                "council": {"mode": "parallel", "models": ["m", "big"], "strategy": "voting"}
            },
            "monitoring": {"tracing": tracing, "tracing_exporter": "none"},
        }
    )


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "up" in request.fixturenames:
        request.getfixturevalue("up").reset()


@pytest.fixture(scope="module")
def gw(up: FakeOpenAI) -> Iterator[Any]:
    with serve_in_thread(traced_config(up)) as gateway:
        yield gateway


# -- reading a trace ---------------------------------------------------------------------------


def finished(servers: int = 1) -> list[ReadableSpan]:
    """Every span once ``servers`` SERVER spans ended (a server span ends after its answer)."""
    eventually(
        lambda: sum(s.kind == SpanKind.SERVER for s in EXPORTER.get_finished_spans()) >= servers,
        "the request's server span",
    )
    return list(EXPORTER.get_finished_spans())


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: (s.start_time or 0, s.name),
    )


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def tree(spans: list[ReadableSpan], root: ReadableSpan) -> list[Any]:
    """``[name, [children...]]``: the shape of a trace, to compare whole (children by name)."""
    return [root.name, sorted(tree(spans, child) for child in children(spans, root))]


def assert_no_secret(spans: list[ReadableSpan]) -> None:
    for span in spans:
        texts = [span.name, json.dumps(dict(span.attributes or {})), span.status.description or ""]
        texts += [json.dumps(dict(e.attributes or {})) for e in span.events]
        for text in texts:
            for secret in SECRETS:
                assert secret not in text, f"{secret!r} in span {span.name!r}: {text}"


# -- requests through the gateway (uvicorn, the openai SDK) --------------------------------------


def test_a_chat_request_is_a_server_span_a_model_span_and_a_client_span(
    up: FakeOpenAI, gw: Any
) -> None:
    reply = gw.client().chat.completions.create(
        model="big",
        messages=[{"role": "user", "content": "trace me"}],
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
    )
    spans = finished()
    server = only(spans, "POST /v1/chat/completions")
    assert server.parent is None and server.kind == SpanKind.SERVER
    assert tree(spans, server) == [
        "POST /v1/chat/completions",
        [["chat big", [["chat gpt-4o", []]]]],
    ]
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["coop.model"] == "big"
    assert server.attributes["coop.deployment"] == "fake/gpt-4o"

    model = only(spans, "chat big")
    assert model.kind == SpanKind.INTERNAL
    attempt = only(spans, "chat gpt-4o")
    assert attempt.kind == SpanKind.CLIENT
    assert reply.usage is not None
    for span, requested in ((model, "big"), (attempt, "gpt-4o")):
        attributes = span.attributes or {}
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == requested
        assert attributes["gen_ai.provider.name"] == "fake-openai"
        assert attributes["gen_ai.system"] == "fake-openai"
        assert attributes["gen_ai.response.model"] == "gpt-4o"
        assert attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
        assert attributes["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
        assert attributes["gen_ai.request.temperature"] == 0.2
        assert attributes["gen_ai.request.max_tokens"] == 50
        assert attributes["gen_ai.request.top_p"] == 0.9
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert span.status.status_code == StatusCode.UNSET
    assert model.attributes["coop.attempts"] == 1
    assert attempt.attributes["coop.attempt"] == 1
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["server.port"] == up.port
    assert attempt.attributes["coop.deployment"] == "fake/gpt-4o"
    assert_no_secret(spans)


def test_an_auto_request_has_a_route_span_with_the_decision(gw: Any) -> None:
    reply = gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    spans = finished()
    server = only(spans, "POST /v1/chat/completions")
    assert tree(spans, server) == [
        "POST /v1/chat/completions",
        [["route", [["chat m", [["chat gpt-4o-mini", []]]]]]],
    ]
    route = only(spans, "route").attributes or {}
    assert route["coop.route.tier"] == "light"
    assert route["coop.route.target"] == "m" and route["coop.route.target_kind"] == "model"
    assert route["coop.route.answered_by"] == "m"
    assert route["coop.route.task"] and route["coop.route.reason"]
    assert route["coop.route.router"] == "rules"
    assert reply.headers["x-coop-model"] == "m"
    assert only(spans, "chat m").attributes["gen_ai.usage.output_tokens"] > 0


def test_a_streamed_auto_request_is_traced_to_its_end(gw: Any) -> None:
    stream = gw.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
    spans = finished()
    server = only(spans, "POST /v1/chat/completions")
    assert tree(spans, server) == [
        "POST /v1/chat/completions",
        [["route", [["chat m", [["chat gpt-4o-mini", []]]]]]],
    ]
    model = only(spans, "chat m").attributes or {}
    assert usage is not None
    assert model["coop.stream"] is True
    assert model["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert model["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert server.attributes["http.response.status_code"] == 200


def test_a_cooperation_is_a_span_over_one_span_per_member(gw: Any) -> None:
    reply = gw.client().chat.completions.create(
        model="council", messages=[{"role": "user", "content": "vote"}]
    )
    spans = finished()
    server = only(spans, "POST /v1/chat/completions")
    council = only(spans, "cooperate council")
    assert council.parent is not None and council.parent.span_id == server.context.span_id
    members = children(spans, council)
    assert sorted(s.name for s in members) == ["chat big", "chat m"]
    for member in members:
        (attempt,) = children(spans, member)
        assert attempt.kind == SpanKind.CLIENT
        assert attempt.attributes["gen_ai.request.model"] in ("gpt-4o", "gpt-4o-mini")
    attributes = council.attributes or {}
    assert attributes["coop.cooperation.mode"] == "parallel"
    assert attributes["coop.cooperation.strategy"] == "voting"
    assert attributes["coop.cooperation.members"] == ("m", "big")
    assert reply.usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert attributes["gen_ai.usage.input_tokens"] == sum(
        m.attributes["gen_ai.usage.input_tokens"] for m in members
    )
    assert attributes["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens


def test_a_failed_attempt_and_the_failover_are_separate_spans(up: FakeOpenAI, gw: Any) -> None:
    # the upstream's error text names the key it was given: it must not reach a span
    leak = {"error": {"message": f"key {UPSTREAM_KEYS[0]} is broken", "type": "server_error"}}
    up.set_mode(Fault.status(500, body=leak), model="gpt-4o-mini")
    reply = gw.client().chat.completions.create(
        model="m_or_big", messages=[{"role": "user", "content": "fail over"}]
    )
    assert reply.choices[0].message.content
    spans = finished()
    model = only(spans, "chat m_or_big")
    first, second = children(spans, model)
    assert (first.name, second.name) == ("chat gpt-4o-mini", "chat gpt-4o")
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["error.type"] == "UpstreamUnavailableError"
    assert first.attributes["coop.attempt"] == 1 and second.attributes["coop.attempt"] == 2
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code == StatusCode.UNSET
    assert "error.type" not in (second.attributes or {})
    assert model.status.status_code == StatusCode.UNSET
    assert model.attributes["coop.model"] == "big" and model.attributes["coop.attempts"] == 2
    assert_no_secret(spans)

    # every attempt fails: the model span and the server span say so
    EXPORTER.clear()
    up.set_mode(Fault.status(500, body=leak), model="gpt-4o")
    with pytest.raises(Exception) as failed:
        gw.client().chat.completions.create(
            model="m_or_big", messages=[{"role": "user", "content": "fail"}]
        )
    status = getattr(failed.value, "status_code", None)
    assert status is not None and status >= 500
    spans = finished()
    server = only(spans, "POST /v1/chat/completions")
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == status
    assert server.attributes["error.type"] == str(status)
    model = only(spans, "chat m_or_big")
    assert model.status.status_code == StatusCode.ERROR
    assert model.attributes["error.type"] in (
        "UpstreamUnavailableError",
        "NoHealthyDeploymentError",
    )
    attempts = children(spans, model)
    assert len(attempts) >= 2
    assert all(a.status.status_code == StatusCode.ERROR for a in attempts)
    assert_no_secret(spans)


def test_a_retry_on_the_same_deployment_is_another_attempt_span(up: FakeOpenAI, gw: Any) -> None:
    up.queue_fault(Fault.status(503), model="gpt-4o")
    gw.client().chat.completions.create(
        model="big", messages=[{"role": "user", "content": "again"}]
    )
    spans = finished()
    model = only(spans, "chat big")
    attempts = children(spans, model)
    assert [(a.name, a.attributes["coop.attempt"]) for a in attempts] == [
        ("chat gpt-4o", 1),
        ("chat gpt-4o", 2),
    ]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attempts[1].status.status_code == StatusCode.UNSET
    assert model.attributes["coop.attempts"] == 2


def test_an_embeddings_request_is_traced_like_a_chat(gw: Any) -> None:
    reply = gw.client().embeddings.create(model="e", input=["one", "two words"])
    spans = finished()
    server = only(spans, "POST /v1/embeddings")
    assert tree(spans, server) == [
        "POST /v1/embeddings",
        [["embeddings e", [["embeddings gpt-4o-mini", []]]]],
    ]
    for name in ("embeddings e", "embeddings gpt-4o-mini"):
        attributes = only(spans, name).attributes or {}
        assert attributes["gen_ai.operation.name"] == "embeddings"
        assert attributes["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens
    assert only(spans, "embeddings gpt-4o-mini").kind == SpanKind.CLIENT


def test_a_client_traceparent_makes_the_request_part_of_its_trace(gw: Any) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with gw.http() as http:
        answer = http.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
    assert answer.status_code == 200
    server = only(finished(), "POST /v1/chat/completions")
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None and format(server.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_a_gateway_without_tracing_makes_no_span(up: FakeOpenAI) -> None:
    with serve_in_thread(traced_config(up, tracing=False)) as gateway:
        assert gateway.app.dispatcher.engine.tracing is None
        for model in ("m", "auto", "council"):
            gateway.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "untraced"}]
            )
    assert EXPORTER.get_finished_spans() == ()


# -- the bare ASGI app: asyncio and trio ------------------------------------------------------


@pytest.mark.anyio
async def test_spans_nest_under_asyncio_and_trio(up: FakeOpenAI) -> None:
    """Parallel members run in a task group: each is still a child of its cooperation."""
    config = traced_config(up)
    config.server.api_keys = []
    app = create_app(config, plugins=PLUGINS, health_checks=False)
    await app.startup()
    try:
        client = Client({"model": "auto", "messages": [{"role": "user", "content": COMPLEX}]})
        await call(app, client)
        assert client.status == 200, client.sent
    finally:
        await app.shutdown()
    spans = list(EXPORTER.get_finished_spans())
    server = only(spans, "POST /v1/chat/completions")
    route = only(spans, "route")
    assert route.attributes["coop.route.target"] == "council"
    assert tree(spans, server) == [
        "POST /v1/chat/completions",
        [
            [
                "route",
                [
                    [
                        "cooperate council",
                        [
                            ["chat big", [["chat gpt-4o", []]]],
                            ["chat m", [["chat gpt-4o-mini", []]]],
                        ],
                    ]
                ],
            ]
        ],
    ]


@pytest.mark.anyio
async def test_a_stream_the_client_leaves_ends_its_spans(
    up: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """A hang-up mid-stream closes the upstream call and still ends every span, cleanly."""
    config = traced_config(up)
    config.server.api_keys = []
    app = create_app(config, plugins=PLUGINS, health_checks=False)
    await app.startup()
    earlier = set(up.server.connections)  # the module's upstream: other tests' keep-alives
    try:
        up.queue_fault(Fault.slow_stream(delay_per_chunk=0.5))
        client = Client(
            {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, app, client)
            with anyio.fail_after(15):
                while client.status is None:  # noqa: ASYNC110 - the app sends when it sends
                    await anyio.sleep(0.01)
            client.leave()
        with anyio.fail_after(15):
            while up.server.connections - earlier:  # noqa: ASYNC110 - closed by the fake's thread
                await anyio.sleep(0.01)
    finally:
        await app.shutdown()
    spans = list(EXPORTER.get_finished_spans())
    server = only(spans, "POST /v1/chat/completions")
    assert server.attributes["http.response.status_code"] in (200, 499)
    assert tree(spans, server) == [
        "POST /v1/chat/completions",
        [["route", [["chat m", [["chat gpt-4o-mini", []]]]]]],
    ]
    assert not [r for r in caplog.records if "detach" in r.getMessage().lower()]


# -- configuration -----------------------------------------------------------------------------


def test_tracing_keys_are_checked() -> None:
    base = {"endpoints": {"sim": {"provider": "simulated"}}}
    with pytest.raises(ConfigError) as bad:
        SystemConfig.from_dict(
            {**base, "monitoring": {"tracing": True, "tracing_exporter": "zipkin"}}
        )
    assert bad.value.key == "monitoring.tracing_exporter"
    assert "otlp, console, none" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        SystemConfig.from_dict({**base, "monitoring": {"tracing": "yes"}})
    assert bad.value.key == "monitoring.tracing"
    with pytest.raises(ConfigError) as bad:
        SystemConfig.from_dict({**base, "monitoring": {"tracing_endpoint": "localhost:4318"}})
    assert bad.value.key == "monitoring.tracing_endpoint"
    config = SystemConfig.from_dict(
        {**base, "monitoring": {"tracing": True, "tracing_exporter": "console"}}
    )
    assert config.monitoring.tracing and config.monitoring.tracing_service_name == "coop"


#: Runs in a fresh interpreter where importing the named modules fails, as if not installed.
_WITHOUT = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Absent())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("blocked", "exporter", "key", "names"),
    [
        ("opentelemetry.exporter", "otlp", "monitoring.tracing_exporter", "otlp-proto-http"),
        ("opentelemetry.sdk", "console", "monitoring.tracing_exporter", "opentelemetry-sdk"),
        ("opentelemetry", "none", "monitoring.tracing", "OpenTelemetry API"),
    ],
)
def test_a_missing_package_is_a_config_error_naming_the_key_and_the_extra(
    blocked: str, exporter: str, key: str, names: str
) -> None:
    result = _run(
        f"BLOCKED = {blocked!r}\n"
        + _WITHOUT
        + f"""
from coop import ConfigError, SystemConfig
try:
    SystemConfig.from_dict({{
        "endpoints": {{"sim": {{"provider": "simulated"}}}},
        "monitoring": {{"tracing": True, "tracing_exporter": {exporter!r}}},
    }})
except ConfigError as exc:
    print(exc.key)
    print(exc)
"""
    )
    assert result.returncode == 0, result.stderr
    first, message = result.stdout.split("\n", 1)
    assert first == key
    assert "pip install 'llm-coop[tracing]'" in message and names in message


def test_tracing_off_imports_no_opentelemetry() -> None:
    """The whole request path (gateway, routing, a cooperation) without the package loaded."""
    result = _run(
        """
        import sys, json, anyio
        from coop import SystemConfig
        from coop.server import create_app

        config = SystemConfig.from_dict({
            "server": {"access_log": "off"},
            "endpoints": {"sim": {"provider": "simulated"}},
            "models": {"a": {"endpoint": "sim", "path": "sim-light", "tier": "light"},
                       "b": {"endpoint": "sim", "path": "sim-light", "tier": "reasoning"}},
            "routing": {"light": "a", "reasoning": "b", "complex": "both"},
            "cooperations": {"both": {"mode": "parallel", "models": ["a", "b"]}},
        })

        async def main():
            app = create_app(config, health_checks=False)
            await app.startup()
            statuses = []
            for model in ("a", "auto", "both"):
                body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
                sent = []
                given = False
                async def receive():
                    nonlocal given
                    if given:  # the client stays: no disconnect
                        await anyio.sleep_forever()
                    given = True
                    return {"type": "http.request", "body": body.encode(), "more_body": False}
                async def send(message):
                    sent.append(message)
                scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                         "headers": [(b"content-type", b"application/json")],
                         "client": ("127.0.0.1", 1)}
                await app(scope, receive, send)
                statuses.append(sent[0]["status"])
            assert app.dispatcher.engine.tracing is None
            await app.shutdown()
            return statuses

        for backend in ("asyncio", "trio"):
            print(backend, anyio.run(main, backend=backend))
        print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "asyncio [200, 200, 200]",
        "trio [200, 200, 200]",
        "[]",
    ]
