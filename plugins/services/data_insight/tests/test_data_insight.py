"""data_insight end to end: figures computed by code (checked by hand), narrated by a model.

Each service call runs through the real request path on the simulated provider, or on the
fake OpenAI upstream where the test reads what the model was told.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coop
import pytest
from coop import ServiceManager, SystemConfig
from coop_data_insight import parse_data, parse_value
from coop_data_insight._stats import t_quantile

EXAMPLE = "销售数据: Q1: 100万, Q2: 120万, Q3: 150万, Q4: 130万"


def sim_config() -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {"sim": {"provider": "simulated"}},
            "models": {
                "small": {"endpoint": "sim", "path": "sim-light", "tier": "light"},
                "big": {"endpoint": "sim", "path": "sim-large", "tier": "reasoning"},
            },
            "routing": {"light": "small", "reasoning": "big"},
        }
    )


async def run(content: str | bytes, **parameters: Any) -> coop.ServiceResponse:
    dispatcher = coop.Dispatcher(sim_config(), health_checks=False)
    async with ServiceManager(dispatcher) as manager:
        return await manager.process_request("data_insight", content, parameters)


def ok(response: coop.ServiceResponse) -> dict[str, Any]:
    assert response.success, response.error
    return response.data


# -- the original system's example -----------------------------------------------------------


@pytest.mark.anyio
async def test_the_chinese_sales_example_has_the_exact_figures() -> None:
    response = await run(EXAMPLE, insight_type="trends")
    data = ok(response)
    assert data["format"] == "text" and data["language"] == "zh"
    (s,) = data["series"]
    assert s["name"] == data["title"] == "销售数据"
    assert s["labels"] == ["Q1", "Q2", "Q3", "Q4"]
    assert s["values"] == [1_000_000, 1_200_000, 1_500_000, 1_300_000]
    # Period over period: 20/100, 30/120, -20/150.
    assert [c["display"] for c in s["changes"]] == ["+20.0%", "+25.0%", "−13.3%"]
    assert [c["change_pct"] for c in s["changes"]] == [20.0, 25.0, round(-20 / 150 * 100, 4)]
    assert [c["change"] for c in s["changes"]] == [200_000, 300_000, -200_000]
    st = s["statistics"]
    assert st["mean"] == 1_250_000 and st["median"] == (1_200_000 + 1_300_000) / 2
    # Deviations from the mean: -25万, -5万, +25万, +5万; sample variance = Σd² / 3.
    variance = (2 * 250_000**2 + 2 * 50_000**2) / 3
    assert st["std"] == pytest.approx(math.sqrt(variance), abs=1e-6)  # 208,166.6
    assert st["min"] == {"label": "Q1", "value": 1_000_000}
    assert st["max"] == {"label": "Q3", "value": 1_500_000}
    growth = s["growth"]
    assert growth["periods"] == 3
    assert growth["cagr_pct"] == pytest.approx(((130 / 100) ** (1 / 3) - 1) * 100, abs=1e-4)
    assert growth["cagr_display"] == "+9.1%" and growth["total_change_display"] == "+30.0%"
    # Least squares on 0..3: Sxy = 60万, Sxx = 5 → slope 12万; R² = 720 / 1300.
    assert s["trend"]["slope_per_period"] == 120_000 and s["trend"]["direction"] == "rising"
    assert s["trend"]["r2"] == pytest.approx(720 / 1300, abs=1e-6)
    # The model is told the facts and answers; the figures are in the markdown too.
    assert response.calls == 1 and response.models[0] in ("small", "big")
    assert "+20.0%" in data["facts"] and "−13.3%" in data["facts"]
    assert "125万" in data["facts"]
    assert (
        "[simulated" in response.result and "| Q4 | 1,300,000 (130万) | −13.3% |" in response.result
    )


@pytest.mark.anyio
async def test_the_model_is_told_the_facts_and_the_language() -> None:
    from fakes import FakeOpenAI
    from test_gateway import PLUGINS, UPSTREAM_KEYS

    with FakeOpenAI() as up:
        up.answer_fn = lambda body: "销售额全年增长30.0%，Q3达到峰值150万。"
        config = SystemConfig.from_dict(
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
                "models": {"m": {"endpoint": "fake", "path": "gpt-4o-mini", "tier": "light"}},
                "routing": {"light": "m"},
            }
        )
        dispatcher = coop.Dispatcher(config, plugins=PLUGINS, health_checks=False)
        async with ServiceManager(dispatcher) as manager:
            response = await manager.process_request(
                "data_insight", EXAMPLE, {"insight_type": "trends", "model": "m"}
            )
        sent = [r.json for r in up.requests if r.path.endswith("/chat/completions")]
    assert response.success, response.error
    assert "销售额全年增长30.0%" in response.result and response.models == ["m"]
    (body,) = sent
    system, user = body["messages"]
    assert "Chinese" in system["content"] and "never compute" in system["content"]
    assert "Q1 → Q2: +20.0%" in user["content"] and "Q3 → Q4: −13.3%" in user["content"]
    assert "CAGR over 3 periods: +9.1%" in user["content"]


# -- CSV, JSON, anomalies, forecasts ---------------------------------------------------------

CSV = """month,sales,ads
Jan,10,1
Feb,12,2
Mar,15,3
Apr,13,4
May,20,5
"""


@pytest.mark.anyio
async def test_csv_with_two_columns_gives_pearson_r() -> None:
    data = ok(await run(CSV, insight_type="correlations"))
    assert data["format"] == "csv"
    sales, ads = data["series"]
    assert (sales["name"], ads["name"]) == ("sales", "ads")
    assert sales["labels"] == ["Jan", "Feb", "Mar", "Apr", "May"]
    # ads − 3 = -2..2; sales − 14 = -4, -2, 1, -1, 6: Sxy = 21, Sxx = 10, Syy = 58.
    (pair,) = data["correlations"]
    assert pair["a"] == "sales" and pair["b"] == "ads" and pair["n"] == 5
    assert pair["r"] == pytest.approx(21 / math.sqrt(10 * 58), abs=1e-6)  # 0.871978
    assert pair["strength"] == "strong positive"
    assert "sales ~ ads: r +0.872" in data["facts"]
    # A text column is skipped when the columns to analyse are named.
    mixed = "month,region,sales\nJan,North,10\nFeb,South,12\nMar,East,15"
    picked = ok(await run(mixed, column="sales"))
    assert [s["name"] for s in picked["series"]] == ["sales"]


@pytest.mark.anyio
async def test_json_records_and_arrays() -> None:
    records = json.dumps(
        [
            {"year": 2021, "revenue": "$1,200", "margin": "12.5%"},
            {"year": 2022, "revenue": "$1,500", "margin": "15%"},
            {"year": 2023, "revenue": "$1,800", "margin": "14%"},
        ]
    )
    data = ok(await run(records, insight_type="forecast", periods=2))
    revenue, margin = data["series"]
    assert revenue["labels"] == ["2021", "2022", "2023"] and revenue["unit"] == "$"
    assert revenue["values"] == [1200, 1500, 1800] and margin["unit"] == "%"
    assert margin["values"] == [12.5, 15, 14]
    # An exact line: the forecast continues it with a zero-width interval.
    points = revenue["forecast"]["points"]
    assert [(p["label"], p["value"], p["low"], p["high"]) for p in points] == [
        ("2024", 2100, 2100, 2100),
        ("2025", 2400, 2400, 2400),
    ]
    plain = ok(await run("[3, 5, 7, 6]", insight_type="summary"))
    (s,) = plain["series"]
    assert s["values"] == [3, 5, 7, 6] and s["labels"] == ["1", "2", "3", "4"]
    assert s["statistics"]["mean"] == 5.25
    columns = ok(await run('{"x": [1, 2, 3], "y": [2, 4, 7]}', insight_type="correlations"))
    assert columns["correlations"][0]["r"] == pytest.approx(5 / math.sqrt(2 * (38 / 3)), 1e-6)


@pytest.mark.anyio
async def test_an_outlier_is_flagged_by_its_z_score() -> None:
    values = [10, 11, 9, 10, 12, 10, 11, 9, 10, 50]
    text = "\n".join(f"day {i + 1}: {v}" for i, v in enumerate(values))
    data = ok(await run(text, insight_type="anomalies"))
    (s,) = data["series"]
    mean = sum(values) / 10  # 14.2
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 9)  # 12.612
    (found,) = s["anomalies"]["anomalies"]
    assert found["label"] == "day 10" and found["value"] == 50 and found["direction"] == "high"
    assert found["z"] == pytest.approx((50 - mean) / std, abs=1e-4)  # 2.8385
    assert "day 10 50 (z +2.84, high)" in data["facts"]
    # Four values can never reach |z| = 2: the facts say so instead of a bare "none".
    small = ok(await run(EXAMPLE, insight_type="anomalies"))
    assert small["series"][0]["anomalies"]["anomalies"] == []
    assert "no |z| can exceed 1.5" in small["facts"]


@pytest.mark.anyio
async def test_forecast_with_a_prediction_interval() -> None:
    # y = 2, 4, 5, 4, 5 on x = 0..4: slope 0.6, intercept 2.8, SSE = 6 - 0.6·6 = 2.4.
    data = ok(await run("2, 4, 5, 4, 5", insight_type="forecast", periods=1))
    fc = data["series"][0]["forecast"]
    (point,) = fc["points"]
    s = math.sqrt(2.4 / 3)
    margin = 3.182446 * s * math.sqrt(1 + 1 / 5 + (5 - 2) ** 2 / 10)  # t(0.975, 3) from a table
    assert point["value"] == pytest.approx(5.8)
    assert point["low"] == pytest.approx(5.8 - margin, abs=1e-5)
    assert point["high"] == pytest.approx(5.8 + margin, abs=1e-5)
    assert fc["degrees_of_freedom"] == 3 and fc["confidence"] == 0.95
    assert "[1.68, 9.92]" in data["facts"]
    ninety = ok(await run("2, 4, 5, 4, 5", insight_type="forecast", periods=1, confidence=0.9))
    narrow = ninety["series"][0]["forecast"]["points"][0]
    assert narrow["high"] - narrow["low"] < point["high"] - point["low"]


def test_t_quantiles_match_the_tables() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.706205, abs=1e-5)
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-5)
    assert t_quantile(0.95, 10) == pytest.approx(1.812461, abs=1e-5)
    assert t_quantile(0.995, 30) == pytest.approx(2.749996, abs=1e-5)


def test_values_as_people_write_them() -> None:
    assert parse_value("100万") == (1_000_000, "")
    assert parse_value("1.2亿") == (120_000_000, "")
    assert parse_value("1,234,567.5") == (1_234_567.5, "")
    assert parse_value("$3.5M") == (3_500_000, "$")
    assert parse_value("¥1,200元") == (1200, "¥")
    assert parse_value("12.5%") == (12.5, "%")
    assert parse_value("(300)") == (-300, "")
    assert parse_value("−4") == (-4, "")
    assert parse_value("一百二十万") == (1_200_000, "")
    for bad in ("abc", "12 apples", "1,2,3", "", "(5", "--3"):
        assert parse_value(bad) is None, bad
    # Thousands separators inside text items; a full-width comma always separates.
    dataset = parse_data("收入: 1月 1,200, 2月 1,350，3月 1,500")
    assert dataset.series[0].values == [1200, 1350, 1500]
    assert dataset.series[0].labels == ["1月", "2月", "3月"]


# -- the chart -------------------------------------------------------------------------------


def check_png(data: bytes) -> tuple[int, int]:
    """Every chunk's CRC, IHDR first, IEND last, IDAT inflating to the image size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + width * channels * depth // 8)
    return width, height


