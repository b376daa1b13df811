"""OGC API Features conformance (issue 17, item 3), on every collection a GIS officer sees.

What an independent conformance run checks, asserted here against the real server: ``datetime`` is taken
by every collection (on one without time it selects every feature, as Part 1 says for collections without
temporal information) and declared for its items in the API definition, with ``filter``, ``filter-lang``
and ``filter-crs`` (Part 3); a ``bbox`` of six numbers (with heights) selects what its four horizontal
numbers select; a single feature links to itself, to its HTML page and to its collection. Malformed
values stay 400s that name the problem.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import key_account

GEOJSON = "application/geo+json"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
Headers = dict[str, str]


@pytest.fixture(scope="module")
def officer(settings: Settings, loaded: DemoResult) -> Headers:
    """The headers of a GIS officer (reads every layer but the restricted ones)."""
    with connect(settings, autocommit=True) as conn:
        return {"X-API-Key": key_account(conn, "conformance.gis", ["gis_officer"])}


@pytest.fixture(scope="module")
def collections(client: TestClient, officer: Headers, catalog: Catalog) -> list[dict[str, Any]]:
    """Every collection the GIS officer sees, as /collections describes it."""
    listed = client.get("/ogc/collections", params={"f": "json"}, headers=officer)
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()["collections"]
    expected = {layer.id for layer in catalog if layer.access != "restricted"}
    assert {c["id"] for c in found} == expected and len(found) == 17
    return found


def _get(client: TestClient, url: str, headers: Headers, **params: str) -> Any:
    response = client.get(url, params=params, headers=headers)
    assert response.status_code == 200, f"{url} {params}: {response.text[:300]}"
    assert response.headers["content-type"] == GEOJSON
    return response.json()


def _ids(client: TestClient, cid: str, headers: Headers, **params: str) -> list[Any]:
    body = _get(client, f"/ogc/collections/{cid}/items", headers, limit="20", skipGeometry="true", **params)
    return [f["id"] for f in body["features"]]


def _error(client: TestClient, url: str, headers: Headers, **params: str) -> str:
    """The 400's detail, asked in English (the default is Vietnamese)."""
    response = client.get(url, params=params, headers={**headers, "Accept-Language": "en"})
    assert response.status_code == 400, f"{url} {params}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["detail"])


# -- the API definition ------------------------------------------------------------------------------------------


def test_the_api_definition_declares_datetime_and_filter_for_every_collection(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]]
) -> None:
    doc = client.get("/ogc/openapi", params={"f": "json"}, headers=officer).json()
    components = doc["components"]["parameters"]

    def resolve(parameter: dict[str, Any]) -> dict[str, Any]:
        ref = parameter.get("$ref")
        if ref is None:
            return parameter
        assert ref.startswith("#/components/parameters/"), ref  # self-contained: never an outside address
        found: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return found

    for collection in collections:
        operation = doc["paths"][f"/collections/{collection['id']}/items"]["get"]
        declared = [resolve(p) for p in operation["parameters"]]
        names = [p["name"] for p in declared if p["in"] == "query"]
        assert len(names) == len(set(names)), collection["id"]  # each parameter declared once
        query = {p["name"]: p for p in declared if p["in"] == "query"}
        assert {"bbox", "datetime", "filter", "filter-lang", "filter-crs"} <= set(query), collection["id"]
        assert query["datetime"]["schema"]["type"] == "string"
        assert query["bbox"]["schema"]["minItems"] == 4 and query["bbox"]["schema"]["maxItems"] == 6
        assert query["filter-lang"]["schema"]["enum"] == ["cql2-text", "cql2-json"]
        assert f"{EPSG}9209" in query["filter-crs"]["schema"]["enum"]


# -- datetime ------------------------------------------------------------------------------------------------------


