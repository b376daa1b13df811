"""Read replicas: a streaming standby made with ``pg_basebackup -R`` from a primary of this file's own (never
the suite's cluster). Read doors are served by the standby, writes and a writer's own next reads by the
primary, the lag is in /readyz, and when the primary stops reads go on while writes answer 503.

Which server answered is proven by the answer itself: with the standby's replay paused, a row is changed
on the primary, so the standby still holds the old value."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from gis_ioc.app import create_app
from gis_ioc.auth import audit
from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.database.replicas import PrimaryPool
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings
from tests.conftest import INSIDE, free_port, fresh_cluster, key_account, temp_home

ITEM = "/ogc/collections/communes/items?f=json"
RUN = ("/api/scenarios/health/run", {"period": "2026-Q3", "communes": ["11953"]})
MAX_LAG = 3.0


@dataclass
class Pair:
    settings: Settings  # pointing GIS_IOC_DATABASE_REPLICA_URLS at the standby
    primary: Cluster
    standby: Cluster
    catalog: Catalog
    key: str  # a leader's API key
    table: str
    code: str  # of the commune whose name the tests change (fid 1)

    def owner(self, on_standby: bool = False) -> psycopg.Connection[Any]:
        if on_standby:
            return psycopg.connect(self.standby.conninfo(self.settings.db_name), autocommit=True)
        return connect(self.settings, autocommit=True)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with fresh_cluster("gis-ioc-primary-") as (settings, primary):
        catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
        audit.configure(settings.home)  # as create_app does (fresh_cluster puts the suite's keys back after)
        with connect(settings, autocommit=True) as conn:
            upgrade(conn, catalog)
            load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
            key = key_account(conn, "replica.leader", ["leader"], full_name="Lãnh đạo")
        home = temp_home("gis-ioc-standby-")
        standby = Cluster(home=home, port=free_port(), system_user=settings.db_system_user, bindir=settings.pg_bindir)
        try:
            assert standby.init_standby(primary)
            standby.start()
            urls = f"host={standby.socket_dir} port={standby.port}"
            with_replica = settings.model_copy(
                update={"database_replica_urls": urls, "replica_max_lag_seconds": MAX_LAG}
            )
            table = catalog.layer("communes").table
            with connect(settings, autocommit=True) as conn:
                query = sql.SQL("SELECT code FROM {} WHERE fid = 1").format(sql.Identifier(SCHEMA, table))
                code = conn.execute(query).fetchone()[0]  # type: ignore[index]
            yield Pair(with_replica, primary, standby, catalog, key, table, code)
        finally:
            standby.destroy()


def _caught_up(pair: Pair) -> None:
    """Wait until the standby has replayed everything the primary wrote."""
    with pair.owner() as primary, pair.owner(on_standby=True) as standby:
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + 10
        while not standby.execute("SELECT pg_last_wal_replay_lsn() >= %s", target).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the standby does not catch up"
            time.sleep(0.05)


def _replay(pair: Pair, paused: bool) -> None:
    with pair.owner(on_standby=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def _rename(pair: Pair, name: str) -> None:
    with pair.owner() as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET name = %s WHERE fid = 1").format(sql.Identifier(SCHEMA, pair.table)), (name,)
        )


_asked = itertools.count(1)


def _name(pair: Pair, client: TestClient, **headers: str) -> str:
    """The name of commune fid 1 (each time a new address: the answer is never one a cache kept)."""
    params = {"filter": f"code = '{pair.code}'", "limit": next(_asked)}
    response = client.get(ITEM, params=params, headers=headers)
    assert response.status_code == 200, response.text
    (feature,) = response.json()["features"]
    return str(feature["properties"]["name"])


def test_reads_from_the_replica_writers_read_their_writes(pair: Pair) -> None:
    leader = {"X-API-Key": pair.key}
    with TestClient(create_app(pair.settings), client=INSIDE) as client:
        pool = client.app.state.pool  # type: ignore[attr-defined]
        assert isinstance(pool, PrimaryPool) and len(pool.replicas) == 1
        _caught_up(pair)
        _rename(pair, "v1")
        _caught_up(pair)
        assert _name(pair, client) == _name(pair, client, **leader) == "v1"

        _replay(pair, paused=True)
        try:
            _rename(pair, "v2")  # on the primary only
            assert _name(pair, client) == "v1"  # anonymous: the standby answered
            assert _name(pair, client, **leader) == "v1"  # the leader never wrote: the standby too

            run = client.post(RUN[0], json=RUN[1], headers=leader)  # a stored run: written on the primary
            assert run.status_code == 200, run.text
            assert _name(pair, client, **leader) == "v2"  # the writer's next read: the primary
            assert _name(pair, client) == "v1"  # everyone else's: still the standby

            # the lag grows while replay is paused: /readyz shows it, and past the limit reads leave the standby
            time.sleep(MAX_LAG + 1.5)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            (replica,) = ready.json()["replicas"]
            assert replica["address"] == f"{pair.standby.socket_dir}:{pair.standby.port}"
            assert replica["reachable"] is True and replica["used"] is False
            assert replica["lag_seconds"] > MAX_LAG
            assert replica["replay_lsn"].count("/") == 1
            assert "password" not in ready.text and "user" not in ready.text
            assert _name(pair, client) == "v2"  # too far behind: the primary answers
        finally:
            _replay(pair, paused=False)
        _caught_up(pair)
        time.sleep(1.5)  # the monitor sees it caught up
        (replica,) = client.get("/readyz").json()["replicas"]
        assert replica["used"] is True and replica["lag_seconds"] < 1

        # once the standby holds the leader's write, the leader reads from it again
        _replay(pair, paused=True)
        try:
            _rename(pair, "v3")
            assert _name(pair, client, **leader) == "v2"
            assert _name(pair, client) == "v2"
        finally:
            _replay(pair, paused=False)
        _caught_up(pair)


def test_routing_and_broken_connections(pair: Pair) -> None:
    with TestClient(create_app(pair.settings), client=INSIDE) as client:
        pool = client.app.state.pool  # type: ignore[attr-defined]

        def where(purpose: scope.Purpose = "read", writes: bool = False) -> bool:
            with scope.transaction(pool, Viewer.ANONYMOUS, pair.catalog, purpose, writes=writes) as conn:
                return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]

        assert where() is True  # a read: the standby
        assert where(writes=True) is False  # a read that writes (an export's audit record): the primary
        assert where("aggregate") is False and where("write") is False

        # the database drops every connection of the server (as a restart does): the next transaction finds
        # its pooled connection broken, throws it away and succeeds on a fresh one, without a checkout check
        for _ in range(3):
            where("write")
        with pair.owner() as owner:
            dropped = owner.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name ~ '^gis_ioc(/|$)'"
            ).fetchone()[0]  # type: ignore[index]
        assert dropped >= 1
        time.sleep(0.2)
        assert where("write") is False

        # a transaction that wrote for an account stamps its position; one that only read does not
        def stamp() -> str | None:
            with pair.owner() as owner:
                row = owner.execute(
                    "SELECT lsn::text FROM gis_ioc.write_positions WHERE account = 'replica.leader'"
                ).fetchone()
            return None if row is None else str(row[0])

        leader = {"X-API-Key": pair.key}
        before = stamp()
        run = client.post(RUN[0], json=RUN[1], headers=leader)
        assert run.status_code == 200, run.text
        after = stamp()
        assert after is not None and after != before
        assert client.get(f"/api/scenarios/runs/{run.json()['id']}", headers=leader).status_code == 200
        assert stamp() == after

        # an export reads rows and writes its audit record in one transaction: it runs on the primary
        exported = client.get("/api/exports/layers/communes", params={"format": "geojson"}, headers=leader)
        assert exported.status_code == 200, exported.text


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    return call(), time.monotonic() - started


def test_primary_stopping_reads_go_on_writes_503(pair: Pair) -> None:
    leader = {"X-API-Key": pair.key}
    with TestClient(create_app(pair.settings), client=INSIDE) as client:
        assert _name(pair, client, **leader) == _name(pair, client) == "v3"
        pair.primary.stop()
        # reads go on, from the standby: anonymous, and with an API key (looked up on the standby)
        name, seconds = _timed(lambda: _name(pair, client))
        assert name == "v3" and seconds < 2, seconds
        name, seconds = _timed(lambda: _name(pair, client, **leader))
        assert name == "v3" and seconds < 5, seconds  # at most: the monitor notices (1 s), a short wait (2 s)
        name, seconds = _timed(lambda: _name(pair, client, **leader))
        assert name == "v3" and seconds < 2, seconds  # the primary known gone: the standby at once
        assert client.get("/ogc/collections/communes/items?limit=3").status_code == 200
        # writes answer 503, saying why, without waiting for the pool's whole timeout (10 s)
        run, seconds = _timed(lambda: client.post(RUN[0], json=RUN[1], headers=leader))
        assert run.status_code == 503 and seconds < 2, (run.text, seconds)
        assert "primary database is unreachable" in run.json()["detail"]
        login, seconds = _timed(
            lambda: client.post("/api/auth/login", json={"username": "replica.leader", "password": "not this one"})
        )
        assert login.status_code == 503 and seconds < 4, (login.text, seconds)
        assert "primary database is unreachable" in login.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "read-only", ready.text
