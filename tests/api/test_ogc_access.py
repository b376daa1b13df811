"""The OGC API's doors as each caller sees them (issue 11), through HTTP: a commune officer reads only own
communes at every door (items, single features, CSV, JSON-LD and HTML pages, tiles); a personal field only
with the personal-data grant; a restricted layer only for the accounts granted it; answers that depend on
who asks are private to the caller; links never come from a forged Host; and while PostGIS is down every
door answers 503 with Retry-After."""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mapbox_vector_tile
import psycopg
import pygeoapi.l10n
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.catalog import load_catalog
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.demo import DemoResult
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.publish.ogc import create_ogc_app
from gis_ioc.settings import Settings
from tests.conftest import INSIDE, SUITE_REQUEST, fresh_cluster, scalar

OWN = "11953"  # the commune officer's commune (Phường Phố Hiến)
BUILDINGS = "/ogc/collections/buildings"
POLICE = "/ogc/collections/police_posts"
VIEWER_HEADERS = {"authorization", "x-api-key", "cookie"}
ACCOUNTS: dict[str, tuple[list[str], list[str] | None, list[str] | None]] = {
    "officer": (["commune_officer"], [OWN], None),
    "personal": (["leader"], None, ["personal_data"]),
    "police": (["analyst"], None, ["police_posts"]),
    "external": (["external"], None, None),
}


@pytest.fixture(scope="module")
def who(settings: Settings, loaded: DemoResult, reader_key: str) -> dict[str, dict[str, str]]:
    """Headers of each kind of caller: anonymous, a leader (no personal data), a commune officer of
    :data:`OWN`, a leader granted personal data, an analyst granted police posts, an external client."""
    headers: dict[str, dict[str, str]] = {"anonymous": {}, "leader": {"X-API-Key": reader_key}}
    with connect(settings, autocommit=True) as conn:
        for name, (roles, communes, grants) in ACCOUNTS.items():
            username = f"ogc.{name}"
            accounts.create_account(
                conn,
                username=username,
                full_name="Trần Thị Bình",
                agency="Sở Xây dựng",
                roles=roles,
                ref=SUITE_REQUEST,
                actor="cli:test",
                communes=communes,
                grants=grants,
                with_password=False,  # API keys only
            )
            headers[name] = {"X-API-Key": accounts.issue_key(conn, username, SUITE_REQUEST, "cli:test")}
    return headers


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return z, y, x


@pytest.fixture(scope="module")
def mixed_tile(settings: Settings, loaded: DemoResult) -> str:
    """A zoom-14 tile of buildings holding buildings of :data:`OWN` and of a neighbouring commune."""
    with connect(settings) as db:
        lon, lat = db.execute(
            "SELECT ST_X(ST_Centroid(o.geom)), ST_Y(ST_Centroid(o.geom)) FROM layers.buildings o "
            "WHERE o.commune_code = %s AND EXISTS (SELECT 1 FROM layers.buildings n WHERE n.commune_code <> %s "
            "AND ST_DWithin(n.geom, o.geom, 0.001)) ORDER BY o.fid LIMIT 1",
            (OWN, OWN),
        ).fetchone()  # type: ignore[misc]
    z, row, col = tile_of(lon, lat, 14)
    return f"{BUILDINGS}/tiles/WebMercatorQuad/{z}/{row}/{col}"


def features_in_html(page: str) -> list[dict[str, Any]]:
    """The features pygeoapi's HTML items page embeds for its map (their properties)."""
    return [{"commune_code": c} for c in re.findall(r'"commune_code":\s*"(\d+)"', page)]


def tile_features(response: Any, layer: str = "buildings") -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(mapbox_vector_tile.decode(response.content)[layer]["features"])


# -- a commune officer: own communes only, at every door ---------------------------------------------------------


