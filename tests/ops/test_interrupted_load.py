"""A load interrupted by a killed process, or by PostGIS restarting under it, leaves no partial data.
Runs `gis-ioc load vector` as an officer would, on the operations tests' own cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings

GIS_IOC = Path(sys.executable).parent / "gis-ioc"


def _trees(settings: Settings, path: Path, n: int = 120_000) -> Path:
    """n trees at random inside the province, written as a GeoPackage."""
    with connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT code, ST_AsBinary(geom) FROM layers.communes WHERE valid_to IS NULL ORDER BY code LIMIT 20"
        ).fetchall()
    rng = np.random.default_rng(7)
    codes, points = [], []
    for code, wkb in rows:
        polygon = shapely.from_wkb(bytes(wkb))
        minx, miny, maxx, maxy = polygon.bounds
        xs, ys = rng.uniform(minx, maxx, n // 10), rng.uniform(miny, maxy, n // 10)
        inside = shapely.contains_xy(polygon, xs, ys)
        points += list(shapely.points(xs[inside], ys[inside]))
        codes += [code] * int(inside.sum())
    frame = gpd.GeoDataFrame(
        {"tree_code": [f"T-{i:07d}" for i in range(len(points))], "commune_code": codes},
        geometry=points[: len(codes)],
        crs=4326,
    )
    frame.to_file(path, driver="GPKG")
    return path


def _state(settings: Settings) -> tuple[Any, ...]:
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM layers.trees), (SELECT count(*) FROM gis_ioc.loads), "
            "(SELECT count(*) FROM gis_ioc.audit)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def _start(settings: Settings, file: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
    env.update({"GIS_IOC_HOME": str(settings.home), "GIS_IOC_DB_PORT": str(settings.db_port)})
    return subprocess.Popen(
        [str(GIS_IOC), "load", "vector", str(file), "--layer", "trees", "--source-unit", "Sở Xây dựng"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_writing(settings: Settings, proc: subprocess.Popen[str]) -> None:
    """Until the loader's connection is writing (a COPY or the merge) inside its transaction."""
    deadline = time.monotonic() + 120
    with connect(settings, autocommit=True) as conn:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' "
                "AND (query ILIKE 'COPY%' OR query ILIKE 'INSERT%')"
            ).fetchone()
            if busy and busy[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the load never started writing")


def test_killed_or_restarted_load_leaves_nothing(own: tuple[Settings, Cluster], tmp_path: Path) -> None:
    settings, cluster = own
    file = _trees(settings, tmp_path / "cay_xanh.gpkg")
    before = _state(settings)
    # 1. the officer's process is killed (kill -9) while it writes
    proc = _start(settings, file)
    _wait_for_writing(settings, proc)
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(1)  # PostgreSQL notices the closed connection and rolls its transaction back
    assert _state(settings) == before
    # 2. PostGIS restarts under a running load
    proc = _start(settings, file)
    _wait_for_writing(settings, proc)
    cluster.stop()
    cluster.start()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert _state(settings) == before
