"""The web map's data: commune search without diacritics, identify at a point, the MapLibre style."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.maps.mapstyle import map_style
from gis_ioc.maps.places import fold


def test_fold_removes_diacritics_and_d_bar() -> None:
    assert fold("Phường Phố Hiến") == "phuong pho hien"
    assert fold("  Xã Đông   Hưng ") == "xa dong hung"


def test_search_finds_every_commune_by_its_bare_name_and_code(client: TestClient, db: psycopg.Connection[Any]) -> None:
    rows = db.execute("SELECT code, name, short_name FROM layers.communes WHERE valid_to IS NULL").fetchall()
    assert len(rows) == 104
    for code, name, short in rows:
        found = client.get("/api/communes", params={"q": fold(short)}).json()["communes"]
        assert found and code in [c["code"] for c in found], (short, found)
        assert client.get("/api/communes", params={"q": code}).json()["communes"][0]["name"] == name
    first = client.get("/api/communes", params={"q": "thai binh"}).json()["communes"][0]
    assert first["name"] == "Phường Thái Bình"
    west, south, east, north = first["bbox"]
    assert west < first["centre"][0] < east and south < first["centre"][1] < north
    assert client.get("/api/communes", params={"q": "zzzz"}).json()["communes"] == []


def test_identify_gives_the_commune_the_parcel_and_facilities_nearby(
    client: TestClient, anonymous: TestClient, db: psycopg.Connection[Any]
) -> None:
    fid, lon, lat = db.execute(
        "SELECT fid, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM layers.land_parcels "
        "WHERE approval = 'approved' ORDER BY fid LIMIT 1"
    ).fetchone()
    body = client.get("/api/identify", params={"lon": lon, "lat": lat, "radius": 1500}).json()
    assert body["parcel"]["fid"] == fid and body["parcel"]["labels"]["land_use"]["vi"]
    commune = db.execute(
        "SELECT code FROM layers.communes WHERE valid_to IS NULL "
        "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
        (lon, lat),
    ).fetchone()[0]
    assert body["commune"]["properties"]["code"] == commune
    expected = db.execute(
        "SELECT count(*) FROM layers.schools WHERE approval = 'approved' "
        "AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, 1500)",
        (lon, lat),
    ).fetchone()[0]
    assert sum(1 for n in body["nearby"] if n["layer"] == "schools") == min(expected, 25)
    distances = [n["distance_m"] for n in body["nearby"]]
    assert distances == sorted(distances) and all(d <= 1500 for d in distances)
    assert not any(n["layer"] == "police_posts" for n in body["nearby"])  # restricted: never shown
    # without credentials the parcel (an internal layer) is not shown; the commune and schools are
    public = anonymous.get("/api/identify", params={"lon": lon, "lat": lat, "radius": 1500}).json()
    assert public["parcel"] is None and public["commune"] == body["commune"]
    assert [n for n in public["nearby"] if n["layer"] == "schools"] == [
        n for n in body["nearby"] if n["layer"] == "schools"
    ]
    bad = client.get("/api/identify", params={"lon": lon, "lat": lat, "radius": 99999})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_style_draws_each_published_layer_from_our_tiles(catalog: Catalog) -> None:
    style = map_style(catalog, "/ogc")
    assert "police_posts" not in style["sources"]
    for source in style["sources"].values():
        assert source["tiles"][0].startswith("/ogc/collections/")
    schools = next(layer for layer in style["layers"] if layer["id"] == "schools-circle")
    colour = schools["paint"]["circle-color"]
    assert colour[0] == "match" and colour[colour.index("primary") + 1] == "#6baed6"  # from styles/schools.yaml
    parcels = next(layer for layer in style["layers"] if layer["id"] == "land_parcels-fill")
    assert parcels["minzoom"] == 13 and parcels["layout"]["visibility"] == "none"
