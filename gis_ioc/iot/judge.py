"""Judging the sensors' readings: QCVN 05:2023/BTNMT limits by date, VN_AQI, flood alarm levels, staleness.

The rules are data under ``config/iot/`` (:class:`Rules`); this module reads the rollups the ingester keeps
exact at each commit (``iot_latest``, ``iot_hourly``) and states which conditions hold now
(:func:`conditions`). :mod:`gis_ioc.iot.alerts` opens, updates and closes the alerts from them.

* A limit is judged on the mean over its averaging time (1, 8 or 24 hours) ending with the hour of the
  latest reading, against the limit in force on that reading's Vietnamese calendar day; the mean needs
  75 % of the readings the datastream's interval promises in that time (an averaging time shorter than
  the interval is not judged). A mean above the limit exceeds it.
* The station's hourly VN_AQI (:mod:`gis_ioc.iot.aqi`) at the latest hour of its dust; Kém or worse alerts.
* A water-level gauge standing for a hydrological station is at alarm level I, II or III from the level's
  value upwards.
* A datastream silent (no phenomenon time) for more than 3 of its intervals is stale.

The ingester calls :func:`after_commit` with the datastreams it just committed; ``gis-ioc iot judge`` runs
:func:`judge_all` from cron (staleness needs a clock, not a reading).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import yaml

from gis_ioc.errors import ConfigError
from gis_ioc.iot import alerts, aqi

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
AVERAGING_HOURS = {"1h": 1, "8h": 8, "24h": 24}
COVERAGE = 0.75  # share of the promised readings an average needs
STALE_INTERVALS = 3


@dataclass(frozen=True)
class Limit:
    start: dt.date
    value: float
    source: str


@dataclass(frozen=True)
class Station:
    id: str
    name_vi: str
    name_en: str
    river_vi: str
    river_en: str
    device: str
    levels: tuple[float, float, float]

    def alarm_level(self, metres: float) -> int:
        """0 (below level I), or the alarm level I–III reached (at or above its value)."""
        return sum(1 for level in self.levels if metres >= level)


@dataclass(frozen=True)
class Rules:
    limits: Mapping[str, Mapping[str, tuple[Limit, ...]]]  # property → averaging → dated limits
    stations: tuple[Station, ...]
    aqi: aqi.AqiTable

    def limit(self, prop: str, averaging: str, day: dt.date) -> Limit | None:
        """The limit in force on ``day`` (the latest entry starting on or before it), if any."""
        found = None
        for entry in self.limits.get(prop, {}).get(averaging, ()):
            if entry.start <= day:
                found = entry
        return found

    def exceeds(self, prop: str, averaging: str, mean: float, day: dt.date) -> bool:
        limit = self.limit(prop, averaging, day)
        return limit is not None and mean > limit.value

    def station_for(self, device_code: str) -> Station | None:
        return next((s for s in self.stations if s.device == device_code), None)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


@lru_cache(maxsize=4)
def load_rules(config_dir: Path) -> Rules:
    """Read ``config_dir/iot/{qcvn05_2023,water_alarms,vn_aqi}.yaml`` (checked; cached per folder)."""
    folder = config_dir / "iot"
    limits: dict[str, dict[str, tuple[Limit, ...]]] = {}
    raw = _read(folder / "qcvn05_2023.yaml")
    try:
        for prop, by_avg in raw["limits"].items():
            limits[prop] = {}
            for averaging, entries in by_avg.items():
                if averaging not in (*AVERAGING_HOURS, "year"):
                    raise ConfigError(f"{folder / 'qcvn05_2023.yaml'}: unknown averaging time {averaging!r} of {prop}")
                dated = tuple(
                    sorted(
                        (
                            Limit(dt.date.fromisoformat(str(e["from"])), float(e["value"]), str(e["source"]))
                            for e in entries
                        ),
                        key=lambda lim: lim.start,
                    )
                )
                limits[prop][averaging] = dated
        stations = tuple(
            Station(
                str(s["id"]),
                s["name"]["vi"],
                s["name"]["en"],
                s["river"]["vi"],
                s["river"]["en"],
                str(s["device"]),
                (float(s["levels"][0]), float(s["levels"][1]), float(s["levels"][2])),
            )
            for s in _read(folder / "water_alarms.yaml")["stations"]
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{folder}: malformed sensor rules: {exc}") from exc
    for s in stations:
        if not s.levels[0] < s.levels[1] < s.levels[2]:
            raise ConfigError(f"{folder / 'water_alarms.yaml'}: alarm levels of {s.id} must rise: {s.levels}")
    return Rules(limits, stations, aqi.load_table(config_dir))


def is_stale(last: dt.datetime | None, since: dt.datetime, interval_s: int, now: dt.datetime) -> bool:
    """Silent for more than 3 intervals: since the last phenomenon time, or since the datastream was made."""
    return now - (last or since) > dt.timedelta(seconds=STALE_INTERVALS * interval_s)


def window_mean(
    hours: Mapping[dt.datetime, tuple[int, float]], end_hour: dt.datetime, span: int, interval_s: int
) -> float | None:
    """The mean of the readings in the ``span`` hours ending with ``end_hour`` (hourly rollups: n, mean),
    or None when fewer than 75 % of the readings the interval promises are there (or the span is shorter
    than the interval)."""
    if span * 3600 < interval_s:
        return None
    rows = [hours[h] for h in (end_hour - dt.timedelta(hours=k) for k in range(span)) if h in hours]
    n = sum(r[0] for r in rows)
    if n == 0 or n < COVERAGE * span * 3600 / interval_s:
        return None
    return sum(r[0] * r[1] for r in rows) / n


@dataclass(frozen=True)
class Condition:
    """Something that holds now about a device (an alert is open while it holds)."""

    device_code: str
    key: str  # limit:<property>:<averaging> | aqi | water | stale:<property>
    kind: str  # limit | aqi | water | stale
    datastream_id: int | None
    severity: int
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stream:
    id: int
    device: str
    prop: str
    interval_s: int
    created_at: dt.datetime
    time: dt.datetime | None
    result: float | None
    hours: dict[dt.datetime, tuple[int, float]] = field(default_factory=dict)


_STREAMS = """
SELECT d.id, d.device_code, d.property_id, d.interval_s, d.created_at, l.phenomenon_time,
       CASE WHEN 'out_of_range' = ANY (l.flags) THEN NULL ELSE l.result END  -- a broken sensor's value is not judged
  FROM gis_ioc.iot_datastreams d LEFT JOIN gis_ioc.iot_latest l ON l.datastream_id = d.id
 WHERE %(all)s
    OR d.device_code = ANY(%(devices)s)
    OR d.device_code IN (SELECT device_code FROM gis_ioc.iot_datastreams WHERE id = ANY(%(ids)s))
