"""OGC API EDR over the sensor observations (gis_ioc.publish.edr): position, radius, area and locations on the
``iot_devices`` collection, answered as CoverageJSON through the access core.

Three stations of the test's own are placed east of a point of Phố Hiến (11953): A on the point, B 1,9 km
away (same commune), C 2,1 km away (commune 11977); their readings are stored through the sensors' own
storing path, then asked for over HTTP with real accounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from owslib.ogcapi.edr import EnvironmentalDataRetrieval

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.iot import model
from gis_ioc.publish import edr
from gis_ioc.settings import Settings
from tests.conftest import key_account, push_readings, remove_devices, serve

BASE = "/ogc/collections/iot_devices"
LON, LAT = 106.0612, 20.6687
CENTRE = f"POINT({LON} {LAT})"
COVJSON = "application/vnd.cov+json"


def _place(conn: psycopg.Connection[Any], code: str, commune: str, east_m: float) -> None:
    """An approved air-quality device ``east_m`` metres east of the centre (on the ellipsoid)."""
    conn.execute(
        "INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, geom) "
        "VALUES (%s, %s, 'air_quality', 'online', "
        "ST_Project(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s, radians(90))::geometry)",
        (code, commune, LON, LAT, east_m),
    )
    for prop in ("pm25", "pm10"):
        model.register(conn, code, prop, 3600)


@pytest.fixture(scope="module")
def stations(settings: Settings, loaded: DemoResult) -> Iterator[dict[str, Any]]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [end - timedelta(hours=k) for k in (3, 2, 1)]
    with connect(settings, autocommit=True) as conn:
        _place(conn, "EDR-A", "11953", 0.0)
        _place(conn, "EDR-B", "11953", 1900.0)
        _place(conn, "EDR-C", "11977", 2100.0)
        push_readings(
            conn,
            "EDR-A",
            [
                ("pm25", 31.5, hours[0]),
                ("pm25", 5000.0, hours[1]),  # outside pm25's physical range: flagged out_of_range
                ("pm25", 42.25, hours[2]),
                ("pm10", 61.0, hours[0]),  # none at hours[1]
                ("pm10", 70.5, hours[2]),
                ("pm25", 12.0, end - timedelta(hours=30)),  # before the default 24 hours
            ],
        )
        push_readings(conn, "EDR-B", [("pm25", 20.0, hours[2])])
        push_readings(conn, "EDR-C", [("pm25", 30.0, hours[2])])
        keys = {
            "leader": key_account(conn, "edr.leader", ["leader"]),
            "officer": key_account(conn, "edr.officer", ["commune_officer"], communes=["11953"]),
        }
    yield {"hours": hours, "old": end - timedelta(hours=30), "keys": keys}
    with connect(settings, autocommit=True) as conn:
        remove_devices(conn, ["EDR-A", "EDR-B", "EDR-C"])


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _get(client: TestClient, path: str, key: str | None, **params: str) -> Any:
    headers = {"X-API-Key": key} if key else {}
    return client.get(path, params=params, headers=headers)


def _mine(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The test's stations among the coverages (demo stations may be near too)."""
    return {c["id"]: c for c in answer["coverages"] if c["id"].startswith("EDR-")}


