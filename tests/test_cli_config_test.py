"""``coop config test`` reports an endpoint it cannot reach at once: no retries, no cooldowns."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: What the old retry loop spent waiting on cooldowns before reporting (1 + 2 + 4 + 8 s).
RETRY_WAITS = 15.0


def write_config(folder: Path, base_url: str) -> None:
    (folder / "coop.toml").write_text(
        f"""
[endpoints.up]
provider = "custom"
base_url = "{base_url}"
api_keys = ["sk-test"]
health_check_interval = 0

[models.small]
endpoint = "up"
path = "gpt-4o-mini"
tier = "light"

[routing]
light = "small"
reasoning = "small"
"""
    )


def timed_coop(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(folder / ".xdg")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        (
            "http://nonexistent.invalid:8080/v1",
            "endpoint 'up': host 'nonexistent.invalid' does not resolve",
        ),
        ("http://127.0.0.1:{port}/v1", "endpoint 'up': 127.0.0.1:{port} refused the connection"),
    ],
    ids=["dns", "refused"],
)
def test_unreachable_endpoint_fails_fast(tmp_path: Path, base_url: str, message: str) -> None:
    port = free_port()
    write_config(tmp_path, base_url.format(port=port))
    message = message.format(port=port)
    # The interpreter's start-up is the baseline: `config validate` loads the same config.
    baseline, startup = timed_coop(tmp_path, "config", "validate")
    assert baseline.returncode == 0, baseline.stderr
    result, elapsed = timed_coop(tmp_path, "config", "test")
    assert result.returncode == 1, result.stderr
    assert message in result.stdout and "Traceback" not in result.stderr
    # The old retry loop waited ~15 s on cooldowns; what is left is one failed lookup.
    assert elapsed - startup < RETRY_WAITS / 3, (elapsed, startup)
    as_json, _ = timed_coop(tmp_path, "config", "test", "--json")
    row = json.loads(as_json.stdout)[0]
    assert row["list_models"]["ok"] is False and message in row["list_models"]["error"]
    assert row["chat"]["ok"] is None and "not tried" in row["chat"]["error"]
