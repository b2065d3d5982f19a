"""The CLI's config commands, run as a user would: a subprocess in an empty folder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

COOP = [sys.executable, "-m", "coop"]

HAND_WRITTEN = """\
# My coop setup -- do not lose this comment
[server]
port = 8080   # the port, with a trailing comment

# endpoints below
[endpoints.local]
provider = "simulated"

[models.small]  # a small one
endpoint = "local"
path = "sim-light"
"""


def coop(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    full["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    full.update(env or {})
    return subprocess.run(
        [*COOP, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120, input=stdin
    )


def test_version_and_help(tmp_path: Path) -> None:
    result = coop("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip()[0].isdigit()
    for command in (
        ["--help"],
        ["init", "--help"],
        ["config", "--help"],
        ["config", "add-model", "--help"],
        ["plugins", "--help"],
    ):
        result = coop(*command, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_init_then_validate_in_an_empty_folder(tmp_path: Path) -> None:
    result = coop("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "coop.toml").read_text().startswith("# coop.toml")
    result = coop("config", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (1 endpoints, 3 models, 1 cooperations" in result.stdout
    again = coop("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_add_model_keeps_every_comment(tmp_path: Path) -> None:
    path = tmp_path / "coop.toml"
    path.write_text(HAND_WRITTEN)
    result = coop(
        "config",
        "add-model",
        "--name",
        "big",
        "--path",
        "sim-large",
        "--endpoint",
        "local",
        "--tier",
        "complex",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    for line in HAND_WRITTEN.splitlines():
        assert line in text
    assert '[models.big]\nendpoint = "local"\npath = "sim-large"\ntier = "complex"' in text
    listed = json.loads(coop("config", "list", "--json", cwd=tmp_path).stdout)
    assert listed["models"]["big"]["deployments"][0]["path"] == "sim-large"


def test_add_endpoint_then_model(tmp_path: Path) -> None:
    (tmp_path / "coop.toml").write_text(HAND_WRITTEN)
    result = coop(
        "config",
        "add-endpoint",
        "--name",
        "ollama",
        "--base-url",
        "http://127.0.0.1:11434/v1",
        "--provider",
        "simulated",
        "--api-key-env",
        "OLLAMA_KEY",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert 'api_keys = ["env:OLLAMA_KEY"]' in (tmp_path / "coop.toml").read_text()


def test_bad_edit_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "coop.toml"
    path.write_text(HAND_WRITTEN)
    before = path.read_bytes()
    result = coop(
        "config", "add-model", "--name", "x", "--path", "p", "--endpoint", "lokal", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "no endpoint 'lokal' (did you mean 'local'?)" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".coop")] == []


def test_malformed_toml_prints_line_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "coop.toml").write_text("[server]\nport = 8080\nhost = \n")
    result = coop("config", "validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "coop.toml:3" in result.stderr and "invalid TOML" in result.stderr
    assert "Traceback" not in result.stderr
    debug = coop("config", "validate", "--debug", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_unknown_provider_is_named(tmp_path: Path) -> None:
    (tmp_path / "coop.toml").write_text('[endpoints.a]\nprovider = "simulatd"\n')
    result = coop("config", "validate", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "endpoints.a.provider: no provider plugin 'simulatd' (did you mean 'simulated'?)"
        in result.stderr
    )


def test_preset_puts_the_key_in_dotenv(tmp_path: Path) -> None:
    result = coop(
        "config", "preset", "--name", "simulated", "--api-key", "sk-secret-123", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "coop.toml").read_text()
    assert "sk-secret-123" not in text and '"env:SIMULATED_API_KEY"' in text
    assert 'SIMULATED_API_KEY="sk-secret-123"' in (tmp_path / ".env").read_text()
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    listed = coop("config", "list", cwd=tmp_path)
    assert "sk-secret-123" not in listed.stdout


def test_preset_with_literal_key_is_written_0600(tmp_path: Path) -> None:
    result = coop(
        "config",
        "preset",
        "--name",
        "simulated",
        "--api-key",
        "sk-literal",
        "--store-literal",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "coop.toml"
    assert "sk-literal" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = json.loads(coop("config", "list", "--json", cwd=tmp_path).stdout)
    assert listed["endpoints"]["simulated"]["api_keys"] == ["***"]


def test_unknown_preset_lists_the_valid_ones(tmp_path: Path) -> None:
    result = coop("config", "preset", "--name", "nope", "--api-key", "k", cwd=tmp_path)
    assert result.returncode == 2
    assert "no preset 'nope'" in result.stderr and "simulated" in result.stderr


@pytest.mark.parametrize(
    "args", [["config", "add-model", "--name", "x"], ["bogus-command"], ["init", "--no-such-flag"]]
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = coop(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
