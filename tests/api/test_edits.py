"""OGC API Features Part 4: edits of single features as draft change sets, through the loaders' gates,
published by an approver; ETag/If-Match; who may; each layer's history in ``datetime`` and ``…/history``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import INSIDE, key_account, scalar

ITEMS = "/ogc/collections/schools/items"
GEOJSON = {"Content-Type": "application/geo+json"}


@pytest.fixture(scope="module")
def officer(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    """The application asked by a GIS officer who is also an approver (API key)."""
    with connect(settings, autocommit=True) as conn:
        key = key_account(conn, f"edits.officer.{uuid.uuid4().hex[:6]}", ["gis_officer", "approver"])
    with TestClient(create_app(settings), headers={"X-API-Key": key}, client=INSIDE) as c:
        yield c


class Leader:
    """A leader's requests through the officer's application: the same process, so its caches see each
    change at once (another process sees it when PostgreSQL's notification arrives, milliseconds later)."""

    def __init__(self, app: TestClient, key: str) -> None:
        self.app, self.headers = app, {"X-API-Key": key}

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.app.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.app.post(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def reader(officer: TestClient, reader_key: str) -> Leader:
    return Leader(officer, reader_key)


@pytest.fixture(autouse=True)
def undo(officer: TestClient, db: psycopg.Connection[Any]) -> Iterator[None]:
    """Each test's change sets are rolled back afterwards, newest first: the layer is as the demo left it
    for the other tests of the suite."""
    before = scalar(db, "SELECT coalesce(max(id), 0) FROM gis_ioc.loads")
    yield
    made = db.execute(
        "SELECT id FROM gis_ioc.loads WHERE id > %s AND layer_id = 'schools' AND status = 'done' ORDER BY id DESC",
        (before,),
    ).fetchall()
    for (load_id,) in made:
        assert officer.post(f"/api/loads/{load_id}/rollback").status_code == 200


@pytest.fixture
def spot(db: psycopg.Connection[Any]) -> tuple[float, float]:
    """A point beside an approved school (inside the province, in a commune)."""
    row = db.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM layers.schools WHERE approval = 'approved' ORDER BY fid LIMIT 1"
    ).fetchone()
    assert row is not None
    return float(row[0]) + 0.0004, float(row[1]) + 0.0003


def _school(code: str, lon: float, lat: float, **extra: Any) -> dict[str, Any]:
    properties = {"school_code": code, "name": "Trường Tiểu học Thử Nghiệm", "level": "primary", "pupils": 420}
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {**properties, **extra},
    }


def _create_and_approve(officer: TestClient, code: str, lon: float, lat: float) -> int:
    made = officer.post(ITEMS, json=_school(code, lon, lat), headers=GEOJSON)
    assert made.status_code == 201, made.text
    approved = officer.post(f"/api/loads/{made.json()['changeSet']}/approve")
    assert approved.status_code == 200, approved.text
    return int(made.json()["fid"])


def _by_code(client: Leader, code: str, **params: str) -> list[dict[str, Any]]:
    answer = client.get(ITEMS, params={"school_code": code, "f": "json", **params})
    assert answer.status_code == 200, answer.text
    features: list[dict[str, Any]] = answer.json()["features"]
    return features


def test_create_is_a_draft_until_approved_then_visible(
    officer: TestClient, reader: Leader, spot: tuple[float, float], db: psycopg.Connection[Any]
) -> None:
    code = f"E{uuid.uuid4().hex[:8]}"
    made = officer.post(ITEMS, json=_school(code, *spot), headers=GEOJSON)
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"].endswith(f"{ITEMS}/{body['fid']}") and body["approval"] == "draft"
    assert "bản nháp" in body["message"]
    assert _by_code(reader, code) == []  # a draft is not published
    assert reader.get(f"{ITEMS}/{body['fid']}").status_code == 404
    load = officer.get(f"/api/loads/{body['changeSet']}").json()
    assert load["params"]["edit"] == "create" and load["rows"] == {"draft": 1}
    assert officer.post(f"/api/loads/{body['changeSet']}/approve").json()["approved"] == 1
    (feature,) = _by_code(reader, code)
    assert feature["properties"]["name"] == "Trường Tiểu học Thử Nghiệm"
    assert feature["properties"]["commune_code"]  # derived from the geometry, as for a file
    one = reader.get(f"{ITEMS}/{body['fid']}")
    assert one.status_code == 200 and one.headers["etag"].startswith(f'"{body["fid"]}.')
    actions = {
        r[0] for r in db.execute("SELECT action FROM gis_ioc.audit WHERE target = %s", (f"load {body['changeSet']}",))
    }
    assert {"feature.create", "load.approve"} <= actions


