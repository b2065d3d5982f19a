"""``coop plugin new KIND NAME``: each scaffold installs and passes its own test at once;
``coop completion SHELL`` prints a script the shell accepts.

The scaffolds go into one throw-away venv (uv, no network: ``--no-deps``, no build
isolation) that sees the repository's environment through a ``.pth`` file, so
``llm-coop``, hatchling and the built-in ``simulated`` provider are there without
reinstalling them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cli_runner import run_coop
from coop.cli._plugin_cmds import KINDS

UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="module")
def scaffolds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every kind scaffolded by the CLI and installed (editable) into one venv."""
    if not UV.exists():
        pytest.skip("uv is not installed beside this Python (make install puts it there)")
    root = tmp_path_factory.mktemp("plugins")
    for kind in KINDS:
        result = run_coop(root, "plugin", "new", kind, f"my-{kind}")
        assert result.returncode == 0, result.stderr
        assert (root / f"llm-coop-my-{kind}" / "pyproject.toml").is_file()
    venv = root / "venv"
    subprocess.run(
        [str(UV), "venv", "-q", str(venv), "--python", sys.executable], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_coop_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf-8"
    )
    editables = [arg for kind in KINDS for arg in ("-e", str(root / f"llm-coop-my-{kind}"))]
    installed = subprocess.run(
        # no build isolation: hatchling (requirements-dev.txt) comes from the parent env,
        # so nothing is downloaded
        [
            str(UV),
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            "--no-deps",
            "--no-build-isolation",
            *editables,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    return root, python


@pytest.mark.parametrize("kind", KINDS)
def test_scaffold_installs_and_passes_its_own_test(kind: str, scaffolds: tuple[Path, Path]) -> None:
    root, python = scaffolds
    folder = root / f"llm-coop-my-{kind}"
    package = folder / "src" / f"coop_my_{kind}" / "__init__.py"
    assert "@hookimpl" in package.read_text(encoding="utf-8")
    assert f'my-{kind} = "coop_my_{kind}"' in (folder / "pyproject.toml").read_text()
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_coop_plugins_lists_the_installed_scaffolds(scaffolds: tuple[Path, Path]) -> None:
    root, python = scaffolds
    listed = subprocess.run(
        [str(python), "-m", "coop", "plugins", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    by_name = {p["name"]: p for p in json.loads(listed.stdout)}
    for kind in KINDS:
        info = by_name[f"my-{kind}"]
        assert info["distribution"] == f"llm-coop-my-{kind}" and not info["error"]


def test_unknown_kind_is_a_usage_error_naming_the_kinds(tmp_path: Path) -> None:
    result = run_coop(tmp_path, "plugin", "new", "widget", "x")
    assert result.returncode == 2
    assert "widget" in result.stderr and "provider, router, strategy, service" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir()) or list(tmp_path.iterdir()) == [tmp_path / ".xdg"]


def test_bad_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_coop(tmp_path, "plugin", "new", "router", "My Router")
    assert result.returncode == 2
    assert "'My Router' is not a plugin name" in result.stderr


def test_existing_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_coop(tmp_path, "plugin", "new", "strategy", "x", "--dir", str(target))
    assert result.returncode == 2
    assert f"{target} already exists" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_is_valid_bash(tmp_path: Path) -> None:
    result = run_coop(tmp_path, "completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "complete -F" in result.stdout and "plugin" in result.stdout
    script = tmp_path / "coop.bash"
    script.write_text(result.stdout, encoding="utf-8")
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("shell", "marker"), [("zsh", "#compdef coop"), ("fish", "complete -c coop")]
)
def test_zsh_and_fish_completion(tmp_path: Path, shell: str, marker: str) -> None:
    result = run_coop(tmp_path, "completion", shell)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout and "serve" in result.stdout


def test_unknown_shell_is_a_usage_error(tmp_path: Path) -> None:
    result = run_coop(tmp_path, "completion", "tcsh")
    assert result.returncode == 2 and "Traceback" not in result.stderr
