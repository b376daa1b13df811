"""Observations partitioned by Vietnamese month (migration 0026): where a reading lands on either side of
a month's first seven hours, pruning to one partition for a Vietnamese month, retention in whole Vietnamese
months, the server's role making and filling partitions, and the re-partitioning of 0023's UTC months."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gis_ioc.database import migrations
from gis_ioc.database.connection import connect
from gis_ioc.errors import InvalidInput
from gis_ioc.iot.store import (
    Message,
    maintain,
    month_start,
    months_of,
    partition_name,
    store_messages,
    vietnam_month,
)
from gis_ioc.settings import Settings
from tests.conftest import free_port
from tests.iot.conftest import Sensors, now, pack

AQ = "HY-AQ-T01"
JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def _store(conn: psycopg.Connection[Any], readings: list[tuple[float, datetime]]) -> None:
    payload = pack([("pm25", value, at) for value, at in readings], "µg/m³")
    [outcome] = store_messages(conn, [Message(AQ, payload, "http", datetime.now(UTC))])
    assert outcome.accepted == len(readings), outcome.as_json("en")


def _where(conn: psycopg.Connection[Any]) -> dict[float, str]:
    """result → the partition its row is in."""
    rows = conn.execute(
        "SELECT o.result, c.relname FROM gis_ioc.iot_observations o JOIN pg_class c ON c.oid = o.tableoid"
    ).fetchall()
    return {float(r): str(p) for r, p in rows}


def _scanned(conn: psycopg.Connection[Any], lo: datetime, hi: datetime) -> list[str]:
    plan = conn.execute(
        "EXPLAIN SELECT avg(result) FROM gis_ioc.iot_observations WHERE phenomenon_time >= %s AND phenomenon_time < %s",
        (lo, hi),
    ).fetchall()
    return re.findall(r" on (iot_observations_\w+)", "\n".join(r[0] for r in plan))


def test_a_reading_lands_in_the_partition_of_its_vietnamese_month(clean: Sensors) -> None:
    last_of_january = datetime(2026, 1, 31, 16, 59, 59, tzinfo=UTC)  # 31/01/2026 23:59:59 in Vietnam
    first_of_february = datetime(2026, 1, 31, 17, 30, tzinfo=UTC)  # 01/02/2026 00:30 in Vietnam
    assert months_of([last_of_january, first_of_february], now()) == [JAN, FEB]
    assert month_start(FEB) == datetime(2026, 1, 31, 17, 0, tzinfo=UTC)
    with clean.conn() as conn:
        _store(conn, [(1.0, last_of_january), (2.0, first_of_february)])
        assert _where(conn) == {1.0: "iot_observations_y2026m01", 2.0: "iot_observations_y2026m02"}
        conn.execute("SET TIME ZONE 'Asia/Ho_Chi_Minh'")
        bounds = conn.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
            "WHERE oid = 'gis_ioc.iot_observations_y2026m02'::regclass"
        ).fetchone()
        assert bounds == ("FOR VALUES FROM ('2026-02-01 00:00:00+07') TO ('2026-03-01 00:00:00+07')",)


def test_a_vietnamese_month_scans_one_partition_and_a_utc_month_two(clean: Sensors) -> None:
    with clean.conn() as conn:
        _store(conn, [(1.0, datetime(2026, 2, 10, tzinfo=UTC)), (2.0, datetime(2026, 3, 10, tzinfo=UTC))])
        assert _scanned(conn, month_start(FEB), month_start(MAR)) == [partition_name(FEB)]
        utc_february = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
        assert _scanned(conn, *utc_february) == [partition_name(FEB), partition_name(MAR)]


def test_retention_drops_whole_vietnamese_months(clean: Sensors) -> None:
    at = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)  # 01/12/2026 00:30 in Vietnam: December is the current month
    assert vietnam_month(at) == date(2026, 12, 1)
    readings = [
        (1.0, datetime(2026, 10, 31, 16, 59, 59, tzinfo=UTC)),  # 31/10/2026 23:59:59: October, dropped
        (2.0, datetime(2026, 10, 31, 17, 0, tzinfo=UTC)),  # 01/11/2026 00:00: November, kept
        (3.0, datetime(2026, 11, 30, 16, 0, tzinfo=UTC)),  # 30/11/2026 23:00: November, kept
    ]
    with clean.conn() as conn:
        _store(conn, readings)
        conn.execute(  # a reading too old for a partition of its own, in the DEFAULT one
            "INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result) "
            "SELECT datastream_id, '2001-01-01T00:00:00Z', 4.0 FROM gis_ioc.iot_latest"
        )
        done = maintain(conn, retain_months=2, now=at)  # December and November
        assert partition_name(date(2026, 10, 1)) in done.dropped
        assert partition_name(date(2026, 11, 1)) not in done.dropped
        assert done.rows_dropped == 2
        assert _where(conn) == {2.0: "iot_observations_y2026m11", 3.0: "iot_observations_y2026m11"}
        days = conn.execute("SELECT day, n FROM gis_ioc.iot_daily ORDER BY day").fetchall()
        assert days == [(date(2026, 10, 31), 1), (date(2026, 11, 1), 1), (date(2026, 11, 30), 1)]  # rollups kept
        made = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname ~ '^iot_observations_y'")}
        assert {
            partition_name(date(2026, 12, 1)),
            partition_name(date(2027, 1, 1)),
            "iot_observations_y2027m02",
        } <= made


def test_retain_months_below_one_is_refused_before_anything_is_made(clean: Sensors) -> None:
    with clean.conn() as conn:
        conn.execute(f"DROP TABLE IF EXISTS gis_ioc.{partition_name(vietnam_month(now()) + timedelta(days=62))}")
        before = conn.execute("SELECT count(*) FROM pg_inherits").fetchone()
        with pytest.raises(InvalidInput, match="--retain-months must be at least 1, not 0") as refused:
            maintain(conn, retain_months=0)
        assert refused.value.vi == "--retain-months phải từ 1 trở lên, không phải 0"
        assert conn.execute("SELECT count(*) FROM pg_inherits").fetchone() == before


def test_the_servers_role_makes_a_missing_month_and_writes_into_it(clean: Sensors) -> None:
    at = datetime(2026, 3, 31, 17, 15, tzinfo=UTC)  # 01/04/2026 00:15 in Vietnam
    april = partition_name(date(2026, 4, 1))
    with clean.conn() as owner:
        owner.execute(f"DROP TABLE IF EXISTS gis_ioc.{april}")
    with connect(clean.settings, autocommit=True, server=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("gis_ioc_server",)
        _store(conn, [(7.0, at)])
        assert _where(conn) == {7.0: april}


# -- migration 0026 on a database laid out by 0023 -------------------------------------------------------


@pytest.fixture
def scratch(sensors: Sensors) -> Iterator[Settings]:
    """An empty database in the sensor tests' cluster; dropped afterwards."""
    name = f"repartition_{free_port()}"
    with connect(sensors.settings, autocommit=True, dbname="postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield sensors.settings.model_copy(update={"db_name": name})
    with connect(sensors.settings, autocommit=True, dbname="postgres") as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _totals(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT count(*), sum(result::numeric), sum(datastream_id), sum(extract(epoch FROM phenomenon_time)) "
        "FROM gis_ioc.iot_observations"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_migration_0026_repartitions_utc_months_without_loss(scratch: Settings) -> None:
    [vietnam] = [m for m in migrations.available() if m.version == "0026"]
    earlier = [m for m in migrations.available() if m.version < "0026"]
    straddling = {
        1.5: datetime(2025, 12, 31, 18, 0, tzinfo=UTC),  # 01/01/2026 01:00: no UTC partition (DEFAULT) → January
        2.5: datetime(2026, 1, 31, 16, 59, 59, tzinfo=UTC),  # 31/01/2026 23:59:59: UTC January → January
        3.5: datetime(2026, 1, 31, 17, 30, tzinfo=UTC),  # 01/02/2026 00:30: UTC January → February
        4.5: datetime(2026, 2, 28, 18, 0, tzinfo=UTC),  # 01/03/2026 01:00: UTC February → March, made for it
        5.5: datetime(2001, 1, 1, tzinfo=UTC),  # too old for a partition: stays in DEFAULT
    }
    with connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA gis_ioc")  # as migrations.upgrade begins
        for migration in earlier:
            with conn.transaction():
                conn.execute(migration.sql.encode())
        conn.execute("SELECT gis_ioc.iot_ensure_partition(m) FROM unnest(%s::date[]) AS m", ([JAN, FEB],))
        utc = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname ~ '^iot_observations_[0-9]{6}$'")}
        assert {"iot_observations_202601", "iot_observations_202602"} <= utc
        conn.execute(  # every 10 minutes through January and February (UTC), five datastreams
            "INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result) "
            "SELECT ds, t, round((ds * 10 + extract(hour FROM t))::numeric / 3, 2)::float8 "
            "FROM generate_series(1, 5) AS ds, "
            "generate_series('2026-01-01T00:00:00Z'::timestamptz, '2026-02-28T23:50:00Z', interval '10 minutes') AS t"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result) VALUES (9, %s, %s)",
                [(at, value) for value, at in straddling.items()],
            )
        before = _totals(conn)
        per_month = dict(
            conn.execute(
                "SELECT date_trunc('month', phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, count(*) "
                "FROM gis_ioc.iot_observations GROUP BY 1"
            ).fetchall()
        )
        utc_january = conn.execute("SELECT count(*) FROM gis_ioc.iot_observations_202601").fetchone()
        assert utc_january is not None and per_month[JAN] != utc_january[0]  # the months differ by 7 hours

        with conn.transaction():
            conn.execute(vietnam.sql.encode())

        assert _totals(conn) == before
        left = conn.execute("SELECT relname FROM pg_class WHERE relname ~ '^iot_observations_[0-9]{6}'").fetchall()
        assert left == []
        # every row in the partition of its Vietnamese month (or DEFAULT, outside the function's range)
        misplaced = conn.execute(
            """SELECT count(*) FROM gis_ioc.iot_observations o JOIN pg_class c ON c.oid = o.tableoid
                WHERE c.relname <> 'iot_observations_' || to_char(phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh',
                                                                 '"y"YYYY"m"MM')
                  AND NOT (c.relname = 'iot_observations_default' AND phenomenon_time < '2010-01-01')"""
        ).fetchone()
        assert misplaced == (0,)
        where = dict(
            conn.execute(
                "SELECT o.result, c.relname FROM gis_ioc.iot_observations o JOIN pg_class c ON c.oid = o.tableoid "
                "WHERE o.datastream_id = 9"
            ).fetchall()
        )
        assert where == {
            1.5: "iot_observations_y2026m01",
            2.5: "iot_observations_y2026m01",
            3.5: "iot_observations_y2026m02",
            4.5: "iot_observations_y2026m03",
            5.5: "iot_observations_default",
        }
        for month, count in per_month.items():
            if month >= JAN:
                name = partition_name(month)
                assert conn.execute(f"SELECT count(*) FROM gis_ioc.{name}").fetchone() == (count,), name
        conn.execute("SET TIME ZONE 'UTC'")
        bounds = dict(
            conn.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'gis_ioc.iot_observations'::regclass"
            ).fetchall()
        )
        assert bounds["iot_observations_y2026m01"] == (
            "FOR VALUES FROM ('2025-12-31 17:00:00+00') TO ('2026-01-31 17:00:00+00')"
        )
        this_month = vietnam_month(datetime.now(UTC))
        assert partition_name(this_month) in bounds  # this Vietnamese month and the next two, as 0023 made them
        # the renamed partitions keep their primary key, under their new name
        keys = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'gis_ioc.iot_observations_y2026m01'::regclass "
            "AND contype = 'p'"
        ).fetchall()
        assert keys == [("iot_observations_y2026m01_pkey",)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result) VALUES (9, %s, 0)",
                (straddling[3.5],),
            )
        # a Vietnamese month's query reads one partition
        assert _scanned(conn, month_start(FEB), month_start(MAR)) == [partition_name(FEB)]
        assert vietnam_month(straddling[3.5]) == FEB and month_start(FEB) - straddling[2.5] == timedelta(seconds=1)
