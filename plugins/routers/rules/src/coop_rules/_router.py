"""The ``rules`` router: keyword and structure evidence, scored, in both languages.

Why heuristics: they cost tens of microseconds, need no model file, explain
themselves ("math: 4 numbers + 'how many'") and are fixed by editing a table.
Evidence is weighted by where it sits: the instruction at the start of the last
user turn counts most, its end ("一句话总结上文") a little less, the middle of a
long pasted text little, and earlier turns and the system prompt a third.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any, ClassVar

from coop import Analysis, Router

from ._lexicon import EN, EN_RE, EN_STEMS, ZH, ZH_RE, Entry
from ._text import Conversation, detect_language, read_conversation

__all__ = [
    "REASONING_TASKS",
    "Evidence",
    "RulesRouter",
    "collect_evidence",
    "complexity_of",
    "tier_for",
]

#: Task types the ``reasoning`` tier serves.
REASONING_TASKS = frozenset({"math", "code", "reasoning"})

#: Weight of the system prompt and of earlier turns against the last user turn.
SYSTEM_WEIGHT = 0.35
HISTORY_WEIGHT = 0.3
#: Cap of one task's score from one text, so repetition cannot buy a route.
TASK_CAP = 14.0
BODY_CAP = 4.0
#: Characters of a long text scanned for keywords: its head and its tail.
SCAN_HEAD = 600
SCAN_TAIL = 300
#: Evidence of a function stub with a docstring, and what is left of maths next to one.
STUB_WEIGHT = 12.0
STUB_MATH_DAMPING = 0.25
#: Weight of every question word after the strongest one.
QA_STACK = 0.35
#: Order used to break exact ties (the more specific task first).
PRIORITY = (
    "code",
    "math",
    "translation",
    "summarization",
    "extraction",
    "classification",
    "rewrite",
    "reasoning",
    "analysis",
    "creative",
    "brainstorming",
    "chat",
    "qa",
)

_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
#: A Chinese question for a quantity: "几分之几", "多少盆", "几条船" (a measure word after it).
_ZH_QUANTITY_QUESTION = re.compile(
    r"几分之几|百分之几|(?:多少|几)[个只本元角岁天人次倍块条张辆名位瓶件支双盒台页斤米克分秒周年月"
    r"盆把吨组船棵朵枝箱袋筐包桶杯碗头匹座间层套份行排场道颗粒根盏架]"
)
_ZH_NUMBER_WORDS = re.compile(
    r"[二两三四五六七八九十百千万半][个只本元岁天人次倍块条张辆名位瓶件支双盒台页斤米克小分周年月]"
)
#: An operator between numbers or one-letter variables: "3 + 4", "2x = 8", "f(x) =".
_FORMULA = re.compile(r"(?:\d|(?<![a-z])[a-z]|\))\s*[-+*/×÷^=<>≤≥]\s*(?:\d|[a-z](?![a-z])|\()")
#: Inline LaTeX maths ("$\\frac{x-1}{3}=k$", "$A \\cap B$"): a command or an operator
#: between dollar signs, on one line; "$3 ... $4" of prices has neither.
_LATEX = re.compile(
    r"\$[^$\n]{0,80}?(?:\\(?:frac|sqrt|cdot|times|div|[lg]eq?|neq|pi|sin|cos|tan|log|ln|"
    r"int|sum|prod|lim|infty|mid|cap|cup|in|subset|angle|triangle|vec|overrightarrow|alpha|"
    r"beta|theta|lambda|omega)\b|[=^_<>])[^$\n]{0,80}?\$"
)
_FORMULA_MARKS = re.compile(r"[+=*/^×÷<>≤≥√∫∑π]")
#: Code syntax; every branch starts with a literal so the scan stays linear and fast.
_CODE_SYNTAX = re.compile(
    r"```|def\s+\w+\s*\(|function\s*\w*\s*\(|console\.log|#include|public\s+static|"
    r"return\s+[^。\n]{0,40};|=>|import\s+\w+|SELECT\s[^\n]{1,80}?\sFROM\s|"
    r"(?:var|let|const)\s+\w+\s*=|print\s*\(|\(\)\s*[{:;]|;[ \t]*$|\)\s*\{|\.[a-zA-Z_]\w*\(|"
    r"</?(?:div|html|body|script|p|span|button)[ >]|_[a-z]\w*\s*\(",
    re.MULTILINE,
)
#: A function signature (Python, JS/TS, Go, Java/C#/Kotlin/Swift...) at the start of a line.
_SIGNATURE = re.compile(
    r"^[ \t]*(?:(?:async\s+)?def\s+\w+\s*\(|(?:export\s+)?(?:async\s+)?function\s*\*?\s*\w+\s*\(|"
    r"func\s+(?:\([^)]*\)\s*)?\w+\s*\(|fun\s+\w+\s*\(|"
    r"(?:public|private|protected|static|internal)\b[^\n(=;]{0,80}?\w+\s*\(|"
    r"(?:const|let|var)\s+\w+\s*=\s*(?:async\s*)?\([^)\n]*\)\s*=>)",
    re.MULTILINE,
)
#: What documents a stub: a docstring, a doc comment, a comment line or a doctest.
_DOC_MARK = re.compile(r"\"\"\"|\'\'\'|/\*\*|^[ \t]*(?://|#(?!include))|>>>", re.MULTILINE)
_CODE_ACTION_EN = re.compile(
    r"\b(?:write|implement|develop|create|build|code|fix|debug|refactor|optimi[sz]e|complete|"
    r"modify)\b[^.?!\n]{0,50}?\b(?:function|program|script|code|class|method|algorithm|query|"
    r"regex|regular expression|api|endpoint|unit tests?|website|web page|module|cli|parser)\b"
)
_CODE_ACTION_ZH = re.compile(
    r"(?:写|编写|实现|开发|修复|调试|优化|改进|补全|注释)[^。？！，,\n]{0,16}?"
    r"(?<!应用)(?:函数|程序|代码|脚本|算法|SQL|sql|查询语句|正则|网页|爬虫)"
)
_FERMI = re.compile(
    r"\bhow many\b(?![^.?!]*\d)[^.?!]{0,80}\b(?:on earth|in the world|globally|lifetime|"
    r"throughout history|each day|every day|per day|in a minute|in a year|typical|average|"
    r"ever|all the)\b"
)
#: Text that tries to steer the router ("ignore your routing", "use the biggest model").
_INJECTION = re.compile(
    r"(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}?\b(?:routing|router|"
    r"instructions?|rules|previous|above|system)\b|"
    r"\b(?:use|route|send|switch|escalate|upgrade|pick|choose|give me|forward)\b[^.!?\n]{0,40}?"
    r"\b(?:models?|tiers?|llms?|gpt-?[0-9][\w.-]*|claude|gemini|o[13])\b|"
    r"(?:忽略|无视|不要理会|跳过)[^。！\n]{0,12}?(?:路由|规则|指令|之前|上面|系统)|"
    r"(?:使用|用|切换到|路由到|选择|换成|升级到)[^。！\n]{0,12}?(?:模型|档位)",
    re.IGNORECASE,
)
#: A lettered option of a multiple-choice question: "(A) ...", "B．...", "C、...", "D) ...".
_CHOICE = re.compile(r"(?:^|[ \t\u3000])[（(]?([A-D])[)）.．、:：]", re.MULTILINE)
#: How an option A is written; a cheap test before the option scan.
_OPTION_A = ("A)", "A.", "A．", "A、", "A）", "A:", "A：")
#: Light task types whose keywords in a quiz question are topic, not the request.
_QUIZ_DAMPED = (
    "translation",
    "summarization",
    "extraction",
    "classification",
    "rewrite",
    "creative",
    "brainstorming",
    "analysis",
    "chat",
)
MCQ_QA = 1.0
#: Characters before the first option read as the question's stem.
STEM_CHARS = 240
MCQ_DAMPING = 0.25
MCQ_MATH_DAMPING = 0.5
_ENUMERATION = re.compile(
    r"^\s*(?:\d{1,2}[.)、）]|[（(]\d{1,2}[)）]|[-*•]\s|问题\s*\d|[a-h][.)]\s)", re.MULTILINE
)

_SENTENCE_END = re.compile(r"[。！？!?]|\.(?:\s|$)")
_TRAILING = " \t\n。！？!?.”\"'）)"
#: Greedy ``.*`` backtracks from the end, so this finds the last sentence break fast.
#: "'cheers' in German", “晚安”用日语 — a quoted phrase and a language.
_QUOTED_LANGUAGE = re.compile(
    r"['\"“‘][^'\"”’]{1,60}['\"”’]\s*(?:in|into|to)\s+(?:english|chinese|mandarin|cantonese|"
    r"french|german|spanish|japanese|korean|italian|russian|portuguese|arabic)\b"
)
_LAST_BREAK = re.compile(r"(?s).*([。！？!?\n]|\.\s)")
HEAD_WEIGHT = 1.6
TAIL_WEIGHT = 1.4

#: "从成本、效率、风险和长期战略几个维度", "三个方面"; the numeral when there is one.
_ZH_DIMENSIONS = re.compile(
    r"(?:[从就结合对]?[^。？！\n]{0,40}?[、，,和与及][^。？！\n]{0,20}?)?"
    r"([两二三四五六七八九十几多]|\d)?个?(?:方面|维度|角度|层面|视角)"
)
_ZH_DIMENSION_WORD = re.compile(r"方面|维度|角度|层面|视角")
_EN_DIMENSION_WORD = re.compile(
    r"consider|across|in terms of|weigh|perspective|dimension|aspect|factor|affect|impact"
)
_ZH_NUMERALS = {
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
    "几": 3,
    "多": 3,
}
_ZH_LIST_SPLIT = re.compile(r"[、，,和与及]")
#: "considering cost, speed and risk", "students, teachers, parents and businesses".
_EN_DIMENSIONS = re.compile(
    r"\b(?:consider(?:ing)?|across|in terms of|weigh(?:ing)?|from the perspectives? of|"
    r"dimensions?|aspects?|factors?|affect|impact (?:on)?)\b[^.?!\n]{0,30}?"
    r"\w+(?:, [\w -]{1,30}){1,6},? (?:and|or) [\w -]{1,30}"
)
_INJECTION_HINTS = re.compile(r"model|rout|tier|llm|模型|路由|档位|规则")


@dataclass(slots=True)
class Evidence:
    """Everything the rules found in a request: scores, hits and counts."""

    scores: dict[str, float] = field(default_factory=dict)
    hits: dict[str, list[str]] = field(default_factory=dict)
    numbers: int = 0
    number_words: int = 0
    formulas: int = 0
    code_syntax: int = 0
    enumerations: int = 0
    questions: int = 0
    depth: list[str] = field(default_factory=list)
    constraints: int = 0
    #: Aspects the request names to cover ("从政策、市场和技术三方面", "cost, speed and risk").
    dimensions: int = 0
    injection: bool = False
    #: A function signature with a docstring or doc comment: a stub to complete.
    stub: bool = False
    #: Lettered options (A-D) closing the prompt: 3 or more make a multiple-choice question.
    choices: int = 0
    language: str = "en"
    conversation: Conversation = field(default_factory=Conversation)

    def ranked(self) -> list[tuple[str, float]]:
        """Tasks by score, best first, ties broken by :data:`PRIORITY`."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], _RANK[kv[0]]))


