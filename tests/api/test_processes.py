"""OGC API - Processes: the scenarios run through pygeoapi's job manager, synchronously and asynchronously,
and answer what the project's own API answers."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.conftest import scalar

BODY = {"period": "2026-Q3", "radius": {"at": [106.05, 20.65], "metres": 2000}}


def _figures(run: dict[str, Any]) -> dict[str, Any]:
    return {i["id"]: (i["total"]["value"], i["total"]["status"]) for i in run["indicators"]}


def test_every_scenario_is_a_process(client: TestClient) -> None:
    listed = client.get("/ogc/processes").json()["processes"]
    scenarios = [s["id"] for s in client.get("/api/scenarios").json()]
    assert sorted(p["id"] for p in listed) == sorted([f"scenario-{s}" for s in scenarios] + ["scenario-emergency"])
    health = client.get("/ogc/processes/scenario-health").json()
    assert health["jobControlOptions"] == ["sync-execute", "async-execute"]
    assert health["inputs"]["period"]["minOccurs"] == 1 and "radius" in health["inputs"]
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert any("ogcapi-processes-1/1.0/conf/core" in c for c in conformance)


def test_sync_execution_answers_like_the_api(client: TestClient) -> None:
    direct = client.post("/api/scenarios/health/run", json=BODY).json()
    response = client.post("/ogc/processes/scenario-health/execution", json={"inputs": BODY})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["scenario"] == "health" and run["id"] != direct["id"]  # each run is stored
    assert _figures(run) == _figures(direct)
    assert run["flags"] == direct["flags"]


def test_async_job_runs_and_keeps_its_result(client: TestClient, db: psycopg.Connection[Any]) -> None:
    inputs = {"incident": "flood", "at": [106.05, 20.65], "rings": [500, 1000, 2000]}
    direct = client.post("/api/emergency/run", json=inputs).json()
    started = client.post(
        "/ogc/processes/scenario-emergency/execution", json={"inputs": inputs}, headers={"Prefer": "respond-async"}
    )
    assert started.status_code == 201, started.text
    job = started.json()["jobID"]
    assert started.headers["location"].endswith(f"/ogc/jobs/{job}")
    deadline = time.monotonic() + 30
    while (status := client.get(f"/ogc/jobs/{job}").json())["status"] not in ("successful", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["status"] == "successful", status
    result = client.get(f"/ogc/jobs/{job}/results?f=json").json()
    assert result["rings"] == direct["rings"] and result["shelters"]["capacity"] == direct["shelters"]["capacity"]
    assert scalar(db, "SELECT status FROM gis_ioc.jobs WHERE identifier = %s", (job,)) == "successful"
    assert client.delete(f"/ogc/jobs/{job}").status_code == 200
    assert client.get(f"/ogc/jobs/{job}").status_code == 404


def test_bad_inputs_fail_with_the_reason(client: TestClient) -> None:
    response = client.post(
        "/ogc/processes/scenario-health/execution", json={"inputs": {"period": "2026-Q3", "communes": ["99999"]}}
    )
    assert response.status_code == 400 and "unknown commune codes: 99999" in response.json()["description"]
    response = client.post("/ogc/processes/scenario-health/execution?lang=en", json={"inputs": {"province": True}})
    assert response.status_code == 400 and "period is required" in response.json()["description"]
    response = client.post(
        "/ogc/processes/scenario-emergency/execution", json={"inputs": {"incident": "flood", "rings": [1]}}
    )
    assert response.status_code == 400 and "either at" in response.json()["description"]
    assert client.post("/ogc/processes/nothing/execution", json={"inputs": {}}).status_code == 404


def test_the_job_list_is_the_callers_newest_first_in_pages(client: TestClient, db: psycopg.Connection[Any]) -> None:
    made = []
    for _ in range(2):
        started = client.post(
            "/ogc/processes/scenario-health/execution", json={"inputs": BODY}, headers={"Prefer": "respond-async"}
        )
        assert started.status_code == 201, started.text
        made.append(started.json()["jobID"])
    listed = client.get("/ogc/jobs?f=json&limit=1000").json()["jobs"]
    owners = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT owner FROM gis_ioc.jobs WHERE identifier = ANY(%s)", ([j["jobID"] for j in listed],)
        )
    }
    assert owners == {"suite.reader"} and set(made) <= {j["jobID"] for j in listed}
    first = client.get("/ogc/jobs?f=json&limit=1").json()
    assert [j["jobID"] for j in first["jobs"]] == [made[-1]]
    assert any(link["rel"] == "next" for link in first["links"])
    second = client.get("/ogc/jobs?f=json&limit=1&offset=1").json()
    assert [j["jobID"] for j in second["jobs"]] == [made[-2]]


def test_an_execution_body_that_is_not_an_object_is_a_400(client: TestClient) -> None:
    for body in ("[null, null]", "3", '"inputs"'):
        answer = client.post(
            "/ogc/processes/scenario-health/execution",
            content=body,
            headers={"Content-Type": "application/json", "Accept-Language": "en"},
        )
        assert answer.status_code == 400, (body, answer.text)
        assert "JSON object" in answer.json()["detail"]
    assert client.post("/ogc/processes/scenario-health/execution", json={"inputs": BODY}).status_code == 200
