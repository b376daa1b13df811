"""The HTTP stories of the suite against `gis-ioc serve --workers 3`: any worker answers any request.

Requests go over real sockets to uvicorn's three processes, which share one port; nothing links the
workers but PostgreSQL (and GIS_IOC_HOME for job files). Each story is asked many times so that every
worker takes part; which processes answered is read from PostgreSQL (each worker's connections carry its
process id in ``application_name``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from gis_ioc.auth import accounts
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS, SUITE_REQUEST, key_account, scalar, serve

WORKERS = 3


@pytest.fixture(scope="module")
def base(settings: Settings, loaded: Any) -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(settings, ARTIFACTS / "workers-server.log", workers=WORKERS) as address:
        yield address


def answering_workers(db: psycopg.Connection[Any]) -> set[str]:
    """The server processes holding pooled connections (not the applications of this test process)."""
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'gis_ioc/%%' AND application_name <> %s",
            (f"gis_ioc/{os.getpid()}",),
        )
    }


def test_every_worker_serves_and_state_is_shared(base: str, db: psycopg.Connection[Any]) -> None:
    key = key_account(db, "workers.leader", ["leader"])
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
        # many requests over fresh connections: the kernel spreads them over the workers
        for _ in range(60):
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as once:
                assert once.get("/ogc/collections/land_parcels/items?limit=2").status_code == 200
        assert len(answering_workers(db)) == WORKERS

        # an export job started on one worker is followed and fetched through all of them
        started = http.post("/api/exports", json={"layer": "schools", "format": "geojson"})
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        deadline = time.monotonic() + 60
        while True:
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as once:
                job = once.get(location).json()
            if job["status"] not in ("queued", "running", "accepted"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        schools = scalar(db, "SELECT count(*) FROM layers.schools WHERE approval = 'approved'")
        assert job["status"] == "done" and job["done"] == schools, job
        for _ in range(6):
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as once:
                file = once.get(f"{location}/file")
                assert file.status_code == 200 and len(file.json()["features"]) == schools

        # a change made anywhere is seen by every worker at once: the cached answers follow the version
        fid, name = db.execute("SELECT fid, name FROM layers.schools ORDER BY fid LIMIT 1").fetchone()  # type: ignore[misc]
        url = f"/ogc/collections/schools/items/{fid}"
        for _ in range(10):
            with httpx.Client(base_url=base, timeout=30) as once:
                assert once.get(url).json()["properties"]["name"] == name  # now in every worker's cache
        try:
            db.execute("UPDATE layers.schools SET name = 'Trường THCS Đổi Mới' WHERE fid = %s", (fid,))
            time.sleep(0.5)  # the notification reaches every worker within milliseconds
            for _ in range(10):
                with httpx.Client(base_url=base, timeout=30) as once:
                    assert once.get(url).json()["properties"]["name"] == "Trường THCS Đổi Mới"
        finally:
            db.execute("UPDATE layers.schools SET name = %s WHERE fid = %s", (name, fid))

        # locking an account takes effect in every worker, though each had its key cached
        client_key = key_account(db, "workers.client", ["leader"])
        for _ in range(10):
            with httpx.Client(base_url=base, headers={"X-API-Key": client_key}, timeout=30) as once:
                assert once.get("/ogc/collections/land_parcels/items?limit=1").status_code == 200
        accounts.lock(db, "workers.client", SUITE_REQUEST, "cli:test", reason="workers test")
        time.sleep(0.5)
        for _ in range(10):
            with httpx.Client(base_url=base, headers={"X-API-Key": client_key}, timeout=30) as once:
                assert once.get("/ogc/collections/land_parcels/items?limit=1").status_code == 401


def test_login_attempts_are_counted_across_workers(base: str, db: psycopg.Connection[Any]) -> None:
    db.execute("DELETE FROM gis_ioc.rate_hits")
    statuses = []
    for _ in range(12):
        with httpx.Client(base_url=base, timeout=30) as once:  # a new connection: any worker
            answer = once.post("/api/auth/login", json={"username": "workers.nobody", "password": "sai mật khẩu"})
            statuses.append(answer.status_code)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
    db.execute("DELETE FROM gis_ioc.rate_hits")


def test_an_async_process_job_is_answered_by_any_worker(base: str, db: psycopg.Connection[Any]) -> None:
    key = key_account(db, "workers.analyst", ["leader"])
    body = {"inputs": {"period": "2026-Q3", "province": True}}
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as http:
        started = http.post(
            "/ogc/processes/scenario-education/execution", json=body, headers={"Prefer": "respond-async"}
        )
        assert started.status_code == 201, started.text
        location = started.headers["location"]
        deadline = time.monotonic() + 60
        while True:
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as once:
                status = once.get(location, params={"f": "json"}).json()
            if status["status"] in ("successful", "failed", "dismissed"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "successful", status
        for _ in range(6):
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as once:
                results = once.get(f"{location}/results", params={"f": "json"})
                assert results.status_code == 200 and results.json()["scenario"] == "education"
