"""A year of 5-minute PM2.5 readings from 300 stations (issue 14: "a commune's daily means for the year
under 300 ms").

On a throwaway cluster with the demo data, registers a PM2.5 datastream (every 300 s) for each of N
air-quality devices of the ``iot_devices`` layer (the demo's own, then approved demo devices added over
the communes), fills ``--days`` days of readings from 1 January 2025 (Vietnam time) straight into the
Vietnamese-month partitions of ``gis_ioc.iot_observations`` (made by ``gis_ioc.iot_ensure_partition``, one
server-side ``generate_series`` INSERT a month), builds ``iot_hourly``/``iot_daily`` from them in SQL with
the ingester's expressions, and checks them: one datastream's rollups against a recomputation from its
readings, and one day of the same readings stored through the ingester's path (``store_messages``, in
batches) against the set-based rollups. Then times, warm, for the commune with the most stations:

- the scenario engine's ``sensor_statistics`` over the year (``pm25_days_over_limit``: the commune's daily
  means against the limit of each day; ``pm25_mean``), the product's path;
- the commune's 365 daily means from the rollups (the same SQL shape as ``sensor_statistics``);
- the reference: the same daily means from the readings (``iot_observations``, partition pruning);

and prints the plan of a one-month query on the readings (pruned to the month's one partition), the row counts, the fill
time and the table sizes.

    .venv/bin/python bench/iot_year.py [--stations 300] [--days 365] [--repeat 20] [--keep]

Prints figures and never fails on a time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import remove_bench_database, start_bench_database

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.iot import model, senml
from gis_ioc.iot.store import Message, ensure_partitions, month_start, partition_name, store_messages, vietnam_month
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.aggregate import sensor_statistics

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR = 2025
INTERVAL_S = 300


def _vn(value: float, digits: int = 0) -> str:
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _size(n: int) -> str:
    return f"{_vn(n / 2**20, 1)} MB"


def _next(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def _months(start: datetime, end: datetime) -> list[date]:
    """First days of the Vietnamese months (one partition each) that [start, end) touches."""
    month = vietnam_month(start)
    out = []
    while month_start(month) < end:
        out.append(month)
        month = _next(month)
    return out


def stations(conn: psycopg.Connection[Any], count: int) -> list[str]:
    """The codes of ``count`` approved air-quality devices: the layer's own first, then demo devices added
    (approved, in the demo's load) at a point inside each commune in turn."""
    codes = [
        r[0]
        for r in conn.execute(
            "SELECT device_code FROM layers.iot_devices WHERE kind = 'air_quality' AND approval = 'approved' "
            "ORDER BY device_code LIMIT %s",
            (count,),
        )
    ]
    missing = count - len(codes)
    if missing > 0:
        conn.execute(
            """INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, installed_date, operator,
                                               geom, approval, is_demo, load_id)
               SELECT 'BENCH-AQ-' || lpad(i::text, 3, '0'), c.code, 'air_quality', 'online', DATE '2024-12-01',
                      'Bench', ST_PointOnSurface(c.geom), 'approved', true,
                      (SELECT load_id FROM layers.iot_devices WHERE is_demo LIMIT 1)
                 FROM generate_series(0, %(n)s - 1) AS i
                 JOIN (SELECT code, geom, row_number() OVER (ORDER BY code) - 1 AS k
                         FROM layers.communes WHERE valid_to IS NULL) c
                   ON c.k = i %% (SELECT count(*) FROM layers.communes WHERE valid_to IS NULL)""",
            {"n": missing},
        )
        codes += [f"BENCH-AQ-{i:03d}" for i in range(missing)]
    print(f"Trạm: {count - max(missing, 0)} thiết bị quan trắc không khí có sẵn, thêm {max(missing, 0)}", flush=True)
    return codes


def register(conn: psycopg.Connection[Any], codes: list[str]) -> list[int]:
    """A 5-minute PM2.5 datastream per station (the demo's daily ones, with their rows, removed first)."""
    old = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM gis_ioc.iot_datastreams WHERE property_id = 'pm25' AND device_code = ANY(%s)", (codes,)
        )
    ]
    for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE datastream_id = ANY(%s)").format(sql.Identifier("gis_ioc", table)), (old,)
        )
    conn.execute("DELETE FROM gis_ioc.iot_datastreams WHERE id = ANY(%s)", (old,))
    return [model.register(conn, code, "pm25", INTERVAL_S).id for code in codes]


