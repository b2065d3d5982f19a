"""coop.read_jsonl: lines end at "\\n" only, so U+0085, U+2028 and the like stay inside a row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coop import ConfigError, read_jsonl

#: Characters str.splitlines() breaks at that a JSON string may hold literally.
BREAKERS = "\u0085\u2028\u2029"


def test_line_breaks_inside_strings_stay_inside_the_row(tmp_path: Path) -> None:
    prompt = f"Which is prime?{BREAKERS[0]}A. 4\u2028B. 7{BREAKERS[2]}C. 9"
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps({"prompt": prompt}, ensure_ascii=False) + "\n" + '{"prompt": "next"}\n',
        encoding="utf-8",
    )
    raw = path.read_bytes()
    assert "\u0085".encode() in raw and "\u2028".encode() in raw  # literal, not escaped
    assert len(raw.decode("utf-8").splitlines()) > 2  # what the old readers saw
    assert list(read_jsonl(path)) == [(1, {"prompt": prompt}), (2, {"prompt": "next"})]


def test_crlf_blank_lines_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"a": 2}\r\n{"a": 3}')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": 3})]


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"a": 1}\n{not json\n', "invalid JSON (Expecting property name", 2),
        (b'{"a": 1}\n\n[1, 2]\n', "expected a JSON object, got array", 3),
        (b'"just a string"\n', "expected a JSON object, got string", 1),
        (b'{"a": 1}\n{"a": "\xff"}\n', "not UTF-8 text", 2),
        # A line break splitlines() knows but JSON does not: the row is still one line.
        ('{"a": 1}\n{"a": 2}\u2028{"a": 3}\n'.encode(), "invalid JSON (Extra data", 2),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, content: bytes, message: str, line: int) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        list(read_jsonl(path))
    assert message in str(caught.value)
    assert caught.value.line == line and f"{path}:{line}:" in str(caught.value)


def test_file_problems_are_raised_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as caught:
        read_jsonl(tmp_path / "nope.jsonl")
    assert caught.value.path == str(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="is a directory"):
        read_jsonl(tmp_path)
