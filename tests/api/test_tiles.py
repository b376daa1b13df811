"""OGC API Tiles: vector tiles made by PostGIS, their metadata, caching and errors."""

from __future__ import annotations

import math
from typing import Any

import mapbox_vector_tile
import psycopg
from fastapi.testclient import TestClient

from tests.conftest import scalar

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return z, y, x


def test_tile_holds_the_features_postgis_selects(client: TestClient, db: psycopg.Connection[Any]) -> None:
    z, row, col = tile_of(106.05, 20.65, 14)
    response = client.get(f"/ogc/collections/land_parcels/tiles/WebMercatorQuad/{z}/{row}/{col}")
    assert response.status_code == 200 and response.headers["content-type"] == MVT
    assert response.headers["cache-control"] == "private, max-age=300" and response.headers["etag"]  # internal
    assert "Authorization" in response.headers["vary"] and "Cookie" in response.headers["vary"]
    layer = mapbox_vector_tile.decode(response.content)["land_parcels"]
    ids = {f["id"] for f in layer["features"]}
    expected = {
        r[0]
        for r in db.execute(
            "SELECT fid FROM layers.land_parcels WHERE geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)",
            (z, col, row),
        )
    }
    assert ids == expected and len(ids) > 100
    assert set(layer["features"][0]["properties"]) == {"parcel_code", "land_use"}  # key and styled field
    assert layer["extent"] == 4096
    full = client.get(
        f"/ogc/collections/land_parcels/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"properties": "*"}
    )
    props = mapbox_vector_tile.decode(full.content)["land_parcels"]["features"][0]["properties"]
    assert {"parcel_code", "land_use", "area_m2", "legal_status"} <= set(props)
    assert (
        client.get(
            f"/ogc/collections/land_parcels/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"properties": "nope"}
        ).status_code
        == 400
    )


def test_unchanged_tile_is_304(client: TestClient) -> None:
    z, row, col = tile_of(106.05, 20.65, 12)
    url = f"/ogc/collections/roads/tiles/WebMercatorQuad/{z}/{row}/{col}"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=300"  # a public layer
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_low_zoom_parcels_are_empty_and_commune_tiles_simplified(
    client: TestClient, db: psycopg.Connection[Any]
) -> None:
    z, row, col = tile_of(106.05, 20.65, 9)
    assert client.get(f"/ogc/collections/land_parcels/tiles/WebMercatorQuad/{z}/{row}/{col}").status_code == 204
    communes = client.get(f"/ogc/collections/communes/tiles/WebMercatorQuad/{z}/{row}/{col}")
    decoded = mapbox_vector_tile.decode(communes.content)["communes"]
    vertices = sum(len(str(f["geometry"]["coordinates"])) for f in decoded["features"])
    full = scalar(
        db,
        "SELECT sum(ST_NPoints(geom)) FROM layers.communes WHERE geom && "
        "ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)",
        (z, col, row),
    )
    assert len(decoded["features"]) > 5 and full > 0 and vertices > 0


def _count(coords: Any) -> int:
    if coords and isinstance(coords[0], (int, float)):
        return 1
    return sum(_count(c) for c in coords)


def test_tile_errors(client: TestClient) -> None:
    assert client.get("/ogc/collections/roads/tiles/WebMercatorQuad/30/1/1").status_code == 400
    assert client.get("/ogc/collections/roads/tiles/WebMercatorQuad/3/9/1").status_code == 400
    assert client.get("/ogc/collections/roads/tiles/WebMercatorQuad/a/b/c").status_code == 400
    assert client.get("/ogc/collections/roads/tiles/WorldCRS84Quad/3/1/1").status_code == 404
    assert client.get("/ogc/collections/police_posts/tiles/WebMercatorQuad/3/1/1").status_code == 404


def test_tile_metadata(client: TestClient) -> None:
    sets = client.get("/ogc/collections/land_parcels/tiles").json()["tilesets"]
    assert sets[0]["tileMatrixSetURI"].endswith("WebMercatorQuad") and sets[0]["dataType"] == "vector"
    meta = client.get("/ogc/collections/land_parcels/tiles/WebMercatorQuad").json()
    assert meta["tileMatrixSetLimits"][0]["tileMatrix"] == "13"  # the style's minimum zoom
    template = next(li["href"] for li in meta["links"] if li["rel"] == "item")
    assert template.endswith("/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}")
    tms = client.get("/ogc/tileMatrixSets/WebMercatorQuad").json()
    assert tms["tileMatrices"][14]["matrixWidth"] == 2**14
    collection = client.get("/ogc/collections/roads", params={"f": "json"}).json()
    assert any(li["rel"].endswith("tilesets-vector") for li in collection["links"])


def test_conformance_declares_what_is_served(client: TestClient) -> None:
    classes = client.get("/ogc/conformance", params={"f": "json"}).json()["conformsTo"]
    for suffix in (
        "ogcapi-tiles-1/1.0/conf/mvt",
        "cql2/1.0/conf/cql2-json",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-2/1.0/conf/crs",
        "cql2/1.0/conf/spatial-functions",
        "ogcapi-features-4/1.0/conf/create-replace-delete",  # editing with approval (issue 17)
        "ogcapi-features-4/1.0/conf/update",
    ):
        assert any(c.endswith(suffix) for c in classes), suffix
