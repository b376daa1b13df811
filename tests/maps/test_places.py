"""The web map's data: commune search without diacritics, identify at a point, the MapLibre style."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.auth import accounts
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.maps.mapstyle import map_style
from gis_ioc.maps.places import fold
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create

OWN, OTHER = "11953", "11977"


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


def test_identify_keeps_a_commune_officer_to_their_communes(
    anonymous: TestClient, client: TestClient, db: psycopg.Connection[Any], settings: Settings, catalog: Catalog
) -> None:
    """Issue 11: identify ignored commune limits. A commune officer identifying a point in another
    commune gets the commune (public) and public facilities, not that commune's parcel or internal
    facilities; in their own commune they get the parcel as a leader does."""
    with connect(settings, autocommit=True) as conn:
        create(conn, "places.officer", ["commune_officer"], communes=[OWN], with_password=False)
        officer = {"X-API-Key": accounts.issue_key(conn, "places.officer", REF, "cli:test")}
    for code, shown in ((OTHER, False), (OWN, True)):
        fid, lon, lat = db.execute(
            "SELECT p.fid, ST_X(ST_PointOnSurface(p.geom)), ST_Y(ST_PointOnSurface(p.geom)) FROM layers.land_parcels p "
            "JOIN layers.communes c ON c.code = p.commune_code AND c.valid_to IS NULL "
            "WHERE p.approval = 'approved' AND p.commune_code = %s "
            "AND ST_Contains(c.geom, ST_PointOnSurface(p.geom)) ORDER BY p.fid LIMIT 1",
            (code,),
        ).fetchone()
        params = {"lon": lon, "lat": lat, "radius": 800}
        answer = anonymous.get("/api/identify", params=params, headers=officer)
        assert answer.headers["cache-control"].startswith("private")  # it depends on who asks
        mine = answer.json()
        full = client.get("/api/identify", params=params).json()
        public = anonymous.get("/api/identify", params=params).json()
        assert full["parcel"]["fid"] == fid and full["parcel"]["properties"]["commune_code"] == code
        assert mine["commune"] == full["commune"] == public["commune"] and mine["commune"]["properties"]["code"] == code
        assert mine["parcel"] == (full["parcel"] if shown else None)
        assert len(mine["nearby"]) < 25 and len(public["nearby"]) < 25
        kind = {n["layer"]: catalog.layers[n["layer"]].access for n in mine["nearby"] + full["nearby"]}
        assert [n for n in mine["nearby"] if kind[n["layer"]] == "public"] == public["nearby"]
        for item in (n for n in mine["nearby"] if kind[n["layer"]] != "public"):
            table = catalog.layers[item["layer"]].table
            row = db.execute(f"SELECT commune_code FROM layers.{table} WHERE fid = %s", (item["fid"],)).fetchone()
            assert row == (OWN,), item
