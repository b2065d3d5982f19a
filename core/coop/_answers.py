"""Final answers out of model text, normalised so that equal answers compare equal.

Voting is only as good as this module: two models that both answered 1200 must
land in one bucket whether they wrote ``$1,200``, ``1200.0``, ``A: 1200`` or
``答案是1200元``; a calculator note such as ``<<16-3=13>>`` must never be taken
for the answer. Used by the voting strategies and by ``coop eval cooperation``.

Where the answer is looked for, strongest first:

1. the last ``\\boxed{...}``;
2. the last answer marker: a ``####`` line, a line starting ``A:`` / ``Answer:`` /
   ``Final answer:`` (or such a heading alone, answer on the next line), the
   phrase "answer is ...", or ``答案`` / ``答案是`` / ``最终答案`` / ``故选``;
3. a short reply taken whole (``"B"``, ``"yes"``, ``"18"``, ``"Paris"``);
4. a reply that opens or ends with a bare yes / no (是的 / 不是 / 是 / 否);
5. a number in prose, in the last sentence holding one: the number after its
   last ``=``; else, given the question, the last number the question did not
   already give; else the first number (see :func:`_last_number`).

Numbers become exact :class:`fractions.Fraction` values: ``1,234``, ``$18``,
``18.0``, ``18 dollars``, ``1/2``, ``-5``, ``1.5 million``, Chinese numerals
(``十二``, ``一百零五``, ``两千三百``) and the units 万 and 亿 (``3万``, ``1.5亿``).

Percentages keep their points: ``50%`` is 50, not 0.5. Answers to "what
percent..." are written ``50%`` by some models and ``50`` by others (and by
GSM8K-style references), so points make those agree; 0.5 is a different
reading of the question, which extraction cannot know. Pass
``percent="ratio"`` to read ``50%`` as 0.5 instead (then ``50`` no longer
matches it) — use one rule for every answer you compare.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from fractions import Fraction
from typing import Literal

import attrs

__all__ = [
    "Answer",
    "AnswerKind",
    "answers_match",
    "extract_answer",
    "normalize_answer",
    "parse_number",
]

AnswerKind = Literal["number", "option", "boolean", "text"]
PercentRule = Literal["points", "ratio"]


@attrs.frozen
class Answer:
    """One normalised answer; equal answers are equal and hash alike (``raw`` aside)."""

    kind: AnswerKind
    #: ``Fraction`` for numbers, ``"B"`` for options, ``bool``, or normalised text.
    value: Fraction | str | bool
    #: The text the value was read from, for evidence.
    raw: str = attrs.field(default="", eq=False)
    #: Where it was found: boxed, marker, whole, leading, prose, value.
    source: str = attrs.field(default="", eq=False)

    @property
    def key(self) -> tuple[str, Fraction | str | bool]:
        """Hashable canonical key for vote counting."""
        return (self.kind, self.value)

    def __str__(self) -> str:
        if self.kind == "number":
            return format_number(self.value)  # type: ignore[arg-type]
        if self.kind == "boolean":
            return "yes" if self.value else "no"
        return str(self.value)

    def matches(self, other: Answer | None) -> bool:
        """Same answer, allowing a decimal written to fewer places (0.33 ~ 1/3)."""
        return answers_match(self, other)


def format_number(value: Fraction) -> str:
    """``18``, ``0.5``, ``-2.25``; fractions with no finite decimal stay ``1/3``."""
    if value.denominator == 1:
        return str(value.numerator)
    places = _decimal_places(value)
    if places is None:
        return f"{value.numerator}/{value.denominator}"
    sign = "-" if value < 0 else ""
    scaled = abs(value) * 10**places
    whole, frac = divmod(int(scaled), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def _decimal_places(value: Fraction) -> int | None:
    """Places of a terminating decimal, ``None`` for a repeating one (1/3)."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    return max(twos, fives) if den == 1 else None


