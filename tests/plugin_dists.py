"""Make throw-away installed distributions (dist-info + module) for plugin tests.

importlib.metadata finds any ``*.dist-info`` on ``sys.path``, so a folder put on
``PYTHONPATH`` is a real installed distribution to the plugin loader.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_dist(
    root: Path,
    dist: str,
    module: str,
    source: str,
    *,
    entry_name: str | None = None,
    version: str = "0.1.0",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[coop]\n{entry_name or module} = {module}\n", encoding="utf-8"
    )
    return root
