"""Every plugin distribution is wired the same way: the all extra, entry points, layout."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(ROOT.glob("plugins/*/*/pyproject.toml"))


def test_all_extra_lists_every_plugin() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = {tomllib.loads(p.read_text())["project"]["name"] for p in PLUGINS}
    assert set(root["project"]["optional-dependencies"]["all"]) == names


def test_each_plugin_is_a_complete_distribution() -> None:
    assert len(PLUGINS) >= 10
    for path in PLUGINS:
        folder = path.parent
        project = tomllib.loads(path.read_text())["project"]
        short = folder.name
        assert project["name"] == f"llm-coop-{short}", path
        assert "llm-coop" in project["dependencies"], path
        assert project["entry-points"]["coop"] == {short: f"coop_{short}"}, path
        assert (folder / "src" / f"coop_{short}" / "__init__.py").is_file(), path
        assert (folder / "README.md").is_file(), path
        assert list((folder / "tests").glob("test_*.py")), f"{folder} has no tests"


# -- what the core brings ----------------------------------------------------------------------

IMPORTS = re.compile(r"^\s*(?:from|import)\s+coop_(\w+)", re.M)


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def test_the_core_brings_the_essential_plugins() -> None:
    from coop._plugins import ESSENTIAL

    core = {
        _name(r)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    # the embedded default's provider, router and council strategy, the BASE_URL provider
    assert {f"llm-coop-{name}" for name in ESSENTIAL} <= core
    assert {"llm-coop-voting", "llm-coop-openai"} <= core


def test_plugins_declare_the_plugins_they_import() -> None:
    for path in PLUGINS:
        folder = path.parent
        declared = {_name(r) for r in tomllib.loads(path.read_text())["project"]["dependencies"]}
        for source in (folder / "src").rglob("*.py"):
            for other in IMPORTS.findall(source.read_text(encoding="utf-8")):
                if other != folder.name:
                    assert f"llm-coop-{other}" in declared, f"{source} imports coop_{other}"


# -- installed from wheels, as a user installs them ------------------------------------------

BUILD = """
import os, sys
from hatchling.build import build_wheel
out = os.path.abspath(sys.argv[1])
for root in sys.argv[2:]:
    os.chdir(root)
    build_wheel(out)
"""


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build and install the wheels (make install brings it)")
    return found


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (
        f"{argv}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
    )
    return result


def _user_env(home: Path) -> dict[str, str]:
    """A user's shell: no coop or seed variables, a home of its own, nothing from this venv."""
    drop = {
        "BASE_URL",
        "API_KEY",
        "MODELS",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("COOP_")}
    env["HOME"] = str(home)
    return env


def test_wheels_install_and_answer(tmp_path: Path) -> None:
    """`pip install llm-coop` alone answers `coop ask` offline; `[all]` adds every plugin."""
    uv = _uv()
    uv_env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    wheels, builder, venv, home, cwd = (
        tmp_path / n for n in ("wheels", "builder", "venv", "home", "cwd")
    )
    for folder in (home, cwd):
        folder.mkdir()
    # hatchling's PEP 517 hook in one process: 17 wheels in seconds, nothing written in the repo
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(builder)], env=uv_env)
    python = str(builder / "bin" / "python")
    _run([uv, "pip", "install", "--quiet", "--python", python, "hatchling>=1.24"], env=uv_env)
    roots = [str(ROOT)] + [str(p.parent) for p in PLUGINS]
    _run([python, "-c", BUILD, str(wheels), *roots], env=uv_env)
    assert len(list(wheels.glob("*.whl"))) == len(roots)

    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env=uv_env)
    target = str(venv / "bin" / "python")
    install = [uv, "pip", "install", "--quiet", "--python", target, "--find-links", str(wheels)]
    _run([*install, "llm-coop"], env=uv_env)
    coop = str(venv / "bin" / "coop")
    user = _user_env(home)

    asked = _run([coop, "ask", "what is 2+2"], cwd=cwd, env=user)
    assert "4" in asked.stdout, asked.stdout
    listed = json.loads(_run([coop, "plugins", "--json"], cwd=cwd, env=user).stdout)
    assert {p["distribution"]: p["version"] for p in listed} == {
        "llm-coop-openai": "0.1.0",
        "llm-coop-rules": "0.1.0",
        "llm-coop-simulated": "0.1.0",
        "llm-coop-voting": "0.1.0",
    }
    routed = json.loads(_run([coop, "route", "--json", "hi"], cwd=cwd, env=user).stdout)
    assert routed["router"] == "rules"  # the classifier is not installed: the essential one

    _run([*install, "llm-coop[all]"], env=uv_env)
    listed = json.loads(_run([coop, "plugins", "--json"], cwd=cwd, env=user).stdout)
    assert sorted(p["name"] for p in listed) == sorted(p.parent.name for p in PLUGINS)
    assert all(p["error"] is None and not p["disabled"] for p in listed), listed
