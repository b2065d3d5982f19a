"""The gateway as a bare ASGI app, inside the test's own event loop: asyncio and trio.

uvicorn always runs the gateway on asyncio; another ASGI server may run it on trio,
where the hang-up and timeout guard takes its portable (anyio) form. These tests call
the app directly, so both guards meet the same hang-ups and timeouts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from coop.server import GatewayApp, create_app
from fakes import FakeOpenAI, Fault
from openapi_schema import validate
from test_gateway import ONE_SHOT, PLUGINS, chat_body, gateway_config

pytestmark = pytest.mark.anyio

BOUND = 15.0


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


class Client:
    """One request's side of the ASGI conversation; ``leave()`` makes it hang up."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()
        self.sent: list[dict[str, Any]] = []
        self.gone = anyio.Event()
        self._given = False

    async def receive(self) -> dict[str, Any]:
        if not self._given:
            self._given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self.gone.set()

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def call(app: GatewayApp, client: Client, path: str = "/v1/chat/completions") -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }
    await app(scope, client.receive, client.send)


async def until(condition: Any, what: str) -> None:
    """Wait for a condition another thread (the fake's) makes true; fail after :data:`BOUND`."""
    try:
        with anyio.fail_after(BOUND):
            while not condition():  # noqa: ASYNC110 - set by another thread, no event to await
                await anyio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def test_a_request_is_answered(up: FakeOpenAI) -> None:
    app = create_app(gateway_config(up), plugins=PLUGINS, health_checks=False)
    await app.startup()
    try:
        client = Client(chat_body("asgi direct"))
        await call(app, client)
        assert client.status == 200
        assert client.json()["choices"][0]["message"]["content"] == "echo: asgi direct"
    finally:
        await app.shutdown()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hang_up_cancels_the_upstream_call(up: FakeOpenAI, stream: bool) -> None:
    app = create_app(gateway_config(up), plugins=PLUGINS, health_checks=False)
    await app.startup()
    try:
        if stream:
            up.queue_fault(Fault.slow_stream(delay_per_chunk=30))
        else:
            up.queue_fault(Fault.stall(None))
        client = Client(chat_body(stream=stream))
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, app, client)
            await until(lambda: up.request_count == 1, "the upstream to get the request")
            assert app.in_flight == 1
            client.leave()
        assert app.in_flight == 0
        assert client.status is None or client.status == 200  # a stream may have begun
        await until(lambda: not up.server.connections, "the upstream connection to close")
    finally:
        await app.shutdown()


async def test_request_timeout_is_a_504(up: FakeOpenAI) -> None:
    app = create_app(gateway_config(up, request_timeout=0.3), plugins=PLUGINS, health_checks=False)
    await app.startup()
    try:
        up.queue_fault(Fault.stall(None))
        client = Client(chat_body())
        await call(app, client)
        assert client.status == 504
        assert client.json()["error"]["code"] == "timeout"
        await until(lambda: not up.server.connections, "the upstream connection to close")
        assert app.in_flight == 0
    finally:
        await app.shutdown()


@pytest.mark.parametrize(("fault", "status"), [(Fault.status(503), 503), (Fault.status(500), 502)])
async def test_upstream_errors_keep_their_status(up: FakeOpenAI, fault: Fault, status: int) -> None:
    app = create_app(gateway_config(up), plugins=PLUGINS, health_checks=False)
    await app.startup()
    assert app.dispatcher is not None
    app.dispatcher.engine.retry = ONE_SHOT
    try:
        up.queue_fault(fault)
        client = Client(chat_body())
        await call(app, client)
        assert client.status == status
        validate("ErrorResponse", client.json())
    finally:
        await app.shutdown()
