"""Exports through HTTP as each kind of account (issue 11): a commune officer's filter cannot widen their
rows, export jobs and their files belong to their owner, stored runs only to whom they are visible,
personal fields only to personal-data grantees, restricted layers only to their grantees."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import INSIDE, scalar

OWN = "11953"
OTHER = "11977"
APPROVED = "SELECT count(*) FROM layers.buildings WHERE approval = 'approved'"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "officer": {"roles": ["commune_officer"], "communes": [OWN]},
    "officer_other": {"roles": ["commune_officer"], "communes": [OTHER]},
    "leader": {"roles": ["leader"]},
    "personal": {"roles": ["leader"], "grants": ["personal_data"]},
    "granted": {"roles": ["analyst"], "grants": ["police_posts"]},
    "admin": {"roles": ["administrator"]},
}


@pytest.fixture(scope="module")
def keys(settings: Settings, loaded: DemoResult) -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {}
    with connect(settings, autocommit=True) as conn:
        for name, spec in ACCOUNTS.items():
            username = f"xaccess.{name.replace('_', '-')}"
            create(
                conn,
                username,
                spec["roles"],
                communes=spec.get("communes"),
                grants=spec.get("grants"),
                with_password=False,
            )
            headers[name] = {"X-API-Key": accounts.issue_key(conn, username, REF, "cli:test")}
    return headers


@pytest.fixture(scope="module")
def app(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    """The application without credentials; each request names its caller's key."""
    with TestClient(create_app(settings), client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def conn(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    with connect(settings, autocommit=True) as c:
        yield c


def _csv(answer: Any) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))


# -- 1. a commune officer's CQL2 cannot escape their communes --------------------------------------


ESCAPES_REFUSED = [
    "true) OR (true",
    "1=1) OR (1=1",
    "true --",
    "floors > 0 -- ) OR (true",
    "true; DELETE FROM layers.buildings",
    "(true",
    "true)",
    "true)) OR ((true",
    '"commune_code) OR (true" = 1',
    "commune_code = '11953') OR ('x' = 'x'",
]
#: filters that parse: their answer must still be the officer's own rows (count checked against SQL)
ESCAPES_PARSED = {
    "true": "true",
    "commune_code <> '11953' OR true": "true",
    "floors > 0 OR true": "true",
    "commune_code = '11977'": "commune_code = '11977'",
    "NOT (commune_code = '11953')": "commune_code <> '11953'",
    "commune_code IN ('11953', '11977', '11980')": "commune_code IN ('11953', '11977', '11980')",
}


@pytest.mark.parametrize("text", ESCAPES_REFUSED)
def test_officer_filter_that_tries_to_break_out_is_a_400(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any], text: str
) -> None:
    before = scalar(conn, "SELECT count(*) FROM layers.buildings")
    answer = app.get("/api/exports/layers/buildings", params={"format": "csv", "filter": text}, headers=keys["officer"])
    assert answer.status_code == 400, (text, answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json" and "filter" in answer.json()["detail"]
    assert scalar(conn, "SELECT count(*) FROM layers.buildings") == before


@pytest.mark.parametrize("text", list(ESCAPES_PARSED))
def test_officer_filter_that_parses_gives_only_own_rows(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any], text: str
) -> None:
    found = _csv(
        app.get("/api/exports/layers/buildings", params={"format": "csv", "filter": text}, headers=keys["officer"])
    )
    expected = scalar(
        conn,
        f"SELECT count(*) FROM layers.buildings WHERE approval = 'approved' AND commune_code = %s "
        f"AND ({ESCAPES_PARSED[text]})",
        (OWN,),
    )
    assert len(found) == expected
    assert {r["commune_code"] for r in found} <= {OWN}
    if ESCAPES_PARSED[text] == "true":
        assert expected > 0


