"""Embedding models: ``/v1/embeddings`` with the openai SDK, failover, bad input, the Python API."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import coop
import pytest
from coop import SystemConfig
from coop._config import embedded_default
from fakes import FakeOpenAI, Fault
from openapi_schema import validate
from test_gateway import PLUGINS, UPSTREAM_KEYS, Gateway, serve_in_thread


def sim_config(**server: Any) -> SystemConfig:
    data = embedded_default()
    data["server"] = {"access_log": "off", **server}
    return SystemConfig.from_dict(data)


def fake_config(up: FakeOpenAI) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "server": {"access_log": "off"},
            "balancing": "round-robin",
            "endpoints": {
                "fake": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": UPSTREAM_KEYS,
                    "timeout": 10,
                    "health_check_interval": 0,
                }
            },
            "models": {
                "chat": {"endpoint": "fake", "path": "gpt-4o-mini"},
                "emb": {
                    "kind": "embedding",
                    "dimensions": 16,
                    "context_window": 50,
                    "price": {"input": 0.02},
                    "deployments": [
                        {"endpoint": "fake", "path": "emb-1"},
                        {"endpoint": "fake", "path": "emb-2"},
                    ],
                },
            },
        }
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[Gateway]:
    with serve_in_thread(sim_config()) as gw:
        yield gw


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_keys=UPSTREAM_KEYS) as server:
        yield server


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


# -- the simulated model, through the openai SDK ---------------------------------------------


def test_sdk_float_and_base64_agree_and_are_deterministic(sim: Gateway) -> None:
    client = sim.client()
    floats = client.embeddings.create(
        model="sim-embedding", input=["hello", "world"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 256  # the model's configured dimensions
    assert _norm(floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.model == "sim-embedding"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    # the SDK asks for base64 by default and decodes it: the same float32 vectors
    default = client.embeddings.create(model="sim-embedding", input=["hello", "world"])
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    again = client.embeddings.create(model="sim-embedding", input="hello", encoding_format="float")
    assert again.data[0].embedding == floats.data[0].embedding


def test_dimensions_and_token_arrays(sim: Gateway) -> None:
    client = sim.client()
    small = client.embeddings.create(
        model="sim-embedding", input="hello", dimensions=32, encoding_format="float"
    )
    assert len(small.data[0].embedding) == 32
    assert _norm(small.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    tokens = client.embeddings.create(
        model="sim-embedding", input=[[1, 2, 3], [4, 5]], encoding_format="float"
    )
    assert len(tokens.data) == 2
    assert tokens.usage.prompt_tokens == 5
    single = client.embeddings.create(
        model="sim-embedding", input=[1, 2, 3], encoding_format="float"
    )
    assert single.data[0].embedding == tokens.data[0].embedding


def test_raw_body_matches_the_spec_and_base64_is_little_endian_float32(sim: Gateway) -> None:
    with sim.http() as http:
        plain = http.post(
            "/v1/embeddings", json={"model": "sim-embedding", "input": "abc", "dimensions": 4}
        )
        packed = http.post(
            "/v1/embeddings",
            json={
                "model": "sim-embedding",
                "input": "abc",
                "dimensions": 4,
                "encoding_format": "base64",
                "user": "u-1",
            },
        )
    assert plain.status_code == packed.status_code == 200, plain.text
    body = plain.json()
    validate("CreateEmbeddingResponse", body)
    assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
    assert plain.headers["x-coop-model"] == "sim-embedding"
    assert float(plain.headers["x-coop-cost"]) > 0
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == body["data"][0]["embedding"]


def test_models_list_embedding_models(sim: Gateway) -> None:
    with sim.http() as http:
        data = http.get("/v1/models").json()["data"]
    entry = next(m for m in data if m["id"] == "sim-embedding")
    assert entry["coop"]["kind"] == "embedding"
    assert entry["coop"]["dimensions"] == 256
    assert all(m["coop"]["kind"] != "embedding" for m in data if m["id"] != "sim-embedding")


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-embedding", "input": ""}, "input[0]"),
        ({"model": "sim-embedding", "input": []}, "input"),
        ({"model": "sim-embedding", "input": [[]]}, "input[0]"),
        ({"model": "sim-embedding", "input": "word " * 9000}, "input"),
        ({"model": "sim-embedding", "input": 42}, "input"),
        ({"model": "sim-embedding", "input": [{"text": "x"}]}, "input[0]"),
        ({"model": "sim-embedding", "input": ["a", [1, 2]]}, "input"),
        ({"model": "sim-embedding", "input": [1.5, 2]}, "input[0]"),
        ({"model": "sim-embedding"}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "sim-embedding", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "sim-embedding", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "sim-embedding", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "sim-embedding", "input": "x", "user": 7}, "user"),
        ({"model": "sim-light", "input": "x"}, "model"),
    ],
)
def test_bad_input_is_a_400_in_openai_shape(sim: Gateway, body: Any, param: str) -> None:
    with sim.http() as http:
        response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_an_embedding_model_on_chat_completions_is_a_400(sim: Gateway) -> None:
    with sim.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "sim-embedding", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "model" and "/v1/embeddings" in error["message"]


def test_unknown_model_is_a_404(sim: Gateway) -> None:
    with sim.http() as http:
        response = http.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


# -- an OpenAI-compatible upstream ------------------------------------------------------------


def test_sdk_through_a_fake_upstream_with_failover(up: FakeOpenAI) -> None:
    up.set_mode(Fault.status(500), model="emb-1")
    with serve_in_thread(fake_config(up)) as gw:
        client = gw.client()
        for _ in range(3):
            result = client.embeddings.create(model="emb", input=["one two", "three"])
            assert len(result.data) == 2 and len(result.data[0].embedding) == 16
            assert result.usage.prompt_tokens == 3  # the upstream's own count
        with gw.http() as http:
            response = http.post("/v1/embeddings", json={"model": "emb", "input": "x y"})
            too_long = http.post("/v1/embeddings", json={"model": "emb", "input": "word " * 300})
    assert response.status_code == 200
    validate("CreateEmbeddingResponse", response.json())
    assert response.headers["x-coop-deployment"] == "fake/emb-2"
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "input"
    sent = [r for r in up.requests if r.path.endswith("/embeddings")]
    assert {r.json["model"] for r in sent} == {"emb-1", "emb-2"}
    assert all(r.json["dimensions"] == 16 and r.json["encoding_format"] == "float" for r in sent)


def test_a_provider_without_embeddings_says_so() -> None:
    class Chatty(coop.Provider):
        name = "chatty"

        async def chat(self, request: Any, call: Any) -> Any:
            raise NotImplementedError

        def stream(self, request: Any, call: Any) -> Any:
            raise NotImplementedError

    import anyio

    async def main() -> None:
        call = coop.ProviderCall(model="m", api_key=None)
        with pytest.raises(coop.BadRequestError, match="provider chatty does not serve embeddings"):
            await Chatty(None).embed(coop.EmbeddingRequest(model="m", input="x"), call)

    anyio.run(main)


# -- the Python API ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_python_api(anyio_backend: str) -> None:
    async with coop.OpenAIEngine(sim_config(), plugins=PLUGINS) as engine:
        result = await engine.embeddings("sim-embedding", ["a b c", "d"], dimensions=8)
        assert [len(v) for v in result.vectors] == [8, 8]
        assert result.usage["prompt_tokens"] == result.prompt_tokens > 0
        assert result.cost == pytest.approx(result.prompt_tokens * 0.02 / 1e6)
        assert result.deployment == "simulated/sim-embedding"
        same = await engine.embed(
            coop.EmbeddingRequest(model="sim-embedding", input="a b c", dimensions=8)
        )
        assert same.vectors[0] == result.vectors[0]
        with pytest.raises(coop.ValidationError, match="chat model"):
            await engine.embeddings("sim-light", "x")
        assert engine.metrics.snapshot()  # recorded like a chat call


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"kind": "vector"}, "not one of chat, embedding"),
        ({"dimensions": 8}, "only an embedding model"),
        ({"kind": "embedding", "dimensions": 0}, "dimensions"),
        ({"kind": "embedding", "tier": "light"}, "has no tier"),
    ],
)
def test_config_validation(model: dict[str, Any], message: str) -> None:
    data = embedded_default()
    data["models"]["bad"] = {"endpoint": "simulated", **model}
    with pytest.raises(coop.ConfigError, match=message):
        SystemConfig.from_dict(data)


def test_config_refuses_embedding_models_where_chat_is_meant() -> None:
    data = embedded_default()
    data["routing"]["light"] = "sim-embedding"
    with pytest.raises(coop.ConfigError, match=r"routing\.light"):
        SystemConfig.from_dict(data)
    data = embedded_default()
    data["cooperations"]["council"]["models"].append("sim-embedding")
    with pytest.raises(coop.ConfigError, match="embedding model"):
        SystemConfig.from_dict(data)
