"""Text out of a document: plain text, Markdown, HTML, PDF (pypdf) or DOCX (python-docx).

Every format becomes one extracted text; offsets (headings, pages, citations) are
character offsets into it. A document that cannot be read is a
:class:`coop.ValidationError` on ``content`` naming the format, never a partial text.
"""

from __future__ import annotations

import io
import re
import zipfile
from html.parser import HTMLParser
from typing import Any

import attrs
from coop import ValidationError

FORMATS = ("auto", "text", "markdown", "html", "pdf", "docx")
_SUFFIXES = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
_HTML_START = re.compile(r"\A\s*(?:<\?xml[^>]*>\s*)?<(?:!doctype\s+html|html|head|body)\b", re.I)
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@attrs.frozen
class Heading:
    level: int
    title: str
    #: Character offset of the heading in the extracted text.
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "title": self.title, "offset": self.offset}


@attrs.frozen
class Document:
    """The extracted text of a document and what its format told about its structure."""

    text: str
    format: str
    headings: tuple[Heading, ...] = ()
    #: Start offset of each page in ``text`` (PDF only).
    pages: tuple[int, ...] = ()
    title: str | None = None


def _invalid(message: str, value: Any = None) -> ValidationError:
    return ValidationError(message, field="content", value=value)


def detect_format(content: str | bytes, filename: str | None = None, declared: str = "auto") -> str:
    """The format of ``content``: the declared one, else the file's suffix, else its bytes."""
    if declared and declared != "auto":
        if declared not in FORMATS:
            raise ValidationError(
                f"{declared!r} is not one of {', '.join(FORMATS)}", field="format", value=declared
            )
        return declared
    head = content[:8] if isinstance(content, bytes) else content[:8].encode("utf-8", "replace")
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "docx"
    if filename:
        suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    if isinstance(content, bytes):
        return "text"  # decoded below, or refused as unknown binary
    if _HTML_START.match(content):
        return "html"
    if any(_ATX.match(line) for line in content.splitlines()[:500]):
        return "markdown"
    return "text"


def extract(content: str | bytes, filename: str | None = None, format: str = "auto") -> Document:
    """The :class:`Document` in ``content`` (``str`` for text formats, ``bytes`` for any)."""
    kind = detect_format(content, filename, format)
    if kind in ("pdf", "docx"):
        data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogateescape")
        document = _pdf(data) if kind == "pdf" else _docx(data)
    else:
        text = _decode(content) if isinstance(content, bytes) else content
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if kind == "html":
            document = _html(text)
        elif kind == "markdown":
            document = Document(text, "markdown", headings=_markdown_headings(text))
        else:
            document = Document(text, "text")
    if not document.text.strip():
        what = {"pdf": "the PDF has no extractable text (scanned pages need OCR first)"}.get(
            document.format, f"the {document.format.upper()} document holds no text"
        )
        raise _invalid(what)
    return document


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            break
        return text
    raise _invalid(
        "binary content that is neither PDF nor DOCX nor UTF-8 text; "
        "give text, Markdown, HTML, PDF or DOCX"
    )


# -- Markdown -------------------------------------------------------------------------------


def _markdown_headings(text: str) -> tuple[Heading, ...]:
    headings: list[Heading] = []
    offset = 0
    fenced = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            match = _ATX.match(line.rstrip("\n"))
            if match:
                headings.append(Heading(len(match.group(1)), match.group(2).strip(), offset))
        offset += len(line)
    return tuple(headings)


# -- HTML -----------------------------------------------------------------------------------

