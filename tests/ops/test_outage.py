"""PostGIS goes away during service: every door answers 503 with Retry-After (never a 500 or a hang), and
the service recovers by itself within seconds of the database returning. Runs on its own cluster, so the
rest of the suite is not disturbed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.database.cluster import Cluster
from gis_ioc.settings import Settings

REQUESTS = [
    ("GET", "/ogc/collections/communes/items?limit=2", None),
    ("GET", "/ogc/collections/communes/items/1", None),
    ("GET", "/ogc/collections/communes/items?limit=2&f=html", None),
    ("GET", "/ogc/collections/communes/items?limit=2&f=csv", None),
    ("GET", "/ogc/collections/communes/items?limit=2&f=jsonld", None),
    ("GET", "/ogc/collections/communes/items/1?f=html", None),
    ("GET", "/ogc/collections/communes/items/1?f=jsonld", None),
    ("POST", "/ogc/processes/scenario-health/execution", {"inputs": {"period": "2026-Q3", "communes": ["11953"]}}),
    ("GET", "/ogc/jobs?f=json", None),
    ("GET", "/api/identify?lon=106.05&lat=20.65", None),
    ("GET", "/ogc/collections/communes/tiles/WebMercatorQuad/10/451/816", None),
    ("POST", "/api/scenarios/health/run", {"period": "2026-Q3", "communes": ["11953"]}),
    ("POST", "/api/emergency/run", {"incident": "fire", "at": [106.05, 20.65]}),
    ("GET", "/api/scenarios/runs/1", None),
    ("POST", "/api/auth/login", {"username": "someone", "password": "whatever it is"}),
    ("GET", "/api/health", None),
    ("GET", "/readyz", None),
]


def _call(client: TestClient, method: str, path: str, body: object) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    response = client.request(method, path, json=body) if body is not None else client.request(method, path)
    return response.status_code, dict(response.headers), time.monotonic() - started


def test_database_outage_gives_503_then_recovers(own: tuple[Settings, Cluster]) -> None:
    settings, cluster = own
    with TestClient(create_app(settings)) as client:
        before = {path: _call(client, m, path, body)[0] for m, path, body in REQUESTS}
        assert all(status < 500 for status in before.values()), before
        assert client.get("/api/communes?q=pho").status_code == 200
        cluster.stop()
        try:
            with ThreadPoolExecutor(len(REQUESTS)) as workers:  # all at once, as users would
                answers = list(workers.map(lambda r: _call(client, *r), REQUESTS))
            for (_, path, _), (status, headers, seconds) in zip(REQUESTS, answers, strict=True):
                assert status == 503, (path, status)
                assert headers.get("retry-after") == "5", path
                assert seconds < 12, (path, seconds)  # never a hang
            assert client.get("/healthz").status_code == 200  # the process itself is fine
            assert client.get("/ogc/collections/schools/queryables").status_code == 200  # from the catalog
            assert client.get("/api/communes?q=pho").status_code == 200  # the communes read before, kept a while
        finally:
            cluster.start()
        deadline = time.monotonic() + 15
        while True:
            after = {path: _call(client, m, path, body)[0] for m, path, body in REQUESTS}
            if after == before:
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
