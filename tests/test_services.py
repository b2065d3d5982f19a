"""The service framework: ServiceManager, parameters, the context's model calls, CLI and HTTP.

A small service registered as a plugin exercises the core alone; each built-in service
has its own tests in plugins/services/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import coop
import httpx
import pytest
from coop import (
    Service,
    ServiceContext,
    ServiceError,
    ServiceManager,
    ServiceParameter,
    ServiceResult,
    SystemConfig,
    ValidationError,
)


class Shout(Service):
    """Counts words by code, asks a model for one line, returns both."""

    name = "shout"
    description = "Count the words and have a model say them loudly."
    parameters = (
        ServiceParameter("style", "how to say it", choices=("loud", "quiet"), default="loud"),
        ServiceParameter("times", "repetitions", type=int, default=1),
        ServiceParameter("model", "model to ask", default="auto"),
    )

    async def process(
        self, content: str | bytes, parameters: Mapping[str, Any], context: ServiceContext
    ) -> ServiceResult:
        if isinstance(content, bytes):
            raise ServiceError("shout reads text only")
        words = len(content.split())
        answer = await context.complete(
            f"Say {content!r} {parameters['style']}ly", model=parameters["model"], max_tokens=50
        )
        return ServiceResult(
            result=f"**{words} words**\n\n{answer.text}",
            data={"words": words, "times": parameters["times"]},
        )


class ShoutPlugin:
    @coop.hookimpl
    def coop_register_services(self, register: Any) -> None:
        register(Shout)


def plugins() -> coop.Plugins:
    return coop.load_plugins(extra={"shout": ShoutPlugin()})


def config(window: int | None = None) -> SystemConfig:
    small: dict[str, Any] = {"endpoint": "sim", "path": "sim-light", "tier": "light"}
    if window is not None:
        small["context_window"] = window
    return SystemConfig.from_dict(
        {
            "endpoints": {"sim": {"provider": "simulated"}},
            "models": {
                "small": small,
                "big": {"endpoint": "sim", "path": "sim-large", "tier": "reasoning"},
            },
            "routing": {"light": "small", "reasoning": "big"},
        }
    )


@pytest.mark.anyio
async def test_process_request_runs_the_service_through_the_request_path() -> None:
    engine = coop.OpenAIEngine(config(), plugins=plugins(), health_checks=False)
    async with ServiceManager(engine) as manager:
        response = await manager.process_request(
            service_type="shout", content="hello big world", parameters={"times": "3"}
        )
    assert response.success and response.error is None
    assert response.data == {"words": 3, "times": 3}
    assert response.result.startswith("**3 words**") and "simulated" in response.result
    assert response.models == ["small"] and response.calls == 1
    assert response.prompt_tokens > 0 and response.cost > 0 and response.latency > 0


@pytest.mark.anyio
async def test_failures_are_errors_never_a_success() -> None:
    dispatcher = coop.Dispatcher(config(), plugins=plugins(), health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        unknown = await manager.process_request("shuot", "x")
        bad_choice = await manager.process_request("shout", "x", {"style": "lowd"})
        bad_name = await manager.process_request("shout", "x", {"stlye": "loud"})
        bad_type = await manager.process_request("shout", "x", {"times": "many"})
        empty = await manager.process_request("shout", "   ")
        binary = await manager.process_request("shout", b"%PDF-1.4")
        with pytest.raises(ValidationError):
            await manager.run("shout", "x", {"style": "lowd"})
    assert not unknown.success and "did you mean 'shout'" in (unknown.error or "")
    assert not bad_choice.success and "loud, quiet" in (bad_choice.error or "")
    assert "did you mean 'style'" in (bad_name.error or "")
    assert "expected int" in (bad_type.error or "")
    assert "content is empty" in (empty.error or "")
    assert binary.error_type == "ServiceError" and binary.result == "" and binary.data == {}


@pytest.mark.anyio
async def test_no_call_exceeds_the_context_window() -> None:
    dispatcher = coop.Dispatcher(config(window=40), plugins=plugins(), health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        response = await manager.process_request("shout", "word " * 200, {"model": "small"})
    assert not response.success and "context window of 40" in (response.error or "")
    assert response.calls == 0


def run_coop(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )


def test_cli_reports_unknown_services_and_bad_arguments(tmp_path: Path) -> None:
    listed = run_coop("service", "--list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    unknown = run_coop("service", "no_such_service", "--content", "x", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown service 'no_such_service'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    neither = run_coop("service", cwd=tmp_path)
    assert neither.returncode == 2 and "coop service --list" in neither.stderr
    bad_pair = run_coop("service", "x", "--content", "y", "--param", "novalue", cwd=tmp_path)
    assert bad_pair.returncode == 2


def test_http_services_endpoint() -> None:
    from test_gateway import serve_in_thread

    with serve_in_thread(config(), plugins=plugins()) as gw:
        listed = httpx.get(gw.base_url + "/services", timeout=10).json()
        assert "shout" in [s["name"] for s in listed["data"]]
        ok = httpx.post(
            gw.base_url + "/services/shout",
            json={"content": "a b c", "parameters": {"style": "quiet"}},
            timeout=10,
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["success"] and body["data"]["words"] == 3 and body["models"] == ["small"]
        missing = httpx.post(gw.base_url + "/services/shuot", json={"content": "x"}, timeout=10)
        assert missing.status_code == 404
        assert "did you mean 'shout'" in missing.json()["error"]["message"]
        bad = httpx.post(
            gw.base_url + "/services/shout",
            json={"content": "x", "parameters": {"style": "lowd"}},
            timeout=10,
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "style"
        empty = httpx.post(gw.base_url + "/services/shout", json={"content": ""}, timeout=10)
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "content"


def test_a_json_parameter_given_as_json_reads_as_json_text() -> None:
    spec = ServiceParameter("options", "a JSON list")
    assert json.loads(spec.convert([{"name": "A"}, "B"])) == [{"name": "A"}, "B"]
    assert spec.convert('[1, 2]') == "[1, 2]"
    with pytest.raises(ValidationError):
        ServiceParameter("n", type=int).convert([1])
