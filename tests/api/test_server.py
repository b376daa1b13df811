"""The ASGI application: every published layer answers as an OGC API Features collection;
the health endpoint reports the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from pygeoapi.config import validate_config

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.catalog import Catalog
from gis_ioc.catalog import load_catalog as _load
from gis_ioc.demo import DemoResult
from gis_ioc.publish.config import PROVINCE_BBOX, published_layers, render_config
from gis_ioc.settings import PROJECT_ROOT, Settings
from tests.conftest import SUITE_REQUEST, free_port, scalar, serve

PUBLISHED = [
    lyr.id
    for lyr in _load(PROJECT_ROOT / "layers", PROJECT_ROOT / "styles", PROJECT_ROOT / "config")
    if lyr.access != "restricted"
]


def test_rendered_config_validates_against_pygeoapi_schema(
    settings: Settings, catalog: Catalog, db: psycopg.Connection[Any]
) -> None:
    config = render_config(settings, catalog, db)
    assert validate_config(config)
    collections = {k for k, v in config["resources"].items() if v["type"] == "collection"}
    assert collections == {layer.id for layer in catalog}  # restricted ones too: shown to those granted them
    processes = {k for k, v in config["resources"].items() if v["type"] == "process"}
    assert "scenario-emergency" in processes and "scenario-health" in processes
    parcels = config["resources"]["land_parcels"]
    assert parcels["title"] == {"vi": "Thửa đất", "en": "Land parcels"}
    assert parcels["providers"][0]["table"] == "layers.land_parcels"
    assert parcels["limits"] == {"default_items": 10, "max_items": 1000}
    assert config["server"]["url"] == f"{settings.base_url}/ogc"
    planning = config["resources"]["planning_zones"]
    assert planning["providers"][0]["time_field"] == "approval_date"
    assert planning["extents"]["temporal"]["begin"] <= planning["extents"]["temporal"]["end"]


def test_root_is_the_web_map_and_ogc_has_its_landing_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 200 and "maplibre-gl.js" in response.text  # the leaders' web map
    landing = client.get("/ogc/", params={"f": "json"})
    assert landing.status_code == 200
    assert "Hưng Yên" in landing.json()["title"]
    assert landing.json()["title"].startswith("Trung tâm")  # Vietnamese by default
    english = client.get("/ogc/", params={"f": "json", "lang": "en"})
    assert english.json()["title"].startswith("Hưng Yên Intelligent Operations Center")


def test_collections_list_every_published_layer(client: TestClient, catalog: Catalog) -> None:
    body = client.get("/ogc/collections", params={"f": "json"}).json()
    ids = {c["id"] for c in body["collections"]}
    assert ids == {layer.id for layer in published_layers(catalog)}
    assert "police_posts" not in ids  # restricted: only for the accounts granted it (tests/api/test_ogc_access.py)
    assert client.get("/ogc/collections/police_posts/items").status_code == 404


@pytest.mark.parametrize("layer_id", PUBLISHED)
def test_every_collection_answers_with_its_features(
    client: TestClient, db: psycopg.Connection[Any], layer_id: str
) -> None:
    meta = client.get(f"/ogc/collections/{layer_id}", params={"f": "json"})
    assert meta.status_code == 200
    bbox = meta.json()["extent"]["spatial"]["bbox"][0]
    assert PROVINCE_BBOX[0] <= bbox[0] <= bbox[2] <= PROVINCE_BBOX[2]
    assert PROVINCE_BBOX[1] <= bbox[1] <= bbox[3] <= PROVINCE_BBOX[3]
    items = client.get(f"/ogc/collections/{layer_id}/items", params={"f": "json", "limit": 3})
    assert items.status_code == 200
    page = items.json()
    expected = min(3, scalar(db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("layers", layer_id))))
    assert page["numberReturned"] == len(page["features"]) == expected
    feature = page["features"][0]
    one = client.get(f"/ogc/collections/{layer_id}/items/{feature['id']}", params={"f": "json"})
    assert one.status_code == 200 and one.json()["properties"] == feature["properties"]


def test_feature_properties_and_geometry_match_the_database(client: TestClient, db: psycopg.Connection[Any]) -> None:
    fid, code, name = db.execute("SELECT fid, code, name FROM layers.communes WHERE code = '11953'").fetchone()  # type: ignore[misc]
    feature = client.get(f"/ogc/collections/communes/items/{fid}", params={"f": "json"}).json()
    assert feature["properties"]["code"] == code and feature["properties"]["name"] == name == "Phường Phố Hiến"
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert (
        abs(
            feature["properties"]["area_km2"]
            - scalar(db, "SELECT ST_Area(geom::geography) / 1e6 FROM layers.communes WHERE code = '11953'")
        )
        < 0.001
    )


def test_bbox_selects_what_postgis_selects(client: TestClient, db: psycopg.Connection[Any]) -> None:
    bbox = (106.04, 20.64, 106.06, 20.66)  # around Phố Hiến
    expected = scalar(
        db,
        "SELECT count(*) FROM layers.land_parcels WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        bbox,
    )
    assert expected > 0
    body = client.get(
        "/ogc/collections/land_parcels/items", params={"f": "json", "bbox": ",".join(map(str, bbox)), "limit": 1000}
    ).json()
    assert len({f["id"] for f in body["features"]}) == min(expected, 1000)
    hits = client.get(
        "/ogc/collections/land_parcels/items", params={"bbox": ",".join(map(str, bbox)), "resulttype": "hits"}
    ).json()
    assert hits["numberMatched"] == expected


def test_unknown_feature_is_404(client: TestClient) -> None:
    assert client.get("/ogc/collections/schools/items/999999999", params={"f": "json"}).status_code == 404


def test_health_reports_the_database(
    client: TestClient, anonymous: TestClient, settings: Settings, db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    username = "server.admin"
    accounts.create_account(
        db,
        username=username,
        full_name="Quản trị hệ thống",
        agency="Trung tâm IOC",
        roles=["administrator"],
        ref=SUITE_REQUEST,
        actor="cli:test",
        with_password=False,
    )
    admin = {"X-API-Key": accounts.issue_key(db, username, SUITE_REQUEST, "cli:test")}
    body = anonymous.get("/api/health", headers=admin).json()
    assert body["status"] == "ok"
    database = body["database"]
    assert database["reachable"] and database["postgis_version"].startswith("3.")
    assert database["migrations_pending"] == []
    assert database["layers"]["land_parcels"] == 200_000
    assert database["layers"]["communes"] == 104
    assert set(database["layers"]) == set(catalog.layers)
    assert set(body["collections"]) == set(catalog.layers)
    for who in (client, anonymous):  # the detail (layer names and counts) is for administrators only
        assert who.get("/api/health").json() == {
            "version": body["version"],
            "status": "ok",
            "database": {"reachable": True},
        }
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_database_down_gives_503_not_500(settings: Settings) -> None:
    down = settings.model_copy(update={"db_port": free_port(), "home": settings.home})
    with TestClient(create_app(down)) as c:
        health = c.get("/api/health")
        assert health.status_code == 503 and health.headers["retry-after"] == "5"
        assert health.json()["database"]["reachable"] is False
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["content-type"] == "application/problem+json"
        assert c.get("/healthz").status_code == 200


def test_gis_ioc_serve_runs_a_real_server(settings: Settings, loaded: DemoResult, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serve(settings, log) as base:
        collections = httpx.get(f"{base}/ogc/collections", params={"f": "json"}).json()
        communes = next(c for c in collections["collections"] if c["id"] == "communes")
        # links carry the address the server is reached at
        assert any(link["href"].startswith(f"{base}/ogc/collections/communes") for link in communes["links"])
        html = httpx.get(f"{base}/ogc/collections", params={"f": "html"})
        assert html.status_code == 200 and "Xã, phường" in html.text
    assert f"serving Hưng Yên at {base}/" in log.read_text()


def test_links_and_openapi_servers_follow_the_address_reached(settings: Settings, loaded: DemoResult) -> None:
    """An allowed host (GIS_IOC_ALLOWED_HOSTS) is the address links are built from; a forged one never is
    (tests/api/test_ogc_access.py)."""
    other = settings.model_copy(update={"allowed_hosts": "testserver,10.20.30.40:8080"})
    headers = {"Host": "10.20.30.40:8080"}
    with TestClient(create_app(other)) as client:
        collections = client.get("/ogc/collections", params={"f": "json"}, headers=headers).json()
        hrefs = [link["href"] for c in collections["collections"] for link in c["links"] if link["rel"] == "self"]
        assert hrefs and all(h.startswith("http://10.20.30.40:8080/ogc/") for h in hrefs)
        openapi = client.get("/ogc/openapi", params={"f": "json"}, headers=headers).json()
        assert openapi["servers"][0]["url"] == "http://10.20.30.40:8080/ogc"
        page = client.get("/ogc/collections/schools/items", params={"limit": 1}, headers=headers).json()
        assert all(link["href"].startswith("http://10.20.30.40:8080/ogc/") for link in page["links"])
        # and the default address still answers with its own links
        default = client.get("/ogc/collections", params={"f": "json"}).json()
        assert default["collections"][0]["links"][1]["href"].startswith("http://testserver/ogc")


def test_openapi_is_self_contained(client: TestClient) -> None:
    text = client.get("/ogc/openapi", params={"f": "json"}).text.replace(" ", "")
    assert '"$ref":"http' not in text
    assert "/collections/land_parcels/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}" in text


def test_public_url_sets_every_link(settings: Settings, loaded: DemoResult) -> None:
    public = settings.model_copy(
        update={"public_url": "https://gis.hungyen.example", "allowed_hosts": "testserver,10.0.0.9"}
    )
    with TestClient(create_app(public)) as c:
        page = c.get("/ogc/collections/schools/items", params={"limit": 1}, headers={"Host": "10.0.0.9"}).json()
        assert {link["href"].split("?")[0] for link in page["links"]} >= {
            "https://gis.hungyen.example/ogc/collections/schools/items",
            "https://gis.hungyen.example/ogc/collections/schools",
        }
        meta = c.get("/ogc/collections/schools", params={"f": "json"}, headers={"Host": "10.0.0.9"}).json()
        assert any(li["href"] == "https://gis.hungyen.example/ogc/collections/schools?f=json" for li in meta["links"])


def test_limit_is_a_shared_component_every_items_path_refers_to(client: TestClient) -> None:
    """QGIS takes the page size from #/components/parameters/limit (pages of 100 without it)."""
    doc = client.get("/ogc/openapi?f=json").json()
    limit = doc["components"]["parameters"]["limit"]
    assert limit["name"] == "limit" and limit["schema"]["default"] == 10 and limit["schema"]["maximum"] == 1000
    items = [path for path in doc["paths"] if path.endswith("/items")]
    assert len(items) >= 10
    for path in items:
        parameters = doc["paths"][path]["get"]["parameters"]
        assert {"$ref": "#/components/parameters/limit"} in parameters, path
        assert not any(isinstance(p, dict) and p.get("name") == "limit" for p in parameters), path
