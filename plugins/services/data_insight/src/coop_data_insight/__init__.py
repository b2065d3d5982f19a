"""coop service ``data_insight``: figures computed by code, narrated by a model.

The data (CSV, JSON, or text such as ``销售数据: Q1: 100万, Q2: 120万``) is parsed
strictly; period-over-period changes, CAGR, mean / median / standard deviation,
z-score anomalies, Pearson correlations and a linear-trend forecast with its
prediction interval are computed here and handed to the model as facts. The model
narrates in the content's language; it never computes. ``data`` holds the figures,
``files`` a PNG chart when ``chart=true``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import coop

from ._parse import FORMATS, Dataset, Series, parse_data, parse_value
from ._stats import analyse, correlations

__all__ = [
    "INSIGHT_TYPES",
    "DataInsightService",
    "Dataset",
    "Series",
    "facts_block",
    "parse_data",
    "parse_value",
]

INSIGHT_TYPES = ("summary", "trends", "anomalies", "correlations", "forecast")
_FOCUS = {
    "summary": "an overview: level, spread, overall growth, trend and anything unusual",
    "trends": "the trend: period-over-period changes, overall growth (CAGR) and direction",
    "anomalies": "the unusual values: which ones, how far from the mean, what they could mean",
    "correlations": "how the series move together: the strength and sign of each correlation",
    "forecast": "the forecast: the projected values, how wide the interval is, how reliable",
}
_SYSTEM = (
    "You are a data analyst writing for a business reader. The facts below were computed "
    "by code and are exact. Explain what they show, with the focus given. Quote figures "
    "exactly as written; never compute, estimate or invent a number that is not in the "
    "facts (no new sums, ratios, percentages or averages). Where the data is too short "
    "for a firm conclusion, say so. Write in {language}, in plain Markdown without tables, "
    "in at most {words} words."
)


class DataInsightService(coop.Service):
    """Statistics by code, narrative by a model, and a chart on request."""

    name = "data_insight"
    description = (
        "Insights from CSV, JSON or text data: changes, CAGR, statistics, anomalies, "
        "correlations and forecasts computed by code, narrated by a model; chart=true adds a PNG."
    )
    parameters = (
        coop.ServiceParameter(
            "insight_type", "what to look at", choices=INSIGHT_TYPES, default="summary"
        ),
        coop.ServiceParameter("model", "model or cooperation that narrates", default="auto"),
        coop.ServiceParameter("chart", "also draw a PNG line chart", type=bool, default=False),
        coop.ServiceParameter(
            "column", "comma-separated columns to analyse (CSV/JSON); default all", default=""
        ),
        coop.ServiceParameter("format", "how to read the content", choices=FORMATS, default="auto"),
        coop.ServiceParameter(
            "filename", "the file's name (its extension tells the format)", default=""
        ),
        coop.ServiceParameter("periods", "forecast horizon in periods (1-60)", type=int, default=3),
        coop.ServiceParameter(
            "confidence", "forecast interval level (0.5-0.999)", type=float, default=0.95
        ),
        coop.ServiceParameter(
            "threshold", "|z-score| at which a value is an anomaly", type=float, default=2.0
        ),
        coop.ServiceParameter("max_tokens", "length of the narrative", type=int, default=600),
    )

    async def process(
        self, content: str | bytes, parameters: Mapping[str, Any], context: coop.ServiceContext
    ) -> coop.ServiceResult:
        p = _check(parameters)
        text = _text(content)
        wanted = [c.strip() for c in p["column"].split(",") if c.strip()]
        dataset = parse_data(text, p["format"], filename=p["filename"], columns=wanted)
        series = _select(dataset.series, wanted)
        kind = p["insight_type"]
        if kind == "correlations" and len(series) < 2:
            raise coop.ValidationError(
                f"correlations need at least two numeric series (columns); found "
                f"{len(series)}: {', '.join(repr(s.name) for s in series)}",
                field="insight_type",
                value=kind,
            )
        if kind == "forecast":
            for s in series:
                if len(s.values) < 3:
                    raise coop.ValidationError(
                        f"a forecast needs at least 3 values; series {s.name!r} has "
                        f"{len(s.values)}",
                        field="insight_type",
                        value=kind,
                    )
        language = detect_language(text)
        figures = [
            analyse(s, threshold=p["threshold"], horizon=p["periods"], confidence=p["confidence"])
            for s in series
        ]
        pairs = correlations(series)
        title = dataset.title or (series[0].name if len(series) == 1 else "")
        data: dict[str, Any] = {
            "insight_type": kind,
            "format": dataset.format,
            "title": title,
            "language": language,
            "series": figures,
            "correlations": pairs,
        }
        files: dict[str, bytes] = {}
        if p["chart"]:
            from ._chart import line_chart

            png, info = line_chart(
                series,
                title=title or kind,
                forecast=figures[0]["forecast"] if kind == "forecast" else None,
                anomalies=figures[0]["anomalies"]["anomalies"] if len(series) == 1 else (),
            )
            info["file"] = "chart.png"
            files["chart.png"] = png
            data["chart"] = info
        block = facts_block(data, language)
        words = max(60, min(800, p["max_tokens"] // 2))
        messages = [
            {
                "role": "system",
                "content": _SYSTEM.format(language=_LANGUAGES[language], words=words),
            },
            {
                "role": "user",
                "content": f"Focus: {_FOCUS[kind]}.\n\nFacts:\n{block}",
            },
        ]
        answer = await context.complete(
            messages, model=p["model"], max_tokens=p["max_tokens"], temperature=0.2
        )
        data["facts"] = block
        heading = f"## Data insight: {kind}" + (f" — {title}" if title else "")
        result = f"{heading}\n\n{answer.text.strip()}\n\n### Computed figures\n\n{_markdown(data, language)}"
        return coop.ServiceResult(result=result, data=data, files=files)


def _check(parameters: Mapping[str, Any]) -> dict[str, Any]:
    p = dict(parameters)
    if not 1 <= p["periods"] <= 60:
        raise coop.ValidationError("must be between 1 and 60", field="periods", value=p["periods"])
    if not 0.5 <= p["confidence"] <= 0.999:
        raise coop.ValidationError(
            "must be between 0.5 and 0.999 (0.95 is a 95% interval)",
            field="confidence",
            value=p["confidence"],
        )
    if not p["threshold"] > 0:
        raise coop.ValidationError("must be above 0", field="threshold", value=p["threshold"])
    if not 16 <= p["max_tokens"] <= 8192:
        raise coop.ValidationError(
            "must be between 16 and 8192", field="max_tokens", value=p["max_tokens"]
        )
    return p


def _text(content: str | bytes) -> str:
    if isinstance(content, bytes):
        try:
            return content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise coop.ValidationError(
                "binary content: data_insight reads CSV, JSON or text (UTF-8)", field="content"
            ) from None
    return content


def _select(series: list[Series], wanted: Sequence[str]) -> list[Series]:
    """The series named in ``column`` (``parse_data`` checked they exist), in that order."""
    if not wanted:
        return series
    by_name = {s.name: s for s in series}
    return [by_name[name] for name in wanted]


# -- language and numbers ----------------------------------------------------------------------

_LANGUAGES = {
    "zh": "Chinese (简体中文)",
    "ja": "Japanese",
    "ko": "Korean",
    "en": "English",
}


def detect_language(text: str) -> str:
    """``zh`` / ``ja`` / ``ko`` when the content is written in one, else ``en``."""
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    if re.search(r"[\uac00-\ud7af]", text):
        return "ko"
    if len(re.findall(r"[\u4e00-\u9fff]", text)) >= 2:
        return "zh"
    return "en"


def fmt(value: float | None, unit: str = "", language: str = "en") -> str:
    """``1,250,000`` (``125万`` beside it for Chinese), ``12.5%``, ``$1,200``."""
    if value is None:
        return "n/a"
    digits = 0 if abs(value) >= 1000 else 2 if abs(value) >= 1 or value == 0 else 4
    shown = f"{abs(value):,.{digits}f}"
    if "." in shown:
        shown = shown.rstrip("0").rstrip(".")
    sign = "−" if value < 0 else ""
    if unit == "%":
        return f"{sign}{shown}%"
    text = f"{sign}{unit}{shown}"
    if language == "zh" and abs(value) >= 10_000:
        big, char = (1e8, "亿") if abs(value) >= 1e8 else (1e4, "万")
        scaled = f"{abs(value) / big:,.2f}".rstrip("0").rstrip(".")
        text += f" ({sign}{unit}{scaled}{char})"
    return text


def _signed(value: float | None, unit: str, language: str) -> str:
    if value is None:
        return "n/a"
    return ("+" if value > 0 else "") + fmt(value, unit, language)


# -- the facts block and the markdown ----------------------------------------------------------

_MAX_VALUES = 40
_MAX_CHANGES = 24
_MAX_ITEMS = 20


def facts_block(data: Mapping[str, Any], language: str = "en") -> str:
    """The computed figures as compact lines: what the model is told, and all it is told."""
    kind = data["insight_type"]
    lines = []
    series = data["series"]
    n = len(series[0]["values"])
    lines.append(
        f"Data: {len(series)} series from {data['format']}"
        + (f", titled {data['title']!r}" if data["title"] else "")
        + f"; {n} values, labels {series[0]['labels'][0]} … {series[0]['labels'][-1]}"
    )
    for s in series:
        unit = s["unit"]
        v = lambda x, unit=unit: fmt(x, unit, language)  # noqa: E731
        st, gr, tr = s["statistics"], s["growth"], s["trend"]
        lines.append(f"\nSeries {s['name']!r}" + (f" (unit {unit})" if unit else "") + ":")
        if n <= _MAX_VALUES or kind in ("summary", "trends"):
            pairs = list(zip(s["labels"], s["values"], strict=True))
            if len(pairs) > _MAX_VALUES:
                pairs = [*pairs[:10], ("…", None), *pairs[-10:]]
            lines.append(
                "- values: "
                + "; ".join(label if x is None else f"{label} {v(x)}" for label, x in pairs)
            )
        lines.append(
            f"- mean {v(st['mean'])}; median {v(st['median'])}; standard deviation "
            f"(sample) {v(st['std'])}; min {st['min']['label']} {v(st['min']['value'])}; "
            f"max {st['max']['label']} {v(st['max']['value'])}; sum {v(st['sum'])}"
        )
        if kind in ("summary", "trends", "forecast"):
            lines.append(
                f"- first → last ({gr['periods']} periods): {gr['total_change_display'] or 'n/a'}"
                f"; CAGR over {gr['periods']} periods: {gr['cagr_display'] or 'n/a'}"
                + (f" ({gr['note']})" if gr.get("note") else "")
            )
            lines.append(
                f"- linear trend: {tr['direction']}, {_signed(tr['slope_per_period'], unit, language)}"
                f" per period, R² {tr['r2'] if tr['r2'] is not None else 'n/a'}; "
                f"rises {tr['rises']}, falls {tr['falls']}"
            )
        if kind == "trends":
            changes = s["changes"]
            if len(changes) > _MAX_CHANGES:
                known = [c for c in changes if c["change_pct"] is not None]
                rise = max(known, key=lambda c: c["change_pct"], default=None)
                fall = min(known, key=lambda c: c["change_pct"], default=None)
                changes = [c for c in (rise, fall) if c]
                lines.append("- largest rise and fall between periods:")
            else:
                lines.append("- period over period:")
            for c in changes:
                lines.append(
                    f"  - {c['from']} → {c['to']}: {c['display'] or 'n/a (from 0)'} "
                    f"({_signed(c['change'], unit, language)})"
                )
        an = s["anomalies"]
        if kind in ("summary", "anomalies"):
            found = an["anomalies"]
            if found:
                shown = "; ".join(
                    f"{a['label']} {v(a['value'])} (z {a['z']:+.2f}, {a['direction']})"
                    for a in found[:_MAX_ITEMS]
                )
                lines.append(f"- anomalies (|z| ≥ {an['threshold']:g}): {shown}")
            else:
                why = ""
                if an["max_possible_z"] is not None and an["max_possible_z"] < an["threshold"]:
                    why = (
                        f"; with {n} values no |z| can exceed {an['max_possible_z']:g}, "
                        "so the test cannot flag anything"
                    )
                elif an["z_scores"] is None:
                    why = "; the series is constant"
                lines.append(f"- anomalies (|z| ≥ {an['threshold']:g}): none{why}")
            if kind == "anomalies" and an["z_scores"] and n <= _MAX_VALUES:
                lines.append(
                    "- z-scores: "
                    + "; ".join(
                        f"{label} {z:+.2f}"
                        for label, z in zip(s["labels"], an["z_scores"], strict=True)
                    )
                )
        fc = s["forecast"]
        if kind == "forecast" and fc:
            level = f"{fc['confidence']:.0%}".replace(".0%", "%")
            lines.append(
                f"- forecast ({fc['method']}, {level} prediction interval, "
                f"{fc['degrees_of_freedom']} degrees of freedom):"
            )
            for point in fc["points"]:
                lines.append(
                    f"  - {point['label']}: {v(point['value'])} "
                    f"[{v(point['low'])}, {v(point['high'])}]"
                )
    pairs = data["correlations"]
    if pairs and kind in ("summary", "correlations"):
        lines.append("\nPearson correlations:")
        for c in pairs[:_MAX_ITEMS]:
            r = "n/a" if c["r"] is None else f"{c['r']:+.3f}"
            lines.append(f"- {c['a']} ~ {c['b']}: r {r} ({c['strength']}, n {c['n']})")
    return "\n".join(lines)


def _markdown(data: Mapping[str, Any], language: str) -> str:
    """The figures for people: one table per series, changes and forecast included."""
    out = []
    kind = data["insight_type"]
    for s in data["series"]:
        unit = s["unit"]
        v = lambda x, unit=unit: fmt(x, unit, language)  # noqa: E731
        st, gr, tr = s["statistics"], s["growth"], s["trend"]
        if len(data["series"]) > 1:
            out.append(f"**{s['name']}**\n")
        rows = [
            ("values", str(st["count"])),
            ("mean", v(st["mean"])),
            ("median", v(st["median"])),
            ("standard deviation (sample)", v(st["std"])),
            ("min", f"{st['min']['label']}: {v(st['min']['value'])}"),
            ("max", f"{st['max']['label']}: {v(st['max']['value'])}"),
            (
                f"change {st['first']['label']} → {st['last']['label']}",
                gr["total_change_display"] or "n/a",
            ),
            (f"CAGR ({gr['periods']} periods)", gr["cagr_display"] or "n/a"),
            (
                "linear trend",
                f"{tr['direction']}, {_signed(tr['slope_per_period'], unit, language)} per period",
            ),
        ]
        found = s["anomalies"]["anomalies"]
        rows.append(
            (
                f"anomalies (\\|z\\| ≥ {s['anomalies']['threshold']:g})",
                ", ".join(f"{a['label']} (z {a['z']:+.2f})" for a in found[:_MAX_ITEMS]) or "none",
            )
        )
        out.append("| figure | value |\n| --- | --- |")
        out.extend(f"| {name} | {value} |" for name, value in rows)
        out.append("")
        if kind == "trends" and len(s["changes"]) <= _MAX_CHANGES:
            out.append("| period | value | change |\n| --- | --- | --- |")
            out.append(f"| {s['labels'][0]} | {v(s['values'][0])} | |")
            for c, value in zip(s["changes"], s["values"][1:], strict=True):
                out.append(f"| {c['to']} | {v(value)} | {c['display'] or 'n/a'} |")
            out.append("")
        fc = s["forecast"]
        if kind == "forecast" and fc:
            level = f"{fc['confidence']:.1%}".replace(".0%", "%")
            out.append(f"| forecast | value | {level} interval |\n| --- | --- | --- |")
            for point in fc["points"]:
                out.append(
                    f"| {point['label']} | {v(point['value'])} | "
                    f"{v(point['low'])} … {v(point['high'])} |"
                )
            out.append("")
    pairs = data["correlations"]
    if pairs and kind in ("summary", "correlations"):
        out.append("| series | Pearson r | strength | n |\n| --- | --- | --- | --- |")
        for c in pairs[:_MAX_ITEMS]:
            r = "n/a" if c["r"] is None else f"{c['r']:+.3f}"
            out.append(f"| {c['a']} ~ {c['b']} | {r} | {c['strength']} | {c['n']} |")
        out.append("")
    return "\n".join(out).strip()


@coop.hookimpl
def coop_register_services(register: Any) -> None:
    """Register the ``data_insight`` service."""
    register(DataInsightService)
