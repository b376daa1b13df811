"""Every collection's extents are true, and stay true when the data changes (issue 18); tilesets list only
the zoom levels whose tiles can hold something."""

from __future__ import annotations

import math
import time
from datetime import date
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from tests.conftest import scalar


def extent_of(client: TestClient, layer: str) -> dict[str, Any]:
    answer = client.get(f"/ogc/collections/{layer}", params={"f": "json"})
    assert answer.status_code == 200, answer.text
    extent: dict[str, Any] = answer.json()["extent"]
    return extent


def test_spatial_extents_are_those_of_the_published_rows(
    client: TestClient, db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    listed = {c["id"]: c["extent"] for c in client.get("/ogc/collections", params={"f": "json"}).json()["collections"]}
    for layer in ("schools", "roads", "communes", "land_parcels"):
        table = f"{SCHEMA}.{catalog.layers[layer].table}"
        row = db.execute(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent(geom) e FROM {table} WHERE approval = 'approved' AND {current(catalog, layer)}) s"
        ).fetchone()
        assert row is not None
        bbox = extent_of(client, layer)["spatial"]["bbox"][0]
        assert bbox == [round(v, 6) for v in row], layer
        assert listed[layer]["spatial"]["bbox"][0] == bbox


def current(catalog: Catalog, layer: str) -> str:
    return "valid_to IS NULL" if catalog.layers[layer].versioned else "true"


def test_temporal_extent_follows_a_change(client: TestClient, db: psycopg.Connection[Any], catalog: Catalog) -> None:
    zones = f"{SCHEMA}.{catalog.layers['planning_zones'].table}"
    first, last = db.execute(
        f"SELECT min(approval_date), max(approval_date) FROM {zones} WHERE approval = 'approved'"
    ).fetchone() or (None, None)
    assert first is not None and last is not None
    interval = extent_of(client, "planning_zones")["temporal"]["interval"][0]
    assert interval[0].startswith(first.isoformat()) and interval[1].startswith(last.isoformat())
    fid = scalar(db, f"SELECT fid FROM {zones} WHERE approval = 'approved' ORDER BY fid LIMIT 1")
    old = scalar(db, f"SELECT approval_date FROM {zones} WHERE fid = %s", (fid,))
    later = date(2026, 6, 15) if last < date(2026, 6, 15) else last.replace(year=last.year + 1)
    db.execute(f"UPDATE {zones} SET approval_date = %s WHERE fid = %s", (later, fid))
    try:
        deadline = time.monotonic() + 10
        while True:  # the change reaches the server through PostgreSQL's notification (milliseconds)
            end = extent_of(client, "planning_zones")["temporal"]["interval"][0][1]
            if end.startswith(later.isoformat()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert end.startswith(later.isoformat())
        listed = client.get("/ogc/collections", params={"f": "json"}).json()["collections"]
        shown = next(c for c in listed if c["id"] == "planning_zones")
        assert shown["extent"]["temporal"]["interval"][0][1].startswith(later.isoformat())
    finally:
        db.execute(f"UPDATE {zones} SET approval_date = %s WHERE fid = %s", (old, fid))


def tile_at(z: int, lon: float, lat: float) -> tuple[int, int]:
    n = 2**z
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return row, col


def test_tilesets_list_only_levels_with_data(client: TestClient) -> None:
    meta = client.get("/ogc/collections/communes/tiles/WebMercatorQuad", params={"f": "json"}).json()
    lowest = int(meta["tileMatrixSetLimits"][0]["tileMatrix"])
    assert lowest == int(meta["layers"][0]["minTileMatrix"])
    assert 1 <= lowest <= 6  # the largest commune covers a pixel from about zoom 4
    base = "/ogc/collections/communes/tiles/WebMercatorQuad"
    for z in (lowest, lowest + 1):  # the first listed levels hold communes
        level = meta["tileMatrixSetLimits"][z - lowest]
        found = [
            client.get(f"{base}/{z}/{row}/{col}").status_code
            for row in range(level["minTileRow"], level["maxTileRow"] + 1)
            for col in range(level["minTileCol"], level["maxTileCol"] + 1)
        ]
        assert 200 in found, (z, found)
    row, col = tile_at(lowest - 1, 106.05, 20.8)  # one level lower: the province's tile is empty
    assert client.get(f"{base}/{lowest - 1}/{row}/{col}").status_code == 204
    province = client.get("/ogc/collections/province/tiles/WebMercatorQuad", params={"f": "json"}).json()
    z = int(province["tileMatrixSetLimits"][0]["tileMatrix"])
    assert z < lowest  # the province is larger than its communes: it shows sooner
    row, col = tile_at(z, 106.2, 20.65)
    assert client.get(f"/ogc/collections/province/tiles/WebMercatorQuad/{z}/{row}/{col}").status_code == 200
    points = client.get("/ogc/collections/schools/tiles/WebMercatorQuad", params={"f": "json"}).json()
    assert points["tileMatrixSetLimits"][0]["tileMatrix"] == "0"  # points show at every zoom
