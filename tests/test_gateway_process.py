"""``coop serve`` as its own process: the bind check, a drained SIGTERM, the JSON access log.

The gateway reaches FakeOpenAI through a provider installed the way a user installs
one: a throw-away distribution whose ``coop`` entry point is on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeOpenAI
from plugin_dists import make_dist

BOUND = 30.0  # seconds any wait for an event may take before the test fails
PROVIDER = """
import coop


class GatewayTestProvider(coop.OpenAICompatibleProvider):
    name = "gwtest-openai"


@coop.hookimpl
def coop_register_providers(register):
    register(GatewayTestProvider)
"""


def create_managed_key(config: Path) -> None:
    import time

    import anyio
    from coop import SystemConfig
    from coop._state import KeyRecord, hash_key, new_key, open_state

    async def create() -> None:
        state = open_state(SystemConfig.load(config))
        await state.open()
        try:
            key = new_key()
            await state.create_key(
                KeyRecord(name="ops", digest=hash_key(key), hint=key[:12], created=time.time())
            )
        finally:
            await state.aclose()

    anyio.run(create)


def write_config(folder: Path, up: FakeOpenAI | None, **server: Any) -> Path:
    lines = ["[server]"]
    for key, value in server.items():
        lines.append(f"{key} = {json.dumps(value)}")
    base_url = up.base_url if up is not None else "http://127.0.0.1:9/v1"
    lines += [
        "",
        "[endpoints.fake]",
        'provider = "gwtest-openai"',
        f'base_url = "{base_url}"',
        'api_keys = ["sk-upstream"]',
        "health_check_interval = 0",
        "",
        "[models.m]",
        'endpoint = "fake"',
        'path = "gpt-4o-mini"',
    ]
    path = folder / "coop.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Served:
    """A ``coop serve`` process: its URL once listening, and everything it printed."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink in ((proc.stdout, self.stdout), (proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)
            if sink is self.stdout:
                self.lines.put(line)
        if sink is self.stdout:
            self.lines.put(None)

    def url(self) -> str:
        """The base URL the gateway says it listens on (fails if it exits first)."""
        while True:
            try:
                line = self.lines.get(timeout=BOUND)
            except queue.Empty:
                pytest.fail(f"coop serve said nothing for {BOUND}s: {''.join(self.stderr)}")
            if line is None:
                pytest.fail(f"coop serve exited before listening: {''.join(self.stderr)}")
            if "listening on " in line:
                return line.split("listening on ", 1)[1].split()[0]

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"coop serve did not exit within {BOUND}s")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(config_path, *args)`` starts ``coop serve``; every process is stopped at the end."""
    dist = make_dist(tmp_path / "dist", "llm-coop-gwtest", "coop_gwtest_provider", PROVIDER)
    started: list[Served] = []

    def start(config: Path, *args: str, env: dict[str, str] | None = None) -> Served:
        full = {
            k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")
        }
        full["PYTHONPATH"] = str(dist)
        full["XDG_CONFIG_HOME"] = str(tmp_path / ".xdg")
        full.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "coop", "serve", "--config", str(config), *args],
            cwd=tmp_path,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(proc)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(BOUND)


def test_serve_refuses_an_open_gateway_on_a_reachable_address(serve: Any, tmp_path: Path) -> None:
    served = serve(write_config(tmp_path, None), "--host", "0.0.0.0", "--port", "0")
    assert served.wait() == 2
    err = "".join(served.stderr)
    assert "refusing to serve on 0.0.0.0 with no [server] api_keys" in err
    assert "--allow-unauthenticated" in err
    assert not any("listening" in line for line in served.stdout)


@pytest.mark.parametrize("how", ["flag", "keys", "managed"])
def test_the_bind_check_passes_with_the_flag_or_with_keys(
    serve: Any, tmp_path: Path, how: str
) -> None:
    # 192.0.2.1 (TEST-NET-1) is never a local address: past the check, binding fails at once,
    # so no port is ever opened beyond loopback.
    if how == "flag":
        served = serve(
            write_config(tmp_path, None), "--host", "192.0.2.1", "--allow-unauthenticated"
        )
    elif how == "keys":
        served = serve(write_config(tmp_path, None, api_keys=["sk-gw"]), "--host", "192.0.2.1")
    else:  # a managed key in the state backend (the SQLite file beside coop.toml)
        config = write_config(tmp_path, None)
        create_managed_key(config)
        served = serve(config, "--host", "192.0.2.1")
    assert served.wait() == 1
    err = "".join(served.stderr)
    assert "refusing" not in err
    assert "did not start" in err


def test_sigterm_drains_the_request_in_flight_then_exits_0(serve: Any, tmp_path: Path) -> None:
    with FakeOpenAI(latency=1.5) as up:
        config = write_config(
            tmp_path,
            up,
            api_keys=["env:GW_TEST_KEY"],
            access_log="json",
            shutdown_timeout=20,
        )
        served = serve(config, "--port", "0", env={"GW_TEST_KEY": "sk-gw-sigterm-key"})
        url = served.url()
        headers = {"authorization": "Bearer sk-gw-sigterm-key"}
        outcome: dict[str, Any] = {}

        def ask() -> None:
            with httpx.Client(timeout=BOUND) as http:
                outcome["response"] = http.post(
                    url + "/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "drain me"}]},
                    headers={**headers, "x-request-id": "in-flight-1"},
                )

        with httpx.Client(timeout=BOUND) as http:
            assert http.get(url.removesuffix("/v1") + "/health").status_code == 200
        thread = threading.Thread(target=ask)
        thread.start()
        deadline = time.monotonic() + BOUND
        while up.request_count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the request is with the (slow) upstream
        assert up.request_count == 1
        served.proc.send_signal(signal.SIGTERM)
        thread.join(BOUND)
        response = outcome["response"]
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "echo: drain me"
        assert served.wait() == 0, "".join(served.stderr)
    err = "".join(served.stderr)
    records = [json.loads(line) for line in served.stderr if line.startswith("{")]
    by_id = {r["request_id"]: r for r in records}
    assert by_id["in-flight-1"]["status"] == 200 and by_id["in-flight-1"]["model"] == "m"
    assert all(r["path"] in ("/health", "/v1/chat/completions") for r in records)
    assert len(records) == 2, "one line per request"
    assert "sk-gw-sigterm-key" not in err and "sk-upstream" not in err


def test_tune_gc_freezes_start_up_objects_and_collects_the_young_generation_less_often() -> None:
    import gc

    from coop.server._serve import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (10_000, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_sigterm_with_two_workers_drains_the_request_in_flight_then_exits_0(
    serve: Any, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeOpenAI(latency=1.5) as up:
        config = write_config(tmp_path, up, shutdown_timeout=20)
        served = serve(config, "--port", str(port), "--workers", "2")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + BOUND * 2
        while True:  # the workers start after the supervisor says where it listens
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "".join(served.stderr)
            time.sleep(0.1)
        outcome: dict[str, Any] = {}

        def ask() -> None:
            with httpx.Client(timeout=BOUND) as http:
                outcome["response"] = http.post(
                    url + "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "drain me"}]},
                )

        thread = threading.Thread(target=ask)
        thread.start()
        deadline = time.monotonic() + BOUND
        while up.request_count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert up.request_count == 1
        served.proc.send_signal(signal.SIGTERM)
        thread.join(BOUND)
        response = outcome["response"]
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "echo: drain me"
        assert served.wait() == 0, "".join(served.stderr)


def test_sigterm_past_the_drain_time_ends_each_stream_with_an_error_event(
    serve: Any, tmp_path: Path
) -> None:
    """Two workers, streams longer than shutdown_timeout: each ends in an error event
    (never a silent cut), the access log says 503, and no traceback is printed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeOpenAI(chunk_delay=0.2) as up:
        config = write_config(tmp_path, up, shutdown_timeout=1, access_log="json")
        served = serve(config, "--port", str(port), "--workers", "2")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + BOUND * 2
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "".join(served.stderr)
            time.sleep(0.1)
        bodies: dict[str, str] = {}
        statuses: dict[str, int] = {}
        long_text = " ".join(f"word{i}" for i in range(300))  # ~60 s of chunks at 0.2 s each

        def stream(rid: str) -> None:
            with (
                httpx.Client(timeout=BOUND) as http,
                http.stream(
                    "POST",
                    url + "/v1/chat/completions",
                    json={
                        "model": "m",
                        "stream": True,
                        "messages": [{"role": "user", "content": long_text}],
                    },
                    headers={"x-request-id": rid},
                ) as response,
            ):
                statuses[rid] = response.status_code
                text = ""
                try:
                    for piece in response.iter_text():
                        text += piece
                except httpx.HTTPError as exc:  # a cut connection is what this test forbids
                    text += f"<cut: {exc!r}>"
                bodies[rid] = text

        threads = [threading.Thread(target=stream, args=(f"long-{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + BOUND
        while up.request_count < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # a few chunks each
        served.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(BOUND)
        assert served.wait() == 0, "".join(served.stderr)
    err = "".join(served.stderr)
    for rid in ("long-0", "long-1", "long-2"):
        assert statuses[rid] == 200
        events = [line[6:] for line in bodies[rid].split("\n") if line.startswith("data: ")]
        assert "<cut" not in bodies[rid], bodies[rid][-300:]
        assert events and events[-1] != "[DONE]", bodies[rid][-300:]
        error = json.loads(events[-1])["error"]
        assert error["code"] == "server_shutting_down" and "shutdown_timeout" in error["message"]
        assert len(events) > 2, "the stream ran before it was stopped"
    records = {
        r["request_id"]: r for r in map(json.loads, (x for x in served.stderr if x.startswith("{")))
    }
    assert all(records[f"long-{i}"]["status"] == 503 for i in range(3)), records
    assert "Traceback" not in err and "Exception in ASGI application" not in err, err
