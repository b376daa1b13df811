"""Benchmark: the demo data load, and gis_ioc's COPY writer against GeoDataFrame.to_postgis.

Runs against a throwaway cluster of its own (nothing else is touched) and prints:
  1. the whole `gis-ioc demo` run (target: under 60 s on the 2-core machine);
  2. writing the same 200,000 demo parcels through gis_ioc's COPY path and through
     geopandas' GeoDataFrame.to_postgis (the reference), side by side.

    .venv/bin/python bench/demo_load.py [--parcels 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import geopandas as gpd
import numpy as np
import shapely
from _support import bench_database
from psycopg import sql
from sqlalchemy import create_engine

from gis_ioc.database.connection import connect
from gis_ioc.database.loads import copy_rows
from gis_ioc.demo import DemoOptions, _communes, generate_demo, land


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with bench_database() as (settings, cluster, catalog), connect(settings, autocommit=True) as conn:
        demo_times = []
        for i in range(args.repeat):
            options = DemoOptions(as_of=date(2026, 11, 27), parcels=args.parcels, seed=20250701 + i)
            result = generate_demo(conn, catalog, options, force=True)
            demo_times.append(result.seconds)
        rows_total = sum(result.counts.values())

        communes = _communes(conn)
        wards = {c.code for c in communes if c.is_ward}
        parcels = land.make_parcels(np.random.default_rng([1, 1]), communes, args.parcels)
        rows = list(land.parcel_rows(np.random.default_rng([1, 2]), parcels, wards))
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP TABLE IF EXISTS bench.parcels_copy")
        # same columns, identity and spatial index as the reference table to_postgis makes
        conn.execute("CREATE TABLE bench.parcels_copy (LIKE layers.land_parcels INCLUDING DEFAULTS INCLUDING IDENTITY)")
        conn.execute("CREATE INDEX ON bench.parcels_copy USING gist (geom)")
        frame = gpd.GeoDataFrame(
            [r[:-1] for r in rows],
            columns=land.PARCEL_COLUMNS[:-1],
            geometry=shapely.from_wkb([r[-1] for r in rows]),
            crs="EPSG:4326",
        )
        copy_times, ref_times = [], []
        engine = create_engine(
            f"postgresql+psycopg://gis_ioc@/{settings.db_name}?host={cluster.socket_dir}&port={settings.db_port}"
        )
        for _ in range(args.repeat):
            conn.execute("TRUNCATE bench.parcels_copy")
            started = time.perf_counter()
            with conn.transaction():
                copy_rows(conn, sql.Identifier("bench", "parcels_copy"), land.PARCEL_COLUMNS, rows)
            copy_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            frame.to_postgis("parcels_to_postgis", engine, schema="bench", if_exists="replace", index=False)
            ref_times.append(time.perf_counter() - started)
        engine.dispose()

    med = statistics.median
    print(
        f"demo data: {rows_total:,} rows, {args.parcels:,} parcels; runs: {', '.join(f'{t:.1f}' for t in demo_times)} s"
    )
    print(f"  gis-ioc demo (whole run)         median {med(demo_times):6.1f} s   target < 60 s")
    print(f"writing {len(rows):,} parcels (median of {args.repeat}):")
    print(f"  gis_ioc COPY (copy_rows)         {med(copy_times):6.2f} s   {len(rows) / med(copy_times):10,.0f} rows/s")
    print(f"  GeoDataFrame.to_postgis (ref.)   {med(ref_times):6.2f} s   {len(rows) / med(ref_times):10,.0f} rows/s")
    print(f"  speed-up                         {med(ref_times) / med(copy_times):6.2f} x")


if __name__ == "__main__":
    main()
