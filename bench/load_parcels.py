"""Benchmark: loading a GeoPackage of parcels with `gis-ioc load vector`, beside GeoDataFrame.to_postgis.

Makes N non-overlapping parcels (squares on a 50 m grid inside Hưng Yên) in VN-2000 / TM-3 105°30'
(EPSG:9209, as district offices deliver them), writes them to a GeoPackage, and on a throwaway cluster
of its own times, on the same file:
  1. gis_ioc's loader (read by GDAL, NFC text, EPSG:6960 transformation, every quality gate including
     the parcel overlap check, staging table, merge into layers.land_parcels in one transaction);
  2. the reference: geopandas.read_file + to_crs(4326) + GeoDataFrame.to_postgis into a new table
     (no checks at all).

    .venv/bin/python bench/load_parcels.py [--parcels 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from _support import bench_database
from sqlalchemy import create_engine

from gis_ioc.crs import transformer
from gis_ioc.database.connection import connect
from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, load_vector

LAND_USES = np.array(["LUC", "ONT", "CLN", "NTS", "HNK", "ODT"])


def make_parcels(province: shapely.Geometry, n: int, codes: list[tuple[str, shapely.Geometry]]) -> gpd.GeoDataFrame:
    """n squares of 45 m on a 50 m grid, inside the province, in EPSG:9209."""
    to_tm3 = transformer(4326, 9209)
    minx, miny, maxx, maxy = province.bounds
    (x0, x1), (y0, y1) = to_tm3.transform([minx, maxx], [miny, maxy])
    xs, ys = np.meshgrid(np.arange(x0, x1, 50.0), np.arange(y0, y1, 50.0))
    xs, ys = xs.ravel(), ys.ravel()
    lon, lat = transformer(9209, 4326).transform(xs + 25, ys + 25)
    shapely.prepare(province)
    inside = shapely.contains_xy(province, lon, lat)
    xs, ys, lon, lat = xs[inside], ys[inside], lon[inside], lat[inside]
    if len(xs) < n:
        raise SystemExit(f"only {len(xs):,} grid cells fit in the province")
    pick = np.linspace(0, len(xs) - 1, n).astype(int)
    xs, ys, lon, lat = xs[pick], ys[pick], lon[pick], lat[pick]
    commune = np.full(n, codes[0][0], dtype=object)
    points = shapely.points(lon, lat)
    for code, geom in codes:
        shapely.prepare(geom)
        commune[shapely.contains(geom, points)] = code
    rng = np.random.default_rng(7)
    return gpd.GeoDataFrame(
        {
            "ma_thua": [f"{c}-{i // 1000 + 1}-{i % 1000 + 1}" for i, c in enumerate(commune)],
            "commune_code": commune,
            "map_sheet": np.arange(n) // 1000 + 1,
            "parcel_number": np.arange(n) % 1000 + 1,
            "land_use": LAND_USES[rng.integers(0, len(LAND_USES), n)],
            "area_m2": np.full(n, 2025.0),
            "legal_status": "certified",
            "survey_date": "2026-05-01",
        },
        geometry=shapely.box(xs, ys, xs + 45, ys + 45),
        crs="EPSG:9209",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="Print where the loader spends its time.")
    args = parser.parse_args()

    with bench_database() as (settings, cluster, catalog), connect(settings, autocommit=True) as conn:
        province = shapely.from_wkb(conn.execute("SELECT ST_AsBinary(geom) FROM layers.province").fetchone()[0])
        codes = [
            (c, shapely.from_wkb(g)) for c, g in conn.execute("SELECT code, ST_AsBinary(geom) FROM layers.communes")
        ]
        folder = Path(tempfile.mkdtemp(prefix="gis-ioc-bench-load-"))
        path = folder / "thua_dat.gpkg"
        started = time.perf_counter()
        make_parcels(province, args.parcels, codes).to_file(path, driver="GPKG", layer="thua_dat")
        print(f"made {args.parcels:,} parcels in {path.name} ({path.stat().st_size / 1e6:,.0f} MB) "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

        engine = create_engine(
            f"postgresql+psycopg://gis_ioc@/{settings.db_name}?host={cluster.socket_dir}&port={settings.db_port}"
        )
        config = LoaderConfig.from_settings(settings)
        ours, ref, stages = [], [], {}
        for _ in range(args.repeat):
            conn.execute("TRUNCATE layers.land_parcels")
            marks: dict[str, float] = {}

            def progress(stage: str, done: int, total: int, marks: dict[str, float] = marks) -> None:
                marks.setdefault(stage, time.perf_counter())

            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            report = load_vector(
                conn, catalog, path,
                LoadOptions(layer_id="land_parcels", mapping={"ma_thua": "parcel_code"}, loaded_by="bench"),
                config, progress=progress,
            )  # fmt: skip
            ours.append(time.perf_counter() - started)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
            assert report.loaded == args.parcels, report.message
            order = [*sorted(marks.items(), key=lambda kv: kv[1]), ("end", started + ours[-1])]
            stages = {a[0]: b[1] - a[1] for a, b in itertools.pairwise(order)}
            started = time.perf_counter()
            frame = gpd.read_file(path).to_crs(4326)
            frame.to_postgis("parcels_to_postgis", engine, schema="public", if_exists="replace", index=False)
            ref.append(time.perf_counter() - started)
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)  # the GeoPackage (264 MB at a million parcels)

    med = statistics.median
    n = args.parcels
    print(f"loading {n:,} parcels from a GeoPackage in EPSG:9209 (median of {args.repeat}):")
    print(
        f"  gis-ioc load vector (all gates)         {med(ours):6.1f} s   {n / med(ours):9,.0f} rows/s   target < 60 s"
    )
    print("    " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) + " (stages of the last run)")
    if args.repeat > 1:
        print("    runs: " + ", ".join(f"{t:.1f} s" for t in ours))
    print(f"  read_file + to_postgis (ref., no gates) {med(ref):6.1f} s   {n / med(ref):9,.0f} rows/s")
    if args.repeat > 1:
        print("    runs: " + ", ".join(f"{t:.1f} s" for t in ref))


if __name__ == "__main__":
    main()
