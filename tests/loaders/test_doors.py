"""The three doors of the loader — command line, HTTP upload, Python — and what clients see after approval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import scalar
from tests.loaders.conftest import TO_TM3, digest, stations_frame
from tests.loaders.test_vector import DBF_MAP, _shapefile

GIS_IOC = Path(sys.executable).parent / "gis-ioc"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
    env.update({"GIS_IOC_HOME": str(settings.home), "GIS_IOC_DB_PORT": str(settings.db_port),
                "GIS_IOC_DB_NAME": settings.db_name, "COLUMNS": "200"})  # fmt: skip
    return subprocess.run([str(GIS_IOC), *args], env=env, capture_output=True, text=True, timeout=300)


def _vn_shapefile(communes: list[dict[str, Any]], folder: Path, prefix: str) -> tuple[Path, gpd.GeoDataFrame]:
    names = [c for c in communes if all(ch.isascii() or ch.islower() for ch in c["name"])][70:74]
    frame = stations_frame(names, 4, prefix)
    e, n = TO_TM3.transform([g.x for g in frame.geometry], [g.y for g in frame.geometry])
    vn = frame.copy()
    vn.geometry = gpd.points_from_xy(e, n)
    vn = vn.set_crs(None, allow_override=True)
    return _shapefile(vn, folder, "doi_pccc_2015", "tcvn3", prj=False), frame


def test_the_officer_at_the_command_line(
    settings: Settings, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path, frame = _vn_shapefile(communes, tmp_path, "CLI-")
    maps = [arg for src, dst in DBF_MAP.items() for arg in ("--map", f"{src}={dst}")]
    before = digest(db, "layers.fire_stations")
    first = _run(settings, "load", "vector", str(path), "--layer", "fire_stations", *maps)
    assert first.returncode == 1, first.stderr
    assert "--crs EPSG:9209" in first.stderr and "Traceback" not in first.stderr
    assert "tcvn3" in first.stderr  # the report says what it converted
    assert digest(db, "layers.fire_stations") == before

    second = _run(settings, "load", "vector", str(path), "--layer", "fire_stations", "--crs", "EPSG:9209",
                  "--source-unit", "Phòng TN&MT huyện Ân Thi", *maps, "--json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["loaded"] == 4 and report["approval"] == "draft" and report["encoding"]["used"] == "tcvn3"
    load_id = report["load_id"]
    assert f"gis-ioc load approve {load_id}" in second.stderr

    listed = _run(settings, "load", "history", "--layer", "fire_stations", "--json")
    assert any(r["id"] == load_id and r["file_name"] == "doi_pccc_2015.zip" for r in json.loads(listed.stdout))
    shown = json.loads(_run(settings, "load", "show", str(load_id), "--json").stdout)
    assert shown["rows"] == {"draft": 4} and shown["source_unit"] == "Phòng TN&MT huyện Ân Thi"

    approved = _run(settings, "load", "approve", str(load_id))
    assert approved.returncode == 0 and "4 features of fire_stations published" in approved.stderr
    again = _run(settings, "load", "approve", str(load_id))
    assert again.returncode == 1 and "already approved" in again.stderr and "Traceback" not in again.stderr
    names = {r[0] for r in db.execute("SELECT name FROM layers.fire_stations WHERE load_id = %s", (load_id,))}
    assert names == set(frame["name"])
    rolled = _run(settings, "load", "rollback", str(load_id))
    assert rolled.returncode == 0 and "4 features deleted" in rolled.stderr
    trail = db.execute(
        "SELECT action, actor FROM gis_ioc.audit WHERE target = %s ORDER BY id", (f"load {load_id}",)
    ).fetchall()
    assert [a for a, _ in trail] == ["load", "load.approve", "load.rollback"]
    assert all(actor.startswith("cli:") for _, actor in trail)
    missing = _run(settings, "load", "show", "999999")
    assert missing.returncode == 1 and "no load 999999" in missing.stderr


@pytest.fixture(scope="module")
def client(settings: Settings, loaded: Any) -> Iterator[TestClient]:
    """The application, asked by a GIS officer who is also an approver (API key)."""
    with connect(settings, autocommit=True) as conn:
        create(conn, "loader.officer", ["gis_officer", "approver"], with_password=False)
        key = accounts.issue_key(conn, "loader.officer", REF, "cli:test")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


def test_upload_approve_and_see_it_in_the_ogc_api(
    client: TestClient, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path, frame = _vn_shapefile(communes, tmp_path, "API-")
    form = {"layer": "fire_stations", "map": [f"{s}={d}" for s, d in DBF_MAP.items()], "source_unit": "Sở Xây dựng"}
    with path.open("rb") as fh:
        refused = client.post("/api/loads", data=form, files={"file": ("doi_pccc_2015.zip", fh, "application/zip")})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert "--crs EPSG:9209" in body["detail"] and any(i["code"] == "crs" for i in body["report"]["issues"])

    with path.open("rb") as fh:
        done = client.post("/api/loads", data={**form, "crs": "EPSG:9209"}, files={"file": ("doi_pccc_2015.zip", fh)})
    assert done.status_code == 201, done.text
    load_id = done.json()["load_id"]
    code = frame["station_code"][0]
    items = f"/ogc/collections/fire_stations/items?station_code={code}&f=json"
    assert client.get(items).json()["features"] == []  # a draft is not published
    assert client.post(f"/api/loads/{load_id}/approve").json()["approved"] == 4
    features = client.get(items).json()["features"]
    assert len(features) == 1 and features[0]["properties"]["name"] == frame["name"][0]
    lon, lat = features[0]["geometry"]["coordinates"]
    assert abs(lon - frame.geometry[0].x) < 1e-7 and abs(lat - frame.geometry[0].y) < 1e-7
    assert client.get(f"/api/loads/{load_id}").json()["approval"] == "approved"
    assert "doi_pccc_2015.zip" in client.get(f"/api/loads/{load_id}?f=html").text
    assert any(r["id"] == load_id for r in client.get("/api/loads?layer=fire_stations").json())
    assert client.post(f"/api/loads/{load_id}/rollback").json()["deleted"] == 4
    assert client.get(items).json()["features"] == []
    assert scalar(db, "SELECT count(*) FROM layers.fire_stations WHERE load_id = %s", (load_id,)) == 0


@pytest.mark.parametrize(
    ("data", "files", "status", "vi", "en"),
    [
        ({"layer": "fire_stations"}, None, 400, "chưa có tệp", "no file"),
        ({}, {"file": ("a.geojson", b"{}")}, 400, "chưa chọn lớp", "no layer"),
        ({"layer": "nope"}, {"file": ("a.geojson", b"{}")}, 404, "no layer 'nope' to load into", None),
        ({"layer": "fire_stations", "mode": "merge"}, {"file": ("a.geojson", b"{}")}, 400, "chế độ 'merge'", "mode"),
        ({"layer": "fire_stations"}, {"file": ("a.exe", b"MZ")}, 400, "không đọc được", "unknown format"),
        ({"layer": "fire_stations"}, {"file": ("a.geojson", b"")}, 422, "rỗng", None),
        (
            {"layer": "fire_stations", "source_date": "hôm qua"},
            {"file": ("a.geojson", b"{}")},
            400,
            "không phải là ngày",
            "is not a date",
        ),
    ],
)
def test_malformed_uploads_are_4xx_problems(
    client: TestClient,
    db: psycopg.Connection[Any],
    data: dict[str, Any],
    files: Any,
    status: int,
    vi: str,
    en: str | None,
) -> None:
    """Each refusal names the problem, in Vietnamese first and in English when asked; nothing is written."""
    before = digest(db, "layers.fire_stations")
    answer = client.post("/api/loads", data=data, files=files)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json" and vi in answer.json()["detail"]
    if en is not None:
        english = client.post("/api/loads", data=data, files=files, headers={"Accept-Language": "en"})
        assert english.status_code == status and en in english.json()["detail"]
    assert digest(db, "layers.fire_stations") == before


def test_unknown_load_is_404(client: TestClient) -> None:
    assert client.get("/api/loads/424242").status_code == 404
    assert client.post("/api/loads/424242/approve").status_code == 404
    assert client.get("/api/loads/abc").status_code in (400, 404, 422)


def test_loads_need_a_gis_officer_and_approvals_an_approver(
    anonymous: TestClient, settings: Settings, client: TestClient, db: psycopg.Connection[Any]
) -> None:
    assert anonymous.post("/api/loads", data={"layer": "schools"}).status_code == 401
    assert anonymous.get("/api/loads").status_code == 401
    with connect(settings, autocommit=True) as conn:
        create(conn, "loader.analyst", ["analyst"], with_password=False)
        create(conn, "loader.only", ["gis_officer"], with_password=False)
        analyst = {"X-API-Key": accounts.issue_key(conn, "loader.analyst", REF, "cli:test")}
        officer = {"X-API-Key": accounts.issue_key(conn, "loader.only", REF, "cli:test")}
    refused = anonymous.post("/api/loads", data={"layer": "schools"}, headers=analyst)
    assert refused.status_code == 403 and "load" in refused.json()["detail"]
    last = db.execute("SELECT max(id) FROM gis_ioc.loads").fetchone()[0]
    assert anonymous.post(f"/api/loads/{last}/approve", headers=officer).status_code == 403
    denied = db.execute(
        "SELECT count(*) FROM gis_ioc.audit WHERE action = 'denied' AND actor IN ('loader.analyst', 'loader.only')"
    ).fetchone()[0]
    assert denied == 2