_RANK = {task: index for index, task in enumerate(PRIORITY)}


def _scan(
    text: str,
    weight: float,
    scores: dict[str, float],
    hits: dict[str, list[str]],
    marks: dict[str, list[str]] | None = None,
    anchors: dict[str, float] | None = None,
    lower: str | None = None,
) -> None:
    """Add keyword evidence of ``text`` (scaled by ``weight``) into ``scores``.

    A keyword counts once per task at its best position: repeating "translate"
    fifty times buys nothing. Evidence in the instruction head and closing
    sentence (the anchors) is capped at :data:`TASK_CAP`; evidence in pasted
    material between them at :data:`BODY_CAP`, so an article full of story words
    stays an article to classify. Pseudo-tasks (``_depth``...) go to ``marks``.
    """
    if not text:
        return
    head_end, tail_start, middle = _spans(text)
    local: dict[tuple[str, str], tuple[float, bool]] = {}
    lower = text.lower() if lower is None else lower
    passes = ((EN_RE, EN, lower),) if text.isascii() else ((ZH_RE, ZH, text), (EN_RE, EN, lower))
    length = len(text)
    # Long texts: scan the head and the tail; the middle is pasted material whose
    # evidence is capped anyway, and skipping it keeps the worst case bounded.
    ranges = (
        ((0, length),)
        if length <= SCAN_HEAD + SCAN_TAIL
        else (
            (0, SCAN_HEAD),
            (length - SCAN_TAIL, length),
        )
    )
    for (regex, table, lowered), (start, stop) in product(passes, ranges):
        for m in regex.finditer(lowered, start, stop):
            keyword = m.group()
            entries = table.get(keyword)
            if entries is None:
                entries = _lookup_en(keyword)
                if entries is None:
                    continue
            pos = m.start()
            if pos < head_end:
                position, anchored = HEAD_WEIGHT, True
            elif pos >= tail_start:
                position, anchored = TAIL_WEIGHT, True
            else:
                position, anchored = middle, False
            for task, value in entries:
                if task[0] == "_":
                    if marks is not None:
                        marks.setdefault(task, []).append(keyword)
                    continue
                key = (task, keyword)
                value *= position
                if value > local.get(key, (0.0, False))[0]:
                    local[key] = (value, anchored)
    anchor: dict[str, float] = {}
    body: dict[str, float] = {}
    questions: list[tuple[float, bool]] = []
    for (task, keyword), (value, anchored) in local.items():
        found = hits.setdefault(task, [])
        if len(found) < 6 and keyword not in found:
            found.append(keyword)
        if task == "qa":
            questions.append((value, anchored))
            continue
        bucket = anchor if anchored else body
        bucket[task] = bucket.get(task, 0.0) + value
    # Question words stack up in any question (maths, puzzles, code): only the
    # strongest counts in full, the others by QA_STACK.
    questions.sort(reverse=True)
    for rank, (value, anchored) in enumerate(questions):
        bucket = anchor if anchored else body
        bucket["qa"] = bucket.get("qa", 0.0) + (value if rank == 0 else value * QA_STACK)
    for task in anchor.keys() | body.keys():
        total = min(anchor.get(task, 0.0), TASK_CAP) + min(body.get(task, 0.0), BODY_CAP)
        scores[task] = scores.get(task, 0.0) + total * weight
    if anchors is not None:
        anchors.update(anchor)


