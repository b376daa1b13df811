"""Storing readings: one path for MQTT and HTTP push, partitions and retention.

:func:`store_messages` takes SenML packs of devices and, in one transaction, writes the readings
(idempotent on datastream and phenomenon time: ``ON CONFLICT DO NOTHING``), the latest value (never
replaced by an older reading, nor by one flagged ``clock_skew``), the hourly (UTC) and daily (Vietnam
calendar day) rollups of the readings actually inserted except those flagged ``out_of_range`` or
``clock_skew`` (a clock running ahead would fill days to come), and the
dead letters of what cannot be a reading, with the reason. Flags never drop a reading:

- ``out_of_range``: outside the property's physical range;
- ``clock_skew``: timed further ahead of the server's clock than ``GIS_IOC_INGEST_CLOCK_SKEW_MINUTES``;
- ``late``: older than a reading of its datastream already stored (out of order).

Observations are partitioned by Vietnamese month of phenomenon time (Asia/Ho_Chi_Minh, UTC+7: a partition
holds ``[YYYY-MM-01 00:00+07, next month 00:00+07)``, migration 0026), so a month's report, a Vietnamese day
and retention each touch whole partitions; :func:`ensure_partitions` makes the months a batch needs
(``gis_ioc.iot_ensure_partition``, which moves rows out of the DEFAULT partition), :func:`maintain` makes the
months ahead and drops those past retention (rollups are kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from gis_ioc.errors import InvalidInput
from gis_ioc.iot.model import Datastream, datastreams, reason
from gis_ioc.iot.senml import Pack, SenMLError, parse

Source = Literal["mqtt", "http"]
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
_PARTITION_MONTHS_BACK = 119  # gis_ioc.iot_ensure_partition makes ten years back …
_PARTITION_MONTHS_AHEAD = 2  # … to two months ahead of the current Vietnamese month


@dataclass(frozen=True)
class Message:
    """One SenML pack from one device (MQTT: its topic names the device; HTTP: its credentials)."""

    device_code: str
    payload: bytes
    source: Source
    received_at: datetime
    topic: str | None = None
    #: A reason code when the message was refused before parsing (a bad topic, too large).
    refused: tuple[str, dict[str, object]] | None = None


@dataclass
class Outcome:
    """What became of one message's records."""

    accepted: int = 0
    duplicates: int = 0
    flagged: int = 0
    dead_lettered: int = 0
    #: (record index or None for the whole pack, reason code, reason values)
    problems: list[tuple[int | None, str, dict[str, object]]] = field(default_factory=list)
    #: The datastreams that got new readings (to judge after the commit: :func:`gis_ioc.iot.judge.after_commit`).
    datastreams: set[int] = field(default_factory=set)

    def as_json(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "flagged": self.flagged,
            "dead_lettered": self.dead_lettered,
            "problems": [
                {"record": index, "code": code, "reason": reason(code, lang, **values)}
                for index, code, values in self.problems
            ],
        }


@dataclass
class _Row:
    message: int
    datastream: int
    time: datetime
    value: float
    received_at: datetime
    flags: list[str]


def property_of(name: str, device_code: str) -> tuple[str | None, str | None]:
    """(property, None) from a resolved SenML name, or (None, reason code). Accepted: ``pm25``,
    ``<device>:pm25``, ``<device>/pm25``, ``urn:dev:…:<device>:pm25``."""
    if ":" not in name and "/" not in name:
        return name, None
    head, _, prop = name.replace("/", ":").rpartition(":")
    owner = head.rpartition(":")[2]
    if owner != device_code:
        return None, "other_device"
    return prop, None


def _dead(message: Message, payload: bytes, code: str, values: dict[str, object]) -> tuple[Any, ...]:
    return (
        message.received_at,
        message.source,
        message.device_code or None,
        message.topic,
        payload,
        f"{code}: {reason(code, 'vi', **values)}",
    )


