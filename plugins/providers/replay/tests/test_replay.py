"""The replay provider through the real engine: recorded answers, clear misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coop import ConfigError, OpenAIEngine, SystemConfig, UpstreamNotFoundError, parse_chat_request

pytestmark = pytest.mark.anyio


def config(path: Path) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                "tape": {
                    "provider": "replay",
                    "health_check_interval": 0,
                    "options": {
                        "file": str(path),
                        "records": [{"model": "m-up", "prompt": "inline", "text": "from settings"}],
                    },
                }
            },
            "models": {"m": {"endpoint": "tape", "path": "m-up"}},
        }
    )


def request(text: str) -> object:
    return parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": text},
            ],
        }
    )


async def test_replays_recorded_answers(tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    response = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "m-up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "forty-two"},
                "finish_reason": "stop",
            }
        ],
    }
    tape.write_text(
        json.dumps({"model": "m-up", "prompt": "What  is 6*7?", "text": "A: 42"})
        + "\n\n"
        + json.dumps({"model": "m-up", "prompt": "full", "response": response})
        + "\n"
    )
    async with OpenAIEngine(config(tape)) as engine:
        assert (
            await engine.chat(request("What is 6*7?"))
        ).text == "A: 42"  # whitespace-normalised key
        assert (await engine.chat(request("full"))).text == "forty-two"
        assert (await engine.chat(request("inline"))).text == "from settings"
        chunks = [c async for c in engine.stream_chat(request("What is 6*7?"))]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "A: 42"
        with pytest.raises(UpstreamNotFoundError) as caught:
            await engine.chat(request("never recorded"))
        assert "no recording for model 'm-up'" in str(caught.value)
        assert await engine.providers["tape"].list_models(None) == ["m-up"]


async def test_bad_recording_file_names_the_line(tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    tape.write_text('{"model": "m-up", "prompt": "a", "text": "b"}\n{not json\n')
    with pytest.raises(ConfigError) as caught:
        async with OpenAIEngine(config(tape)):
            pass
    assert caught.value.line == 2 and str(tape) in str(caught.value)