def test_a_commune_officer_reads_only_own_communes_in_json(
    anonymous: TestClient, who: dict[str, dict[str, str]], db: psycopg.Connection[Any]
) -> None:
    officer = who["officer"]
    own = scalar(db, "SELECT count(*) FROM layers.buildings WHERE commune_code = %s AND approval = 'approved'", (OWN,))
    hits = anonymous.get(f"{BUILDINGS}/items", params={"resulttype": "hits"}, headers=officer).json()
    assert hits["numberMatched"] == own < scalar(db, "SELECT count(*) FROM layers.buildings")
    page = anonymous.get(f"{BUILDINGS}/items", params={"limit": 1000, "sortby": "-commune_code"}, headers=officer)
    assert {f["properties"]["commune_code"] for f in page.json()["features"]} == {OWN}
    escape = anonymous.get(f"{BUILDINGS}/items", params={"filter": f"commune_code <> '{OWN}' OR true"}, headers=officer)
    assert escape.status_code == 200 and {f["properties"]["commune_code"] for f in escape.json()["features"]} <= {OWN}
    other = scalar(db, "SELECT min(fid) FROM layers.buildings WHERE commune_code <> %s", (OWN,))
    mine = scalar(db, "SELECT min(fid) FROM layers.buildings WHERE commune_code = %s", (OWN,))
    for f in ("json", "jsonld", "html"):
        assert anonymous.get(f"{BUILDINGS}/items/{other}", params={"f": f}, headers=officer).status_code == 404, f
        assert anonymous.get(f"{BUILDINGS}/items/{mine}", params={"f": f}, headers=officer).status_code == 200, f
        assert anonymous.get(f"{BUILDINGS}/items/{other}", params={"f": f}, headers=who["leader"]).status_code == 200


def test_a_commune_officer_reads_only_own_communes_in_html_and_csv(
    anonymous: TestClient, who: dict[str, dict[str, str]], db: psycopg.Connection[Any]
) -> None:
    top = scalar(db, "SELECT max(commune_code) FROM layers.buildings")
    assert top != OWN
    params = {"limit": 20, "sortby": "-commune_code"}
    leader = anonymous.get(f"{BUILDINGS}/items", params={**params, "f": "html"}, headers=who["leader"])
    officer = anonymous.get(f"{BUILDINGS}/items", params={**params, "f": "html"}, headers=who["officer"])
    assert leader.status_code == officer.status_code == 200
    assert leader.headers["content-type"].startswith("text/html")
    assert {f["commune_code"] for f in features_in_html(leader.text)} == {top}
    assert {f["commune_code"] for f in features_in_html(officer.text)} == {OWN}
    table = anonymous.get(f"{BUILDINGS}/items", params={**params, "f": "csv"}, headers=who["officer"])
    assert table.status_code == 200, table.text
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == 20 and {r["commune_code"] for r in rows} == {OWN}


