"""Data versions across server processes: every change to a layer's rows bumps its version and notifies
every process; tiles are cached per (layer, tile, viewer class, version) and never served stale.

Two applications made by ``create_app`` stand for two worker processes: each has its own listener and
its own cache, and only PostgreSQL links them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.catalog import Catalog
from gis_ioc.database.versions import TRIGGER, VersionedCache
from gis_ioc.settings import Settings
from tests.api.test_tiles import tile_of
from tests.conftest import INSIDE, SUITE_REQUEST, key_account, scalar

Z, ROW, COL = tile_of(106.05, 20.65, 14)
TILE = f"/ogc/collections/land_parcels/tiles/WebMercatorQuad/{Z}/{ROW}/{COL}"


@pytest.fixture(scope="module")
def workers(settings: Settings, loaded: Any, reader_key: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two applications on the suite's database, each with its lifespan (and so its listener) running."""
    with (
        TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as a,
        TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as b,
    ):
        for c in (a, b):
            assert app_of(c).state.versions.wait_live(10), "the data-version listener did not connect"
        yield a, b


def app_of(client: TestClient) -> FastAPI:
    app: FastAPI = client.app  # type: ignore[assignment]
    return app


def version_in(client: TestClient, table: str) -> int | None:
    got: int | None = app_of(client).state.versions.get(table)
    return got


def wait_for_version(client: TestClient, table: str, version: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (version_in(client, table) or 0) < version:
        assert time.monotonic() < deadline, f"{table} version {version} never reached this process"
        time.sleep(0.02)


def tile_cache(client: TestClient) -> VersionedCache:
    cache: VersionedCache = app_of(client).state.tile_cache
    return cache


def test_every_layer_table_has_its_version_and_trigger(db: psycopg.Connection[Any], catalog: Catalog) -> None:
    tables = {layer.table for layer in catalog}
    versioned = {r[0] for r in db.execute("SELECT layer_table FROM gis_ioc.data_versions")}
    assert tables <= versioned
    triggered = {
        r[0]
        for r in db.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'layers' AND t.tgname = %s",
            (TRIGGER,),
        )
    }
    assert triggered == tables


def test_a_statement_bumps_the_version_once_and_every_process_hears_it(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any]
) -> None:
    a, b = workers
    before = scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = 'schools'")
    db.execute("UPDATE layers.schools SET updated_at = updated_at WHERE fid IN (SELECT fid FROM layers.schools)")
    after = scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = 'schools'")
    assert after == before + 1  # one statement touching every row: one bump
    for client in (a, b):
        wait_for_version(client, "schools", after)
    with db.transaction(force_rollback=True):  # a rolled-back change bumps nothing anyone sees
        db.execute("UPDATE layers.schools SET updated_at = updated_at")
    assert scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = 'schools'") == after


def test_a_tile_is_cached_until_its_layer_changes_in_another_process(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any]
) -> None:
    a, b = workers
    cache = tile_cache(a)
    first = a.get(TILE)
    assert first.status_code == 200
    hits = cache.hits
    again = a.get(TILE)
    assert again.content == first.content and cache.hits == hits + 1  # answered from the cache
    fid, code = db.execute(
        "SELECT fid, parcel_code FROM layers.land_parcels "
        "WHERE geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326) ORDER BY fid LIMIT 1",
        (Z, COL, ROW),
    ).fetchone()  # type: ignore[misc]
    try:
        db.execute("UPDATE layers.land_parcels SET parcel_code = 'ĐÃ-SỬA-1' WHERE fid = %s", (fid,))
        version = scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = 'land_parcels'")
        wait_for_version(a, "land_parcels", version)  # the change was made by neither process
        changed = a.get(TILE)
        features = mapbox_vector_tile.decode(changed.content)["land_parcels"]["features"]
        assert {f["properties"]["parcel_code"] for f in features if f["id"] == fid} == {"ĐÃ-SỬA-1"}
        assert changed.headers["etag"] != first.headers["etag"]
        wait_for_version(b, "land_parcels", version)
        assert b.get(TILE).content == changed.content  # the other process agrees
    finally:
        db.execute("UPDATE layers.land_parcels SET parcel_code = %s WHERE fid = %s", (code, fid))