@pytest.mark.anyio
async def test_chart_is_a_valid_png() -> None:
    response = await run(EXAMPLE, insight_type="forecast", chart=True)
    data = ok(response)
    assert set(response.files) == {"chart.png"} and data["chart"]["file"] == "chart.png"
    assert check_png(response.files["chart.png"]) == (800, 450)
    plain = await run(EXAMPLE)
    assert plain.files == {} and "chart" not in ok(plain)


# -- bad input: an error, never a half result ------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "parameters", "message"),
    [
        ("   ", {}, "content is empty"),
        (
            "month,sales\nJan,10\nFeb,abc\nMar,12",
            {},
            "line 3, column 'sales': 'abc' is not a number",
        ),
        ("Q1: 100\nQ2: 120\nQ3: abc", {}, "line 3, 'Q3': 'abc' is not a number"),
        ("销售数据: Q1: 100万, Q2: 一些", {}, "line 1, 'Q2': '一些' is not a number"),
        ('[{"a": 1}, {"a": 2}, {"a": "n/a"}]', {}, "[2].a: 'n/a' is not a number"),
        ('[{"a": 1}, {"b": 2}]', {}, "[0]: no 'b'"),
        ('{"a": [1, 2', {}, "invalid JSON"),
        ("a,b\n1,2\n3", {"format": "csv"}, "line 3: 1 cells where line 1 has 2"),
        ("Q1: 5", {}, "has 1 value(s)"),
        (EXAMPLE, {"insight_type": "trend"}, "summary, trends, anomalies, correlations, forecast"),
        (EXAMPLE, {"insight_type": "correlations"}, "at least two numeric series"),
        ("Q1: 1, Q2: 2", {"insight_type": "forecast"}, "at least 3 values"),
        (
            "month,region,sales\nJan,North,10",
            {"format": "csv"},
            "line 2, column 'region': 'North' is not a number (column=... picks",
        ),
        (CSV, {"column": "sale"}, "no column 'sale' (did you mean 'sales'?); columns: sales, ads"),
        (EXAMPLE, {"confidence": "2"}, "confidence: must be between 0.5 and 0.999"),
        (EXAMPLE, {"periods": "0"}, "periods: must be between 1 and 60"),
        (EXAMPLE, {"chart": "maybe"}, "chart: expected bool"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", {}, "binary content"),
    ],
)
async def test_bad_input_is_a_clear_error(
    content: str | bytes, parameters: dict[str, Any], message: str
) -> None:
    response = await run(content, **parameters)
    assert not response.success
    assert message in (response.error or ""), response.error
    assert response.result == "" and response.data == {} and response.files == {}
    assert response.calls == 0  # refused before any model call
    assert response.error_type == "ValidationError"


