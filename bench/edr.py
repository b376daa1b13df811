"""What the OGC API EDR queries on ``iot_devices`` cost (gis_ioc.publish.edr), side by side with the floor: the
same readings selected by plain SQL and fetched into Python.

On a throwaway cluster with the demo data, places ``--stations`` approved air-quality stations of the bench's own
around a point of a commune (the first on the point, the others 1,5 km, 3 km, 4,5 km … from it on a spiral,
each in the commune it falls in), registers a 5-minute PM2.5 and a 5-minute PM10 datastream for each and fills
``--days`` days of readings up to now with bench/iot_year.py's ``fill`` (one server-side ``generate_series``
INSERT per Vietnamese-month partition, then the rollups, the latest values and ANALYZE). Then, warm, in one
process, ``--repeat`` times each, times the EDR requests through the real application (``create_app``,
FastAPI's TestClient, a leader's API key, from inside the government network), each with
``parameter-name=pm25`` and an explicit ``datetime``:

- ``position`` at the first station, the last 30 days;
- ``radius`` 5 km around it, the last 30 days;
- ``area``: the province (the union of the current communes, simplified to about 500 m and 6 decimals so that
  the URL stays under 8 KB), the last 30 days;
- ``area``: the province, the whole filled range;
- ``locations/{first station}``, the last 30 days;

and the reference for each: the same readings (the same stations by the same spatial predicate, e.g.
``ST_DWithin`` on geography for the radius; the same time bounds, both included; readings flagged
``out_of_range`` left out, as EDR serves them as null) selected by the owner with psycopg from
``gis_ioc.iot_observations`` and fetched into Python. The demo's stations (one reading a day) are counted
wherever they fall, by both sides alike.

Checks that each EDR answer has as many stations and non-null PM2.5 values as the SQL fetched (exits with an
error after the table when not). An EDR answer holds at most ``gis_ioc.publish.edr.MAX_VALUES`` readings
(50.000); a larger one is refused with a 400, which is shown as such (and timed: what the refusal costs;
pygeoapi's log of it, a traceback on stdout, is silenced); ``--max-values`` changes the limit in this process
only (``--days 365 --max-values 600000`` to time the province's year).

    .venv/bin/python bench/edr.py [--stations 5] [--days 31] [--repeat 30] [--max-values 50000]

Prints figures and never fails on a time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import bench_database
from iot_year import INTERVAL_S, fill, timed

from gis_ioc.app import create_app
from gis_ioc.auth import accounts, audit
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.iot import model
from gis_ioc.publish import edr
from gis_ioc.settings import Settings

BASE = "/ogc/collections/iot_devices"
INSIDE = ("127.0.0.1", 50000)  # the client's address: the government network
PREFIX = "BENCH-EDR-"
SPACING_M = 1500.0  # station i is i × 1,5 km from the first
GOLDEN_DEG = 137.5  # station i's bearing: i × 137,5°
RADIUS_KM = 5.0
MONTH = timedelta(days=30)
SIMPLIFY_DEG = 0.005  # the province outline, simplified (about 500 m): the URL stays under 8 KB


@dataclass(frozen=True)
class Case:
    """One EDR request and its SQL reference."""

    label: str
    path: str
    params: dict[str, str]
    spatial: sql.Composable  # on layers.iot_devices t: which stations
    values: dict[str, Any]  # the spatial predicate's and the window's values


_SPIRAL = """
SELECT c.code, ST_X(q.g), ST_Y(q.g)
  FROM generate_series(0, %(n)s - 1) AS i,
       LATERAL (SELECT ST_Project(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, i * %(d)s,
                                  radians(i * %(b)s - 360 * floor(i * %(b)s / 360)))::geometry AS g) q
  LEFT JOIN LATERAL (SELECT code FROM layers.communes c WHERE c.valid_to IS NULL AND ST_Intersects(c.geom, q.g)
                      ORDER BY code LIMIT 1) c ON true
 ORDER BY i
