"""``-`` as the prompt reads standard input: ``coop ask -``, ``coop route -``, ``coop cooperate -``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from coop.cli._app import stdin_operand


def coop_stdin(folder: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m coop ARGS`` in ``folder`` (the embedded simulated setup) fed ``stdin``."""
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(folder / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ask", "-"], ["ask", "--", "-"]),
        (["ask", "-", "--json"], ["ask", "--json", "--", "-"]),
        (["route", "--json", "-"], ["route", "--json", "--", "-"]),
        (["ask", "--", "-"], ["ask", "--", "-"]),
        (["ask", "-", "--", "x"], ["ask", "--", "-", "x"]),
        (["ask", "--", "--json", "-"], ["ask", "--", "--json", "-"]),
        (["ask", "hello", "--json"], ["ask", "hello", "--json"]),
        (["ask", "-x"], ["ask", "-x"]),
    ],
)
def test_stdin_operand(args: list[str], expected: list[str]) -> None:
    assert stdin_operand(args) == expected


def test_ask_dash_reads_stdin(tmp_path: Path) -> None:
    result = coop_stdin(tmp_path, "What is 2 + 2?\n", "ask", "-", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"].endswith("4")


def test_route_dash_reads_stdin(tmp_path: Path) -> None:
    prompt = "Solve for x: 3x + 7 = 22. Show your steps."
    piped = coop_stdin(tmp_path, prompt, "route", "--json", "-")
    assert piped.returncode == 0, piped.stderr
    direct = coop_stdin(tmp_path, "", "route", "--json", prompt)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(piped.stdout)["task_type"] == json.loads(direct.stdout)["task_type"] == "math"


def test_cooperate_dash_reads_stdin(tmp_path: Path) -> None:
    result = coop_stdin(
        tmp_path,
        "What is 21 * 2?",
        "cooperate",
        "-",
        "--models",
        "sim-light,sim-reasoning",
        "--strategy",
        "voting",
    )
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout


def test_unknown_option_is_still_an_error(tmp_path: Path) -> None:
    result = coop_stdin(tmp_path, "", "ask", "--frobnicate", "-")
    assert result.returncode == 2
    assert "--frobnicate" in result.stderr
