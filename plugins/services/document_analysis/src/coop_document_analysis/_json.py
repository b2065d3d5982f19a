"""Reading a model's JSON answer tolerantly: fences, prose around it, trailing commas."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCED = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _objects(text: str) -> list[str]:
    """Balanced ``{...}`` spans of ``text``, outermost first, strings respected."""
    spans: list[str] = []
    depth, begin, quoted, escaped = 0, -1, False, False
    for i, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"' and depth:
            quoted = True
        elif char == "{":
            if depth == 0:
                begin = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[begin : i + 1])
    return spans


def parse_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's answer, or ``None`` when there is none."""
    candidates = [m.group(1) for m in _FENCED.finditer(text)]
    candidates.append(text)
    for candidate in list(candidates):
        candidates.extend(_objects(candidate))
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate.startswith("{"):
            continue
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                value = json.loads(attempt)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None
