"""The chart: a PNG line chart drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from typing import Any

from ._parse import Series

__all__ = ["line_chart"]

_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
)


def _cjk_font() -> str | None:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    forecast: dict[str, Any] | None = None,
    anomalies: Sequence[dict[str, Any]] = (),
) -> tuple[bytes, dict[str, Any]]:
    """A PNG of every series over its labels, the forecast band and the anomalies marked.

    Returns the PNG bytes and facts about the chart (size, font note).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    info: dict[str, Any] = {"format": "png"}
    texts = [title, *(s.name for s in series), *(label for s in series for label in s.labels)]
    rc: dict[str, Any] = {}
    if any(_CJK.search(t) for t in texts):
        font = _cjk_font()
        if font:
            rc = {"font.sans-serif": [font, "DejaVu Sans"], "font.family": "sans-serif"}
        else:
            info["note"] = "no CJK font installed: Chinese text may show as boxes"
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs are reported in info instead
        figure = Figure(figsize=(8, 4.5), dpi=100)
        axes = figure.add_subplot()
        labels = list(series[0].labels)
        n = len(labels)
        for s in series:
            axes.plot(range(len(s.values)), s.values, marker="o", label=s.name)
        if forecast:
            points = forecast["points"]
            xs = [n - 1 + k for k in range(len(points) + 1)]
            last = series[0].values[-1]
            axes.plot(
                xs,
                [last, *(p["value"] for p in points)],
                linestyle="--",
                color="tab:gray",
                label=f"forecast ({forecast['confidence']:.0%} interval)",
            )
            axes.fill_between(
                xs[1:],
                [p["low"] for p in points],
                [p["high"] for p in points],
                color="tab:gray",
                alpha=0.2,
            )
            labels += [p["label"] for p in points]
        if anomalies:
            axes.scatter(
                [a["index"] for a in anomalies],
                [a["value"] for a in anomalies],
                s=120,
                facecolors="none",
                edgecolors="tab:red",
                linewidths=2,
                label="anomaly",
                zorder=3,
            )
        step = max(1, len(labels) // 12)
        axes.set_xticks(range(0, len(labels), step))
        axes.set_xticklabels(labels[::step], rotation=30 if len(labels) > 8 else 0)
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.ticklabel_format(axis="y", style="plain", useOffset=False)
        if len(series) > 1 or forecast or anomalies:
            axes.legend()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    png = buffer.getvalue()
    info["width"], info["height"] = 800, 450
    return png, info
