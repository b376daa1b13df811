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

Read replicas (:mod:`gis_ioc.database.replicas`): a ``read`` transaction may be served by a streaming
standby, unless the caller says it also writes (``writes=True``); ``aggregate`` and ``write`` go to the
primary, and stamp the account's write position so that its next reads wait for a replica that has it.

A pooled connection is not checked when it is lent (no round trip per checkout): if the first statement
(the bind) fails because the connection turned out to be broken (the database restarted), it is thrown
away and the transaction starts once more on a fresh one, before the caller's work ever ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import psycopg
from psycopg import pq, sql
from psycopg_pool import ConnectionPool

from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog
from gis_ioc.catalog.models import Layer
from gis_ioc.database import replicas
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import DatabaseUnavailable
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


def _settings_statement(viewer: Viewer, catalog: Catalog, purpose: Purpose) -> tuple[str, list[str]]:
    """The one SELECT of ``set_config(…, true)`` that tells PostgreSQL who asks, and its values."""
    rows, communes = row_settings(viewer, list(catalog), purpose)
    settings = {"gis_ioc.rows": rows, "gis_ioc.communes": communes, "gis_ioc.viewer": viewer.name}
    settings["gis_ioc.purpose"] = purpose
    if viewer.anonymous:
        settings["statement_timeout"] = str(ANONYMOUS_TIMEOUT_MS)
    if purpose != "read" or viewer.personal:
        settings["role"] = FULL_ROLE  # SET LOCAL ROLE, in the same round trip
    query = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings)
    return query, [part for pair in settings.items() for part in pair]


def bind(
    conn: psycopg.Connection[Any],
    viewer: Viewer,
    catalog: Catalog,
    purpose: Purpose = "read",
    *,
    wait_for: tuple[str, str] | None = None,
) -> bool:
    """Tell PostgreSQL who asks, for the rest of the current transaction (``SET LOCAL``), in one round trip.
    With ``wait_for`` (account, write position) on a replica, the same round trip asks whether the replica
    holds that account's last write yet: returns False when it does not (then read from the primary)."""
    query, params = _settings_statement(viewer, catalog, purpose)
    if wait_for is not None:
        query += ", " + replicas.CAUGHT_UP
        params.extend(wait_for)
    row = conn.execute(query, params).fetchone()
    return wait_for is None or bool(row and row[-1])


class _Unknown:
    """The viewer's write position is not known here (no principal of theirs in this context)."""


UNKNOWN = _Unknown()


def write_position(viewer: Viewer) -> str | _Unknown | None:
    """The account's last write position (None: it never wrote), as the principal lookup found it."""
    if viewer.anonymous:
        return None
    who = CURRENT.get()
    if who is None or who.username != viewer.username or "write_lsn" not in who.extra:
        return UNKNOWN
    position: str | None = who.extra["write_lsn"]
    return position


def _open(
    pool: ConnectionPool[Any],
    viewer: Viewer,
    catalog: Catalog,
    purpose: Purpose,
    timeout: float,
    *,
    wait_for: tuple[str, str] | None = None,
    retry: bool = True,
) -> tuple[ExitStack, psycopg.Connection[Any], bool]:
    """A connection of ``pool`` in a bound transaction (the ExitStack commits and returns it), and whether
    the replica holds ``wait_for``. A connection found broken at the bind is replaced once (``retry``)."""
    for attempt in (1, 2):
        stack = ExitStack()
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = stack.enter_context(pool.connection(timeout=timeout))
            stack.enter_context(conn.transaction())
            caught_up = bind(conn, viewer, catalog, purpose, wait_for=wait_for)
        except BaseException as exc:
            broken = conn is not None and conn.broken
            stack.__exit__(type(exc), exc, exc.__traceback__)
            if not (retry and attempt == 1 and broken and isinstance(exc, psycopg.OperationalError)):
                raise
            if isinstance(pool, replicas.PrimaryPool):
                pool.purge()  # the other idle connections are likely broken too
            continue
        return stack, conn, caught_up
    raise AssertionError("unreachable")


PRIMARY_DOWN = (
    "the primary database is unreachable: changes cannot be made now (reads are still served, from a replica); "
    "try again shortly"
)


