"""scope.read_at_once: the viewer's settings and read-only statements in one round trip, with the same
row-level security as a bound transaction, nothing left on the connection afterwards, and errors clean."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from gis_ioc.auth.sessions import Principal
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import create_pool
from gis_ioc.errors import InvalidInput
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings


@pytest.fixture(scope="module")
def pool(settings: Settings, loaded: Any) -> Iterator[ConnectionPool[Any]]:
    one = create_pool(settings.model_copy(update={"db_pool_min": 1, "db_pool_max": 1}))  # always the same
    one.open(wait=True)
    yield one
    one.close()


def test_the_same_rows_as_a_bound_transaction(pool: ConnectionPool[Any], catalog: Catalog) -> None:
    count = "SELECT count(*) FROM layers.land_parcels"
    commune = "SELECT min(commune_code) FROM layers.land_parcels"
    leader = Viewer.of(Principal("rls.leader", frozenset({"leader"}), via="api_key"))
    with scope.transaction(pool, leader, catalog) as conn:
        everyone = conn.execute(count).fetchone()
        some = conn.execute(commune).fetchone()
    assert scope.read_at_once(pool, leader, catalog, [(count, None)]) == [[everyone]]
    assert some is not None
    officer = Viewer.of(
        Principal("rls.officer", frozenset({"commune_officer"}), communes=frozenset({some[0]}), via="api_key")
    )
    (own,), (codes,) = scope.read_at_once(
        pool,
        officer,
        catalog,
        [(count, None), ("SELECT array_agg(DISTINCT commune_code) FROM layers.land_parcels", None)],
    )
    assert 0 < own[0] < everyone[0] and codes[0] == [some[0]]  # type: ignore[index]
    # an anonymous caller reads no row of an internal layer, whatever the statement asks
    assert scope.read_at_once(pool, Viewer.ANONYMOUS, catalog, [(count, None)]) == [[(0,)]]


def test_values_are_bound_and_nothing_stays_on_the_connection(pool: ConnectionPool[Any], catalog: Catalog) -> None:
    tricky = "x'); SELECT pg_sleep(10); --"
    [[row]] = scope.read_at_once(pool, Viewer.ANONYMOUS, catalog, [("SELECT %s::text, %s::int", (tricky, 7))])
    assert row == (tricky, 7)
    with pool.connection() as conn:
        assert conn.autocommit is False
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT current_setting('gis_ioc.rows', true)").fetchone() in ((None,), ("",))
        conn.rollback()


def test_an_error_rolls_back_and_the_connection_goes_on(pool: ConnectionPool[Any], catalog: Catalog) -> None:
    with pytest.raises(InvalidInput):  # the driver's data error, as every door reports it
        scope.read_at_once(pool, Viewer.ANONYMOUS, catalog, [("SELECT 1", None), ("SELECT 'x'::int", None)])
    assert scope.read_at_once(pool, Viewer.ANONYMOUS, catalog, [("SELECT 2", None)]) == [[(2,)]]
    with pool.connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and conn.autocommit is False
