"""Backups: ``pg_dump`` in custom format plus the stored files, with a checksum manifest; restore into an
empty database, verified by comparing every table's row count and every file's checksum.

A backup is a folder ``gis-ioc-backup-<UTC time>/`` holding ``database.dump``, ``files/`` (the folders of
``GIS_IOC_HOME`` that hold stored documents: planning drawings and their papers, uploads) and
``manifest.json`` (SHA-256 of each file, row counts per table, versions). Point-in-time recovery (WAL
archiving with pgBackRest) is for production and is described in docs/operations.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc import __version__
from gis_ioc.database.cluster import find_bindir
from gis_ioc.database.connection import connect, conninfo
from gis_ioc.database.loads import sha256_file
from gis_ioc.errors import GisIocError, InvalidInput

#: Folders under GIS_IOC_HOME whose files are part of the data (the database refers to them).
STORED = ("plans", "documents", "uploads")
SCHEMAS = ("gis_ioc", "layers")


class BackupError(GisIocError):
    status = 500
    title = "Backup failed"


@dataclass
class BackupResult:
    folder: Path
    tables: int
    rows: int
    files: int
    bytes: int


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Exact row counts of every table of the project's schemas."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY(%s) "
        "AND table_type = 'BASE TABLE' ORDER BY 1, 2",
        (list(SCHEMAS),),
    ).fetchall()
    counts = {}
    for schema, table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
        assert row is not None
        counts[f"{schema}.{table}"] = int(row[0])
    return counts


def _tool(settings: Any, name: str) -> str:
    return str(find_bindir(settings.pg_bindir) / name)


def backup(settings: Any, target: Path) -> BackupResult:
    """Write a backup folder under ``target``; returns what it holds."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = target / f"gis-ioc-backup-{stamp}"
    partial = target / f".{folder.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, mode=0o700)
    try:
        with connect(settings, autocommit=True) as conn:
            counts = row_counts(conn)
            versions = conn.execute("SELECT version(), postgis_full_version()").fetchone()
        dump = partial / "database.dump"
        result = subprocess.run(
            [
                _tool(settings, "pg_dump"),
                "--format=custom",
                "--no-owner",
                "--file",
                str(dump),
                "--dbname",
                conninfo(settings),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()[-500:]}")
        files: dict[str, str] = {"database.dump": sha256_file(dump)}
        for name in STORED:
            source = settings.home / name
            if source.is_dir():
                shutil.copytree(source, partial / "files" / name)
        for path in sorted((partial / "files").rglob("*")) if (partial / "files").exists() else []:
            if path.is_file():
                files[str(path.relative_to(partial))] = sha256_file(path)
        manifest = {
            "gis_ioc": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "postgres": versions[0] if versions else None,
            "postgis": versions[1] if versions else None,
            "tables": counts,
            "files": files,
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return BackupResult(folder, len(counts), sum(counts.values()), len(files) - 1, size)


def check(folder: Path) -> dict[str, Any]:
    """The manifest of a backup folder, after checking every file's checksum."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInput(f"{folder} is not a gis_ioc backup (no manifest.json)")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    bad = [
        name
        for name, digest in manifest["files"].items()
        if not (folder / name).is_file() or sha256_file(folder / name) != digest
    ]
    if bad:
        raise InvalidInput(f"the backup is damaged: {', '.join(bad[:5])} do not match the manifest")
    return manifest


def restore(settings: Any, folder: Path) -> dict[str, int]:
    """Restore a backup into the configured database, which must be empty; returns the verified counts."""
    manifest = check(folder)
    with connect(settings, autocommit=True) as conn:
        used = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ANY(%s)", (list(SCHEMAS),)
        ).fetchone()
        if used and used[0]:
            raise InvalidInput("the database is not empty: restore into a new cluster (GIS_IOC_HOME) or database")
    result = subprocess.run(
        [
            _tool(settings, "pg_restore"),
            "--no-owner",
            "--no-acl",  # the roles and grants are made again below, from the catalog
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            conninfo(settings),
            str(folder / "database.dump"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was restored): {result.stderr.strip()[-500:]}")
    from gis_ioc.catalog import load_catalog
    from gis_ioc.database import roles

    catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
    with connect(settings, autocommit=True) as conn:
        with conn.transaction():
            roles.sync_roles(conn, catalog, roles.server_password(settings.home))
        counts = row_counts(conn)
    if counts != manifest["tables"]:
        differ = sorted(k for k in set(counts) | set(manifest["tables"]) if counts.get(k) != manifest["tables"].get(k))
        raise BackupError(f"restored row counts differ from the backup's: {', '.join(differ[:10])}")
    for name in STORED:
        source = folder / "files" / name
        if source.is_dir():
            shutil.copytree(source, settings.home / name, dirs_exist_ok=True)
    return counts
