"""Recordings whose prompt or answer holds U+0085 / U+2028 replay (lines end at "\\n" only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coop import ConfigError, OpenAIEngine, SystemConfig, parse_chat_request

pytestmark = pytest.mark.anyio

PROMPT = "Which is prime?\u0085A. 4\u2028B. 7"
ANSWER = "B\u2029because 7 has no divisor but 1 and 7"


def config(path: Path) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                "tape": {
                    "provider": "replay",
                    "health_check_interval": 0,
                    "options": {"file": str(path)},
                }
            },
            "models": {"m": {"endpoint": "tape", "path": "m-up"}},
        }
    )


async def test_unicode_line_separators_replay(tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    record = {"model": "m-up", "prompt": PROMPT, "text": ANSWER}
    tape.write_text(json.dumps(record, ensure_ascii=False) + "\r\n", encoding="utf-8")
    assert "\u2028".encode() in tape.read_bytes()
    request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": PROMPT}]})
    async with OpenAIEngine(config(tape)) as engine:
        assert (await engine.chat(request)).text == ANSWER


async def test_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        async with OpenAIEngine(config(tmp_path / "nope.jsonl")):
            pass
    assert "file not found" in str(caught.value)
    assert caught.value.key == "endpoints.tape.options.file"


async def test_a_row_that_is_not_an_object_names_the_line(tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    tape.write_text('{"model": "m-up", "prompt": "a", "text": "b"}\n["m-up", "a"]\n')
    with pytest.raises(ConfigError) as caught:
        async with OpenAIEngine(config(tape)):
            pass
    assert caught.value.line == 2 and "expected a JSON object" in str(caught.value)