def answers_match(a: Answer | None, b: Answer | None) -> bool:
    """Whether two answers agree.

    Equal keys agree. Numbers also agree when one is a decimal with ``p >= 1``
    places and the other rounds to it (``33.3`` ~ ``33.33`` ~ ``100/3``): models
    round differently, but integers stay exact (``3`` never matches ``2.5``).
    """
    if a is None or b is None or a.kind != b.kind:
        return False
    if a.value == b.value:
        return True
    if a.kind != "number":
        return False
    x, y = a.value, b.value
    assert isinstance(x, Fraction) and isinstance(y, Fraction)
    for short, other in ((x, y), (y, x)):
        places = _decimal_places(short)
        if places and abs(other - short) <= Fraction(1, 2 * 10**places):
            return True
    return False


# -- numbers ------------------------------------------------------------------

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "○": 0,
    "一": 1,
    "壹": 1,
    "二": 2,
    "贰": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "叁": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
_CN_SMALL = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_CN_CHARS = "".join([*_CN_DIGITS, *_CN_SMALL, *_CN_BIG])
_SCALE_WORDS = {
    "hundred": 100,
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
}
_EN_SMALL = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}

_ARABIC = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
#: One number in running text. The sign counts only when it cannot be a binary
#: minus (``16-3``, ``16 - 3``): nothing alphanumeric or ``)`` right before it
#: and a digit right after.
_NUMBER_RE = re.compile(
    rf"""
    (?<![A-Za-z0-9_./])
    (?P<sign>(?<![\w)])[-−–](?=\$?\d)|\bnegative\s+)?
    (?P<cur>[$€£¥￥]\s?)?
    (?P<num>{_ARABIC})
    (?![\d])
    (?:/(?P<den>\d+(?:\.\d+)?)(?![\d/]))?
    (?P<cnunit>[万萬亿億]+)?
    (?:\s*(?P<scale>hundred|thousand|million|billion|trillion)\b)?
    (?:\s*(?P<pct>%|percent\b|per\s+cent\b))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_CN_WORDS_RE = re.compile(
    "一共|一些|一起|一下|一样|一直|一定|一般|一切|一旦|一致|一边|一面|一向|一再|一同|一律|"
    "一会|一点儿|一天到晚|唯一|统一|万一|之一|专一|同一|第一|一一|千万|万万|亿万"
)
_CN_RUN_RE = re.compile(
    rf"(?P<sign>负)?(?P<pct>百分之)?(?P<cn>[{_CN_CHARS}]+)(?:点(?P<dec>[{''.join(_CN_DIGITS)}]+))?"
)


def _cn_to_fraction(run: str) -> Fraction | None:
    """Chinese numerals (optionally mixed with Arabic digits: ``1.5亿``) → value."""
    tokens = re.findall(rf"\d+(?:\.\d+)?|[{_CN_CHARS}]", run)
    if not tokens:
        return None
    total = Fraction(0)  # everything before the last 亿
    wan = Fraction(0)  # the 万 group of the current 亿 group
    section = Fraction(0)  # below 万
    number: Fraction | None = None
    last_unit = 0  # the small unit just used, for 一万二 = 12000
    prev_was_unit = False
    seen_zero = False
    for tok in tokens:
        if tok in _CN_DIGITS or tok[0].isdigit():
            if tok in _CN_DIGITS:
                d = Fraction(_CN_DIGITS[tok])
                # 二零二三 style digit strings: append.
                append = number is not None and not prev_was_unit
                number = number * 10 + d if append and number is not None else d
                if d == 0:
                    seen_zero = True
            else:
                number = Fraction(tok)
            prev_was_unit = False
        elif tok in _CN_SMALL:
            unit = _CN_SMALL[tok]
            section += (number if number is not None else 1) * unit
            number, last_unit, prev_was_unit, seen_zero = None, unit, True, False
        else:
            big = _CN_BIG[tok]
            group = section + (number or 0)
            if big == 10**4:
                wan = (wan + group) * big
                last_unit = big
            else:
                total = (total + wan + group) * big
                wan = Fraction(0)
                last_unit = big
            section, number, prev_was_unit, seen_zero = Fraction(0), None, True, False
    if (
        number is not None
        and last_unit >= 10
        and not seen_zero
        and _ends_with_digit_after_unit(tokens)
    ):
        # 一万二 / 三百五: a trailing digit right after a unit means the next unit down.
        number *= Fraction(last_unit, 10)
    return total + wan + section + (number or 0)


def _ends_with_digit_after_unit(tokens: list[str]) -> bool:
    return (
        len(tokens) >= 2
        and tokens[-1] in _CN_DIGITS
        and (tokens[-2] in _CN_SMALL or tokens[-2] in _CN_BIG)
    )


def parse_number(text: str, *, percent: PercentRule = "points") -> Fraction | None:
    """Parse one number written alone (``"$1,200"``, ``"1/2"``, ``"三千"``, ``"50%"``)."""
    found = next(_iter_numbers(_clean(text), chinese=True, percent=percent), None)
    return found[1] if found else None


def _iter_numbers(
    text: str, *, chinese: bool, percent: PercentRule
) -> Iterator[tuple[int, Fraction, str]]:
    """Numbers in ``text`` in order, as (position, value, matched text)."""
    hits: list[tuple[int, int, Fraction, str]] = []
    for m in _NUMBER_RE.finditer(text):
        try:
            value = Fraction(m["num"].replace(",", ""))
            if m["den"]:
                den = Fraction(m["den"])
                if den == 0:
                    continue
                value /= den
        except (ValueError, ZeroDivisionError):
            continue
        if m["cnunit"]:
            value = _cn_to_fraction(format_number(value) + m["cnunit"]) or value
        if m["scale"]:
            value *= _SCALE_WORDS[m["scale"].lower()]
        if m["pct"] and percent == "ratio":
            value /= 100
        if m["sign"]:
            value = -value
        hits.append((m.start(), m.end(), value, m.group(0)))
    if chinese and not text.isascii():  # Chinese numerals are never ASCII
        # 一共, 一起, 万一...: words, not numbers. Blank them, keeping positions.
        masked = _CN_WORDS_RE.sub(lambda m: " " * len(m.group(0)), text)
        for m in _CN_RUN_RE.finditer(masked):
            if any(s <= m.start() < e for s, e, _, _ in hits):
                continue
            parsed = _cn_to_fraction(m["cn"])
            if parsed is None:
                continue
            value = parsed
            if m["dec"]:
                digits = "".join(str(_CN_DIGITS[c]) for c in m["dec"])
                value += Fraction(int(digits), 10 ** len(digits))
            if m["pct"] and percent == "ratio":
                value /= 100
            if m["sign"]:
                value = -value
            hits.append((m.start(), m.end(), value, m.group(0)))
        for m in re.finditer(r"百分之\s*(\d+(?:\.\d+)?)", text):
            if not any(s <= m.start() < e for s, e, _, _ in hits):
                value = Fraction(m[1]) / (100 if percent == "ratio" else 1)
                hits.append((m.start(), m.end(), value, m.group(0)))
    hits.sort(key=lambda h: h[0])
    for start, _end, value, raw in hits:
        yield start, value, raw


def _english_number(text: str) -> Fraction | None:
    """``twenty five`` / ``twenty-five hundred``: small spelled-out numbers."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words or words[0] not in _EN_SMALL:
        return None
    total, current = 0, 0
    for w in words:
        if w in _EN_SMALL:
            current += _EN_SMALL[w]
        elif w in _SCALE_WORDS:
            current = max(current, 1) * _SCALE_WORDS[w]
            if _SCALE_WORDS[w] >= 1000:
                total, current = total + current, 0
        elif w == "and":
            continue
        else:
            break
    return Fraction(total + current)


# -- text cleanup ---------------------------------------------------------------

_CALC_RE = re.compile(r"<<[^<>]*>>|<<[^<>\n]*$", re.M)
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def _clean(text: str) -> str:
    """NFKC, drop calculator notes, markdown emphasis and the LaTeX that hides numbers."""
    text = unicodedata.normalize("NFKC", text)
    text = _CALC_RE.sub("", text)
    text = text.replace("**", "").replace("__", "")
    text = text.replace("\\$", "$").replace("\\%", "%").replace("\\!", "").replace("\\,", "")
    text = text.replace("{,}", ",").replace("\\left", "").replace("\\right", "")
    text = text.replace("\\times", "×").replace("\\cdot", "·").replace("\\div", "÷")
    for _ in range(3):
        text = _LATEX_FRAC_RE.sub(r"(\1)/(\2)", text)
        text = _LATEX_WRAP_RE.sub(r"\1", text)
    # (3)/(4) from \frac with plain numbers → 3/4
    text = re.sub(r"\((-?[\d.]+)\)/\(([\d.]+)\)", r"\1/\2", text)
    text = text.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    return text


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i = starts[-1]
    depth, j = 1, i
    while j < len(text) and depth:
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
        j += 1
    return text[i : j - 1] if depth == 0 else text[i:]


# -- answer markers ----------------------------------------------------------------

#: Strong markers: the answer's own line. (regex, name)
_MARKERS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^[ \t>#*]*#{4,}[ \t]*(?=[-−$€£¥\d.(\\]|[A-J][.)]?[ \t]*$)", re.M),
        "####",
    ),
    (
        re.compile(
            r"^[ \t>*-]*(?:final\s+answer|answer|ans|A|答)[ \t]*(?:\([^)\n]{0,30}\))?[ \t]*[:：][ \t]*",
            re.M | re.I,
        ),
        "answer-line",
    ),
    (  # a heading or bold line "Final Answer" with the answer on the next line
        re.compile(r"^[ \t>#*]*(?:final\s+answer|answer|最终答案|答案)[ \t#*]*$", re.M | re.I),
        "answer-line",
    ),
    (
        re.compile(
            r"\b(?:final|correct|right|short)?\s*answer(?:\s+(?:to|for)\s+[^.\n:]{1,80}?)?"
            r"\s*(?:(?:is|was|would\s+be|will\s+be|should\s+be|equals)\b|=)\s*[:：]?\s*",
            re.I,
        ),
        "answer-is",
    ),
    (
        re.compile(
            r"(?:最终答案|最后答案|正确答案|答案)\s*"
            r"(?:(?:应该是|应当是|应该为|应是|应为|就是|即为|是|为)\s*[:：]?|[:：]|(?=[-−$¥\d(（A-J]))\s*"
        ),
        "答案",
    ),
    (re.compile(r"(?:故|所以|因此|应)选\s*(?=[(（]?[A-J])"), "答案"),
]

