"""Nothing leaks: keys planted in upstream errors never leave the gateway.

Real providers quote the key they received in their error text ("Incorrect API key
provided: sk-..."). Each upstream fault below plants coop's upstream keys *and* the
gateway's own client keys in the upstream's answer, then every exit is read: the JSON
error, a stream's error (before its first chunk and mid-way), ``/v1/cooperate`` with a
failed member, a streamed cooperation's progress comments, ``/status``, the log records
at DEBUG, and, from the ``coop`` command, ``status``, ``ask`` and ``config test``.

Half of the planted keys look like keys (``sk-...``) and half do not, so the check holds
whether a secret is caught by its shape or because the configuration names it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from coop import SystemConfig
from coop._redact import install_log_redaction, redact, remember
from fakes import FakeOpenAI, Fault
from fakes.http import HTTPServer, Request, Responder
from test_gateway import BOUND, ONE_SHOT, serve_in_thread

UPSTREAM_SK = "sk-up-secret-Qx7Zk9WvTa"
UPSTREAM_PLAIN = "plain-up-token-Hn4Rt8YbGe"
CLIENT_SK = "sk-gw-secret-Mc3Vb6NpUd"
CLIENT_PLAIN = "plain-gw-token-Lj2Sd5FgRo"
SECRETS = (UPSTREAM_SK, UPSTREAM_PLAIN, CLIENT_SK, CLIENT_PLAIN)
#: Text only an echo of the upstream's answer or of the HTTP client's internals would contain.
TELLTALES = (
    "Incorrect API key",
    "planted",
    "ClientPayloadError",
    "TransferEncodingError",
    "ServerDisconnected",
    "RemoteProtocolError",
    "aiohttp",
    "httpx",
    "Errno",
)
STATUSES = (400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504)
MODELS = ("a", "b", "c", "d", "e", "f")


def planted(status: int | str) -> dict[str, Any]:
    """An upstream error object quoting every key, the way providers do (masked and not)."""
    return {
        "message": (
            f"planted {status}: Incorrect API key provided: {UPSTREAM_SK}. Also "
            f"{UPSTREAM_PLAIN}, Bearer {CLIENT_SK}, x-api-key: {CLIENT_PLAIN}, "
            f"masked {UPSTREAM_SK[:7]}********{UPSTREAM_SK[-4:]}"
        ),
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def faults() -> list[Any]:
    cases = [
        pytest.param(Fault.status(code, body={"error": planted(code)}), id=str(code))
        for code in STATUSES
    ]
    cases.append(pytest.param(Fault.drop(), id="dropped"))
    cases.append(pytest.param(Fault.cut_stream(after_chunks=1), id="cut"))
    return cases


def assert_clean(text: str, where: str) -> None:
    """No secret, no tail of one, no echoed upstream text, no client internals."""
    for secret in SECRETS:
        assert secret not in text, f"{where} leaks {secret!r}: {text[:600]}"
        assert secret[-6:] not in text, f"{where} leaks the end of {secret!r}: {text[:600]}"
    for telltale in TELLTALES:
        assert telltale not in text, f"{where} echoes {telltale!r}: {text[:600]}"


def secured_config(up: FakeOpenAI) -> SystemConfig:
    """Six models on six upstream ids (a fault strikes one of them), keys of both shapes."""
    return SystemConfig.from_dict(
        {
            "server": {
                "access_log": "text",
                "max_body_bytes": 1024 * 1024,
                "api_keys": [CLIENT_SK, CLIENT_PLAIN],
            },
            "endpoints": {
                "fake": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    # more keys than exits: a 401 may take a key out of rotation
                    "api_keys": [
                        UPSTREAM_SK,
                        UPSTREAM_PLAIN,
                        *(f"sk-spare-{i}-xx" for i in range(6)),
                    ],
                    "timeout": 10,
                    "health_check_interval": 0,
                }
            },
            "models": {m: {"endpoint": "fake", "path": f"gpt-{m}"} for m in MODELS},
            "routing": {"light": "a", "reasoning": "b", "complex": "a"},
            "cooperations": {
                "council": {"mode": "parallel", "models": ["e", "f"], "strategy": "voting"}
            },
        }
    )


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _redacting_logs() -> None:
    install_log_redaction()  # as coop serve and the CLI do (caplog's handler included)


@pytest.mark.parametrize("fault", faults())
def test_planted_keys_never_leave_the_gateway(
    fault: Fault, up: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    up.reset()
    caplog.set_level(logging.DEBUG)
    install_log_redaction()
    with serve_in_thread(secured_config(up), retry=ONE_SHOT) as gw:
        with gw.http() as http:
            # the JSON error of a plain request
            up.queue_fault(fault, model="gpt-a")
            plain = http.post("/v1/chat/completions", json=_chat("a"))
            assert plain.status_code >= 400, plain.text
            assert plain.json()["error"]["message"], plain.text
            assert_clean(plain.text, "the JSON error")

            # a stream that fails before its first chunk (an ordinary error), or mid-way
            up.queue_fault(fault, model="gpt-b")
            streamed = http.post("/v1/chat/completions", json=_chat("b", stream=True))
            assert_clean(streamed.text, "a stream's error")
            if fault.kind == "cut_stream":
                assert "data: [DONE]" not in streamed.text
                assert '"error"' in streamed.text
            status = fault.status_code or "event"
            up.queue_fault(
                Fault.error_event_mid_stream(after_chunks=1, error=planted(status)), model="gpt-c"
            )
            mid = http.post("/v1/chat/completions", json=_chat("c", stream=True))
            assert mid.status_code == 200 and '"error"' in mid.text, mid.text
            assert "data: [DONE]" not in mid.text
            assert_clean(mid.text, "an SSE error event")

            # /v1/cooperate: one member fails, the other answers
            up.queue_fault(fault, model="gpt-d")
            coop = http.post(
                "/v1/cooperate",
                json={"query": "hi", "mode": "parallel", "models": ["d", "a"]},
            )
            assert_clean(coop.text, "/v1/cooperate")
            if coop.status_code == 200:
                failed = [o for o in coop.json()["outputs"] if not o["success"]]
                assert failed and failed[0]["error"], coop.text

            # a streamed cooperation: its progress notes are SSE comments
            up.queue_fault(fault, model="gpt-f")
            council = http.post("/v1/chat/completions", json=_chat("council", stream=True))
            notes = [line for line in council.text.split("\n") if line.startswith(":")]
            assert any("failed" in note for note in notes), council.text
            assert_clean(council.text, "a streamed cooperation")

            # /status: last_error and everything else
            status_body = http.get("/status")
            assert status_body.status_code == 200
            assert "last_error" in status_body.text
            assert_clean(status_body.text, "/status")
        assert up.request_count >= 5
        assert any(r.fault is not None for r in up.requests)
    logged = "\n".join(_formatted(r) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in logged, f"the log leaks {secret!r}"


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


def _formatted(record: logging.LogRecord) -> str:
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    return handler.format(record)


# -- the redactor itself ---------------------------------------------------------------------


def test_the_redactor_masks_configured_secrets_and_secret_shapes() -> None:
    remember(["cfg-token-Zz81Yy72Xx63"])
    text = redact(
        "cfg-token-Zz81Yy72Xx63 | sk-proj-abcDEF123456 | sk-ant-api03-xyz789 | "
        "Authorization: Bearer eyJhbGciOi.x.y | x-api-key: abcd1234efgh | "
        "api_key=hunter22hunter | sk-abc1*****************wxyz | https://user:pw12345@host/v1"
    )
    for leaked in (
        "Zz81Yy72Xx63",
        "abcDEF123456",
        "xyz789",
        "eyJhbGciOi",
        "abcd1234efgh",
        "hunter22",
        "wxyz",
        "pw12345",
    ):
        assert leaked not in text, text
    assert "https://***@host/v1" in text
    # what the gateway itself says about keys stays readable
    hint = "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
    assert redact(hint) == hint
    assert redact("invalid API key") == "invalid API key"


def test_the_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    remember([UPSTREAM_PLAIN])
    lines: list[str] = []

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    log = logging.getLogger("coop.test_secrets")
    sink = Sink()
    log.addHandler(sink)
    install_log_redaction(["coop.test_secrets"])
    try:
        log.warning("key %s and %s", UPSTREAM_PLAIN, CLIENT_SK)
        try:
            raise RuntimeError(f"boom with {UPSTREAM_PLAIN}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(sink)
    text = "\n".join(lines)
    assert "Traceback" in text and "RuntimeError: boom with ***" in text
    for secret in (UPSTREAM_PLAIN, CLIENT_SK):
        assert secret not in text


def test_an_upstream_error_reads_as_a_summary_and_keeps_the_body_in_python() -> None:
    from coop import AuthenticationError, error_from_response

    body = json.dumps({"error": planted(401)}).encode()
    error = error_from_response(401, body, {}, deployment="fake/gpt-a")
    assert isinstance(error, AuthenticationError)
    assert str(error) == (
        "upstream rejected the credentials, code invalid_api_key (status 401) [fake/gpt-a]"
    )
    assert UPSTREAM_SK in error.body  # for debugging in Python, never sent on


# -- the coop command --------------------------------------------------------------------------


def _coop(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    full["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


def _write_config(folder: Path, up: FakeOpenAI, *, port: int = 0) -> Path:
    """A coop.toml on the custom provider: one model per fault, secrets behind env: too."""
    lines = [
        'log_level = "DEBUG"',
        "[server]",
        f"port = {port}",
        'api_keys = ["env:SECRETS_GW_KEY", "' + CLIENT_PLAIN + '"]',
        'access_log = "text"',
        "",
        "[endpoints.fake]",
        'provider = "custom"',
        f'base_url = "{up.base_url}"',
        'api_keys = ["env:SECRETS_UP_KEY", "' + UPSTREAM_PLAIN + '"]',
        "health_check_interval = 0",
    ]
    for name in _fault_names():
        lines += ["", f"[models.m{name}]", 'endpoint = "fake"', f'path = "gpt-{name}"']
    path = folder / "coop.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fault_names() -> list[str]:
    return [*map(str, STATUSES), "dropped"]


def _standing_faults(up: FakeOpenAI) -> None:
    up.reset()
    for code in STATUSES:
        up.set_mode(Fault.status(code, body={"error": planted(code)}), model=f"gpt-{code}")
    up.set_mode(Fault.drop(), model="gpt-dropped")


ENV = {"SECRETS_GW_KEY": CLIENT_SK, "SECRETS_UP_KEY": UPSTREAM_SK}


def test_coop_ask_and_config_test_print_no_secret(up: FakeOpenAI, tmp_path: Path) -> None:
    _write_config(tmp_path, up)
    _standing_faults(up)
    try:
        # every status through `coop ask` in one interpreter (main() is the command itself)
        driver = (
            "import sys\nfrom coop.cli._app import main\ncodes = []\n"
            f"for name in {_fault_names()!r}:\n"
            "    codes.append(main(['ask', '--no-stream', '--model', 'm' + name, 'hi']))\n"
            "print(codes)\n"
        )
        asked = _coop("-c", driver, cwd=tmp_path, env=ENV)
        assert asked.stdout.strip() == str([1] * len(_fault_names())), asked.stderr
        errors = [line for line in asked.stderr.splitlines() if line.startswith("coop: error:")]
        assert len(errors) == len(_fault_names()), asked.stderr
        assert_clean(asked.stderr + asked.stdout, "coop ask")
        checked = _coop("-m", "coop", "config", "test", "--json", cwd=tmp_path, env=ENV)
        assert checked.returncode == 1, checked.stderr
        assert json.loads(checked.stdout)[0]["chat"]["ok"] is False, checked.stdout
        assert_clean(checked.stdout + checked.stderr, "coop config test")
    finally:
        up.reset()


def test_coop_serve_at_debug_and_coop_status_print_no_secret(
    up: FakeOpenAI, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _write_config(tmp_path, up, port=port)
    _standing_faults(up)
    full = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    full.update(ENV, XDG_CONFIG_HOME=str(tmp_path / ".xdg"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "coop", "serve"],
        cwd=tmp_path,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(url, proc)
        headers = {"authorization": f"Bearer {CLIENT_PLAIN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=BOUND) as http:
            for name in _fault_names():
                answer = http.post("/v1/chat/completions", json=_chat(f"m{name}"))
                assert answer.status_code >= 400
                assert_clean(answer.text, f"coop serve's error for {name}")
            http.post(
                "/v1/chat/completions", json=_chat("m500"), headers={"x-api-key": "sk-wrong-Key9Q"}
            )
        table = _coop("-m", "coop", "status", "--url", url, cwd=tmp_path, env=ENV)
        assert table.returncode == 0, table.stderr
        assert "fake/gpt-401" in table.stdout
        assert_clean(table.stdout + table.stderr, "coop status")
        data = _coop("-m", "coop", "status", "--url", url, "--json", cwd=tmp_path, env=ENV)
        assert data.returncode == 0 and "last_error" in data.stdout, data.stderr
        assert_clean(data.stdout + data.stderr, "coop status --json")
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(BOUND)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=BOUND)
        up.reset()
    assert "coop.access" in err, err  # the log at DEBUG (log_level in coop.toml) was written
    for secret in SECRETS:
        assert secret not in err + out, f"coop serve's log leaks {secret!r}"


def _wait_listening(url: str, proc: subprocess.Popen[str]) -> None:
    import time

    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"coop serve exited: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail("coop serve did not start")


def test_coop_status_masks_what_an_older_gateway_would_send(up: FakeOpenAI, tmp_path: Path) -> None:
    """The CLI masks on its own side too: secrets its config names, and secret shapes."""
    _write_config(tmp_path, up)
    leaky = {
        "version": "0.0.1",
        "uptime_s": 1.0,
        "in_flight": 0,
        "metrics": {"total": {"requests": 1, "success_rate": 0.0, "cost_usd": 0.0}},
        "models": {
            "m": [
                {
                    "id": "fake/gpt",
                    "state": "cooling",
                    "in_flight": 0,
                    "latency_ms": 1.0,
                    "error_rate": 1.0,
                    "cooling_for": 3.0,
                    "last_error": planted(401)["message"],
                }
            ]
        },
    }

    def handler(req: Request, resp: Responder) -> None:
        resp.respond_json(200, leaky)

    server = HTTPServer(handler)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        data = _coop("-m", "coop", "status", "--url", url, "--json", cwd=tmp_path, env=ENV)
        assert data.returncode == 0, data.stderr
        for secret in SECRETS:
            assert secret not in data.stdout, data.stdout
    finally:
        server.stop()