def test_a_commune_officer_gets_tiles_of_own_communes_with_their_own_etag(
    anonymous: TestClient, who: dict[str, dict[str, str]], mixed_tile: str
) -> None:
    query = {"properties": "commune_code"}
    leader = anonymous.get(mixed_tile, params=query, headers=who["leader"])
    officer = anonymous.get(mixed_tile, params=query, headers=who["officer"])
    assert len({f["properties"]["commune_code"] for f in tile_features(leader)}) > 1
    assert {f["properties"]["commune_code"] for f in tile_features(officer)} == {OWN}
    assert leader.headers["etag"] != officer.headers["etag"]
    # the leader's ETag is no reason to answer the officer 304, nor the officer's the leader
    again = anonymous.get(mixed_tile, params=query, headers={**who["officer"], "If-None-Match": leader.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] == officer.headers["etag"]
    same = anonymous.get(mixed_tile, params=query, headers={**who["officer"], "If-None-Match": officer.headers["etag"]})
    assert same.status_code == 304


# -- personal fields: only with the personal-data grant ------------------------------------------------------------


def _unknown_alike(anonymous: TestClient, headers: dict[str, str], params: dict[str, str]) -> None:
    """Asking for ``households`` is refused exactly as asking for a field that does not exist."""
    refused = anonymous.get(f"{BUILDINGS}/items", params=params, headers=headers)
    ghost = {k.replace("households", "nosuchfield"): v.replace("households", "nosuchfield") for k, v in params.items()}
    unknown = anonymous.get(f"{BUILDINGS}/items", params=ghost, headers=headers)
    assert refused.status_code == unknown.status_code == 400, (params, refused.text)
    assert "households" in refused.json()["detail"]
    assert refused.json()["detail"].replace("households", "nosuchfield") == unknown.json()["detail"]
    html = anonymous.get(f"{BUILDINGS}/items", params={**params, "f": "html"}, headers=headers)
    assert html.status_code == 400, params


@pytest.mark.parametrize("name", ["leader", "officer"])
def test_households_are_absent_without_the_personal_data_grant(
    anonymous: TestClient, who: dict[str, dict[str, str]], mixed_tile: str, name: str
) -> None:
    headers = who[name]
    feature = anonymous.get(f"{BUILDINGS}/items", params={"limit": 1}, headers=headers).json()["features"][0]
    assert "floors" in feature["properties"] and "households" not in feature["properties"]
    single = anonymous.get(f"{BUILDINGS}/items/{feature['id']}", headers=headers).json()
    assert "floors" in single["properties"] and "households" not in single["properties"]
    for f in ("html", "jsonld", "csv"):
        page = anonymous.get(f"{BUILDINGS}/items", params={"limit": 3, "f": f}, headers=headers)
        assert page.status_code == 200 and "households" not in page.text, f
        assert f == "jsonld" or "floors" in page.text, f  # JSON-LD lists the features without their properties
    assert all("households" not in f["properties"] for f in tile_features(anonymous.get(mixed_tile, headers=headers)))
    star = anonymous.get(mixed_tile, params={"properties": "*"}, headers=headers)
    assert all("households" not in f["properties"] and "floors" in f["properties"] for f in tile_features(star))
    assert anonymous.get(mixed_tile, params={"properties": "households"}, headers=headers).status_code == 400
    for f in ("json", "html"):
        queryables = anonymous.get(f"{BUILDINGS}/queryables", params={"f": f}, headers=headers)
        assert queryables.status_code == 200 and "households" not in queryables.text and "floors" in queryables.text
    schema = anonymous.get(f"{BUILDINGS}/schema", params={"f": "json"}, headers=headers)
    assert schema.status_code == 200 and "households" not in schema.text
    tileset = anonymous.get(f"{BUILDINGS}/tiles/WebMercatorQuad", headers=headers)
    assert "households" not in tileset.text
    for params in ({"sortby": "households"}, {"properties": "households"}, {"filter": "households > 1"}):
        _unknown_alike(anonymous, headers, params)
    equal = anonymous.get(f"{BUILDINGS}/items", params={"households": "2", "lang": "en"}, headers=headers)
    assert equal.status_code == 400 and "unknown parameter 'households'" in equal.json()["detail"]
    assert "households" not in anonymous.get("/ogc/openapi", params={"f": "json"}, headers=headers).text


def test_households_are_present_with_the_personal_data_grant(
    anonymous: TestClient, who: dict[str, dict[str, str]], mixed_tile: str, db: psycopg.Connection[Any]
) -> None:
    headers = who["personal"]
    page = anonymous.get(
        f"{BUILDINGS}/items", params={"filter": "households > 1", "sortby": "-households", "limit": 5}, headers=headers
    )
    assert page.status_code == 200, page.text
    features = page.json()["features"]
    most = scalar(db, "SELECT max(households) FROM layers.buildings")
    assert features[0]["properties"]["households"] == most and all(f["properties"]["households"] > 1 for f in features)
    single = anonymous.get(f"{BUILDINGS}/items/{features[0]['id']}", headers=headers).json()
    assert single["properties"]["households"] == most
    star = anonymous.get(mixed_tile, params={"properties": "*"}, headers=headers)
    assert all("households" in f["properties"] for f in tile_features(star))
    assert "households" in anonymous.get(f"{BUILDINGS}/queryables", headers=headers).json()["properties"]
    table = anonymous.get(f"{BUILDINGS}/items", params={"f": "csv", "limit": 2}, headers=headers)
    assert "households" in table.text.splitlines()[0]
    html = anonymous.get(
        f"{BUILDINGS}/items", params={"f": "html", "sortby": "households", "limit": 2}, headers=headers
    )
    assert html.status_code == 200 and "households" in html.text


# -- restricted layers: only for the accounts granted them --------------------------------------------------------


def test_a_restricted_layer_is_published_to_the_accounts_granted_it(
    anonymous: TestClient, who: dict[str, dict[str, str]], db: psycopg.Connection[Any]
) -> None:
    granted = who["police"]
    count = scalar(db, "SELECT count(*) FROM layers.police_posts WHERE approval = 'approved'")
    name, lon, lat = db.execute(
        "SELECT name, ST_X(geom), ST_Y(geom) FROM layers.police_posts ORDER BY fid LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    z, row, col = tile_of(lon, lat, 14)
    listed = anonymous.get("/ogc/collections", params={"f": "json"}, headers=granted).json()["collections"]
    assert "police_posts" in {c["id"] for c in listed}
    assert "police_posts" in anonymous.get("/ogc/collections", params={"f": "html"}, headers=granted).text
    assert (
        anonymous.get(f"{POLICE}/items", params={"resulttype": "hits"}, headers=granted).json()["numberMatched"]
        == count
    )
    html = anonymous.get(f"{POLICE}/items", params={"f": "html", "limit": 200}, headers=granted)
    assert html.status_code == 200 and name in html.text
    tile = anonymous.get(
        f"{POLICE}/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"properties": "name"}, headers=granted
    )
    assert name in {f["properties"]["name"] for f in tile_features(tile, "police_posts")}
    for path in (
        POLICE,
        f"{POLICE}?f=html",
        f"{POLICE}/queryables",
        f"{POLICE}/tiles/WebMercatorQuad",
        f"{POLICE}/schema",
    ):
        assert anonymous.get(path, headers=granted).status_code == 200, path
    assert (
        "/collections/police_posts/items" in anonymous.get("/ogc/openapi", params={"f": "json"}, headers=granted).text
    )


@pytest.mark.parametrize("name", ["anonymous", "leader", "officer", "personal", "external"])
def test_a_restricted_layer_is_not_there_for_anyone_else(
    anonymous: TestClient, who: dict[str, dict[str, str]], db: psycopg.Connection[Any], name: str
) -> None:
    headers = who[name]
    fid = scalar(db, "SELECT min(fid) FROM layers.police_posts")
    listed = anonymous.get("/ogc/collections", params={"f": "json"}, headers=headers).json()["collections"]
    assert "police_posts" not in {c["id"] for c in listed}
    assert "police_posts" not in anonymous.get("/ogc/collections", params={"f": "html"}, headers=headers).text
    assert "police_posts" not in anonymous.get("/ogc/openapi", params={"f": "json"}, headers=headers).text
    for path in (
        POLICE,
        f"{POLICE}?f=html",
        f"{POLICE}/items",
        f"{POLICE}/items?f=html",
        f"{POLICE}/items?f=csv",
        f"{POLICE}/items/{fid}",
        f"{POLICE}/items/{fid}?f=html",
        f"{POLICE}/queryables",
        f"{POLICE}/queryables?f=html",
        f"{POLICE}/schema",
        f"{POLICE}/tiles",
        f"{POLICE}/tiles/WebMercatorQuad/14/7252/13018",
    ):
        assert anonymous.get(path, headers=headers).status_code == 404, (name, path)


# -- caching: answers that depend on who asks are private --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{BUILDINGS}/items?limit=2",
        f"{BUILDINGS}/items?limit=2&f=html",
        f"{BUILDINGS}/items?limit=2&f=csv",
        f"{BUILDINGS}/items/1",
        f"{BUILDINGS}/items/1?f=html",
        f"{BUILDINGS}/queryables",
        BUILDINGS,
        f"{BUILDINGS}/tiles/WebMercatorQuad",
        "/ogc/collections/land_parcels/tiles/WebMercatorQuad/14/7251/13016",
        "/ogc/collections",
        "/ogc/openapi?f=json",
    ],
)
def test_answers_that_depend_on_who_asks_are_private(
    anonymous: TestClient, who: dict[str, dict[str, str]], path: str
) -> None:
    answer = anonymous.get(path, headers=who["leader"])
    assert answer.status_code in (200, 204), (path, answer.status_code)
    assert answer.headers["cache-control"].startswith("private"), path
    assert {v.strip().lower() for v in answer.headers["vary"].split(",")} >= VIEWER_HEADERS, path
    refused = anonymous.get(path)  # what an anonymous caller gets must not be served to others either
    if refused.status_code == 404:
        assert refused.headers["cache-control"].startswith("private"), path