def _check(
    pack: Pack,
    message: Message,
    streams: dict[tuple[str, str], Datastream],
    props: set[str],
    now: datetime,
    skew: timedelta,
    index: int,
    outcome: Outcome,
    dead: list[tuple[Any, ...]],
) -> list[_Row]:
    rows: list[_Row] = []
    for rejected in pack.rejected:
        outcome.problems.append((rejected.index, rejected.code, rejected.values))
        dead.append(_dead(message, json.dumps(rejected.raw).encode(), rejected.code, rejected.values))
    for record in pack.records:
        prop, problem = property_of(record.name, message.device_code)
        values: dict[str, object] = {"name": record.name, "device": message.device_code}
        stream = None
        if problem is None and prop is not None:
            values["property"] = prop
            if prop not in props:
                problem = "unknown_property"
                values["known"] = ", ".join(sorted(props))
            else:
                stream = streams.get((message.device_code, prop))
                if stream is None:
                    problem = "no_datastream"
                elif not stream.unit_ok(record.unit):
                    problem = "bad_unit"
                    values.update(unit=record.unit, expected=stream.property.unit)
        if problem is not None or stream is None:
            code = problem or "no_datastream"
            outcome.problems.append((record.index, code, values))
            dead.append(_dead(message, json.dumps(record.raw).encode(), code, values))
            continue
        flags = []
        if not stream.in_range(record.value):
            flags.append("out_of_range")
        if record.time > now + skew:
            flags.append("clock_skew")
        rows.append(_Row(index, stream.id, record.time, record.value, message.received_at, flags))
    return rows


def vietnam_month(moment: datetime) -> date:
    """The first day of the Vietnamese month (Asia/Ho_Chi_Minh) a moment falls in."""
    return moment.astimezone(VIETNAM).date().replace(day=1)


def month_start(month: date) -> datetime:
    """The moment a Vietnamese month begins (00:00 in Vietnam on its first day): a partition's lower bound."""
    return datetime.combine(month.replace(day=1), datetime.min.time(), VIETNAM)


def months_of(times: Iterable[datetime], now: datetime) -> list[date]:
    """The first days of the Vietnamese months these times fall in that get a partition of their own (from
    the 119 months before the current Vietnamese month to the two after it)."""
    this_month = vietnam_month(now)
    low = _add_months(this_month, -_PARTITION_MONTHS_BACK)
    high = _add_months(this_month, _PARTITION_MONTHS_AHEAD)
    months = {vietnam_month(t) for t in times}
    return sorted(m for m in months if low <= m <= high)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """The partition of a Vietnamese month: ``iot_observations_y2026m01`` holds the readings of 01/2026."""
    return f"iot_observations_y{month:%Y}m{month:%m}"


def ensure_partitions(conn: psycopg.Connection[Any], months: Iterable[date]) -> list[str]:
    """Make the Vietnamese-month partitions missing among ``months`` (each in its own short transaction, before
    the batch's, so that no batch holds the partition lock); returns those made."""
    made = []
    for month in months:
        name = partition_name(month)
        row = conn.execute("SELECT to_regclass(%s) IS NULL", (f"gis_ioc.{name}",)).fetchone()
        if row and row[0]:
            with conn.transaction():
                conn.execute("SELECT gis_ioc.iot_ensure_partition(%s)", (month,))
            made.append(name)
    return made