def test_position_is_the_nearest_station_with_its_readings(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    hours = stations["hours"]
    near = f"POINT({LON + 0.002} {LAT})"  # about 210 m east of A: snapped to A
    answer = _get(anonymous, f"{BASE}/position", leader, coords=near, **{"parameter-name": "pm25,pm10"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(COVJSON)
    body = answer.json()
    assert body["type"] == "CoverageCollection" and body["domainType"] == "PointSeries"
    [coverage] = body["coverages"]
    assert coverage["id"] == "EDR-A"
    axes = coverage["domain"]["axes"]
    assert axes["x"]["values"] == [pytest.approx(LON)] and axes["y"]["values"] == [pytest.approx(LAT)]
    assert axes["t"]["values"] == [_iso(h) for h in hours]  # the old reading is outside the last 24 hours
    ranges = coverage["ranges"]
    assert ranges["pm25"] == {
        "type": "NdArray",
        "dataType": "float",
        "axisNames": ["t"],
        "shape": [3],
        "values": [31.5, None, 42.25],  # out_of_range is not served
    }
    assert ranges["pm10"]["values"] == [61.0, None, 70.5]  # no reading at that time
    pm25 = body["parameters"]["pm25"]
    assert pm25["type"] == "Parameter"
    assert pm25["observedProperty"] == {"id": "pm25", "label": {"vi": "Bụi PM2.5", "en": "PM2.5"}}
    assert pm25["unit"]["symbol"] == {"value": "ug/m3", "type": "http://www.opengis.net/def/uom/UCUM/"}
    assert pm25["unit"]["label"] == {"vi": "µg/m³", "en": "µg/m³"}
    assert {r["system"]["type"] for r in body["referencing"]} == {"GeographicCRS", "TemporalRS"}
    # more than 1 km from any station: no coverage
    far = _get(anonymous, f"{BASE}/position", leader, coords="POINT(105.2 21.9)").json()
    assert far["coverages"] == []


def test_covjson_structure(anonymous: TestClient, stations: dict[str, Any]) -> None:
    """Checked against the CoverageJSON spec (OGC 21-069r2): every range's shape matches its axes, every
    range names a declared parameter, values are numbers or null."""
    body = _get(anonymous, f"{BASE}/radius", stations["keys"]["leader"], coords=CENTRE, within="5").json()
    assert body["coverages"]
    for coverage in body["coverages"]:
        assert coverage["type"] == "Coverage"
        domain = coverage["domain"]
        assert domain["type"] == "Domain" and domain["domainType"] == "PointSeries"
        assert len(domain["axes"]["x"]["values"]) == len(domain["axes"]["y"]["values"]) == 1
        times = domain["axes"]["t"]["values"]
        assert times == sorted(times) and len(set(times)) == len(times)
        for name, values in coverage["ranges"].items():
            assert name in body["parameters"]
            assert values["axisNames"] == ["t"] and values["shape"] == [len(times)] == [len(values["values"])]
            assert all(v is None or isinstance(v, float) for v in values["values"])
    for parameter in body["parameters"].values():
        assert set(parameter["observedProperty"]["label"]) == {"vi", "en"}


def test_radius_includes_1_9_km_and_excludes_2_1_km(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    for within, units in (("2", "km"), ("2000", "m"), ("2", None)):
        params = {"coords": CENTRE, "within": within, "parameter-name": "pm25"}
        if units:
            params["within-units"] = units
        answer = _get(anonymous, f"{BASE}/radius", leader, **params)
        assert answer.status_code == 200, answer.text
        mine = _mine(answer.json())
        assert set(mine) == {"EDR-A", "EDR-B"}, (within, units)
        assert mine["EDR-B"]["ranges"]["pm25"]["values"] == [20.0]
        assert set(answer.json()["parameters"]) == {"pm25"}
    wider = _mine(_get(anonymous, f"{BASE}/radius", leader, coords=CENTRE, within="2.2").json())
    assert set(wider) == {"EDR-A", "EDR-B", "EDR-C"}


def test_area_and_parameter_filtering(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    d = 0.005
    ring = [(LON - d, LAT - d), (LON + d, LAT - d), (LON + d, LAT + d), (LON - d, LAT + d), (LON - d, LAT - d)]
    polygon = "POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"
    answer = _get(anonymous, f"{BASE}/area", leader, coords=polygon, **{"parameter-name": "pm10"})
    assert answer.status_code == 200, answer.text
    mine = _mine(answer.json())
    assert set(mine) == {"EDR-A"}
    assert set(mine["EDR-A"]["ranges"]) == {"pm10"}
    assert mine["EDR-A"]["ranges"]["pm10"]["values"] == [61.0, 70.5]  # only pm10's times
    multi = f"MULTIPOLYGON((({LON - d} {LAT - d},{LON + d} {LAT - d},{LON + d} {LAT + d},{LON - d} {LAT - d})))"
    assert set(_mine(_get(anonymous, f"{BASE}/area", leader, coords=multi).json())) == {"EDR-A"}


def test_datetime_instants_and_intervals(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    hours, old = stations["hours"], stations["old"]

    def times(datetime_: str) -> list[str]:
        answer = _get(anonymous, f"{BASE}/position", leader, coords=CENTRE, datetime=datetime_)
        assert answer.status_code == 200, answer.text
        mine = _mine(answer.json())
        return list(mine["EDR-A"]["domain"]["axes"]["t"]["values"]) if mine else []

    assert times(f"{_iso(old)}/{_iso(hours[-1])}") == [_iso(old), *(_iso(h) for h in hours)]
    assert times(f"../{_iso(hours[0])}") == [_iso(old), _iso(hours[0])]
    assert times(f"{_iso(hours[1])}/..") == [_iso(hours[1]), _iso(hours[2])]
    assert times(_iso(hours[2])) == [_iso(hours[2])]
    vietnam = hours[2].astimezone(edr.VIETNAM)
    assert times(vietnam.isoformat()) == [_iso(hours[2])]  # the same instant, written with +07:00
    assert times(_iso(old - timedelta(days=3)) + "/" + _iso(old - timedelta(days=2))) == []


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("position", {}, "coords"),
        ("position", {"coords": "POINT(106.05"}, "not WKT"),
        ("position", {"coords": "LINESTRING(106 20, 106.1 20.1)"}, "LINESTRING"),
        ("position", {"coords": "POINT Z(106.05 20.65 3)"}, "height"),
        ("position", {"coords": CENTRE, "z": "10"}, "z:"),
        ("position", {"coords": "POINT(206.05 20.65)"}, "longitude"),
        ("position", {"coords": CENTRE, "datetime": "yesterday"}, "datetime 'yesterday'"),
        ("position", {"coords": CENTRE, "datetime": "2026-12-02T00:00:00Z/2026-12-01T00:00:00Z"}, "ends before"),
        ("position", {"coords": CENTRE, "datetime": "../.."}, "interval"),
        ("position", {"coords": CENTRE, "parameter-name": "pm25,dust"}, "'dust'"),
        ("position", {"coords": CENTRE, "colour": "red"}, "'colour'"),
        ("position", {"coords": CENTRE, "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}, "crs"),
        ("radius", {"coords": CENTRE}, "within"),
        ("radius", {"coords": CENTRE, "within": "-1", "within-units": "km"}, "within"),
        ("radius", {"coords": CENTRE, "within": "two", "within-units": "km"}, "'two'"),
        ("radius", {"coords": CENTRE, "within": "nan", "within-units": "km"}, "'nan'"),
        ("radius", {"coords": CENTRE, "within": "2", "within-units": "mi"}, "km, m"),
        ("radius", {"coords": "POLYGON((106 20,106.1 20,106.1 20.1,106 20))", "within": "2"}, "POLYGON"),
        ("area", {"coords": CENTRE}, "POLYGON or MULTIPOLYGON"),
        ("area", {}, "coords"),
        ("area", {"coords": "POLYGON((106 20,107 20,106 20,106 20))"}, "encloses no area"),
        ("position", {"coords": CENTRE, "f": "xml"}, "f='xml'"),
        ("locations", {"bbox": "200,2,300,4"}, "longitudes -180 to 180"),
        ("locations", {"bbox": "1,2,3"}, "four numbers"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    anonymous: TestClient, stations: dict[str, Any], path: str, params: dict[str, str], named: str
) -> None:
    leader = stations["keys"]["leader"]
    answer = _get(anonymous, f"{BASE}/{path}", leader, lang="en", **params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert named in answer.json()["detail"], answer.json()
    vietnamese = _get(anonymous, f"{BASE}/{path}", leader, **params)
    assert vietnamese.status_code == 400
    assert vietnamese.json()["detail"] != answer.json()["detail"]  # Vietnamese by default


def test_unknown_parameter_names_the_known_ones(anonymous: TestClient, stations: dict[str, Any]) -> None:
    answer = _get(
        anonymous, f"{BASE}/position", stations["keys"]["leader"], coords=CENTRE, **{"parameter-name": "dust"}
    )
    assert answer.status_code == 400
    assert "không có đại lượng 'dust'" in answer.json()["detail"]
    assert "pm25" in answer.json()["detail"] and "water_level" in answer.json()["detail"]


def test_a_too_large_answer_is_refused(
    anonymous: TestClient, stations: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edr, "MAX_VALUES", 3)
    answer = _get(anonymous, f"{BASE}/position", stations["keys"]["leader"], coords=CENTRE, lang="en")
    assert answer.status_code == 400, answer.text
    assert "more than 3 readings" in answer.json()["detail"]
    assert "shorter datetime" in answer.json()["detail"]
    fits = _get(anonymous, f"{BASE}/position", stations["keys"]["leader"], coords=CENTRE, **{"parameter-name": "pm10"})
    assert fits.status_code == 200, fits.text


def test_access_follows_the_layer(anonymous: TestClient, stations: dict[str, Any]) -> None:
    for path, params in (
        ("position", {"coords": CENTRE}),
        ("radius", {"coords": CENTRE, "within": "3", "within-units": "km"}),
        ("locations", {}),
        ("locations/EDR-A", {}),
    ):
        assert _get(anonymous, f"{BASE}/{path}", None, **params).status_code == 404, path
    officer = stations["keys"]["officer"]
    seen = _get(anonymous, f"{BASE}/radius", officer, coords=CENTRE, within="3", **{"within-units": "km"})
    assert seen.status_code == 200, seen.text
    assert set(_mine(seen.json())) == {"EDR-A", "EDR-B"}  # C is in another commune
    located = _get(anonymous, f"{BASE}/locations", officer).json()
    assert {f["properties"]["commune_code"] for f in located["features"]} == {"11953"}
    assert _get(anonymous, f"{BASE}/locations/EDR-C", officer).status_code == 404
    # a collection without EDR queries
    other = _get(anonymous, "/ogc/collections/schools/position", officer, coords=CENTRE, lang="en")
    assert other.status_code == 400 and "offers no EDR queries" in other.json()["detail"]


def test_locations(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    d = 0.03
    listed = _get(anonymous, f"{BASE}/locations", leader, bbox=f"{LON - d},{LAT - d},{LON + d},{LAT + d}")
    assert listed.status_code == 200, listed.text
    features = {f["id"]: f for f in listed.json()["features"]}
    assert {"EDR-A", "EDR-B", "EDR-C"} <= set(features)
    assert features["EDR-A"]["properties"]["parameter-name"] == ["pm10", "pm25"]
    one = _get(anonymous, f"{BASE}/locations/EDR-A", leader, **{"parameter-name": "pm25"})
    assert one.status_code == 200, one.text
    [coverage] = one.json()["coverages"]
    assert coverage["ranges"]["pm25"]["values"] == [31.5, None, 42.25]
    missing = _get(anonymous, f"{BASE}/locations/NO-SUCH", leader)
    assert missing.status_code == 404 and missing.json()["detail"] == "không có trạm 'NO-SUCH'"
    assert listed.headers["content-type"].startswith("application/geo+json")  # stations, not a coverage
    assert one.headers["content-type"].startswith("application/vnd.cov+json")


def test_collection_conformance_and_openapi(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    collection = _get(anonymous, BASE, leader, f="json").json()
    assert set(collection["data_queries"]) == {"position", "radius", "area", "locations"}
    assert collection["parameter_names"]["pm25"]["observedProperty"]["label"]["vi"] == "Bụi PM2.5"
    assert any(li["href"].endswith("/iot_devices/position?f=json") for li in collection["links"])
    assert "items" in {li["rel"] for li in collection["links"]}  # the features provider is still there
    conformance = _get(anonymous, "/ogc/conformance", None, f="json").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-edr-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-edr-1/1.0/conf/covjson" in conformance
    document = _get(anonymous, "/ogc/openapi", leader, f="json").json()
    for query in ("position", "radius", "area", "locations"):
        assert f"/collections/iot_devices/{query}" in document["paths"]
    radius = document["paths"]["/collections/iot_devices/radius"]["get"]["parameters"]
    assert {"$ref": "#/components/parameters/edr-within-units"} in radius
    edr_paths = json.dumps([p for path, p in document["paths"].items() if path.startswith("/collections/iot_devices/")])
    assert '"$ref": "http' not in edr_paths  # every reference resolves inside the document (offline)
    hidden = _get(anonymous, "/ogc/openapi", None, f="json").json()
    assert "/collections/iot_devices/position" not in hidden["paths"]  # anonymous callers cannot see the layer


def test_html_query_page_in_vietnamese(anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    page = _get(anonymous, f"{BASE}/position", leader, coords=CENTRE, f="html")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<html lang="vi"' in text
    assert ">Lớp dữ liệu</a>" in text  # the breadcrumb trail's words, in Vietnamese
    assert "unpkg.com" not in text and "cdn.jsdelivr.net" not in text  # nothing asked of another host
    english = _get(anonymous, f"{BASE}/position", leader, coords=CENTRE, f="html", lang="en")
    assert '<html lang="en"' in english.text and "Collections" in english.text


@pytest.fixture(scope="module")
def server(settings: Settings, stations: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("edr-server") / "server.log"
    with serve(settings, log) as base:
        yield base


def test_owslib_reads_position_and_radius(server: str, anonymous: TestClient, stations: dict[str, Any]) -> None:
    leader = stations["keys"]["leader"]
    client = EnvironmentalDataRetrieval(f"{server}/ogc", headers={"X-API-Key": leader})
    assert "iot_devices" in client.data()
    position = client.query_data("iot_devices", "position", coords=CENTRE)
    direct = _get(anonymous, f"{BASE}/position", leader, coords=CENTRE).json()
    assert _mine(position) == _mine(direct)
    assert _mine(position)["EDR-A"]["ranges"]["pm25"]["values"] == [31.5, None, 42.25]
    radius = client.query_data("iot_devices", "radius", coords=CENTRE, within="2")
    assert set(_mine(radius)) == {"EDR-A", "EDR-B"}
    same = _get(anonymous, f"{BASE}/radius", leader, coords=CENTRE, within="2", **{"within-units": "km"}).json()
    assert _mine(radius) == _mine(same)


def test_an_area_drawn_crossing_itself_or_rounded_is_repaired(anonymous: TestClient, stations: dict[str, Any]) -> None:
    """A bow-tie, or an outline whose small ring collapsed when its client rounded it, is the area it encloses
    (as PostGIS's ST_MakeValid makes it), not a 400."""
    leader = stations["keys"]["leader"]
    d = 0.03
    box = f"{LON - d} {LAT - d},{LON + d} {LAT - d},{LON + d} {LAT + d},{LON - d} {LAT + d},{LON - d} {LAT - d}"
    collapsed = "(106.5 20.5,106.5 20.5,106.5 20.5,106.5 20.5)"
    whole = _get(anonymous, f"{BASE}/area", leader, coords=f"POLYGON(({box}))")
    rounded = _get(anonymous, f"{BASE}/area", leader, coords=f"POLYGON(({box}),{collapsed})")
    assert whole.status_code == rounded.status_code == 200, rounded.text
    assert rounded.json() == whole.json()
    corners = [(LON - d, LAT - d), (LON + d, LAT + d), (LON + d, LAT - d), (LON - d, LAT + d), (LON - d, LAT - d)]
    bowtie = "POLYGON((" + ",".join(f"{x} {y}" for x, y in corners) + "))"
    crossed = _get(anonymous, f"{BASE}/area", leader, coords=bowtie)
    assert crossed.status_code == 200, crossed.text
    inside = {c["id"] for c in crossed.json()["coverages"]}
    assert inside <= {c["id"] for c in whole.json()["coverages"]}
