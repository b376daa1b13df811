"""The server's database role, seen from PostgreSQL itself: least privilege, row-level security keyed by
the viewer's settings, personal columns withheld, and an audit trail it can only append to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.database import roles
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.query import scope
from gis_ioc.query.viewer import PERSONAL_DATA, Viewer
from gis_ioc.settings import Settings
from tests.conftest import scalar

OFFICER = Viewer("officer.roles", frozenset({"commune_officer"}), frozenset({"11953"}), via="api_key")
LEADER = Viewer("leader.roles", frozenset({"leader"}), via="api_key")


@pytest.fixture
def server(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the server connects: its own login role, not the owner."""
    with connect(settings, server=True) as conn:
        yield conn


def test_the_server_role_is_least_privileged(server: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    assert scalar(server, "SELECT current_user") == roles.SERVER
    row = db.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = %s",
        (roles.SERVER,),
    ).fetchone()
    assert row == (False, False, False, False, False)
    owned = scalar(
        db,
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = ANY(%s)",
        ([roles.SERVER, roles.BASE, roles.FULL, roles.ELEVATE],),
    )
    assert owned == 0
    # it does not hold gis_ioc_full's privileges by default (reached only by SET ROLE through a NOINHERIT role)
    assert scalar(server, "SELECT has_table_privilege('layers.land_parcels', 'INSERT')") is False


def test_the_application_connects_as_the_server_role(client: TestClient) -> None:
    pool = client.app.state.pool  # type: ignore[attr-defined]
    with pool.connection() as conn:
        assert scalar(conn, "SELECT current_user") == roles.SERVER


def test_an_unbound_transaction_reads_no_internal_row(server: psycopg.Connection[Any]) -> None:
    assert scalar(server, "SELECT count(*) FROM layers.land_parcels") == 0
    assert scalar(server, "SELECT count(*) FROM layers.police_posts") == 0
    assert scalar(server, "SELECT count(*) FROM layers.schools") > 0  # public layers have no row security


def test_row_security_keeps_a_commune_officer_to_their_communes(
    server: psycopg.Connection[Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    own = scalar(db, "SELECT count(*) FROM layers.land_parcels WHERE commune_code = '11953'")
    assert own > 0
    with server.transaction():
        scope.bind(server, OFFICER, catalog)
        # a wrong query: no commune clause at all
        assert scalar(server, "SELECT count(*) FROM layers.land_parcels") == own
        assert scalar(server, "SELECT count(DISTINCT commune_code) FROM layers.buildings") == 1
        assert scalar(server, "SELECT count(*) FROM layers.police_posts") == 0  # restricted: not granted
    # the settings end with the transaction
    assert scalar(server, "SELECT count(*) FROM layers.land_parcels") == 0


def test_a_leader_reads_every_internal_row_but_no_restricted_one(
    server: psycopg.Connection[Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    with server.transaction():
        scope.bind(server, LEADER, catalog)
        assert scalar(server, "SELECT count(*) FROM layers.land_parcels") == scalar(
            db, "SELECT count(*) FROM layers.land_parcels"
        )
        assert scalar(server, "SELECT count(*) FROM layers.police_posts") == 0
    granted = Viewer("granted", frozenset({"leader"}), grants=frozenset({"police_posts"}), via="api_key")
    with server.transaction():
        scope.bind(server, granted, catalog)
        assert scalar(server, "SELECT count(*) FROM layers.police_posts") == scalar(
            db, "SELECT count(*) FROM layers.police_posts"
        )


def test_personal_columns_reach_only_personal_data_grantees(server: psycopg.Connection[Any], catalog: Catalog) -> None:
    with server.transaction():
        scope.bind(server, LEADER, catalog)
        assert scalar(server, "SELECT count(*) FROM layers.buildings") > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege), server.transaction():
            server.execute("SELECT sum(households) FROM layers.buildings")
    personal = Viewer("personal", frozenset({"leader"}), grants=frozenset({PERSONAL_DATA}), via="api_key")
    with server.transaction():
        scope.bind(server, personal, catalog)
        assert scalar(server, "SELECT sum(households) FROM layers.buildings") > 0
    assert scalar(server, "SELECT current_user") == roles.SERVER  # SET LOCAL ROLE ended with the transaction


def test_the_server_cannot_become_the_owner(server: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), server.transaction():
        server.execute("SET ROLE gis_ioc")


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE gis_ioc.audit DISABLE TRIGGER ALL",
        "ALTER TABLE gis_ioc.audit DISABLE TRIGGER audit_no_update",
        "UPDATE gis_ioc.audit SET action = 'nothing'",
        "DELETE FROM gis_ioc.audit",
        "TRUNCATE gis_ioc.audit",
        "DROP TABLE gis_ioc.audit",
        "DELETE FROM gis_ioc.audit_anchor",
        "ALTER TABLE layers.land_parcels DISABLE ROW LEVEL SECURITY",
        "DROP POLICY viewer_rows ON layers.land_parcels",
        "CREATE TABLE gis_ioc.mine (a int)",
    ],
)
def test_the_server_cannot_tamper(server: psycopg.Connection[Any], statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), server.transaction():
        server.execute(statement)


def test_even_as_gis_ioc_full_the_audit_is_append_only(server: psycopg.Connection[Any], catalog: Catalog) -> None:
    with server.transaction(force_rollback=True):
        scope.bind(server, Viewer.console(), catalog, "write")
        assert scalar(server, "SELECT current_user") == roles.FULL
        with pytest.raises(psycopg.errors.InsufficientPrivilege), server.transaction():
            server.execute("UPDATE gis_ioc.audit SET action = 'nothing'")


def test_anonymous_work_has_a_short_statement_timeout(server: psycopg.Connection[Any], catalog: Catalog) -> None:
    with server.transaction():
        scope.bind(server, Viewer.ANONYMOUS, catalog)
        assert scalar(server, "SHOW statement_timeout") == "5s"
        with pytest.raises(psycopg.errors.QueryCanceled), server.transaction():
            server.execute("SELECT pg_sleep(6)")
    with server.transaction():
        scope.bind(server, LEADER, catalog)
        assert scalar(server, "SHOW statement_timeout") != "5s"
