"""Who sees what, door by door: every role against a public and an internal layer, through the OGC API
collections list, items, a single feature, tiles and queryables, and through scenarios."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.auth import accounts
from tests.auth.conftest import REF, create
from tests.conftest import scalar

ROLES: dict[str, dict[str, Any]] = {
    "anonymous": {},
    "leader": {"roles": ["leader"]},
    "analyst": {"roles": ["analyst"]},
    "gis_officer": {"roles": ["gis_officer"]},
    "approver": {"roles": ["approver"]},
    "officer_11953": {"roles": ["commune_officer"], "communes": ["11953"]},
    "external": {"roles": ["external"]},
    "external_granted": {"roles": ["external"], "grants": ["buildings"]},
}
#: Expected reach: (schools: public, buildings: internal, buildings rows: all | own | none)
EXPECTED = {
    "anonymous": (True, False, "none"),
    "leader": (True, True, "all"),
    "analyst": (True, True, "all"),
    "gis_officer": (True, True, "all"),
    "approver": (True, True, "all"),
    "officer_11953": (True, True, "own"),
    "external": (True, False, "none"),
    "external_granted": (True, True, "all"),
}


@pytest.fixture(scope="module")
def keys(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, spec in ROLES.items():
        if name == "anonymous":
            continue
        username = f"matrix.{name.replace('_', '-')}"
        create(
            conn, username, spec["roles"], communes=spec.get("communes"), grants=spec.get("grants"), with_password=False
        )
        headers[name] = {"X-API-Key": accounts.issue_key(conn, username, REF, "cli:test")}
    return headers


@pytest.mark.parametrize("who", list(ROLES))
def test_ogc_doors(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any], who: str
) -> None:
    headers = keys[who]
    public, internal, rows = EXPECTED[who]
    listed = {c["id"] for c in anonymous.get("/ogc/collections?f=json", headers=headers).json()["collections"]}
    assert ("schools" in listed) is public and ("buildings" in listed) is internal
    assert "police_posts" not in listed  # restricted: not granted to any of these roles
    fid = scalar(conn, "SELECT min(fid) FROM layers.buildings WHERE commune_code <> '11953'")
    own_fid = scalar(conn, "SELECT min(fid) FROM layers.buildings WHERE commune_code = '11953'")
    for path in (
        "/ogc/collections/buildings",
        "/ogc/collections/buildings/items?limit=1",
        "/ogc/collections/buildings/queryables",
        "/ogc/collections/buildings/tiles/WebMercatorQuad",
        f"/ogc/collections/buildings/items/{own_fid}",
    ):
        status = anonymous.get(path, headers=headers).status_code
        assert status == (200 if internal else 404), (who, path, status)
    other = anonymous.get(f"/ogc/collections/buildings/items/{fid}", headers=headers).status_code
    assert other == (200 if rows == "all" else 404), (who, other)
    if rows != "none":
        hits = anonymous.get("/ogc/collections/buildings/items?resulttype=hits&limit=1", headers=headers).json()[
            "numberMatched"
        ]
        own = "WHERE commune_code = '11953'" if rows == "own" else ""
        assert hits == scalar(conn, f"SELECT count(*) FROM layers.buildings {own}")


def test_commune_officer_sees_own_detail_and_only_totals_elsewhere(
    anonymous: TestClient,
    keys: dict[str, dict[str, str]],
) -> None:
    body = {"period": "2026-Q3", "communes": ["11953", "11977"]}
    officer = anonymous.post("/api/scenarios/health/run", headers=keys["officer_11953"], json=body).json()
    leader = anonymous.post("/api/scenarios/health/run", headers=keys["leader"], json=body).json()
    for mine, full in zip(officer["indicators"], leader["indicators"], strict=True):
        assert set(mine["communes"]) == {"11953"} and set(full["communes"]) == {"11953", "11977"}
        assert mine["total"]["value"] == full["total"]["value"]
    assert officer["detail_limited_to"] == ["11953"]
    assert all(f["where"] in ("total", "11953") for f in officer["flags"])


def test_runs_made_with_personal_access_are_kept_from_others(
    anonymous: TestClient,
    keys: dict[str, dict[str, str]],
    conn: psycopg.Connection[Any],
) -> None:
    create(conn, "matrix.personal", ["leader"], grants=["personal_data"], with_password=False)
    key = {"X-API-Key": accounts.issue_key(conn, "matrix.personal", REF, "cli:test")}
    lon, lat = conn.execute(
        "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM layers.buildings WHERE households = 1 "
        "ORDER BY fid LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    body = {"period": "2026-Q3", "radius": {"at": [lon, lat], "metres": 15}}
    hidden = anonymous.post("/api/scenarios/socio_economic/run", headers=keys["leader"], json=body).json()
    shown = anonymous.post("/api/scenarios/socio_economic/run", headers=key, json=body).json()
    assert anonymous.get(f"/api/scenarios/runs/{shown['id']}", headers=key).status_code == 200
    assert anonymous.get(f"/api/scenarios/runs/{shown['id']}", headers=keys["leader"]).status_code == 404
    assert anonymous.get(f"/api/scenarios/runs/{hidden['id']}").status_code == 404  # runs belong to their maker
    assert anonymous.get(f"/api/scenarios/runs/{hidden['id']}", headers=keys["leader"]).status_code == 200


def test_export_door(anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]) -> None:
    url = "/api/exports/layers/buildings?format=csv"
    assert anonymous.get(url).status_code == 401
    for who in ("external", "external_granted"):  # external clients read through the OGC API; no exports
        refused = anonymous.get(url, headers=keys[who])
        assert refused.status_code == 403 and "export" in refused.json()["detail"], who
    for who, where in (("leader", ""), ("officer_11953", "WHERE commune_code = '11953'")):
        answer = anonymous.get(url, headers=keys[who])
        assert answer.status_code == 200, answer.text
        rows = answer.content.decode("utf-8-sig").strip().count("\n")
        assert rows == scalar(conn, f"SELECT count(*) FROM layers.buildings {where}"), who
    trail = conn.execute(
        "SELECT actor, detail->>'rows' FROM gis_ioc.audit WHERE action = 'export' AND target = 'layer buildings' "
        "AND actor LIKE 'matrix.%' ORDER BY id"
    ).fetchall()
    assert [a for a, _ in trail][-2:] == ["matrix.leader", "matrix.officer-11953"]


def test_maps_and_reports_keep_commune_officers_to_their_communes(
    anonymous: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    officer = keys["officer_11953"]
    assert anonymous.get("/api/maps/poor_household_rate?period=2026-Q3&format=json", headers=officer).status_code == 403
    other = "/api/reports?period=2026-Q3&commune=11977&format=json&maps=false&sector=health"
    assert anonymous.get(other, headers=officer).status_code == 403
    own = anonymous.get(other.replace("11977", "11953"), headers=officer)
    assert own.status_code == 200, own.text