def test_public_tiles_stay_publicly_cacheable(anonymous: TestClient, who: dict[str, dict[str, str]]) -> None:
    z, row, col = tile_of(106.05, 20.65, 12)
    for headers in ({}, who["leader"]):
        tile = anonymous.get(f"/ogc/collections/roads/tiles/WebMercatorQuad/{z}/{row}/{col}", headers=headers)
        assert tile.status_code == 200 and tile.headers["cache-control"].startswith("public")


# -- logged-in users on pygeoapi's HTML pages ----------------------------------------------------------------------


@pytest.fixture
def session(anonymous: TestClient, settings: Settings) -> Iterator[dict[str, str]]:
    """A leader logged in to the web map (session cookie); logged out afterwards."""
    username = f"ogc.session-{secrets.token_hex(3)}"
    with connect(settings, autocommit=True) as conn:
        _, first = accounts.create_account(
            conn,
            username=username,
            full_name="Phạm Văn Cường",
            agency="UBND tỉnh",
            roles=["leader"],
            ref=SUITE_REQUEST,
            actor="cli:test",
        )
    new = f"Sông Hồng chảy qua Phố Hiến {secrets.token_hex(4)}"
    assert anonymous.post("/api/auth/login", json={"username": username, "password": first}).status_code == 200
    changed = anonymous.post("/api/auth/password", json={"old_password": first, "new_password": new})
    assert changed.status_code == 200, changed.text
    login = anonymous.post("/api/auth/login", json={"username": username, "password": new})
    assert login.status_code == 200, login.text
    token = anonymous.cookies.get("gis_ioc_session")
    anonymous.cookies.clear()
    assert token
    try:
        yield {"Cookie": f"gis_ioc_session={token}"}
    finally:
        anonymous.post("/api/auth/logout", headers={"Cookie": f"gis_ioc_session={token}"})
        anonymous.cookies.clear()