_OPTION_RE = re.compile(
    r"""^\s*(?:option|choice|选项|選項)?\s*
    (?:[(\[（]\s*(?P<p>[A-Ja-j])\s*[)\]）]           # (B)
      |(?P<u>[A-J])(?=\s*$|[.):,;。，：；、]|\s+[-—:]|[\u4e00-\u9fff])   # B  B.  B) 答案是B选项
      |(?P<l>[a-j])(?=\s*[.。]?\s*$|\))             # b  b.  b)
    )""",
    re.X,
)
_BOOL_WORDS: list[tuple[str, bool]] = [
    ("yes", True),
    ("no", False),
    ("true", True),
    ("false", False),
    ("correct", True),
    ("incorrect", False),
    ("不是", False),
    ("不对", False),
    ("不正确", False),
    ("是的", True),
    ("正确", True),
    ("错误", False),
    ("对的", True),
    ("错的", False),
    ("是", True),
    ("否", False),
    ("对", True),
    ("错", False),
]
_BOOL_RE = re.compile(
    r"^\s*(?:"
    + "|".join(
        rf"(?P<b{i}>{re.escape(w)})"
        + (r"(?=\s*(?:$|[.,!;:)\]]))" if w.isascii() else r"(?![\u4e00-\u9fff\d])")
        for i, (w, _) in enumerate(_BOOL_WORDS)
    )
    + ")",
    re.I,
)


