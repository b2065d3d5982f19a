"""Alerts: ``[[monitoring.alerts]]`` rules evaluated continuously, events to the log and webhooks.

Through the real gateway (uvicorn on loopback) with a fake OpenAI upstream that fails then
recovers, and webhook receivers on loopback (one answering, one hanging, one failing); the
evaluator alone under asyncio and trio; the rules' configuration errors; ``coop alerts``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
import pytest
from coop import SystemConfig
from coop._alerts import AlertManager, Sample, compute
from coop._config import ALERT_METRICS, MonitoringConfig
from coop._errors import ConfigError
from fakes import FakeOpenAI, Fault
from test_gateway import (
    ONE_SHOT,
    PLUGINS,
    UPSTREAM_KEYS,
    chat_body,
    eventually,
    serve_in_thread,
)

# -- webhook receivers on loopback ---------------------------------------------------------


class Receiver:
    """A webhook on loopback: ``ok`` records each JSON event, ``hang`` never answers in
    time, ``fail`` answers 500. Counts every POST."""

    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.events: list[dict[str, Any]] = []
        self.posts = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts += 1
                if receiver.behaviour == "hang":
                    receiver.release.wait(20)
                    return
                if receiver.behaviour == "fail":
                    self.send_response(500)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                receiver.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def alert_config(up: FakeOpenAI, monitoring: dict[str, Any]) -> SystemConfig:
    return SystemConfig.from_dict(
        {
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
            },
            "monitoring": monitoring,
        }
    )


# -- through the gateway -------------------------------------------------------------------


def test_a_rule_fires_when_the_upstream_fails_and_resolves_when_it_recovers(
    up: FakeOpenAI, caplog: pytest.LogCaptureFixture, tmp_path: Path, coop_cli: Callable[..., Ran]
) -> None:
    caplog.set_level(logging.INFO, logger="coop.alerts")
    with Receiver() as ok, Receiver("hang") as hang, Receiver("fail") as fail:
        config = alert_config(
            up,
            {
                "interval": 0.05,
                "webhooks": [hang.url, fail.url, ok.url],
                "webhook_timeout": 0.3,
                "webhook_attempts": 3,
                "webhook_backoff": 0.05,
                "alerts": [
                    {
                        "name": "m-failing",
                        "metric": "error_rate",
                        "labels": {"model": "m"},
                        "op": ">",
                        "threshold": 0.5,
                        "window": 0.4,
                        "for": 0.1,
                    },
                    {
                        "name": "quiet",
                        "metric": "error_rate",
                        "labels": {"model": "big"},
                        "threshold": 0.5,
                    },
                ],
            },
        )
        with serve_in_thread(config, retry=ONE_SHOT, plugins=PLUGINS) as gw, gw.http() as http:
            slowest = 0.0

            def send() -> int:
                nonlocal slowest
                started = time.perf_counter()
                code = http.post("/v1/chat/completions", json=chat_body()).status_code
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.01)
                return code

            up.set_mode(Fault.status(500))
            eventually(
                lambda: send() >= 500 and any(e["status"] == "firing" for e in ok.events),
                "the alert to fire",
            )
            state = http.get("/alerts").json()
            rules = {r["name"]: r for r in state["rules"]}
            assert rules["m-failing"]["state"] == "firing"
            assert rules["m-failing"]["value"] > 0.5
            assert rules["quiet"]["state"] == "inactive"

            up.set_mode(None)
            eventually(lambda: send() == 200 and len(ok.events) >= 2, "the alert to resolve")
            firing, resolved = ok.events[:2]
            assert firing["status"] == "firing" and resolved["status"] == "resolved"
            for event in (firing, resolved):
                assert set(event) == {
                    "status",
                    "rule",
                    "metric",
                    "labels",
                    "value",
                    "threshold",
                    "since",
                    "at",
                }
                assert event["rule"] == "m-failing" and event["labels"] == {"model": "m"}
                assert event["metric"] == "error_rate" and event["threshold"] == 0.5
            assert firing["value"] > 0.5
            assert resolved["value"] is None or resolved["value"] <= 0.5
            assert firing["since"] <= firing["at"] <= resolved["at"]

            # The failing webhook got each event at most 3 times, the hanging one never
            # blocked the others, requests or the evaluator.
            eventually(
                lambda: http.get("/alerts").json()["webhooks"][1]["failed"] >= 2,
                "the failing webhook to give up twice",
            )
            hooks = http.get("/alerts").json()["webhooks"]
            assert [h["url"] for h in hooks] == [hang.url, fail.url, ok.url]
            assert hooks[1]["failed"] == 2 and hooks[1]["retries"] == 4 and fail.posts == 6
            assert hooks[2]["delivered"] == 2 and hooks[2]["failed"] == 0
            assert hooks[0]["delivered"] == 0 and hang.posts >= 1
            assert slowest < 2.0, f"a request took {slowest:.2f}s"
            evaluations = http.get("/alerts").json()["evaluations"]
            time.sleep(0.3)
            assert http.get("/alerts").json()["evaluations"] > evaluations

            # ``coop alerts --url`` shows the rules and their state.
            _write(config_toml(up), tmp_path)
            result = coop_cli(tmp_path, "alerts", "--url", gw.url)
            assert result.returncode == 0, result.stderr
            assert "m-failing" in result.stdout and "error_rate{model=m} > 0.5" in result.stdout
            assert "quiet" in result.stdout and f"webhook {ok.url}: " in result.stdout
    messages = [r.getMessage() for r in caplog.records if r.name == "coop.alerts"]
    assert any("m-failing firing" in m for m in messages)
    assert any("m-failing resolved" in m for m in messages)


# -- the evaluator in-process, asyncio and trio ------------------------------------------


class StubEngine:
    """What the evaluator reads of an engine: ``metrics.snapshot()`` and
    ``deployment_snapshot()``, driven by the test."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.state = "closed"
        self.metrics = self

    def snapshot(self) -> dict[str, Any]:
        row = {
            "requests": self.requests,
            "errors": self.errors,
            "cost_usd": 0.0,
            "latency_p50_ms": 10.0,
            "latency_p99_ms": 20.0,
        }
        return {"total": row, "models": {"m": row}}

    def deployment_snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {"m": [{"state": self.state, "healthy": self.state != "open"}]}


