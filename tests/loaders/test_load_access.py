"""Who may load into which layer, what a refusal tells, and that the audit of a load, an approval and a
rollback is written in the action's own transaction (issue 11), through HTTP; and the loader's bulk
merge taken only by the table's owner (the server's role owns nothing)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts, audit
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.loaders import history, vector
from gis_ioc.loaders.plans import load_plan
from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, load_vector
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import INSIDE, scalar
from tests.loaders.conftest import digest, stations_frame

ACCOUNTS: dict[str, dict[str, Any]] = {
    "officer": {"roles": ["gis_officer"]},
    "granted": {"roles": ["gis_officer", "approver"], "grants": ["police_posts"]},
    "approver": {"roles": ["approver"]},
}


@pytest.fixture(scope="module")
def keys(settings: Settings, loaded: DemoResult) -> dict[str, dict[str, str]]:
    out = {}
    with connect(settings, autocommit=True) as conn:
        for name, spec in ACCOUNTS.items():
            username = f"loadaccess.{name}"
            create(conn, username, spec["roles"], grants=spec.get("grants"), with_password=False)
            out[name] = {"X-API-Key": accounts.issue_key(conn, username, REF, "cli:test")}
    return out


@pytest.fixture(scope="module")
def app(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=INSIDE) as c:
        yield c


def _police_file(db: psycopg.Connection[Any], communes: list[dict[str, Any]], folder: Path, prefix: str) -> Path:
    """Police posts: the first repeats a code already approved, the second has a kind not allowed (both
    would make the quality report name restricted codes)."""
    existing = scalar(db, "SELECT post_code FROM layers.police_posts WHERE approval = 'approved' ORDER BY fid LIMIT 1")
    rows = communes[60:63]
    frame = gpd.GeoDataFrame(
        {
            "post_code": [existing, f"{prefix}-2", f"{prefix}-3"],
            "commune_code": [r["code"] for r in rows],
            "name": [f"Công an {r['name']}" for r in rows],
            "kind": ["commune_police", "secret_unit", "commune_police"],
        },
        geometry=[shapely.Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )
    path = folder / "cong_an.geojson"
    frame.to_file(path, driver="GeoJSON")
    return path


def test_loading_into_a_restricted_layer_needs_its_grant_and_the_refusal_tells_nothing(
    app: TestClient,
    keys: dict[str, dict[str, str]],
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    catalog: Catalog,
    tmp_path: Path,
) -> None:
    path = _police_file(db, communes, tmp_path, "LA")
    before = digest(db, "layers.police_posts")
    codes = {r[0] for r in db.execute("SELECT post_code FROM layers.police_posts")}
    kinds = {str(v.code) for f in catalog.layers["police_posts"].fields for v in (f.values or [])}
    fids = {str(r[0]) for r in db.execute("SELECT fid FROM layers.police_posts")}
    assert codes and kinds
    for f in (None, "html"):
        with path.open("rb") as fh:
            refused = app.post(
                "/api/loads" + (f"?f={f}" if f else ""),
                data={"layer": "police_posts", "accept_warnings": "true"},
                files={"file": ("cong_an.geojson", fh)},
                headers=keys["officer"],
            )
        assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
        body = refused.text
        assert "no layer 'police_posts'" in refused.json()["detail"]
        assert not [c for c in codes | kinds if c in body], body
        assert not any(f"fid {fid}" in body for fid in fids)
        assert "police_posts" not in refused.json()["detail"].partition("you may load into:")[2]
    assert digest(db, "layers.police_posts") == before
    denied = db.execute(
        "SELECT count(*) FROM gis_ioc.audit WHERE actor = 'loadaccess.officer' AND action = 'denied' "
        "AND target = 'layer police_posts'"
    ).fetchone()
    assert denied == (2,)

    # the grantee loads (the quality report may name the layer's codes: they are theirs to see)
    with path.open("rb") as fh:
        checked = app.post(
            "/api/loads",
            data={"layer": "police_posts", "dry_run": "true"},
            files={"file": ("cong_an.geojson", fh)},
            headers=keys["granted"],
        )
    assert checked.status_code == 422, checked.text
    refusal = checked.json()["report"]["issues"]
    assert any(i["code"] == "not_allowed" and "commune_police" in i["message"] for i in refusal)
    assert digest(db, "layers.police_posts") == before


def test_loads_of_unreadable_layers_are_neither_listed_nor_shown_nor_approved(
    app: TestClient,
    keys: dict[str, dict[str, str]],
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    frame = gpd.read_file(_police_file(db, communes, tmp_path, "LB"))
    frame = frame.iloc[[0, 2]].assign(post_code=["LB-1", "LB-3"])
    path = tmp_path / "posts.geojson"
    frame.to_file(path, driver="GeoJSON")
    with path.open("rb") as fh:
        done = app.post(
            "/api/loads", data={"layer": "police_posts"}, files={"file": ("posts.geojson", fh)}, headers=keys["granted"]
        )
    assert done.status_code == 201, done.text
    load_id = done.json()["load_id"]
    assert any(r["id"] == load_id for r in app.get("/api/loads", headers=keys["granted"]).json())
    for who in ("officer", "approver"):
        listed = app.get("/api/loads?limit=10000", headers=keys[who]).json()
        assert not any(r["layer_id"] == "police_posts" for r in listed), who
        assert app.get(f"/api/loads/{load_id}", headers=keys[who]).status_code == 404, who
        assert app.post(f"/api/loads/{load_id}/rollback", headers=keys[who]).status_code == 404, who
    assert app.post(f"/api/loads/{load_id}/approve", headers=keys["approver"]).status_code == 404
    assert scalar(db, "SELECT approval FROM gis_ioc.loads WHERE id = %s", (load_id,)) == "draft"
    assert app.post(f"/api/loads/{load_id}/rollback", headers=keys["granted"]).json()["deleted"] == 2


class Crash(RuntimeError):
    """Raised right after an audit record is written, as a failure later in the same action would."""


def _crash_after_audit(monkeypatch: pytest.MonkeyPatch, actions: set[str]) -> None:
    real = audit.record

    def record(conn: psycopg.Connection[Any], **kw: Any) -> int:
        written = real(conn, **kw)
        if kw.get("action") in actions:
            raise Crash(f"after the {kw['action']} record")
        return written

    monkeypatch.setattr(audit, "record", record)


def _post(app: TestClient, url: str, headers: dict[str, str], **kw: Any) -> Any:
    try:
        return app.post(url, headers=headers, **kw)
    except Crash:
        return None


def _records(db: psycopg.Connection[Any], action: str, target: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM gis_ioc.audit WHERE action = %s AND target = %s", (action, target)))


def test_audit_of_load_approval_and_rollback_stands_or_falls_with_them(
    app: TestClient,
    keys: dict[str, dict[str, str]],
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit record is written in the action's transaction: when the action fails after writing it,
    neither the change nor its record remain; when it succeeds, both do."""
    path = tmp_path / "stations.geojson"
    stations_frame(communes[50:], 4, "AUD-").to_file(path, driver="GeoJSON")
    before = digest(db, "layers.fire_stations")
    trail = scalar(db, "SELECT count(*) FROM gis_ioc.audit WHERE action LIKE 'load%%'")
    with monkeypatch.context() as m:
        _crash_after_audit(m, {"load"})
        with path.open("rb") as fh:
            failed = _post(app, "/api/loads", keys["granted"], data={"layer": "fire_stations"},
                           files={"file": ("audit_crash.geojson", fh)})  # fmt: skip
        assert failed is None or failed.status_code == 500
    assert digest(db, "layers.fire_stations") == before  # no load, no loads row …
    assert scalar(db, "SELECT count(*) FROM gis_ioc.audit WHERE action LIKE 'load%%'") == trail  # … no record

    with path.open("rb") as fh:
        done = app.post("/api/loads", data={"layer": "fire_stations"}, files={"file": ("st.geojson", fh)},
                        headers=keys["granted"])  # fmt: skip
    assert done.status_code == 201, done.text
    load_id = done.json()["load_id"]
    target = f"load {load_id}"
    assert _records(db, "load", target) == 1
    for action, url, state in (
        ("load.approve", f"/api/loads/{load_id}/approve", ("done", "approved")),
        ("load.rollback", f"/api/loads/{load_id}/rollback", ("rolled_back", "approved")),
    ):
        kept = db.execute("SELECT status, approval FROM gis_ioc.loads WHERE id = %s", (load_id,)).fetchone()
        with monkeypatch.context() as m:
            _crash_after_audit(m, {action})
            failed = _post(app, url, keys["granted"])
            assert failed is None or failed.status_code == 500
        assert db.execute("SELECT status, approval FROM gis_ioc.loads WHERE id = %s", (load_id,)).fetchone() == kept
        assert _records(db, action, target) == 0
        assert app.post(url, headers=keys["granted"]).status_code == 200
        assert db.execute("SELECT status, approval FROM gis_ioc.loads WHERE id = %s", (load_id,)).fetchone() == state
        assert _records(db, action, target) == 1
    records = db.execute(
        "SELECT action, actor, result FROM gis_ioc.audit WHERE target = %s ORDER BY id", (target,)
    ).fetchall()
    assert records == [
        ("load", "loadaccess.granted", "draft"),
        ("load.approve", "loadaccess.granted", "ok"),
        ("load.rollback", "loadaccess.granted", "ok"),
    ]


