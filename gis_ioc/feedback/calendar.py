"""Deadlines counted in working hours (Monday to Friday 07:30–11:30 and 13:30–17:00 in Vietnam's time,
public holidays from ``config/feedback/calendar.yaml`` excluded)."""

from __future__ import annotations

from datetime import datetime, timedelta

from gis_ioc.feedback.config import Calendar

#: The furthest a deadline is looked for (a year of days: a calendar with no working day is an error).
HORIZON_DAYS = 370


def add_working_hours(calendar: Calendar, start: datetime, hours: float) -> datetime:
    """The moment ``hours`` working hours after ``start`` (an aware datetime), in the calendar's zone.
    Time outside working periods does not count: a report received on Friday at 16:00 with 4 hours to go
    has one hour on Friday and is due at 10:30 on the next working day."""
    if start.tzinfo is None:
        raise ValueError("a deadline is counted from an aware datetime")
    left = timedelta(hours=hours)
    at = start.astimezone(calendar.zone)
    day = at.date()
    for _ in range(HORIZON_DAYS):
        if calendar.working(day):
            for begin, end in calendar.periods:
                opens = datetime.combine(day, begin, calendar.zone)
                closes = datetime.combine(day, end, calendar.zone)
                if closes <= at:
                    continue
                frm = max(opens, at)
                room = closes - frm
                if left <= room:
                    return frm + left
                left -= room
        day += timedelta(days=1)
        at = datetime.combine(day, datetime.min.time(), calendar.zone)
    raise ValueError(f"no working time within {HORIZON_DAYS} days of {start.isoformat()}: check the calendar")
