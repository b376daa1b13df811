"""Who sees what of scenarios, through HTTP (issue 11): runs and jobs belong to their account, processes
follow the caller as the HTTP routes do, officials' contacts only for those who direct work, zones given as
``layer:fid`` read as the caller may read them, and what each caller sees grows with what it may see."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.auth import accounts
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import view
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import scalar

OWN = "11953"
PERIOD = "2026-Q3"
PROVINCE = {"period": PERIOD, "province": True}
INCIDENT = {"incident": "flood", "at": [106.05, 20.65], "rings": [500, 1000, 2000]}
PEOPLE: dict[str, dict[str, Any]] = {
    "leader": {"roles": ["leader"]},
    "other_leader": {"roles": ["leader"]},
    "personal": {"roles": ["leader"], "grants": ["personal_data"]},
    "analyst": {"roles": ["analyst"]},
    "officer": {"roles": ["commune_officer"], "communes": [OWN]},
    "external": {"roles": ["external"]},
    "admin": {"roles": ["administrator"]},
}


@pytest.fixture(scope="module")
def conn(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    with connect(settings, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def keys(conn: psycopg.Connection[Any], anonymous: TestClient) -> dict[str, dict[str, str]]:
    """Request headers of each kind of caller (``anonymous``: none; the application is made first)."""
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, spec in PEOPLE.items():
        username = f"access.{name.replace('_', '-')}"
        create(conn, username, spec["roles"], communes=spec.get("communes"), grants=spec.get("grants"))
        conn.execute("UPDATE gis_ioc.accounts SET must_change_password = false WHERE username = %s", (username,))
        headers[name] = {"X-API-Key": accounts.issue_key(conn, username, REF, "cli:test")}
    return headers


def _process(client: TestClient, headers: dict[str, str], process: str, inputs: dict[str, Any]) -> Any:
    answer = client.post(f"/ogc/processes/{process}/execution", json={"inputs": inputs}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _async_job(client: TestClient, headers: dict[str, str], process: str, inputs: dict[str, Any]) -> str:
    started = client.post(
        f"/ogc/processes/{process}/execution",
        json={"inputs": inputs},
        headers={**headers, "Prefer": "respond-async"},
    )
    assert started.status_code == 201, started.text
    job: str = started.json()["jobID"]
    deadline = time.monotonic() + 60
    while (status := client.get(f"/ogc/jobs/{job}", headers=headers).json())["status"] not in ("successful", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["status"] == "successful", status
    return job


# -- OGC API Processes follow the caller -------------------------------------------------------------


def test_officer_province_scenario_through_a_process_details_own_communes_only(
    anonymous: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    officer = _process(anonymous, keys["officer"], "scenario-health", PROVINCE)
    leader = _process(anonymous, keys["leader"], "scenario-health", PROVINCE)
    nobody = _process(anonymous, keys["anonymous"], "scenario-health", PROVINCE)
    assert len(leader["communes"]) == 104 and [c["code"] for c in officer["communes"]] == [OWN]
    assert nobody["communes"] == [] and nobody["detail_limited_to"] == []
    for mine, full, none in zip(officer["indicators"], leader["indicators"], nobody["indicators"], strict=True):
        assert set(mine["communes"]) == {OWN} and len(full["communes"]) == 104 and none["communes"] == {}
        assert mine["total"] == full["total"] == none["total"]  # totals always, over every commune
    assert {f["where"] for f in officer["flags"]} <= {"total", OWN}
    assert {f["where"] for f in nobody["flags"]} <= {"total"}
    # the HTTP route trims the same way
    route = anonymous.post("/api/scenarios/health/run", json=PROVINCE, headers=keys["officer"]).json()
    assert [c["code"] for c in route["communes"]] == [OWN] and route["detail_limited_to"] == [OWN]


def test_jobs_belong_to_their_caller(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    job = _async_job(anonymous, keys["leader"], "scenario-emergency", INCIDENT)
    assert scalar(conn, "SELECT owner FROM gis_ioc.jobs WHERE identifier = %s", (job,)) == "access.leader"

    def listed(who: str) -> set[str]:
        answer = anonymous.get("/ogc/jobs?f=json&limit=1000", headers=keys[who])
        assert answer.status_code == 200, answer.text
        return {j["jobID"] for j in answer.json()["jobs"]}

    assert job in listed("leader") and job in listed("admin")
    for who in ("anonymous", "other_leader", "analyst", "officer"):
        assert job not in listed(who), who
    for who in ("anonymous", "other_leader", "officer"):  # another's job: as if it did not exist
        for path in (f"/ogc/jobs/{job}", f"/ogc/jobs/{job}/results?f=json"):
            assert anonymous.get(path, headers=keys[who]).status_code == 404, (who, path)
        assert anonymous.delete(f"/ogc/jobs/{job}", headers=keys[who]).status_code == 404, who
    mine = anonymous.get(f"/ogc/jobs/{job}/results?f=json", headers=keys["leader"]).json()
    assert mine["communes"] and all(c["contacts"] for c in mine["communes"])  # still there, whole
    assert anonymous.get(f"/ogc/jobs/{job}", headers=keys["admin"]).status_code == 200
    # shared with another account: seen as that account may see it (no contacts for an analyst)
    conn.execute("UPDATE gis_ioc.jobs SET shared_with = '{access.analyst}' WHERE identifier = %s", (job,))
    shared = anonymous.get(f"/ogc/jobs/{job}/results?f=json", headers=keys["analyst"]).json()
    assert shared["rings"] == mine["rings"] and not any("contacts" in c for c in shared["communes"])
    assert job in listed("analyst") and job not in listed("other_leader")
    assert anonymous.delete(f"/ogc/jobs/{job}", headers=keys["analyst"]).status_code == 403  # seen, not theirs
    assert anonymous.delete(f"/ogc/jobs/{job}", headers=keys["leader"]).status_code == 200
    assert anonymous.get(f"/ogc/jobs/{job}", headers=keys["leader"]).status_code == 404


def test_a_caller_without_an_account_runs_now_and_lists_no_jobs(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    before = scalar(conn, "SELECT count(*) FROM gis_ioc.jobs WHERE owner IS NULL")
    answer = anonymous.post(
        "/ogc/processes/scenario-health/execution",
        json={"inputs": PROVINCE},
        headers={"Prefer": "respond-async"},
    )
    assert answer.status_code == 200 and answer.headers["preference-applied"] == "wait", answer.text
    assert answer.json()["communes"] == [] and answer.json()["indicators"][0]["total"]["value"] is not None
    assert scalar(conn, "SELECT count(*) FROM gis_ioc.jobs WHERE owner IS NULL") == before + 1
    assert anonymous.get("/ogc/jobs?f=json").json()["jobs"] == []


# -- stored runs, reruns, maps and reports by run id ---------------------------------------------------


def test_runs_are_their_owners(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    made = anonymous.post("/api/scenarios/socio_economic/run", json=PROVINCE, headers=keys["leader"]).json()
    run = made["id"]
    assert scalar(conn, "SELECT owner FROM gis_ioc.scenario_runs WHERE id = %s", (run,)) == "access.leader"
    mine = anonymous.get(f"/api/scenarios/runs/{run}", headers=keys["leader"])
    assert mine.status_code == 200 and mine.json()["indicators"] == made["indicators"]
    missing = anonymous.get("/api/scenarios/runs/999999999", headers=keys["other_leader"]).json()["detail"]
    doors = {
        "run": lambda h: anonymous.get(f"/api/scenarios/runs/{run}", headers=h),
        "rerun": lambda h: anonymous.post(f"/api/scenarios/runs/{run}/rerun", headers=h),
        "map": lambda h: anonymous.get(f"/api/maps/poor_household_rate?run={run}&format=json", headers=h),
        "report": lambda h: anonymous.get(f"/api/reports?runs={run}&format=json&maps=false", headers=h),
    }
    for door, ask in doors.items():
        refused = ask(keys["other_leader"])
        assert refused.status_code == 404, (door, refused.text)  # as if it did not exist
        assert refused.json()["detail"] == missing.replace("999999999", str(run)), door
    assert anonymous.get(f"/api/scenarios/runs/{run}").status_code == 404
    assert anonymous.post(f"/api/scenarios/runs/{run}/rerun").status_code == 404
    denied = scalar(
        conn,
        "SELECT count(*) FROM gis_ioc.audit WHERE actor = 'access.other-leader' AND action = 'denied' "
        "AND target LIKE %s",
        (f"%{run}%",),
    )
    assert denied >= len(doors)
    for door, ask in doors.items():  # administrators see every run
        assert ask(keys["admin"]).status_code == 200, door
    # shared with another account by its owner (only its owner shares it)
    share = f"/api/scenarios/runs/{run}/shared_with"
    assert anonymous.put(share, json={"accounts": ["access.analyst"]}, headers=keys["other_leader"]).status_code == 404
    bad = anonymous.put(share, json={"accounts": ["no.such.account"]}, headers=keys["leader"])
    assert bad.status_code == 400 and "no.such.account" in bad.json()["detail"]
    shared = anonymous.put(share, json={"accounts": ["access.other-leader"]}, headers=keys["leader"])
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["access.other-leader"]
    for door, ask in doors.items():
        assert ask(keys["other_leader"]).status_code == 200, door
    reshare = anonymous.put(share, json={"accounts": ["*"]}, headers=keys["other_leader"])
    assert reshare.status_code == 403
    assert anonymous.get(f"/api/scenarios/runs/{run}", headers=keys["analyst"]).status_code == 404


def test_runs_made_with_personal_data_stay_with_those_who_have_it(
    anonymous: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    made = anonymous.post("/api/scenarios/socio_economic/run", json=PROVINCE, headers=keys["personal"]).json()
    share = f"/api/scenarios/runs/{made['id']}/shared_with"
    assert anonymous.put(share, json={"accounts": ["*"]}, headers=keys["personal"]).status_code == 200
    assert anonymous.get(f"/api/scenarios/runs/{made['id']}", headers=keys["personal"]).status_code == 200
    for who in ("leader", "admin", "analyst"):  # shared with every account, but made with personal data
        assert anonymous.get(f"/api/scenarios/runs/{made['id']}", headers=keys[who]).status_code == 404, who


# -- maps and reports: no more to a caller without an account than to a commune officer --------------


def test_province_maps_and_reports_only_for_those_who_see_every_commune(
    anonymous: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    map_url = "/api/maps/poor_household_rate?period=2026-Q3&format=json"
    province = "/api/reports?period=2026-Q3&sector=health&format=json&maps=false"
    own = f"{province}&commune={OWN}"
    expected = {
        "anonymous": (401, 401, 401),
        "external": (403, 403, 403),
        "officer": (403, 403, 200),
        "analyst": (200, 200, 200),
    }
    for who, statuses in expected.items():
        got = tuple(anonymous.get(url, headers=keys[who]).status_code for url in (map_url, province, own))
        assert got == statuses, who


# -- the emergency scenario: officials' contacts --------------------------------------------------------


def test_emergency_contacts_only_for_those_who_direct_work(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    emails = [r[0] for r in conn.execute("SELECT email FROM gis_ioc.commune_contacts WHERE email LIKE '%@%'")]
    assert emails
    for who in ("anonymous", "external", "officer", "analyst", "leader", "admin"):
        for answer in (
            anonymous.post("/api/emergency/run", json=INCIDENT, headers=keys[who]),
            anonymous.post("/ogc/processes/scenario-emergency/execution", json={"inputs": INCIDENT}, headers=keys[who]),
        ):
            assert answer.status_code == 200, (who, answer.text)
            body = answer.json()
            sees = who in ("leader", "admin")
            assert bool(body["communes"]) == (who not in ("anonymous", "external")), who
            assert all(bool(c.get("contacts")) == sees for c in body["communes"]), who
            assert any(e in answer.text for e in emails) == sees, who
            assert body["rings"][-1]["people_within"] > 0  # everyone gets the totals


# -- zones given as layer:fid ---------------------------------------------------------------------------


@pytest.fixture
def draft_zone(conn: psycopg.Connection[Any]) -> Iterator[int]:
    """A draft copy of a planning zone (public layer), removed afterwards."""
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'layers' "
            "AND table_name = 'planning_zones' AND column_name NOT IN ('fid', 'approval') "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position"
        )
    ]
    names = ", ".join(columns)
    fid = scalar(
        conn,
        f"INSERT INTO layers.planning_zones ({names}, approval) "
        f"SELECT {names}, 'draft' FROM layers.planning_zones ORDER BY fid LIMIT 1 RETURNING fid",
    )
    yield fid
    conn.execute("DELETE FROM layers.planning_zones WHERE fid = %s", (fid,))


def test_zones_by_reference_are_read_as_the_caller_may_read_them(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any], draft_zone: int
) -> None:
    def zone(who: str, reference: str, emergency: bool = False) -> tuple[int, str]:
        if emergency:
            body: dict[str, Any] = {"incident": "flood", "zone": reference}
            answer = anonymous.post("/api/emergency/run", json=body, headers=keys[who])
        else:
            body = {"period": PERIOD, "zone": reference}
            answer = anonymous.post("/api/scenarios/health/run", json=body, headers=keys[who])
        return answer.status_code, str(answer.json().get("detail", ""))

    approved = scalar(conn, "SELECT min(fid) FROM layers.planning_zones WHERE approval = 'approved'")
    own = scalar(conn, "SELECT min(fid) FROM layers.land_parcels WHERE commune_code = %s", (OWN,))
    other = scalar(conn, "SELECT min(fid) FROM layers.land_parcels WHERE commune_code <> %s", (OWN,))
    for emergency in (False, True):
        assert zone("leader", f"planning_zones:{approved}", emergency)[0] == 200
        # a draft: as a feature that does not exist
        assert zone("leader", f"planning_zones:{draft_zone}", emergency) == (
            404,
            f"zone reference: no feature {draft_zone} in planning_zones",
        )
        # a layer the caller may not read: as a layer that does not exist
        unknown = zone("anonymous", "no_such_layer:1", emergency)
        assert unknown[0] == 400 and "known layer" in unknown[1]
        assert zone("anonymous", f"land_parcels:{own}", emergency) == (
            400,
            unknown[1].replace("no_such_layer:1", f"land_parcels:{own}"),
        )
        assert zone("external", f"land_parcels:{own}", emergency)[0] == 400
        # another commune's parcel for a commune officer: as a parcel that does not exist
        assert zone("officer", f"land_parcels:{own}", emergency)[0] == 200
        assert zone("officer", f"land_parcels:{other}", emergency) == (
            404,
            f"zone reference: no feature {other} in land_parcels",
        )
        assert zone("officer", "land_parcels:999999999", emergency) == (
            404,
            "zone reference: no feature 999999999 in land_parcels",
        )
        assert zone("leader", f"land_parcels:{other}", emergency)[0] == 200


# -- the policy is monotonic ----------------------------------------------------------------------------

#: Callers ordered by Viewer.rank(); within a rank, those who see contacts last.
LADDER = ("anonymous", "external", "officer", "analyst", "leader", "admin", "personal")


def _leaves(value: Any, path: tuple[str, ...] = ()) -> set[tuple[tuple[str, ...], str]]:
    """Every (path, value) a result shows; list items by position-free path, so a trimmed list is a subset."""
    if isinstance(value, dict):
        out: set[tuple[tuple[str, ...], str]] = set()
        for key, item in value.items():
            if key != "detail_limited_to":  # says what was trimmed; not data
                out |= _leaves(item, (*path, str(key)))
        return out
    if isinstance(value, list):
        return set().union(*(_leaves(item, (*path, "[]")) for item in value)) if value else set()
    return {(path, repr(value))}


def _viewer(who: str) -> Viewer:
    if who == "anonymous":
        return Viewer.ANONYMOUS
    spec = PEOPLE[who]
    return Viewer(
        username=f"access.{who}",
        roles=frozenset(spec["roles"]),
        communes=frozenset(spec.get("communes", ())),
        grants=frozenset(spec.get("grants", ())),
    )


def test_what_each_caller_sees_grows_with_what_it_may_see(
    anonymous: TestClient, keys: dict[str, dict[str, str]], conn: psycopg.Connection[Any]
) -> None:
    ranks = [_viewer(who).rank() for who in LADDER]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5
    sector = anonymous.post("/api/scenarios/health/run", json=PROVINCE, headers=keys["leader"]).json()["id"]
    flood = anonymous.post("/api/emergency/run", json=INCIDENT, headers=keys["leader"]).json()["id"]
    for run in (sector, flood):
        conn.execute("UPDATE gis_ioc.scenario_runs SET shared_with = '{public}' WHERE id = %s", (run,))
        seen = []
        for who in LADDER:
            answer = anonymous.get(f"/api/scenarios/runs/{run}", headers=keys[who])
            assert answer.status_code == 200, (who, answer.text)
            seen.append(_leaves(answer.json()))
        for (lower, less), (higher, more) in pairwise(zip(LADDER, seen, strict=True)):
            assert less <= more, (run, lower, higher, sorted(less - more)[:5])
        assert len(seen[0]) < len(seen[2]) < len(seen[3]) <= len(seen[4])  # anonymous < officer < analyst ≤ leader


def test_trim_is_monotonic_for_every_kind_of_viewer() -> None:
    """The one trim, on one result, for viewers of every rank (and the same rank, contacts or not)."""
    result = {
        "communes": [
            {"code": OWN, "people": 10, "contacts": [{"name": "A", "mobile_phone": "0900"}]},
            {"code": "11977", "people": 20, "contacts": [{"name": "B", "mobile_phone": "0901"}]},
        ],
        "indicators": [{"id": "x", "total": {"value": 3}, "communes": {OWN: {"value": 1}, "11977": {"value": 2}}}],
        "flags": [{"indicator": "x", "where": "total"}, {"indicator": "x", "where": "11977"}],
    }
    viewers = [
        Viewer.ANONYMOUS,
        Viewer(username="e", roles=frozenset({"external"}), grants=frozenset({"buildings"})),
        Viewer(username="o", roles=frozenset({"commune_officer"}), communes=frozenset({OWN})),
        Viewer(username="a", roles=frozenset({"analyst"})),
        Viewer(username="l", roles=frozenset({"leader"})),
        Viewer.console(),
    ]
    assert [v.rank() for v in viewers] == sorted(v.rank() for v in viewers)
    seen = [_leaves(view.trim(v, result)) for v in viewers]
    assert all(a <= b for a, b in pairwise(seen))
    assert view.trim(viewers[0], result)["communes"] == [] and "contacts" not in str(view.trim(viewers[3], result))
    assert view.trim(viewers[2], result)["flags"] == [{"indicator": "x", "where": "total"}]