@pytest.mark.anyio
async def test_the_evaluator_fires_resolves_and_never_waits_for_webhooks() -> None:
    received: list[dict[str, Any]] = []
    posts: collections.Counter[str] = collections.Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        posts[request.url.host] += 1
        if request.url.host == "hang.test":
            await anyio.sleep(30)
        if request.url.host == "fail.test":
            return httpx.Response(500)
        received.append(json.loads(request.content))
        return httpx.Response(200)

    config = MonitoringConfig(
        interval=0.02,
        webhooks=["http://hang.test/", "http://fail.test/", "http://ok.test/"],
        webhook_timeout=0.2,
        webhook_attempts=2,
        webhook_backoff=0.01,
        webhook_queue=10,
        alerts=SystemConfig.from_dict(
            {
                "monitoring": {
                    "alerts": [
                        {
                            "name": "errors",
                            "metric": "error_rate",
                            "threshold": 0.5,
                            "window": 0.2,
                            "for": 0.05,
                        },
                        {"name": "circuit", "metric": "open_circuits", "op": ">=", "threshold": 1},
                    ]
                }
            }
        ).monitoring.alerts,
    )
    engine = StubEngine()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        alerts = AlertManager(config, engine, client=client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(alerts.run)
            with anyio.fail_after(10):
                while len(received) < 1 or alerts.evaluations < 3:
                    engine.requests += 2
                    engine.errors += 2
                    engine.state = "open"
                    await anyio.sleep(0.02)
                firing = {e["rule"] for e in received}
                while not {"errors", "circuit"} <= firing:
                    engine.requests += 1
                    engine.errors += 1
                    await anyio.sleep(0.02)
                    firing |= {e["rule"] for e in received}
                assert all(e["status"] == "firing" for e in received)
                engine.state = "closed"
                while sum(e["status"] == "resolved" for e in received) < 2:
                    engine.requests += 3
                    await anyio.sleep(0.02)
                while alerts.webhooks[1].failed < 4:  # traffic goes on, all well
                    engine.requests += 1
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    state = alerts.status()
    assert [r["state"] for r in state["rules"]] == ["inactive", "inactive"]
    assert [r["fired"] for r in state["rules"]] == [1, 1]
    hang, fail, ok = state["webhooks"]
    # Two attempts per event at most; the hanging webhook held back nobody.
    assert fail["failed"] == 4 and fail["retries"] == 4 and posts["fail.test"] == 8
    assert ok["delivered"] == 4 and ok["dropped"] == 0
    assert hang["delivered"] == 0 and posts["hang.test"] >= 1
    assert not alerts.running


def test_a_full_webhook_queue_drops_its_oldest_event() -> None:
    config = MonitoringConfig(webhooks=["http://a.test/"], webhook_queue=2)
    alerts = AlertManager(config, StubEngine())
    for i in range(3):
        alerts._emit(
            {
                "status": "firing",
                "rule": f"r{i}",
                "metric": "error_rate",
                "labels": {},
                "value": 1.0,
                "threshold": 0.5,
                "since": "",
                "at": "",
            }
        )
    hook = alerts.status()["webhooks"][0]
    assert hook["dropped"] == 1 and hook["queued"] == 2
    assert [e["rule"] for e in alerts.webhooks[0].queue] == ["r1", "r2"]


def _sample(at: float, requests: int, errors: int, cost: float, **deps: str) -> Sample:
    row = (requests, errors, cost, 5.0, 50.0)
    return Sample(
        at,
        {"": row, "m": row},
        {name: [(state, state != "open")] for name, state in deps.items()},
    )


def test_each_metric_is_computed_over_its_window() -> None:
    ring = collections.deque(
        [
            _sample(0.0, 0, 0, 0.0),
            _sample(10.0, 10, 1, 0.01),
            _sample(20.0, 30, 6, 0.03, m="open", big="closed"),
        ]
    )
    assert compute("error_rate", {}, ring, 10) == pytest.approx(5 / 20)
    assert compute("error_rate", {"model": "m"}, ring, 100) == pytest.approx(6 / 30)
    assert compute("requests_per_minute", {}, ring, 10) == pytest.approx(20 / 10 * 60)
    assert compute("cost_usd_per_hour", {}, ring, 20) == pytest.approx(0.03 / 20 * 3600)
    assert compute("latency_p99_ms", {}, ring, 10) == 50.0
    assert compute("latency_p50_ms", {"model": "m"}, ring, 10) == 5.0
    assert compute("open_circuits", {}, ring, 10) == 1.0
    assert compute("open_circuits", {"model": "big"}, ring, 10) == 0.0
    assert compute("healthy_models", {}, ring, 10) == 1.0
    assert compute("healthy_models", {"model": "m"}, ring, 10) == 0.0
    # No traffic in the window: no error rate nor latency (the rule does not hold).
    idle = collections.deque([_sample(0.0, 5, 5, 0.0), _sample(10.0, 5, 5, 0.0)])
    assert compute("error_rate", {}, idle, 10) is None
    assert compute("latency_p99_ms", {}, idle, 10) is None
    assert compute("requests_per_minute", {}, idle, 10) == 0.0
    assert compute("error_rate", {}, collections.deque([ring[0]]), 10) is None


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "key", "says"),
    [
        (
            {"metric": "errors"},
            "monitoring.alerts[0].metric",
            "'errors' is not one of " + ", ".join(ALERT_METRICS),
        ),
        ({"op": "=="}, "monitoring.alerts[0].op", "'==' is not one of >, <, >=, <="),
        ({"threshold": "high"}, "monitoring.alerts[0].threshold", "expected a number"),
        ({"window": 0}, "monitoring.alerts[0].window", "expected a number > 0"),
        ({"for": -1}, "monitoring.alerts[0].for", "expected a number >= 0"),
        (
            {"labels": {"region": "eu"}},
            "monitoring.alerts[0].labels.region",
            "unknown label 'region'; valid labels: model",
        ),
        (
            {"labels": {"model": "mm"}},
            "monitoring.alerts[0].labels.model",
            "no model 'mm' (did you mean 'm'?)",
        ),
        ({"threshold": None}, "monitoring.alerts[0]", "missing 'threshold'"),
        ({"severity": "page"}, "monitoring.alerts[0].severity", "unknown key 'severity'"),
    ],
)
def test_a_malformed_rule_is_a_clear_config_error(
    tmp_path: Path, rule: dict[str, Any], key: str, says: str
) -> None:
    base = {"name": "r", "metric": "error_rate", "threshold": 0.5}
    base.update(rule)
    base = {k: v for k, v in base.items() if v is not None}
    path = _write(config_toml(None, [base]), tmp_path)
    with pytest.raises(ConfigError) as caught:
        SystemConfig.load(path)
    assert caught.value.key == key and caught.value.path == str(path)
    assert caught.value.line is not None
    assert says in str(caught.value), str(caught.value)


