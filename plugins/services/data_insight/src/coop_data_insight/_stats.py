"""The figures, computed by code: changes, CAGR, statistics, z-scores, Pearson r, forecasts.

Pure Python (``math`` and ``statistics``): the Student t quantile for the forecast
interval comes from the regularized incomplete beta function, so no SciPy is needed.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from typing import Any

from ._parse import Series

__all__ = [
    "changes",
    "correlations",
    "describe",
    "forecast",
    "linear_fit",
    "pearson",
    "t_quantile",
    "z_scores",
]


def _r(value: float | None, digits: int = 6) -> float | None:
    """Rounded for JSON: enough digits to be exact for people, none of float's noise."""
    if value is None or math.isnan(value):
        return None
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded


def describe(series: Series) -> dict[str, Any]:
    """Count, sum, mean, median, sample and population standard deviation, min, max."""
    values = series.values
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n >= 2 else None
    low = min(range(n), key=lambda i: values[i])
    high = max(range(n), key=lambda i: values[i])
    return {
        "count": n,
        "sum": _r(math.fsum(values)),
        "mean": _r(mean),
        "median": _r(statistics.median(values)),
        "std": _r(std),
        "std_population": _r(statistics.pstdev(values)),
        "cv_pct": _r(std / abs(mean) * 100, 4) if std is not None and mean else None,
        "min": {"label": series.labels[low], "value": _r(values[low])},
        "max": {"label": series.labels[high], "value": _r(values[high])},
        "first": {"label": series.labels[0], "value": _r(values[0])},
        "last": {"label": series.labels[-1], "value": _r(values[-1])},
    }


def pct_text(pct: float | None) -> str | None:
    """``+20.0%`` / ``−13.3%`` (a real minus sign) / ``None``."""
    if pct is None:
        return None
    shown = f"{abs(pct):.1f}%"
    if shown == "0.0%":
        return "0.0%"
    return ("+" if pct > 0 else "−") + shown


def changes(series: Series) -> list[dict[str, Any]]:
    """Period over period: the absolute change and the percentage of the previous value."""
    out = []
    values, labels = series.values, series.labels
    for i in range(1, len(values)):
        before, after = values[i - 1], values[i]
        pct = (after - before) / abs(before) * 100 if before != 0 else None
        out.append(
            {
                "from": labels[i - 1],
                "to": labels[i],
                "change": _r(after - before),
                "change_pct": _r(pct, 4),
                "display": pct_text(pct),
            }
        )
    return out


def growth(series: Series) -> dict[str, Any]:
    """Total change first → last and the compound growth rate per period (CAGR)."""
    values = series.values
    first, last = values[0], values[-1]
    periods = len(values) - 1
    total = (last - first) / abs(first) * 100 if first != 0 else None
    cagr = None
    note = None
    if first > 0 and last > 0:
        cagr = ((last / first) ** (1 / periods) - 1) * 100
    else:
        note = "CAGR needs a positive first and last value"
    result: dict[str, Any] = {
        "periods": periods,
        "total_change_pct": _r(total, 4),
        "total_change_display": pct_text(total),
        "cagr_pct": _r(cagr, 4),
        "cagr_display": pct_text(cagr) if cagr is not None else None,
    }
    if note:
        result["note"] = note
    return result


def linear_fit(y: Sequence[float]) -> dict[str, float] | None:
    """Least squares of ``y`` on its index 0..n-1: slope, intercept, r, r², residual s."""
    n = len(y)
    if n < 2:
        return None
    x_mean = (n - 1) / 2
    y_mean = math.fsum(y) / n
    sxx = math.fsum((i - x_mean) ** 2 for i in range(n))
    sxy = math.fsum((i - x_mean) * (v - y_mean) for i, v in enumerate(y))
    syy = math.fsum((v - y_mean) ** 2 for v in y)
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    sse = max(syy - slope * sxy, 0.0)
    r = sxy / math.sqrt(sxx * syy) if syy > 0 else None
    return {
        "slope": slope,
        "intercept": intercept,
        "r": r if r is not None else math.nan,
        "r2": r * r if r is not None else math.nan,
        "sse": sse,
        "sxx": sxx,
        "x_mean": x_mean,
        "n": n,
    }


def trend(series: Series) -> dict[str, Any]:
    fit = linear_fit(series.values)
    assert fit is not None
    slope = fit["slope"]
    scale = max(abs(v) for v in series.values) or 1.0
    direction = "flat" if abs(slope) <= 1e-9 * scale else ("rising" if slope > 0 else "falling")
    ups = sum(b > a for a, b in zip(series.values, series.values[1:], strict=False))
    downs = sum(b < a for a, b in zip(series.values, series.values[1:], strict=False))
    return {
        "direction": direction,
        "slope_per_period": _r(slope),
        "intercept": _r(fit["intercept"]),
        "r": _r(fit["r"], 6),
        "r2": _r(fit["r2"], 6),
        "rises": ups,
        "falls": downs,
    }