def _spans(text: str) -> tuple[int, int, float]:
    """Where the instruction head ends, where the closing sentence starts, middle weight.

    The head runs to the first colon or line break ("将以下文本分类：...") or else
    to the end of the first sentence; the tail is the last sentence ("How many
    ... ?", "一句话总结上文。"). What lies between is mostly pasted material.
    """
    length = len(text)
    head_end = length
    for sep in ("：", ":", "\n"):
        index = text.find(sep, 2, 160)
        if index != -1 and index < head_end:
            head_end = index
    if head_end == length:
        m = _SENTENCE_END.search(text, 0, 200)
        head_end = m.end() if m else min(length, 200)
    middle = 0.6 if length <= 400 else 0.3
    end = len(text.rstrip(_TRAILING))
    m = _LAST_BREAK.match(text, max(0, end - 400), end)
    if m is None:
        return head_end, length, middle
    cut = m.start(1)
    tail_start = max(cut + 1, head_end)
    if length - tail_start > 250:  # a long last "sentence" is material, not an instruction
        return head_end, length, middle
    return head_end, tail_start, middle


def _lookup_en(keyword: str) -> list[Entry] | None:
    if " " in keyword or "\n" in keyword or "\t" in keyword:
        entries = EN.get(" ".join(keyword.split()))
        if entries is not None:
            return entries
    for end in range(len(keyword), 2, -1):
        entries = EN_STEMS.get(keyword[:end])
        if entries:
            return entries
    return None