def test_replace_then_datetime_before_and_after_and_the_history(
    officer: TestClient, reader: Leader, spot: tuple[float, float], db: psycopg.Connection[Any]
) -> None:
    code = f"R{uuid.uuid4().hex[:8]}"
    fid = _create_and_approve(officer, code, *spot)
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]
    replaced = officer.put(
        f"{ITEMS}/{fid}",
        json=_school(code, spot[0] + 0.0001, spot[1], name="Trường Tiểu học Đổi Tên", pupils=480),
        headers={**GEOJSON, "If-Match": tag},
    )
    assert replaced.status_code == 200, replaced.text
    change = replaced.json()
    assert change["replaces"] == fid and change["approval"] == "draft"
    assert _by_code(reader, code)[0]["properties"]["name"] == "Trường Tiểu học Thử Nghiệm"  # until approved
    first = scalar(db, "SELECT sys_from FROM layers.schools WHERE fid = %s", (fid,))
    assert change["feature"].endswith(f"{ITEMS}/{fid}")
    assert officer.post(f"/api/loads/{change['changeSet']}/approve").status_code == 200
    # the feature keeps its id and takes the new state; the draft's row keeps the state it replaced
    retired = change["fid"]
    second = scalar(db, "SELECT sys_from FROM layers.schools WHERE fid = %s", (fid,))
    assert first < second
    assert scalar(db, "SELECT sys_from FROM layers.schools WHERE fid = %s", (retired,)) == first
    between = (first + (second - first) / 2).isoformat().replace("+00:00", "Z")
    after = second.isoformat().replace("+00:00", "Z")
    (old,) = _by_code(reader, code, datetime=between)
    (new,) = _by_code(reader, code, datetime=after)
    assert old["id"] == retired and old["properties"]["name"] == "Trường Tiểu học Thử Nghiệm"
    assert new["id"] == fid and new["properties"]["pupils"] == 480
    assert [f["id"] for f in _by_code(reader, code)] == [fid]  # no datetime: now
    both = _by_code(reader, code, datetime=f"{first.isoformat().replace('+00:00', 'Z')}/..")
    assert sorted(f["id"] for f in both) == sorted([fid, retired])  # every state alive in the interval
    now = reader.get(f"{ITEMS}/{fid}")  # the same URL answers the new state, with a new version
    assert now.status_code == 200 and now.json()["properties"]["name"] == "Trường Tiểu học Đổi Tên"
    assert now.headers["etag"] != tag
    assert reader.get(f"{ITEMS}/{retired}").status_code == 404  # the old state is out of service
    history = reader.get(f"{ITEMS}/{fid}/history").json()
    states = [(f["id"], f["state"]["current"], f["state"].get("operation")) for f in history["features"]]
    assert states == [(retired, False, "create"), (fid, True, "replace")]
    assert history["features"][0]["state"]["validTo"] == history["features"][1]["state"]["validFrom"]
    assert history["features"][1]["state"]["changeSet"] == change["changeSet"]
    assert reader.get(f"{ITEMS}/{retired}/history").json()["numberReturned"] == 2
    # rolling the replace back puts the old state back under the same id
    assert officer.post(f"/api/loads/{change['changeSet']}/rollback").status_code == 200
    back = reader.get(f"{ITEMS}/{fid}")
    assert back.status_code == 200 and back.json()["properties"]["name"] == "Trường Tiểu học Thử Nghiệm"
    assert reader.get(f"{ITEMS}/{retired}").status_code == 404


def test_two_edits_from_the_same_etag_one_is_412(
    officer: TestClient, reader: Leader, spot: tuple[float, float]
) -> None:
    code = f"C{uuid.uuid4().hex[:8]}"
    fid = _create_and_approve(officer, code, *spot)
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]
    answers: list[httpx.Response] = []

    def patch(name: str) -> None:
        answers.append(officer.patch(f"{ITEMS}/{fid}", json={"properties": {"name": name}}, headers={"If-Match": tag}))

    threads = [threading.Thread(target=patch, args=(f"Trường {n}",)) for n in ("Một", "Hai")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    stale = next(a for a in answers if a.status_code == 412)
    assert "đã thay đổi" in stale.json()["detail"]
    assert officer.patch(f"{ITEMS}/{fid}", json={"properties": {"name": "X"}}).status_code == 428


def test_an_edit_breaking_a_gate_is_400_naming_it_and_nothing_changes(
    officer: TestClient, reader: Leader, spot: tuple[float, float], db: psycopg.Connection[Any]
) -> None:
    code = f"G{uuid.uuid4().hex[:8]}"
    fid = _create_and_approve(officer, code, *spot)
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]
    loads = scalar(db, "SELECT count(*) FROM gis_ioc.loads")
    rows = scalar(db, "SELECT count(*) FROM layers.schools")
    bad_level = officer.patch(f"{ITEMS}/{fid}", json={"properties": {"level": "university"}}, headers={"If-Match": tag})
    assert bad_level.status_code == 400, bad_level.text
    assert "[not_allowed]" in bad_level.json()["detail"] and "level" in bad_level.json()["detail"]
    assert bad_level.headers["content-language"] == "vi"
    outside = officer.put(f"{ITEMS}/{fid}", json=_school(code, 105.0, 21.5), headers={**GEOJSON, "If-Match": tag})
    # a point 100 km away: the coordinate gate (as for a file whose coordinates do not fit the province)
    assert outside.status_code == 400 and "[crs]" in outside.json()["detail"], outside.text
    assert "tỉnh Hưng Yên" in outside.json()["detail"] and outside.json()["report"]["issues"][0]["code"] == "crs"
    english = officer.post(ITEMS + "?lang=en", json=_school(code, *spot, level=None, name=None), headers=GEOJSON)
    assert english.status_code == 400 and english.json()["detail"] == (
        "required field name (Name), level (Level) missing [required]"
    ), english.text
    unknown = officer.post(ITEMS, json=_school(code, *spot, colour="blue"), headers=GEOJSON)
    assert unknown.status_code == 400 and "colour" in unknown.json()["detail"]
    assert scalar(db, "SELECT count(*) FROM gis_ioc.loads") == loads
    assert scalar(db, "SELECT count(*) FROM layers.schools") == rows
    assert reader.get(f"{ITEMS}/{fid}").headers["etag"] == tag  # the version did not move either


