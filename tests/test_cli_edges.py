"""What a newcomer types first: a global --debug before the command, a config with no models."""

from __future__ import annotations

from pathlib import Path

from cli_runner import run_coop


def test_debug_before_the_command_is_accepted(tmp_path: Path) -> None:
    result = run_coop(tmp_path, "--debug", "route", "hello", "--json")
    assert result.returncode == 0, result.stderr
    assert '"tier"' in result.stdout


def test_a_config_without_models_is_a_usage_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "coop.toml").write_text("[server]\nport = 8099\n")
    for command in (["route", "hello"], ["ask", "hello"]):
        result = run_coop(tmp_path, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert "internal error" not in result.stderr
        assert "coop.toml models: nothing to route to" in result.stderr
        assert "Traceback" not in result.stderr


def test_plugin_files_are_relative_to_coop_toml(tmp_path: Path, monkeypatch) -> None:
    from coop import SystemConfig

    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "coop.toml").write_text(
        '[models.m]\nendpoint = "sim"\npath = "m"\n'
        '[endpoints.sim]\nprovider = "simulated"\n'
        '[routing]\nrouter = "outcome"\noptions = { model_file = "router.json" }\n'
        '[cooperations.c]\nmodels = ["m", "m"]\nstrategy = "weighted"\n'
        'options = { weights_file = "/abs/w.json" }\n'
    )
    monkeypatch.chdir(tmp_path)  # started elsewhere: the file is still found beside coop.toml
    config = SystemConfig.load(Path("conf/coop.toml"))
    assert config.routing.options["model_file"] == str(folder.resolve() / "router.json")
    assert config.cooperations["c"].options["weights_file"] == "/abs/w.json"
