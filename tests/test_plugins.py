"""The plugin loader: entry points, broken plugins, duplicates, disabling, coop plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import coop
import pytest
from coop import DuplicateNameError, UnknownPluginError, hookimpl, load_plugins
from plugin_dists import make_dist

COOP = [sys.executable, "-m", "coop"]

BROKEN = """
raise RuntimeError("this plugin is broken on purpose")
"""

DUPLICATE = """
from coop import hookimpl, Provider

class Impostor(Provider):
    name = "simulated"
    async def chat(self, request, call): ...
    def stream(self, request, call): ...

@hookimpl
def coop_register_providers(register):
    register(Impostor)
"""


def run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("COOP_CONFIG", None)
    return subprocess.run(
        [*COOP, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_builtin_simulated_provider_is_discovered() -> None:
    plugins = load_plugins()
    assert "simulated" in plugins.names("provider")
    info = plugins.infos["simulated"]
    assert info.distribution == "llm-coop-simulated"
    assert info.registers == {"provider": ["simulated"]}
    assert info.error is None


def test_unknown_name_lists_available() -> None:
    plugins = load_plugins()
    with pytest.raises(UnknownPluginError) as caught:
        plugins.get("provider", "simulatd")
    assert "did you mean 'simulated'" in str(caught.value)
    assert "simulated" in caught.value.available


def test_in_process_plugin_registers() -> None:
    class Extra:
        @hookimpl
        def coop_register_strategies(self, register):
            register(Majority)

    class Majority(coop.Strategy):
        name = "test-majority"

        async def integrate(self, candidates, context):
            return coop.Integration(text=candidates[0].text)

    plugins = load_plugins(extra={"extra": Extra()})
    assert plugins.get("strategy", "test-majority") is Majority
    assert plugins.infos["extra"].registers == {"strategy": ["test-majority"]}


def test_registering_a_non_subclass_is_reported() -> None:
    class Bad:
        @hookimpl
        def coop_register_routers(self, register):
            register(object)

    plugins = load_plugins(extra={"bad": Bad()})
    assert "does not subclass coop.Router" in plugins.infos["bad"].error


def test_broken_plugin_is_listed_and_others_still_load(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site", "llm-coop-broken", "coop_broken", BROKEN, entry_name="broken"
    )
    result = run(["plugins", "--json"], cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "RuntimeError: this plugin is broken on purpose" in rows["broken"]["error"]
    assert rows["broken"]["distribution"] == "llm-coop-broken"
    assert rows["simulated"]["error"] is None
    assert rows["simulated"]["registers"] == {"provider": ["simulated"]}
    for row in rows.values():
        assert {"name", "distribution", "version", "registers", "error"} <= set(row)
    human = run(["plugins"], cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert human.returncode == 0
    assert "ERROR RuntimeError" in human.stdout and "simulated" in human.stdout


def test_duplicate_names_name_both_distributions(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site", "llm-coop-impostor", "coop_impostor", DUPLICATE, entry_name="impostor"
    )
    sys.path.insert(0, str(site))
    try:
        plugins = load_plugins()
    finally:
        sys.path.remove(str(site))
    with pytest.raises(DuplicateNameError) as caught:
        plugins.get("provider", "simulated")
    message = str(caught.value)
    assert "llm-coop-simulated" in message and "llm-coop-impostor" in message
    assert plugins.infos["impostor"].error == message


def test_disabled_plugins_are_skipped_but_essentials_stay(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site", "llm-coop-broken", "coop_broken", BROKEN, entry_name="broken"
    )
    sys.path.insert(0, str(site))
    try:
        plugins = load_plugins(disabled=["broken", "simulated"])
    finally:
        sys.path.remove(str(site))
    assert plugins.infos["broken"].disabled and plugins.infos["broken"].error is None
    assert "simulated" in plugins.names("provider")  # essential: cannot be disabled


def test_disabled_from_coop_toml(tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site", "llm-coop-broken", "coop_broken", BROKEN, entry_name="broken"
    )
    (tmp_path / "coop.toml").write_text(
        '[plugins]\ndisabled = ["broken"]\n\n[endpoints.s]\nprovider = "simulated"\n'
    )
    result = run(["plugins", "--json"], cwd=tmp_path, env={"PYTHONPATH": str(site)})
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["broken"]["disabled"] is True and rows["broken"]["error"] is None


def test_allow_list_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOP_PLUGINS", "simulated")
    plugins = load_plugins()
    loaded = [name for name, info in plugins.infos.items() if not info.disabled]
    assert "simulated" in loaded
    assert all(plugins.infos[n].disabled for n in plugins.infos if n not in ("simulated", "rules"))


def test_every_hookspec_is_documented() -> None:
    from coop import hookspecs

    names = [n for n in dir(hookspecs) if n.startswith("coop_")]
    assert names
    docs = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name in names:
        assert getattr(hookspecs, name).__doc__, name
        assert name in docs, f"{name} missing from docs/plugins.md"
