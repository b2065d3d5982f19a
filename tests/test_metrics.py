"""``/metrics`` (Prometheus, via prometheus-client), ``/status`` and ``coop status`` after
real traffic through a gateway: models, a failing deployment, a stream, ``auto`` and a
cooperation; histograms that sum across replicas; no API key anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coop._metrics import LATENCY_BUCKETS, Metrics
from coop.server._prometheus import make_registry, render_metrics
from fakes import FakeOpenAI
from fakes.http import Fault
from prometheus_client.parser import text_string_to_metric_families
from test_gateway import (
    GATEWAY_KEYS,
    UPSTREAM_KEYS,
    Gateway,
    coop_cli,
    gateway_config,
    serve_in_thread,
)

Families = dict[str, Any]


def _chat(model: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def _families(text: str) -> Families:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: Families, sample: str, **labels: str) -> float:
    """The sum of ``sample``'s values whose labels include ``labels``."""
    name = sample
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix):
            name = sample[: -len(suffix)]
            break
    family = families[name]
    return sum(
        s.value
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def traffic() -> Iterator[tuple[Gateway, FakeOpenAI]]:
    """A gateway after: 2 plain requests to m (the first one's first attempt fails with
    a 500, the retry answers), a 400 on big, a stream on m, ``auto``, the council."""
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up)) as gw, gw.http() as http:
        up.queue_fault(Fault.status(500), model="gpt-4o-mini")
        assert http.post("/v1/chat/completions", json=_chat("m")).status_code == 200
        assert http.post("/v1/chat/completions", json=_chat("m")).status_code == 200
        up.set_mode(Fault.status(400), model="gpt-4o")
        assert http.post("/v1/chat/completions", json=_chat("big")).status_code == 400
        up.clear_faults()
        with http.stream("POST", "/v1/chat/completions", json=_chat("m", stream=True)) as r:
            assert r.status_code == 200
            assert b"[DONE]" in b"".join(r.iter_bytes())
        assert http.post("/v1/chat/completions", json=_chat("auto")).status_code == 200
        assert http.post("/v1/chat/completions", json=_chat("council")).status_code == 200
        yield gw, up


@pytest.fixture(scope="module")
def scraped(traffic: tuple[Gateway, FakeOpenAI]) -> tuple[str, Families]:
    gw, _up = traffic
    with gw.http() as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, _families(response.text)


def test_metric_families_and_types(scraped: tuple[str, Families]) -> None:
    _text, families = scraped
    expected = {
        "coop_uptime_seconds": "gauge",
        "coop_in_flight_requests": "gauge",
        "coop_requests": "counter",
        "coop_request_errors": "counter",
        "coop_tokens": "counter",
        "coop_cost_usd": "counter",
        "coop_request_duration_seconds": "histogram",
        "coop_time_to_first_token_seconds": "histogram",
        "coop_deployment_requests": "counter",
        "coop_deployment_errors": "counter",
        "coop_deployment_tokens": "counter",
        "coop_deployment_cost_usd": "counter",
        "coop_deployment_request_duration_seconds": "histogram",
        "coop_deployment_time_to_first_token_seconds": "histogram",
        "coop_upstream_calls": "counter",
        "coop_plans": "counter",
        "coop_routing_decisions": "counter",
        "coop_cooperations": "counter",
        "coop_deployment_healthy": "gauge",
        "coop_deployment_in_flight": "gauge",
        "coop_process_cpu_seconds": "counter",
        "coop_process_resident_memory_bytes": "gauge",
        "coop_process_open_connections": "gauge",
        "coop_host_cpu_percent": "gauge",
        "coop_host_memory_used_bytes": "gauge",
        "coop_host_network_bytes": "counter",
    }
    for name, kind in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
    assert all(name.startswith("coop_") for name in families)


