"""The SSE decoder: same events whatever the chunk boundaries and line endings."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from coop._errors import UpstreamProtocolError
from coop._sse import SSEDecoder, SSEEvent, aiter_sse
from coop._wire import ChatChunk, Usage, chunk_to_sse, from_wire, to_wire

SAMPLE = (
    ": keep-alive\n"
    "\n"
    'data: {"content": "héllo 世界 🐱"}\n'
    "\n"
    "event: ping\n"
    "id: 7\n"
    "retry: 1500\n"
    "data: first line\n"
    "data:second line\n"
    "data\n"
    "data:  two spaces\n"
    ": a comment inside an event\n"
    "unknown: field\n"
    "\n"
    "event: orphan\n"  # no data: not dispatched
    "\n"
    "data: after orphan\n"
    "\n"
    "data: [DONE]\n"
    "\n"
).encode()

EXPECTED = [
    SSEEvent(data='{"content": "héllo 世界 🐱"}'),
    SSEEvent(
        event="ping",
        data="first line\nsecond line\n\n two spaces",
        id="7",
        retry=1500,
    ),
    SSEEvent(data="after orphan", id="7"),  # the last event id persists
    SSEEvent(data="[DONE]", id="7"),
]


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.flush()


def variants() -> list[tuple[str, bytes]]:
    return [
        ("lf", SAMPLE),
        ("crlf", SAMPLE.replace(b"\n", b"\r\n")),
        ("cr", SAMPLE.replace(b"\n", b"\r")),
    ]


@pytest.mark.parametrize(("name", "stream"), variants())
def test_whole_stream(name: str, stream: bytes) -> None:
    assert decode(stream) == EXPECTED


@pytest.mark.parametrize(("name", "stream"), variants())
def test_every_split_point_gives_the_same_events(name: str, stream: bytes) -> None:
    # Covers splits inside "\r\n" and inside every multi-byte UTF-8 character.
    for i in range(len(stream) + 1):
        assert decode(stream[:i], stream[i:]) == EXPECTED, f"split at {i}"


@pytest.mark.parametrize(("name", "stream"), variants())
def test_byte_by_byte_and_random_splits(name: str, stream: bytes) -> None:
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == EXPECTED
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(2, 12)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decode(*pieces) == EXPECTED, cuts


def test_comments_and_blank_lines_alone_yield_nothing() -> None:
    assert decode(b": keep-alive\n\n: another\n\n\n\n") == []


def test_events_come_out_as_soon_as_they_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b") == [SSEEvent(data="a")]
    assert decoder.feed(b"\n\n") == [SSEEvent(data="b")]
    assert decoder.flush() == []


def test_flush_dispatches_an_unterminated_last_event() -> None:
    assert decode(b"data: [DONE]") == [SSEEvent(data="[DONE]")]
    assert decode(b"data: [DONE]\n") == [SSEEvent(data="[DONE]")]
    assert decode(b"data: a\r") == [SSEEvent(data="a")]


def test_field_details() -> None:
    assert decode(b"data:\n\n") == [SSEEvent(data="")]
    assert decode(b"id: a\0b\ndata: x\n\n") == [SSEEvent(data="x", id=None)]  # NUL: ignored
    assert decode(b"retry: soon\ndata: x\n\n") == [SSEEvent(data="x")]  # not digits
    assert decode(b"id\ndata: x\n\n") == [SSEEvent(data="x", id="")]
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [
        SSEEvent(event="a", data="1"),
        SSEEvent(data="2"),  # the event type does not persist
    ]
    assert decode("data: \u2028 and \x85 are not line breaks\n\n".encode()) == [
        SSEEvent(data="\u2028 and \x85 are not line breaks")
    ]


def test_bom_and_invalid_utf8() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent(data="x")]
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [SSEEvent(data="x")]
    assert decode(b"data: \xff\n\n") == [SSEEvent(data="\ufffd")]
    assert decode(b"data: \xe4\xb8") == [SSEEvent(data="\ufffd")]  # cut character at the end


def test_runaway_line_is_a_protocol_error() -> None:
    decoder = SSEDecoder(max_line=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(UpstreamProtocolError, match="longer than 100"):
        decoder.feed(b"x" * 20)
    with pytest.raises(UpstreamProtocolError):
        SSEDecoder(max_line=10).feed(b"data: z\ndata: " + b"y" * 20)
    assert len(SSEDecoder(max_line=10).feed(b"data: 123\n\n")) == 1


def test_event_json() -> None:
    assert SSEEvent(data='{"a": [1]}').json() == {"a": [1]}
    with pytest.raises(ValueError):
        SSEEvent(data="[DONE").json()


def test_openai_stream_end_to_end() -> None:
    chunks = [
        ChatChunk.build("m", "", role="assistant", id="chatcmpl-1", created=3),
        *(ChatChunk.build("m", tok, id="chatcmpl-1", created=3) for tok in ["你", "好", "!"]),
        ChatChunk.build("m", finish_reason="stop", id="chatcmpl-1", created=3),
        ChatChunk.build("m", usage=Usage(prompt_tokens=2, completion_tokens=3), id="chatcmpl-1"),
    ]
    stream = b"".join(chunk_to_sse(c) for c in chunks) + b"data: [DONE]\n\n"
    for size in (1, 7, 64, len(stream)):
        events = decode(*(stream[i : i + size] for i in range(0, len(stream), size)))
        assert events[-1].data == "[DONE]"
        parsed = [from_wire(ChatChunk, e.json()) for e in events[:-1]]
        assert [to_wire(c) for c in parsed] == [to_wire(c) for c in chunks]
        assert "".join(c.text for c in parsed) == "你好!"


def test_ten_thousand_events() -> None:
    one = chunk_to_sse(ChatChunk.build("m", "tok", id="x", created=1))
    stream = one * 10_000 + b"data: [DONE]\n\n"
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(stream), 4096):
        events += decoder.feed(stream[i : i + 4096])
    events += decoder.flush()
    assert len(events) == 10_001
    assert events[0].data == one[6:-2].decode() and events[-1].data == "[DONE]"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.anyio
@pytest.mark.parametrize("size", [1, 5, 1000])
async def test_aiter_sse(size: int) -> None:
    events = [e async for e in aiter_sse(_chunks(SAMPLE.replace(b"\n", b"\r\n"), size))]
    assert events == EXPECTED


@pytest.mark.anyio
async def test_aiter_sse_flushes_at_the_end() -> None:
    events = [e async for e in aiter_sse(_chunks(b"data: a\n\ndata: [DONE]", 3))]
    assert [e.data for e in events] == ["a", "[DONE]"]
