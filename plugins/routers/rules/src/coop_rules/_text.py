"""Read OpenAI-shaped messages into a bounded view a router can afford to scan.

Routing must stay fast and total on any input, so nothing here trusts the shape
of ``messages``: odd items are skipped, content may be a string or a list of
parts, and every text is cut to a head and a tail window (the instruction of a
prompt sits at its start, "summarise the above" at its end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Conversation", "detect_language", "read_conversation", "window"]

#: Characters of the last user turn that are scanned: head and tail.
MAIN_HEAD = 2000
MAIN_TAIL = 600
#: Characters of each earlier message (and of the system prompt) that are scanned.
CONTEXT_HEAD = 600
CONTEXT_TAIL = 200
#: Earlier messages kept, nearest the last turn first.
CONTEXT_MESSAGES = 6
#: Messages looked at at all: a conversation of a million turns stays bounded.
MAX_MESSAGES = 64

_ATTACHMENT_TYPES = frozenset(
    {"image_url", "input_image", "image", "input_audio", "audio", "file", "input_file"}
)


def window(text: str, head: int, tail: int) -> str:
    """``text`` itself when short, else its first ``head`` and last ``tail`` characters."""
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n…\n{text[-tail:]}" if tail else text[:head]


@dataclass(slots=True)
class Conversation:
    """The parts of a request routing looks at."""

    #: The last user turn, windowed (what weighs most).
    main: str = ""
    #: System prompt(s), windowed.
    system: str = ""
    #: Earlier turns (user and assistant), windowed, oldest first.
    history: str = ""
    #: Images, audio and files attached anywhere in the conversation.
    attachments: int = 0
    #: Attachments on the last user turn.
    main_attachments: int = 0
    #: User turns in the conversation.
    user_turns: int = 0
    #: Length of the last user turn before windowing.
    main_chars: int = 0
    #: Whether any text was cut to its head and tail.
    truncated: bool = False
    #: Anything unreadable that was skipped ("message 3: content is int").
    skipped: list[str] = field(default_factory=list)


def _content_text(content: Any, budget: int) -> tuple[str, int, int]:
    """Text (at most about ``budget`` characters), its full length, and attachments."""
    if content is None:
        return "", 0, 0
    if isinstance(content, str):
        return window(content, budget, budget // 4), len(content), 0
    if isinstance(content, dict):  # a single part instead of a list
        content = [content]
    if not isinstance(content, list | tuple):
        return "", 0, 0
    texts: list[str] = []
    total = 0
    attachments = 0
    for part in content[:MAX_MESSAGES]:
        if isinstance(part, str):
            text = part
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind in _ATTACHMENT_TYPES or (kind is None and "image_url" in part):
                attachments += 1
                continue
            text = part.get("text")
            if not isinstance(text, str):
                continue
        else:
            continue
        total += len(text)
        if sum(len(t) for t in texts) < budget:
            texts.append(window(text, budget, budget // 4))
    return "\n".join(texts), total, attachments


def read_conversation(messages: Any) -> Conversation:
    """A bounded :class:`Conversation` from ``messages``; never raises on odd shapes.

    A bare string is taken as one user message and a single dict as a one-message
    list, since callers outside the gateway often pass those.
    """
    conv = Conversation()
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    elif isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list | tuple):
        conv.skipped.append(f"messages is {type(messages).__name__}, not a list")
        return conv
    if len(messages) > MAX_MESSAGES:
        # The first message is usually the system prompt: keep it and the recent tail.
        messages = [messages[0], *messages[-(MAX_MESSAGES - 1) :]]
        conv.truncated = True

    budget = MAIN_HEAD + MAIN_TAIL
    items: list[tuple[str, str, int, int]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            conv.skipped.append(f"message {index}: {type(message).__name__}")
            continue
        role = message.get("role")
        role = role if isinstance(role, str) else "user"
        text, length, attached = _content_text(message.get("content"), budget)
        conv.attachments += attached
        items.append((role, text, length, attached))

    last_user = -1
    for index in range(len(items) - 1, -1, -1):
        if items[index][0] == "user":
            last_user = index
            break
    if last_user < 0:  # no user turn: judge the last message of any role but system
        for index in range(len(items) - 1, -1, -1):
            if items[index][0] not in ("system", "developer"):
                last_user = index
                break

    systems: list[str] = []
    history: list[str] = []
    for index, (role, text, length, attached) in enumerate(items):
        if role == "user":
            conv.user_turns += 1
        if index == last_user:
            conv.main = window(text, MAIN_HEAD, MAIN_TAIL)
            conv.main_chars = length
            conv.main_attachments = attached
            conv.truncated = conv.truncated or length > len(conv.main)
        elif role in ("system", "developer"):
            if text:
                systems.append(window(text, CONTEXT_HEAD, CONTEXT_TAIL))
        elif index < last_user and text and index >= last_user - CONTEXT_MESSAGES:
            history.append(window(text, CONTEXT_HEAD, CONTEXT_TAIL))
    conv.system = "\n".join(systems)
    conv.history = "\n".join(history)
    return conv


def detect_language(text: str) -> str:
    """``zh``, ``en`` or ``mixed`` from the share of non-ASCII characters.

    Counting is done by an ASCII encode (well under a microsecond) rather than a
    regex: a Chinese character carries about as much as a 5-letter English word.
    """
    sample = text[:1200]
    if not sample.strip():
        return "en"
    ascii_chars = len(sample.encode("ascii", "ignore"))
    other = len(sample) - ascii_chars
    share = other / (other + ascii_chars / 5.5)
    if share >= 0.7:
        return "zh"
    if share <= 0.2:
        return "en"
    return "mixed"
