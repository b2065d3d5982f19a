"""Splitting a text into overlapping chunks by tokens, and locating quotes in it."""

from __future__ import annotations

import re
from typing import Any

import attrs
from coop import estimate_tokens


@attrs.frozen
class Chunk:
    index: int
    #: Character offsets of the chunk in the extracted text (``text[start:end]``).
    start: int
    end: int
    tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start": self.start, "end": self.end, "tokens": self.tokens}


def _fit(text: str, start: int, budget: int) -> int:
    """The largest ``end`` with ``estimate_tokens(text[start:end]) <= budget``."""
    if estimate_tokens(text[start:]) <= budget:
        return len(text)
    low, high = start + 1, len(text)
    while low < high:  # estimate_tokens grows with the slice's end
        middle = (low + high + 1) // 2
        if estimate_tokens(text[start:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?。！？;；])\s"),
    re.compile(r"\s"),
)


def _boundary(text: str, start: int, end: int) -> int:
    """``end`` moved back to a paragraph, line, sentence or word break in the chunk's last third."""
    if end >= len(text):
        return end
    floor = start + (end - start) * 2 // 3
    for pattern in _BREAKS:
        last = None
        for match in pattern.finditer(text, floor, end):
            last = match
        if last is not None and last.end() > start:
            return last.end()
    return end


_SPACE = re.compile(r"\s")


def split(text: str, budget: int, overlap: int = 0) -> list[Chunk]:
    """``text`` as chunks of at most ``budget`` tokens, each sharing ~``overlap`` tokens
    with the one before; the chunks cover the text in order, with no gap."""
    if budget < 1:
        raise ValueError("budget must be positive")
    overlap = max(0, min(overlap, budget // 2))
    chunks: list[Chunk] = []
    start = 0
    while start < len(text):
        end = _boundary(text, start, _fit(text, start, budget))
        chunks.append(Chunk(len(chunks), start, end, estimate_tokens(text[start:end])))
        if end >= len(text):
            break
        following = end
        if overlap:
            low, high = start + 1, end  # the earliest start whose tail to ``end`` fits
            while low < high:
                middle = (low + high) // 2
                if estimate_tokens(text[middle:end]) <= overlap:
                    high = middle
                else:
                    low = middle + 1
            match = _SPACE.search(text, low, end)  # begin the overlap on a word
            following = match.end() if match and match.end() < end else low
        start = following if following > start else end
    return chunks


def locate(text: str, quote: str, start: int, end: int) -> tuple[int, int] | None:
    """Where ``quote`` is in ``text[start:end]``: exactly, ignoring case, or ignoring spacing."""
    quote = quote.strip().strip("\"'“”‘’«»").strip()
    if not quote:
        return None
    found = text.find(quote, start, end)
    if found >= 0:
        return found, found + len(quote)
    words = quote.split()
    pattern = re.compile(r"\s+".join(re.escape(word) for word in words), re.I)
    match = pattern.search(text, start, end)
    if match:
        return match.start(), match.end()
    return None
