"""The database roles, made and granted by ``gis-ioc db upgrade`` (as the owner that runs migrations).

- ``gis_ioc_server`` (LOGIN): the role the server connects as. It owns nothing, is no superuser, cannot
  create roles or databases and does not bypass row-level security. Through ``gis_ioc_base`` it may read
  and write the server's bookkeeping tables, only INSERT and SELECT the audit trail (whose triggers it
  cannot alter or disable, not being their owner), and read the non-personal columns of the layer tables,
  subject to row-level security.
- ``gis_ioc_full`` (NOLOGIN): every column of the layer tables, and writing them (loads, approvals). The
  server becomes it only inside a bound transaction (``SET LOCAL ROLE``, :mod:`gis_ioc.query.scope`) for
  a viewer granted personal data, for aggregates and for writes. ``gis_ioc_server`` reaches it through
  ``gis_ioc_elevate``, a NOINHERIT role, so that it does not hold those privileges by default.
- ``gis_ioc_base`` (NOLOGIN): what both share.

Row-level security on every non-public layer table keeps each transaction to the rows its viewer may
read (the settings made by :func:`gis_ioc.query.scope.bind`); a transaction that was not bound reads none.

With ``GIS_IOC_DATABASE_URL`` the owner running ``db upgrade`` needs CREATEROLE to make the roles (see
docs/operations.md, "Database roles", for what an external DBA grants instead).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.catalog.models import Layer
from gis_ioc.errors import GisIocError

SERVER = "gis_ioc_server"
BASE = "gis_ioc_base"
FULL = "gis_ioc_full"
ELEVATE = "gis_ioc_elevate"

#: The server's privileges on gis_ioc's own tables (anything not listed: none).
BOOKKEEPING: dict[str, str] = {
    "schema_migrations": "SELECT",
    "layer_tables": "SELECT",
    "indicators": "SELECT",
    "indicator_targets": "SELECT",
    "indicator_values": "SELECT",
    "observations": "SELECT",
    "commune_crosswalk": "SELECT",
    "commune_contacts": "SELECT",
    "scenario_runs": "SELECT, INSERT, UPDATE",
    "loads": "SELECT, INSERT, UPDATE",
    "load_superseded": "SELECT, INSERT, DELETE",
    "plans": "SELECT, INSERT, UPDATE",
    "plan_documents": "SELECT, INSERT, UPDATE",
    "jobs": "SELECT, INSERT, UPDATE, DELETE",
    "accounts": "SELECT, INSERT, UPDATE",
    "account_requests": "SELECT, INSERT",
    "api_keys": "SELECT, INSERT, UPDATE",
    "sessions": "SELECT, INSERT, UPDATE, DELETE",
    "audit": "SELECT, INSERT",
    "audit_anchor": "SELECT",
    "rate_hits": "SELECT, INSERT, UPDATE, DELETE",
    "data_versions": "SELECT",
    "write_positions": "SELECT, INSERT, UPDATE",
    "feedback_reports": "SELECT, INSERT, UPDATE (unit, level, state, due_at, updated_at, resolved_at, merged_into)",
    "feedback_reporters": "SELECT, INSERT",  # rows: row-level security (migration 0021)
    "feedback_events": "SELECT, INSERT",
    "feedback_answers": "SELECT, INSERT",
    "feedback_ratings": "SELECT, INSERT",
    "feedback_photos": "SELECT, INSERT",
    "iot_properties": "SELECT",  # sensors (migration 0023): the ingester and HTTP push run as the server's role
    "iot_datastreams": "SELECT",
    "iot_credentials": "SELECT",
    "iot_observations": "SELECT, INSERT",
    "iot_latest": "SELECT, INSERT, UPDATE",
    "iot_hourly": "SELECT, INSERT, UPDATE",
    "iot_daily": "SELECT, INSERT, UPDATE",
    "iot_dead_letters": "SELECT, INSERT",
    "iot_alerts": "SELECT, INSERT, UPDATE",  # judgement (migration 0024): opened/closed by the ingester's role
    "iot_station_state": "SELECT, INSERT, UPDATE",  # migration 0025: written by the judge (the ingester's role)
    "iot_station_live": "SELECT",  # migration 0025: a security_invoker view (its readers' own rights apply)
}


class RolesError(GisIocError):
    status = 500
    title = "Database roles"


def server_password_file(home: Path) -> Path:
    return home / "secrets" / "db_server_password"


def server_password(home: Path) -> str:
    """The server role's password (made on first use, mode 0600), for TCP connections."""
    path = server_password_file(home)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_roles(conn: psycopg.Connection[Any], password: str | None) -> list[str]:
    """Create the roles that are missing and keep their attributes least-privileged. Returns those made."""
    made = []
    attributes = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    wanted = {
        BASE: f"NOLOGIN INHERIT {attributes}",
        FULL: f"NOLOGIN INHERIT {attributes}",
        ELEVATE: f"NOLOGIN NOINHERIT {attributes}",
        SERVER: f"LOGIN INHERIT {attributes} CONNECTION LIMIT 200",
    }
    try:
        for role, options in wanted.items():
            verb = "ALTER" if _exists(conn, role) else "CREATE"
            if verb == "CREATE":
                made.append(role)
            conn.execute(sql.SQL(f"{verb} ROLE {{}} {options}").format(sql.Identifier(role)))
        # PostGIS lives where the owner's search path put it (schema gis_ioc, or public elsewhere)
        conn.execute(sql.SQL("ALTER ROLE {} SET search_path TO gis_ioc, public").format(sql.Identifier(SERVER)))
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SERVER), sql.Literal(password)))
        for member, group in ((FULL, BASE), (ELEVATE, FULL), (SERVER, BASE), (SERVER, ELEVATE)):
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(BASE)
            )
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RolesError(
            f"the database user {conn.info.user!r} may not create or alter roles ({exc.diag.message_primary}); "
            "ask the DBA to create them as docs/operations.md ('Database roles') says, then run db upgrade again"
        ) from exc
    return made