def test_every_collection_takes_datetime(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]], catalog: Catalog
) -> None:
    """Instants and intervals (closed, open at either end) are answered on every collection, against its time
    (issue 17): a layer without a time field of its own answers from its history, the features as they
    stood then (all of them to an interval reaching the present); nothing is answered before the data began."""
    for collection in collections:
        cid = collection["id"]
        every = _ids(client, cid, officer)
        assert every, cid  # the demo fills every layer
        for value in ("2026-11-01T08:30:00Z", "2026-11-01", "2020-01-01/2026-11-27T23:59:59Z", "../2026-11-27"):
            _ids(client, cid, officer, datetime=value)  # answered (the demo's data may be younger)
        layer = catalog.layers[cid]
        if not (layer.versioned or layer.temporal):  # its history
            assert _ids(client, cid, officer, datetime="2020-01-01T00:00:00+07:00/..") == every, cid
        past = _ids(client, cid, officer, datetime="1900-01-01/1900-12-31")
        assert past == [], cid


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "datetime 'soon' is not RFC 3339"),
        ("2026-02-30", "datetime '2026-02-30' is not a valid date or time"),
        ("2026-11-27/2026-01-01", "datetime interval ends before it begins"),
        ("2026-01-01/2026-02-01/2026-03-01", "more than two ends"),
        ("../..", "open at both ends"),
    ],
)
def test_a_malformed_datetime_is_a_400_naming_it_on_every_collection(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]], value: str, message: str
) -> None:
    for collection in collections:
        assert message in _error(client, f"/ogc/collections/{collection['id']}/items", officer, datetime=value)


def test_datetime_in_html_too(client: TestClient, officer: Headers) -> None:
    page = client.get(
        "/ogc/collections/schools/items",
        params={"f": "html", "datetime": "2026-11-01/..", "limit": "2"},
        headers=officer,
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Trường" in page.text


# -- bbox with heights ----------------------------------------------------------------------------------------------


def _positions(coordinates: Any) -> list[list[float]]:
    if isinstance(coordinates[0], (int, float)):
        return [coordinates]
    return [p for part in coordinates for p in _positions(part)]


def test_a_bbox_with_heights_selects_what_its_horizontal_numbers_select(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]]
) -> None:
    for collection in collections:
        cid = collection["id"]
        first = _get(client, f"/ogc/collections/{cid}/items", officer, limit="1")["features"][0]
        xs, ys = zip(*(p[:2] for p in _positions(first["geometry"]["coordinates"])), strict=True)
        # a box around the first feature, some 5 km wide
        x0, y0, x1, y1 = min(xs) - 0.02, min(ys) - 0.02, max(xs) + 0.02, max(ys) + 0.02
        flat = _ids(client, cid, officer, bbox=f"{x0},{y0},{x1},{y1}")
        assert first["id"] in flat, cid
        assert _ids(client, cid, officer, bbox=f"{x0},{y0},-50,{x1},{y1},3000.5") == flat, cid
        assert _ids(client, cid, officer, bbox=f"{x0},{y0},0,{x1},{y1},0") == flat, cid
        lat_first = f"{y0},{x0},-50,{y1},{x1},3000"
        assert _ids(client, cid, officer, bbox=lat_first, **{"bbox-crs": f"{EPSG}4326"}) == flat, cid


def test_a_bbox_with_heights_in_vn2000_and_in_html(client: TestClient, officer: Headers) -> None:
    flat = _ids(client, "schools", officer, bbox="540000,2270000,560000,2290000", **{"bbox-crs": f"{EPSG}9209"})
    high = _ids(client, "schools", officer, bbox="540000,2270000,-10,560000,2290000,100", **{"bbox-crs": f"{EPSG}9209"})
    assert flat and high == flat
    page = client.get(
        "/ogc/collections/schools/items",
        params={"f": "html", "bbox": "106.0,20.6,-10,106.1,20.7,100", "limit": "2"},
        headers=officer,
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ("106,20.6,0,106.1,20.7", "bbox needs 4 comma-separated numbers (minx,miny,maxx,maxy) or 6"),
        ("106,20.6,0,106.1,20.7,1,2", "got 7"),
        ("106,20.6,100,106.1,20.7,0", "the lower height (100.0) is above the upper height (0.0)"),
        ("106,20.7,0,106.1,20.6,10", "the lower y (20.7) is above the upper y (20.6)"),
        ("106.1,20.6,0,106,20.7,10", "minx (106.1) is greater than maxx (106.0)"),
        ("106,20.6,low,106.1,20.7,high", "bbox values must be numbers"),
        ("106,20.6,0,106.1,20.7,inf", "bbox values must be finite numbers"),
        ("106,95,0,107,96,10", "bbox latitude out of range"),
    ],
)
def test_a_malformed_bbox_is_a_400_naming_it(client: TestClient, officer: Headers, bbox: str, message: str) -> None:
    assert message in _error(client, "/ogc/collections/schools/items", officer, bbox=bbox)


# -- links of a single feature ---------------------------------------------------------------------------------------


