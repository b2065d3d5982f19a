"""The ``document_analysis`` service: summary, key points, entities, sentiment and Q&A.

Text, Markdown, HTML, PDF (pypdf) and DOCX (python-docx) are reduced to one
extracted text; code counts characters, words and tokens, outlines the headings
and splits the text into overlapping chunks sized so that no request exceeds the
model's context window (prompt template and answer included). Each chunk is
analysed by the model (map), the partial answers are combined (reduce: by the
model for summaries, key points and answers, by code for entities and sentiment),
and every finding cites its chunk and character offsets in the extracted text.
The model answers in JSON, read tolerantly and asked again a bounded number of
times; a plain-text answer is accepted only as a summary.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import coop
from coop import (
    CoopError,
    Service,
    ServiceContext,
    ServiceError,
    ServiceParameter,
    ServiceResult,
    ValidationError,
    estimate_messages_tokens,
    estimate_tokens,
)

from ._chunks import Chunk, _fit, locate, split
from ._extract import FORMATS, Document, Heading, detect_format, extract
from ._json import parse_object

__all__ = [
    "ANALYSIS_TYPES",
    "Chunk",
    "Document",
    "DocumentAnalysis",
    "Heading",
    "detect_format",
    "extract",
    "parse_object",
    "split",
]

ANALYSIS_TYPES = ("comprehensive", "summary", "key_points", "entities", "sentiment", "qa")
#: Window assumed when the model's ``context_window`` is not configured.
ASSUMED_WINDOW = 8192
#: Tokens kept free besides the template's estimate (part numbers, rounding).
MARGIN = 16
#: Fewest document tokens per chunk worth a model call.
MIN_CHUNK = 48
CONCURRENCY = 4
ENTITY_TYPES = ("person", "organization", "location", "date", "product", "event", "other")
_ENTITY_ALIASES = {
    "org": "organization",
    "organisation": "organization",
    "company": "organization",
    "per": "person",
    "people": "person",
    "place": "location",
    "loc": "location",
    "gpe": "location",
    "country": "location",
    "city": "location",
    "time": "date",
}
SENTIMENTS = ("positive", "negative", "neutral", "mixed")
_WORD = re.compile(r"[\u3400-\u9fff]|[^\W_]+(?:['’][^\W_]+)*")
_SYSTEM = (
    "You analyse documents. Answer with one JSON object in exactly the format asked, "
    "no prose around it. Write in the language of the document."
)
_RETRY = (
    "Your previous answer could not be used ({problem}). "
    "Answer again with only the JSON object in the format asked."
)
_MAX_PROBLEM = 100
_JSONISH = re.compile(r"\s*(?:\{|```|\[\s*[\[{\"\]])")
_PLACEHOLDER = re.compile(r"\A<[^<>]*>\Z|\A\.\.\.\Z")


class _Invalid(Exception):
    """A model answer that is not what was asked for (a re-ask fixes it, or the call fails)."""


# -- what a model is asked, and how its answers are checked --------------------------------


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Invalid(f"{what} must be a non-empty string")
    if _PLACEHOLDER.match(value.strip()):
        raise _Invalid(f"{what} repeats the format's placeholder {value.strip()!r}")
    return value.strip()


def _check_summary(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {"summary": _text(answer.get("summary"), '"summary"')}


def _check_points(answer: Mapping[str, Any]) -> dict[str, Any]:
    points = answer.get("key_points")
    if not isinstance(points, list):
        raise _Invalid('"key_points" must be a list')
    checked = []
    for item in points:
        if isinstance(item, str):
            item = {"point": item}
        if not isinstance(item, Mapping):
            raise _Invalid('each key point must be an object with "point"')
        sources = item.get("sources") or []
        checked.append(
            {
                "point": _text(item.get("point"), '"point"'),
                "quote": _text(item.get("quote"), '"quote"', required=False),
                "sources": [s for s in sources if isinstance(s, int) and not isinstance(s, bool)]
                if isinstance(sources, list)
                else [],
            }
        )
    return {"key_points": checked}


def _entity_type(value: Any) -> str:
    kind = re.sub(r"[\s-]+", "_", str(value or "other").strip().lower()) or "other"
    return _ENTITY_ALIASES.get(kind, kind)


def _check_entities(answer: Mapping[str, Any]) -> dict[str, Any]:
    entities = answer.get("entities")
    if not isinstance(entities, list):
        raise _Invalid('"entities" must be a list')
    checked = []
    for item in entities:
        if not isinstance(item, Mapping):
            raise _Invalid('each entity must be an object with "name" and "type"')
        checked.append(
            {"name": _text(item.get("name"), '"name"'), "type": _entity_type(item.get("type"))}
        )
    return {"entities": checked}


def _score(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        parsed = coop.parse_number(str(value), percent="ratio")
        if parsed is None:
            raise _Invalid('"score" must be a number from -1 to 1')
        number = float(parsed)
    if not math.isfinite(number):
        raise _Invalid('"score" must be a number from -1 to 1')
    return max(-1.0, min(1.0, number))


def _label(score: float) -> str:
    return "positive" if score >= 0.25 else "negative" if score <= -0.25 else "neutral"


def _check_sentiment(answer: Mapping[str, Any]) -> dict[str, Any]:
    raw = answer.get("sentiment")
    if isinstance(raw, Mapping):  # {"sentiment": {"label": ..., "score": ...}}
        answer, raw = raw, raw.get("label")
    score = _score(answer.get("score"))
    label = str(raw).strip().lower() if isinstance(raw, str) else None
    if label not in SENTIMENTS:
        if score is None:
            raise _Invalid(f'"sentiment" must be one of {", ".join(SENTIMENTS)}, with a "score"')
        label = _label(score)
    if score is None:
        score = {"positive": 0.6, "negative": -0.6}.get(label, 0.0)
    return {"sentiment": label, "score": score}


def _check_qa(answer: Mapping[str, Any]) -> dict[str, Any]:
    relevant = answer.get("relevant")
    text = _text(answer.get("answer"), '"answer"', required=False)
    if not isinstance(relevant, bool):
        relevant = bool(text)
    if relevant and not text:
        raise _Invalid('"answer" must be given when "relevant" is true')
    return {
        "relevant": relevant,
        "answer": text,
        "quote": _text(answer.get("quote"), '"quote"', required=False),
    }


def _check_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    sources = answer.get("sources") or []
    return {
        "answer": _text(answer.get("answer"), '"answer"'),
        "sources": [s for s in sources if isinstance(s, int) and not isinstance(s, bool)]
        if isinstance(sources, list)
        else [],
    }


def _check_comprehensive(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_check_summary(answer),
        **_check_points(answer),
        **_check_entities(answer),
        **_check_sentiment(answer),
    }


_SCHEMAS = {
    "summary": '{"summary": "<at most 3 sentences>"}',
    "key_points": (
        '{"key_points": [{"point": "<one sentence>", '
        '"quote": "<a few words copied exactly from the text>"}]}'
    ),
    "entities": (
        '{"entities": [{"name": "<as written in the text>", "type": "'
        + "|".join(ENTITY_TYPES)
        + '"}]}'
    ),
    "sentiment": '{"sentiment": "positive|negative|neutral|mixed", "score": <-1.0 to 1.0>}',
    "qa": (
        '{"relevant": true|false, "answer": "<the answer this part gives, or empty>", '
        '"quote": "<the words copied exactly from the text that support it>"}'
    ),
}
_SCHEMAS["comprehensive"] = (
    '{"summary": "<at most 3 sentences>", "key_points": [{"point": "...", "quote": "..."}], '
    '"entities": [{"name": "...", "type": "person|organization|location|date|product|event|other"}], '
    '"sentiment": "positive|negative|neutral|mixed", "score": <-1.0 to 1.0>}'
)
_TASKS = {
    "summary": "Summarise this text.",
    "key_points": "List the key points of this text (at most {max_points}).",
    "entities": "List the named entities in this text: people, organizations, places, dates, "
    "products, events.",
    "sentiment": "Judge the overall sentiment (tone) of this text.",
    "qa": "Answer the question from this text only. Question: {question}",
    "comprehensive": "Summarise this text, list its key points (at most {max_points}) and its "
    "named entities, and judge its sentiment.",
}
_CHECKS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "summary": _check_summary,
    "key_points": _check_points,
    "entities": _check_entities,
    "sentiment": _check_sentiment,
    "qa": _check_qa,
    "comprehensive": _check_comprehensive,
}


# -- the service -------------------------------------------------------------------------


def _retry_note(problem: str) -> str:
    return _RETRY.format(problem=problem[:_MAX_PROBLEM])


def _messages(user: str, retry: str | None = None) -> list[dict[str, str]]:
    if retry:
        user = f"{user}\n\n{retry}"
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _template_tokens(user: str) -> int:
    """Tokens of a prompt without its document text, a re-ask note included."""
    return estimate_messages_tokens(_messages(user, _retry_note("x" * _MAX_PROBLEM))) + MARGIN


class _Run:
    """One analysis: the document, its chunks, the pinned model and the model calls."""

    def __init__(
        self,
        document: Document,
        parameters: Mapping[str, Any],
        context: ServiceContext,
    ) -> None:
        self.document = document
        self.text = document.text
        self.kind: str = parameters["analysis_type"]
        self.question: str = (parameters.get("question") or "").strip()
        self.max_points = int(parameters["max_points"])
        self.retries = int(parameters["retries"])
        self.context = context
        self.notes: list[str] = []
        requested = parameters["model"] or "auto"
        sample = self._map_prompt(self.text[:4000], 0, 1)
        #: Every call goes to the model (or cooperation) the router picks for the document.
        self.target = context.target(requested, _messages(sample))
        window = context.context_window(self.target)
        self.window = window
        self.usable = window or ASSUMED_WINDOW
        if window is None:
            self.notes.append(
                f"{self.target} has no context_window configured; "
                f"chunks are sized for {ASSUMED_WINDOW} tokens"
            )
        self.answer_tokens = max(64, min(1024, self.usable // 4))
        overhead = _template_tokens(self._map_prompt("", 0, 1))
        budget = self.usable - self.answer_tokens - overhead
        if budget < MIN_CHUNK:
            raise ServiceError(
                f"{self.target}'s context window of {self.usable} tokens leaves {max(budget, 0)} "
                f"tokens for the document after the prompt (~{overhead}) and the answer "
                f"({self.answer_tokens}); use a model with a larger context_window"
                + (" or a shorter question" if self.kind == "qa" else "")
            )
        chosen = parameters.get("chunk_tokens") or budget
        if chosen > budget:
            self.notes.append(
                f"chunk_tokens={chosen} does not fit {self.target}'s window; using {budget}"
            )
        self.chunk_tokens = max(MIN_CHUNK, min(int(chosen), budget))
        overlap = parameters.get("overlap_tokens")
        if overlap is None:
            overlap = min(200, self.chunk_tokens // 8)
        if overlap < 0 or overlap > self.chunk_tokens // 2:
            raise ValidationError(
                f"must be from 0 to half the chunk size ({self.chunk_tokens // 2})",
                field="overlap_tokens",
                value=overlap,
            )
        self.overlap_tokens = int(overlap)
        self.chunks = split(self.text, self.chunk_tokens, self.overlap_tokens)

    # prompts -----------------------------------------------------------------------------

    def _map_prompt(self, body: str, index: int, total: int) -> str:
        task = _TASKS[self.kind].format(max_points=self.max_points, question=self.question)
        where = f"part {index + 1} of {total} of a document" if total > 1 else "a document"
        title = f' titled "{self.document.title[:200]}"' if self.document.title else ""
        return (
            f"{task}\nAnswer format (JSON): {_SCHEMAS[self.kind]}\n"
            f"The text is {where}{title}.\n<text>\n{body}\n</text>"
        )

    # model calls -------------------------------------------------------------------------

    async def ask(
        self,
        user: str,
        check: Callable[[Mapping[str, Any]], dict[str, Any]],
        what: str,
        *,
        plain: str | None = None,
    ) -> dict[str, Any]:
        """The checked JSON answer to ``user``; ``plain`` names the key a plain-text answer
        fills (summaries only). Asks again at most ``retries`` times, then fails."""
        problem: str | None = None
        text = ""
        for _ in range(self.retries + 1):
            messages = _messages(user, _retry_note(problem) if problem else None)
            prompt = estimate_messages_tokens(messages)
            if not self.context.fits(self.target, prompt, self.answer_tokens):
                raise ServiceError(  # the chunk sizes rule this out; a last guard
                    f"a prompt of ~{prompt} tokens for {what} does not fit {self.target}'s "
                    f"context window of {self.window}"
                )
            completion = await self.context.complete(
                messages, model=self.target, max_tokens=self.answer_tokens
            )
            text = completion.text or ""
            answer = parse_object(text)
            try:
                if answer is None:
                    raise _Invalid("no JSON object in it")
                return check(answer)
            except _Invalid as exc:
                problem = str(exc)
            prose = text.strip()
            if plain is not None and prose and not _JSONISH.match(prose):
                # A summary in prose is still a summary: taken as is, and said so.
                note = (
                    f"{self.target} answered {what} in plain text, not JSON; taken as the summary"
                )
                if note not in self.notes:
                    self.notes.append(note)
                return check({plain: prose})
        snippet = " ".join(text.split())[:160]
        raise ServiceError(
            f"{self.target} did not answer {what} with the JSON asked for after "
            f"{self.retries + 1} attempt(s) ({problem}); its last answer began: {snippet!r}"
        )

    async def gather(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Run ``jobs`` a few at a time; the first failure cancels the rest and is raised."""
        results: list[Any] = [None] * len(jobs)
        failure: list[CoopError] = []
        limiter = anyio.CapacityLimiter(CONCURRENCY)

        async with anyio.create_task_group() as group:

            async def one(i: int) -> None:
                async with limiter:
                    if failure:
                        return
                    try:
                        results[i] = await jobs[i]()
                    except CoopError as exc:
                        failure.append(exc)
                        group.cancel_scope.cancel()

            for i in range(len(jobs)):
                group.start_soon(one, i)
        if failure:
            raise failure[0]
        return results

    # citations ---------------------------------------------------------------------------

    def cite(self, chunk: Chunk, quote: str | None = None) -> dict[str, Any]:
        """Where a finding comes from: the quote's offsets when found, else the chunk's."""
        found = locate(self.text, quote, chunk.start, chunk.end) if quote else None
        start, end = found or (chunk.start, chunk.end)
        citation: dict[str, Any] = {
            "chunk": chunk.index,
            "start": start,
            "end": end,
            "exact": found is not None,
        }
        if found:
            citation["quote"] = self.text[start:end]
        if self.document.pages:
            citation["page"] = bisect.bisect_right(self.document.pages, start)
        return citation

    # map ---------------------------------------------------------------------------------

    async def map(self) -> list[dict[str, Any]]:
        total = len(self.chunks)

        def job(chunk: Chunk) -> Callable[[], Awaitable[dict[str, Any]]]:
            prompt = self._map_prompt(self.text[chunk.start : chunk.end], chunk.index, total)
            plain = "summary" if self.kind == "summary" else None
            where = f"part {chunk.index + 1}/{total}"
            return lambda: self.ask(prompt, _CHECKS[self.kind], where, plain=plain)

        return await self.gather([job(chunk) for chunk in self.chunks])

    # reduce ------------------------------------------------------------------------------

    def _reduce_budget(self, prompt: str) -> int:
        return self.usable - self.answer_tokens - _template_tokens(prompt)

    def _pack(self, items: Sequence[str], head: str) -> list[list[int]]:
        """Indexes of ``items`` in groups whose numbered list fits one reduce prompt."""
        budget = self._reduce_budget(head)
        limit = max(8, budget // 2)
        groups: list[list[int]] = [[]]
        used = 0
        for i, item in enumerate(items):
            cost = min(estimate_tokens(item), limit) + 4
            if groups[-1] and used + cost > budget:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += cost
        return groups

    def _listing(self, items: Sequence[str], group: Sequence[int], head: str) -> str:
        limit = max(8, self._reduce_budget(head) // 2)
        lines = []
        for number, i in enumerate(group, 1):
            item = " ".join(items[i].split())
            if estimate_tokens(item) > limit:  # an overlong item is cut to its share
                item = item[: _fit(item, 0, limit - 1)] + "…"
            lines.append(f"[{number}] {item}")
        return "\n".join(lines)

    async def reduce_one(
        self,
        items: list[tuple[str, list[dict[str, Any]]]],
        head: str,
        schema: str,
        key: str,
        what: str,
    ) -> tuple[str, list[dict[str, Any]]]:
        """Combine texts (each with its citations) into one, in as many rounds as needed."""
        check = _check_summary if key == "summary" else _check_answer
        plain = "summary" if key == "summary" else None
        level = 0
        while len(items) > 1:
            level += 1
            texts = [text for text, _ in items]
            prompt_head = f"{head}\nAnswer format (JSON): {schema}\n"
            groups = self._pack(texts, prompt_head)

            def job(
                group: list[int],
                texts: list[str] = texts,
                head: str = prompt_head,
                level: int = level,
            ) -> Callable[[], Awaitable[dict[str, Any]]]:
                prompt = f"{head}<items>\n{self._listing(texts, group, head)}\n</items>"
                return lambda: self.ask(prompt, check, f"{what} (round {level})", plain=plain)

            todo = [g for g in groups if len(g) > 1]
            answers = iter(await self.gather([job(g) for g in todo]))
            merged: list[tuple[str, list[dict[str, Any]]]] = []
            for group in groups:
                if len(group) == 1:
                    merged.append(items[group[0]])
                    continue
                answer = next(answers)
                sources = [s for s in answer.get("sources", []) if 1 <= s <= len(group)]
                cited = [group[s - 1] for s in sources] or group
                citations = [c for i in cited for c in items[i][1]]
                merged.append((answer[key], _unique(citations)))
            items = merged
        return items[0]

    async def reduce_points(
        self, points: list[dict[str, Any]], single_chunk: bool
    ) -> list[dict[str, Any]]:
        if single_chunk or len(points) <= 1:
            return points[: self.max_points]
        head = (
            f"These key points come from consecutive parts of one document. Merge duplicates "
            f"and keep the {self.max_points} most important, most important first. For each, "
            f'give "sources": the numbers of the items it comes from.\n'
            f"Answer format (JSON): "
            f'{{"key_points": [{{"point": "<one sentence>", "sources": [1, 2]}}]}}\n'
        )
        level = 0
        while True:
            level += 1
            texts = [p["point"] for p in points]
            groups = self._pack(texts, head)

            def job(
                group: list[int], texts: list[str] = texts, level: int = level
            ) -> Callable[[], Awaitable[dict[str, Any]]]:
                prompt = f"{head}<items>\n{self._listing(texts, group, head)}\n</items>"
                return lambda: self.ask(prompt, _check_points, f"key points (round {level})")

            answers = await self.gather([job(g) for g in groups])
            merged: list[dict[str, Any]] = []
            for group, answer in zip(groups, answers, strict=True):
                for point in answer["key_points"][: self.max_points]:
                    sources = [s for s in point["sources"] if 1 <= s <= len(group)]
                    citations = [c for s in sources for c in points[group[s - 1]]["citations"]]
                    merged.append({"point": point["point"], "citations": _unique(citations)})
            if len(groups) == 1:
                return merged[: self.max_points]
            if len(merged) >= len(points):  # no progress: keep what one round can hold
                self.notes.append("key points were cut to what one merge round holds")
                keep = len(self._pack([p["point"] for p in merged], head)[0])
                merged = merged[:keep]
            points = merged

    # the sections ------------------------------------------------------------------------

    async def summary(self, partial: list[dict[str, Any]]) -> dict[str, Any]:
        items = [(p["summary"], [self.cite(c)]) for p, c in zip(partial, self.chunks, strict=True)]
        text, citations = await self.reduce_one(
            items,
            "These summaries cover consecutive parts of one document. Combine them into one "
            'summary of the whole document, at most 5 sentences. Give "sources": the numbers '
            "of the items it rests on.",
            '{"summary": "<text>", "sources": [1, 2]}',
            "summary",
            "the summary",
        )
        return {"text": text, "citations": citations}

    async def key_points(self, partial: list[dict[str, Any]]) -> list[dict[str, Any]]:
        points = [
            {"point": p["point"], "citations": [self.cite(chunk, p["quote"])]}
            for answer, chunk in zip(partial, self.chunks, strict=True)
            for p in answer["key_points"]
        ]
        return await self.reduce_points(points, len(self.chunks) == 1)

    def entities(self, partial: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for answer, chunk in zip(partial, self.chunks, strict=True):
            for entity in answer["entities"]:
                key = " ".join(entity["name"].split()).casefold()
                entry = found.setdefault(
                    key, {"name": entity["name"], "types": Counter(), "citations": []}
                )
                entry["types"][entity["type"]] += 1
                citation = self.cite(chunk, entity["name"])
                if citation["exact"] and citation not in entry["citations"]:
                    entry["citations"].append(citation)
        result = []
        for entry in found.values():
            result.append(
                {
                    "name": entry["name"],
                    "type": entry["types"].most_common(1)[0][0],
                    "mentions": _mentions(self.text, entry["name"]),
                    "citations": entry["citations"],
                }
            )
        result.sort(key=lambda e: (-e["mentions"], e["name"].casefold()))
        return result

    def sentiment(self, partial: list[dict[str, Any]]) -> dict[str, Any]:
        # Each chunk weighs the tokens it adds (its overlap with the one before counts once).
        weights = []
        covered = 0
        for chunk in self.chunks:
            weights.append(
                max(1, estimate_tokens(self.text[max(chunk.start, covered) : chunk.end]))
            )
            covered = chunk.end
        per_chunk = [
            {"chunk": c.index, "label": p["sentiment"], "score": round(p["score"], 3), "weight": w}
            for p, c, w in zip(partial, self.chunks, weights, strict=True)
        ]
        score = sum(p["score"] * w for p, w in zip(partial, weights, strict=True)) / sum(weights)
        scores = [p["score"] for p in partial]
        labels = {p["sentiment"] for p in partial}
        if (max(scores) >= 0.5 and min(scores) <= -0.5) or (
            len(partial) == 1 and "mixed" in labels
        ):
            label = "mixed"
        else:
            label = _label(score)
        return {"label": label, "score": round(score, 3), "chunks": per_chunk}

    async def qa(self, partial: list[dict[str, Any]]) -> dict[str, Any]:
        relevant = [
            (p["answer"], [self.cite(c, p["quote"])])
            for p, c in zip(partial, self.chunks, strict=True)
            if p["relevant"]
        ]
        if not relevant:
            return {
                "question": self.question,
                "answer": None,
                "found": False,
                "citations": [],
            }
        answer, citations = await self.reduce_one(
            relevant,
            f"Question: {self.question}\nThese answers come from different parts of one "
            f'document. Give one answer to the question. Give "sources": the numbers of the '
            f"answers it rests on.",
            '{"answer": "<text>", "sources": [1, 2]}',
            "answer",
            "the answer",
        )
        return {"question": self.question, "answer": answer, "found": True, "citations": citations}


def _unique(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for citation in citations:
        if citation not in seen:
            seen.append(citation)
    return sorted(seen, key=lambda c: (c["start"], c["end"]))


def _mentions(text: str, name: str) -> int:
    words = name.split()
    if not words:
        return 0
    body = r"\s+".join(re.escape(word) for word in words)
    left = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    right = r"(?!\w)" if re.search(r"\w$", words[-1]) else ""
    return len(re.findall(left + body + right, text, re.I))


def statistics(document: Document) -> dict[str, Any]:
    """What code counts: characters, words, tokens, paragraphs, headings, pages."""
    text = document.text
    stats: dict[str, Any] = {
        "characters": len(text),
        "words": len(_WORD.findall(text)),
        "tokens": estimate_tokens(text),
        "paragraphs": len([p for p in re.split(r"\n\s*\n", text) if p.strip()]),
        "headings": len(document.headings),
    }
    if document.pages:
        stats["pages"] = len(document.pages)
    return stats


class DocumentAnalysis(Service):
    """Analyse a document, map-reduce within the model's context window."""

    name = "document_analysis"
    description = (
        "Summary, key points, entities, sentiment or Q&A over text, Markdown, HTML, PDF or "
        "DOCX; long documents are chunked to fit the model's context window."
    )
    parameters = (
        ServiceParameter(
            "analysis_type",
            "what to analyse",
            choices=ANALYSIS_TYPES,
            default="comprehensive",
        ),
        ServiceParameter("question", "the question to answer (analysis_type=qa)"),
        ServiceParameter("filename", "the file's name; its suffix tells the format", default=""),
        ServiceParameter("format", "the input format", choices=FORMATS, default="auto"),
        ServiceParameter("model", "model or cooperation to ask (auto routes)", default="auto"),
        ServiceParameter("max_points", "most key points to keep", type=int, default=7),
        ServiceParameter(
            "chunk_tokens", "document tokens per chunk (default: what the window holds)", type=int
        ),
        ServiceParameter(
            "overlap_tokens", "tokens shared by neighbouring chunks (default: 1/8 chunk)", type=int
        ),
        ServiceParameter(
            "retries", "re-asks on an answer that is not the JSON asked for", type=int, default=2
        ),
    )

    async def process(
        self, content: str | bytes, parameters: Mapping[str, Any], context: ServiceContext
    ) -> ServiceResult:
        kind = parameters["analysis_type"]
        if kind == "qa" and not (parameters.get("question") or "").strip():
            raise ValidationError(
                "analysis_type=qa needs a question (--param question=...)", field="question"
            )
        for name, low in (("max_points", 1), ("retries", 0), ("chunk_tokens", 1)):
            value = parameters.get(name)
            if value is not None and value < low:
                raise ValidationError(f"must be at least {low}", field=name, value=value)
        document = extract(content, parameters.get("filename") or None, parameters["format"])
        run = _Run(document, parameters, context)
        partial = await run.map()
        data: dict[str, Any] = {
            "analysis_type": kind,
            "format": document.format,
            "title": document.title,
            "statistics": statistics(document),
            "outline": [h.to_dict() for h in document.headings],
            "model": run.target,
            "context_window": run.window,
            "chunking": {
                "chunk_tokens": run.chunk_tokens,
                "overlap_tokens": run.overlap_tokens,
                "answer_tokens": run.answer_tokens,
                "chunks": [c.to_dict() for c in run.chunks],
            },
        }
        if parameters.get("filename"):
            data["filename"] = parameters["filename"]
        if document.pages:
            data["pages"] = list(document.pages)
        if kind in ("comprehensive", "summary"):
            data["summary"] = await run.summary(partial)
        if kind in ("comprehensive", "key_points"):
            data["key_points"] = await run.key_points(partial)
        if kind in ("comprehensive", "entities"):
            data["entities"] = run.entities(partial)
        if kind in ("comprehensive", "sentiment"):
            data["sentiment"] = run.sentiment(partial)
        if kind == "qa":
            data["qa"] = await run.qa(partial)
        data["notes"] = run.notes
        return ServiceResult(result=render(data), data=data)


def _where(citations: Sequence[Mapping[str, Any]]) -> str:
    if not citations:
        return ""
    marks = []
    for c in citations[:4]:
        page = f", p. {c['page']}" if "page" in c else ""
        marks.append(f"chunk {c['chunk']} @{c['start']}–{c['end']}{page}")
    more = f" +{len(citations) - 4}" if len(citations) > 4 else ""
    return f" _({'; '.join(marks)}{more})_"


def render(data: Mapping[str, Any]) -> str:
    """The analysis as Markdown."""
    stats = data["statistics"]
    title = data.get("title") or data.get("filename") or "Document"
    lines = [f"# {title}", ""]
    counted = ", ".join(f"{value} {name}" for name, value in stats.items())
    chunks = data["chunking"]["chunks"]
    lines.append(f"{data['format'].upper()}: {counted}; {len(chunks)} chunk(s) on {data['model']}.")
    if data["outline"]:
        lines += ["", "## Outline", ""]
        lines += [f"{'  ' * (h['level'] - 1)}- {h['title']}" for h in data["outline"]]
    if "summary" in data:
        lines += ["", "## Summary", "", data["summary"]["text"]]
    if "key_points" in data:
        lines += ["", "## Key points", ""]
        lines += [f"- {p['point']}{_where(p['citations'])}" for p in data["key_points"]]
    if "entities" in data:
        lines += ["", "## Entities", ""]
        if data["entities"]:
            lines += ["| entity | type | mentions |", "| --- | --- | --- |"]
            lines += [f"| {e['name']} | {e['type']} | {e['mentions']} |" for e in data["entities"]]
        else:
            lines.append("None found.")
    if "sentiment" in data:
        s = data["sentiment"]
        lines += ["", "## Sentiment", "", f"**{s['label']}** (score {s['score']:+.2f})"]
    if "qa" in data:
        qa = data["qa"]
        lines += ["", "## Answer", "", f"**Q:** {qa['question']}", ""]
        if qa["found"]:
            lines.append(f"**A:** {qa['answer']}{_where(qa['citations'])}")
        else:
            lines.append("**A:** the document does not answer this question.")
    if data.get("notes"):
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in data["notes"]]
    return "\n".join(lines) + "\n"


@coop.hookimpl
def coop_register_services(register: Callable[[Any], None]) -> None:
    register(DocumentAnalysis)