def test_logged_in_users_get_the_html_pages_of_internal_collections(
    anonymous: TestClient, who: dict[str, dict[str, str]], session: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """pygeoapi kept the configuration its templates see from the first HTML page of the process: after an
    anonymous page, the HTML pages of internal collections failed (500) for everyone logged in."""
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Accept-Language": "vi"}
    codes = [r[0] for r in db.execute("SELECT parcel_code FROM layers.land_parcels ORDER BY fid LIMIT 3")]
    fid = scalar(db, "SELECT min(fid) FROM layers.land_parcels")
    pygeoapi.l10n._cfg_cache.clear()  # as in a fresh process, whose first page is an anonymous caller's
    assert anonymous.get("/ogc/collections", headers=browser).status_code == 200
    assert anonymous.get("/ogc/collections/land_parcels", headers=browser).status_code == 404
    for headers in (session, who["leader"]):
        page = anonymous.get("/ogc/collections/land_parcels/items", params={"limit": 3}, headers={**browser, **headers})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:300]
        assert all(code in page.text for code in codes)
        for path in ("/ogc/collections", "/ogc/collections/land_parcels", f"/ogc/collections/land_parcels/items/{fid}"):
            answer = anonymous.get(path, headers={**browser, **headers})
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), path
            assert "Thửa đất" in answer.text, path
    officer = anonymous.get(
        "/ogc/collections/buildings/items",
        params={"limit": 20, "sortby": "-commune_code"},
        headers={**browser, **who["officer"]},
    )
    assert officer.status_code == 200 and {f["commune_code"] for f in features_in_html(officer.text)} == {OWN}


# -- links never from a forged Host ------------------------------------------------------------------------------

FORGED = "evil.example"
PAGES = [
    "/ogc/?f=html",
    "/ogc/collections?f=html",
    "/ogc/collections?f=json",
    "/ogc/collections/schools?f=html",
    "/ogc/collections/schools/items?f=html&limit=2",
    "/ogc/collections/schools/items?limit=2",
    "/ogc/collections/schools/items/1",
    "/ogc/collections/schools/tiles",
    "/ogc/openapi?f=json",
]


def test_a_forged_host_never_reaches_an_answer(anonymous: TestClient) -> None:
    for path in PAGES:
        answer = anonymous.get(path, headers={"Host": f"{FORGED}:8000"})
        assert answer.status_code in (200, 400), path  # the front door may refuse the host outright
        assert FORGED not in answer.text and FORGED not in str(answer.headers), path
    for path in PAGES:  # nor what is cached for the next callers
        assert FORGED not in anonymous.get(path).text, path


