"""The simulated provider: deterministic, labelled, and configurable faults."""

from __future__ import annotations

import pytest
from coop import (
    ContextWindowExceededError,
    OpenAIEngine,
    RetryPolicy,
    SystemConfig,
    UpstreamUnavailableError,
    parse_chat_request,
)
from coop_simulated import arithmetic_answer

pytestmark = pytest.mark.anyio


def engine(**options: object) -> OpenAIEngine:
    config = SystemConfig.from_dict(
        {
            "endpoints": {
                "sim": {"provider": "simulated", "health_check_interval": 0, "options": options}
            },
            "models": {"m": {"endpoint": "sim", "path": "sim-light"}},
        }
    )
    return OpenAIEngine(config, retry=RetryPolicy(max_attempts=1))


def ask(text: str, **extra: object) -> object:
    return parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("what is 12 * 7?", "84"),
        ("(3 + 4) × 2 =", "14"),
        ("10 / 4", "2.5"),
        ("no numbers here", None),
        ("2 ** 99999", None),
    ],
)
def test_arithmetic(text: str, value: str | None) -> None:
    assert arithmetic_answer(text) == value


async def test_deterministic_labelled_answers_with_usage() -> None:
    async with engine() as e:
        first = await e.chat(ask("what is 12 * 7?"))
        second = await e.chat(ask("what is 12 * 7?"))
        assert (
            first.text
            == second.text
            == "[simulated sim-light] Working it out step by step gives 84.\nA: 84"
        )
        assert first.usage.prompt_tokens > 0 and first.cost > 0  # price from the preset
        chunks = [
            c
            async for c in e.stream_chat(
                ask("hello world", stream=True, stream_options={"include_usage": True})
            )
        ]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(
        "[simulated sim-light]"
    )
    assert chunks[-1].usage.total_tokens > 0


async def test_failure_rate_and_context_window() -> None:
    async with engine(failure_rate=1.0) as e:
        with pytest.raises(UpstreamUnavailableError):
            await e.chat(ask("hi"))
    async with engine(context_window=20) as e:
        with pytest.raises(ContextWindowExceededError):
            await e.chat(ask("word " * 200))


async def test_max_tokens_truncates() -> None:
    async with engine() as e:
        result = await e.chat(
            ask("tell me about the weather in a long sentence please", max_tokens=2)
        )
    assert len(result.text) <= 8
