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

Each judgement also writes the devices' state (:func:`store_states`: VN_AQI and band by :func:`device_aqi`,
the one computation :mod:`gis_ioc.iot.live` uses too; the flood alarm level) to ``iot_station_state``, in
the transaction that reconciles their alerts; the ``iot_devices`` collection reads it.

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


def daily_dust(conn: psycopg.Connection[Any], dust: Sequence[Stream]) -> dict[int, tuple[dt.date, float]]:
    """The 24-hour (Vietnamese day) mean of each dust datastream on the day of its latest reading."""
    dust = [s for s in dust if s.prop in aqi.DUST and s.time is not None]
    if not dust:
        return {}
    days = [s.time.astimezone(VIETNAM).date() for s in dust if s.time is not None]
    rows = conn.execute(
        "SELECT r.datastream_id, r.day, r.mean FROM gis_ioc.iot_daily r "
        "JOIN unnest(%s::bigint[], %s::date[]) AS w(id, day) ON r.datastream_id = w.id AND r.day = w.day",
        ([s.id for s in dust], days),
    ).fetchall()
    return {int(r[0]): (r[1], float(r[2])) for r in rows}


@dataclass(frozen=True)
class DeviceAqi:
    """A station's VN_AQI: hourly (``at``: the hour) or daily (``at``: the Vietnamese day)."""

    value: aqi.Aqi
    basis: str  # hour | day
    at: dt.datetime | dt.date

    @property
    def starts(self) -> dt.datetime:
        """When the hour or the day it is for begins (a day at 00:00 Vietnamese time)."""
        if isinstance(self.at, dt.datetime):
            return self.at
        return dt.datetime.combine(self.at, dt.time(0), VIETNAM)


def device_aqi(
    table: aqi.AqiTable, own: Sequence[Stream], daily: Mapping[int, tuple[dt.date, float]]
) -> DeviceAqi | None:
    """THE station AQI, for the judge's state and the stations' answers alike: the hourly VN_AQI (NowCast)
    where the dust is read at least hourly, else the daily AQI of the latest day (``daily``: from
    :func:`daily_dust`)."""
    found = station_aqi(table, own)
    if found is not None:
        return DeviceAqi(found[0], "hour", found[1])
    means = {s.prop: daily[s.id] for s in own if s.id in daily}
    if not means:
        return None
    day = max(d for d, _ in means.values())
    value = aqi.daily_aqi(table, {p: m for p, (d, m) in means.items() if d == day}, {})
    return DeviceAqi(value, "day", day) if value is not None else None


def gauge_of(rules: Rules, device: str, own: Sequence[Stream]) -> tuple[Station, Stream, float] | None:
    """The hydrological station a device's water level stands for, its gauge's datastream and latest value."""
    station = rules.station_for(device)
    gauge = next((s for s in own if s.prop == "water_level" and s.result is not None), None)
    if station is None or gauge is None or gauge.result is None:
        return None
    return station, gauge, gauge.result


def _by_device(streams: Iterable[Stream]) -> dict[str, list[Stream]]:
    by_device: dict[str, list[Stream]] = defaultdict(list)
    for s in streams:
        by_device[s.device].append(s)
    return by_device


def conditions(
    conn: psycopg.Connection[Any],
    rules: Rules,
    datastream_ids: Sequence[int] | None,
    now: dt.datetime,
    devices: Sequence[str] | None = None,
) -> tuple[set[str], list[Condition]]:
    """The devices judged (those of ``datastream_ids`` and ``devices``, or every device with a datastream
    when both are None) and the conditions holding for them now."""
    by_device, found = _assess(conn, rules, datastream_ids, now, devices)
    return set(by_device), found


