"""VN_AQI (Quyết định 1459/QĐ-TCMT): breakpoints, NowCast, hourly and daily AQI, bands.

The decision's text was not retrievable offline to copy its worked examples; the expected values here
are computed by hand from its formulas and its breakpoint table (config/iot/vn_aqi.yaml, Bảng 2), with
the working shown beside each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gis_ioc.iot.aqi import AqiTable, daily_aqi, hourly_aqi, load_table, nowcast

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def table() -> AqiTable:
    return load_table(CONFIG)


def test_pm25_24_hour_mean_of_47_is_94_moderate(table: AqiTable) -> None:
    # BP 25–50 ↔ I 50–100: (100 − 50) / (50 − 25) × (47 − 25) + 50 = 94
    assert table.index("pm25", 47) == 94
    assert table.band(94).vi == "Trung bình"
    assert table.band(94).colour == "#ffff00"


def test_breakpoints_and_rounding(table: AqiTable) -> None:
    assert table.index("pm10", 160) == 105  # 50/100 × 10 + 100
    assert table.index("no2", 150) == 75  # 50/100 × 50 + 50
    assert table.index("co", 20000) == 75  # 50/20000 × 10000 + 50
    assert table.index("so2", 125) == 50  # a breakpoint gives its level
    assert table.index("pm25", 12.5) == 25
    assert table.index("pm25", 25.25) == 51  # 50.5 rounds half up
    assert table.index("pm25", 600) == 500  # beyond the last breakpoint


def test_bands_and_colours_of_the_decision(table: AqiTable) -> None:
    expected = [
        (0, "Tốt", "Good", "#00e400"),
        (50, "Tốt", "Good", "#00e400"),
        (51, "Trung bình", "Moderate", "#ffff00"),
        (101, "Kém", "Poor", "#ff7e00"),
        (151, "Xấu", "Bad", "#ff0000"),
        (201, "Rất xấu", "Very bad", "#8f3f97"),
        (301, "Nguy hại", "Hazardous", "#7e0023"),
        (500, "Nguy hại", "Hazardous", "#7e0023"),
    ]
    assert [(a, table.band(a).vi, table.band(a).en, table.band(a).colour) for a, *_ in expected] == expected
    assert not table.alerting(100)
    assert table.alerting(101)


def test_nowcast_weight_above_half() -> None:
    # Cmin/Cmax = 30/50 = 0.6 > 1/2, so w = 0.6: Σ 0.6^(i−1) c_i / Σ 0.6^(i−1) = 43.501…
    hours = [50.0, 45.0, 40.0, 35.0, *[30.0] * 8]
    assert nowcast(hours) == pytest.approx(43.501389586, abs=1e-6)


def test_nowcast_weight_at_most_half_uses_the_decisions_half_formula() -> None:
    # Cmin/Cmax = 20/100 = 0.2 ≤ 1/2, so w = 1/2 and NowCast = Σ (1/2)^i c_i
    #   = 100/2 + 20 × (1/4 + … + 1/4096) = 50 + 20 × (1/2 − 1/4096) = 59.9951171875
    hours = [100.0, *[20.0] * 11]
    assert nowcast(hours) == pytest.approx(59.9951171875)


def test_nowcast_needs_two_of_the_last_three_hours() -> None:
    assert nowcast([None, None, 30.0, 30.0, 30.0]) is None
    assert nowcast([30.0, None, None, 30.0]) is None
    assert nowcast([None, 30.0, 30.0]) == pytest.approx(30.0)
    # a missing hour leaves its term out: w = 50/80, c2 and c12 missing → 66.731…
    hours: list[float | None] = [80.0, None, 60.0, *[50.0] * 8, None]
    assert nowcast(hours) == pytest.approx(66.731363975, abs=1e-6)


def test_hourly_aqi_is_the_largest_parameter_and_needs_dust(table: AqiTable) -> None:
    hours = [50.0, 45.0, 40.0, 35.0, *[30.0] * 8]  # NowCast 43.50 → 2 × 18.50 + 50 = 87
    found = hourly_aqi(table, {"pm25": hours}, {"no2": 150.0, "o3": 210.0})  # NO2 75; O3 1 h: 50/100 × 10 + 100
    assert found is not None
    assert found.by_parameter == {"pm25": 87, "no2": 75, "o3": 105}
    assert (found.value, found.dominant) == (105, "o3")
    assert table.band(found.value).vi == "Kém"
    assert hourly_aqi(table, {}, {"no2": 150.0}) is None  # neither PM2.5 nor PM10
    assert hourly_aqi(table, {"pm25": [None, None, 40.0]}, {"no2": 10.0}) is None  # no NowCast


def test_daily_aqi(table: AqiTable) -> None:
    # PM2.5 24 h 47 → 94; PM10 24 h 160 → 105; O3: 1 h max 210 → 105, 8 h max 130 → 50/50 × 10 + 100 = 110
    found = daily_aqi(table, {"pm25": 47.0, "pm10": 160.0}, {"o3": 210.0, "co": 5000.0}, o3_max_8h=130.0)
    assert found is not None
    assert found.by_parameter == {"pm25": 94, "pm10": 105, "o3": 110, "co": 25}
    assert (found.value, found.dominant) == (110, "o3")
    # above the 8-hour row (400 µg/m³) the 1-hour value decides
    high = daily_aqi(table, {"pm25": 10.0}, {"o3": 900.0}, o3_max_8h=450.0)
    assert high is not None and high.by_parameter["o3"] == 350  # O3 1 h 800–1000 ↔ 300–400: 100/200 × 100 + 300
