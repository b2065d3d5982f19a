"""Every plugin distribution is wired the same way: the all extra, entry points, layout."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
