"""The docs site: the strict mkdocs build, and the references generated from the code.

``docs/gen_reference.py`` writes docs/reference/configuration.md from coop.toml's
schema (``coop._config``) and docs/reference/cli.md from the cyclopts application;
mkdocs runs it as a hook, so the site cannot show a stale reference.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mentioned(name: str) -> bool:
    """``name`` appears as code (`name` or name = ...) in a hand-written docs page."""
    pattern = re.compile(rf"`[^`\n]*\b{re.escape(name)}\b[^`\n]*`|^\s*{re.escape(name)}\s*=", re.M)
    return any(pattern.search(p.read_text(encoding="utf-8")) for p in DOCS.glob("*.md"))


def test_every_config_key_is_in_the_reference_with_its_meaning() -> None:
    from coop import _config

    gen = _generator()
    keys = gen.config_keys()
    paths = {k.path for k in keys}
    # every table the schema checks is covered: no `_*_KEYS` spec left out
    specs = {n for n in dir(_config) if re.fullmatch(r"_[A-Z]+_KEYS", n)}
    used = {spec for _, spec, _, _ in gen.SECTIONS} | {f"_{s.upper()}_KEYS" for s in paths}
    assert specs <= used | {"_TOP_KEYS"}, f"key specs not in the reference: {specs - used}"
    for name in _config._TOP_KEYS:
        assert name in paths
    for name in _config._SERVER_KEYS:
        assert f"server.{name}" in paths
    for name in _config._MODEL_KEYS:
        assert f"models.NAME.{name}" in paths
    undocumented = [
        k.path for k in keys if not k.meaning and not _mentioned(k.path.rsplit(".", 1)[-1])
    ]
    assert not undocumented, f"config keys with no meaning anywhere in docs/: {undocumented}"
    page = gen.config_reference()
    for key in keys:
        assert f"| `{key.path}` |" in page
    assert "| `log_level` | one of `DEBUG`" in page
    assert "| `server.port` | integer 1-65535 | `8080` |" in page


def test_every_cli_command_is_in_the_reference() -> None:
    from coop.cli._app import build_app

    page = _generator().cli_reference()

    def walk(app, prefix: str) -> list[str]:
        found = []
        for name in app:
            if name.startswith("-"):
                continue
            found.append(f"{prefix} {name}")
            found += walk(app[name], f"{prefix} {name}")
        return found

    commands = walk(build_app(), "coop")
    assert {"coop plugin new", "coop completion", "coop serve", "coop config validate"} <= set(
        commands
    )
    for command in commands:
        assert f"# {command}\n" in page, f"{command} missing from the CLI reference"
    assert "--dir" in page and "--json" in page


def test_chinese_pages_exist_with_their_titles() -> None:
    titles = {
        p.name: p.read_text(encoding="utf-8").splitlines()[0] for p in (DOCS / "zh").glob("*.md")
    }
    assert titles["quickstart.md"] == "# 快速开始"
    assert {"configuration.md", "routing.md", "cooperation.md", "services.md"} <= set(titles)
    services = (DOCS / "zh" / "services.md").read_text(encoding="utf-8")
    assert '$ coop service data_insight --content "销售数据: Q1: 100万' in services


def test_strict_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    out = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    quickstart = (out / "zh" / "quickstart" / "index.html").read_text(encoding="utf-8")
    assert "快速开始" in quickstart
    reference = (out / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "server.max_body_bytes" in reference
    cli = (out / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "coop plugin new" in cli
    architecture = (out / "architecture" / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in architecture


def test_operations_pages_join_the_nav_only_when_they_exist(tmp_path: Path) -> None:
    (tmp_path / "deploy.md").write_text("# Deployment\n")
    nav = [{"Home": "index.md"}, {"Operations": [{"Monitoring": "monitoring.md"}]}]
    config = _generator().on_config({"docs_dir": str(tmp_path), "nav": nav})
    pages = [next(iter(p.values())) for p in config["nav"][1]["Operations"]]
    assert pages == ["monitoring.md", "deploy.md"]  # keys.md and state.md do not exist here