_WRITE = """
WITH batch AS (
    SELECT * FROM unnest(%(ds)s::bigint[], %(t)s::timestamptz[], %(v)s::float8[], %(r)s::timestamptz[], %(f)s::text[])
        AS b(datastream_id, phenomenon_time, result, received_at, flags)
), ins AS (
    INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result, received_at, flags)
    SELECT datastream_id, phenomenon_time, result, received_at, string_to_array(flags, ',')::text[] FROM batch
    ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING
    RETURNING datastream_id, phenomenon_time, result, received_at, flags
), latest AS (
    INSERT INTO gis_ioc.iot_latest AS l (datastream_id, phenomenon_time, result, received_at, flags)
    SELECT DISTINCT ON (datastream_id) datastream_id, phenomenon_time, result, received_at, flags
    FROM ins WHERE NOT 'clock_skew' = ANY (flags)
    ORDER BY datastream_id, phenomenon_time DESC
    ON CONFLICT (datastream_id) DO UPDATE SET phenomenon_time = excluded.phenomenon_time, result = excluded.result,
        received_at = excluded.received_at, flags = excluded.flags
    WHERE excluded.phenomenon_time > l.phenomenon_time
    RETURNING 1
), hourly AS (
    INSERT INTO gis_ioc.iot_hourly AS h (datastream_id, hour, n, mean, min, max)
    SELECT datastream_id, date_trunc('hour', phenomenon_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           count(*), avg(result), min(result), max(result)
    FROM ins WHERE NOT flags && ARRAY['out_of_range', 'clock_skew'] GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (datastream_id, hour) DO UPDATE SET n = h.n + excluded.n,
        mean = (h.mean * h.n + excluded.mean * excluded.n) / (h.n + excluded.n),
        min = least(h.min, excluded.min), max = greatest(h.max, excluded.max)
    RETURNING 1
), daily AS (
    INSERT INTO gis_ioc.iot_daily AS d (datastream_id, day, n, mean, min, max)
    SELECT datastream_id, (phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           count(*), avg(result), min(result), max(result)
    FROM ins WHERE NOT flags && ARRAY['out_of_range', 'clock_skew'] GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (datastream_id, day) DO UPDATE SET n = d.n + excluded.n,
        mean = (d.mean * d.n + excluded.mean * excluded.n) / (d.n + excluded.n),
        min = least(d.min, excluded.min), max = greatest(d.max, excluded.max)
    RETURNING 1
)
SELECT datastream_id, phenomenon_time FROM ins
"""


def store_messages(
    conn: psycopg.Connection[Any], messages: Sequence[Message], *, skew: timedelta = timedelta(minutes=5)
) -> list[Outcome]:
    """Store the messages' readings in one transaction (the caller's, or one opened here) and return,
    for each message, what became of its records. Bad payloads and records become dead letters."""
    now = datetime.now(UTC)
    outcomes = [Outcome() for _ in messages]
    dead: list[tuple[Any, ...]] = []
    packs: list[Pack | None] = []
    for i, message in enumerate(messages):
        if message.refused is not None:
            code, values = message.refused
            outcomes[i].problems.append((None, code, values))
            dead.append(_dead(message, message.payload, code, values))
            packs.append(None)
            continue
        try:
            packs.append(parse(message.payload, now))
        except SenMLError as exc:
            outcomes[i].problems.append((None, exc.reason_code, exc.values))
            dead.append(_dead(message, message.payload, exc.reason_code, exc.values))
            packs.append(None)
    ensure_partitions(conn, months_of((r.time for p in packs if p is not None for r in p.records), now))
    with conn.transaction():
        devices = sorted({m.device_code for m, p in zip(messages, packs, strict=True) if p is not None})
        streams = {(s.device_code, s.property.id): s for s in datastreams(conn, devices)} if devices else {}
        props_row = conn.execute("SELECT array_agg(id) FROM gis_ioc.iot_properties").fetchone()
        props = set(props_row[0] or []) if props_row else set()
        rows: list[_Row] = []
        for i, (message, pack) in enumerate(zip(messages, packs, strict=True)):
            if pack is not None:
                rows.extend(_check(pack, message, streams, props, now, skew, i, outcomes[i], dead))
        _mark_late(conn, rows)
        first: dict[tuple[int, datetime], _Row] = {}
        for row in rows:
            key = (row.datastream, row.time)
            if key in first:
                outcomes[row.message].duplicates += 1
            else:
                first[key] = row
        unique = list(first.values())
        inserted: set[tuple[int, datetime]] = set()
        if unique:
            result = conn.execute(
                _WRITE,
                {
                    "ds": [r.datastream for r in unique],
                    "t": [r.time for r in unique],
                    "v": [r.value for r in unique],
                    "r": [r.received_at for r in unique],
                    "f": [",".join(r.flags) for r in unique],
                },
            ).fetchall()
            inserted = {(int(a), b) for a, b in result}
        for row in unique:
            if (row.datastream, row.time) in inserted:
                outcomes[row.message].accepted += 1
                outcomes[row.message].flagged += bool(row.flags)
                outcomes[row.message].datastreams.add(row.datastream)
            else:
                outcomes[row.message].duplicates += 1
        if dead:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO gis_ioc.iot_dead_letters (received_at, source, device_code, topic, payload, reason) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    dead,
                )
    for outcome in outcomes:
        outcome.dead_lettered = len(outcome.problems)
    return outcomes


