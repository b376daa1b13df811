"""What the access core costs on the hot path: the same OGC requests answered as the server's role with
row-level security and the Viewer (bound transaction), side by side with the same SQL run by the owner
(no row security, no binding), in one process against one throwaway cluster with the demo data.

    .venv/bin/python bench/access_cost.py [--repeat 300]

Prints, per request kind: median and p95 milliseconds for the reference (owner, no RLS), the server's role
as a leader (RLS: every internal row) and as a commune officer (RLS: one commune), and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import bench_database
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.crs import PUBLISHED
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.publish.cql import Params
from gis_ioc.publish.features import feature_sql
from gis_ioc.query import rows, scope
from gis_ioc.query.viewer import Viewer

LEADER = Viewer("bench.leader", frozenset({"leader"}), via="api_key")
OFFICER = Viewer("bench.officer", frozenset({"commune_officer"}), frozenset({"11953"}), via="api_key")
OWNER = Viewer.console("bench")


def page_sql(catalog: Catalog, viewer: Viewer, bbox: bool) -> tuple[sql.Composed, dict[str, Any]]:
    layer = viewer.sees(catalog.layers["land_parcels"])
    params = Params()
    extra: list[sql.Composable] = []
    if bbox:
        env = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
            *(params.add(v) for v in (106.045, 20.645, 106.055, 20.655))
        )
        extra.append(sql.SQL("t.geom && {} AND ST_Intersects(t.geom, {})").format(env, env))
    where = rows.where(viewer, layer, params, extra=extra)
    statement = sql.SQL(
        "SELECT coalesce(json_agg(f), '[]')::text FROM (SELECT {} AS f FROM layers.land_parcels t WHERE {} "
        "ORDER BY t.fid LIMIT 100) p"
    ).format(feature_sql(layer, PUBLISHED[0], None, False), where)
    return statement, params.values


def feature_statement(catalog: Catalog, viewer: Viewer, fid: int) -> tuple[sql.Composed, dict[str, Any]]:
    layer = viewer.sees(catalog.layers["land_parcels"])
    params = Params()
    where = rows.where(viewer, layer, params, extra=[sql.SQL("t.fid = {}").format(params.add(fid))])
    statement = sql.SQL("SELECT {}::text FROM layers.land_parcels t WHERE {}").format(
        feature_sql(layer, PUBLISHED[0], None, False), where
    )
    return statement, params.values


def timed(conn: psycopg.Connection[Any], catalog: Catalog, viewer: Viewer | None, work: Callable[[], Any], n: int):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with conn.transaction():
            if viewer is not None:
                scope.bind(conn, viewer, catalog)
            statement, values = work()
            conn.execute(statement, values).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with bench_database() as (settings, _, catalog):
        with connect(settings, autocommit=True) as owner:
            generate_demo(owner, catalog, DemoOptions(seed=settings.demo_seed, as_of=date(2026, 11, 27)))
            fid = owner.execute("SELECT min(fid) FROM layers.land_parcels WHERE commune_code = '11953'").fetchone()[0]  # type: ignore[index]
        with connect(settings) as reference, connect(settings, server=True) as server:
            print(f"{'request':<28} {'owner, no RLS':>16} {'server, leader':>16} {'server, officer':>16}  leader/ref")
            for label, make in (
                ("items limit=100", lambda v: lambda: page_sql(catalog, v, False)),
                ("items limit=100, 1 km bbox", lambda v: lambda: page_sql(catalog, v, True)),
                ("single feature", lambda v: lambda: feature_statement(catalog, v, fid)),
            ):
                ref = timed(reference, catalog, None, make(OWNER), args.repeat)
                lead = timed(server, catalog, LEADER, make(LEADER), args.repeat)
                off = timed(server, catalog, OFFICER, make(OFFICER), args.repeat)
                print(
                    f"{label:<28} {ref[0]:7.2f}/{ref[1]:6.2f} ms {lead[0]:7.2f}/{lead[1]:6.2f} ms "
                    f"{off[0]:7.2f}/{off[1]:6.2f} ms  {lead[0] / ref[0]:.2f}x"
                )


if __name__ == "__main__":
    main()