def _begin(
    pool: ConnectionPool[Any], viewer: Viewer, catalog: Catalog, purpose: Purpose, timeout: float, writes: bool
) -> tuple[ExitStack, psycopg.Connection[Any], str | None]:
    """Where this transaction runs (:mod:`gis_ioc.database.replicas`): the open transaction, and the account
    whose write position to stamp before it commits (None: it does not write)."""
    primary = replicas.replicas_of(pool)
    if primary is None:
        stack, conn, _ = _open(pool, viewer, catalog, purpose, timeout)
        return stack, conn, None
    reads = purpose == "read" and not writes
    if reads and (replica := primary.pick()) is not None:
        position = write_position(viewer)
        if not isinstance(position, _Unknown) or primary.primary_down:
            wait_for = None
            if isinstance(position, str) and not primary.primary_down and viewer.username:
                wait_for = (viewer.username, position)
            try:
                stack, conn, caught_up = _open(
                    replica.pool, viewer, catalog, purpose, min(timeout, 5), wait_for=wait_for, retry=False
                )
            except psycopg.OperationalError as exc:
                replica.failed(exc)
            else:
                if caught_up:
                    return stack, conn, None
                stack.close()  # not there yet: the writer reads from the primary
    if primary.primary_down and not reads:
        raise replicas.PrimaryUnavailable(PRIMARY_DOWN)
    try:
        stack, conn, _ = _open(pool, viewer, catalog, purpose, timeout)
    except psycopg.OperationalError as exc:
        if not reads:  # the primary went before the monitor saw it: the same answer as once it has
            raise replicas.PrimaryUnavailable(PRIMARY_DOWN) from exc
        replica = primary.pick()
        if replica is None:
            raise
        stack, conn, _ = _open(replica.pool, viewer, catalog, purpose, min(timeout, 5), retry=False)
        return stack, conn, None
    return stack, conn, None if viewer.anonymous or reads else viewer.username


@contextmanager
def transaction(
    pool: ConnectionPool[Any],
    viewer: Viewer,
    catalog: Catalog,
    purpose: Purpose = "read",
    *,
    timeout: float = 10,
    writes: bool = False,
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in one transaction bound to the viewer; committed at the end (rolled back on
    an error). Inner ``conn.transaction()`` blocks are savepoints inside it. ``writes``: a ``read`` that
    also writes (an audit record), so it must run on the primary."""
    with translate_errors():
        stack, conn, stamp = _begin(pool, viewer, catalog, purpose, timeout, writes)
        stamped = None
        with stack:
            try:
                yield conn
            except psycopg.errors.ReadOnlySqlTransaction as exc:  # a door that writes, sent to a replica
                raise DatabaseUnavailable(
                    "this request changes data but was sent to a read replica; the server must pass writes=True "
                    f"to scope.transaction for it ({exc.diag.message_primary})"
                ) from exc
            if stamp is not None:
                stamped = conn.execute(replicas.STAMP, (stamp,)).fetchone()
        if stamped is not None and stamped[0] and (who := CURRENT.get()) is not None and who.username == stamp:
            who.extra["write_lsn"] = stamped[0]  # this request's next reads wait for it too


Statement = tuple[sql.Composed | sql.SQL | str | bytes, Mapping[str, Any] | Sequence[Any] | None]


def read_at_once(
    pool: ConnectionPool[Any], viewer: Viewer, catalog: Catalog, statements: Sequence[Statement], *, timeout: float = 10
) -> list[list[tuple[Any, ...]]]:
    """Read-only statements for the viewer in ONE round trip, and the rows of each.

    ``BEGIN``, the viewer's settings (the same as :func:`bind`'s), the statements and ``COMMIT`` go as one
    simple-protocol message, their values bound by psycopg's client-side cursor (quoted by its adapters),
    so row-level security applies to every statement exactly as in :func:`transaction`; PostgreSQL runs
    them in order and stops at the first error (the transaction is then rolled back). A connection found
    broken is replaced once (a read: nothing to undo). With read replicas, the same through
    :func:`transaction`, which chooses the server."""
    if replicas.replicas_of(pool) is not None:
        with transaction(pool, viewer, catalog, "read") as conn:
            return [conn.execute(query, values).fetchall() for query, values in statements]
    settings, values = _settings_statement(viewer, catalog, "read")
    with translate_errors():
        for attempt in (1, 2):
            with pool.connection(timeout=timeout) as conn:
                try:
                    return _at_once(conn, (settings, values), statements)
                except psycopg.OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
    raise AssertionError("unreachable")


def _at_once(
    conn: psycopg.Connection[Any], settings: Statement, statements: Sequence[Statement]
) -> list[list[tuple[Any, ...]]]:
    cursor = psycopg.ClientCursor(conn)
    text = ";\n".join(["BEGIN", *(cursor.mogrify(q, v) for q, v in (settings, *statements)), "COMMIT"])
    conn.autocommit = True  # the message carries its own BEGIN and COMMIT
    try:
        cursor.execute(text)
        results: list[list[tuple[Any, ...]]] = []
        while True:
            if cursor.pgresult is not None and cursor.pgresult.status == pq.ExecStatus.TUPLES_OK:
                results.append(cursor.fetchall())
            if not cursor.nextset():
                break
        if len(results) != len(statements) + 1:
            raise AssertionError(f"{len(statements) + 1} results expected, {len(results)} came")
        return results[1:]  # without the settings' row
    except BaseException:
        if not conn.broken and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise
    finally:
        if not conn.broken:
            conn.autocommit = False