def _mark_late(conn: psycopg.Connection[Any], rows: list[_Row]) -> None:
    """Flag ``late`` the readings older than one of their datastream already stored or earlier in the batch."""
    if not rows:
        return
    ids = sorted({r.datastream for r in rows})
    newest: dict[int, datetime] = dict(
        conn.execute(
            "SELECT datastream_id, phenomenon_time FROM gis_ioc.iot_latest WHERE datastream_id = ANY(%s)", (ids,)
        ).fetchall()
    )
    for row in rows:
        seen = newest.get(row.datastream)
        if seen is not None and row.time < seen:
            row.flags.append("late")
        elif "clock_skew" not in row.flags:
            newest[row.datastream] = row.time


# -- partitions and retention ------------------------------------------------------------------------------

_PARTITION = re.compile(r"iot_observations_y(\d{4})m(\d{2})")  # a Vietnamese month's (partition_name)


@dataclass
class Maintenance:
    made: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rows_dropped: int = 0


def partitions(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(name, bounds) of the observations' partitions, oldest first, the DEFAULT one last."""
    rows = conn.execute(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'gis_ioc.iot_observations'::regclass
           ORDER BY c.relname = 'iot_observations_default', c.relname"""
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def maintain(
    conn: psycopg.Connection[Any], retain_months: int | None = None, now: datetime | None = None
) -> Maintenance:
    """Make the partitions of this Vietnamese month and the next two; with ``retain_months``, keep the
    readings of that many Vietnamese months, the current one included (24: this month and the 23 before
    it): the partitions of older months are dropped whole, and older readings in the DEFAULT partition
    deleted (the hourly and daily rollups and the latest values stay). Also moves readings out of
    the DEFAULT partition into months that now have one."""
    if retain_months is not None and retain_months < 1:
        raise InvalidInput(
            f"--retain-months must be at least 1, not {retain_months}",
            vi=f"--retain-months phải từ 1 trở lên, không phải {retain_months}",
        )
    now = now or datetime.now(UTC)
    this_month = vietnam_month(now)
    report = Maintenance()
    ahead = [_add_months(this_month, k) for k in range(_PARTITION_MONTHS_AHEAD + 1)]
    stray = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT date_trunc('month', phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date "
            "FROM gis_ioc.iot_observations_default"
        ).fetchall()
    ]
    report.made = ensure_partitions(conn, months_of([month_start(m) for m in [*ahead, *stray]], now))
    if retain_months is not None:
        oldest_kept = _add_months(this_month, 1 - retain_months)
        for name, _bounds in partitions(conn):
            match = _PARTITION.fullmatch(name)
            if match is None or date(int(match[1]), int(match[2]), 1) >= oldest_kept:
                continue
            table = sql.Identifier("gis_ioc", name)
            with conn.transaction():
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
                conn.execute(sql.SQL("ALTER TABLE gis_ioc.iot_observations DETACH PARTITION {}").format(table))
                conn.execute(sql.SQL("DROP TABLE {}").format(table))
            report.dropped.append(name)
            report.rows_dropped += int(count[0]) if count else 0
        with conn.transaction():
            gone = conn.execute(
                "DELETE FROM gis_ioc.iot_observations_default WHERE phenomenon_time < %s", (month_start(oldest_kept),)
            ).rowcount
            report.rows_dropped += max(gone, 0)
    return report
