"""Real clients read a past state of a layer (issue 17): a feature is replaced through OGC API Features
Part 4 and approved, then GDAL and OWSLib ask with ``datetime`` for the layer before and after."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from owslib.ogcapi.features import Features

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import key_account, scalar, serve

ITEMS = "/ogc/collections/schools/items"


@pytest.fixture(scope="module")
def server(settings: Settings, loaded: DemoResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(settings, tmp_path_factory.mktemp("server") / "access.log") as base:
        yield base


@pytest.fixture(scope="module")
def key(settings: Settings, loaded: DemoResult) -> str:
    """A GIS officer who is also an approver."""
    with connect(settings, autocommit=True) as conn:
        return key_account(conn, f"history.officer.{uuid.uuid4().hex[:6]}", ["gis_officer", "approver"])


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def replaced(server: str, key: str, settings: Settings) -> Iterator[dict[str, Any]]:
    """A school created and approved, then renamed and approved: its code, the ids of the old and the new
    state (the feature keeps its own for the new one) and an instant between."""
    headers = {"X-API-Key": key}
    code = f"H{uuid.uuid4().hex[:8]}"
    with connect(settings, autocommit=True) as db:
        row = db.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM layers.schools WHERE approval = 'approved' ORDER BY fid LIMIT 1"
        ).fetchone()
        assert row is not None
        lon, lat = float(row[0]) + 0.0005, float(row[1]) - 0.0004
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"school_code": code, "name": "Trường Mầm non Ban Đầu", "level": "preschool"},
        }
        with httpx.Client(base_url=server, headers=headers, timeout=60) as http:
            made = http.post(ITEMS, content=json.dumps(feature), headers={"Content-Type": "application/geo+json"})
            assert made.status_code == 201, made.text
            assert http.post(f"/api/loads/{made.json()['changeSet']}/approve").status_code == 200
            old = made.json()["fid"]
            tag = http.get(f"{ITEMS}/{old}").headers["etag"]
            patch = {"properties": {"name": "Trường Mầm non Đổi Mới"}}
            renamed = http.patch(f"{ITEMS}/{old}", json=patch, headers={"If-Match": tag})
            assert renamed.status_code == 200, renamed.text
            assert http.post(f"/api/loads/{renamed.json()['changeSet']}/approve").status_code == 200
        # the feature keeps its id (now the renamed state); the draft's row holds the state it replaced
        current, retired = old, renamed.json()["fid"]
        first = scalar(db, "SELECT sys_from FROM layers.schools WHERE fid = %s", (retired,))
        second = scalar(db, "SELECT sys_from FROM layers.schools WHERE fid = %s", (current,))
    yield {
        "code": code,
        "old": retired,
        "new": current,
        "between": _z(first + (second - first) / 2),
        "after": _z(second),
    }
    with httpx.Client(base_url=server, headers=headers, timeout=60) as http:  # the layer as the demo left it
        for change in (renamed.json()["changeSet"], made.json()["changeSet"]):
            assert http.post(f"/api/loads/{change}/rollback").status_code == 200


def test_owslib_reads_a_past_state(server: str, key: str, replaced: dict[str, Any]) -> None:
    api = Features(f"{server}/ogc", headers={"X-API-Key": key})
    then = api.collection_items("schools", school_code=replaced["code"], datetime_=replaced["between"])
    now = api.collection_items("schools", school_code=replaced["code"], datetime_=replaced["after"])
    assert [(f["id"], f["properties"]["name"]) for f in then["features"]] == [
        (replaced["old"], "Trường Mầm non Ban Đầu")
    ]
    assert [(f["id"], f["properties"]["name"]) for f in now["features"]] == [
        (replaced["new"], "Trường Mầm non Đổi Mới")
    ]


def _ogr(url: str, key: str, tmp: Path) -> list[dict[str, Any]]:
    """ogr2ogr (Debian's GDAL) copies what the URL answers into a GeoJSON file."""
    target = tmp / f"{uuid.uuid4().hex}.geojson"
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {key}", "CPL_DEBUG": "OFF"}
    result = subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", str(target), url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    features: list[dict[str, Any]] = json.loads(target.read_text(encoding="utf-8"))["features"]
    return features


def test_gdal_reads_a_past_state(server: str, key: str, replaced: dict[str, Any], tmp_path: Path) -> None:
    base = f"{server}{ITEMS}?f=json&school_code={replaced['code']}"
    then = _ogr(f"{base}&datetime={replaced['between']}", key, tmp_path)
    now = _ogr(f"{base}&datetime={replaced['after']}", key, tmp_path)
    assert [f["properties"]["name"] for f in then] == ["Trường Mầm non Ban Đầu"]
    assert [f["properties"]["name"] for f in now] == ["Trường Mầm non Đổi Mới"]