"""


def place(conn: psycopg.Connection[Any], count: int) -> tuple[list[str], float, float]:
    """``count`` approved air-quality stations of the bench's own on a spiral around a point (the first
    commune's, largest first, from which every station falls in a commune), with 5-minute PM2.5 and PM10
    datastreams; their codes and the first one's longitude and latitude."""
    candidates = conn.execute(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p, ST_Area(geom::geography) AS a "
        "FROM layers.communes WHERE valid_to IS NULL) s ORDER BY a DESC"
    ).fetchall()
    for lon, lat in candidates:
        spiral = conn.execute(_SPIRAL, {"n": count, "lon": lon, "lat": lat, "d": SPACING_M, "b": GOLDEN_DEG}).fetchall()
        if all(commune is not None for commune, _, _ in spiral):
            break
    else:
        raise SystemExit(f"no commune has {count} stations {SPACING_M:g} m apart around it; use fewer --stations")
    codes = [f"{PREFIX}{i:03d}" for i in range(count)]
    for code, (commune, x, y) in zip(codes, spiral, strict=True):
        conn.execute(
            "INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, installed_date, operator, "
            "geom, approval) VALUES (%s, %s, 'air_quality', 'online', DATE '2024-12-01', 'Bench', "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326), 'approved')",
            (code, commune, x, y),
        )
        for prop in ("pm25", "pm10"):
            model.register(conn, code, prop, INTERVAL_S)
    return codes, float(lon), float(lat)


def province_wkt(conn: psycopg.Connection[Any]) -> tuple[str, int]:
    """The province (the union of the current communes), simplified and snapped to 6 decimals, as WKT; and its
    number of vertices."""
    row = conn.execute(
        """SELECT w, ST_NPoints(ST_GeomFromText(w)), ST_IsValid(ST_GeomFromText(w))
             FROM (SELECT ST_AsText(ST_ReducePrecision(ST_SimplifyPreserveTopology(ST_Union(geom), %s), 1e-6), 6) AS w
                     FROM layers.communes WHERE valid_to IS NULL) s""",
        (SIMPLIFY_DEG,),
    ).fetchone()
    assert row is not None and row[2], "the simplified province outline is not valid"
    return str(row[0]), int(row[1])


def leader_key(settings: Settings) -> str:
    """An API key of a new leader account (reads every internal layer, iot_devices among them)."""
    audit.configure(settings.home)  # the bench's account is created in the audit trail, as the console does
    ref = accounts.RequestRef("1/BENCH", date(2026, 12, 1), "benchmark")
    with connect(settings, autocommit=True) as conn:
        accounts.create_account(
            conn,
            username="bench.edr",
            full_name="Lãnh đạo đo thời gian",
            agency="gis_ioc",
            roles=["leader"],
            ref=ref,
            actor="cli:bench",
            with_password=False,
        )
        return accounts.issue_key(conn, "bench.edr", ref, "cli:bench", label="bench/edr.py")


