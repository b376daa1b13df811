"""Benchmark: export throughput by format and CRS, thematic maps (HTML, PNG, PDF) and a report.

Against a throwaway cluster with the boundaries and the full demo data (200,000 parcels). Prints rows
per second for each export of the parcels and the time of each map and report step.

    .venv/bin/python bench/maps_exports.py [--formats gpkg,shp,geojson,csv,xlsx] [--crs EPSG:9209]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from _support import bench_database

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.maps import exports, folium_, printmap, report, thematic
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.models import load_scenarios

CONSOLE = Viewer.console("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="gpkg,shp,geojson,csv,xlsx")
    parser.add_argument("--crs", default="EPSG:9209")
    args = parser.parse_args()
    with (
        bench_database() as (settings, _cluster, catalog),
        connect(settings, autocommit=True) as conn,
        tempfile.TemporaryDirectory() as tmp,
    ):
        generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27)))
        scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
        crs = exports.resolve_crs(args.crs)
        print(f"exports of land_parcels in {crs.uri}")
        for fmt in args.formats.split(","):
            started = time.perf_counter()
            result = exports.export(exports.layer_source(conn, catalog, "land_parcels", crs), fmt, crs, Path(tmp))
            took = time.perf_counter() - started
            size = result.path.stat().st_size / 1e6
            print(
                f"  {fmt:8} {result.count:>8,} rows  {took:6.1f} s  {result.count / took:>8,.0f} rows/s  {size:7.1f} MB"
            )
            result.path.unlink()
        print("thematic map schools_national_standard_rate 2026-Q3")
        started = time.perf_counter()
        tm = thematic.thematic_map(
            conn, catalog, scenarios, "schools_national_standard_rate", "2026-Q3", viewer=CONSOLE
        )
        print(f"  province run + classification  {time.perf_counter() - started:6.1f} s (run #{tm.run_id})")
        for label, work in (
            ("HTML (with schools)", lambda: folium_.render_html(conn, catalog, tm, ["schools"], viewer=CONSOLE)),
            ("PNG A4 300 dpi", lambda: printmap.render_print(conn, catalog, tm, "png", viewer=CONSOLE)),
            ("PDF A3 300 dpi", lambda: printmap.render_print(conn, catalog, tm, "pdf", paper="A3", viewer=CONSOLE)),
        ):
            started = time.perf_counter()
            out = work()
            print(f"  {label:30} {time.perf_counter() - started:6.1f} s  {len(out) / 1e6:5.1f} MB")
        print("report, education sector, whole province")
        started = time.perf_counter()
        ids = report.run_for_report(conn, catalog, scenarios, "2026-Q3", viewer=CONSOLE, sectors=["education"])
        print(f"  scenario runs {ids}  {time.perf_counter() - started:6.1f} s")
        started = time.perf_counter()
        rep = report.build_report(conn, catalog, ids, viewer=CONSOLE, sectors=["education"], scenarios=scenarios)
        print(f"  build (with {len(rep.maps)} maps)  {time.perf_counter() - started:6.1f} s")
        for label, work2 in (
            ("PDF", lambda: report.render_pdf(rep, chromium=settings.chromium)),
            ("DOCX", lambda: report.render_docx(rep)),
        ):
            started = time.perf_counter()
            data = work2()
            print(f"  {label:5} {time.perf_counter() - started:6.1f} s  {len(data) / 1e6:5.1f} MB")


if __name__ == "__main__":
    main()
