"""Deadlines on the working-hours calendar (config/feedback/calendar.yaml)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gis_ioc.feedback.calendar import add_working_hours
from gis_ioc.feedback.config import load_config

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")


def test_urgent_report_on_friday_at_16_is_due_after_the_weekend_and_the_holiday() -> None:
    # Friday 24/04/2026 16:00; Monday 27/04/2026 is the day off for the Hùng Kings (in the calendar's data):
    # 1 hour on Friday, then 3 hours on Tuesday from 07:30
    category = CONFIG.categories["duong_hu_hong"]
    assert category.urgent_hours == 4
    friday = datetime(2026, 4, 24, 16, 0, tzinfo=VN)
    assert add_working_hours(CONFIG.calendar, friday, category.urgent_hours) == datetime(2026, 4, 28, 10, 30, tzinfo=VN)


def test_an_ordinary_friday_rolls_over_to_monday() -> None:
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=VN)
    assert add_working_hours(CONFIG.calendar, friday, 4) == datetime(2026, 11, 30, 10, 30, tzinfo=VN)


def test_lunch_break_nights_and_tet_do_not_count() -> None:
    cal = CONFIG.calendar
    assert add_working_hours(cal, datetime(2026, 12, 2, 11, 0, tzinfo=VN), 1) == datetime(2026, 12, 2, 14, 0, tzinfo=VN)
    assert add_working_hours(cal, datetime(2026, 12, 2, 20, 0, tzinfo=VN), 1) == datetime(2026, 12, 3, 8, 30, tzinfo=VN)
    # received on Friday 13/02/2026 at 17:30 (after hours), Tết from 14/02 to 22/02: due Monday 23/02
    assert add_working_hours(cal, datetime(2026, 2, 13, 17, 30, tzinfo=VN), 2) == datetime(
        2026, 2, 23, 9, 30, tzinfo=VN
    )
    # a whole 7.5-hour working day
    assert add_working_hours(cal, datetime(2026, 12, 2, 7, 30, tzinfo=VN), 7.5) == datetime(
        2026, 12, 2, 17, 0, tzinfo=VN
    )


def test_the_matrix_chains_units_to_the_top() -> None:
    roads = CONFIG.categories["duong_hu_hong"]
    assert CONFIG.chain(roads, "12345") == ["xa:12345", "so_xay_dung", "ubnd_tinh"]
    power = CONFIG.categories["su_co_dien"]
    assert CONFIG.chain(power, "12345") == ["dien_luc", "so_cong_thuong", "ubnd_tinh"]
    assert CONFIG.unit_name("xa:12345", "vi", {"12345": "Phường Phố Hiến"}) == "UBND Phường Phố Hiến"