def test_officer_cql2_json_and_background_job_keep_to_own_rows(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    own = scalar(conn, f"{APPROVED} AND commune_code = %s", (OWN,))
    widen = '{"op": "or", "args": [true, {"op": "<>", "args": [{"property": "commune_code"}, "11953"]}]}'
    params = {"format": "csv", "filter": widen, "filter-lang": "cql2-json"}
    found = _csv(app.get("/api/exports/layers/buildings", params=params, headers=keys["officer"]))
    assert len(found) == own and {r["commune_code"] for r in found} == {OWN}
    body = {"layer": "buildings", "format": "csv", "filter": {"op": "or", "args": [True, True]}}
    job = _finish(app, app.post("/api/exports", json=body, headers=keys["officer"]), keys["officer"])
    rows = _csv(app.get(f"/api/exports/jobs/{job['id']}/file", headers=keys["officer"]))
    assert len(rows) == own == job["total"] and {r["commune_code"] for r in rows} == {OWN}
    refused = app.post("/api/exports", json={**body, "filter": "true) OR (true"}, headers=keys["officer"])
    assert refused.status_code == 400 and "filter" in refused.json()["detail"]
    trail = conn.execute(
        "SELECT detail->>'rows' FROM gis_ioc.audit WHERE actor = 'xaccess.officer' AND action = 'export' "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert trail is not None and int(trail[0]) == own


def _finish(app: TestClient, started: Any, headers: dict[str, str]) -> dict[str, Any]:
    assert started.status_code == 202, started.text
    job: dict[str, Any] = started.json()
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = app.get(started.headers["location"], headers=headers).json()
    assert job["status"] == "done", job
    return job


# -- 2. export jobs, their files and stored runs have owners ---------------------------------------


def test_export_jobs_and_files_answer_only_their_owner(
    app: TestClient, keys: dict[str, dict[str, str]], settings: Settings
) -> None:
    started = app.post("/api/exports", json={"layer": "schools", "format": "geojson"}, headers=keys["officer"])
    job = _finish(app, started, keys["officer"])
    status, file = f"/api/exports/jobs/{job['id']}", f"/api/exports/jobs/{job['id']}/file"
    assert app.get(file, headers=keys["officer"]).status_code == 200
    for who in ("officer_other", "leader", "personal"):
        for url in (status, file):
            answer = app.get(url, headers=keys[who])
            assert answer.status_code == 404 and "no export job" in answer.json()["detail"], (who, url)
    for url in (status, file):
        assert app.get(url).status_code == 404  # without credentials
        assert app.get(url, headers=keys["admin"]).status_code == 200  # administrators see every job
    assert app.get("/api/exports/jobs/" + "0" * 32, headers=keys["officer"]).status_code == 404

    # the file lies in a private folder named by a secret of its own, and is served only from there
    manager = app.app.state.export_jobs  # type: ignore[attr-defined]
    held = manager.jobs[job["id"]]
    assert job["id"] not in str(held.folder) and len(held.folder.name) >= 32
    assert held.folder.parent == settings.home / "exports" and (held.folder.parent.stat().st_mode & 0o077) == 0
    assert str(held.folder) not in started.text + app.get(status, headers=keys["officer"]).text
    path: Path = held.result.path
    outside = settings.home / "outside.geojson"
    outside.write_text('{"secret": true}')
    path.unlink()
    os.symlink(outside, path)
    assert app.get(file, headers=keys["officer"]).status_code == 404  # a link out of the folder is not served


def test_run_exports_need_the_run_to_be_visible(app: TestClient, keys: dict[str, dict[str, str]]) -> None:
    body = {"period": "2026-Q3", "communes": [OWN]}
    made = app.post("/api/scenarios/health/run", json=body, headers=keys["leader"])
    assert made.status_code == 200, made.text
    run_id = made.json()["id"]
    url = f"/api/exports/runs/{run_id}?format=csv"
    mine = _csv(app.get(url, headers=keys["leader"]))
    assert [r["code"] for r in mine] == [OWN]
    for who in ("officer", "personal"):  # not theirs, not shared with them
        refused = app.get(url, headers=keys[who])
        assert refused.status_code == 404 and f"no scenario run {run_id}" in refused.json()["detail"], who
        job = app.post("/api/exports", json={"run": run_id, "format": "csv"}, headers=keys[who])
        assert job.status_code == 404, who
    assert app.get(url, headers=keys["admin"]).status_code == 200
    share = {"accounts": ["xaccess.officer"]}
    shared = app.put(f"/api/scenarios/runs/{run_id}/shared_with", json=share, headers=keys["leader"])
    assert shared.status_code == 200, shared.text
    assert [r["code"] for r in _csv(app.get(url, headers=keys["officer"]))] == [OWN]
    assert app.get(url, headers=keys["personal"]).status_code == 404


# -- 3. personal fields and restricted layers ------------------------------------------------------


def test_personal_fields_only_for_personal_data_grantees(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    params = {"format": "csv", "filter": f"commune_code = '{OWN}'"}
    plain = _csv(app.get("/api/exports/layers/buildings", params=params, headers=keys["leader"]))
    granted = _csv(app.get("/api/exports/layers/buildings", params=params, headers=keys["personal"]))
    own = app.get("/api/exports/layers/buildings", params={"format": "csv"}, headers=keys["officer"])
    assert "households" not in plain[0] and "households" not in _csv(own)[0]
    assert "households" in granted[0] and len(plain) == len(granted)
    expected = dict(
        conn.execute(
            "SELECT fid::text, households::text FROM layers.buildings WHERE commune_code = %s "
            "AND approval = 'approved'",
            (OWN,),
        ).fetchall()
    )
    assert {r["feature_id"]: r["households"] or None for r in granted} == expected
    for who in ("leader", "officer"):  # a filter or a box naming the field is refused as unknown
        refused = app.get(
            "/api/exports/layers/buildings", params={"format": "csv", "filter": "households > 3"}, headers=keys[who]
        )
        assert refused.status_code == 400 and "households" in refused.json()["detail"], who
    filtered = app.get(
        "/api/exports/layers/buildings",
        params={"format": "csv", "filter": f"households > 3 AND commune_code = '{OWN}'"},
        headers=keys["personal"],
    )
    assert len(_csv(filtered)) == sum(1 for v in expected.values() if v is not None and int(v) > 3)


def test_restricted_layers_only_for_their_grantees(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    url = "/api/exports/layers/police_posts?format=csv"
    for who in ("leader", "personal", "officer", "admin"):
        hidden = app.get(url, headers=keys[who])
        assert hidden.status_code == 404 and "no layer 'police_posts'" in hidden.json()["detail"], who
        assert app.post("/api/exports", json={"layer": "police_posts"}, headers=keys[who]).status_code == 404
    unknown = app.post("/api/exports", json={"layer": "no_such_layer"}, headers=keys["leader"])
    assert unknown.status_code == 404 and "no layer" in unknown.json()["detail"]  # the same answer as hidden
    rows = _csv(app.get(url, headers=keys["granted"]))
    assert len(rows) == scalar(conn, "SELECT count(*) FROM layers.police_posts WHERE approval = 'approved'") > 0
    assert {r["post_code"] for r in rows} == {
        r[0] for r in conn.execute("SELECT post_code FROM layers.police_posts WHERE approval = 'approved'")
    }


def test_bbox_narrows_and_stays_inside_the_officers_rows(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    box = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e "
        "FROM layers.communes WHERE code IN (%s, %s) AND valid_to IS NULL) x",
        (OWN, OTHER),
    ).fetchone()
    assert box is not None
    bbox = ",".join(str(v) for v in box)
    params = {"format": "csv", "bbox": bbox}
    found = _csv(app.get("/api/exports/layers/buildings", params=params, headers=keys["officer"]))
    expected = scalar(
        conn,
        "SELECT count(*) FROM layers.buildings WHERE approval = 'approved' AND commune_code = %s "
        "AND ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        (OWN, *box),
    )
    assert len(found) == expected > 0 and {r["commune_code"] for r in found} == {OWN}
    bad = app.get("/api/exports/layers/buildings", params={"bbox-crs": "EPSG:9209"}, headers=keys["officer"])
    assert bad.status_code == 400 and "bbox" in bad.json()["detail"]


def test_labels_beside_codes_through_http(app: TestClient, keys: dict[str, dict[str, str]]) -> None:
    params = {"format": "csv", "bbox": "106.0,20.6,106.1,20.7"}
    plain = _csv(app.get("/api/exports/layers/schools", params=params, headers=keys["leader"]))
    assert plain and "level_vi" not in plain[0]
    labelled = _csv(app.get("/api/exports/layers/schools", params={**params, "labels": "true"}, headers=keys["leader"]))
    assert {row["level_vi"] for row in labelled} <= {"Mầm non", "Tiểu học", "Trung học cơ sở", "Trung học phổ thông"}
    assert [row["level"] for row in labelled] == [row["level"] for row in plain]
    bad = app.get("/api/exports/layers/schools", params={**params, "labels": "maybe"}, headers=keys["leader"])
    assert bad.status_code in (400, 422)
    job = app.post("/api/exports", json={"layer": "schools", "format": "csv", "labels": "yes"}, headers=keys["leader"])
    assert job.status_code == 400 and "labels" in job.json()["detail"]