def test_delete_is_a_draft_then_gone_with_its_history_kept(
    officer: TestClient, reader: Leader, spot: tuple[float, float]
) -> None:
    code = f"D{uuid.uuid4().hex[:8]}"
    fid = _create_and_approve(officer, code, *spot)
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]
    gone = officer.delete(f"{ITEMS}/{fid}", headers={"If-Match": tag})
    assert gone.status_code == 200 and gone.json()["fid"] is None, gone.text
    assert reader.get(f"{ITEMS}/{fid}").status_code == 200  # until approved
    assert officer.post(f"/api/loads/{gone.json()['changeSet']}/approve").json()["superseded"] == 1
    assert reader.get(f"{ITEMS}/{fid}").status_code == 404
    (last,) = reader.get(f"{ITEMS}/{fid}/history").json()["features"]
    assert last["state"]["deletedIn"] == gone.json()["changeSet"] and last["state"]["current"] is False


def test_a_stale_draft_cannot_be_approved_over_a_newer_change(
    officer: TestClient, reader: Leader, spot: tuple[float, float]
) -> None:
    code = f"S{uuid.uuid4().hex[:8]}"
    fid = _create_and_approve(officer, code, *spot)
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]
    first = officer.patch(f"{ITEMS}/{fid}", json={"properties": {"pupils": 1}}, headers={"If-Match": tag})
    assert first.status_code == 200
    tag = reader.get(f"{ITEMS}/{fid}").headers["etag"]  # moved on by the first draft
    second = officer.patch(f"{ITEMS}/{fid}", json={"properties": {"pupils": 2}}, headers={"If-Match": tag})
    assert second.status_code == 200
    assert officer.post(f"/api/loads/{second.json()['changeSet']}/approve").status_code == 200
    refused = officer.post(f"/api/loads/{first.json()['changeSet']}/approve")
    assert refused.status_code == 422 and "đã được thay đổi" in refused.json()["detail"]
    assert [f["properties"]["pupils"] for f in _by_code(reader, code)] == [2]


def test_who_may_edit(
    client: TestClient, anonymous: TestClient, db: psycopg.Connection[Any], spot: tuple[float, float]
) -> None:
    """A leader (no load permission) 403 on every write method, anonymous 401; filters still POST."""
    fid = scalar(db, "SELECT min(fid) FROM layers.schools WHERE approval = 'approved'")
    feature = _school("X1", *spot)
    for who, status in ((client, 403), (anonymous, 401)):
        assert who.post(ITEMS, json=feature, headers=GEOJSON).status_code == status
        assert who.put(f"{ITEMS}/{fid}", json=feature, headers={"If-Match": "*"}).status_code == status
        assert who.patch(f"{ITEMS}/{fid}", json={"properties": {}}, headers={"If-Match": "*"}).status_code == status
        assert who.delete(f"{ITEMS}/{fid}", headers={"If-Match": "*"}).status_code == status
    cql = {"op": "=", "args": [{"property": "level"}, "primary"]}
    assert client.post(ITEMS, json=cql, headers={"Content-Type": "application/query-cql-json"}).status_code == 200


def test_part_4_is_declared(client: TestClient) -> None:
    conforms = client.get("/ogc/conformance?f=json").json()["conformsTo"]
    for cls in ("create-replace-delete", "update", "features"):
        assert f"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/{cls}" in conforms
    paths = client.get("/ogc/openapi?f=json").json()["paths"]
    assert {"post"} <= set(paths["/collections/schools/items"])
    assert {"put", "patch", "delete"} <= set(paths["/collections/schools/items/{featureId}"])
    assert "/collections/schools/items/{featureId}/history" in paths
    extent = client.get("/ogc/collections/schools?f=json").json()["extent"]["temporal"]["interval"][0]
    assert extent[0] is not None and extent[1] is None  # its history: from the first publication, open