def _parse_option(seg: str) -> Answer | None:
    m = _OPTION_RE.match(seg)
    if not m:
        return None
    letter = (m["p"] or m["u"] or m["l"]).upper()
    return Answer("option", letter, raw=seg.strip())


def _parse_bool(seg: str) -> Answer | None:
    m = _BOOL_RE.match(seg)
    if not m:
        return None
    for i, (_w, value) in enumerate(_BOOL_WORDS):
        if m[f"b{i}"]:
            return Answer("boolean", value, raw=m.group(0).strip())
    return None  # pragma: no cover


def _prefer_long(nums: list[tuple[int, Fraction, str]]) -> list[tuple[int, Fraction, str]]:
    """Drop lone Chinese numeral characters (一, 两) when anything longer is there."""
    longer = [n for n in nums if len(n[2]) > 1 or n[2].isascii()]
    return longer or nums


def _parse_number_in(seg: str, percent: PercentRule) -> Answer | None:
    """The segment's number: after its last ``=``, else its first (first sentence only)."""
    seg = re.split(r"(?<=[.!?。！？])\s+|\n", seg.strip(), maxsplit=1)[0]
    nums = _prefer_long(list(_iter_numbers(seg, chinese=True, percent=percent)))
    if not nums:
        english = _english_number(seg)
        return Answer("number", english, raw=seg.strip()) if english is not None else None
    eq = max(seg.rfind("="), seg.rfind("≈"))
    after = [n for n in nums if n[0] > eq] if eq >= 0 else nums
    _, value, raw = (after or nums)[0]
    return Answer("number", value, raw=raw.strip())