def _by_rel_and_type(links: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    pairs = [(link["rel"], link["type"]) for link in links]
    assert len(pairs) == len(set(pairs)), pairs  # one link of each relation and type
    return {(link["rel"], link["type"]): link["href"] for link in links}


def test_every_feature_links_to_itself_its_html_page_and_its_collection(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]]
) -> None:
    """Part 1 /req/core/f-links: self, an alternate for each other format offered, and the collection; the
    same links in the Link header (/rec/core/link-header)."""
    for collection in collections:
        cid = collection["id"]
        fid = _ids(client, cid, officer)[0]
        url = f"/ogc/collections/{cid}/items/{fid}"
        response = client.get(url, headers=officer)
        assert response.status_code == 200 and response.headers["content-type"] == GEOJSON, cid
        feature = response.json()
        assert feature["id"] == fid
        links = _by_rel_and_type(feature["links"])
        assert set(links) == {
            ("self", GEOJSON),
            ("alternate", "text/html"),
            ("alternate", "application/ld+json"),
            ("collection", "application/json"),
        }, cid
        assert links["self", GEOJSON] == f"http://testserver{url}", cid
        assert links["alternate", "text/html"] == f"http://testserver{url}?f=html", cid
        for media in ("text/html", "application/ld+json"):
            other = client.get(links["alternate", media], headers=officer)
            assert other.status_code == 200 and other.headers["content-type"].startswith(media), (cid, media)
        described = client.get(links["collection", "application/json"], params={"f": "json"}, headers=officer)
        assert described.status_code == 200 and described.json()["id"] == cid
        header = response.headers["link"]
        for (rel, media), href in links.items():
            assert f'<{href}>; rel="{rel}"; type="{media}"' in header, (cid, rel, media)


def test_feature_links_keep_what_was_asked(client: TestClient, officer: Headers) -> None:
    fid = _ids(client, "schools", officer)[0]
    crs = "crs=http%3A%2F%2Fwww.opengis.net%2Fdef%2Fcrs%2FEPSG%2F0%2F9209"
    feature = _get(client, f"/ogc/collections/schools/items/{fid}", officer, crs=f"{EPSG}9209", f="json")
    links = _by_rel_and_type(feature["links"])
    assert links["self", GEOJSON] == f"http://testserver/ogc/collections/schools/items/{fid}?{crs}&f=json"
    assert links["alternate", "text/html"] == f"http://testserver/ogc/collections/schools/items/{fid}?{crs}&f=html"
    assert links["collection", "application/json"] == "http://testserver/ogc/collections/schools"


def test_items_link_their_formats_and_queryables_in_the_body_and_the_link_header(
    client: TestClient, officer: Headers, collections: list[dict[str, Any]]
) -> None:
    queryables = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
    for collection in collections:
        cid = collection["id"]
        response = client.get(f"/ogc/collections/{cid}/items", params={"limit": "2"}, headers=officer)
        assert response.status_code == 200, cid
        links = _by_rel_and_type(response.json()["links"])
        assert {
            ("self", GEOJSON),
            ("alternate", "text/html"),
            ("alternate", "application/ld+json"),
            ("alternate", "text/csv"),
            ("collection", "application/json"),
            (queryables, "application/schema+json"),
        } <= set(links), cid
        schema = client.get(links[queryables, "application/schema+json"], headers=officer)
        assert schema.status_code == 200 and schema.headers["content-type"] == "application/schema+json", cid
        assert schema.json()["$id"] == links[queryables, "application/schema+json"], cid
        header = response.headers["link"]
        for rel, media in [("self", GEOJSON), ("alternate", "text/html"), (queryables, "application/schema+json")]:
            assert f'<{links[rel, media]}>; rel="{rel}"; type="{media}"' in header, (cid, rel)
        assert 'rel="next"' not in header  # the page's own links stay in the body


def test_a_kept_answer_carries_the_time_of_its_response(client: TestClient, officer: Headers) -> None:
    """Items answers are kept up to a minute; the timeStamp is still the time this response was made."""
    params = {"limit": "3", "skipGeometry": "true"}
    first = client.get("/ogc/collections/schools/items", params=params, headers=officer).json()
    time.sleep(1.1)
    again = client.get("/ogc/collections/schools/items", params=params, headers=officer).json()
    assert again["features"] == first["features"]
    assert again["timeStamp"] > first["timeStamp"]
    assert abs(datetime.fromisoformat(again["timeStamp"]) - datetime.now(UTC)) < timedelta(seconds=5)