def grant_bookkeeping(conn: psycopg.Connection[Any]) -> None:
    base = sql.Identifier(BASE)
    for schema in ("gis_ioc", SCHEMA, "public"):
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), base))
    conn.execute(
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA gis_ioc FROM {}, {}, {}").format(
            base, sql.Identifier(FULL), sql.Identifier(SERVER)
        )
    )
    present = {  # tables, partitioned tables and views
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'gis_ioc' AND c.relkind IN ('r', 'p', 'v')"
        ).fetchall()
    }
    for table, privileges in BOOKKEEPING.items():
        if table in present:
            conn.execute(sql.SQL(f"GRANT {privileges} ON {{}} TO {{}}").format(sql.Identifier("gis_ioc", table), base))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA gis_ioc TO {}").format(base))
    conn.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
            sql.Identifier(SCHEMA), sql.Identifier(FULL)
        )
    )


def _policy(layer: Layer) -> sql.Composed:
    whole = sql.SQL("(SELECT gis_ioc.rows_all({}))").format(sql.Literal(layer.table))
    if layer.access == "restricted" or layer.field("commune_code") is None:
        return whole
    return sql.SQL("{} OR commune_code = ANY ((SELECT gis_ioc.viewer_communes())::text[])").format(whole)


def secure_layer(conn: psycopg.Connection[Any], layer: Layer) -> None:
    """Column privileges and row-level security of one layer table."""
    table = sql.Identifier(SCHEMA, layer.table)
    base, full = sql.Identifier(BASE), sql.Identifier(FULL)
    conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}, {}, {}").format(table, base, full, sql.Identifier(SERVER)))
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (f"{SCHEMA}.{layer.table}",),
        ).fetchall()
    ]
    personal = {f.name for f in layer.fields if f.personal}
    readable = [c for c in columns if c not in personal]
    conn.execute(
        sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(sql.SQL(", ").join(map(sql.Identifier, readable)), table, base)
    )
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(table, full))
    conn.execute(sql.SQL("DROP POLICY IF EXISTS viewer_rows ON {}").format(table))
    if layer.access == "public":
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(table))
        return
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
    conn.execute(sql.SQL("CREATE POLICY viewer_rows ON {} USING ({})").format(table, _policy(layer)))


#: PostGIS's bounding-box operators. Under row-level security PostgreSQL uses a query's condition in an
#: index scan only if its function is LEAKPROOF; without it every bbox or tile query of a non-public layer
#: scanned the whole table (bench/access_cost.py: 450 ms instead of 1.6 ms for a 1 km box of 200,000
#: parcels). These compare bounding boxes and raise no error that depends on a row's values (all layer
#: geometries are EPSG:4326), so marking them leaks nothing. Needs a superuser; skipped otherwise.
LEAKPROOF = ("geometry_overlaps(geometry, geometry)", "geography_overlaps(geography, geography)")


def mark_leakproof(conn: psycopg.Connection[Any]) -> bool:
    """Mark the bounding-box operators LEAKPROOF (True), or leave them (False: not a superuser)."""
    if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:  # type: ignore[index]
        return False
    for signature in LEAKPROOF:
        conn.execute(f"ALTER FUNCTION {signature} LEAKPROOF")
    return True


def sync_roles(conn: psycopg.Connection[Any], catalog: Catalog, password: str | None) -> list[str]:
    """Roles, grants and row-level security from the catalog (idempotent; in the caller's transaction)."""
    made = ensure_roles(conn, password)
    grant_bookkeeping(conn)
    mark_leakproof(conn)
    for layer in catalog:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{layer.table}",)).fetchone()[0] is not None:  # type: ignore[index]
            secure_layer(conn, layer)
    return made