def reference_sql(catalog: Catalog, case: Case) -> sql.Composed:
    """The floor: the readings of PM2.5 of the case's stations in its window, out_of_range left out."""
    current = sql.SQL(" AND t.valid_to IS NULL") if catalog.layers[edr.LAYER].versioned else sql.SQL("")
    return sql.SQL(
        """SELECT o.datastream_id, o.phenomenon_time, o.result
             FROM gis_ioc.iot_observations o JOIN gis_ioc.iot_datastreams d ON d.id = o.datastream_id
            WHERE d.property_id = 'pm25'
              AND d.device_code IN (SELECT t.device_code FROM layers.iot_devices t
                                     WHERE t.approval = 'approved'{} AND {})
              AND o.phenomenon_time >= %(lo)s AND o.phenomenon_time <= %(hi)s
              AND NOT 'out_of_range' = ANY (o.flags)"""
    ).format(current, case.spatial)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cases(codes: list[str], lon: float, lat: float, wkt: str, start: datetime, end: datetime) -> list[Case]:
    month = {"lo": max(start, end - MONTH), "hi": end}
    whole = {"lo": start, "hi": end}
    point = f"POINT({lon} {lat})"
    geog = sql.SQL("ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography")
    nearest = sql.SQL(
        """t.device_code = (SELECT n.device_code FROM layers.iot_devices n
                             WHERE n.approval = 'approved' AND ST_DWithin(n.geom::geography, {g}, %(snap)s)
                               AND EXISTS (SELECT 1 FROM gis_ioc.iot_datastreams s
                                            WHERE s.device_code = n.device_code AND s.property_id = 'pm25')
                             ORDER BY ST_Distance(n.geom::geography, {g}), n.device_code LIMIT 1)"""
    ).format(g=geog)
    here = {"lon": lon, "lat": lat}

    def window(w: dict[str, datetime]) -> dict[str, str]:
        return {"datetime": f"{_iso(w['lo'])}/{_iso(w['hi'])}", "parameter-name": "pm25"}

    days = round((end - month["lo"]) / timedelta(days=1))
    all_days = round((end - start) / timedelta(days=1))
    return [
        Case(
            f"position, {days} days",
            "position",
            {"coords": point, **window(month)},
            nearest,
            {**here, "snap": edr.SNAP_M, **month},
        ),
        Case(
            f"radius {RADIUS_KM:g} km, {days} days",
            "radius",
            {"coords": point, "within": f"{RADIUS_KM:g}", "within-units": "km", **window(month)},
            sql.SQL("ST_DWithin(t.geom::geography, {}, %(within)s)").format(geog),
            {**here, "within": RADIUS_KM * 1000, **month},
        ),
        Case(
            f"area province, {days} days",
            "area",
            {"coords": wkt, **window(month)},
            sql.SQL("ST_Intersects(t.geom, ST_GeomFromText(%(wkt)s, 4326))"),
            {"wkt": wkt, **month},
        ),
        Case(
            f"area province, {all_days} days",
            "area",
            {"coords": wkt, **window(whole)},
            sql.SQL("ST_Intersects(t.geom, ST_GeomFromText(%(wkt)s, 4326))"),
            {"wkt": wkt, **whole},
        ),
        Case(
            f"locations/{codes[0]}, {days} days",
            f"locations/{codes[0]}",
            window(month),
            sql.SQL("t.device_code = %(code)s"),
            {"code": codes[0], **month},
        ),
    ]


