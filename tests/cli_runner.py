"""Run the ``coop`` CLI as a user would: a subprocess in a scratch folder, clean env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from coop import SystemConfig


def run_coop(
    cwd: Path, *args: str, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m coop ARGS`` in ``cwd``, without ``COOP_CONFIG`` or the ``unset`` variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", *unset)}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def apply_preset(folder: Path, name: str, key_env: str) -> SystemConfig:
    """``coop config preset --name NAME --api-key k`` in ``folder`` (with ``key_env`` unset),
    checked to succeed; the coop.toml it wrote."""
    result = run_coop(
        folder, "config", "preset", "--name", name, "--api-key", "k", unset=(key_env,)
    )
    assert result.returncode == 0, result.stderr
    return SystemConfig.load(folder / "coop.toml")