def _normalize_text(seg: str) -> str:
    seg = seg.lower().strip()
    seg = re.sub(r"[\s\W_]+", " ", seg).strip()
    return re.sub(r"^(?:the|a|an)\s+", "", seg)


def _parse_segment(
    seg: str, percent: PercentRule, *, allow_text: bool, source: str
) -> Answer | None:
    """Read one answer out of the text right after a marker."""
    seg = seg.strip().strip("\"'`“”‘’「」『』*").strip()
    seg = re.sub(r"^\$+\s*(?=[^\d\s])", "", seg)  # $\boxed{} leftovers, not $18
    if not seg:
        return None
    for parse in (_parse_option, _parse_bool):
        found = parse(seg)
        if found is not None:
            return attrs.evolve(found, source=source)
    found = _parse_number_in(seg, percent)
    if found is not None:
        return attrs.evolve(found, source=source)
    if allow_text:
        text = _normalize_text(seg.split("\n", 1)[0])
        if text:
            return Answer("text", text, raw=seg.strip(), source=source)
    return None


def _segment_after(text: str, pos: int) -> str:
    """Rest of the line from ``pos``; the next non-empty line when that is empty."""
    end = text.find("\n", pos)
    line = text[pos:] if end < 0 else text[pos:end]
    if line.strip() or end < 0:
        return line
    for nxt in text[end + 1 :].split("\n"):
        if nxt.strip():
            return nxt
    return ""


# -- public API -----------------------------------------------------------------------


def extract_answer(
    text: str | None, *, question: str | None = None, percent: PercentRule = "points"
) -> Answer | None:
    """The final answer a model gave, or ``None`` when the text holds none.

    See the module docstring for where it is looked for. Pass the ``question``
    when you have it: in a concluding sentence such as "Kylar pays $64 for the
    16 glasses" the number the question already gave (16) is context, not the
    answer. ``percent`` chooses how ``50%`` reads: ``"points"`` (50, the
    default) or ``"ratio"`` (0.5).
    """
    if not text or not text.strip():
        return None
    clean = _clean(text)
    given = _given_numbers(question, percent) if question else frozenset()

    boxed = _boxed(clean)
    if boxed is not None:
        found = _parse_segment(boxed, percent, allow_text=True, source="boxed")
        if found is not None:
            return found

    hits: list[tuple[int, str, str]] = []
    for regex, name in _MARKERS:
        for m in regex.finditer(clean):
            hits.append((m.end(), name, _segment_after(clean, m.end())))
    hits.sort(key=lambda h: h[0], reverse=True)
    text_fallback: Answer | None = None
    for _pos, name, seg in hits:
        strong = name != "answer-is"
        found = _parse_segment(seg, percent, allow_text=False, source="marker")
        if found is not None:
            return found
        if strong and text_fallback is None and 0 < len(seg.strip()) <= 100:
            text_fallback = _parse_segment(seg, percent, allow_text=True, source="marker")
    if text_fallback is not None:
        return text_fallback

    stripped = clean.strip()
    if "\n" not in stripped and len(stripped) <= 60:
        # A short reply is the answer itself; with several numbers, prose rules pick one.
        found = _parse_option(stripped) or _parse_bool(stripped)
        if found is None and len(list(_iter_numbers(stripped, chinese=True, percent=percent))) > 1:
            found = _last_number(stripped, percent, given, short=True)
        if found is None:
            found = _trailing_bool(stripped)
        if found is None:
            found = _parse_segment(stripped, percent, allow_text=True, source="whole")
        return attrs.evolve(found, source="whole") if found is not None else None

    leading = re.match(r"\s*(yes|no|是的|不是)(?=[,.!;:，。！；：]|\s*$)", stripped, re.I)
    if leading:
        return _parse_segment(leading.group(1), percent, allow_text=False, source="leading")
    found = _trailing_bool(stripped)
    if found is not None:
        return found

    return _last_number(clean, percent, given)