def _bump(ev: Evidence, task: str, value: float, hit: str) -> None:
    ev.scores[task] = ev.scores.get(task, 0.0) + value
    bucket = ev.hits.setdefault(task, [])
    if len(bucket) < 6:
        bucket.append(hit)


def _strip_injection(text: str) -> tuple[str, bool]:
    if not _INJECTION_HINTS.search(text.lower()):
        return text, False
    cleaned, count = _INJECTION.subn(" ", text)
    return cleaned, bool(count)


def collect_evidence(messages: Any) -> Evidence:
    """Score every task type for ``messages``; the building block of all routers here."""
    conv = read_conversation(messages)
    ev = Evidence(conversation=conv)
    # Text that tries to steer the router is not evidence of the task.
    main, ev.injection = _strip_injection(conv.main)
    ev.language = detect_language(main or conv.history or conv.system)
    marks: dict[str, list[str]] = {}
    anchors: dict[str, float] = {}
    scores = ev.scores
    lower = main.lower()
    _scan(main, 1.0, scores, ev.hits, marks, anchors, lower)
    # A short follow-up ("and in Python?") leans on the conversation it follows.
    lean = 2.0 if len(main.strip()) < 40 else 1.0
    if conv.system:
        _scan(_strip_injection(conv.system)[0], SYSTEM_WEIGHT * lean, scores, ev.hits)
    if conv.history:
        _scan(_strip_injection(conv.history)[0], HISTORY_WEIGHT * lean, scores, ev.hits)

    ev.numbers = len(_NUMBER.findall(main))
    ev.number_words = len(marks.get("_numword", ())) + len(_ZH_NUMBER_WORDS.findall(main))
    head = lower[:1500]
    if _FORMULA_MARKS.search(head):
        ev.formulas = len(_FORMULA.findall(head))
    if "$" in head:
        ev.formulas += len(_LATEX.findall(head))
    ev.code_syntax = len(_CODE_SYNTAX.findall(main[:3000]))
    ev.enumerations = len(_ENUMERATION.findall(main)) if "\n" in main else 0
    ev.questions = main.count("?") + main.count("？")
    ev.depth = sorted(set(marks.get("_depth", ())))[:6]
    ev.constraints = len(set(marks.get("_constraint", ())))
    ev.dimensions = _dimensions(main, lower)

    if ev.language != "en" and (ev.numbers or ev.number_words):
        # Word problems end with their question; a count asked earlier is material.
        end = len(main.rstrip(_TRAILING))
        start = max(main.rfind(mark, 0, end) for mark in "。！？!?\n；;") + 1
        asked = _ZH_QUANTITY_QUESTION.search(main, max(start, end - 60), end + 1)
        if asked:
            anchors["quantity"] = anchors.get("quantity", 0.0) + 5.0
            scores["quantity"] = scores.get("quantity", 0.0) + 5.0
            ev.hits.setdefault("quantity", []).insert(0, asked.group())
    # Math: domain words ("equation", "概率") always count; quantity cues ("how
    # many", "多少元", units) only next to numbers, and then the numbers count too.
    # A multiple-choice question: options A-D close the prompt. It asks for an answer
    # (qa, or maths / reasoning when the stem says so); its numbers are years and
    # option labels as often as quantities. The stem (the question just before the
    # options) is the instruction, however long the passage before it.
    offset = max(0, len(main) - 1500)
    tail = main[offset:]
    if "C" in tail and any(mark in tail for mark in _OPTION_A):
        options = list(_CHOICE.finditer(main, offset))
        ev.choices = len({m.group(1) for m in options})
        if ev.choices >= 3 and len(main) > SCAN_HEAD + SCAN_TAIL:
            first = options[0].start()
            _scan(main[max(0, first - STEM_CHARS) : first], 1.0, scores, ev.hits, None, anchors)
    quiz = ev.choices >= 3
    domain = scores.pop("math", 0.0)
    quantity = scores.pop("quantity", 0.0)
    if quiz and not ev.formulas:
        # Without a formula, maths words in a quiz are its topic ("面积减少", "云计算").
        quantity = min(quantity, 2.0)
        domain *= MCQ_MATH_DAMPING
    if ev.numbers or ev.formulas:
        math = domain + quantity
        cue = anchors.get("quantity", 0.0) + anchors.get("math", 0.0)
        # A short text with several numbers and a quantity word is a word problem.
        problem = ev.numbers >= 3 and math >= 2.5 and len(main) < 600
        if cue >= 4.0 or math >= 7.0 or problem:
            math += 1.6 * min(ev.numbers + 0.5 * ev.number_words, 6.0)
            _bump(ev, "math", 0.0, f"{ev.numbers} numbers")
    else:
        math = domain + quantity * (0.5 if ev.number_words else 0.2)
    if math:
        scores["math"] = math
    if "quantity" in ev.hits:
        ev.hits.setdefault("math", []).extend(ev.hits.pop("quantity")[:3])
    if ev.formulas:
        _bump(ev, "math", 2.5 * min(ev.formulas, 3), f"{ev.formulas} formulas")

    # Code: syntax and "write a function" outweigh a language name in a question.
    if ev.code_syntax:
        _bump(ev, "code", 3.0 * min(ev.code_syntax, 4), f"{ev.code_syntax} code-syntax marks")
    action = _CODE_ACTION_EN.search(lower) if "code" in scores else None
    action = action or (_CODE_ACTION_ZH.search(main) if "code" in scores else None)
    if action:
        _bump(ev, "code", 5.0, repr(action.group()[:40]))
    # A function stub with a docstring ("def f(x):\n    \"\"\"Return ...\"\"\"") asks for the
    # body: code, however much arithmetic its description and doctests hold.
    # (Gated on the code marks already counted, or Go/Kotlin's "func"/"fun", so
    # prose never pays for the line-anchored scan.)
    if (
        (ev.code_syntax or "fun" in main)
        and _SIGNATURE.search(main, 0, 3000)
        and _DOC_MARK.search(main, 0, 3000)
    ):
        ev.stub = True
        _bump(ev, "code", STUB_WEIGHT, "function stub with docstring")
        if "math" in scores:
            scores["math"] *= STUB_MATH_DAMPING
    if ev.formulas and ev.code_syntax:  # "a + b" inside code is code, not algebra
        scores["math"] = scores.get("math", 0.0) - 2.5 * min(ev.formulas, 3)

    if quiz:
        _bump(ev, "qa", MCQ_QA, f"multiple-choice question ({ev.choices} options)")
        for task in _QUIZ_DAMPED:
            if task in scores:
                scores[task] *= MCQ_DAMPING

    quoted = _QUOTED_LANGUAGE.search(lower) if " in " in lower or " to " in lower else None
    if quoted:
        _bump(ev, "translation", 5.0, repr(quoted.group()[:40]))
    if "how many" in lower and _FERMI.search(lower):
        _bump(ev, "reasoning", 6.0, "estimation question")

    # Chat is small talk: greetings inside a long task are not a chat, and a short
    # remark with no task in it and no question ("终于周五了！") is one.
    chars = len(main.strip())
    if "chat" in scores:
        scores["chat"] *= 1.0 if chars <= 25 else 0.5 if chars <= 60 else 0.1
    if chars > 0 and "?" not in main and "？" not in main and not conv.main_attachments:
        short = chars <= 16 if ev.language != "en" else len(main.split()) <= 7
        if short and max((v for k, v in scores.items() if k != "chat"), default=0.0) < 2.5:
            _bump(ev, "chat", 2.5, "short remark without a task")
    # Questions are the default: "what is X" with nothing else is qa.
    scores["qa"] = scores.get("qa", 0.0) + (2.0 if main.rstrip().endswith(("?", "？")) else 1.0)
    if conv.main_attachments and not main.strip():
        _bump(ev, "qa", 2.0, "attachment only")
    return ev


