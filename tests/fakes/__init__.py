"""Fake upstream LLM servers on loopback, for tests and benchmarks.

Each fake speaks a provider's real wire format over real HTTP, injects faults on demand and
records what it received. It runs its own asyncio loop in a daemon thread, so it serves tests
written for asyncio, trio or no event loop alike::

    with FakeOpenAI(api_keys=["sk-test"]) as up:
        up.queue_fault(Fault.status(503))
        ...  # point a client at up.base_url
"""

from .anthropic_upstream import FakeAnthropic
from .http import (
    Answer,
    FakeUpstream,
    Fault,
    HTTPServer,
    RecordedRequest,
    Request,
    Responder,
    ToolCall,
    count_tokens,
)
from .openai_upstream import FakeOpenAI

__all__ = [
    "Answer",
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeUpstream",
    "Fault",
    "HTTPServer",
    "RecordedRequest",
    "Request",
    "Responder",
    "ToolCall",
    "count_tokens",
]
