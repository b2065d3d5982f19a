"""A prompt as a few hundred hashed, weighted features; pure Python, tens of microseconds.

Words carry the subject (MMLU's subjects cluster by vocabulary, and a model's
accuracy differs a lot between subjects); word pairs and a coarse length and
digit count carry some of the difficulty. Features are hashed (crc32) into
``2**bits`` slots so a model file holds no vocabulary, and the vector is
L2-normalised log term counts, so long prompts do not dominate.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from itertools import pairwise
from typing import Any

__all__ = ["FEATURE_SETTINGS", "features", "prompt_text"]

#: Recorded in every model file: a model is valid only with the settings it was trained on.
FEATURE_SETTINGS: dict[str, Any] = {
    "name": "hashed-words-v1",
    "bits": 18,
    "bigrams": False,
    "shape": True,
    "max_chars": 4000,
}

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text the router reads: the last user message (text parts joined)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role", "user") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return ""


def _names(text: str, settings: dict[str, Any]) -> list[str]:
    tokens = _TOKEN.findall(text[: settings["max_chars"]].lower())
    names = ["w:" + t for t in tokens]
    if settings.get("bigrams"):
        names += [f"b:{a} {b}" for a, b in pairwise(tokens)]
    if settings.get("shape"):
        names.append(f"len:{min(12, int(math.log2(len(tokens) + 1) * 2))}")
        names.append(f"dig:{min(5, sum(t.isdigit() for t in tokens) // 3)}")
    return names


def features(text: str, settings: dict[str, Any] | None = None) -> dict[int, float]:
    """Slot → value: hashed feature counts, ``log1p``-damped and L2-normalised."""
    settings = settings or FEATURE_SETTINGS
    mask = (1 << settings["bits"]) - 1
    counts: dict[int, int] = {}
    crc32 = zlib.crc32
    for name, n in Counter(_names(text, settings)).items():  # hash each distinct name once
        slot = crc32(name.encode("utf-8", "surrogatepass")) & mask
        counts[slot] = counts.get(slot, 0) + n
    if not counts:
        return {}
    log1p = math.log1p
    values = {slot: log1p(n) for slot, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in values.values()))
    return {slot: v / norm for slot, v in values.items()}