# Diurnal PM2.5 (peaks at 7 h and 19 h Vietnam time), higher in winter, a level per station, noise.
_FILL = """
INSERT INTO {part} (datastream_id, phenomenon_time, result)
SELECT ds.id, t,
       round(greatest(0, 28 + (ds.k %% 9) * 2.5
             + 14 * cos(2 * pi() * (extract(doy FROM t AT TIME ZONE 'Asia/Ho_Chi_Minh') - 10) / 365)
             + 9 * cos(4 * pi() * (extract(hour FROM t AT TIME ZONE 'Asia/Ho_Chi_Minh') - 7) / 24)
             + 12 * random() - 6)::numeric, 1)::float8
  FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS ds(id, k),
       LATERAL generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '5 minutes',
                               interval '5 minutes') AS t
"""

# The ingester's rollups (gis_ioc/iot/store.py _WRITE), all at once.
_HOURLY = """
INSERT INTO gis_ioc.iot_hourly (datastream_id, hour, n, mean, min, max)
SELECT datastream_id, date_trunc('hour', phenomenon_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       count(*), avg(result), min(result), max(result)
  FROM {part} WHERE datastream_id = ANY(%(ids)s) AND NOT 'out_of_range' = ANY (flags) GROUP BY 1, 2
"""
_DAILY = """
INSERT INTO gis_ioc.iot_daily (datastream_id, day, n, mean, min, max)
SELECT datastream_id, (phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
       count(*), avg(result), min(result), max(result)
  FROM gis_ioc.iot_observations WHERE datastream_id = ANY(%(ids)s) AND NOT 'out_of_range' = ANY (flags) GROUP BY 1, 2
"""
_LATEST = """
INSERT INTO gis_ioc.iot_latest (datastream_id, phenomenon_time, result, received_at, flags)
SELECT DISTINCT ON (datastream_id) datastream_id, phenomenon_time, result, received_at, flags
  FROM gis_ioc.iot_observations WHERE datastream_id = ANY(%(ids)s) AND NOT 'clock_skew' = ANY (flags)
 ORDER BY datastream_id, phenomenon_time DESC
"""


def fill(conn: psycopg.Connection[Any], ids: list[int], start: datetime, end: datetime) -> dict[str, float]:
    """Readings, partitions, rollups and latest values; seconds per step."""
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    months = _months(start, end)
    ensure_partitions(conn, months)
    seconds["partitions"] = time.perf_counter() - began
    conn.execute("SET synchronous_commit = off")
    began = time.perf_counter()
    for month in months:
        lo = max(start, month_start(month))
        hi = min(end, month_start(_next(month)))
        part = sql.Identifier("gis_ioc", partition_name(month))
        t0 = time.perf_counter()
        n = conn.execute(sql.SQL(_FILL).format(part=part), {"ids": ids, "lo": lo, "hi": hi}).rowcount
        print(f"  {month:%m/%Y}: {_vn(n)} số đo trong {_vn(time.perf_counter() - t0, 1)} s", flush=True)
    seconds["observations"] = time.perf_counter() - began
    began = time.perf_counter()
    for month in months:
        conn.execute(sql.SQL(_HOURLY).format(part=sql.Identifier("gis_ioc", partition_name(month))), {"ids": ids})
    seconds["iot_hourly"] = time.perf_counter() - began
    began = time.perf_counter()
    conn.execute(_DAILY, {"ids": ids})
    seconds["iot_daily"] = time.perf_counter() - began
    began = time.perf_counter()
    conn.execute(_LATEST, {"ids": ids})
    seconds["iot_latest"] = time.perf_counter() - began
    began = time.perf_counter()
    for table in ("iot_observations", "iot_hourly", "iot_daily", "iot_latest"):
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("gis_ioc", table)))
    seconds["ANALYZE"] = time.perf_counter() - began
    conn.execute("RESET synchronous_commit")
    return seconds


