"""document_analysis end to end: real PDF and DOCX files, a fake OpenAI upstream scripted
with JSON answers and a 512-token context window (so every analysis is map-reduce), the CLI
on the embedded simulated models, and the bad input."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coop
import pytest
from coop import ServiceError, ServiceManager, SystemConfig, ValidationError
from coop_document_analysis import detect_format, extract, parse_object, split
from fakes import FakeOpenAI
from test_gateway import PLUGINS, UPSTREAM_KEYS

WINDOW = 512
NAMES = {"Ada Lovelace": "person", "Acme Corporation": "organization", "Lisbon": "location"}


# -- documents built here ----------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: each page's lines set in Helvetica, one per text line."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    contents = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 750 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        contents.append(add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)))
    parent = len(objects) + len(pages) + 1
    kids = [
        add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (parent, content, font)
        )
        for content in contents
    ]
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))) == parent
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % parent)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        xref,
    )
    return bytes(out)


def report_pages() -> list[list[str]]:
    """Six pages of a report: names to find, a good and a bad passage, one launch date."""
    pages = []
    for page in range(1, 7):
        lines = [f"Section {page}: quarterly review, page {page}."]
        for line in range(1, 11):
            lines.append(
                f"Paragraph {page}.{line} reviews the work of the team in some detail today."
            )
        if page == 2:
            lines.append("Ada Lovelace joined Acme Corporation and the results were great.")
        if page == 4:
            lines.append("The launch date is March 3 in Lisbon, confirmed by Ada Lovelace.")
        if page == 5:
            lines.append("Costs at Acme Corporation were terrible this quarter.")
        pages.append(lines)
    return pages


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Team report"
    document.add_heading("Team report", level=1)
    for section in range(1, 5):
        document.add_heading(f"Part {section}", level=2)
        for line in range(1, 7):
            document.add_paragraph(
                f"Paragraph {section}.{line} describes the steady progress of the project."
            )
        if section == 2:
            document.add_paragraph("Ada Lovelace joined Acme Corporation and it was great.")
        if section == 3:
            document.add_paragraph("The launch date is March 3 in Lisbon.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "metric", "value"
    table.cell(1, 0).text, table.cell(1, 1).text = "tickets closed", "42"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# -- a scripted model ----------------------------------------------------------------------


def _prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def _chunk_text(prompt: str) -> str | None:
    match = re.search(r"<text>\n(.*)\n</text>", prompt, re.S)
    return match.group(1) if match else None


def _items(prompt: str) -> list[str]:
    match = re.search(r"<items>\n(.*)\n</items>", prompt, re.S)
    return re.findall(r"^\[\d+\] (.*)$", match.group(1), re.M) if match else []


def scripted(body: dict[str, Any]) -> str:
    """JSON answers a careful model would give, derived from the prompt it got."""
    prompt = _prompt(body)
    text = _chunk_text(prompt)
    if text is None:  # a reduce: combine the numbered items
        items = _items(prompt)
        numbers = list(range(1, len(items) + 1))
        if prompt.startswith("These key points"):
            points = [
                {"point": item, "sources": [n]} for n, item in zip(numbers, items, strict=True)
            ][:3]
            return json.dumps({"key_points": points})
        if prompt.startswith("Question:"):
            return json.dumps({"answer": items[0], "sources": [1]})
        return json.dumps(
            {"summary": f"Combined summary of {len(items)} parts.", "sources": numbers}
        )
    words = " ".join(text.split()[:4])
    first = {"summary": f"Part starting {words}."}
    points = {"key_points": [{"point": f"Point on {words}.", "quote": words}]}
    entities = {
        "entities": [{"name": name, "type": kind} for name, kind in NAMES.items() if name in text]
    }
    score = 0.8 if "great" in text else -0.8 if "terrible" in text else 0.0
    sentiment = {"sentiment": "positive" if score > 0 else "negative" if score < 0 else "neutral"}
    sentiment["score"] = score  # type: ignore[assignment]
    if "Question:" in prompt:
        hit = re.search(r"The launch date is March 3[^.\n]*", text)
        answer = {"relevant": bool(hit), "answer": "March 3" if hit else "", "quote": ""}
        if hit:
            answer["quote"] = hit.group(0)
        return json.dumps(answer)
    if prompt.startswith("Summarise this text, list"):
        return "```json\n" + json.dumps({**first, **points, **entities, **sentiment}) + "\n```"
    if prompt.startswith("Summarise"):
        return json.dumps(first)
    if prompt.startswith("List the key points"):
        return "Here you are: " + json.dumps(points)
    if prompt.startswith("List the named entities"):
        return json.dumps(entities)
    return json.dumps(sentiment)


# -- harness -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(up: FakeOpenAI) -> None:
    up.reset()
    up.answer_fn = scripted


def fake_config(up: FakeOpenAI, window: int = WINDOW) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                "fake": {
                    "provider": "fake-openai",
                    "base_url": up.base_url,
                    "api_keys": UPSTREAM_KEYS,
                    "timeout": 10,
                    "health_check_interval": 0,
                }
            },
            "models": {
                "m": {
                    "endpoint": "fake",
                    "path": "gpt-4o-mini",
                    "tier": "light",
                    "context_window": window,
                },
            },
            "routing": {"light": "m", "reasoning": "m", "complex": "m"},
        }
    )


async def analyse(
    up: FakeOpenAI, content: str | bytes, window: int = WINDOW, **parameters: Any
) -> coop.ServiceResponse:
    dispatcher = coop.Dispatcher(fake_config(up, window), plugins=PLUGINS, health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        return await manager.run("document_analysis", content, parameters)


def bodies(up: FakeOpenAI) -> list[dict[str, Any]]:
    return [r.json for r in up.requests if r.path.endswith("/chat/completions")]


def assert_within_window(up: FakeOpenAI, window: int = WINDOW) -> None:
    sent = bodies(up)
    assert sent
    for body in sent:
        needed = coop.estimate_messages_tokens(body["messages"]) + body["max_tokens"]
        assert needed <= window, (needed, _prompt(body)[:200])


def assert_citations(text: str, chunks: list[dict[str, Any]], citations: list[Any]) -> None:
    assert citations
    for c in citations:
        chunk = chunks[c["chunk"]]
        assert chunk["start"] <= c["start"] < c["end"] <= chunk["end"]
        if c["exact"]:
            assert text[c["start"] : c["end"]] == c["quote"]


# -- map-reduce within the window ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_long_pdf_is_analysed_map_reduce_and_no_request_exceeds_the_window(
    up: FakeOpenAI,
) -> None:
    pdf = make_pdf(report_pages())
    response = await analyse(up, pdf, filename="report.pdf")
    data = response.data
    text = extract(pdf).text
    chunks = data["chunking"]["chunks"]
    assert data["format"] == "pdf" and data["statistics"]["pages"] == 6
    assert data["statistics"]["characters"] == len(text)
    assert data["statistics"]["tokens"] == coop.estimate_tokens(text)
    assert len(chunks) >= 4 and chunks[0]["start"] == 0 and chunks[-1]["end"] == len(text)
    for before, after in itertools.pairwise(chunks):
        assert after["start"] < before["end"]  # overlap, no gap
        assert after["tokens"] <= data["chunking"]["chunk_tokens"]
    assert_within_window(up)
    calls = bodies(up)
    reduces = [b for b in calls if _chunk_text(_prompt(b)) is None]
    assert len(calls) == len(chunks) + len(reduces) and reduces  # one call per chunk, then reduce
    assert response.calls == len(calls) and response.models == ["m"]

    assert data["summary"]["text"].startswith("Combined summary of")
    assert_citations(text, chunks, data["summary"]["citations"])
    assert 1 <= len(data["key_points"]) <= 7
    for point in data["key_points"]:
        assert_citations(text, chunks, point["citations"])
        assert any(c["exact"] for c in point["citations"])
    entities = {e["name"]: e for e in data["entities"]}
    assert {n: e["type"] for n, e in entities.items()} == NAMES
    assert entities["Ada Lovelace"]["mentions"] == 2 == len(re.findall("Ada Lovelace", text))
    assert entities["Acme Corporation"]["mentions"] == 2
    for entity in entities.values():
        assert_citations(text, chunks, entity["citations"])
        assert all(c["quote"] == entity["name"] for c in entity["citations"])
    assert {c["page"] for c in entities["Lisbon"]["citations"]} == {4}
    sentiment = data["sentiment"]
    weighted = sum(c["score"] * c["weight"] for c in sentiment["chunks"]) / sum(
        c["weight"] for c in sentiment["chunks"]
    )
    assert sentiment["score"] == round(weighted, 3)
    assert sentiment["label"] == "mixed"  # one chunk at +0.8, another at -0.8
    assert "## Key points" in response.result and "## Entities" in response.result


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kind", ["summary", "key_points", "entities", "sentiment", "qa", "comprehensive"]
)
async def test_each_analysis_type_on_a_docx(up: FakeOpenAI, kind: str) -> None:
    docx = make_docx()
    parameters: dict[str, Any] = {"analysis_type": kind, "filename": "report.docx"}
    if kind == "qa":
        parameters["question"] = "When is the launch date?"
    response = await analyse(up, docx, **parameters)
    data = response.data
    text = extract(docx).text
    chunks = data["chunking"]["chunks"]
    assert data["format"] == "docx" and data["title"] == "Team report"
    assert [h["title"] for h in data["outline"]] == [
        "Team report",
        *[f"Part {i}" for i in range(1, 5)],
    ]
    assert all(text[h["offset"] :].startswith(h["title"]) for h in data["outline"])
    assert "tickets closed | 42" in text
    assert len(chunks) > 1
    assert_within_window(up)
    sections = {"summary", "key_points", "entities", "sentiment", "qa"}
    wanted = sections - {"qa"} if kind == "comprehensive" else {kind}
    assert sections & set(data) == wanted
    if "summary" in wanted:
        assert data["summary"]["text"].startswith("Combined summary of")
    if "key_points" in wanted:
        assert data["key_points"] and all(p["citations"] for p in data["key_points"])
    if "entities" in wanted:
        assert {e["name"]: e["type"] for e in data["entities"]} == NAMES
    if "sentiment" in wanted:
        sentiment = data["sentiment"]
        assert sum(c["weight"] for c in sentiment["chunks"]) == pytest.approx(
            coop.estimate_tokens(text), abs=len(chunks)
        )
        weighted = sum(c["score"] * c["weight"] for c in sentiment["chunks"]) / sum(
            c["weight"] for c in sentiment["chunks"]
        )
        assert sentiment["score"] == round(weighted, 3) > 0
        assert sentiment["label"] == ("positive" if weighted >= 0.25 else "neutral")
    if kind == "qa":
        qa = data["qa"]
        assert qa["found"] and qa["answer"] == "March 3"
        assert_citations(text, chunks, qa["citations"])
        assert [c["quote"] for c in qa["citations"]] == ["The launch date is March 3 in Lisbon"]


@pytest.mark.anyio
async def test_a_reduce_that_does_not_fit_one_prompt_runs_in_rounds(up: FakeOpenAI) -> None:
    text = "\n\n".join(
        f"Paragraph {i} tells a long story about the project and its many details."
        for i in range(300)
    )
    response = await analyse(up, text, window=400, analysis_type="summary")
    assert_within_window(up, 400)
    reduces = [_prompt(b) for b in bodies(up) if _prompt(b).startswith("These summaries")]
    chunks = response.data["chunking"]["chunks"]
    assert len(chunks) > 20 and len(reduces) >= 3  # several groups, then their summaries
    summary = response.data["summary"]
    assert summary["text"].startswith("Combined summary of")
    assert [c["chunk"] for c in summary["citations"]] == list(range(len(chunks)))


@pytest.mark.anyio
async def test_a_short_text_is_one_call_with_no_reduce(up: FakeOpenAI) -> None:
    response = await analyse(up, "Ada Lovelace wrote notes in Lisbon.", analysis_type="summary")
    assert response.calls == 1 and len(response.data["chunking"]["chunks"]) == 1
    assert response.data["summary"]["text"] == "Part starting Ada Lovelace wrote notes."


@pytest.mark.anyio
async def test_qa_that_the_document_does_not_answer(up: FakeOpenAI) -> None:
    response = await analyse(
        up, "Paragraph one.\n\nParagraph two.", analysis_type="qa", question="Launch date?"
    )
    assert response.data["qa"] == {
        "question": "Launch date?",
        "answer": None,
        "found": False,
        "citations": [],
    }
    assert "does not answer" in response.result


# -- answers that are not the JSON asked for -----------------------------------------------


@pytest.mark.anyio
async def test_an_invalid_answer_is_asked_again_then_accepted(up: FakeOpenAI) -> None:
    answers = iter(['{"key_points": "not a list"}', '{"key_points": [{"point": "Fine."}]}'])
    up.answer_fn = lambda body: next(answers)
    response = await analyse(up, "Some text.", analysis_type="key_points")
    assert response.calls == 2
    assert response.data["key_points"] == [
        {"point": "Fine.", "citations": [{"chunk": 0, "start": 0, "end": 10, "exact": False}]}
    ]
    retry = _prompt(bodies(up)[1])
    assert '"key_points" must be a list' in retry and "only the JSON object" in retry


@pytest.mark.anyio
async def test_no_valid_json_after_the_retries_is_a_clear_error(up: FakeOpenAI) -> None:
    up.answer_fn = lambda body: "I think the sentiment is rather nice."
    dispatcher = coop.Dispatcher(fake_config(up), plugins=PLUGINS, health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        failed = await manager.process_request(
            "document_analysis", "Text.", {"analysis_type": "sentiment", "retries": "1"}
        )
    assert not failed.success and failed.error_type == "ServiceError"
    assert "m did not answer part 1/1 with the JSON asked for after 2 attempt(s)" in (
        failed.error or ""
    )
    assert "rather nice" in (failed.error or "") and failed.data == {} and failed.result == ""
    assert len(bodies(up)) == 2


@pytest.mark.anyio
async def test_a_plain_text_summary_is_taken_and_noted(up: FakeOpenAI) -> None:
    up.answer_fn = lambda body: "The text is about notes."
    response = await analyse(up, "Some notes.", analysis_type="summary")
    assert response.data["summary"]["text"] == "The text is about notes."
    assert any("plain text" in note for note in response.data["notes"])


@pytest.mark.anyio
async def test_a_window_too_small_for_the_prompt_is_refused_before_any_call(
    up: FakeOpenAI,
) -> None:
    with pytest.raises(ServiceError, match="context window of 200 tokens leaves"):
        await analyse(up, "text " * 100, window=200)
    assert bodies(up) == []


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_bad_input_is_a_clear_error_never_a_half_result(up: FakeOpenAI) -> None:
    pdf = make_pdf(report_pages())
    cases: list[tuple[Any, dict[str, Any], str, str]] = [
        (pdf[: len(pdf) // 2], {}, "content", "not a readable PDF"),
        (pdf.replace(b"xref", b"xfer"), {}, "content", "not a readable PDF"),
        (b"PK\x03\x04 broken", {"filename": "a.docx"}, "content", "not a readable DOCX"),
        (_zip({"a.txt": b"x"}), {}, "content", "without word/document.xml"),
        (_zip({"word/document.xml": b"<oops"}), {}, "content", "not a readable DOCX"),
        (b"\x00\x81\xfe\xff" * 10, {}, "content", "neither PDF nor DOCX"),
        ("<html><body><script>x()</script></body></html>", {}, "content", "holds no text"),
        ("text", {"analysis_type": "qa"}, "question", "needs a question"),
        ("text", {"analysis_type": "qa", "question": "  "}, "question", "needs a question"),
        ("text", {"overlap_tokens": 10_000}, "overlap_tokens", "half the chunk"),
    ]
    for content, parameters, field, message in cases:
        with pytest.raises(ValidationError, match=message) as caught:
            await analyse(up, content, **parameters)
        assert caught.value.field == field
    dispatcher = coop.Dispatcher(fake_config(up), plugins=PLUGINS, health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        unknown = await manager.process_request(
            "document_analysis", "x", {"analysis_type": "sumary"}
        )
        empty = await manager.process_request("document_analysis", "  \n ", {})
    assert "comprehensive, summary, key_points" in (unknown.error or "")
    assert "did you mean 'summary'" in (unknown.error or "")
    assert not empty.success and "content is empty" in (empty.error or "")
    assert bodies(up) == []


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return out.getvalue()


# -- extraction and chunking ---------------------------------------------------------------


def test_formats_are_told_apart_and_extracted() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Top</h1><p>One &amp; two.</p><script>alert(1)</script><h2>Sub</h2><p>Three</p>"
        "</body></html>"
    )
    page = extract(html)
    assert page.format == "html" and page.title == "T"
    assert page.text == "Top\nOne & two.\nSub\nThree\n"
    assert [(h.level, h.title, h.offset) for h in page.headings] == [(1, "Top", 0), (2, "Sub", 15)]
    markdown = "# A\n\ntext\n\n```\n# not a heading\n```\n\n## B\n"
    doc = extract(markdown)
    assert doc.format == "markdown" and [h.title for h in doc.headings] == ["A", "B"]
    assert doc.text[doc.headings[1].offset :].startswith("## B")
    assert extract("plain words").format == "text"
    assert detect_format("# looks like markdown", "notes.txt") == "text"
    assert detect_format(make_pdf([["x"]]).decode("latin-1"), None) == "pdf"  # the CLI's str
    assert detect_format(make_docx(), None) == "docx"
    assert extract("caf\xe9 text".encode()).text == "caf\xe9 text"


def test_split_covers_the_text_with_overlap_and_within_budget() -> None:
    text = "\n\n".join(f"Sentence {i} of a longer text, with some words." for i in range(200))
    chunks = split(text, 100, 20)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start < before.end
        assert coop.estimate_tokens(text[after.start : before.end]) <= 20
    assert all(coop.estimate_tokens(text[c.start : c.end]) == c.tokens <= 100 for c in chunks)
    chinese = "文档分析。" * 300
    assert all(c.tokens <= 50 for c in split(chinese, 50, 5))


def test_json_answers_are_read_tolerantly() -> None:
    assert parse_object('```json\n{"a": 1,}\n```') == {"a": 1}
    assert parse_object('Sure! {"a": {"b": "}"}} Hope it helps.') == {"a": {"b": "}"}}
    assert parse_object("no json here") is None
    assert parse_object("[1, 2]") is None


# -- the CLI on the embedded simulated models ----------------------------------------------


def run_coop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL", "API_KEY")}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_end_to_end_on_the_simulated_models(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(
        "# Notes\n\nAda Lovelace met us in Lisbon.\n\n## More\n\nOk.\n"
    )
    (tmp_path / "doc.pdf").write_bytes(make_pdf(report_pages()))
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\nnot really")

    summary = run_coop(
        "service", "document_analysis", "--file", "doc.md", "--param", "analysis_type=summary",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    body = json.loads(summary.stdout)
    assert body["success"] and body["data"]["filename"] == "doc.md"
    assert body["data"]["format"] == "markdown"
    assert [h["title"] for h in body["data"]["outline"]] == ["Notes", "More"]
    assert body["data"]["summary"]["text"].startswith("[simulated")  # prose, taken as is
    assert any("plain text" in note for note in body["data"]["notes"])

    pdf = run_coop(
        "service", "document_analysis", "--file", "doc.pdf", "--param", "analysis_type=summary",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert pdf.returncode == 0, pdf.stderr
    assert json.loads(pdf.stdout)["data"]["statistics"]["pages"] == 6

    structured = run_coop("service", "document_analysis", "--file", "doc.md", cwd=tmp_path)
    assert structured.returncode == 1 and structured.stdout == ""
    assert "did not answer part 1/1 with the JSON asked for after 3 attempt(s)" in (
        structured.stderr
    )
    assert "Traceback" not in structured.stderr

    bad = run_coop("service", "document_analysis", "--file", "bad.pdf", cwd=tmp_path)
    assert bad.returncode == 2 and "content: not a readable PDF" in bad.stderr
