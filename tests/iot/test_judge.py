"""Judging readings: QCVN 05:2023/BTNMT limits by date, flood alarm levels, staleness (rules as data)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gis_ioc.iot.judge import Rules, is_stale, load_rules, window_mean

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(CONFIG)


def test_pm25_24_hour_mean_of_47_passes_in_2025_and_exceeds_in_2026(rules: Rules) -> None:
    assert not rules.exceeds("pm25", "24h", 47.0, date(2025, 12, 31))
    assert rules.exceeds("pm25", "24h", 47.0, date(2026, 1, 2))
    limit = rules.limit("pm25", "24h", date(2026, 1, 1))
    assert limit is not None and limit.value == 45.0 and "01/01/2026" in limit.source
    assert not rules.exceeds("pm25", "24h", 45.0, date(2026, 1, 1))  # the limit itself passes


def test_limits_are_dated_per_parameter_and_averaging_time(rules: Rules) -> None:
    o3 = rules.limit("o3", "8h", date(2026, 6, 1))
    assert o3 is not None and "QCVN 05:2023" in o3.source
    no2 = rules.limit("no2", "1h", date(2026, 6, 1))
    assert no2 is not None and no2.value == 200.0
    assert rules.limit("pm25", "1h", date(2026, 6, 1)) is None  # QCVN gives no 1-hour PM2.5 limit
    assert rules.limit("water_level", "24h", date(2026, 6, 1)) is None


def test_hung_yen_station_alarm_levels(rules: Rules) -> None:
    station = rules.station_for("11977-WAT02")
    assert station is not None and station.name_vi == "Trạm thủy văn Hưng Yên" and station.river_vi == "Sông Hồng"
    assert station.levels == (5.50, 6.50, 7.50)
    assert [station.alarm_level(m) for m in (5.49, 5.50, 6.49, 6.50, 7.50, 9.0)] == [0, 1, 1, 2, 3, 3]


def test_a_five_minute_datastream_silent_for_16_minutes_is_stale() -> None:
    last = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    made = last - timedelta(days=1)
    assert not is_stale(last, made, 300, last + timedelta(minutes=15))  # 3 intervals: not more than 3
    assert is_stale(last, made, 300, last + timedelta(minutes=16))
    assert not is_stale(last + timedelta(minutes=16), made, 300, last + timedelta(minutes=16))  # a new reading
    assert is_stale(None, made, 300, made + timedelta(minutes=16))  # never heard from since it was made


def test_window_mean_needs_three_quarters_of_the_promised_readings() -> None:
    end = datetime(2026, 1, 2, 23, tzinfo=UTC)
    hours = {end - timedelta(hours=k): (1, 47.0) for k in range(18)}
    assert window_mean(hours, end, 24, 3600) == pytest.approx(47.0)  # 18 of 24 hourly readings
    del hours[end - timedelta(hours=17)]
    assert window_mean(hours, end, 24, 3600) is None  # 17 of 24
    assert window_mean({end: (12, 30.0)}, end, 1, 300) == pytest.approx(30.0)
    assert window_mean({end: (8, 30.0)}, end, 1, 300) is None  # 8 of 12 five-minute readings
    assert window_mean({end: (1, 30.0)}, end, 1, 86400) is None  # an hour is not judged on daily readings
    assert window_mean({end: (1, 30.0)}, end, 24, 86400) == pytest.approx(30.0)
