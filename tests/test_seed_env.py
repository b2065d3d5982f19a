"""The original system's quick start, as a user runs it: only BASE_URL and API_KEY set.

No coop.toml, no MODELS: a known preset URL gives that provider's catalogue (no network
call), any other URL the models its endpoint lists; `auto` routes across them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeOpenAI

MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=["sk-good"], models=MODELS) as server:
        yield server


def coop(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`coop ARGS` in `folder` with only the given seed variables (and no user config)."""
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BASE_URL", "API_KEY", "MODELS") and not k.startswith("COOP_")
    }
    full.update(XDG_CONFIG_HOME=str(folder / ".config"), XDG_DATA_HOME=str(folder / ".data"))
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_models_and_ask_on_a_discovered_endpoint(up: FakeOpenAI, tmp_path: Path) -> None:
    seed = {"BASE_URL": up.base_url, "API_KEY": "sk-good"}
    listed = coop(tmp_path, "models", "--json", **seed)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    rows = {row["name"]: row for row in data["models"]}
    assert set(rows) == {"gpt_4o_mini", "gpt_4o"}  # not text-embedding-3-small: no chat
    assert rows["gpt_4o_mini"]["tier"] == "light" and rows["gpt_4o"]["tier"] == "reasoning"
    (council,) = data["cooperations"]
    assert council["name"] == "council" and council["strategy"] == "voting"
    assert sorted(council["models"]) == ["gpt_4o", "gpt_4o_mini"]

    asked = coop(tmp_path, "ask", "what is 2+2", **seed)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "echo: what is 2+2"
    chats = [r for r in up.requests if r.path.endswith("/chat/completions")]
    assert chats and chats[-1].model in ("gpt-4o-mini", "gpt-4o")
    assert all(r.api_key == "sk-good" for r in up.requests)


def test_a_wrong_key_is_a_clear_error(up: FakeOpenAI, tmp_path: Path) -> None:
    result = coop(tmp_path, "models", BASE_URL=up.base_url, API_KEY="sk-not-the-key")
    assert result.returncode == 2
    assert "BASE_URL" in result.stderr and "HTTP 401" in result.stderr
    assert "sk-not-the-key" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_preset_url_lists_the_preset_catalogue_offline(tmp_path: Path) -> None:
    result = coop(
        tmp_path, "models", "--json", BASE_URL="https://api2.aigcbest.top/v1", API_KEY="sk-x"
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert set(rows) == {"qwen3_8b", "qwen3_32b", "deepseek_v3"}
    assert rows["qwen3_8b"]["tier"] == "light"
    route = coop(
        tmp_path,
        "route",
        "--json",
        "Prove that the square root of 2 is irrational, step by step.",
        BASE_URL="https://api2.aigcbest.top/v1",
        API_KEY="sk-x",
    )
    assert route.returncode == 0, route.stderr
    assert json.loads(route.stdout)["target"] in ("qwen3_32b", "deepseek_v3")
