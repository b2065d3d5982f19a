"""coop.toml: discovery, validation with located errors, .env and the seed's variables."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from coop import ConfigError, MissingSecretError, SystemConfig, load_plugins
from coop._config import guess_tier, list_endpoint_models
from fakes import FakeOpenAI, Fault

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
        'BASE_URL=http://127.0.0.1:9/v1\nAPI_KEY="sk-test"  \n# comment\nSERVER_PORT=8123\n'
        "export LOG_LEVEL=debug\nMODELS=gpt-4o-mini, Qwen/Qwen3-8B\n"
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
    # MODELS names the models: no discovery call (nothing listens on port 9)
    assert {m: config.models[m].deployments[0].path for m in config.models} == {
        "gpt_4o_mini": "gpt-4o-mini",
        "qwen3_8b": "Qwen/Qwen3-8B",
    }
    assert config.routing.light == "gpt_4o_mini"


# -- BASE_URL + API_KEY alone: a preset's catalogue, else the endpoint's own list -----------


def seed(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SystemConfig:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    return SystemConfig.discover(env=env)


def test_preset_base_url_takes_the_preset_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = seed(
        {"BASE_URL": "https://api2.aigcbest.top/v1/", "API_KEY": "sk-x"}, tmp_path, monkeypatch
    )
    assert config.source == "(environment)"
    endpoint = config.endpoints["default"]
    assert endpoint.provider == "aigcbest" and endpoint.api_keys == ["env:API_KEY"]
    assert config.model_names() == ["deepseek_v3", "qwen3_32b", "qwen3_8b"]
    assert config.models["qwen3_8b"].context_window == 32_768
    assert config.models["qwen3_32b"].price.output == 2.4
    routing = config.routing
    assert (routing.light, routing.reasoning, routing.complex) == (
        "qwen3_8b",
        "qwen3_32b",
        "deepseek_v3",
    )
    assert routing.router == "classifier"  # installed here; else the essential "rules"


def test_other_base_url_discovers_the_endpoints_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "Qwen/Qwen3-8B", "o3"]
    with FakeOpenAI(api_keys=["sk-good"], models=models) as up:
        config = seed({"BASE_URL": up.base_url, "API_KEY": "sk-good"}, tmp_path, monkeypatch)
        (listing,) = up.requests
    assert (listing.method, listing.path, listing.api_key) == ("GET", "/v1/models", "sk-good")
    assert config.endpoints["default"].provider == "openai"
    tiers = {name: model.tier for name, model in config.models.items()}
    assert tiers == {
        "gpt_4o_mini": "light",
        "gpt_4o": "reasoning",
        "qwen3_8b": "light",
        "o3": "reasoning",
    }
    assert (config.routing.light, config.routing.reasoning) == ("gpt_4o_mini", "gpt_4o")
    assert config.routing.complex == "council"
    council = config.cooperations["council"]
    assert (council.mode, council.strategy) == ("parallel", "voting")
    assert council.models == ["gpt_4o", "gpt_4o_mini", "o3"]


def test_one_discovered_model_serves_every_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(models=["llama3.1:8b"]) as up:
        config = seed({"BASE_URL": up.base_url}, tmp_path, monkeypatch)
    assert config.model_names() == ["llama3_1_8b"] and not config.cooperations
    assert config.endpoints["default"].api_keys == []
    assert {config.routing.light, config.routing.reasoning, config.routing.complex} == {
        "llama3_1_8b"
    }


def test_discovery_errors_name_base_url_and_status_never_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(api_keys=["sk-good"]) as up:
        with pytest.raises(ConfigError) as caught:
            seed({"BASE_URL": up.base_url, "API_KEY": "sk-wrong-key-1234"}, tmp_path, monkeypatch)
        message = str(caught.value)
        assert caught.value.key == "BASE_URL"
        assert f"GET {up.base_url}/models" in message and "HTTP 401" in message
        assert "API_KEY" in message and "MODELS=" in message
        assert "sk-wrong" not in message and "1234" not in message

        up.queue_fault(Fault.status(503))
        with pytest.raises(ConfigError, match="HTTP 503"):
            list_endpoint_models(up.base_url, "sk-good")
        up.queue_fault(Fault.status(200, {"models": "none"}))
        with pytest.raises(ConfigError, match="OpenAI's list format"):
            list_endpoint_models(up.base_url, "sk-good")
        up.models = ["text-embedding-3-small"]
        with pytest.raises(ConfigError, match="no chat models"):
            list_endpoint_models(up.base_url, "sk-good")

        up.queue_fault(Fault.stall())
        started = time.monotonic()
        with pytest.raises(ConfigError, match=r"within 0\.5 s"):
            list_endpoint_models(up.base_url, "sk-good", timeout=0.5)
        assert time.monotonic() - started < 3

    with pytest.raises(ConfigError, match="could not list the models at GET") as caught:
        list_endpoint_models(up.base_url, "sk-good")  # nothing listens there any more
    assert up.base_url in str(caught.value)


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("gpt-4o-mini", "light"),
        ("gemini-2.5-flash", "light"),
        ("claude-3-5-haiku-latest", "light"),
        ("Qwen/Qwen3-8B", "light"),
        ("meta-llama/Llama-3.2-1B-Instruct", "light"),
        ("mistral-small-24b", "light"),
        ("o4-mini", "reasoning"),
        ("deepseek-reasoner", "reasoning"),
        ("deepseek-ai/DeepSeek-R1", "reasoning"),
        ("gemini-2.5-flash-thinking", "reasoning"),
        ("Qwen/QwQ-32B", "reasoning"),
        ("mistral-large-latest", "reasoning"),
        ("llama-3.1-70b-instruct", "reasoning"),
        ("mixtral-8x7b", "reasoning"),
        ("Qwen/Qwen3-32B", "reasoning"),
        ("gpt-4o", "reasoning"),
        ("deepseek-chat", "reasoning"),
    ],
)
def test_guess_tier(model: str, tier: str) -> None:
    assert guess_tier(model) == tier


def test_embedded_default_uses_what_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert seed({}, tmp_path, monkeypatch).routing.router == "classifier"
    monkeypatch.setenv("COOP_PLUGINS", "simulated")  # only the essential plugins load
    config = SystemConfig.discover(None, env={}, plugins=load_plugins())
    assert config.embedded and config.routing.router == "rules"
    assert not config.cooperations and config.routing.complex == "sim-large"


def test_unreadable_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOP_CONFIG", raising=False)
    (tmp_path / ".env").write_text("this is not an assignment\n")
    with pytest.raises(ConfigError) as caught:
        SystemConfig()
    assert caught.value.line == 1 and ".env" in str(caught.value)