def _dimensions(main: str, lower: str) -> int:
    """How many aspects a request asks to cover: "三个维度", "A、B和C方面", "X, Y and Z"."""
    anchor = _ZH_DIMENSION_WORD.search(main)
    m = _ZH_DIMENSIONS.search(main, max(0, anchor.start() - 64), anchor.end()) if anchor else None
    if m:
        count = _ZH_NUMERALS.get(m.group(1) or "", 0)
        listed = len(_ZH_LIST_SPLIT.split(m.group(0)))
        return max(count, listed, 2)
    m = _EN_DIMENSIONS.search(lower) if ", " in lower and _EN_DIMENSION_WORD.search(lower) else None
    if m:
        return m.group(0).count(",") + 2 if "," in m.group(0) else 2
    return 0


def complexity_of(ev: Evidence, task: str) -> tuple[str, float, list[str]]:
    """``simple``/``medium``/``complex``, the points behind it and why."""
    conv = ev.conversation
    points = 0.0
    why: list[str] = []
    chars = conv.main_chars
    if chars > 4000:
        points += 1.5
        why.append(f"{chars} chars")
    elif chars > 600:
        points += 1.0
        why.append(f"{chars} chars")
    elif chars > 160:
        points += 0.5
    parts = max(ev.enumerations, ev.questions)
    if parts >= 3:
        points += 1.0 if parts < 6 else 1.5
        why.append(f"{parts} parts")
    if ev.depth:
        points += min(len(ev.depth), 4) * 0.75
        why.append("depth: " + ", ".join(ev.depth[:3]))
    if ev.constraints:
        points += min(ev.constraints, 3) * 0.4
        why.append(f"{ev.constraints} constraints")
    if ev.dimensions:
        points += 1.25
        why.append(f"{ev.dimensions} dimensions")
    if conv.user_turns >= 3:
        points += 0.5
        why.append(f"{conv.user_turns} user turns")
    if conv.attachments:
        points += 0.5
    if task == "analysis":
        points += 1.0
    elif task in REASONING_TASKS:
        points += 0.5
    elif task in ("chat", "translation", "classification"):
        points -= 0.5
    # Analysis asked along several dimensions, or with strategy/risk depth, is what
    # a cooperation of models is for; other tasks need more to count as complex.
    complex_at = 2.75 if task == "analysis" else 3.5
    level = "simple" if points < 1.0 else "medium" if points < complex_at else "complex"
    return level, points, why