"""
_HOURS = """
SELECT h.datastream_id, h.hour, h.n, h.mean
  FROM gis_ioc.iot_hourly h JOIN gis_ioc.iot_latest l USING (datastream_id)
 WHERE h.datastream_id = ANY(%(ids)s)
   AND h.hour > date_trunc('hour', l.phenomenon_time) - interval '24 hours'
   AND h.hour <= l.phenomenon_time
"""


def load_streams(
    conn: psycopg.Connection[Any],
    *,
    ids: Sequence[int] | None = None,
    devices: Sequence[str] | None = None,
    props: Iterable[str] = (),
) -> list[Stream]:
    """Every datastream of the devices of ``ids`` and of ``devices`` (neither: of every device), with its
    latest reading and, for ``props``, the hourly rollups of the 24 hours up to that reading."""
    everything = ids is None and devices is None
    args = {"all": everything, "ids": list(ids or []), "devices": list(devices or [])}
    streams = [Stream(*row) for row in conn.execute(_STREAMS, args).fetchall()]
    wanted = set(props)
    by_id = {s.id: s for s in streams}
    hourly = [s.id for s in streams if s.time is not None and s.prop in wanted]
    for ds, hour, n, mean in conn.execute(_HOURS, {"ids": hourly}):
        by_id[ds].hours[hour] = (int(n), float(mean))
    return streams


def _hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _limit_conditions(rules: Rules, s: Stream) -> Iterable[Condition]:
    if s.time is None:
        return
    day = s.time.astimezone(VIETNAM).date()
    for averaging, span in AVERAGING_HOURS.items():
        limit = rules.limit(s.prop, averaging, day)
        if limit is None:
            continue
        mean = window_mean(s.hours, _hour(s.time), span, s.interval_s)
        if mean is not None and mean > limit.value:
            yield Condition(
                s.device,
                f"limit:{s.prop}:{averaging}",
                "limit",
                s.id,
                1,
                round(mean, 3),
                limit.value,
                {"property": s.prop, "averaging": averaging, "day": day.isoformat(), "source": limit.source},
            )


def _aqi_condition(rules: Rules, device: str, streams: list[Stream]) -> Condition | None:
    found = station_aqi(rules.aqi, streams)
    if found is None:
        return None
    value, hour = found
    if not rules.aqi.alerting(value.value):
        return None
    band = rules.aqi.band(value.value)
    severity = 1 + [b.code for b in rules.aqi.bands].index(band.code)
    return Condition(
        device,
        "aqi",
        "aqi",
        None,
        severity,
        float(value.value),
        None,
        {"band": band.code, "dominant": value.dominant, "hour": hour.isoformat(), "by_parameter": value.by_parameter},
    )


def station_aqi(table: aqi.AqiTable, streams: Sequence[Stream]) -> tuple[aqi.Aqi, dt.datetime] | None:
    """The device's hourly VN_AQI at the latest hour of its dust readings (NowCast), with that hour."""
    dust = [s for s in streams if s.prop in aqi.DUST and s.time is not None and s.interval_s <= 3600]
    if not dust:
        return None
    hour = max(_hour(s.time) for s in dust if s.time is not None)
    series = {
        s.prop: [s.hours[h][1] if h in s.hours else None for h in (hour - dt.timedelta(hours=k) for k in range(12))]
        for s in dust
    }
    gases = {s.prop: s.hours[hour][1] for s in streams if s.prop in aqi.GASES and hour in s.hours}
    value = aqi.hourly_aqi(table, series, gases)
    return (value, hour) if value is not None else None


