"""Schema migrations: versioned SQL files, then the layer tables and indicators from the catalog.

``upgrade`` is idempotent and runs under an advisory lock, each step in its own transaction:
1. ``gis_ioc/database/migrations/NNNN_name.sql`` not yet applied, in order (checksums of applied
   files are verified: an edited migration is an error, write a new one);
2. one table per layer file: created when missing, new fields added as columns; a changed type
   or geometry is refused (write a versioned migration for that); columns are never dropped;
3. indicator definitions and targets from ``config/indicators.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA, add_columns, create_table, diff_table
from gis_ioc.crs import ALL
from gis_ioc.database import roles, versions
from gis_ioc.errors import MigrationError

_LOCK_KEY = 0x6715_10C0  # advisory lock id shared by every gis-ioc process


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass
class UpgradeReport:
    applied: list[str] = field(default_factory=list)
    tables_created: list[str] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    indicators: int = 0
    roles_created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.tables_created or self.columns_added)


def available() -> list[Migration]:
    out = []
    folder = resources.files("gis_ioc.database") / "migrations"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            out.append(Migration(match[1], match[2], entry.read_text(encoding="utf-8")))
    return out


def _ensure_bookkeeping(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS gis_ioc")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS gis_ioc.schema_migrations (
               version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """version → checksum of the applied migrations (empty on a new database)."""
    exists = conn.execute("SELECT to_regclass('gis_ioc.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute("SELECT version, checksum FROM gis_ioc.schema_migrations").fetchall())


def pending(conn: psycopg.Connection[Any]) -> list[Migration]:
    done = applied(conn)
    return [m for m in available() if m.version not in done]


def upgrade(conn: psycopg.Connection[Any], catalog: Catalog, server_password: str | None = None) -> UpgradeReport:
    """Bring the database up to the code and the catalog. Safe to run again and concurrently. The
    server's role, its grants and row-level security are made last (:mod:`gis_ioc.database.roles`);
    ``server_password`` sets its password for TCP connections."""
    report = UpgradeReport()
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        with conn.transaction():
            _ensure_bookkeeping(conn)
        done = applied(conn)
        for migration in available():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name}.sql was edited after it was applied; "
                        "restore it and put the change in a new migration"
                    )
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO gis_ioc.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {migration.version}_{migration.name} failed: {exc}") from exc
            report.applied.append(f"{migration.version}_{migration.name}")
        with conn.transaction():
            sync_layers(conn, catalog, report)
            versions.attach(conn, catalog)
        with conn.transaction():
            report.indicators = sync_indicators(conn, catalog)
        with conn.transaction():
            sync_crs(conn)
        with conn.transaction():
            report.roles_created = roles.sync_roles(conn, catalog, server_password)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return report


def existing_columns(conn: psycopg.Connection[Any], table: str) -> dict[str, str] | None:
    """column → type of ``layers.<table>``, or None when the table does not exist."""
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a
            WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return dict(rows) if rows else None


def sync_layers(conn: psycopg.Connection[Any], catalog: Catalog, report: UpgradeReport) -> None:
    problems = []
    for layer in catalog:
        existing = existing_columns(conn, layer.table)
        if existing is None:
            for stmt in create_table(layer):
                conn.execute(stmt)
            report.tables_created.append(layer.id)
        else:
            diff = diff_table(layer, existing)
            if diff.changed:
                problems.append(f"layer {layer.id}: " + "; ".join(diff.changed))
                continue
            for stmt in add_columns(layer, diff.add):
                conn.execute(stmt)
            report.columns_added.extend(f"{layer.id}.{c}" for c in diff.add)
            report.extra_columns.extend(f"{layer.id}.{c}" for c in diff.extra)
        conn.execute(
            """INSERT INTO gis_ioc.layer_tables (layer_id, table_name, definition) VALUES (%s, %s, %s)
               ON CONFLICT (layer_id) DO UPDATE SET definition = EXCLUDED.definition, synced_at = now()
               WHERE gis_ioc.layer_tables.definition IS DISTINCT FROM EXCLUDED.definition""",
            (layer.id, f"{SCHEMA}.{layer.table}", json.dumps(layer.model_dump(mode="json"))),
        )
    if problems:
        raise MigrationError(
            "The database disagrees with the catalog in ways an automatic migration must not fix "
            "(write a versioned migration):\n  " + "\n  ".join(problems)
        )


def sync_indicators(conn: psycopg.Connection[Any], catalog: Catalog) -> int:
    """Upsert definitions and replace targets. Indicators removed from the file keep their values."""
    for ind in catalog.indicators.indicators:
        conn.execute(
            """INSERT INTO gis_ioc.indicators (id, sector, unit, direction, definition) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET sector = EXCLUDED.sector, unit = EXCLUDED.unit,
                   direction = EXCLUDED.direction, definition = EXCLUDED.definition, synced_at = now()""",
            (ind.id, ind.sector, ind.unit, ind.direction, json.dumps(ind.model_dump(mode="json"))),
        )
        conn.execute("DELETE FROM gis_ioc.indicator_targets WHERE indicator_id = %s", (ind.id,))
        rows: list[tuple[str, str, str | None, float]] = []
        for period, target in ind.targets.items():
            if target.province is not None:
                rows.append((ind.id, period, None, target.province))
            rows.extend((ind.id, period, code, value) for code, value in target.communes.items())
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO gis_ioc.indicator_targets (indicator_id, period, commune_code, target) "
                    "VALUES (%s, %s, %s, %s)",
                    rows,
                )
    return len(catalog.indicators.indicators)


def sync_crs(conn: psycopg.Connection[Any]) -> None:
    """The pinned VN-2000 SRIDs of :mod:`gis_ioc.crs` in spatial_ref_sys (PostGIS transforms with them)."""
    for crs in ALL:
        if crs.proj4 is None:
            continue
        conn.execute(
            """INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
               VALUES (%s, 'gis_ioc', %s, NULL, %s)
               ON CONFLICT (srid) DO UPDATE SET auth_name = 'gis_ioc', auth_srid = EXCLUDED.auth_srid,
                   srtext = NULL, proj4text = EXCLUDED.proj4text""",
            (crs.srid, crs.srid, crs.proj4),
        )


def current(conn: psycopg.Connection[Any]) -> bool:
    """True when every versioned migration is applied."""
    return not pending(conn)


def table_counts(conn: psycopg.Connection[Any], catalog: Catalog) -> dict[str, int | None]:
    """Approximate-free exact row counts per layer (None when the table is missing)."""
    counts: dict[str, int | None] = {}
    for layer in catalog:
        if existing_columns(conn, layer.table) is None:
            counts[layer.id] = None
            continue
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, layer.table))).fetchone()
        counts[layer.id] = int(row[0]) if row else 0
    return counts