def test_other_monitoring_errors(tmp_path: Path) -> None:
    for monitoring, key, says in [
        ({"webhooks": ["ftp://x"]}, "monitoring.webhooks[0]", "expected an http(s) URL"),
        ({"interval": 0}, "monitoring.interval", "expected a number > 0"),
        ({"alerts": "x"}, "monitoring.alerts", "expected an array of tables"),
        (
            {"alerts": [{"name": "a", "metric": "error_rate", "threshold": 1}] * 2},
            "monitoring.alerts[1].name",
            "two alert rules are named 'a'",
        ),
    ]:
        with pytest.raises(ConfigError) as caught:
            SystemConfig.from_dict({"monitoring": monitoring})
        assert caught.value.key == key and says in str(caught.value)


def test_coop_alerts_lists_and_checks_the_configured_rules(
    tmp_path: Path, coop_cli: Callable[..., Ran]
) -> None:
    rules = [
        {
            "name": "slow",
            "metric": "latency_p99_ms",
            "labels": {"model": "m"},
            "threshold": 2000,
            "window": 300,
            "for": 60,
        },
        {"name": "down", "metric": "healthy_models", "op": "<", "threshold": 1},
    ]
    _write(config_toml(None, rules, webhooks=["http://127.0.0.1:9/hook"]), tmp_path)
    result = coop_cli(tmp_path, "alerts", "--offline")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["rule", "condition", "window", "for", "state", "value", "since"]
    assert lines[2].split() == ["slow", "latency_p99_ms{model=m}", ">", "2000", "300s", "60s", "-"]
    assert lines[3].split() == ["down", "healthy_models", "<", "1", "60s", "0s", "-"]
    assert lines[4] == "webhook http://127.0.0.1:9/hook"

    result = coop_cli(tmp_path, "alerts", "--offline", "--json")
    assert [r["name"] for r in json.loads(result.stdout)["rules"]] == ["slow", "down"]

    _write(config_toml(None, [{"name": "bad", "metric": "p99", "threshold": 1}]), tmp_path)
    result = coop_cli(tmp_path, "alerts", "--offline")
    assert result.returncode == 2
    assert "coop.toml" in result.stderr and "monitoring.alerts[0].metric" in result.stderr
    assert "'p99' is not one of error_rate, latency_p99_ms" in result.stderr


