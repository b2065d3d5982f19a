"""Read labelled training rows from JSON lines, naming the file and line of any problem.

Kept in the plugin (the core's reader is private): a training file is JSON lines
with ``prompt`` (or OpenAI ``messages``) and a known ``task_type``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from coop import TASK_TYPES, ConfigError

__all__ = ["read_rows"]


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a JSON lines file; :class:`coop.ConfigError` with ``path:line`` on bad input."""
    file = Path(path)
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=where) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a JSON lines file", path=where) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", path=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=where) from None
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON ({exc.msg} at column {exc.colno})", path=where, line=number
            ) from None
        if not isinstance(row, dict):
            raise ConfigError(
                f"expected a JSON object, got {type(row).__name__}", path=where, line=number
            )
        if not isinstance(row.get("prompt"), str) and not isinstance(row.get("messages"), list):
            raise ConfigError(
                "missing field 'prompt' (a string) or 'messages' (a list)", path=where, line=number
            )
        task = row.get("task_type")
        if task is None:
            raise ConfigError("missing field 'task_type'", path=where, line=number)
        if task not in TASK_TYPES:
            raise ConfigError(
                f"unknown task_type {task!r}; expected one of {', '.join(TASK_TYPES)}",
                path=where,
                line=number,
            )
        rows.append(row)
    if not rows:
        raise ConfigError("no rows (the file is empty)", path=where)
    return rows
