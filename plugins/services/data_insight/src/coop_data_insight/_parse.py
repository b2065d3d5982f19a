"""Reading data: CSV, JSON, or text such as ``销售数据: Q1: 100万, Q2: 120万``.

Every cell must be a number as a whole (``1,200``, ``$3.5M``, ``100万``, ``1.2亿``,
``12.5%``, ``(300)``); a cell that is not is an error naming its line (or JSON
position) and column, never silently skipped.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import coop

__all__ = ["Dataset", "Series", "parse_data", "parse_value"]

FORMATS = ("auto", "csv", "json", "text")


@attrs.define
class Series:
    """One numeric series: its name, the label of each value, and the values."""

    name: str
    labels: list[str]
    values: list[float]
    #: ``%`` when every value was a percentage, a currency sign when one was used.
    unit: str = ""


@attrs.define
class Dataset:
    series: list[Series]
    #: ``csv``, ``json`` or ``text``.
    format: str
    title: str = ""
    #: Every column besides the labels, read or not (``columns=`` may skip some).
    columns: list[str] = attrs.field(factory=list)


# -- one value ---------------------------------------------------------------------------------

_UNITS = {
    "万亿": Decimal(10) ** 12,
    "千亿": Decimal(10) ** 11,
    "百亿": Decimal(10) ** 10,
    "十亿": Decimal(10) ** 9,
    "亿": Decimal(10) ** 8,
    "千万": Decimal(10) ** 7,
    "百万": Decimal(10) ** 6,
    "十万": Decimal(10) ** 5,
    "万": Decimal(10) ** 4,
    "千": Decimal(10) ** 3,
    "k": Decimal(10) ** 3,
    "thousand": Decimal(10) ** 3,
    "m": Decimal(10) ** 6,
    "mn": Decimal(10) ** 6,
    "million": Decimal(10) ** 6,
    "b": Decimal(10) ** 9,
    "bn": Decimal(10) ** 9,
    "billion": Decimal(10) ** 9,
    "t": Decimal(10) ** 12,
    "tn": Decimal(10) ** 12,
    "trillion": Decimal(10) ** 12,
}
_CURRENCY = r"US\$|HK\$|A\$|C\$|[$€£¥₹₩₽]|RMB|CNY|USD|EUR|GBP|JPY|HKD"
_VALUE_RE = re.compile(
    rf"""^
    (?P<open>\()?\s*
    (?P<sign>[-+])?\s*
    (?P<cur>{_CURRENCY})?\s*
    (?P<sign2>[-+])?\s*
    (?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    \s*(?P<unit>万亿|千亿|百亿|十亿|亿|千万|百万|十万|万|千|thousand|million|billion|trillion
        |mn|bn|tn|[kmbt](?![a-z]))?
    \s*(?P<pct>%|‰)?
    \s*(?P<cur2>{_CURRENCY}|元|人民币|美元|欧元|英镑|日元|块|dollars?|euros?)?
    \s*(?P<close>\))?
    $""",
    re.VERBOSE | re.IGNORECASE,
)
_CN_NUMERAL_RE = re.compile(r"^负?[零〇一二两三四五六七八九十百千万亿点]+$")


def parse_value(cell: str) -> tuple[float, str] | None:
    """``cell`` as (value, unit) when the whole cell is one number, else ``None``.

    ``100万`` → 1,000,000; ``1.2亿`` → 120,000,000; ``$1,200`` → (1200, "$");
    ``12.5%`` → (12.5, "%") (percent points); ``(300)`` → -300 (accounting).
    """
    text = unicodedata.normalize("NFKC", cell).strip().replace("−", "-").replace("–", "-")
    if not text:
        return None
    m = _VALUE_RE.match(text)
    if m is None:
        if _CN_NUMERAL_RE.match(text):  # 一百二十万
            parsed = coop.parse_number(text)
            if parsed is not None:
                return float(parsed), ""
        return None
    if bool(m["open"]) != bool(m["close"]) or (m["sign"] and m["sign2"]):
        return None
    try:
        value = Decimal(m["num"].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        return None
    if m["unit"]:
        value *= _UNITS[m["unit"].lower()]
    if m["pct"] == "‰":
        value /= 10
    if m["open"] or "-" in (m["sign"] or "", m["sign2"] or ""):
        value = -value
    currency = m["cur"] or m["cur2"] or ""
    unit = "%" if m["pct"] else _currency_sign(currency)
    return float(value), unit


def _currency_sign(currency: str) -> str:
    upper = currency.upper()
    if upper in ("$", "US$", "USD", "DOLLAR", "DOLLARS", "美元"):
        return "$"
    if upper in ("¥", "RMB", "CNY", "元", "人民币", "块", "日元", "JPY"):
        return "¥"
    if upper in ("€", "EUR", "EURO", "EUROS", "欧元"):
        return "€"
    if upper in ("£", "GBP", "英镑"):
        return "£"
    return currency


def _number(cell: str, where: str) -> tuple[float, str]:
    parsed = parse_value(cell)
    if parsed is None:
        shown = cell.strip()
        raise coop.ValidationError(
            f"{where}: {shown!r} is not a number" if shown else f"{where}: empty cell",
            field="content",
            value=cell,
        )
    return parsed


def _series(name: str, labels: list[str], cells: list[tuple[float, str]]) -> Series:
    units = {u for _, u in cells}
    return Series(
        name=name,
        labels=labels,
        values=[v for v, _ in cells],
        unit=units.pop() if len(units) == 1 else "",
    )


# -- the whole input ---------------------------------------------------------------------------

_LABEL_NAMES = {
    "label", "name", "date", "day", "week", "month", "quarter", "year", "period", "time",
    "category", "item", "region", "product", "id", "key",
    "日期", "时间", "月份", "月", "季度", "年份", "年", "期间", "名称", "类别", "项目", "地区",
    "产品",
}  # fmt: skip
#: ``Q1: 100`` (a label starting with a letter, a colon, a number) anywhere in the text.
#: ``收入: Q1 100, ...``: every line opening with a word and a colon is text, not CSV.
_LINE_TITLE_RE = re.compile(r"^\s*[^\W\d_][^:：,，;；\t\n]*[:：]")
_ITEM_RE = re.compile(
    r"(?:^|[\s,，;；、])[^\W\d_][^:：\n,，;；]*[:：=]\s*[-+(]?\s*(?:[$€£¥]\s*)?\d"
)


def parse_data(
    content: str, format: str = "auto", *, filename: str = "", columns: Sequence[str] = ()
) -> Dataset:
    """The series in ``content``; a :class:`coop.ValidationError` names the bad line or cell.

    ``columns`` (CSV and JSON) reads only those columns, so text columns can be skipped.
    """
    keep = frozenset(columns)
    text = content.lstrip("\ufeff")
    if not text.strip():
        raise coop.ValidationError("content is empty: give CSV, JSON or text", field="content")
    if format == "auto":
        format = _detect(text, filename)
    if format == "json":
        dataset = _parse_json(text, keep)
    elif format == "csv":
        dataset = _parse_csv(text, filename, keep)
    else:
        dataset = _parse_text(text)
    for name in columns:
        if name not in dataset.columns:
            close = difflib.get_close_matches(name, dataset.columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise coop.ValidationError(
                f"no column {name!r}{hint}; columns: {', '.join(dataset.columns) or 'none'}",
                field="column",
                value=name,
            )
    if not dataset.series:
        raise coop.ValidationError("no numbers found in the content", field="content")
    for series in dataset.series:
        if len(series.values) < 2:
            raise coop.ValidationError(
                f"series {series.name!r} has {len(series.values)} value(s); "
                "an insight needs at least 2",
                field="content",
            )
    return dataset


def _detect(text: str, filename: str) -> str:
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    if suffix in ("json", "csv", "txt"):
        return {"txt": "text"}.get(suffix, suffix)
    if suffix == "tsv":
        return "csv"
    head = text.lstrip()[:1]
    if head in "[{" and head:
        return "json"
    lines = [line for line in text.splitlines() if line.strip()]
    if _ITEM_RE.search(text) or all(_LINE_TITLE_RE.match(line) for line in lines):
        return "text"
    if len(lines) >= 2 and _delimiter(lines) is not None:
        return "csv"
    return "text"


# -- CSV ---------------------------------------------------------------------------------------


def _delimiter(lines: list[str]) -> str | None:
    """The delimiter giving every line the same number (≥ 2) of cells."""
    for delimiter in ("\t", ",", ";", "|"):
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and counts.pop() >= 2:
            return delimiter
    return None


def _parse_csv(text: str, filename: str, keep: frozenset[str]) -> Dataset:
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    lines = [line for _, line in numbered]
    delimiter = "\t" if filename.lower().endswith(".tsv") else _delimiter(lines)
    if delimiter is None:
        if all(len(line.split(",")) == 1 for line in lines):
            delimiter = ","  # one column
        else:
            widths = [len(r) for r in csv.reader(lines)]
            first = widths[0]
            bad = next(i for i, w in enumerate(widths) if w != first)
            raise coop.ValidationError(
                f"line {numbered[bad][0]}: {widths[bad]} cells where line {numbered[0][0]} "
                f"has {first}",
                field="content",
            )
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    line_numbers = [n for n, _ in numbered]
    return _table(rows, "csv", keep, where=lambda i: f"line {line_numbers[i]}")


def _table(rows: list[list[str]], format: str, keep: frozenset[str], where: Any) -> Dataset:
    """Rows of cells (the first maybe a header) → one series per numeric column."""
    width = len(rows[0])
    header = any(parse_value(cell) is None for cell in rows[0])
    names = rows[0] if header else [f"column {i + 1}" for i in range(width)]
    names = [name or f"column {i + 1}" for i, name in enumerate(names)]
    body = rows[1:] if header else rows
    first = 1 if header else 0
    if not body:
        raise coop.ValidationError("a header and no data rows", field="content")
    label_column = None
    if width >= 2 or not header:
        first_cells = [row[0] for row in body]
        non_numeric = sum(parse_value(c) is None for c in first_cells)
        if names[0].strip().lower() in _LABEL_NAMES or non_numeric * 2 > len(first_cells):
            label_column = 0
    if width == 1:
        label_column = None
    labels = [row[label_column] for row in body] if label_column is not None else None
    if labels is None:
        labels = [str(i + 1) for i in range(len(body))]
    series = []
    for col in range(width):
        if col == label_column or (keep and names[col] not in keep):
            continue
        try:
            cells = [
                _number(row[col], f"{where(first + i)}, column {names[col]!r}")
                for i, row in enumerate(body)
            ]
        except coop.ValidationError as exc:
            if width <= 2:
                raise
            message = str(exc).removeprefix("content: ")
            raise coop.ValidationError(
                f"{message} (column=... picks the numeric columns)",
                field="content",
                value=exc.value,
            ) from None
        series.append(_series(names[col], labels, cells))
    others = [name for col, name in enumerate(names) if col != label_column]
    return Dataset(series=series, format=format, columns=others)


# -- JSON --------------------------------------------------------------------------------------


def _parse_json(text: str, keep: frozenset[str]) -> Dataset:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise coop.ValidationError(
            f"line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})", field="content"
        ) from None
    title = ""
    if isinstance(data, dict) and isinstance(data.get("data"), (list, dict)):
        title = str(data.get("title") or data.get("name") or "")
        data = data["data"]
    dataset = _json_value(data, keep)
    dataset.title = title
    if title and len(dataset.series) == 1 and dataset.series[0].name == "value":
        dataset.series[0].name = title
    return dataset


def _json_number(value: Any, where: str) -> tuple[float, str]:
    if isinstance(value, bool) or value is None:
        raise coop.ValidationError(f"{where}: {value!r} is not a number", field="content")
    if isinstance(value, (int, float)):
        return float(value), ""
    if isinstance(value, str):
        return _number(value, where)
    raise coop.ValidationError(
        f"{where}: a {type(value).__name__} where a number belongs", field="content"
    )


def _json_value(data: Any, keep: frozenset[str]) -> Dataset:
    if isinstance(data, list):
        if not data:
            raise coop.ValidationError("the JSON array is empty", field="content")
        if all(isinstance(item, dict) for item in data):
            return _json_records(data, keep)
        if all(isinstance(item, list) for item in data):
            rows = [[_cell(c) for c in row] for row in data]
            width = len(rows[0])
            for i, row in enumerate(rows):
                if len(row) != width:
                    raise coop.ValidationError(
                        f"[{i}]: {len(row)} cells where [0] has {width}", field="content"
                    )
            return _table(rows, "json", keep, where=lambda i: f"[{i}]")
        cells = [_json_number(v, f"[{i}]") for i, v in enumerate(data)]
        series = _series("value", [str(i + 1) for i in range(len(cells))], cells)
        return Dataset([series], "json", columns=["value"])
    if isinstance(data, dict):
        if not data:
            raise coop.ValidationError("the JSON object is empty", field="content")
        if all(isinstance(v, list) for v in data.values()):
            return _json_columns(data, keep)
        cells = [_json_number(v, f"{key!r}") for key, v in data.items()]
        return Dataset([_series("value", [str(k) for k in data], cells)], "json", columns=["value"])
    raise coop.ValidationError(
        "JSON must be an array of numbers or records, or an object of values or columns",
        field="content",
    )


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _label_key(keys: list[str], columns: dict[str, list[Any]]) -> str | None:
    for key in keys:
        values = columns[key]
        if key.lower() in _LABEL_NAMES or all(
            isinstance(v, str) and parse_value(v) is None for v in values
        ):
            return key
    return None


def _json_records(records: list[dict[str, Any]], keep: frozenset[str]) -> Dataset:
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record if k not in keys)
    for i, record in enumerate(records):
        for key in keys:
            if key not in record:
                raise coop.ValidationError(f"[{i}]: no {key!r}", field="content")
    columns = {key: [r[key] for r in records] for key in keys}
    label = _label_key(keys, columns)
    labels = (
        [str(v) for v in columns[label]] if label else [str(i + 1) for i in range(len(records))]
    )
    series = [
        _series(key, labels, [_json_number(v, f"[{i}].{key}") for i, v in enumerate(columns[key])])
        for key in keys
        if key != label and (not keep or key in keep)
    ]
    return Dataset(series, "json", columns=[k for k in keys if k != label])


def _json_columns(data: dict[str, list[Any]], keep: frozenset[str]) -> Dataset:
    keys = list(data)
    lengths = {key: len(v) for key, v in data.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{k!r} {n}" for k, n in lengths.items())
        raise coop.ValidationError(f"columns of different lengths: {shown}", field="content")
    label = _label_key(keys, data)
    n = len(data[keys[0]])
    labels = [str(v) for v in data[label]] if label else [str(i + 1) for i in range(n)]
    series = [
        _series(key, labels, [_json_number(v, f"{key}[{i}]") for i, v in enumerate(data[key])])
        for key in keys
        if key != label and (not keep or key in keep)
    ]
    return Dataset(series, "json", columns=[k for k in keys if k != label])


# -- text --------------------------------------------------------------------------------------

#: Item separators; an ASCII comma before exactly three digits is a thousands separator.
_SPLIT_RE = re.compile(r"\s*(?:[，;；、\n]|,(?!\d{3}(?!\d)))\s*")
_PAIR_RE = re.compile(r"^(?P<label>[^:：=]+?)\s*[:：=]\s*(?P<value>.*)$")


def _parse_text(text: str) -> Dataset:
    series: list[tuple[str, list[str], list[tuple[float, str]]]] = []
    pending_title = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not re.search(r"\d", line) and not _CN_NUMERAL_RE.search(line.rstrip(":：")):
            pending_title = line.rstrip(":：").strip()  # a heading line: 销售数据
            continue
        items = [item for item in _SPLIT_RE.split(line) if item]
        title = ""
        first = _PAIR_RE.match(items[0])
        if first and _PAIR_RE.match(first["value"]):
            title, items[0] = first["label"].strip(), first["value"]  # 销售数据: Q1: 100万, ...
        elif first and len(items) > 1 and not any(_PAIR_RE.match(i) for i in items[1:]):
            title, items[0] = first["label"].strip(), first["value"]  # 销售数据: 100, 120
        labels, cells = [], []
        for item in items:
            label, cell = _item(item, number)
            labels.append(label)
            cells.append(cell)
        title = title or pending_title
        pending_title = ""
        if title or not series:
            series.append((title, [], []))
        series[-1][1].extend(labels)
        series[-1][2].extend(cells)
    result = []
    for i, (name, labels, cells) in enumerate(series):
        filled = [label or str(j + 1) for j, label in enumerate(labels)]
        default = "value" if len(series) == 1 else f"series {i + 1}"
        result.append(_series(name or default, filled, cells))
    title = result[0].name if len(result) == 1 and result[0].name != "value" else ""
    return Dataset(result, "text", title=title, columns=[s.name for s in result])


def _item(item: str, line: int) -> tuple[str, tuple[float, str]]:
    """``Q1: 100万`` / ``Q1 100万`` / ``100万`` → (label, (value, unit))."""
    where = f"line {line}"
    m = _PAIR_RE.match(item)
    if m:
        return m["label"].strip(), _number(m["value"], f"{where}, {m['label'].strip()!r}")
    parsed = parse_value(item)
    if parsed is not None:
        return "", parsed
    label, _, value = item.rpartition(" ")
    if label and (parsed := parse_value(value)) is not None:
        return label.strip(), parsed
    raise coop.ValidationError(f"{where}: {item.strip()!r} is not a number", field="content")