# -- helpers ------------------------------------------------------------------------------


@attrs.define
class Ran:
    returncode: int | str | None
    stdout: str
    stderr: str


@pytest.fixture
def coop_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """``coop ARGS`` in-process in a folder, without ``COOP_CONFIG`` or plugin commands."""

    def run(cwd: Path, *args: str) -> Ran:
        from coop.cli._app import main

        monkeypatch.chdir(cwd)
        monkeypatch.delenv("COOP_CONFIG", raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(cwd / ".xdg"))
        monkeypatch.setenv("COOP_DISABLE_PLUGIN_COMMANDS", "1")
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # cyclopts exits with the command's result
            code = exc.code
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def config_toml(
    up: FakeOpenAI | None,
    rules: list[dict[str, Any]] | None = None,
    webhooks: list[str] | None = None,
) -> str:
    base_url = up.base_url if up else "http://127.0.0.1:9/v1"
    lines = [
        "[endpoints.fake]",
        'provider = "openai"',
        f'base_url = "{base_url}"',
        'api_key = "sk-test"',
        "",
        "[models.m]",
        'endpoint = "fake"',
        "",
        "[models.big]",
        'endpoint = "fake"',
        "",
        "[monitoring]",
        f"webhooks = {json.dumps(webhooks or [])}",
    ]
    for rule in (
        rules
        if rules is not None
        else [
            {
                "name": "m-failing",
                "metric": "error_rate",
                "labels": {"model": "m"},
                "threshold": 0.5,
            }
        ]
    ):
        lines += ["", "[[monitoring.alerts]]"]
        for k, v in rule.items():
            if isinstance(v, dict):
                inner = ", ".join(f"{ik} = {json.dumps(iv)}" for ik, iv in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def _write(text: str, folder: Path | None = None) -> Path:
    import tempfile

    folder = folder or Path(tempfile.mkdtemp())
    path = folder / "coop.toml"
    path.write_text(text)
    return path
