"""Run the ``coop`` CLI as a user would: a subprocess in a scratch folder, clean env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
