"""The suite's PostGIS: a throwaway cluster made by gis_ioc's own cluster machinery.

It is created once per test session in a temporary folder on a free port, migrated, loaded with the
real boundaries and the full demo data (fixed seed and reference day), and removed at the end.
Nothing is mocked and nothing is skipped: if PostGIS cannot be started, the tests fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts, audit
from gis_ioc.auth.accounts import RequestRef
from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import cluster_for, connect, ensure_database
from gis_ioc.database.migrations import upgrade
from gis_ioc.demo import DemoOptions, DemoResult, generate_demo
from gis_ioc.iot.store import Message, store_messages
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.settings import Settings

AS_OF = date(2026, 11, 27)
SEED = 20250701
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
INSIDE = ("127.0.0.1", 50000)  # the test client's address: the government network
SUITE_REQUEST = RequestRef("1/TEST", date(2026, 11, 1), "gis_ioc test suite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temp_home(prefix: str) -> Path:
    """A folder the cluster's unprivileged user can reach (mkdtemp makes it private to root)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    return home


@contextmanager
def fresh_cluster(prefix: str) -> Iterator[tuple[Settings, Cluster]]:
    """A new cluster with an empty database in a temporary folder, on free ports; removed afterwards."""
    home = temp_home(prefix)
    s = Settings(  # type: ignore[call-arg]
        home=home,
        db_port=free_port(),
        port=free_port(),
        database_url=None,
        allowed_hosts="testserver,127.0.0.1,localhost",  # FastAPI's test client asks for "testserver"
        _env_file=None,
    )
    cluster = cluster_for(s)
    keys = audit.configured()  # an application made on this cluster points the audit keys at its home
    try:
        cluster.init()
        cluster.start()
        ensure_database(s)
        yield s, cluster
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)
        if keys is not None:
            audit.configure(keys.home)  # the suite's own keys again, for the suite's database


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    with fresh_cluster("gis-ioc-test-") as (s, _):
        audit.configure(s.home)  # the audit chain's key and head file, as create_app and the CLI do
        yield s


@pytest.fixture(scope="session")
def catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)


@pytest.fixture(scope="session")
def cluster(settings: Settings) -> Cluster:
    return cluster_for(settings)


@pytest.fixture(scope="session")
def loaded(settings: Settings, catalog: Catalog) -> DemoResult:
    """The database as set-up leaves it: schema, boundaries, demo data."""
    with connect(settings, autocommit=True) as conn:
        upgrade(conn, catalog)
        load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
        return generate_demo(conn, catalog, DemoOptions(seed=SEED, as_of=AS_OF))


def key_account(
    conn: psycopg.Connection[Any], username: str, roles: list[str], *, full_name: str = "Bộ kiểm thử", **extra: Any
) -> str:
    """A new account without a password (a client system: API keys only), on the suite's standing
    request; returns an API key of it. ``extra``: more of create_account's arguments (communes, grants…)."""
    accounts.create_account(
        conn,
        username=username,
        full_name=full_name,
        agency=extra.pop("agency", "gis_ioc"),
        roles=roles,
        ref=SUITE_REQUEST,
        actor="cli:test",
        with_password=False,
        **extra,
    )
    return accounts.issue_key(conn, username, SUITE_REQUEST, "cli:test", label="test suite")


#: The unit each sensor test's reading is sent in (SenML ``u``), as ``gis_ioc.iot_properties`` has it.
SENML_UNITS = {"pm25": "µg/m³", "pm10": "µg/m³", "water_level": "m", "temperature": "°C"}


def push_readings(
    conn: psycopg.Connection[Any], device: str, readings: Sequence[tuple[str, float, dt.datetime]]
) -> None:
    """A device's readings (property, value, phenomenon time) stored as one SenML pack through the HTTP
    push's path (``store_messages``); every one must be accepted."""
    pack = [{"n": p, "u": SENML_UNITS[p], "v": value, "t": when.timestamp()} for p, value, when in readings]
    [outcome] = store_messages(conn, [Message(device, json.dumps(pack).encode(), "http", dt.datetime.now(dt.UTC))])
    assert outcome.accepted == len(readings), outcome.as_json("en")


def remove_devices(conn: psycopg.Connection[Any], codes: list[str]) -> None:
    """Take a test's own sensor devices out of the shared database again, with all that was recorded of them
    (readings, rollups, latest values, judgements, alerts, datastreams, credentials): the demo's counts and
    the stations near a point stay what the tests after it expect."""
    with conn.transaction():
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM gis_ioc.iot_datastreams WHERE device_code = ANY(%s)", (codes,)
            ).fetchall()
        ]
        for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
            conn.execute(f"DELETE FROM gis_ioc.{table} WHERE datastream_id = ANY(%s)", (ids,))
        for table in ("iot_alerts", "iot_station_state", "iot_credentials", "iot_datastreams"):
            conn.execute(f"DELETE FROM gis_ioc.{table} WHERE device_code = ANY(%s)", (codes,))
        conn.execute("DELETE FROM layers.iot_devices WHERE device_code = ANY(%s)", (codes,))


@pytest.fixture(scope="session")
def reader_key(settings: Settings, loaded: DemoResult) -> str:
    """An API key of a leader (reads every internal layer, no personal data), for tests that read as one."""
    with connect(settings, autocommit=True) as conn:
        return key_account(conn, "suite.reader", ["leader"])


@pytest.fixture(scope="session")
def client(settings: Settings, loaded: DemoResult, reader_key: str) -> Iterator[TestClient]:
    """The application, asked by a leader (every internal layer; see ``anonymous`` for no credentials)."""
    with TestClient(create_app(settings), headers={"X-API-Key": reader_key}, client=INSIDE) as c:
        yield c


@pytest.fixture(scope="session")
def anonymous(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    """The application, asked without credentials (from inside the government network)."""
    with TestClient(create_app(settings), client=INSIDE) as c:
        yield c


@pytest.fixture
def db(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    with connect(settings, autocommit=True) as conn:
        yield conn


@pytest.fixture
def empty_db(settings: Settings) -> Iterator[Settings]:
    """A new, empty database in the suite's cluster; dropped afterwards."""
    name = f"empty_{os.getpid()}_{free_port()}"
    with connect(settings, autocommit=True, dbname="postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield settings.model_copy(update={"db_name": name})
    with connect(settings, autocommit=True, dbname="postgres") as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@contextmanager
def serve(settings: Settings, log: Path, workers: int = 1, **extra: str) -> Iterator[str]:
    """`gis-ioc serve --workers N` as a user runs it, on a free port against the suite's database (``extra``:
    more GIS_IOC_ settings, by lower-case name); yields its address."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
    env.update(
        {
            "GIS_IOC_HOME": str(settings.home),
            "GIS_IOC_DB_PORT": str(settings.db_port),
            "GIS_IOC_DB_NAME": settings.db_name,
            "GIS_IOC_PORT": str(port),
            **{f"GIS_IOC_{name.upper()}": value for name, value in extra.items()},
        }
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gis-ioc"), "serve", "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not answer within 60 s"
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
