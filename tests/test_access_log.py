"""The access log writes what logging would have written, cheaper, and never a secret."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator

import pytest
from coop._redact import RedactingFilter, remember
from coop.server._access import LOG_FORMAT, AccessLog

SECRET = "sk-accesslog-0123456789abcdef"

LINE = dict(
    method="POST",
    path=f"/v1/chat/completions/{SECRET}",
    status=200,
    ms=1.25,
    model="m",
    deployment="sim/m",
    request_id="req-1",
    client="127.0.0.1",
)


@contextlib.contextmanager
def serve_logging() -> Iterator[io.StringIO]:
    """The root handler exactly as ``coop serve`` sets it up, writing to a buffer (entered
    in the test body: pytest adds its own capturing handlers around each phase)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    remember([SECRET])
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_direct_line_matches_what_logging_writes() -> None:
    with serve_logging() as stream:
        _test_direct_line_matches_what_logging_writes(stream)


def _test_direct_line_matches_what_logging_writes(serve_logging: io.StringIO) -> None:
    log = AccessLog("text")
    assert log._direct_stream() is serve_logging  # the fast path is taken
    log.write(**LINE)
    direct = serve_logging.getvalue()
    serve_logging.seek(0)
    serve_logging.truncate()
    logging.getLogger("coop.access").info(
        "%s", "POST /v1/chat/completions/" + SECRET + " 200 1.2ms model=m deployment=sim/m id=req-1"
    )
    through_logging = serve_logging.getvalue()
    shape = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO coop\.access: (.*)\n$")
    a, b = shape.match(direct), shape.match(through_logging)
    assert a and b, (direct, through_logging)
    assert a.group(1) == b.group(1)
    assert SECRET not in direct and "***" in direct


def test_a_configured_handler_still_gets_records() -> None:
    with serve_logging() as stream:
        _test_a_configured_handler_still_gets_records(stream)


def _test_a_configured_handler_still_gets_records(serve_logging: io.StringIO) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(RedactingFilter())
    access = logging.getLogger("coop.access")
    access.addHandler(handler)
    try:
        log = AccessLog("text")
        assert log._direct_stream() is None
        log.write(**LINE)
    finally:
        access.removeHandler(handler)
    assert len(records) == 1
    assert SECRET not in records[0].getMessage()
    assert "POST /v1/chat/completions/" in records[0].getMessage()


def test_another_format_goes_through_logging() -> None:
    with serve_logging() as stream:
        _test_another_format_goes_through_logging(stream)


def _test_another_format_goes_through_logging(serve_logging: io.StringIO) -> None:
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(message)s"))
    log = AccessLog("text")
    assert log._direct_stream() is None
    log.write(**LINE)
    assert serve_logging.getvalue().startswith("POST /v1/chat/completions/***")


def test_json_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    remember([SECRET])
    AccessLog("json").write(**(LINE | {"model": SECRET}))
    err = capsys.readouterr().err
    assert SECRET not in err
    assert '"status":200' in err and '"model":"***"' in err