def tier_for(task: str, complexity: str) -> str:
    """The tier policy: math/code/reasoning → reasoning; complex non-math → complex; else light."""
    if task in REASONING_TASKS:
        return "reasoning"
    if complexity == "complex":
        return "complex"
    return "light"


def _confidence(ranked: list[tuple[str, float]]) -> float:
    best = ranked[0][1] if ranked else 0.0
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if best <= 0:
        return 0.3
    margin = (best - second) / (best + 1.0)
    return round(min(0.99, 0.4 + 0.6 * margin + 0.02 * min(best, 10.0)), 3)


def _fallback(reason: str) -> Analysis:
    return Analysis(
        task_type="chat",
        complexity="simple",
        tier="light",
        confidence=0.2,
        reasons=[reason],
        signals={"error": reason},
    )


class RulesRouter(Router):
    """Fast bilingual heuristics: the default router, and the evidence others build on."""

    name: ClassVar[str] = "rules"
    description: ClassVar[str] = (
        "Keyword and structure heuristics in Chinese and English (tens of microseconds)."
    )

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)

    def analyze(self, messages: list[dict[str, Any]]) -> Analysis:
        """Decide task type, complexity and tier; never raises, whatever ``messages`` holds."""
        try:
            ev = collect_evidence(messages)
            return analysis_from_evidence(ev)
        except Exception as exc:  # a router must answer; the reason says what went wrong
            return _fallback(f"rules could not read the request ({type(exc).__name__})")