# -- the bulk merge: only as the table's owner -------------------------------------------------------


def _loaded_rows(db: psycopg.Connection[Any], load_id: int) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT station_code, commune_code, name, engines, phone, ST_AsEWKB(geom), approval, is_demo
             FROM layers.fire_stations WHERE load_id = %s ORDER BY station_code""",
        (load_id,),
    ).fetchall()


def _schema(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'layers.fire_stations'::regclass
           UNION ALL
           SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
            WHERE conrelid = 'layers.fire_stations'::regclass ORDER BY 1"""
    ).fetchall()


def test_bulk_merge_only_as_the_tables_owner_and_both_paths_give_the_same_table(
    settings: Settings, catalog: Catalog, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "bulk.geojson"
    stations_frame(communes[70:], 6, "BLK-").to_file(path, driver="GeoJSON")
    config = dataclasses.replace(LoaderConfig.from_settings(settings), bulk_rows=1)
    schema = _schema(db)
    results = {}
    for how in ("owner", "server"):
        with connect(settings, server=how == "server") as conn:  # one transaction, committed at the end
            if how == "server":  # as the server writes: its role, bound for "write" (gis_ioc_full, owns nothing)
                scope.bind(conn, Viewer.console("test"), catalog, "write")
                assert conn.execute("SELECT current_user").fetchone() == (scope.FULL_ROLE,)
            assert vector.owns_table(conn, catalog.layers["fire_stations"]) is (how == "owner")
            report = load_vector(conn, catalog, path, LoadOptions("fire_stations", loaded_by="test"), config)
            conn.commit()
        bulk = [n for n in report.notes if "merged in bulk" in n]
        assert bool(bulk) is (how == "owner"), report.notes
        assert _schema(db) == schema
        results[how] = _loaded_rows(db, report.load_id or 0)
        history.rollback(db, catalog, report.load_id or 0, by="test")
    assert results["owner"] == results["server"] and len(results["owner"]) == 6


def test_http_loads_take_the_row_by_row_path(
    app: TestClient,
    keys: dict[str, dict[str, str]],
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vector, "BULK_ROWS", 1)
    schema = _schema(db)
    path = tmp_path / "http.geojson"
    stations_frame(communes[80:], 5, "HTB-").to_file(path, driver="GeoJSON")
    with path.open("rb") as fh:
        done = app.post(
            "/api/loads", data={"layer": "fire_stations"}, files={"file": ("st.geojson", fh)}, headers=keys["officer"]
        )
    assert done.status_code == 201, done.text
    report = done.json()
    assert report["loaded"] == 5 and not any("merged in bulk" in n for n in report["notes"])
    assert _schema(db) == schema
    stored = json.loads(json.dumps(_loaded_rows(db, report["load_id"]), default=str))
    assert [r[0] for r in stored] == [f"HTB-{i:03d}" for i in range(5)]
    assert app.post(f"/api/loads/{report['load_id']}/rollback", headers=keys["officer"]).json()["deleted"] == 5


# -- planning drawings: drafts only for those who load or approve ----------------------------------------


def test_draft_drawings_only_for_loaders_and_approvers_approved_ones_for_everyone(
    app: TestClient,
    keys: dict[str, dict[str, str]],
    settings: Settings,
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    from tests.loaders.test_plans import PDF, _drawing, _meta, _tile_of

    with connect(settings, autocommit=True) as conn:
        create(conn, "loadaccess.leader", ["leader"], with_password=False)
        leader = {"X-API-Key": accounts.issue_key(conn, "loadaccess.leader", REF, "cli:test")}
    path, _, _ = _drawing(communes, tmp_path / "plan", "geotiff")
    note = tmp_path / "thuyet_minh.pdf"
    note.write_bytes(PDF)
    plan = load_plan(db, path, _meta("QH-ACCESS"), settings.home / "plans", documents=[("explanatory_note", note)])
    centre = _footprint(db, plan.plan_id).centroid
    lon, lat = centre.x, centre.y
    x, y = _tile_of(lon, lat, 16)
    base = f"/api/plans/{plan.plan_id}"
    urls = [base, f"{base}/tiles/16/{x}/{y}.png", f"{base}/cog.tif", f"{base}/documents/{plan.documents[0]['id']}"]

    def listed(headers: dict[str, str], drafts: bool) -> bool:
        answer = app.get("/api/plans" + ("?drafts=true" if drafts else ""), headers=headers).json()
        return any(p["id"] == plan.plan_id for p in answer)

    for who, headers in (("anonymous", {}), ("leader", leader)):  # a draft does not exist for them
        assert all(app.get(url, headers=headers).status_code == 404 for url in urls), who
        assert not listed(headers, True) and not listed(headers, False), who
    for who in ("officer", "approver"):  # those who load or approve check it before approval
        for url in urls:
            answer = app.get(url, headers=keys[who])
            assert answer.status_code == 200, (who, url, answer.text[:200])
            assert "public" not in answer.headers["cache-control"], (who, url)
        assert app.get(urls[0], headers=keys[who]).json()["approval"] == "draft"
        assert listed(keys[who], True) and not listed(keys[who], False), who
    assert app.get(urls[3], headers=keys["officer"]).content == PDF

    assert app.post(f"/api/loads/{plan.load_id}/approve", headers=keys["approver"]).status_code == 200
    for headers in ({}, leader, keys["officer"]):
        assert all(app.get(url, headers=headers).status_code == 200 for url in urls)
        assert listed(headers, False)
    assert app.get(urls[1]).headers["cache-control"].startswith("public")
    assert app.get(urls[0]).json()["approval"] == "approved"

    assert app.post(f"/api/loads/{plan.load_id}/rollback", headers=keys["approver"]).status_code == 200
    for headers in ({}, leader, keys["officer"], keys["approver"]):  # rolled back: gone for everyone
        assert all(app.get(url, headers=headers).status_code == 404 for url in urls)
        assert not listed(headers, True)


def _footprint(db: psycopg.Connection[Any], plan_id: int) -> shapely.Geometry:
    wkb = scalar(db, "SELECT ST_AsBinary(footprint) FROM gis_ioc.plans WHERE id = %s", (plan_id,))
    return shapely.from_wkb(bytes(wkb))