def _assess(
    conn: psycopg.Connection[Any],
    rules: Rules,
    datastream_ids: Sequence[int] | None,
    now: dt.datetime,
    devices: Sequence[str] | None,
) -> tuple[dict[str, list[Stream]], list[Condition]]:
    props = set(rules.limits) | set(aqi.PARAMETERS)
    by_device = _by_device(load_streams(conn, ids=datastream_ids, devices=devices, props=props))
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
        if (water := gauge_of(rules, device, own)) is not None:
            station, gauge, metres = water
            level = station.alarm_level(metres)
            if level:
                found.append(
                    Condition(
                        device,
                        "water",
                        "water",
                        gauge.id,
                        level,
                        metres,
                        station.levels[level - 1],
                        {"station": station.id, "level": level},
                    )
                )
    return by_device, found


_STATE = """
INSERT INTO gis_ioc.iot_station_state AS s
       (device_code, aqi, aqi_band, aqi_dominant, aqi_basis, aqi_at, flood_level, judged_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (device_code) DO UPDATE
   SET aqi = excluded.aqi, aqi_band = excluded.aqi_band, aqi_dominant = excluded.aqi_dominant,
       aqi_basis = excluded.aqi_basis, aqi_at = excluded.aqi_at, flood_level = excluded.flood_level,
       judged_at = excluded.judged_at
 WHERE s.judged_at <= excluded.judged_at  -- a judgement never replaces a later one
"""


def store_states(
    conn: psycopg.Connection[Any], rules: Rules, by_device: Mapping[str, Sequence[Stream]], now: dt.datetime
) -> None:
    """Write each judged device's state (AQI, band, deciding parameter, basis and time; flood alarm level)
    to ``gis_ioc.iot_station_state``, read by the ``iot_devices`` collection (view ``iot_station_live``)."""
    if not by_device:
        return
    daily = daily_dust(conn, [s for own in by_device.values() for s in own])
    rows: list[tuple[Any, ...]] = []
    for device in sorted(by_device):  # one lock order for every judge
        own = by_device[device]
        found = device_aqi(rules.aqi, own, daily)
        water = gauge_of(rules, device, own)
        level = water[0].alarm_level(water[2]) if water is not None else None
        if found is None:
            rows.append((device, None, None, None, None, None, level, now))
            continue
        band = rules.aqi.band(found.value.value).code
        rows.append((device, found.value.value, band, found.value.dominant, found.basis, found.starts, level, now))
    with conn.cursor() as cur:
        cur.executemany(_STATE, rows)


def _judge(
    conn: psycopg.Connection[Any],
    rules: Rules,
    datastream_ids: Sequence[int] | None,
    now: dt.datetime,
    devices: Sequence[str] | None = None,
) -> int:
    """Judge, write the devices' states and move their alerts, in one transaction."""
    with conn.transaction():
        by_device, found = _assess(conn, rules, datastream_ids, now, devices)
        store_states(conn, rules, by_device, now)
        return alerts.reconcile(conn, set(by_device), found, now)


def after_commit(
    conn: psycopg.Connection[Any], datastream_ids: Iterable[int], config_dir: Path, now: dt.datetime | None = None
) -> int:
    """Judge the devices of the datastreams just committed and move their alerts; the number of alert
    transitions. Call it after the ingester's commit, on the same connection (its own transaction)."""
    ids = sorted(set(datastream_ids))
    if not ids:
        return 0
    return _judge(conn, load_rules(config_dir), ids, now or dt.datetime.now(dt.UTC))


def after_store(
    conn: psycopg.Connection[Any], devices: Iterable[str], config_dir: Path, now: dt.datetime | None = None
) -> int:
    """:func:`after_commit` by device: judge the devices whose messages were just stored (all their
    datastreams); the number of alert transitions."""
    codes = sorted(set(devices))
    if not codes:
        return 0
    return _judge(conn, load_rules(config_dir), None, now or dt.datetime.now(dt.UTC), codes)


def judge_all(conn: psycopg.Connection[Any], config_dir: Path, now: dt.datetime | None = None) -> int:
    """Judge every device (for cron: staleness turns without a reading); the number of alert transitions."""
    return _judge(conn, load_rules(config_dir), None, now or dt.datetime.now(dt.UTC))