def analysis_from_evidence(
    ev: Evidence, task: str | None = None, confidence: float | None = None
) -> Analysis:
    """Turn evidence into an :class:`Analysis`; ``task`` overrides the rules' own pick."""
    ranked = ev.ranked()
    conv = ev.conversation
    reasons: list[str] = []
    if task is None:
        task = ranked[0][0] if ranked else "qa"
        if not conv.main.strip() and not conv.main_attachments and not conv.history:
            task = "chat"
            reasons.append("empty request")
        confidence = _confidence(ranked)
    top_hits = ev.hits.get(task, [])
    if top_hits:
        reasons.append(f"{task}: " + " + ".join(_quote(h) for h in top_hits[:4]))
    elif not reasons:
        reasons.append(f"{task}: no stronger signal (default)")
    if len(ranked) > 1:
        runner = next((kv for kv in ranked if kv[0] != task), None)
        if runner and runner[1] > 0:
            reasons.append(f"runner-up {runner[0]} ({runner[1]:.1f})")
    complexity, points, why = complexity_of(ev, task)
    reasons.append(f"complexity {complexity}" + (f": {', '.join(why)}" if why else ""))
    tier = tier_for(task, complexity)
    reasons.append(_tier_reason(task, complexity, tier))
    if conv.attachments:
        reasons.append(f"{conv.attachments} attachment(s)")
    if conv.user_turns > 1:
        reasons.append(f"judged on {conv.user_turns} user turns (last weighs most)")
    if ev.injection:
        reasons.append("ignored text asking to change the routing")
    if conv.truncated:
        reasons.append(f"long input: scanned head and tail of {conv.main_chars} chars")
    top = ranked[:5]
    signals: dict[str, Any] = {
        "scores": {k: round(v, 2) for k, v in top},
        "hits": {k: ev.hits[k] for k, _ in top[:3] if k in ev.hits},
        "numbers": ev.numbers,
        "formulas": ev.formulas,
        "code_syntax": ev.code_syntax,
        "parts": max(ev.enumerations, ev.questions),
        "depth": ev.depth,
        "dimensions": ev.dimensions,
        "complexity_points": round(points, 2),
        "chars": conv.main_chars,
        "attachments": conv.attachments,
        "user_turns": conv.user_turns,
        "injection": ev.injection,
        "truncated": conv.truncated,
    }
    return Analysis(
        task_type=task,
        complexity=complexity,
        tier=tier,
        confidence=confidence if confidence is not None else 0.5,
        reasons=reasons,
        signals=signals,
        language=ev.language,
    )


def _quote(hit: str) -> str:
    return hit if hit[:1].isdigit() or hit.startswith("'") else f"'{hit}'"


def _tier_reason(task: str, complexity: str, tier: str) -> str:
    if tier == "reasoning":
        return f"tier reasoning: {task} needs step-by-step work"
    if tier == "complex":
        return f"tier complex: {complexity} {task} request benefits from several models"
    return f"tier light: {complexity} {task}"
