"""Findings of the external security test on the scenarios, through HTTP:

- denial of service: zones, rings and radii are bounded (400 naming the bound) and the largest allowed
  emergency zone is answered well within the statement timeout of anonymous callers (5 s);
- personal data: without the personal-data grant, the emergency scenario's counts do not reveal a single
  building's households, neither directly (a ring around it) nor by differencing rings or runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.scenarios.disclosure import ROUND_TO
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import INSIDE

#: The zone of the finding: a box of ~11,500 km² around the whole province.
HUGE = {
    "type": "Polygon",
    "coordinates": [[[105.5, 20.3], [106.6, 20.3], [106.6, 21.2], [105.5, 21.2], [105.5, 20.3]]],
}
#: The point of the finding: on an apartment building (its households are the only ones within 3 m).
BLOCK = [106.05842606831736, 20.654419217302202]
#: What the lead sets for anonymous transactions: every statement of the largest zone must fit in it.
ANONYMOUS_TIMEOUT_MS = 5000
FIGURES = ("people", "households", "buildings", "mapped_households", "people_within", "households_within")
BANDS = ("people", "households", "buildings", "mapped_households")


@pytest.fixture(scope="module")
def app(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    """The application with the anonymous statement timeout for every transaction; no credentials."""
    strict = settings.model_copy(update={"db_statement_timeout_ms": ANONYMOUS_TIMEOUT_MS})
    with TestClient(create_app(strict), client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def keys(settings: Settings, loaded: DemoResult) -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    with connect(settings, autocommit=True) as conn:
        for name, grants in (("leader", None), ("responder", ["personal_data"])):
            username = f"bounds.{name}"
            create(conn, username, ["leader"], grants=grants, with_password=False)
            headers[name] = {"X-API-Key": accounts.issue_key(conn, username, REF, "cli:test")}
    return headers


@pytest.fixture(scope="module")
def conn(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    with connect(settings, autocommit=True) as c:
        yield c


def _emergency(app: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = app.post("/api/emergency/run", json=body, headers=headers or {})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _refused(app: TestClient, url: str, body: dict[str, Any]) -> str:
    answer = app.post(url, json=body)
    assert answer.status_code == 400, answer.text
    detail: str = answer.json()["detail"]
    return detail


# -- 1. denial of service: bounded work ---------------------------------------------------------------


def _circle(lon: float, lat: float, radius_deg: float, vertices: int) -> dict[str, Any]:
    ring = [
        [
            lon + radius_deg * math.cos(2 * math.pi * i / vertices),
            lat + radius_deg * math.sin(2 * math.pi * i / vertices),
        ]
        for i in range(vertices)
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def test_zones_beyond_the_bounds_are_refused_naming_the_bound(app: TestClient) -> None:
    outside = _circle(105.0, 20.0, 0.05, 32)  # Hòa Bình, ~80 km west
    jagged = _circle(106.05, 20.65, 0.01, 10_500)  # small, but 10,501 vertices
    for url, extra in (
        ("/api/emergency/run", {"incident": "flood"}),
        ("/api/scenarios/health/run", {"period": "2026-Q3"}),
    ):
        assert "3,000 km²" in _refused(app, url, {**extra, "zone": HUGE})
        assert "outside the province" in _refused(app, url, {**extra, "zone": outside})
        assert "10,000 vertices" in _refused(app, url, {**extra, "zone": jagged})
    # the OGC API processes run the same selections
    for process, extra in (("scenario-emergency", {"incident": "flood"}), ("scenario-health", {"period": "2026-Q3"})):
        answer = app.post(f"/ogc/processes/{process}/execution", json={"inputs": {**extra, "zone": HUGE}})
        assert answer.status_code == 400 and "3,000 km²" in answer.json()["description"], answer.text


def test_rings_and_radii_beyond_the_bounds_are_refused(app: TestClient) -> None:
    url = "/api/emergency/run"
    assert "at most 20,000 m" in _refused(app, url, {"incident": "fire", "at": [106.05, 20.65], "rings": [25_000]})
    far = _refused(app, url, {"incident": "fire", "at": [104.0, 20.65], "rings": [20_000]})
    assert "does not reach the province" in far
    scenario = "/api/scenarios/health/run"
    too_wide = {"period": "2026-Q3", "radius": {"at": [106.05, 20.65], "metres": 60_000}}
    assert "at most 50,000 m" in _refused(app, scenario, too_wide)
    away = {"period": "2026-Q3", "radius": {"at": [104.0, 20.65], "metres": 10_000}}
    assert "does not reach the province" in _refused(app, scenario, away)
    # the widest radius allowed is answered (a circle of 50 km covers the province)
    widest = {"period": "2026-Q3", "radius": {"at": [106.2, 20.65], "metres": 50_000}}
    answer = app.post(scenario, json=widest)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["communes"]) == 0  # anonymous: totals only


def test_the_largest_zone_allowed_is_answered_within_the_anonymous_timeout(
    app: TestClient, conn: psycopg.Connection[Any]
) -> None:
    """The province widened by 1 km (~2,930 km²), with its boundary cut into ~9,700 vertices: every
    building of the province is exposed, and each shelter's share is found within the timeout."""
    row = conn.execute(
        "SELECT ST_AsGeoJSON(ST_Segmentize(ST_Buffer(geom::geography, 1000), 52)::geometry)::json, "
        "ST_NPoints(ST_Segmentize(ST_Buffer(geom::geography, 1000), 52)::geometry), "
        "ST_Area(ST_Buffer(geom::geography, 1000)) / 1e6 FROM layers.province WHERE valid_to IS NULL"
    ).fetchone()
    assert row is not None
    zone, vertices, km2 = row
    assert 9_000 < vertices <= 10_000 and 2_800 < km2 <= 3_000
    households = conn.execute(
        "SELECT count(*) FROM layers.buildings WHERE approval = 'approved' AND households > 0"
    ).fetchone()
    assert households is not None
    timings = {}
    for incident in ("flood", "fire"):
        started = time.perf_counter()
        body = _emergency(app, {"incident": incident, "zone": zone})
        timings[incident] = time.perf_counter() - started
        assert body["rings"][0]["people_within"] > 0 and body["rings"][0]["buildings"] is None
    scenario = app.post("/api/scenarios/education/run", json={"period": "2026-Q3", "zone": zone})
    assert scenario.status_code == 200, scenario.text
    print(f"largest zone ({vertices} vertices, {km2:,.0f} km²): {timings}")  # for the record (pytest -s)


