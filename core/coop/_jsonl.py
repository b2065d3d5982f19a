"""JSON Lines files: one JSON object per line, lines ending in ``\\n`` and nothing else.

Why not ``str.splitlines()`` (or a text-mode file's lines): ``splitlines`` also
breaks at U+0085, U+2028, U+2029, ``\\v``, ``\\f`` and ``\\x1c``-``\\x1e``, and a
valid JSON string may hold the first three literally (real MMLU prompts do), so
a row would be cut in two. Here the bytes are split at ``b"\\n"`` only, one
``\\r`` before it is dropped (Windows line ends), and every problem names the
file and line.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["read_jsonl"]

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of the JSON Lines file ``path``.

    The file is read at the call: :class:`ConfigError` names it when it is missing,
    a directory or unreadable. Lines are parsed as they are iterated; a line that is
    not UTF-8, not JSON or not a JSON object raises :class:`ConfigError` naming
    ``path:line``. Line numbers count ``\\n`` as ``wc -l``, ``grep -n`` and editors do.
    """
    file = Path(path)
    where = str(file)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", path=where) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a JSON lines file", path=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=where) from None
    return _objects(data.removeprefix(codecs.BOM_UTF8), where)


def _objects(data: bytes, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start + 1} of the line)",
                path=where,
                line=number,
            ) from None
        if not line.strip(" \t\r"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON ({exc.msg} at column {exc.colno})", path=where, line=number
            ) from None
        if not isinstance(value, dict):
            raise ConfigError(
                f"expected a JSON object, got {_JSON_TYPES.get(type(value), type(value).__name__)}",
                path=where,
                line=number,
            )
        yield number, value
