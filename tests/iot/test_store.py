"""The storage path shared by MQTT and HTTP: flags, late readings, duplicates, dead letters, exact
rollups, monthly partitions (pruning, the DEFAULT partition, retention; by Vietnamese month: test_partitions)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from gis_ioc.iot.store import (
    Message,
    ensure_partitions,
    maintain,
    month_start,
    partition_name,
    store_messages,
    vietnam_month,
)
from tests.iot.conftest import Sensors, now, pack

AQ, WL = "HY-AQ-T01", "HY-WL-T01"


def _store(conn: psycopg.Connection[Any], device: str, payload: bytes) -> dict[str, Any]:
    [outcome] = store_messages(conn, [Message(device, payload, "http", datetime.now(UTC))])
    return outcome.as_json("vi")


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return list(conn.execute(query, params).fetchall())


def test_flags_keep_the_reading_and_rollups_leave_out_of_range_and_skewed_out(clean: Sensors) -> None:
    t = now().replace(minute=0, second=0) - timedelta(hours=2)
    with clean.conn() as conn:
        answer = _store(
            conn,
            AQ,
            pack(
                [
                    ("pm25", 40.0, t),
                    ("pm25", 50.0, t + timedelta(minutes=5)),
                    ("pm25", 5000.0, t + timedelta(minutes=10)),  # beyond 1000 µg/m³: out_of_range
                    ("pm25", 30.0, now() + timedelta(hours=1)),  # ahead of the clock: clock_skew
                ],
                "µg/m³",
            ),
        )
        assert (answer["accepted"], answer["flagged"], answer["duplicates"], answer["dead_lettered"]) == (4, 2, 0, 0)
        flags = dict(_rows(conn, "SELECT result, flags FROM gis_ioc.iot_observations ORDER BY phenomenon_time"))
        assert flags == {40.0: [], 50.0: [], 5000.0: ["out_of_range"], 30.0: ["clock_skew"]}
        hourly = _rows(conn, "SELECT hour, n, mean, min, max FROM gis_ioc.iot_hourly ORDER BY hour")
        assert hourly == [(t, 2, 45.0, 40.0, 50.0)]  # the skewed reading fills no hour to come
        assert [r[0] for r in _rows(conn, "SELECT n FROM gis_ioc.iot_daily")] == [2]
        # the latest value is the newest reading that is not ahead of the clock
        latest = _rows(conn, "SELECT result, flags FROM gis_ioc.iot_latest")
        assert latest == [(5000.0, ["out_of_range"])]


def test_a_late_reading_is_kept_without_replacing_the_latest(clean: Sensors) -> None:
    t = now() - timedelta(minutes=30)
    with clean.conn() as conn:
        _store(conn, WL, pack([("water_level", 5.2, t)]))
        answer = _store(conn, WL, pack([("water_level", 4.9, t - timedelta(minutes=10))]))
        assert (answer["accepted"], answer["flagged"]) == (1, 1)
        assert _rows(conn, "SELECT result, phenomenon_time FROM gis_ioc.iot_latest") == [(5.2, t)]
        assert _rows(conn, "SELECT flags FROM gis_ioc.iot_observations WHERE result = 4.9") == [(["late"],)]
        day = _rows(conn, "SELECT n, min, max FROM gis_ioc.iot_daily")
        assert sum(r[0] for r in day) == 2


def test_duplicates_are_counted_not_stored(clean: Sensors) -> None:
    t = now() - timedelta(minutes=5)
    payload = pack([("pm25", 12.0, t), ("pm10", 20.0, t)])
    with clean.conn() as conn:
        assert _store(conn, AQ, payload)["accepted"] == 2
        again = _store(conn, AQ, payload)
        assert (again["accepted"], again["duplicates"]) == (0, 2)
        twice = store_messages(
            conn, [Message(AQ, pack([("pm25", 13.0, t + timedelta(seconds=1))]), "mqtt", datetime.now(UTC))] * 2
        )
        assert [(o.accepted, o.duplicates) for o in twice] == [(1, 0), (0, 1)]
        assert _rows(conn, "SELECT count(*) FROM gis_ioc.iot_observations") == [(3,)]
        assert _rows(conn, "SELECT sum(n) FROM gis_ioc.iot_hourly") == [(3,)]


def test_bad_payloads_and_records_go_to_dead_letters_with_the_reason(clean: Sensors) -> None:
    t = now() - timedelta(minutes=1)
    with clean.conn() as conn:
        whole = _store(conn, AQ, b"{not json")
        assert whole["dead_lettered"] == 1 and whole["problems"][0]["code"] == "not_json"
        mixed = _store(
            conn,
            AQ,
            json.dumps(
                [
                    {"n": "pm25", "v": 10, "t": t.timestamp()},
                    {"n": "pm3", "v": 10, "t": t.timestamp()},
                    {"n": "water_level", "v": 1, "t": t.timestamp()},
                    {"n": "pm10", "u": "m", "v": 1, "t": t.timestamp()},
                    {"n": "HY-AQ-T02:pm25", "v": 1, "t": t.timestamp()},
                ]
            ).encode(),
        )
        assert (mixed["accepted"], mixed["dead_lettered"]) == (1, 4)
        assert [p["code"] for p in mixed["problems"]] == [
            "unknown_property",
            "no_datastream",
            "bad_unit",
            "other_device",
        ]
        reasons = [r[0] for r in _rows(conn, "SELECT reason FROM gis_ioc.iot_dead_letters ORDER BY id")]
        assert reasons[0].startswith("not_json: gói tin không phải JSON hợp lệ")
        assert reasons[1].startswith("unknown_property: đại lượng 'pm3' không có (có: co, humidity")
        assert reasons[2] == (
            "no_datastream: thiết bị HY-AQ-T01 chưa đăng ký luồng dữ liệu 'water_level' (gis-ioc iot register)"
        )
        assert reasons[3] == "bad_unit: đơn vị 'm' sai cho 'pm10' (đúng: µg/m³)"
        assert reasons[4] == "other_device: tên 'HY-AQ-T02:pm25' thuộc thiết bị khác, không phải HY-AQ-T01"
        payloads = [bytes(r[0]) for r in _rows(conn, "SELECT payload FROM gis_ioc.iot_dead_letters ORDER BY id")]
        assert payloads[0] == b"{not json" and json.loads(payloads[1])["n"] == "pm3"


def test_rollups_equal_the_observations(clean: Sensors) -> None:
    start = now().replace(minute=0, second=0) - timedelta(hours=30)
    readings = [("pm25", float(10 + (i * 7) % 45), start + timedelta(minutes=5 * i)) for i in range(360)]
    with clean.conn() as conn:
        for chunk in range(0, 360, 50):  # in batches, some out of order
            batch = readings[chunk : chunk + 50]
            _store(conn, AQ, pack(list(reversed(batch)) if chunk % 100 else batch))
        hourly = _rows(
            conn,
            """SELECT h.hour, h.n, round(h.mean::numeric, 9), h.min, h.max, o.n, round(o.mean::numeric, 9), o.min, o.max
               FROM gis_ioc.iot_hourly h JOIN (
                   SELECT datastream_id,
                          date_trunc('hour', phenomenon_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
                          count(*) AS n, avg(result) AS mean, min(result) AS min, max(result) AS max
                   FROM gis_ioc.iot_observations GROUP BY 1, 2) o USING (datastream_id, hour)""",
        )
        assert len(hourly) == 30 and all(r[1:5] == r[5:9] for r in hourly)
        daily = _rows(
            conn,
            """SELECT d.n, round(d.mean::numeric, 9), o.n, round(o.mean::numeric, 9)
               FROM gis_ioc.iot_daily d JOIN (
                   SELECT datastream_id, (phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
                          count(*) AS n, avg(result) AS mean
                   FROM gis_ioc.iot_observations GROUP BY 1, 2) o USING (datastream_id, day)""",
        )
        assert sum(r[0] for r in daily) == 360 and all(r[:2] == r[2:] for r in daily)


def test_explain_shows_partition_pruning(clean: Sensors) -> None:
    this_month = vietnam_month(now())
    with clean.conn() as conn:
        _store(conn, AQ, pack([("pm25", 20.0, now() - timedelta(minutes=1))]))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT avg(result) FROM gis_ioc.iot_observations WHERE phenomenon_time >= %s "
                "AND phenomenon_time < %s + interval '1 day'",
                (month_start(this_month),) * 2,
            )
        )
        assert re.findall(r" on (iot_observations_\w+)", plan) == [partition_name(this_month)], plan


def test_a_month_without_partition_moves_out_of_the_default_one(clean: Sensors) -> None:
    month = date(2019, 3, 1)  # within ten years back: gets its own partition
    at = datetime(2019, 3, 15, 6, 0, tzinfo=UTC)
    with clean.conn() as conn:
        conn.execute(f"DROP TABLE IF EXISTS gis_ioc.{partition_name(month)}")
        ds = conn.execute(
            "SELECT id FROM gis_ioc.iot_datastreams WHERE device_code = %s AND property_id = 'pm25'", (AQ,)
        )
        row = ds.fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO gis_ioc.iot_observations (datastream_id, phenomenon_time, result) VALUES (%s, %s, 1)",
            (row[0], at),
        )
        assert _rows(conn, "SELECT count(*) FROM gis_ioc.iot_observations_default") == [(1,)]
        assert ensure_partitions(conn, [month]) == [partition_name(month)]
        assert _rows(conn, "SELECT count(*) FROM gis_ioc.iot_observations_default") == [(0,)]
        assert _rows(conn, f"SELECT count(*) FROM gis_ioc.{partition_name(month)}") == [(1,)]
        # a reading too old for a partition of its own is kept in the DEFAULT one
        old = _store(conn, AQ, pack([("pm25", 9.0, datetime(2001, 1, 1, tzinfo=UTC))]))
        assert old["accepted"] == 1
        assert _rows(conn, "SELECT result FROM gis_ioc.iot_observations_default") == [(9.0,)]


def test_retention_drops_old_partitions_and_keeps_rollups(clean: Sensors) -> None:
    old = (now() - timedelta(days=500)).replace(hour=12)
    with clean.conn() as conn:
        _store(conn, AQ, pack([("pm25", 33.0, old), ("pm25", 44.0, now() - timedelta(minutes=2))]))
        old_month = vietnam_month(old)
        assert _rows(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"gis_ioc.{partition_name(old_month)}",)) == [(True,)]
        done = maintain(conn, retain_months=12)
        assert partition_name(old_month) in done.dropped and done.rows_dropped == 1
        assert _rows(conn, "SELECT to_regclass(%s) IS NULL", (f"gis_ioc.{partition_name(old_month)}",)) == [(True,)]
        assert _rows(conn, "SELECT result FROM gis_ioc.iot_observations") == [(44.0,)]
        assert _rows(conn, "SELECT mean FROM gis_ioc.iot_daily WHERE day = %s", (old.date(),)) == [(33.0,)]
        ahead = vietnam_month(now())
        for _ in range(3):
            assert _rows(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"gis_ioc.{partition_name(ahead)}",)) == [(True,)]
            ahead = (ahead + timedelta(days=32)).replace(day=1)