# -- 2. personal data: no single building's households -------------------------------------------------


def _numbers(value: Any) -> list[float]:
    """Every number of a result's counts (rings, communes, shelters' needs, flags), not coordinates."""
    found: list[float] = []
    for ring in value["rings"]:
        found += [ring[k] for k in FIGURES if ring[k] is not None]
    for commune in value["communes"]:
        found += [commune[k] for k in ("people", "households") if commune[k] is not None]
    shelters = value["shelters"]
    found += [shelters[k] for k in ("people_to_evacuate", "short_by") if shelters[k] is not None]
    for shelter in shelters["usable"]:
        found += [shelter[k] for k in ("assigned_people", "short_by") if shelter[k] is not None]
    for flag in value["flags"]:
        found += [flag[k] for k in ("needed", "gap") if flag.get(k) is not None]
    return found


def test_a_ring_around_one_building_shows_nothing_of_its_households(
    app: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    block = conn.execute(
        "SELECT count(*), sum(households) FROM layers.buildings WHERE approval = 'approved' AND households > 0 "
        "AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, 3)",
        BLOCK,
    ).fetchone()
    assert block is not None and block[0] == 1 and block[1] > 5
    body = {"incident": "fire", "at": BLOCK, "rings": [3]}
    exact = _emergency(app, body, keys["responder"])  # an emergency responder granted personal data
    assert exact["rings"][0]["mapped_households"] == block[1] and exact["rings"][0]["buildings"] == 1
    secret = {block[1], exact["rings"][0]["people"], exact["rings"][0]["households"]}
    for who in ("anonymous", "leader"):  # a leader without personal data is no different
        shown = _emergency(app, body, keys[who])
        assert all(shown["rings"][0][k] is None for k in FIGURES), who
        assert shown["shelters"]["people_to_evacuate"] is None and shown["suppressed"] >= 2, who
        assert not secret & set(_numbers(shown)), (who, secret & set(_numbers(shown)))
        assert "withheld" in shown["disclosure"]
        if who == "leader":
            assert shown["communes"] and all(c["people"] is None for c in shown["communes"])


def test_differencing_rings_or_runs_isolates_no_building(app: TestClient, keys: dict[str, dict[str, str]]) -> None:
    """The finding: rings [3, 500] and [500], differenced, gave the building's households. Rings are
    cumulative and do not depend on the other rings asked for: the two runs agree on 500 m."""
    for who in ("anonymous", "leader"):
        both = _emergency(app, {"incident": "fire", "at": BLOCK, "rings": [3, 500]}, keys[who])
        outer = _emergency(app, {"incident": "fire", "at": BLOCK, "rings": [500]}, keys[who])
        assert all(both["rings"][0][k] is None for k in FIGURES), who
        for ring in (*both["rings"], *outer["rings"]):
            assert all(ring[k] is None for k in BANDS), who  # no band between two rings
        for key in ("people_within", "households_within"):
            assert both["rings"][1][key] == outer["rings"][0][key] is not None, who
            assert outer["rings"][0][key] % ROUND_TO == 0
        assert both["shelters"]["people_to_evacuate"] == outer["shelters"]["people_to_evacuate"]
        # per commune, the same figures: the difference of every figure the two runs show is nothing
        assert [(c["code"], c["people"], c["households"]) for c in both["communes"]] == [
            (c["code"], c["people"], c["households"]) for c in outer["communes"]
        ]
        assert sorted(_numbers(both)) == sorted(_numbers(outer)), who
    exact = _emergency(app, {"incident": "fire", "at": BLOCK, "rings": [3, 500]}, keys["responder"])
    assert exact["rings"][1]["mapped_households"] is not None  # the grantee keeps the bands
