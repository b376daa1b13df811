"""Benchmark: scenario latency on the demo data, database warm (issue 5 targets).

Runs each case repeatedly in one process against a throwaway cluster with the boundaries and the
demo data, and prints p50/p95 beside the target (the whole-province education case, which measures
the distance from 89,000 dwellings to the nearest primary school, has none: it is shown for scale).
The reference is the same run without storing
the result (``store=False``), which shows what keeping the run for reproducibility costs.

    .venv/bin/python bench/scenarios.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from _support import bench_database

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import run_scenario
from gis_ioc.scenarios.models import load_emergency, load_scenarios

CONSOLE = Viewer.console("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with bench_database() as (settings, _cluster, catalog), connect(settings, autocommit=True) as conn:
        scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
        generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27)))
        emergency = load_emergency(settings.config_dir / "scenarios", catalog)
        rings = incident_from_request(
            conn, {"incident": "flood", "at": [106.05, 20.65], "rings": [500, 1000, 2000]}, emergency, catalog, CONSOLE
        )
        box = [[106.03, 20.63], [106.07, 20.63], [106.07, 20.67], [106.03, 20.67], [106.03, 20.63]]
        flooded = incident_from_request(
            conn, {"incident": "flood", "zone": {"type": "Polygon", "coordinates": [box]}}, emergency, catalog, CONSOLE
        )
        cases: list[tuple[str, float | None, Callable[[bool], Any]]] = [
            (
                "health, 2 km radius",
                100,
                lambda store: run_scenario(
                    conn,
                    catalog,
                    scenarios["health"],
                    selectors.radius(conn, 106.05, 20.65, 2000),
                    "2026-Q3",
                    store=store,
                    viewer=CONSOLE,
                ),
            ),
            (
                "health, one commune",
                100,
                lambda store: run_scenario(
                    conn,
                    catalog,
                    scenarios["health"],
                    selectors.communes(conn, ["11953"]),
                    "2026-Q3",
                    store=store,
                    viewer=CONSOLE,
                ),
            ),
            (
                "socio-economic, province",
                500,
                lambda store: run_scenario(
                    conn,
                    catalog,
                    scenarios["socio_economic"],
                    selectors.province(conn),
                    "2026-Q3",
                    store=store,
                    viewer=CONSOLE,
                ),
            ),
            (
                "education, province (reach)",
                None,
                lambda store: run_scenario(
                    conn,
                    catalog,
                    scenarios["education"],
                    selectors.province(conn),
                    "2026-Q3",
                    store=store,
                    viewer=CONSOLE,
                ),
            ),
            (
                "emergency, rings to 2 km",
                100,
                lambda store: run_emergency(conn, catalog, emergency, rings, store=store, viewer=CONSOLE),
            ),
            (
                "emergency, flooded 4x4 km",
                100,
                lambda store: run_emergency(conn, catalog, emergency, flooded, store=store, viewer=CONSOLE),
            ),
        ]
        print(f"{'case':<30}{'p50 ms':>9}{'p95 ms':>9}{'target p50':>12}{'no store p50':>14}")
        for name, target, run in cases:
            timings = {True: [], False: []}
            for _ in range(3):
                run(True)  # warm the cache
            for _ in range(args.repeat):
                for store in (True, False):
                    started = time.perf_counter()
                    run(store)
                    timings[store].append((time.perf_counter() - started) * 1000)
            stored = sorted(timings[True])
            p50, p95 = statistics.median(stored), stored[int(0.95 * (len(stored) - 1))]
            goal = "–" if target is None else f"{target:.0f}"
            print(f"{name:<30}{p50:9.1f}{p95:9.1f}{goal:>12}{statistics.median(timings[False]):14.1f}")


if __name__ == "__main__":
    main()