def test_requests_errors_tokens_and_latency_per_model(scraped: tuple[str, Families]) -> None:
    _text, f = scraped
    # m: 2 plain + 1 stream, plus whatever auto and the council sent there
    assert _value(f, "coop_requests_total", model="m") >= 4  # the council asks m too
    assert _value(f, "coop_requests_total", model="big") >= 2  # the 400, the council
    assert _value(f, "coop_request_errors_total", model="big", error="BadRequestError") == 1
    assert _value(f, "coop_request_errors_total", model="m") == 0
    assert _value(f, "coop_tokens_total", model="m", direction="prompt") > 0
    assert _value(f, "coop_tokens_total", model="m", direction="completion") > 0
    requests = _value(f, "coop_requests_total", model="m")
    assert _value(f, "coop_request_duration_seconds_count", model="m") == requests
    assert _value(f, "coop_request_duration_seconds_bucket", model="m", le="+Inf") == requests
    assert _value(f, "coop_request_duration_seconds_sum", model="m") > 0
    buckets = [
        s for s in f["coop_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["model"] == "m"
    ]  # fmt: skip
    assert [s.labels["le"] for s in buckets] == [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)  # cumulative
    # one stream: one time to first token, no later than its request's end
    assert _value(f, "coop_time_to_first_token_seconds_count", model="m") == 1
    assert _value(f, "coop_time_to_first_token_seconds_count", model="big") == 0
    assert _value(f, "coop_time_to_first_token_seconds_sum", model="m") > 0


def test_deployment_endpoint_and_key_series(scraped: tuple[str, Families]) -> None:
    _text, f = scraped
    mini = {"model": "m", "deployment": "fake/gpt-4o-mini", "endpoint": "fake"}
    assert _value(f, "coop_deployment_requests_total", **mini) == _value(
        f, "coop_requests_total", model="m"
    )
    keys = {s.labels["key"] for s in f["coop_deployment_requests"].samples}
    assert keys <= {"key0", "key1"} and keys
    # the 500 was one failed upstream call on m, retried elsewhere (the other key)
    assert _value(f, "coop_upstream_calls_total", outcome="UpstreamUnavailableError", **mini) == 1
    assert _value(f, "coop_upstream_calls_total", outcome="ok", **mini) >= 4
    assert _value(f, "coop_upstream_calls_total", model="big", outcome="BadRequestError") == 1
    assert _value(f, "coop_deployment_time_to_first_token_seconds_count", **mini) == 1
    assert _value(f, "coop_deployment_healthy", model="m", deployment="fake/gpt-4o-mini") == 1
    assert _value(f, "coop_deployment_in_flight", model="m") == 0


def test_routing_plans_and_cooperations(scraped: tuple[str, Families]) -> None:
    _text, f = scraped
    assert _value(f, "coop_routing_decisions_total") == 1  # the one auto request
    (decision,) = f["coop_routing_decisions"].samples
    assert decision.labels["tier"] and decision.labels["target"] in {"m", "big", "council"}
    assert _value(f, "coop_plans_total", route="model", target="m") >= 3
    assert _value(f, "coop_plans_total", route="cooperation", target="council") >= 1
    council = {"cooperation": "council", "mode": "parallel", "strategy": "voting"}
    assert _value(f, "coop_cooperations_total", outcome="ok", **council) >= 1


def test_resource_monitor(scraped: tuple[str, Families]) -> None:
    _text, f = scraped
    assert _value(f, "coop_process_cpu_seconds_total") > 0
    assert _value(f, "coop_process_resident_memory_bytes") > 10 * 2**20
    assert _value(f, "coop_process_open_connections") >= 1  # the listening socket at least
    assert 0 <= _value(f, "coop_host_cpu_percent") <= 100
    assert _value(f, "coop_host_memory_used_bytes") > 0
    assert _value(f, "coop_host_network_bytes_total", direction="sent") > 0
    assert _value(f, "coop_host_network_bytes_total", direction="received") > 0


def test_no_key_text_in_metrics(scraped: tuple[str, Families]) -> None:
    text, _f = scraped
    for key in (*UPSTREAM_KEYS, *GATEWAY_KEYS):
        assert key not in text
        assert key[:12] not in text
    assert "sk-" not in text


def test_status_json_has_the_summary(traffic: tuple[Gateway, FakeOpenAI]) -> None:
    gw, _up = traffic
    with gw.http() as http:
        status = http.get("/status").json()
    metrics = status["metrics"]
    assert metrics["enabled"] is True
    m = metrics["models"]["m"]
    for field in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms"):
        assert m[field] is not None and m[field] > 0, field
    assert metrics["models"]["big"]["errors_by_type"] == {"BadRequestError": 1}
    assert metrics["deployments"]["fake/gpt-4o-mini"]["endpoint"] == "fake"
    assert set(metrics["deployments"]["fake/gpt-4o-mini"]["keys"]) <= {"key0", "key1"}
    assert metrics["attempts"]
    assert sum(metrics["routing_decisions"].values()) == 1
    assert metrics["cooperations"].get("parallel/voting", 0) >= 1
    assert metrics["plans"]["model"] >= 3
    resources = status["resources"]
    assert resources["process"]["resident_memory_bytes"] > 0
    assert resources["host"]["memory_total_bytes"] > 0
    assert "sk-" not in json.dumps(status)


def test_coop_status_table(traffic: tuple[Gateway, FakeOpenAI], tmp_path: Path) -> None:
    gw, _up = traffic
    result = coop_cli("status", "--url", gw.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("p50 ms", "p95 ms", "p99 ms", "ttft p50 ms", "tokens in", "cost $"):
        assert heading in out
    assert "routing: " in out and "cooperations: parallel/voting" in out
    assert "process: cpu" in out and "host: cpu" in out
    assert "sk-" not in out


def test_histograms_sum_across_registries() -> None:
    """Two replicas' buckets, summed, are the buckets of all their requests together."""

    class Engine:
        def __init__(self, metrics: Metrics) -> None:
            self.metrics = metrics

        def deployment_snapshot(self) -> dict[str, Any]:
            return {}

    samples = [0.003, 0.02, 0.2, 0.2, 0.7, 3.0, 45.0, 500.0]
    one, two, both = Metrics(), Metrics(), Metrics()
    for i, latency in enumerate(samples):
        for metrics in (one if i % 2 else two, both):
            metrics.record("m", ok=True, latency=latency, deployment="d", endpoint="e", key="key0")
    parsed = [
        _families(render_metrics(make_registry(Engine(m), in_flight=lambda: 0, started=0)).decode())
        for m in (one, two, both)
    ]

    def buckets(f: Families) -> dict[str, float]:
        return {
            s.labels["le"]: s.value
            for s in f["coop_request_duration_seconds"].samples
            if s.name.endswith("_bucket")
        }

    a, b, total = (buckets(f) for f in parsed)
    assert {le: a[le] + b[le] for le in a} == total
    assert total["+Inf"] == len(samples) and total["0.25"] == 4 and total["120.0"] == 7
    sums = [_value(f, "coop_request_duration_seconds_sum") for f in parsed]
    assert sums[0] + sums[1] == pytest.approx(sums[2]) == pytest.approx(sum(samples))
    assert registries_are_separate(parsed)


def registries_are_separate(parsed: list[Families]) -> bool:
    return [_value(f, "coop_requests_total") for f in parsed] == [4, 4, 8]


def test_metrics_off_records_nothing() -> None:
    with (
        FakeOpenAI() as up,
        serve_in_thread(gateway_config(up, metrics=False)) as gw,
        gw.http() as http,
    ):
        assert http.post("/v1/chat/completions", json=_chat("m")).status_code == 200
        families = _families(http.get("/metrics").text)
        status = http.get("/status").json()
    assert families["coop_requests"].samples == []
    assert "coop_process_resident_memory_bytes" in families  # the monitor still reads
    assert status["metrics"]["enabled"] is False
    assert status["metrics"]["total"]["requests"] == 0