# -- the CLI, as a user runs it --------------------------------------------------------------


def coop_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
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


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_cli_runs_the_original_example_on_the_embedded_models(folder: Path) -> None:
    done = coop_cli("service", "data_insight", "--content", EXAMPLE, "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] and body["calls"] == 1 and body["models"]
    (s,) = body["data"]["series"]
    assert s["values"] == [1_000_000, 1_200_000, 1_500_000, 1_300_000]
    assert [c["display"] for c in s["changes"]] == ["+20.0%", "+25.0%", "−13.3%"]
    assert s["statistics"]["mean"] == 1_250_000 and s["statistics"]["median"] == 1_250_000
    assert s["statistics"]["std"] == pytest.approx(208_166.6, abs=0.01)
    assert s["growth"]["periods"] == 3 and s["growth"]["cagr_pct"] == pytest.approx(9.1393)

    (folder / "sales.csv").write_text(CSV)
    charted = coop_cli(
        "service", "data_insight", "--file", "sales.csv", "--param", "insight_type=forecast",
        "--param", "chart=true", "--param", "column=sales", "--out", "out", "--json", cwd=folder,
    )  # fmt: skip
    assert charted.returncode == 0, charted.stderr
    body = json.loads(charted.stdout)
    assert [s["name"] for s in body["data"]["series"]] == ["sales"]
    png = base64.b64decode(body["files"]["chart.png"])
    assert (folder / "out" / "chart.png").read_bytes() == png and check_png(png)

    unparsable = coop_cli("service", "data_insight", "--content", "Q1: 100\nQ2: x", cwd=folder)
    assert unparsable.returncode == 2 and "line 2, 'Q2': 'x' is not a number" in unparsable.stderr
    assert "Traceback" not in unparsable.stderr


@pytest.mark.anyio
async def test_titled_text_lines_are_series_and_long_data_stays_compact() -> None:
    data = ok(await run("收入: Q1 100, Q2 120, Q3 130\n成本: Q1 80, Q2 90, Q3 95"))
    assert [s["name"] for s in data["series"]] == ["收入", "成本"]
    # 成本 = 收入 / 2 + 30 exactly: r = 1.
    assert data["correlations"][0]["r"] == 1.0
    rows = "\n".join(f"{i},{(i * 37) % 101}" for i in range(2000))
    big = await run(f"t,v\n{rows}", insight_type="trends")
    facts = ok(big)["facts"]
    assert ok(big)["series"][0]["statistics"]["count"] == 2000
    assert "largest rise and fall" in facts and coop.estimate_tokens(facts) < 1000
    assert big.prompt_tokens < 1500
