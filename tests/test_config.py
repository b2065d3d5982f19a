"""coop.toml: discovery, validation with located errors, .env and the seed's variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from coop import ConfigError, MissingSecretError, SystemConfig

GOOD = """\
[server]
port = 9000

[endpoints.aigcbest]
provider = "aigcbest"
api_keys = ["env:TEST_AIGC_KEY", "env:TEST_AIGC_KEY_2"]

[models.qwen3_8b]
endpoint = "aigcbest"
path = "Qwen/Qwen3-8B"
tier = "light"
price = { input = 0.3, output = 0.6 }
fallbacks = ["qwen3_32b"]

[models.qwen3_32b]
deployments = [
  { endpoint = "aigcbest", path = "Qwen/Qwen3-32B" },
  { endpoint = "aigcbest", path = "Qwen/Qwen3-32B-fast", weight = 2 },
]
tier = "reasoning"

[routing]
light = "qwen3_8b"
reasoning = "qwen3_32b"
complex = "council"

[cooperations.council]
mode = "parallel"
models = ["qwen3_32b", "qwen3_8b"]
strategy = "voting"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        SystemConfig.load(write(tmp_path, text))
    return caught.value


def test_load_full_config(tmp_path: Path) -> None:
    config = SystemConfig.load(write(tmp_path, GOOD))
    assert config.server.port == 9000
    assert config.models["qwen3_8b"].deployments[0].path == "Qwen/Qwen3-8B"
    assert config.models["qwen3_8b"].price.output == 0.6
    assert [d.weight for d in config.models["qwen3_32b"].deployments] == [1.0, 2]
    assert config.cooperations["council"].strategy == "voting"
    assert config.served_names() == ["auto", "council", "qwen3_32b", "qwen3_8b"]


def test_missing_secret_only_matters_when_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_AIGC_KEY", raising=False)
    config = SystemConfig.load(write(tmp_path, GOOD))  # loading is fine
    with pytest.raises(MissingSecretError) as caught:
        config.endpoints["aigcbest"].resolved_api_keys()
    assert caught.value.variable == "TEST_AIGC_KEY"
    assert "TEST_AIGC_KEY" in str(caught.value)


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, '[server]\nport = 80\nhost = "x\n')
    assert err.line == 3
    assert str(err).startswith(f"{tmp_path / 'coop.toml'}:3")


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[server]\nport = 80\nhots = 'a'\n")
    assert err.line == 3 and err.key == "server.hots"
    assert "did you mean 'host'" in str(err)


def test_reference_to_unknown_endpoint(tmp_path: Path) -> None:
    text = GOOD.replace(
        'endpoint = "aigcbest"\npath = "Qwen/Qwen3-8B"',
        'endpoint = "aigbest"\npath = "Qwen/Qwen3-8B"',
    )
    err = error_of(tmp_path, text)
    assert err.key == "models.qwen3_8b.endpoint"
    assert err.line == 9
    assert str(err).endswith(
        "no endpoint 'aigbest' (did you mean 'aigcbest'?); defined endpoints: aigcbest"
    )


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        (
            "[server]\nport = 'eighty'\n",
            "server.port",
            "expected an integer, got a string ('eighty')",
        ),
        ("[server]\nport = 70000\n", "server.port", "0-65535"),
        ("[endpoints.a]\nbase_url = 'http://x'\n", "endpoints.a", "missing 'provider'"),
        ("[endpoints.a]\nprovider = 'simulated'\ntimeout = -1\n", "endpoints.a.timeout", "> 0"),
        (
            "[endpoints.a]\nprovider = 'simulated'\n[models.m]\nendpoint = 'a'\ntier = 'heavy'\n",
            "models.m.tier",
            "light, reasoning, complex",
        ),
        ("[routing]\nlight = 'nope'\n", "routing.light", "no model or cooperation 'nope'"),
        ("log_level = 'LOUD'\n", "log_level", "DEBUG"),
        ("[cooperations.c]\nmode = 'parallel'\n", "cooperations.c", "missing 'models'"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, snippet: str, key: str, words: str) -> None:
    err = error_of(tmp_path, snippet)
    assert err.key == key
    assert words in str(err)
    assert err.line is not None


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOP_CONFIG", raising=False)
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert SystemConfig().embedded  # nothing anywhere: the simulated default
    user = tmp_path / "xdg" / "coop" / "coop.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[endpoints.u]\nprovider = 'simulated'\n")
    assert set(SystemConfig().endpoints) == {"u"}
    write(tmp_path, "[endpoints.here]\nprovider = 'simulated'\n")
    assert set(SystemConfig().endpoints) == {"here"}
    other = tmp_path / "other.toml"
    other.write_text("[endpoints.env]\nprovider = 'simulated'\n")
    monkeypatch.setenv("COOP_CONFIG", str(other))
    assert set(SystemConfig().endpoints) == {"env"}
    assert set(SystemConfig.discover(user).endpoints) == {"u"}


def test_seed_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    (tmp_path / ".env").write_text(
        'BASE_URL=http://127.0.0.1:9/v1\nAPI_KEY="sk-test"  \n# comment\nSERVER_PORT=8123\nexport LOG_LEVEL=debug\n'
    )
    for name in ("BASE_URL", "API_KEY", "SERVER_PORT", "LOG_LEVEL", "MODELS"):
        # setenv first so that undoing restores "unset" even after .env filled it in
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    config = SystemConfig()
    assert config.endpoints["default"].base_url == "http://127.0.0.1:9/v1"
    assert config.endpoints["default"].resolved_api_keys() == ["sk-test"]
    assert config.server.port == 8123
    assert config.log_level == "DEBUG"


def test_unreadable_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOP_CONFIG", raising=False)
    (tmp_path / ".env").write_text("this is not an assignment\n")
    with pytest.raises(ConfigError) as caught:
        SystemConfig()
    assert caught.value.line == 1 and ".env" in str(caught.value)
