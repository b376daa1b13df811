"""What PostgreSQL is told about the viewer, in every transaction the server opens for a door.

The server connects as a login role that owns nothing (``gis_ioc_server``, see migration 0011 and
:mod:`gis_ioc.database.roles`). Row-level security on every non-public layer table reads two settings,
made here from the :class:`Viewer` with ``SET LOCAL`` (``set_config(…, true)``), so they end with the
transaction and can never leak to the next request that gets the same pooled connection:

``gis_ioc.rows``
    the non-public layer tables whose every row the viewer may read (``*``: all of them);
``gis_ioc.communes``
    the communes whose rows the viewer may read in the other commune-coded tables.

Unset, both mean nothing: a transaction that was not bound reads no row of a non-public layer, so a door
that forgets to bind fails closed. Personal fields (catalog flag ``personal``) are not readable by the
login role at all; a transaction reads them only as ``gis_ioc_full``, which a bound transaction becomes
(``SET LOCAL ROLE``) for a viewer granted personal data, and for the purposes ``aggregate`` (scenario
figures, which are suppressed or trimmed for the viewer afterwards) and ``write`` (loads, approvals).

Usage::

    with scope.transaction(pool, viewer) as conn:        # read rows as the viewer sees them
        ...
    with scope.transaction(pool, viewer, "aggregate") as conn:
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.models import Layer
from gis_ioc.database.connection import translate_errors
from gis_ioc.query.viewer import Viewer

Purpose = Literal["read", "aggregate", "write"]
#: The role a bound transaction becomes to read personal fields, aggregate or write (NOLOGIN).
FULL_ROLE = "gis_ioc_full"
#: The server's login role (owns nothing, no superuser).
SERVER_ROLE = "gis_ioc_server"


def row_settings(viewer: Viewer, layers: list[Layer], purpose: Purpose = "read") -> tuple[str, str]:
    """(gis_ioc.rows, gis_ioc.communes) for the viewer."""
    if purpose != "read":
        return "*", ""
    whole = [
        layer.table
        for layer in layers
        if layer.access != "public" and viewer.can_read(layer) and viewer.row_communes(layer) is None
    ]
    if whole and len(whole) == sum(1 for layer in layers if layer.access != "public"):
        return "*", ""
    return ",".join(sorted(whole)), ",".join(sorted(viewer.communes)) if "commune_officer" in viewer.roles else ""


#: statement_timeout of transactions bound to an anonymous caller (GIS_IOC_ANONYMOUS_STATEMENT_TIMEOUT_MS;
#: set by create_app): one request without an account cannot hold a connection for the pool's full timeout.
ANONYMOUS_TIMEOUT_MS = 5000


def bind(conn: psycopg.Connection[Any], viewer: Viewer, catalog: Catalog, purpose: Purpose = "read") -> None:
    """Tell PostgreSQL who asks, for the rest of the current transaction (``SET LOCAL``)."""
    rows, communes = row_settings(viewer, list(catalog), purpose)
    settings = {"gis_ioc.rows": rows, "gis_ioc.communes": communes, "gis_ioc.viewer": viewer.name}
    settings["gis_ioc.purpose"] = purpose
    if viewer.anonymous:
        settings["statement_timeout"] = str(ANONYMOUS_TIMEOUT_MS)
    if purpose != "read" or viewer.personal:
        settings["role"] = FULL_ROLE  # SET LOCAL ROLE, in the same round trip
    conn.execute(
        "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
        [part for pair in settings.items() for part in pair],
    )


@contextmanager
def transaction(
    pool: ConnectionPool, viewer: Viewer, catalog: Catalog, purpose: Purpose = "read", *, timeout: float = 10
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in one transaction bound to the viewer; committed at the end (rolled back on
    an error). Inner ``conn.transaction()`` blocks are savepoints inside it."""
    with translate_errors(), pool.connection(timeout=timeout) as conn, conn.transaction():
        bind(conn, viewer, catalog, purpose)
        yield conn
