"""read_rows keeps U+0085 / U+2028 inside a training prompt (lines end at "\\n" only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coop import ConfigError
from coop_classifier import read_rows


def test_unicode_line_separators_stay_in_the_prompt(tmp_path: Path) -> None:
    prompt = "Which is prime?\u0085A. 4\u2028B. 7\u2029C. 9"
    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps({"prompt": prompt, "task_type": "qa"}, ensure_ascii=False)
        + "\n\n"
        + json.dumps({"prompt": "hi", "task_type": "chat"})
        + "\n",
        encoding="utf-8",
    )
    assert "\u0085".encode() in path.read_bytes()
    assert [r["prompt"] for r in read_rows(path)] == [prompt, "hi"]


def test_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "hi", "task_type": "chat"}\n{"prompt": 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON") as caught:
        read_rows(path)
    assert caught.value.line == 2
