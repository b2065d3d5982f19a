"""Every example in the docs runs: console sessions, Python snippets and coop.toml files.

- ```console blocks: each ``$ coop ...`` line runs in one scratch folder per page
  (so ``coop init`` then ``coop config validate`` works); it must exit 0, or the
  code named by a trailing ``# exits N``; a line ending in ``&`` starts a gateway
  in the background for the lines after it.
- ```python blocks run with ``exec`` in that folder.
- ```toml blocks whose first line is ``# coop.toml`` must validate.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = Path(__file__).resolve().parent.parent / "README.md"
FIXTURES = Path(__file__).resolve().parent / "docs_fixtures"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
PAGES = sorted(DOCS.glob("*.md")) + sorted((DOCS / "zh").glob("*.md"))  # English, then 中文


def _page_id(page: Path) -> str:
    return f"zh/{page.name}" if page.parent.name == "zh" else page.name


def blocks(page: Path, kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text(encoding="utf-8")) if lang == kind]


def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    for fixture in FIXTURES.iterdir():
        shutil.copy(fixture, tmp_path / fixture.name)
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / ".config")
    env["XDG_DATA_HOME"] = str(tmp_path / ".data")
    return tmp_path, env


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on port {port}")


@pytest.mark.parametrize(
    "page", [p for p in PAGES if blocks(p, "console")], ids=lambda p: _page_id(p)
)
def test_console_examples(page: Path, tmp_path: Path) -> None:
    cwd, env = scratch(tmp_path)
    background: list[subprocess.Popen[bytes]] = []
    try:
        for block in blocks(page, "console"):
            for line in block.splitlines():
                if not line.startswith("$ "):
                    continue
                command = line[2:]
                expected = 0
                match = re.search(r"#\s*exits (\d+)", command)
                if match:
                    expected = int(match.group(1))
                command = command.split("  #")[0].split(" # ")[0].strip()
                argv = shlex.split(command)
                assert argv[0] == "coop", f"{page.name}: only coop commands run here: {line}"
                full = [sys.executable, "-m", "coop", *argv[1:]]
                if full[-1] == "&":
                    port = int(argv[argv.index("--port") + 1])
                    background.append(
                        subprocess.Popen(
                            full[:-1],
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    wait_for_port(port)
                    continue
                result = subprocess.run(
                    full, cwd=cwd, env=env, capture_output=True, text=True, timeout=180
                )
                assert result.returncode == expected, (
                    f"{page.name}: {line}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
                )
                if expected == 2:
                    assert "Traceback" not in result.stderr
    finally:
        for process in background:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.parametrize(
    "page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: _page_id(p)
)
def test_python_examples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd, env = scratch(tmp_path)
    monkeypatch.chdir(cwd)
    for name in ("COOP_CONFIG", "BASE_URL", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    for number, block in enumerate(blocks(page, "python")):
        if "OpenAI(" in block:
            continue  # needs a running gateway: covered by tests/test_gateway*.py
        exec(
            compile(block, f"{page.name}[python {number}]", "exec"), {"__name__": f"docs_{number}"}
        )


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda p: _page_id(p))
def test_toml_examples_validate(page: Path) -> None:
    from coop import SystemConfig, load_plugins
    from coop._config import check_plugins

    plugins = load_plugins()
    for block in blocks(page, "toml"):
        if not block.startswith("# coop.toml"):
            continue
        config = SystemConfig.from_dict(tomllib.loads(block), source=f"{page.name} example")
        check_plugins(config, plugins)
