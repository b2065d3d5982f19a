"""Read labelled training rows from JSON lines, naming the file and line of any problem.

Lines are read by :func:`coop.read_jsonl` (split at ``\n`` only, so a prompt may
hold U+2028 and the like); the checks are the plugin's: a training file is JSON
lines with ``prompt`` (or OpenAI ``messages``) and a known ``task_type``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coop import TASK_TYPES, ConfigError, read_jsonl

__all__ = ["read_rows"]


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a JSON lines file; :class:`coop.ConfigError` with ``path:line`` on bad input."""
    file = Path(path)
    where = str(file)
    rows: list[dict[str, Any]] = []
    for number, row in read_jsonl(file):
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
