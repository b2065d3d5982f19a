"""Each built-in service end to end on recorded answers: record once, replay, same result.

The first run goes to the fake OpenAI upstream (real HTTP, the openai-compatible
provider); every upstream call is written as a recording; the second run serves those
recordings through the ``replay`` provider with no upstream at all, and must give the
same result and data. So a service's output depends only on its input and the models'
answers: nothing in it comes from timing, randomness or the transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import coop
import pytest
from fakes import FakeOpenAI
from test_gateway import PLUGINS, UPSTREAM_KEYS

MODELS = {"analyst": "gpt-4o"}


def _config(endpoint: dict[str, Any]) -> coop.SystemConfig:
    return coop.SystemConfig.from_dict(
        {
            "endpoints": {"up": {"health_check_interval": 0, **endpoint}},
            "models": {
                name: {"endpoint": "up", "path": path, "context_window": 8192, "tier": "light"}
                for name, path in MODELS.items()
            },
            "routing": {"light": "analyst", "reasoning": "analyst", "complex": "analyst"},
        }
    )


def _swot(body: dict[str, Any]) -> str:
    return json.dumps(
        {
            "strengths": ["loyal customers"],
            "weaknesses": ["thin margins"],
            "opportunities": ["export markets"],
            "threats": ["a price war"],
        }
    )


def _document(body: dict[str, Any]) -> str:
    return json.dumps({"summary": "A shop had a great year.", "key_points": []})


def _narrative(body: dict[str, Any]) -> str:
    return "Sales grew for three quarters, then fell in the fourth."


CASES: list[tuple[str, str, dict[str, Any], Callable[[dict[str, Any]], str]]] = [
    (
        "data_insight",
        "销售数据: Q1: 100万, Q2: 120万, Q3: 150万, Q4: 130万",
        {"insight_type": "trends", "model": "analyst"},
        _narrative,
    ),
    (
        "decision_support",
        "Should our bakery open a second shop next year?",
        {"analysis_framework": "swot", "model": "analyst"},
        _swot,
    ),
    (
        "document_analysis",
        "# Annual letter\n\nThe shop had a great year. Sales rose in every quarter but one.",
        {"analysis_type": "summary", "model": "analyst"},
        _document,
    ),
]


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def _run(
    config: coop.SystemConfig, service: str, content: str, params: dict[str, Any]
) -> Any:
    dispatcher = coop.Dispatcher(config, plugins=PLUGINS, health_checks=False)
    async with coop.ServiceManager(dispatcher) as manager:
        return await manager.run(service, content, params)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("service", "content", "params", "answer"), CASES, ids=[c[0] for c in CASES]
)
async def test_a_service_replayed_from_recordings_gives_the_same_result(
    up: FakeOpenAI,
    service: str,
    content: str,
    params: dict[str, Any],
    answer: Callable[[dict[str, Any]], str],
) -> None:
    up.reset()
    up.answer_fn = answer
    live = await _run(
        _config({"provider": "fake-openai", "base_url": up.base_url, "api_keys": UPSTREAM_KEYS}),
        service,
        content,
        params,
    )
    calls = [r.json for r in up.requests if r.path.endswith("/chat/completions")]
    assert live.success and live.calls == len(calls) >= 1
    records = [
        {"model": body["model"], "messages": body["messages"], "text": answer(body)}
        for body in calls
    ]
    replayed = await _run(
        _config({"provider": "replay", "options": {"records": records}}),
        service,
        content,
        params,
    )
    assert replayed.success and replayed.calls == live.calls
    assert replayed.result == live.result
    assert replayed.data == live.data
    assert replayed.models == live.models == ["analyst"]
