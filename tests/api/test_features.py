"""OGC API Features Parts 1–3 as gis_ioc serves them: answers checked against SQL and pyproj."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer

from gis_ioc import crs as crs_registry
from tests.conftest import scalar

GEOJSON = "application/geo+json"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOD = Geod(ellps="WGS84")
ENGLISH = {"Accept-Language": "en"}


def items(client: TestClient, layer: str, **params: Any) -> Any:
    response = client.get(f"/ogc/collections/{layer}/items", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == GEOJSON
    return response.json()


def error(client: TestClient, url: str, **params: Any) -> str:
    """The 400's detail, asked in English (the default is Vietnamese)."""
    response = client.get(url, params=params, headers=ENGLISH)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["detail"])


# -- Part 1: core ------------------------------------------------------------------------------------


def test_items_are_geojson_with_crs_header(client: TestClient) -> None:
    response = client.get("/ogc/collections/schools/items", params={"limit": 2})
    assert response.headers["content-type"] == GEOJSON
    assert response.headers["content-crs"] == f"<{CRS84}>"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == 2
    assert {link["rel"] for link in body["links"]} >= {"self", "alternate", "collection", "next"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bbox": "106,20,10,106.1,20.1,0"}, "lower height (10.0) is above the upper height (0.0)"),
        ({"bbox": "106,20,0,106.1,20.1"}, "needs 4 comma-separated numbers (minx,miny,maxx,maxy) or 6"),
        ({"bbox": "106,95,107,96"}, "latitude out of range"),
        ({"bbox": "106,20,107"}, "needs 4"),
        ({"bbox": "a,b,c,d"}, "must be numbers"),
        ({"bbox": "107,20,106,21"}, "minx"),
        ({"datetime": "yesterday"}, "not RFC 3339"),
        ({"datetime": "2026-13-45"}, "not a valid date"),
        ({"sortby": "garbage"}, "sortby: 'garbage'"),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"offset": "-1"}, "offset must be at least 0"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
        ({"crs": "EPSG:2154"}, "not offered"),
        ({"properties": "name,shoe_size"}, "shoe_size"),
        ({"skipGeometry": "maybe"}, "skipGeometry"),
        ({"pupils": "many"}, "pupils='many'"),
    ],
)
def test_malformed_parameters_are_400_naming_the_problem(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    assert message in error(client, "/ogc/collections/schools/items", **params)


def test_datetime_on_a_layer_without_a_time_field_is_its_history(
    client: TestClient, db: psycopg.Connection[Any]
) -> None:
    """datetime on a layer without a time field of its own: its features as they stood then (issue 17)."""
    every = items(client, "schools", skipGeometry="true", limit=50)
    published = scalar(db, "SELECT max(sys_from) FROM layers.schools WHERE approval = 'approved'")
    now = published.isoformat().replace("+00:00", "Z")
    dated = items(client, "schools", datetime=now, skipGeometry="true", limit=50)
    assert [f["id"] for f in dated["features"]] == [f["id"] for f in every["features"]] and len(every["features"]) == 50
    assert items(client, "schools", datetime="2026-01-01", skipGeometry="true")["features"] == []  # before the demo
    assert "not RFC 3339" in error(client, "/ogc/collections/schools/items", datetime="2026-01-01/tomorrow")


def test_datetime_filters_and_outside_the_data_is_empty(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expected = scalar(db, "SELECT count(*) FROM layers.planning_zones WHERE approval_date >= '2022-01-01'")
    body = items(client, "planning_zones", datetime="2022-01-01T00:00:00Z/..", limit=100)
    assert body["numberMatched"] == body["numberReturned"] == expected > 0
    assert all(f["properties"]["approval_date"] >= "2022-01-01" for f in body["features"])
    empty = items(client, "planning_zones", datetime="1990-01-01/1991-12-31")
    assert empty["numberMatched"] == 0 and empty["features"] == []


def test_versioned_boundaries_answer_for_the_time_asked(client: TestClient) -> None:
    assert items(client, "communes", limit=200, skipGeometry="true")["numberMatched"] == 104
    assert items(client, "communes", datetime="2025-08-01", skipGeometry="true")["numberMatched"] == 104
    assert items(client, "communes", datetime="2024-01-01", skipGeometry="true")["numberMatched"] == 0


def test_limit_is_clamped_to_the_catalog_maximum(client: TestClient) -> None:
    body = items(client, "land_parcels", limit=5000, skipGeometry="true")
    assert body["numberReturned"] == 1000


def test_number_matched_only_when_exact(client: TestClient, db: psycopg.Connection[Any]) -> None:
    big = items(client, "land_parcels", limit=10, skipGeometry="true")
    assert "numberMatched" not in big  # 200,000 rows: no full count on every page
    small = items(client, "schools", level="upper_secondary", limit=10)
    assert small["numberMatched"] == scalar(db, "SELECT count(*) FROM layers.schools WHERE level = 'upper_secondary'")
    hits = items(client, "land_parcels", resulttype="hits")
    assert hits["numberMatched"] == 200_000 and hits["features"] == []


def _walk(client: TestClient, url: str) -> list[int]:
    ids: list[int] = []
    for _ in range(1000):
        body = client.get(url).json()
        ids.extend(f["id"] for f in body["features"])
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            return ids
        url = nxt[0].replace("http://testserver", "")
    raise AssertionError("paging did not end")


def test_next_links_visit_every_feature_exactly_once(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expected = sorted(r[0] for r in db.execute("SELECT fid FROM layers.schools").fetchall())
    keyset = _walk(client, "/ogc/collections/schools/items?limit=100&skipGeometry=true")
    assert sorted(keyset) == expected and len(keyset) == len(set(keyset))
    assert urlsplit(client.get("/ogc/collections/schools/items?limit=100").json()["links"][-1]["href"]).query
    by_name = _walk(client, "/ogc/collections/schools/items?limit=70&sortby=-name&skipGeometry=true")
    assert sorted(by_name) == expected and len(by_name) == len(set(by_name))
    names = [r[0] for r in db.execute("SELECT name FROM layers.schools ORDER BY name DESC, fid LIMIT 70")]
    first = client.get("/ogc/collections/schools/items", params={"limit": 70, "sortby": "-name"}).json()
    assert [f["properties"]["name"] for f in first["features"]] == names


def test_next_links_keep_the_query(client: TestClient) -> None:
    body = items(client, "land_parcels", limit=5, land_use="LUC", skipGeometry="true")
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    query = parse_qs(urlsplit(nxt).query)
    assert query["land_use"] == ["LUC"] and query["limit"] == ["5"] and "after" in query


def test_single_features_and_404s(client: TestClient, db: psycopg.Connection[Any]) -> None:
    fid, name = db.execute("SELECT fid, name FROM layers.schools ORDER BY fid LIMIT 1").fetchone()  # type: ignore[misc]
    one = client.get(f"/ogc/collections/schools/items/{fid}")
    assert one.status_code == 200 and one.headers["content-type"] == GEOJSON
    assert one.json()["properties"]["name"] == name
    for url in (
        "/ogc/collections/schools/items/999999999",
        "/ogc/collections/schools/items/abc",
        "/ogc/collections/schools/items/-1",
        "/ogc/collections/police_posts/items/1",
        "/ogc/collections/nothing/items",
    ):
        response = client.get(url)
        assert response.status_code == 404, url


def test_properties_and_skip_geometry(client: TestClient) -> None:
    body = items(client, "schools", properties="name,pupils", skipGeometry="true", limit=3)
    for feature in body["features"]:
        assert set(feature["properties"]) == {"name", "pupils"} and feature["geometry"] is None


def test_html_pages_still_come_from_pygeoapi(client: TestClient) -> None:
    page = client.get("/ogc/collections/schools/items", params={"f": "html", "limit": 2})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Trường" in page.text


# -- Part 2: CRS ------------------------------------------------------------------------------------


def test_collections_offer_the_crs_list(client: TestClient) -> None:
    meta = client.get("/ogc/collections/land_parcels", params={"f": "json"}).json()
    assert set(meta["crs"]) >= {CRS84, f"{EPSG}4326", f"{EPSG}3857", f"{EPSG}9209", f"{EPSG}3405"}
    assert meta["storageCrs"] == CRS84


@pytest.mark.parametrize("epsg", [9209, 3405, 3857])
def test_projected_output_matches_pyproj_with_the_official_transformation(
    client: TestClient, db: psycopg.Connection[Any], epsg: int
) -> None:
    fid, lon, lat = db.execute("SELECT fid, ST_X(geom), ST_Y(geom) FROM layers.schools ORDER BY fid LIMIT 1").fetchone()  # type: ignore[misc]
    response = client.get(f"/ogc/collections/schools/items/{fid}", params={"crs": f"{EPSG}{epsg}"})
    assert response.headers["content-crs"] == f"<{EPSG}{epsg}>"
    x, y = response.json()["geometry"]["coordinates"]
    ex, ey = crs_registry.transformer(4326, epsg).transform(lon, lat)
    assert abs(x - ex) < 0.002 and abs(y - ey) < 0.002  # 2 mm (the output has 1 mm precision)


def test_epsg_4326_is_latitude_first(client: TestClient, db: psycopg.Connection[Any]) -> None:
    fid, lon, lat = db.execute("SELECT fid, ST_X(geom), ST_Y(geom) FROM layers.schools ORDER BY fid LIMIT 1").fetchone()  # type: ignore[misc]
    coords = client.get(f"/ogc/collections/schools/items/{fid}", params={"crs": f"{EPSG}4326"}).json()
    assert coords["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-7)


@pytest.fixture
def check_point(db: psycopg.Connection[Any]) -> Any:
    """The official check point of VN-2000 / TM-3 105°30', stored in lon/lat by pyproj's pinned EPSG:6960."""
    lon, lat = crs_registry.transformer(9209, 4326).transform(557220.4098, 2283917.0712)
    row = db.execute(
        "INSERT INTO layers.trees (tree_code, commune_code, species, geom) VALUES "
        "('CHECK-9209', '11953', 'check point', ST_SetSRID(ST_Point(%s, %s), 4326)) RETURNING fid",
        (lon, lat),
    ).fetchone()
    assert row is not None
    yield row[0]
    db.execute("DELETE FROM layers.trees WHERE tree_code = 'CHECK-9209'")


def test_vn2000_check_point_both_directions(client: TestClient, check_point: int) -> None:
    # to VN-2000: X (northing) 2283917.0712, Y (easting) 557220.4098, to 5 mm
    feature = client.get(f"/ogc/collections/trees/items/{check_point}", params={"crs": f"{EPSG}9209"}).json()
    easting, northing = feature["geometry"]["coordinates"]
    assert abs(easting - 557220.4098) < 0.005 and abs(northing - 2283917.0712) < 0.005
    # in lon/lat: 20.6465° N, 106.0510° E, to 5 mm on the ellipsoid
    lon, lat = client.get(f"/ogc/collections/trees/items/{check_point}").json()["geometry"]["coordinates"]
    assert GEOD.inv(lon, lat, 106.0510, 20.6465)[2] < 0.005
    # from VN-2000: a 1 cm box around the check point, and a 5 mm S_DWITHIN in EPSG:9209
    box = items(
        client, "trees", **{"bbox-crs": f"{EPSG}9209", "bbox": "557220.4048,2283917.0662,557220.4148,2283917.0762"}
    )
    assert [f["id"] for f in box["features"]] == [check_point]
    near = items(
        client,
        "trees",
        **{
            "filter-crs": f"{EPSG}9209",
            "filter": "S_DWITHIN(geometry, POINT(557220.4098 2283917.0712), 0.005, meters)",
        },
    )
    assert [f["id"] for f in near["features"]] == [check_point]


def test_the_reversed_rotation_string_would_be_off_by_most_of_a_metre() -> None:
    """The check above can tell: the widely copied PROJ string lands about 0.75 m away."""
    wrong = Transformer.from_crs(
        "+proj=tmerc +lon_0=105.5 +k=0.9999 +x_0=500000 +ellps=WGS84 +towgs84=-191.90441429,-39.30318279,"
        "-111.45032835,-0.00928836,0.01975479,-0.00427372,0.252906278 +units=m",
        "EPSG:4326",
        always_xy=True,
    )
    lon, lat = wrong.transform(557220.4098, 2283917.0712)
    official = crs_registry.transformer(9209, 4326).transform(557220.4098, 2283917.0712)
    assert 0.5 < GEOD.inv(lon, lat, *official)[2] < 1.0
    assert crs_registry.OFFICIAL_OPERATION in crs_registry.transformer(9209, 4326).description


# -- Part 3: filtering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cql", "sql"),
    [
        ("level = 'primary' AND pupils > 800", "level = 'primary' AND pupils > 800"),
        ("level <> 'primary' OR NOT national_standard", "level <> 'primary' OR NOT national_standard"),
        ("name LIKE 'Trường Tiểu học%'", "name LIKE 'Trường Tiểu học%'"),
        ("level IN ('preschool', 'upper_secondary')", "level IN ('preschool', 'upper_secondary')"),
        ("pupils BETWEEN 400 AND 600", "pupils BETWEEN 400 AND 600"),
        ("ownership IS NULL", "ownership IS NULL"),
        ("NOT (ownership IS NULL) AND classes >= 30", "ownership IS NOT NULL AND classes >= 30"),
        ("CASEI(level) = CASEI('PRIMARY')", "level = 'primary'"),
    ],
)
def test_cql2_text_matches_sql(client: TestClient, db: psycopg.Connection[Any], cql: str, sql: str) -> None:
    expected = scalar(db, f"SELECT count(*) FROM layers.schools WHERE {sql}")
    body = items(client, "schools", filter=cql, limit=1000, skipGeometry="true")
    assert body["numberReturned"] == expected


def test_spatial_filters_match_postgis(client: TestClient, db: psycopg.Connection[Any]) -> None:
    polygon = "POLYGON((106.03 20.63, 106.08 20.63, 106.08 20.68, 106.03 20.68, 106.03 20.63))"
    expected = scalar(
        db, "SELECT count(*) FROM layers.land_parcels WHERE ST_Within(geom, ST_GeomFromText(%s, 4326))", (polygon,)
    )
    body = items(client, "land_parcels", filter=f"S_WITHIN(geometry, {polygon})", resulttype="hits")
    assert body["numberMatched"] == expected > 0


def test_dwithin_distance_is_metres_on_the_ground(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expected = scalar(
        db,
        "SELECT count(*) FROM layers.schools WHERE ST_DWithin(geom::geography, "
        "ST_SetSRID(ST_Point(106.065, 20.665), 4326)::geography, 1500)",
    )
    body = items(client, "schools", filter="S_DWITHIN(geometry, POINT(106.065 20.665), 1500, meters)", limit=1000)
    assert body["numberReturned"] == expected > 0
    for feature in body["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert GEOD.inv(lon, lat, 106.065, 20.665)[2] <= 1500.01


def test_temporal_filter(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expected = scalar(db, "SELECT count(*) FROM layers.planning_zones WHERE approval_date > '2023-06-30'")
    body = items(client, "planning_zones", filter="T_AFTER(approval_date, DATE('2023-06-30'))", skipGeometry="true")
    assert body["numberReturned"] == expected


def test_cql2_json_by_get_and_post(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expr = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "level"}, "primary"]},
            {"op": ">", "args": [{"property": "pupils"}, 900]},
        ],
    }
    expected = scalar(db, "SELECT count(*) FROM layers.schools WHERE level = 'primary' AND pupils > 900")
    got = items(client, "schools", filter=json.dumps(expr), **{"filter-lang": "cql2-json"}, limit=1000)
    assert got["numberReturned"] == expected
    posted = client.post(
        "/ogc/collections/schools/items?limit=1000",
        content=json.dumps(expr),
        headers={"Content-Type": "application/query-cql-json"},
    )
    assert posted.status_code == 200 and posted.json()["numberReturned"] == expected


@pytest.mark.parametrize(
    ("cql", "message"),
    [
        ("shoe_size = 42", "'shoe_size' is not a queryable"),
        ("level = ", "does not parse"),
        ("pupils = 'many'", "not a number"),
        ("name LIKE 5", "text pattern"),
        ("S_DWITHIN(geometry, POINT(106 20), 5, parsecs)", "unknown distance unit"),
        ("T_AFTER(name, DATE('2020-01-01'))", "date or date-time property"),
    ],
)
def test_bad_filters_are_400(client: TestClient, cql: str, message: str) -> None:
    assert message in error(client, "/ogc/collections/schools/items", filter=cql)


@pytest.mark.parametrize(
    "body",
    [
        '{"op": "=", "args": [{"property": "level"}]}',
        '{"op": "and", "args": "level"}',
        '{"op": "in", "args": [{"property": "level"}, "primary"]}',
        '{"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": 5}]}',
        '{"op": "t_after", "args": [{"property": "name"}, {"timestamp": "soon"}]}',
        "not json at all",
    ],
)
def test_malformed_cql2_json_is_400(client: TestClient, body: str) -> None:
    response = client.post(
        "/ogc/collections/schools/items", content=body, headers={"Content-Type": "application/query-cql-json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("filter")


def test_injection_attempts_reach_the_database_only_as_values(client: TestClient, db: psycopg.Connection[Any]) -> None:
    before = scalar(db, "SELECT count(*) FROM layers.schools")
    for cql in (
        "name = 'x''; DROP TABLE layers.schools; --'",
        "name LIKE '%'' OR 1=1 --'",
        "level IN ('a'') OR (''1''=''1')",
    ):
        body = items(client, "schools", filter=cql)
        assert body["numberReturned"] == 0
    assert "not a queryable" in error(
        client, "/ogc/collections/schools/items", filter='"name; DROP TABLE layers.schools" = 1'
    )
    assert scalar(db, "SELECT count(*) FROM layers.schools") == before


def test_queryables_are_json_schema_from_the_catalog(client: TestClient) -> None:
    response = client.get("/ogc/collections/land_parcels/queryables")
    assert response.headers["content-type"] == "application/schema+json"
    doc = response.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    props = doc["properties"]
    assert props["geometry"]["format"] == "geometry-multipolygon"
    assert props["area_m2"] == {**props["area_m2"], "type": "number", "x-ogc-unit": "m2"}
    assert "LUC" in props["land_use"]["enum"] and props["survey_date"]["format"] == "date"
    assert props["map_sheet"]["type"] == "integer"


# -- regressions found in review ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cql",
    [
        "(" * 2000 + "pupils > 1" + ")" * 2000,
        "NOT (" * 400 + "pupils > 1" + ")" * 400,
    ],
)
def test_deeply_nested_filters_are_refused_before_parsing(client: TestClient, cql: str) -> None:
    assert "nested deeper" in error(client, "/ogc/collections/schools/items", filter=cql)
    assert client.get("/ogc/collections/schools/items", params={"limit": 1}).status_code == 200  # still up


@pytest.mark.parametrize(
    ("layer", "cql", "message"),
    [
        ("schools", "name = pupils", "cannot compare a text property with a integer property"),
        ("schools", "pupils BETWEEN name AND 5", "BETWEEN bounds"),
        ("schools", "CASEI(pupils) = 'x'", "CASEI applies to text"),
        ("planning_zones", "approval_date > 5", "is not a date"),
        ("planning_zones", "approval_date > true", "is not a date"),
        ("schools", "name = TIMESTAMP('2020-01-01T00:00:00Z')", "compared with a text property"),
    ],
)
def test_type_mismatches_are_400(client: TestClient, layer: str, cql: str, message: str) -> None:
    assert message in error(client, f"/ogc/collections/{layer}/items", filter=cql)


def test_empty_combination_and_odd_ids(client: TestClient) -> None:
    response = client.post(
        "/ogc/collections/schools/items",
        content='{"op": "and", "args": []}',
        headers={"Content-Type": "application/query-cql-json", **ENGLISH},
    )
    assert response.status_code == 400 and "at least two operands" in response.json()["detail"]
    assert client.get("/ogc/collections/schools/items/%C2%B2").status_code == 404
    assert client.get("/ogc/collections/schools/items/%EF%BC%91").status_code == 404
    assert "f='xyz'" in error(client, "/ogc/collections/schools/items", f="xyz")
    assert client.get("/ogc/collections/schools/items", params={"f": "html", "pupils": "abc"}).status_code == 400


def test_offset_without_sortby_pages_by_fid(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expected = [r[0] for r in db.execute("SELECT fid FROM layers.schools ORDER BY fid OFFSET 3 LIMIT 3")]
    body = items(client, "schools", limit=3, offset=3, skipGeometry="true")
    assert [f["id"] for f in body["features"]] == expected
    assert "after and offset" in error(client, "/ogc/collections/schools/items", offset=3, after=10)
    past = items(client, "schools", sortby="name", offset=100000, skipGeometry="true")
    assert past["features"] == [] and past.get("numberMatched", 475) == scalar(
        db, "SELECT count(*) FROM layers.schools"
    )


def test_posted_filter_is_kept_in_the_paging_links(client: TestClient, db: psycopg.Connection[Any]) -> None:
    expr = '{"op": "=", "args": [{"property": "level"}, "upper_secondary"]}'
    expected = {r[0] for r in db.execute("SELECT fid FROM layers.schools WHERE level = 'upper_secondary'")}
    first = client.post(
        "/ogc/collections/schools/items?limit=10&skipGeometry=true",
        content=expr,
        headers={"Content-Type": "application/query-cql-json"},
    ).json()
    seen = [f["id"] for f in first["features"]]
    nxt = next(li["href"] for li in first["links"] if li["rel"] == "next")
    assert "filter-lang=cql2-json" in nxt
    seen += _walk(client, nxt.replace("http://testserver", ""))
    assert sorted(seen) == sorted(expected)


def test_half_open_intervals_in_temporal_filters(client: TestClient, db: psycopg.Connection[Any]) -> None:
    after = items(client, "planning_zones", filter="T_AFTER(approval_date, INTERVAL('2019-01-01','..'))")
    before = items(client, "planning_zones", filter="T_BEFORE(approval_date, INTERVAL('..','2024-03-20'))")
    assert after["numberReturned"] == before["numberReturned"] == 0
    day = db.execute("SELECT approval_date FROM layers.planning_zones ORDER BY fid LIMIT 1").fetchone()[0]  # type: ignore[index]
    expected = scalar(db, "SELECT count(*) FROM layers.planning_zones WHERE approval_date = %s", (day,))
    noon = items(client, "planning_zones", datetime=f"{day.isoformat()}T12:00:00Z", skipGeometry="true")
    assert noon["numberReturned"] == expected >= 1


def test_qgis_calendar_ends_are_open_interval_ends(client: TestClient) -> None:
    """QGIS 3.22 sends an open start as year 0 (and an open end as 9999-12-31): the same as '..'."""
    opened = items(client, "planning_zones", datetime="../2022-12-31", limit=100)
    qgis = items(client, "planning_zones", datetime="0000-01-01T00:00:00Z/2022-12-31", limit=100)
    assert [f["id"] for f in qgis["features"]] == [f["id"] for f in opened["features"]]
    later = items(client, "planning_zones", datetime="2022-01-01T00:00:00Z/9999-12-31T23:59:59Z", limit=100)
    assert [f["id"] for f in later["features"]] == [
        f["id"] for f in items(client, "planning_zones", datetime="2022-01-01T00:00:00Z/..", limit=100)["features"]
    ]
    everything = items(client, "schools", datetime="0000-01-01T00:00:00Z/9999-12-31T23:59:59Z", limit=1)
    assert everything["numberReturned"] == 1  # every time: no filter, even on a layer without time
    assert "open at both ends" in error(client, "/ogc/collections/planning_zones/items", datetime="../..")