def test_a_cached_tile_is_never_shared_across_viewer_classes(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any], settings: Settings
) -> None:
    a, _ = workers
    communes = [r[0] for r in db.execute("SELECT DISTINCT commune_code FROM layers.land_parcels ORDER BY 1 LIMIT 2")]
    here = scalar(
        db,
        "SELECT commune_code FROM layers.land_parcels "
        "WHERE geom && ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326) GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        (Z, COL, ROW),
    )
    elsewhere = next(c for c in communes if c != here)
    key = key_account(db, "versions.officer", ["commune_officer"], full_name="Cán bộ xã", communes=[elsewhere])
    assert a.get(TILE).status_code == 200  # the leader's tile is now cached
    officer = a.get(TILE, headers={"X-API-Key": key})
    if officer.status_code == 200:
        features = mapbox_vector_tile.decode(officer.content)["land_parcels"]["features"]
        allowed = {
            r[0] for r in db.execute("SELECT fid FROM layers.land_parcels WHERE commune_code = %s", (elsewhere,))
        }
        assert {f["id"] for f in features} <= allowed
    else:
        assert officer.status_code == 204  # none of the officer's rows in this tile


def test_without_the_listener_nothing_is_cached(settings: Settings, loaded: Any, reader_key: str) -> None:
    app = create_app(settings)  # no lifespan: the listener never starts, versions stay unknown
    client = TestClient(app, headers={"X-API-Key": reader_key}, client=INSIDE)
    assert client.get(TILE).status_code == 200
    assert len(tile_cache(client)) == 0


def test_an_api_key_is_looked_up_once_and_a_lock_anywhere_takes_effect_at_once(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any]
) -> None:
    a, _ = workers
    key = key_account(db, "versions.client", ["leader"], full_name="Hệ thống khách")
    wait_for_version(
        a, "~credentials", scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = '~credentials'")
    )
    internal = "/ogc/collections/land_parcels/items?limit=1"
    assert a.get(internal, headers={"X-API-Key": key}).status_code == 200
    cache = app_of(a).state.principals
    assert cache.get(key) is not None and cache.get(key).username == "versions.client"
    assert a.get(internal, headers={"X-API-Key": key}).status_code == 200  # from the cache
    accounts.lock(db, "versions.client", SUITE_REQUEST, "cli:test", reason="test")  # by another process
    version = scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = '~credentials'")
    wait_for_version(a, "~credentials", version)
    assert cache.get(key) is None
    assert a.get(internal, headers={"X-API-Key": key}).status_code == 401
    # a key in the address is refused whatever the cache holds
    assert a.get(internal + "&api_key=x", headers={"X-API-Key": reader_key_of(a)}).status_code == 400


def reader_key_of(client: TestClient) -> str:
    return str(client.headers["x-api-key"])


def test_features_and_pages_are_cached_per_version_and_viewer_class(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any], anonymous: TestClient
) -> None:
    a, b = workers
    cache = app_of(a).state.answer_cache
    fid, name = db.execute("SELECT fid, name FROM layers.schools ORDER BY fid LIMIT 1").fetchone()  # type: ignore[misc]
    url = f"/ogc/collections/schools/items/{fid}"
    first = a.get(url)
    assert first.status_code == 200 and first.json()["properties"]["name"] == name
    hits = cache.hits
    assert a.get(url).content == first.content and cache.hits == hits + 1
    page = "/ogc/collections/land_parcels/items?limit=5&bbox=106.04,20.64,106.06,20.66"
    leader_page = a.get(page)
    assert leader_page.status_code == 200 and leader_page.json()["numberReturned"] == 5
    assert a.get(page, headers={"X-API-Key": ""}).status_code == 404  # anonymous: the internal layer is hidden
    try:
        db.execute("UPDATE layers.schools SET name = 'Trường đã đổi tên' WHERE fid = %s", (fid,))
        version = scalar(db, "SELECT version FROM gis_ioc.data_versions WHERE layer_table = 'schools'")
        for client in (a, b):
            wait_for_version(client, "schools", version)
            assert client.get(url).json()["properties"]["name"] == "Trường đã đổi tên"
    finally:
        db.execute("UPDATE layers.schools SET name = %s WHERE fid = %s", (name, fid))
    assert a.get(url + "?crs=http://www.opengis.net/def/crs/EPSG/0/9209").headers["content-crs"].endswith("9209>")
    missing = a.get("/ogc/collections/schools/items/999999999")
    assert missing.status_code == 404 and a.get("/ogc/collections/schools/items/999999999").status_code == 404