@pytest.fixture(scope="module")
def bare_ogc(anonymous: TestClient) -> Iterator[tuple[TestClient, str]]:
    """The OGC application alone, without the front door (which refuses unknown hosts): its own links must
    be safe as well. The host 10.20.30.40:8080 is allowed besides the configured ones."""
    state = anonymous.app.state  # type: ignore[attr-defined]
    config = state.pygeoapi_config
    config = {**config, "x-gis_ioc": {**config["x-gis_ioc"], "allowed_hosts": ["10.20.30.40:8080", "testserver"]}}
    app = Starlette(routes=[Mount("/ogc", create_ogc_app(config, state.catalog, state.pool, None, "/ogc"))])
    with TestClient(app, client=INSIDE) as client:
        yield client, config["server"]["url"]


def test_the_ogc_application_builds_links_only_from_allowed_hosts(bare_ogc: tuple[TestClient, str]) -> None:
    client, configured = bare_ogc
    pygeoapi.l10n._cfg_cache.clear()  # as in a fresh process, whose first page comes with a forged Host
    for path in PAGES:
        answer = client.get(path, headers={"Host": FORGED})
        assert answer.status_code == 200, (path, answer.text[:200])
        assert FORGED not in answer.text, path
    links = client.get("/ogc/collections/schools/items?limit=1", headers={"Host": FORGED}).json()["links"]
    assert links and all(link["href"].startswith(f"{configured}/collections/schools") for link in links)
    openapi = client.get("/ogc/openapi?f=json", headers={"Host": FORGED}).json()
    assert openapi["servers"][0]["url"] == configured
    # an allowed host is the address the client reached the server at: its links follow it
    allowed = {"Host": "10.20.30.40:8080"}
    links = client.get("/ogc/collections/schools/items?limit=1", headers=allowed).json()["links"]
    assert all(link["href"].startswith("http://10.20.30.40:8080/ogc/") for link in links)
    html = client.get("/ogc/collections?f=html", headers=allowed).text
    assert "http://10.20.30.40:8080/ogc/static/" in html and FORGED not in html
    # each address's pages keep their own links: the first page rendered does not decide the others'
    assert "http://testserver/ogc/static/" in client.get("/ogc/collections?f=html").text
    assert (
        client.get("/ogc/openapi?f=json", headers=allowed).json()["servers"][0]["url"] == "http://10.20.30.40:8080/ogc"
    )
    assert FORGED not in client.get("/ogc/collections?f=html").text


# -- PostGIS down: 503 with Retry-After at every door, soon ------------------------------------------------------

OUTAGE = [
    "/ogc/collections/communes/items?limit=2",
    "/ogc/collections/communes/items?limit=2&f=html",
    "/ogc/collections/communes/items?limit=2&f=csv",
    "/ogc/collections/communes/items?limit=2&f=jsonld",
    "/ogc/collections/communes/items/1",
    "/ogc/collections/communes/items/1?f=html",
    "/ogc/collections/communes/items/1?f=jsonld",
    "/ogc/collections/communes/tiles/WebMercatorQuad/10/451/816",
]


def test_every_door_answers_503_while_postgis_is_down() -> None:
    with fresh_cluster("gis-ioc-ogc-outage-") as (settings, cluster):
        catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
        with connect(settings, autocommit=True) as conn:
            upgrade(conn, catalog)
            load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
        with TestClient(create_app(settings), client=INSIDE) as client:
            assert all(client.get(path).status_code in (200, 204) for path in OUTAGE)
            cluster.stop()
            try:

                def ask(path: str) -> tuple[Any, float]:
                    started = time.monotonic()
                    return client.get(path), time.monotonic() - started

                with ThreadPoolExecutor(len(OUTAGE)) as workers:
                    answers = list(workers.map(ask, OUTAGE))
            finally:
                cluster.start()
            for path, (answer, seconds) in zip(OUTAGE, answers, strict=True):
                assert answer.status_code == 503 and answer.headers.get("retry-after") == "5", (path, answer.text[:300])
                html = "f=html" in path
                kind = answer.headers["content-type"]
                assert kind.startswith("text/html") if html else kind == "application/problem+json", (path, kind)
                assert seconds < 12, (path, seconds)  # within the statement timeout, never a hang