def non_null(body: dict[str, Any]) -> tuple[int, int]:
    """The answer's stations and non-null PM2.5 values."""
    coverages = body["coverages"]
    values = sum(v is not None for c in coverages for v in c["ranges"].get("pm25", {}).get("values", []))
    return len(coverages), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=5, help="bench stations with 5-minute readings (default 5)")
    parser.add_argument("--days", type=int, default=31, help="days of readings up to now (default 31)")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs of each request (default 30)")
    parser.add_argument(
        "--max-values", type=int, default=edr.MAX_VALUES, help=f"EDR answer limit (default {edr.MAX_VALUES})"
    )
    args = parser.parse_args()
    if args.stations < 1 or not 1 <= args.days <= 366 or args.repeat < 1 or args.max_values < 1:
        parser.error("--stations, --repeat and --max-values must be at least 1, --days from 1 to 366")
    edr.MAX_VALUES = args.max_values  # read by coverage_collection at each request

    with bench_database() as (settings, _, catalog):
        with connect(settings, autocommit=True) as conn:
            began = time.perf_counter()
            generate_demo(conn, catalog, DemoOptions(seed=settings.demo_seed, as_of=date(2026, 11, 27)))
            print(f"demo data: {time.perf_counter() - began:.1f} s", flush=True)
            codes, lon, lat = place(conn, args.stations)
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM gis_ioc.iot_datastreams WHERE device_code = ANY(%s) ORDER BY id", (codes,)
                )
            ]
            now = datetime.now(UTC)
            end = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
            start = end - timedelta(days=args.days)
            print(
                f"{len(codes)} stations × 2 properties × {args.days} days × {86400 // INTERVAL_S} readings/day, "
                f"{_iso(start)} to {_iso(end)}; first station {codes[0]} at {lon:.5f} {lat:.5f}",
                flush=True,
            )
            began = time.perf_counter()
            fill(conn, ids, start, end)
            print(f"fill: {time.perf_counter() - began:.1f} s", flush=True)
            wkt, vertices = province_wkt(conn)
            nearby = conn.execute(
                "SELECT count(*) FROM layers.iot_devices t WHERE t.approval = 'approved' AND t.device_code = ANY(%s) "
                "AND ST_DWithin(t.geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s)",
                (codes, lon, lat, RADIUS_KM * 1000),
            ).fetchone()
            assert nearby is not None
            print(
                f"bench stations within {RADIUS_KM:g} km of the first: {nearby[0]}; province outline: "
                f"{vertices} vertices, {len(wkt):,} characters of WKT",
                flush=True,
            )
        key = leader_key(settings)
        requests = cases(codes, lon, lat, wkt, start, end)
        app = create_app(settings)
        logging.getLogger("pygeoapi").setLevel(logging.CRITICAL)  # a refusal is logged with its traceback
        with (
            TestClient(app, base_url="http://localhost", headers={"X-API-Key": key}, client=INSIDE) as client,
            connect(settings, autocommit=True) as owner,
        ):
            print()
            print(f"{args.repeat} timed runs each after 3 to warm up; ms; EDR through the ASGI app as a leader")
            print(
                f"{'request':<34} {'stations':>8} {'readings':>9} {'answer':>9} {'EDR p50/p95':>17} "
                f"{'SQL p50/p95':>15} {'EDR/SQL':>8}"
            )
            mismatches, refusals = [], []
            for case in requests:
                statement = reference_sql(catalog, case)

                def ask(case: Case = case) -> Any:
                    return client.get(f"{BASE}/{case.path}", params=case.params)

                def select(statement: sql.Composed = statement, case: Case = case) -> list[Any]:
                    return owner.execute(statement, case.values).fetchall()

                edr_p50, edr_p95, answer = timed(ask, args.repeat)
                sql_p50, sql_p95, rows = timed(select, args.repeat)
                streams = len({r[0] for r in rows})
                if answer.status_code == 200:
                    stations, values = non_null(answer.json())
                    shown = (f"{stations}", f"{values:,}", f"{len(answer.content) / 1024:,.0f} KB")
                    if (stations, values) != (streams, len(rows)):
                        mismatches.append(
                            f"{case.label}: EDR {stations} stations, {values:,} values; "
                            f"SQL {streams} stations, {len(rows):,} rows"
                        )
                elif answer.status_code == 400 and len(rows) > edr.MAX_VALUES:
                    shown = ("–", "–", "400")
                    refusals.append(
                        f"{case.label}: refused, 400 ({answer.json()['detail']}); "
                        f"SQL: {streams} stations, {len(rows):,} rows"
                    )
                else:
                    raise SystemExit(f"{case.label}: {answer.status_code} {answer.text[:500]}")
                print(
                    f"{case.label:<34} {shown[0]:>8} {shown[1]:>9} {shown[2]:>9} {edr_p50:8.1f}/{edr_p95:7.1f} "
                    f"{sql_p50:7.1f}/{sql_p95:7.1f} {edr_p50 / sql_p50:7.1f}x",
                    flush=True,
                )
            print()
            print("stations, readings: EDR's coverages and non-null PM2.5 values")
            for line in refusals:
                print(f"  {line}")
            for line in mismatches:
                print(f"  COUNTS DIFFER: {line}")
            if not mismatches:
                print("  each answered EDR request: as many stations and values as SQL fetched")
    if mismatches:
        raise SystemExit("EDR and SQL do not select the same readings")


if __name__ == "__main__":
    main()
