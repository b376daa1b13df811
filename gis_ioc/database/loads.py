"""Load records (provenance) and fast bulk writes with COPY."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


def start_load(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    layer_id: str | None = None,
    source_unit: str | None = None,
    file: Path | None = None,
    approval: str = "draft",
    params: dict[str, Any] | None = None,
) -> int:
    """Record a load inside the caller's transaction; it rolls back with the data if the load fails."""
    sha = sha256_file(file) if file is not None else None
    row = conn.execute(
        """INSERT INTO gis_ioc.loads (kind, layer_id, source_unit, file_name, file_sha256, approval, params)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (kind, layer_id, source_unit, file.name if file else None, sha, approval, json.dumps(params or {})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_load(conn: psycopg.Connection[Any], load_id: int, row_count: int) -> None:
    conn.execute(
        "UPDATE gis_ioc.loads SET status = 'done', finished_at = clock_timestamp(), row_count = %s WHERE id = %s",
        (row_count, load_id),
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_rows(
    conn: psycopg.Connection[Any], table: sql.Composable, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY rows into a table; geometries go as hex EWKB strings. Returns the number of rows."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, sql.SQL(", ").join(map(sql.Identifier, columns)))
    count = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count
