"""The audit trail: who did what, when, from where, to what, and with what result.

Records are appended by the database function ``gis_ioc.audit_append`` (migration 0010), which chains
each record to the previous one by SHA-256; a trigger refuses UPDATE, DELETE and TRUNCATE. :func:`verify`
recomputes the chain, so a record removed or altered by someone who got around the trigger is found.
Retention (:func:`prune`) removes only the oldest records and moves the anchor the rest follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gis_ioc.errors import InvalidInput


def record(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    result: str = "ok",
    target: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one record (inside the caller's transaction, so it stands or falls with the change)."""
    row = conn.execute(
        "SELECT gis_ioc.audit_append(%s, %s, %s, %s, %s, %s)",
        (actor, address, action, target, result, json.dumps(detail or {}, ensure_ascii=False, default=str)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def query(
    conn: psycopg.Connection[Any],
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Records matching every filter given, newest first. ``action`` may end with ``*`` (a prefix)."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10,000")
    where: list[str] = ["true"]
    params: list[Any] = []
    if actor:
        where.append("actor = %s")
        params.append(actor)
    if action:
        if action.endswith("*"):
            where.append("action LIKE %s")
            params.append(action[:-1].replace("%", r"\%").replace("_", r"\_") + "%")
        else:
            where.append("action = %s")
            params.append(action)
    if target:
        where.append("target = %s")
        params.append(target)
    if since:
        where.append("at >= %s")
        params.append(since)
    if until:
        where.append("at < %s")
        params.append(until)
    rows = conn.execute(
        "SELECT id, at, actor, address, action, target, result, detail FROM gis_ioc.audit "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}",
        params,
    ).fetchall()
    keys = ("id", "at", "actor", "address", "action", "target", "result", "detail")
    return [dict(zip(keys, (r[0], r[1].isoformat(), *r[2:]), strict=True)) for r in rows]


@dataclass
class Verification:
    ok: bool
    records: int
    first_broken: int | None = None
    problem: str | None = None


def verify(conn: psycopg.Connection[Any]) -> Verification:
    """Recompute the chain from the anchor: the first record whose link or digest does not hold."""
    anchor_row = conn.execute("SELECT prev_hash FROM gis_ioc.audit_anchor").fetchone()
    expected = anchor_row[0] if anchor_row else "0" * 64
    count = 0
    with conn.cursor(name="audit_verify") if not conn.autocommit else conn.cursor() as cur:
        cur.execute(
            "SELECT id, prev_hash, hash, gis_ioc.audit_digest(prev_hash, at, actor, address, action, target, "
            "result, detail) FROM gis_ioc.audit ORDER BY id"
        )
        previous_id: int | None = None
        for record_id, prev_hash, stored, digest in cur:
            count += 1
            if prev_hash != expected:
                after = f"after record {previous_id}" if previous_id is not None else "at the start"
                return Verification(
                    False,
                    count,
                    record_id,
                    f"record {record_id} does not follow the chain {after}: a record was removed or inserted",
                )
            if digest != stored:
                return Verification(False, count, record_id, f"record {record_id} was altered after it was written")
            expected = stored
            previous_id = record_id
    return Verification(True, count)


def prune(conn: psycopg.Connection[Any], *, older_than_days: int, actor: str) -> int:
    """Remove records older than the retention period (never the newest); the chain stays verifiable."""
    if older_than_days < 1:
        raise InvalidInput("retention must be at least one day")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('gis_ioc.audit'))")
        cutoff = conn.execute("SELECT now() - %s", (timedelta(days=older_than_days),)).fetchone()
        assert cutoff is not None
        last = conn.execute(
            "SELECT id, hash FROM gis_ioc.audit WHERE at < %s AND id < (SELECT max(id) FROM gis_ioc.audit) "
            "ORDER BY id DESC LIMIT 1",
            (cutoff[0],),
        ).fetchone()
        if last is None:
            return 0
        conn.execute("SET LOCAL gis_ioc.audit_prune = 'on'")
        deleted = conn.execute("DELETE FROM gis_ioc.audit WHERE id <= %s", (last[0],)).rowcount
        conn.execute("SET LOCAL gis_ioc.audit_prune = 'off'")
        conn.execute(
            "UPDATE gis_ioc.audit_anchor SET prev_hash = %s, pruned_to = %s, updated_at = now()", (last[1], cutoff[0])
        )
    with conn.transaction():
        record(
            conn,
            actor=actor,
            action="audit.prune",
            detail={"removed": deleted, "older_than_days": older_than_days, "through_id": last[0]},
        )
    return deleted
