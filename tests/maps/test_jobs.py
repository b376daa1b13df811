"""One job system in PostgreSQL (issue 12): two applications stand for two server processes. A job
started on one is followed, downloaded and dismissed on the other; only its owner (and administrators)
see it; the retention sweep deletes expired jobs with their files (pygeoapi's process jobs included);
a job whose process stopped reads as failed; maps and reports run as jobs when asked to."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.database.connection import connection_params
from gis_ioc.demo import DemoResult
from gis_ioc.maps import jobs
from gis_ioc.publish import processes
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import INSIDE, scalar

APPROVED = "SELECT count(*) FROM layers.{} WHERE approval = 'approved'"


@pytest.fixture(scope="module")
def a(settings: Settings, loaded: DemoResult, reader_key: str) -> Iterator[TestClient]:
    """Server process A (a leader's key)."""
    with TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def b(settings: Settings, loaded: DemoResult, reader_key: str) -> Iterator[TestClient]:
    """Server process B: another application on the same database and GIS_IOC_HOME."""
    with TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def other(settings: Settings, loaded: DemoResult) -> dict[str, str]:
    """Another leader's key: may export, but not see the suite reader's jobs."""
    from gis_ioc.database.connection import connect

    with connect(settings, autocommit=True) as conn:
        create(conn, "xjobs.other", ["leader"], with_password=False)
        return {"X-API-Key": accounts.issue_key(conn, "xjobs.other", REF, "cli:test")}


def manager(client: TestClient) -> jobs.JobManager:
    found: jobs.JobManager = client.app.state.export_jobs  # type: ignore[attr-defined]
    return found


def follow(client: TestClient, location: str, limit: float = 120) -> tuple[dict[str, Any], list[float]]:
    """Poll a job until it ends; its last description and the percentages seen."""
    seen: list[float] = []
    deadline = time.monotonic() + limit
    while True:
        answer = client.get(location)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        seen.append(job["percent"])
        if job["status"] not in ("queued", "running"):
            return job, seen
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def row(db: psycopg.Connection[Any], job_id: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT type, status, folder, done, total, progress, message, finished FROM gis_ioc.jobs WHERE identifier = %s",
        (job_id,),
    ).fetchone()


def test_an_export_started_on_one_process_is_followed_and_downloaded_on_another(
    a: TestClient, b: TestClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    started = a.post("/api/exports", json={"layer": "buildings", "format": "geojson"})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.headers["location"] == f"/api/exports/jobs/{job_id}"
    assert job_id in manager(a).live or started.json()["status"] not in ("queued", "running")  # A runs it
    job, seen = follow(b, started.headers["location"])
    assert job_id not in manager(b).live  # B only answered about it
    buildings = scalar(db, APPROVED.format("buildings"))
    assert job["status"] == "done", job
    assert job["done"] == job["total"] == job["result"]["features"] == buildings > 0 and job["percent"] == 100.0
    assert seen == sorted(seen)  # progress only goes forward
    assert row(db, job_id)[:6] == ("export", "successful", row(db, job_id)[2], buildings, buildings, 100)  # type: ignore[index]

    file = b.get(f"/api/exports/jobs/{job_id}/file")
    assert file.status_code == 200 and file.headers["content-type"].startswith("application/geo+json")
    assert file.headers["x-feature-count"] == str(buildings) and file.headers["cache-control"] == "private"
    features = json.loads(file.content)["features"]
    assert len(features) == buildings
    fids = {f["properties"]["feature_id"] for f in features}
    assert fids == {r[0] for r in db.execute("SELECT fid FROM layers.buildings WHERE approval = 'approved'")}
    assert a.get(f"/api/exports/jobs/{job_id}/file").content == file.content  # and from A alike

    # the file lies in a private folder of its own under GIS_IOC_HOME/exports, named by a secret
    folder = settings.home / row(db, job_id)[2]  # type: ignore[index]
    assert folder.parent == settings.home / "exports" and job_id not in folder.name and len(folder.name) >= 32
    assert (folder.stat().st_mode & 0o077) == 0 and (folder.parent.stat().st_mode & 0o077) == 0
    # pygeoapi's job routes know only its process jobs
    assert a.get(f"/ogc/jobs/{job_id}?f=json").status_code == 404
    assert job_id not in a.get("/ogc/jobs?f=json").text

    # dismissing a finished job removes it and its file, for every process
    gone = b.delete(f"/api/exports/jobs/{job_id}")
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
    assert row(db, job_id) is None and not folder.exists()
    assert a.get(f"/api/exports/jobs/{job_id}").status_code == 404
    trail = scalar(
        db, "SELECT actor FROM gis_ioc.audit WHERE action = 'dismiss' AND target = %s", (f"export job {job_id}",)
    )
    assert trail == "suite.reader"


def test_a_job_running_on_one_process_is_dismissed_on_another(
    a: TestClient, b: TestClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    """The layer is locked, so A's job waits in its first query while B dismisses it; once the lock goes
    the job stops at its first progress tick and removes its folder."""
    with db.transaction():
        db.execute("LOCK TABLE layers.roads IN ACCESS EXCLUSIVE MODE")
        started = a.post("/api/exports", json={"layer": "roads", "format": "gpkg"})
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        deadline = time.monotonic() + 30
        while (status := b.get(started.headers["location"]).json()["status"]) != "running":
            assert status == "queued" and time.monotonic() < deadline, status
            time.sleep(0.05)
        dismissed = b.delete(f"/api/exports/jobs/{job_id}")
        assert dismissed.status_code == 200, dismissed.text
        assert dismissed.json()["status"] == "dismissed" and dismissed.json()["message"] == "dismissed by suite.reader"
        assert job_id in manager(a).live  # still waiting for the table, on A
    deadline = time.monotonic() + 30
    while job_id in manager(a).live:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kind, status, folder, *_ = row(db, job_id)  # type: ignore[misc]
    assert (kind, status) == ("export", "dismissed") and not (settings.home / folder).exists()
    answer = a.get(started.headers["location"]).json()
    assert answer["status"] == "dismissed" and "result" not in answer
    assert b.get(f"/api/exports/jobs/{job_id}/file").status_code == 409
    assert b.delete(f"/api/exports/jobs/{job_id}").status_code == 200  # a dismissed job: removed now
    assert row(db, job_id) is None


def test_another_account_is_told_there_is_no_such_job(
    a: TestClient, b: TestClient, other: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    started = a.post("/api/exports", json={"layer": "schools", "format": "csv"})
    job, _ = follow(a, started.headers["location"])
    assert job["status"] == "done"
    missing = "/api/exports/jobs/" + uuid.uuid4().hex
    for url in (f"/api/exports/jobs/{job['id']}", f"/api/exports/jobs/{job['id']}/file", missing):
        for client in (a, b):
            answer = client.get(url, headers=other)
            assert answer.status_code == 404 and "no export job" in answer.json()["detail"], answer.text
    refused = b.delete(f"/api/exports/jobs/{job['id']}", headers=other)
    assert refused.status_code == 404 and refused.json()["detail"].startswith(f"no export job {job['id']!r}")
    assert b.delete(f"/api/exports/jobs/{job['id']}", headers={"X-API-Key": ""}).status_code in (401, 404)
    assert row(db, job["id"]) is not None and b.get(f"/api/exports/jobs/{job['id']}/file").status_code == 200


def test_the_retention_sweep_removes_expired_jobs_and_their_files(
    a: TestClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    old, kept = (a.post("/api/exports", json={"layer": "schools", "format": "csv"}) for _ in range(2))
    for started in (old, kept):
        assert follow(a, started.headers["location"])[0]["status"] == "done"
    old_id, kept_id = old.json()["id"], kept.json()["id"]
    folder = settings.home / row(db, old_id)[2]  # type: ignore[index]
    assert folder.is_dir()
    # a pygeoapi process job with its result file under GIS_IOC_HOME/jobs, ended as long ago
    (settings.home / "jobs").mkdir(exist_ok=True)
    process_id = str(uuid.uuid4())
    result = settings.home / "jobs" / f"scenario-health-{process_id}"
    result.write_text("{}")
    db.execute(
        "INSERT INTO gis_ioc.jobs (identifier, type, process_id, created, finished, updated, status, location, "
        "progress) VALUES (%s, 'process', 'scenario-health', timezone('utc', now()) - interval '3 days', "
        "timezone('utc', now()) - interval '3 days', timezone('utc', now()) - interval '3 days', 'successful', "
        "%s, 100)",
        (process_id, str(result)),
    )
    hours = settings.job_retention_hours
    db.execute(
        "UPDATE gis_ioc.jobs SET finished = timezone('utc', now()) - make_interval(hours => %s) WHERE identifier = %s",
        (int(hours) + 1, old_id),
    )
    # the sweep as pygeoapi's job manager runs it after an execution (through psycopg2, its driver)
    ogc = processes.JobManager(processes.process_manager(settings, connection_params(settings)))
    processes.JobManager._swept = -jobs.SWEEP_SECONDS
    ogc._maybe_sweep()
    deadline = time.monotonic() + 30
    while row(db, old_id) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert row(db, old_id) is None and not folder.exists()
    assert scalar(db, "SELECT count(*) FROM gis_ioc.jobs WHERE identifier = %s", (process_id,)) == 0
    assert not result.exists()
    assert row(db, kept_id) is not None and a.get(f"/api/exports/jobs/{kept_id}/file").status_code == 200
    assert a.get(old.headers["location"]).status_code == 404
    # the server's own sweep (every few minutes and when a job starts), with nothing expired left
    assert manager(a).sweep() == 0 and row(db, kept_id) is not None


def test_a_job_whose_process_stopped_reads_as_failed(
    a: TestClient, b: TestClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    job_id = uuid.uuid4().hex
    name = f"exports/{secrets.token_urlsafe(24)}"
    (settings.home / name).mkdir(parents=True)
    db.execute(
        "INSERT INTO gis_ioc.jobs (identifier, type, process_id, created, started, updated, status, message, "
        "progress, owner, request, folder, done, total, worker) VALUES (%s, 'export', 'layer', "
        "timezone('utc', now()) - interval '1 hour', timezone('utc', now()) - interval '1 hour', "
        "timezone('utc', now()) - interval '5 minutes', 'running', 'running', 40, 'suite.reader', "
        "'{\"layer\": \"roads\"}', %s, 400, 1000, 'gone-host:1')",
        (job_id, name),
    )
    answer = b.get(f"/api/exports/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "failed" and job["done"] == 400 and job["total"] == 1000
    assert job["error"] == "the server process running it stopped; start the export again"
    assert row(db, job_id)[1] == "failed" and row(db, job_id)[7] is not None  # type: ignore[index]
    file = a.get(f"/api/exports/jobs/{job_id}/file")
    assert file.status_code == 409 and "start the export again" in file.json()["detail"]
    # a live job with a fresh heartbeat is left alone
    started = a.post("/api/exports", json={"layer": "schools", "format": "csv"})
    assert follow(b, started.headers["location"])[0]["status"] == "done"
    for done in (job_id, started.json()["id"]):
        assert b.delete(f"/api/exports/jobs/{done}").status_code == 200


def test_a_long_job_without_progress_keeps_its_heartbeat(
    settings: Settings, reader_key: str, b: TestClient, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job waiting (no progress tick) longer than a job may go without a heartbeat still reads as
    running: its process refreshes the heartbeat (here every 0.2 s, stale after 1 s)."""
    monkeypatch.setattr(jobs, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(jobs, "STALE_SECONDS", 1.0)
    with TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as c:
        with db.transaction():
            db.execute("LOCK TABLE layers.roads IN ACCESS EXCLUSIVE MODE")
            started = c.post("/api/exports", json={"layer": "roads", "format": "csv"})
            assert started.status_code == 202, started.text
            deadline = time.monotonic() + 30
            while b.get(started.headers["location"]).json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(2.5)
            assert b.get(started.headers["location"]).json()["status"] == "running"
            beat = "SELECT timezone('utc', now()) - updated FROM gis_ioc.jobs WHERE identifier = %s"
            assert scalar(db, beat, (started.json()["id"],)).total_seconds() < 1.0
        job, _ = follow(b, started.headers["location"])
        assert job["status"] == "done" and job["done"] == scalar(db, APPROVED.format("roads"))


def test_maps_and_reports_run_as_jobs_when_asked_to(a: TestClient, b: TestClient) -> None:
    query = {"period": "2026-Q3", "format": "json"}
    async_ = {"Prefer": "respond-async"}
    started = a.get("/api/maps/poor_household_rate", params=query, headers=async_)
    assert started.status_code == 202, started.text
    assert started.headers["preference-applied"] == "respond-async"
    job, _ = follow(b, started.headers["location"])
    assert job["status"] == "done" and job["type"] == "map" and job["result"]["indicator"] == "poor_household_rate"
    file = b.get(f"/api/exports/jobs/{job['id']}/file")
    assert file.status_code == 200 and file.headers["content-type"].startswith("application/json")
    body = file.json()
    assert file.headers["x-scenario-run"] == str(job["result"]["run"])
    sync = a.get("/api/maps/poor_household_rate", params=query)  # by default: the map itself, as before
    assert sync.status_code == 200 and set(sync.json()) == set(body)
    assert sync.json()["classes"] == body["classes"] and body["run_id"] == job["result"]["run"]

    for params, status in (({**query, "period": "soon"}, 400), ({"period": "2026-Q3", "scenario": "nope"}, 404)):
        assert a.get("/api/maps/poor_household_rate", params=params, headers=async_).status_code == status
    unknown = a.get("/api/maps/nope", params=query, headers=async_)  # refused before any job is made
    assert unknown.status_code == 404 and "no indicator 'nope'" in unknown.json()["detail"]

    report = {"period": "2026-Q3", "sector": "health", "commune": "11953", "format": "html", "maps": "false"}
    started = b.get("/api/reports", params=report, headers=async_)
    assert started.status_code == 202, started.text
    job, _ = follow(a, started.headers["location"])
    assert job["status"] == "done" and job["type"] == "report", job
    file = a.get(f"/api/exports/jobs/{job['id']}/file")
    assert file.status_code == 200 and file.headers["content-type"].startswith("text/html")
    assert "<html" in file.text.lower() and file.headers["x-scenario-runs"] == ",".join(map(str, job["result"]["runs"]))
    refused = a.get("/api/reports", params={**report, "commune": "99999"}, headers={**async_, "X-API-Key": "nope"})
    assert refused.status_code == 401  # checked before any job is made