_RECOMPUTE = """
WITH h AS (SELECT date_trunc('hour', phenomenon_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS k,
                  count(*) AS n, avg(result) AS mean, min(result) AS min, max(result) AS max
             FROM gis_ioc.iot_observations WHERE datastream_id = %(ds)s AND NOT 'out_of_range' = ANY (flags)
            GROUP BY 1),
     d AS (SELECT (phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS k,
                  count(*) AS n, avg(result) AS mean, min(result) AS min, max(result) AS max
             FROM gis_ioc.iot_observations WHERE datastream_id = %(ds)s AND NOT 'out_of_range' = ANY (flags)
            GROUP BY 1)
SELECT (SELECT count(*) FROM h FULL JOIN (SELECT * FROM gis_ioc.iot_hourly WHERE datastream_id = %(ds)s) r
          ON r.hour = h.k
         WHERE r.n IS DISTINCT FROM h.n OR abs(r.mean - h.mean) > 1e-9 OR r.min IS DISTINCT FROM h.min
            OR r.max IS DISTINCT FROM h.max),
       (SELECT count(*) FROM d FULL JOIN (SELECT * FROM gis_ioc.iot_daily WHERE datastream_id = %(ds)s) r
          ON r.day = d.k
         WHERE r.n IS DISTINCT FROM d.n OR abs(r.mean - d.mean) > 1e-9 OR r.min IS DISTINCT FROM d.min
            OR r.max IS DISTINCT FROM d.max),
       (SELECT count(*) FROM h), (SELECT count(*) FROM d)
"""


def check(conn: psycopg.Connection[Any], code: str, ds: int, day: date) -> str:
    """One datastream's rollups against a recomputation; one day of its readings through the ingester."""
    row = conn.execute(_RECOMPUTE, {"ds": ds}).fetchone()
    assert row is not None
    bad_h, bad_d, hours, days = (int(v) for v in row)
    lines = [f"datastream {ds}: {bad_h}/{_vn(hours)} giờ và {bad_d}/{_vn(days)} ngày khác phép tính lại từ số đo"]
    lo = datetime.combine(day, datetime.min.time(), VIETNAM)
    readings = conn.execute(
        "SELECT phenomenon_time, result FROM gis_ioc.iot_observations WHERE datastream_id = %s "
        "AND phenomenon_time >= %s AND phenomenon_time < %s ORDER BY phenomenon_time DESC",
        (ds, lo, lo + timedelta(days=1)),
    ).fetchall()
    pm10 = model.register(conn, code, "pm10", INTERVAL_S).id  # same readings, another property
    for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE datastream_id = %s").format(sql.Identifier("gis_ioc", table)), (pm10,)
        )
    now = datetime.now(UTC)
    for i in range(0, len(readings), 25):  # newest first, out of order: the rollups merge batch by batch
        batch = [("pm10", float(v), t) for t, v in readings[i : i + 25]]
        store_messages(conn, [Message(code, senml.dumps(code, batch), "http", now)])
    row = conn.execute(
        """SELECT (SELECT count(*) FROM (SELECT * FROM gis_ioc.iot_hourly WHERE datastream_id = %(a)s
                                           AND hour >= %(lo)s AND hour < %(hi)s) a
                     FULL JOIN (SELECT * FROM gis_ioc.iot_hourly WHERE datastream_id = %(b)s) b USING (hour)
                    WHERE a.n IS DISTINCT FROM b.n OR abs(a.mean - b.mean) > 1e-9
                       OR a.min IS DISTINCT FROM b.min OR a.max IS DISTINCT FROM b.max),
                  (SELECT count(*) FROM (SELECT * FROM gis_ioc.iot_daily WHERE datastream_id = %(a)s
                                           AND day = %(day)s) a
                     FULL JOIN (SELECT * FROM gis_ioc.iot_daily WHERE datastream_id = %(b)s) b USING (day)
                    WHERE a.n IS DISTINCT FROM b.n OR abs(a.mean - b.mean) > 1e-9
                       OR a.min IS DISTINCT FROM b.min OR a.max IS DISTINCT FROM b.max),
                  (SELECT count(*) FROM gis_ioc.iot_observations WHERE datastream_id = %(b)s)""",
        {"a": ds, "b": pm10, "lo": lo, "hi": lo + timedelta(days=1), "day": day},
    ).fetchone()
    assert row is not None
    lines.append(
        f"ngày {day:%d/%m/%Y} ({_vn(int(row[2]))} số đo) lưu lại qua store_messages (lô 25, ngược thời gian): "
        f"{int(row[0])} giờ và {int(row[1])} ngày khác bản tổng hợp bằng SQL"
    )
    for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE datastream_id = %s").format(sql.Identifier("gis_ioc", table)), (pm10,)
        )
    conn.execute("DELETE FROM gis_ioc.iot_datastreams WHERE id = %s", (pm10,))
    return "\n".join(lines)


