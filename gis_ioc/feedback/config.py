"""The category → handling unit matrix and the working calendar, read from ``config/feedback``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from gis_ioc.errors import ConfigError


@dataclass(frozen=True)
class Text:
    vi: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


@dataclass(frozen=True)
class Unit:
    code: str
    name: Text
    parent: str | None


@dataclass(frozen=True)
class Category:
    code: str
    name: Text
    group: Text
    handler: str  # "commune" or a unit code
    escalate_to: str | None
    hours: float
    urgent_hours: float


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    weekdays: frozenset[int]
    periods: tuple[tuple[time, time], ...]
    holidays: frozenset[date]
    extra_days: frozenset[date]

    def working(self, day: date) -> bool:
        if day in self.extra_days:
            return True
        return day.isoweekday() in self.weekdays and day not in self.holidays


@dataclass(frozen=True)
class FeedbackConfig:
    units: dict[str, Unit]
    commune_unit: Text
    categories: dict[str, Category]
    calendar: Calendar
    on_time_target: float = 90.0
    satisfaction_target: float = 4.0

    def category(self, code: str) -> Category | None:
        return self.categories.get(code)

    def chain(self, category: Category, commune_code: str) -> list[str]:
        """The units a report of this category in this commune goes through: its handler first, then each
        level above (escalation)."""
        first = f"xa:{commune_code}" if category.handler == "commune" else category.handler
        out = [first]
        nxt = category.escalate_to if category.handler == "commune" else self.units[first].parent
        while nxt is not None and nxt not in out:
            out.append(nxt)
            nxt = self.units[nxt].parent
        return out

    def unit_name(self, unit: str, lang: str, commune_names: dict[str, str] | None = None) -> str:
        if unit.startswith("xa:"):
            code = unit[3:]
            name = (commune_names or {}).get(code, code)
            return self.commune_unit.get(lang).format(commune=name)
        found = self.units.get(unit)
        return found.name.get(lang) if found else unit


def _text(value: Any, where: str) -> Text:
    if not isinstance(value, dict) or not value.get("vi") or not value.get("en"):
        raise ConfigError(f"{where}: needs a Vietnamese and an English text (vi, en)")
    return Text(str(value["vi"]), str(value["en"]))


def _clock(value: str) -> time:
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def _calendar(data: dict[str, Any]) -> Calendar:
    holidays: set[date] = set()
    for entry in data.get("holidays") or []:
        if "date" in entry:
            holidays.add(entry["date"])
        else:
            day = entry["from"]
            while day <= entry["to"]:
                holidays.add(day)
                day += timedelta(days=1)
    periods = tuple((_clock(a), _clock(b)) for a, b in data["periods"])
    if any(a >= b for a, b in periods) or any(periods[i][1] > periods[i + 1][0] for i in range(len(periods) - 1)):
        raise ConfigError("config/feedback/calendar.yaml: working periods must be increasing and not overlap")
    return Calendar(
        zone=ZoneInfo(data.get("timezone", "Asia/Ho_Chi_Minh")),
        weekdays=frozenset(int(d) for d in data.get("weekdays", [1, 2, 3, 4, 5])),
        periods=periods,
        holidays=frozenset(holidays),
        extra_days=frozenset(data.get("working_days_extra") or []),
    )


@lru_cache(maxsize=4)
def load_config(config_dir: Path) -> FeedbackConfig:
    """Read ``config_dir/feedback/categories.yaml`` and ``calendar.yaml`` (checked; cached per folder)."""
    folder = config_dir / "feedback"
    try:
        matrix = yaml.safe_load((folder / "categories.yaml").read_text(encoding="utf-8"))
        calendar = yaml.safe_load((folder / "calendar.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the feedback configuration in {folder}: {exc}") from exc
    units = {
        code: Unit(code, _text(u.get("name"), f"unit {code}"), u.get("parent")) for code, u in matrix["units"].items()
    }
    for unit in units.values():
        if unit.parent is not None and unit.parent not in units:
            raise ConfigError(f"feedback unit {unit.code}: its parent {unit.parent!r} is not a unit")
    categories: dict[str, Category] = {}
    for c in matrix["categories"]:
        code = str(c["code"])
        handler, escalate = str(c["handler"]), c.get("escalate_to")
        if handler != "commune" and handler not in units:
            raise ConfigError(f"feedback category {code}: handler {handler!r} is neither 'commune' nor a unit")
        if escalate is not None and escalate not in units:
            raise ConfigError(f"feedback category {code}: escalate_to {escalate!r} is not a unit")
        categories[code] = Category(
            code=code,
            name=_text(c.get("name"), f"category {code}"),
            group=_text(c.get("group"), f"category {code} group"),
            handler=handler,
            escalate_to=escalate,
            hours=float(c["hours"]),
            urgent_hours=float(c["urgent_hours"]),
        )
    return FeedbackConfig(
        units=units,
        commune_unit=_text(matrix["commune_unit"]["name"], "commune_unit"),
        categories=categories,
        calendar=_calendar(calendar),
        on_time_target=float((matrix.get("targets") or {}).get("on_time_pct", 90)),
        satisfaction_target=float((matrix.get("targets") or {}).get("satisfaction", 4.0)),
    )