def z_scores(values: Sequence[float]) -> list[float] | None:
    """(value − mean) / sample standard deviation; ``None`` for a constant series."""
    if len(values) < 2:
        return None
    std = statistics.stdev(values)
    if std == 0:
        return None
    mean = statistics.fmean(values)
    return [(v - mean) / std for v in values]


def anomalies(series: Series, threshold: float) -> dict[str, Any]:
    """Values whose |z| reaches ``threshold``, largest first."""
    z = z_scores(series.values)
    n = len(series.values)
    result: dict[str, Any] = {"method": "z-score (sample standard deviation)"}
    result["threshold"] = threshold
    result["z_scores"] = [_r(v, 4) for v in z] if z else None
    # With n values, no |z| can exceed (n − 1)/√n: say so instead of a silent "none".
    result["max_possible_z"] = _r((n - 1) / math.sqrt(n), 4)
    found = []
    if z:
        for i in sorted(range(n), key=lambda i: -abs(z[i])):
            if abs(z[i]) >= threshold:
                found.append(
                    {
                        "label": series.labels[i],
                        "index": i,
                        "value": _r(series.values[i]),
                        "z": _r(z[i], 4),
                        "direction": "high" if z[i] > 0 else "low",
                    }
                )
    result["anomalies"] = found
    return result


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r, or ``None`` when a series is constant."""
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in x)
    syy = math.fsum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def strength(r: float) -> str:
    a = abs(r)
    word = (
        "very strong"
        if a >= 0.9
        else "strong"
        if a >= 0.7
        else "moderate"
        if a >= 0.4
        else "weak"
        if a >= 0.2
        else "none"
    )
    if word == "none":
        return "no linear relation"
    return f"{word} {'positive' if r > 0 else 'negative'}"


def correlations(series: Sequence[Series]) -> list[dict[str, Any]]:
    """Pearson r for each pair of series of the same length (paired by position)."""
    out = []
    for i, a in enumerate(series):
        for b in series[i + 1 :]:
            if len(a.values) != len(b.values) or len(a.values) < 3:
                continue
            r = pearson(a.values, b.values)
            out.append(
                {
                    "a": a.name,
                    "b": b.name,
                    "n": len(a.values),
                    "r": _r(r, 6),
                    "r2": _r(r * r, 6) if r is not None else None,
                    "strength": strength(r) if r is not None else "undefined (a constant series)",
                }
            )
    out.sort(key=lambda c: -abs(c["r"] or 0))
    return out


# -- forecast ----------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The Student t quantile: ``t_quantile(0.975, 2)`` = 4.302653."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def next_labels(labels: Sequence[str], horizon: int) -> list[str]:
    """``2024`` → ``2025``...; otherwise ``Q4+1``, ``Q4+2``: never a guessed calendar."""
    last = labels[-1]
    if re.fullmatch(r"\d{1,4}", last) and all(re.fullmatch(r"\d{1,4}", x) for x in labels):
        step = int(last) - int(labels[-2]) if len(labels) >= 2 else 1
        step = step if step > 0 else 1
        return [str(int(last) + step * k) for k in range(1, horizon + 1)]
    return [f"{last}+{k}" for k in range(1, horizon + 1)]


def forecast(series: Series, horizon: int, confidence: float) -> dict[str, Any] | None:
    """Linear trend extended ``horizon`` periods, each with a prediction interval.

    The interval is the ordinary least squares prediction interval:
    ŷ ± t(1−α/2, n−2) · s · √(1 + 1/n + (x₀ − x̄)² / Sxx), s² = SSE / (n − 2).
    Needs at least 3 values (one degree of freedom).
    """
    n = len(series.values)
    if n < 3:
        return None
    fit = linear_fit(series.values)
    assert fit is not None
    df = n - 2
    s = math.sqrt(fit["sse"] / df)
    t = t_quantile(1 - (1 - confidence) / 2, df)
    points = []
    for k, label in enumerate(next_labels(series.labels, horizon), 1):
        x0 = n - 1 + k
        y = fit["intercept"] + fit["slope"] * x0
        margin = t * s * math.sqrt(1 + 1 / n + (x0 - fit["x_mean"]) ** 2 / fit["sxx"])
        points.append(
            {
                "label": label,
                "value": _r(y),
                "low": _r(y - margin),
                "high": _r(y + margin),
            }
        )
    return {
        "method": "linear trend (least squares on the period index)",
        "confidence": confidence,
        "degrees_of_freedom": df,
        "t": _r(t, 6),
        "residual_std": _r(s),
        "points": points,
    }


def analyse(series: Series, *, threshold: float, horizon: int, confidence: float) -> dict:
    """Every figure for one series."""
    return {
        "name": series.name,
        "unit": series.unit,
        "labels": list(series.labels),
        "values": [_r(v) for v in series.values],
        "statistics": describe(series),
        "changes": changes(series),
        "growth": growth(series),
        "trend": trend(series),
        "anomalies": anomalies(series, threshold),
        "forecast": forecast(series, horizon, confidence),
    }