@functools.lru_cache(maxsize=256)
def _given_numbers(question: str, percent: PercentRule) -> frozenset[Fraction]:
    """The numbers a question already states. Cached: a vote reads one question for
    every candidate, and an evaluation reads each question once per model."""
    return frozenset(
        v for _, v, _ in _iter_numbers(_clean(question), chinese=True, percent=percent)
    )


_TRAILING_BOOL_RE = re.compile(r"(?:^|[.?!:;。？！：；]\s*)(yes|no|是|否|对|错)[\s.!。！]*$", re.I)


def _trailing_bool(text: str) -> Answer | None:
    """A reply that ends with a bare yes/no sentence ("Is 7 prime? Yes.")."""
    m = _TRAILING_BOOL_RE.search(text)
    found = _parse_bool(m.group(1)) if m else None
    return attrs.evolve(found, source="trailing") if found is not None else None


_SENTENCE_SPLIT = re.compile(r"\n+|(?<=[.!?;。！？；])\s+|(?<=[。！？；])")


def _last_number(
    text: str, percent: PercentRule, given: frozenset[Fraction], *, short: bool = False
) -> Answer | None:
    """The answer in the last sentence holding a number.

    The number right after the sentence's last ``=`` when there is one (a
    result). Else, knowing the question, the last number it did not give
    ("pays $64 for the 16 glasses": 16 is context), or the last number when
    it gave them all; without the question, the first number, since
    concluding sentences state the answer before its context ("45 miles away
    after 4 hours"). Lone Chinese
    numeral characters count only in a ``short`` reply: in prose 一 is more
    often "a" (一个, 一起) than the number one.
    """
    sentences = [s for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]
    for sentence in reversed(sentences):
        nums = list(_iter_numbers(sentence, chinese=False, percent=percent))
        if not nums:
            nums = [
                n
                for n in _prefer_long(list(_iter_numbers(sentence, chinese=True, percent=percent)))
                if short or len(n[2]) >= 2
            ]
        if not nums:
            continue
        eq = max(sentence.rfind("="), sentence.rfind("≈"))
        after = [n for n in nums if n[0] > eq] if eq >= 0 else []
        fresh = [n for n in nums if n[1] not in given]
        if after:
            _, value, raw = after[0]
        elif given:
            _, value, raw = (fresh or nums)[-1]
        else:
            _, value, raw = nums[0]
        return Answer("number", value, raw=raw.strip(), source="prose")
    return None


def normalize_answer(
    value: str | int | float | Fraction | bool | Answer | None,
    *,
    percent: PercentRule = "points",
) -> Answer | None:
    """A bare answer (a reference answer, a user's value) as an :class:`Answer`.

    Unlike :func:`extract_answer` the whole input is the answer, so a short free
    text stays text (``"Paris"``) instead of being searched for a number.
    """
    if value is None or isinstance(value, Answer):
        return value
    if isinstance(value, bool):
        return Answer("boolean", value, raw=str(value), source="value")
    if isinstance(value, int | Fraction):
        return Answer("number", Fraction(value), raw=str(value), source="value")
    if isinstance(value, float):
        return Answer("number", Fraction(str(value)), raw=str(value), source="value")
    clean = _clean(str(value))
    boxed = _boxed(clean)
    if boxed is not None:
        clean = boxed
    marker = next((m for rx, _ in _MARKERS for m in [rx.match(clean.strip())] if m), None)
    seg = clean.strip()[marker.end() :] if marker else clean
    return _parse_segment(seg, percent, allow_text=True, source="value")