_BLOCKS = {
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
    "footer", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "title", "dd", "dt",
}  # fmt: skip
_SKIP = {"script", "style", "noscript", "template", "svg", "head"}


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.skip = 0
        self.heading: tuple[int, int, list[str]] | None = None
        self.headings: list[Heading] = []
        self.title: list[str] | None = None
        self.title_text: str | None = None

    def _write(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _newline(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self._write("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.title = []
        if tag in _SKIP:
            self.skip += 1
            return
        if tag in _BLOCKS:
            self._newline()
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456" and not self.skip:
            self.heading = (int(tag[1]), self.length, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title is not None:
            self.title_text = " ".join("".join(self.title).split()) or None
            self.title = None
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.heading and tag == f"h{self.heading[0]}":
            level, offset, words = self.heading
            title = " ".join("".join(words).split())
            if title:
                self.headings.append(Heading(level, title, offset))
            self.heading = None
        if tag in _BLOCKS:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.title.append(data)
        if self.skip:
            return
        text = re.sub(r"[ \t\r\n\f]+", " ", data)
        if not text.strip() and (not self.parts or self.parts[-1].endswith(("\n", " "))):
            return
        if self.parts and self.parts[-1].endswith("\n"):
            text = text.lstrip()
        if self.heading:
            self.heading[2].append(text)
        self._write(text)


def _html(text: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    return Document(
        "".join(parser.parts).strip("\n") + "\n",
        "html",
        headings=tuple(parser.headings),
        title=parser.title_text,
    )


# -- PDF ------------------------------------------------------------------------------------


def _pdf(data: bytes) -> Document:
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
        if reader.is_encrypted and not reader.decrypt(""):
            raise _invalid("the PDF is encrypted with a password; decrypt it first")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        info = reader.metadata
        title = str(info.title) if info is not None and info.title else None
        outline = _pdf_outline(reader)
    except ValidationError:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OSError,
    ) as exc:
        raise _invalid(f"not a readable PDF: {type(exc).__name__}: {exc}") from None
    if not texts:
        raise _invalid("not a readable PDF: it has no pages")
    parts: list[str] = []
    pages: list[int] = []
    offset = 0
    for text in texts:
        pages.append(offset)
        parts.append(text + "\n\n")
        offset += len(text) + 2
    full = "".join(parts)
    headings = tuple(
        Heading(level, title_, pages[page] if 0 <= page < len(pages) else 0)
        for level, title_, page in outline
    )
    return Document(full, "pdf", headings=headings, pages=tuple(pages), title=title)


def _pdf_outline(reader: Any) -> list[tuple[int, str, int]]:
    found: list[tuple[int, str, int]] = []

    def walk(items: Any, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:
                page = -1
            title = str(getattr(item, "title", "") or "").strip()
            if title:
                found.append((level, title, page))

    try:
        walk(reader.outline, 1)
    except Exception:
        return []
    return found


# -- DOCX -----------------------------------------------------------------------------------


def _docx(data: bytes) -> Document:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _invalid(f"not a readable DOCX: {exc}") from None
    if "word/document.xml" not in names:
        raise _invalid("not a readable DOCX: a ZIP archive without word/document.xml")
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        headings: list[Heading] = []
        offset = 0
        for block in document.element.body.iterchildren():
            tag = block.tag.rsplit("}", 1)[-1]
            if tag == "p":
                paragraph = Paragraph(block, document)
                text = paragraph.text.strip()
                level = _docx_heading_level(paragraph)
                if text and level:
                    headings.append(Heading(level, text, offset))
            elif tag == "tbl":
                table = Table(block, document)
                text = "\n".join(
                    " | ".join(cell.text.strip() for cell in row.cells) for row in table.rows
                )
            else:
                continue
            if text:
                parts.append(text + "\n\n")
                offset += len(text) + 2
        title = document.core_properties.title or None
    except ValidationError:
        raise
    except Exception as exc:
        raise _invalid(f"not a readable DOCX: {type(exc).__name__}: {exc}") from None
    return Document("".join(parts), "docx", headings=tuple(headings), title=title)


def _docx_heading_level(paragraph: Any) -> int:
    try:
        style = paragraph.style.name or ""
    except Exception:
        return 0
    if style == "Title":
        return 1
    match = re.match(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0
