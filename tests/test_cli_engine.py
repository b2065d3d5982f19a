"""coop ask / models / config test, run as a user would, against a loopback upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeOpenAI, Fault


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=["sk-good"]) as server:
        yield server


def write_config(folder: Path, base_url: str, key_env: str = "TEST_UP_KEY") -> None:
    (folder / "coop.toml").write_text(
        f"""
[endpoints.up]
provider = "custom"
base_url = "{base_url}"
api_keys = ["env:{key_env}"]
health_check_interval = 0

[models.small]
endpoint = "up"
path = "gpt-4o-mini"
tier = "light"
price = {{ input = 0.15, output = 0.6 }}

[models.big]
endpoint = "up"
path = "gpt-4o"
tier = "reasoning"

[routing]
light = "small"
reasoning = "big"
"""
    )


def coop(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ask_streams_and_reports(tmp_path: Path, up: FakeOpenAI) -> None:
    write_config(tmp_path, up.base_url)
    result = coop(tmp_path, "ask", "hello there", "--model", "small", TEST_UP_KEY="sk-good")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: hello there"
    assert up.last_request.json["stream"] is True
    as_json = coop(
        tmp_path,
        "ask",
        "Solve for x: 3x + 7 = 22. Show your steps.",
        "--json",
        TEST_UP_KEY="sk-good",
    )
    data = json.loads(as_json.stdout)
    assert data["route"]["tier"] == "reasoning" and data["model"] == "big"
    assert data["deployment"] == "up/gpt-4o" and data["usage"]["total_tokens"] > 0
    # coop route shows the plan coop ask ran.
    routed = coop(
        tmp_path, "route", "--json", "Solve for x: 3x + 7 = 22. Show your steps.", TEST_UP_KEY="x"
    )
    decision = json.loads(routed.stdout)
    assert decision["plan"] == {"kind": "model", "target": "big"}
    assert (decision["tier"], decision["target"]) == (data["route"]["tier"], data["model"])
    cascade = coop(tmp_path, "route", "--router", "cascade", "What is 7 * 8?", TEST_UP_KEY="x")
    assert "plan:       cascade: small sampled 2x, big if they disagree" in cascade.stdout


def test_ask_errors_are_one_line(tmp_path: Path, up: FakeOpenAI) -> None:
    write_config(tmp_path, up.base_url)
    unknown = coop(tmp_path, "ask", "hi", "--model", "smal", TEST_UP_KEY="sk-good")
    assert unknown.returncode == 2 and "did you mean 'small'" in unknown.stderr
    no_key = coop(tmp_path, "ask", "hi", "--model", "small")
    assert no_key.returncode == 2 and "TEST_UP_KEY is not set" in no_key.stderr
    up.set_mode(Fault.status(503))
    down = coop(tmp_path, "ask", "hi", "--model", "small", "--no-stream", TEST_UP_KEY="sk-good")
    assert down.returncode == 1 and "503" in down.stderr and "Traceback" not in down.stderr


def test_models_and_config_test(tmp_path: Path, up: FakeOpenAI) -> None:
    write_config(tmp_path, up.base_url)
    models = json.loads(coop(tmp_path, "models", "--json").stdout)
    assert [m["name"] for m in models["models"]] == ["big", "small"]
    assert models["models"][0]["deployments"][0]["state"] == "closed"
    checked = coop(tmp_path, "config", "test", "--json", TEST_UP_KEY="sk-good")
    assert checked.returncode == 0, checked.stderr
    row = json.loads(checked.stdout)[0]
    assert row["list_models"]["ok"] and row["chat"]["ok"] and row["chat"]["latency_ms"] > 0
    bad = coop(tmp_path, "config", "test", TEST_UP_KEY="sk-revoked")
    assert bad.returncode == 1 and "AuthenticationError" in bad.stdout