def conditions(
    conn: psycopg.Connection[Any],
    rules: Rules,
    datastream_ids: Sequence[int] | None,
    now: dt.datetime,
    devices: Sequence[str] | None = None,
) -> tuple[set[str], list[Condition]]:
    """The devices judged (those of ``datastream_ids`` and ``devices``, or every device with a datastream
    when both are None) and the conditions holding for them now."""
    props = set(rules.limits) | set(aqi.PARAMETERS)
    streams = load_streams(conn, ids=datastream_ids, devices=devices, props=props)
    by_device: dict[str, list[Stream]] = defaultdict(list)
    for s in streams:
        by_device[s.device].append(s)
    found: list[Condition] = []
    for device, own in by_device.items():
        for s in own:
            found.extend(_limit_conditions(rules, s))
            if is_stale(s.time, s.created_at, s.interval_s, now):
                silent = (now - (s.time or s.created_at)).total_seconds()
                found.append(
                    Condition(
                        device,
                        f"stale:{s.prop}",
                        "stale",
                        s.id,
                        1,
                        round(silent),
                        float(STALE_INTERVALS * s.interval_s),
                        {"property": s.prop, "last": s.time.isoformat() if s.time else None},
                    )
                )
        if (c := _aqi_condition(rules, device, own)) is not None:
            found.append(c)
        station = rules.station_for(device)
        gauge = next((s for s in own if s.prop == "water_level" and s.result is not None), None)
        if station is not None and gauge is not None and gauge.result is not None:
            level = station.alarm_level(gauge.result)
            if level:
                found.append(
                    Condition(
                        device,
                        "water",
                        "water",
                        gauge.id,
                        level,
                        gauge.result,
                        station.levels[level - 1],
                        {"station": station.id, "level": level},
                    )
                )
    return set(by_device), found


def after_commit(
    conn: psycopg.Connection[Any], datastream_ids: Iterable[int], config_dir: Path, now: dt.datetime | None = None
) -> int:
    """Judge the devices of the datastreams just committed and move their alerts; the number of alert
    transitions. Call it after the ingester's commit, on the same connection (its own transaction)."""
    ids = sorted(set(datastream_ids))
    if not ids:
        return 0
    rules = load_rules(config_dir)
    when = now or dt.datetime.now(dt.UTC)
    with conn.transaction():
        devices, found = conditions(conn, rules, ids, when)
        return alerts.reconcile(conn, devices, found, when)


def after_store(
    conn: psycopg.Connection[Any], devices: Iterable[str], config_dir: Path, now: dt.datetime | None = None
) -> int:
    """:func:`after_commit` by device: judge the devices whose messages were just stored (all their
    datastreams); the number of alert transitions."""
    codes = sorted(set(devices))
    if not codes:
        return 0
    rules = load_rules(config_dir)
    when = now or dt.datetime.now(dt.UTC)
    with conn.transaction():
        judged, found = conditions(conn, rules, None, when, codes)
        return alerts.reconcile(conn, judged, found, when)


def judge_all(conn: psycopg.Connection[Any], config_dir: Path, now: dt.datetime | None = None) -> int:
    """Judge every device (for cron: staleness turns without a reading); the number of alert transitions."""
    rules = load_rules(config_dir)
    when = now or dt.datetime.now(dt.UTC)
    with conn.transaction():
        devices, found = conditions(conn, rules, None, when)
        return alerts.reconcile(conn, devices, found, when)