_HEAD = """WITH s AS (SELECT ST_GeomFromEWKB(decode(%(g)s, 'hex')) AS g),
     dev AS (SELECT t.device_code, t.commune_code FROM layers.iot_devices t, s
              WHERE t.approval = 'approved' AND ST_Intersects(t.geom, s.g)),
     ds AS (SELECT d.id, dev.commune_code FROM gis_ioc.iot_datastreams d JOIN dev USING (device_code)
             WHERE d.property_id = 'pm25')"""
# The commune's daily means from the daily rollups: sensor_statistics' shape (its ``daily`` and ``per_day``).
_FROM_ROLLUPS = (
    _HEAD
    + """, daily AS (SELECT r.day, r.n, r.mean FROM gis_ioc.iot_daily r JOIN ds ON r.datastream_id = ds.id
                   WHERE r.day >= %(first)s AND r.day < %(stop)s)
SELECT day, sum(mean * n) / sum(n), sum(n) FROM daily GROUP BY day ORDER BY day"""
)
# The reference: the same from the readings, the period in phenomenon time (partition pruning).
_FROM_READINGS = (
    _HEAD
    + """
SELECT (o.phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day, avg(o.result), count(*)
  FROM gis_ioc.iot_observations o JOIN ds ON o.datastream_id = ds.id
 WHERE o.phenomenon_time >= %(start)s AND o.phenomenon_time < %(end)s AND NOT 'out_of_range' = ANY (o.flags)
 GROUP BY 1 ORDER BY 1"""
)


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    for _ in range(3):
        result = run()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - began) * 1000)
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=300, help="air-quality stations (default 300)")
    parser.add_argument("--days", type=int, default=365, help="days of readings from 01/01/2025 (default 365)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs of each query (default 20)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running (its port and folder printed)")
    args = parser.parse_args()
    if args.stations < 1 or not 1 <= args.days <= 366:
        parser.error("--stations must be at least 1 and --days from 1 to 366")

    settings, cluster, catalog = start_bench_database()
    try:
        with connect(settings, autocommit=True) as conn:
            began = time.perf_counter()
            generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27)))
            print(f"Dữ liệu mẫu: {_vn(time.perf_counter() - began, 1)} s", flush=True)
            codes = stations(conn, args.stations)
            ids = register(conn, codes)
            start = datetime(YEAR, 1, 1, tzinfo=VIETNAM)
            end = start + timedelta(days=args.days)
            print(
                f"{len(ids)} trạm × {args.days} ngày × {86400 // INTERVAL_S} số đo/ngày "
                f"= {_vn(len(ids) * args.days * 86400 // INTERVAL_S)} số đo, từ {start:%d/%m/%Y}",
                flush=True,
            )
            began = time.perf_counter()
            steps = fill(conn, ids, start, end)
            total_fill = time.perf_counter() - began
            print()
            print("| bước nạp | giây |")
            print("|---|---|")
            for step, s in steps.items():
                print(f"| {step} | {_vn(s, 1)} |")
            print(f"| tổng | {_vn(total_fill, 1)} |")

            print()
            print(check(conn, codes[0], ids[0], (start + timedelta(days=1)).date()))

            row = conn.execute(
                "SELECT t.commune_code, count(*) FROM layers.iot_devices t JOIN gis_ioc.iot_datastreams d "
                "USING (device_code) WHERE d.id = ANY(%s) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
                (ids,),
            ).fetchone()
            assert row is not None
            commune, n_stations = str(row[0]), int(row[1])
            selection = selectors.communes(conn, [commune])
            period = str(YEAR)
            days_over = catalog.indicators.get("pm25_days_over_limit")
            mean = catalog.indicators.get("pm25_mean")
            p = {
                "g": selection.geometry,
                "first": start.date(),
                "stop": date(YEAR + 1, 1, 1),
                "start": start,
                "end": datetime(YEAR + 1, 1, 1, tzinfo=VIETNAM),
            }
            cases: list[tuple[str, Callable[[], Any]]] = [
                (
                    "sensor_statistics pm25_days_over_limit (sản phẩm, iot_daily)",
                    lambda: sensor_statistics(conn, days_over, selection, period),
                ),
                (
                    "sensor_statistics pm25_mean (sản phẩm, iot_daily)",
                    lambda: sensor_statistics(conn, mean, selection, period),
                ),
                ("trung bình ngày cả năm từ iot_daily", lambda: conn.execute(_FROM_ROLLUPS, p).fetchall()),
                ("tham chiếu: cùng kết quả từ iot_observations", lambda: conn.execute(_FROM_READINGS, p).fetchall()),
            ]
            print()
            print(f"Xã {commune} ({n_stations} trạm), năm {YEAR}, {args.repeat} lần đo mỗi truy vấn (đã làm nóng)")
            print()
            print("| truy vấn | p50 ms | p95 ms | mục tiêu |")
            print("|---|---|---|---|")
            results = []
            for name, run in cases:
                p50, p95, result = timed(run, args.repeat)
                results.append(result)
                print(f"| {name} | {_vn(p50, 1)} | {_vn(p95, 1)} | {'< 300' if 'tham chiếu' not in name else '–'} |")
            rollup, raw = results[2], results[3]
            worst = max((abs(float(a[1]) - float(b[1])) for a, b in zip(rollup, raw, strict=True)), default=0.0)
            same_n = all(int(a[2]) == int(b[2]) for a, b in zip(rollup, raw, strict=True))
            print()
            print(
                f"{len(rollup)} ngày từ rollup, {len(raw)} ngày từ số đo; "
                f"số đo mỗi ngày {'khớp' if same_n else 'KHÁC'}, "
                f"chênh lệch trung bình lớn nhất {worst:.2e} µg/m³; sensor_statistics: "
                f"{_vn(results[0][commune][0])} ngày vượt, trung bình năm {_vn(results[1][commune][0], 1)} µg/m³"
            )

            month_lo = datetime(YEAR, 2, 1, tzinfo=VIETNAM)
            plan = conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + _FROM_READINGS,
                {**p, "start": month_lo, "end": datetime(YEAR, 3, 1, tzinfo=VIETNAM)},
            ).fetchall()
            print()
            print("EXPLAIN trung bình ngày của xã cho tháng 02/2025 từ iot_observations:")
            for (line,) in plan:
                print(f"    {line[:160]}{' …' if len(line) > 160 else ''}")  # not the commune's geometry
            read = sorted({m for (line,) in plan for m in re.findall(r" on (iot_observations_\w+)", line)})
            print(f"Phân vùng được đọc: {len(read)} ({', '.join(read)})")

            print()
            print("| bảng | số dòng | dung lượng (cả chỉ mục) |")
            print("|---|---|---|")
            parts = conn.execute(
                "SELECT count(*), sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'gis_ioc.iot_observations'::regclass"
            ).fetchone()
            assert parts is not None
            for table in ("iot_observations", "iot_hourly", "iot_daily", "iot_latest"):
                ident = sql.Identifier("gis_ioc", table)
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
                size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f"gis_ioc.{table}",)).fetchone()
                assert count is not None and size is not None
                bytes_ = int(parts[1]) if table == "iot_observations" else int(size[0])
                label = f"{table} ({int(parts[0])} phân vùng)" if table == "iot_observations" else table
                print(f"| {label} | {_vn(int(count[0]))} | {_size(bytes_)} |")
    finally:
        if args.keep:
            print(f"\nGiữ cụm: cổng {settings.db_port}, thư mục {cluster.home}")
        else:
            remove_bench_database(cluster)


if __name__ == "__main__":
    main()
