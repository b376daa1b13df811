"""Load records: history, one load, approval and rollback.

A vector load writes its features as drafts (``approval = 'draft'``) under its load id; the OGC API and
the scenarios see approved rows only. Approving a load makes its rows approved and takes out of
service the rows it replaces (``replace``: the whole layer; ``upsert``: the same keys), recording them
in ``gis_ioc.load_superseded``. Rolling a load back deletes its rows and puts the rows it replaced back.
Each step is one transaction (a savepoint inside the caller's, when it opened one); the ``audit`` callback
of :func:`approve` and :func:`rollback` writes the step's audit record inside that transaction.

System time (issue 17): approval sets ``sys_from`` of the load's rows to the approval's time and ``sys_to``
of the rows it retires to the same time, so each row that was ever published says when
(``[sys_from, sys_to)``; :mod:`gis_ioc.publish.history` reads a layer as it stood at an instant). Rolling
back puts the restored rows back in service (``sys_to`` cleared) and deletes the load's rows, so an
undone load leaves no state in the history.

An edit through the OGC API (:mod:`gis_ioc.loaders.edits`) is a draft vector load of one feature whose
``params.edit`` names the operation and whose superseded rows are recorded when it is made; approving it
checks that each of those rows is still the published one (else another change came first: refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import column_types, table_ident
from gis_ioc.catalog.models import Layer
from gis_ioc.errors import LoadError, NotFound

#: audit(conn, result): the audit record of an approval or rollback, written in its transaction
Audit = Callable[[psycopg.Connection[Any], dict[str, Any]], None]

_COLUMNS = """id, kind, layer_id, mode, source_unit, file_name, file_sha256, loaded_by, started_at, finished_at,
              status, approval, row_count, source_date, approved_by, approved_at, rolled_back_by, rolled_back_at"""


def insert_load(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    layer_id: str,
    mode: str | None,
    source_unit: str | None,
    file_name: str,
    file_sha256: str,
    loaded_by: str,
    params: dict[str, Any],
) -> int:
    row = conn.execute(
        """INSERT INTO gis_ioc.loads (kind, layer_id, mode, source_unit, file_name, file_sha256, loaded_by, params)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (kind, layer_id, mode, source_unit, file_name, file_sha256, loaded_by, json.dumps(params, default=str)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def history(
    conn: psycopg.Connection[Any],
    *,
    layer_id: str | None = None,
    limit: int = 50,
    hidden: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The latest loads, newest first (none of the layers in ``hidden``: those the caller may not read)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL(
                "SELECT {} FROM gis_ioc.loads WHERE (%s::text IS NULL OR layer_id = %s) "
                "AND (layer_id IS NULL OR layer_id <> ALL(%s)) ORDER BY id DESC LIMIT %s"
            ).format(sql.SQL(_COLUMNS)),
            (layer_id, layer_id, list(hidden), limit),
        )
        return list(cur.fetchall())


def _get(conn: psycopg.Connection[Any], load_id: int, *, lock: bool = False) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {}, params, report FROM gis_ioc.loads WHERE id = %s {}").format(
                sql.SQL(_COLUMNS), sql.SQL("FOR UPDATE" if lock else "")
            ),
            (load_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no load {load_id}")
    return dict(row)


def show(conn: psycopg.Connection[Any], catalog: Catalog, load_id: int) -> dict[str, Any]:
    """One load with its rows by approval state and the rows it replaced."""
    load = _get(conn, load_id)
    layer = catalog.layers.get(load["layer_id"]) if load["layer_id"] else None
    if layer is not None and load["kind"] in ("vector", "raster"):
        rows = conn.execute(
            sql.SQL("SELECT approval, count(*) FROM {} WHERE load_id = %s GROUP BY approval").format(
                table_ident(layer)
            ),
            (load_id,),
        ).fetchall()
        load["rows"] = {str(a): int(n) for a, n in rows}
        superseded = conn.execute(
            "SELECT count(*) FROM gis_ioc.load_superseded WHERE load_id = %s", (load_id,)
        ).fetchone()
        load["superseded"] = int(superseded[0]) if superseded else 0
    return load


def _layer(catalog: Catalog, load: dict[str, Any]) -> Layer:
    if load["kind"] not in ("vector", "raster") or load["layer_id"] not in catalog.layers:
        raise LoadError(
            f"load {load['id']} is a {load['kind']} load; "
            "only file loads (vector, raster) are approved or rolled back here"
        )
    return catalog.layers[load["layer_id"]]


def _lock_layer(conn: psycopg.Connection[Any], layer: Layer) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gis_ioc.load.{layer.id}",))


def approve(
    conn: psycopg.Connection[Any], catalog: Catalog, load_id: int, *, by: str, audit: Audit | None = None
) -> dict[str, Any]:
    """Make a draft load's rows approved (and retire the rows it replaces), in one transaction; ``audit``
    is called in it with the result."""
    with conn.transaction():
        load = _get(conn, load_id, lock=True)
        layer = _layer(catalog, load)
        if load["status"] != "done":
            raise LoadError(f"load {load_id} is {load['status']}; only a finished load can be approved")
        if load["approval"] != "draft":
            raise LoadError(f"load {load_id} is already {load['approval']}")
        result = _approve(conn, layer, load, by)
        if audit is not None:
            audit(conn, result)
        return result


def show_row(conn: psycopg.Connection[Any], load_id: int) -> dict[str, Any]:
    return _get(conn, load_id)


def approve_in_transaction(
    conn: psycopg.Connection[Any], layer: Layer, load: dict[str, Any], *, by: str
) -> dict[str, Any]:
    """Approve inside the caller's transaction (trusted feeds approve as they load)."""
    return _approve(conn, layer, load, by)


def _approve(conn: psycopg.Connection[Any], layer: Layer, load: dict[str, Any], by: str) -> dict[str, Any]:
    load_id = load["id"]
    table = table_ident(layer)
    _lock_layer(conn, layer)
    if (load.get("params") or {}).get("edit"):
        # the feature must still be published as the edit found it (a feature keeps its id across edits:
        # another approved edit shows as a newer ``sys_from``)
        stale = conn.execute(
            sql.SQL(
                """SELECT s.fid FROM gis_ioc.load_superseded s LEFT JOIN {} t ON t.fid = s.fid
                    WHERE s.load_id = %s AND s.layer_id = %s
                      AND (t.approval IS DISTINCT FROM 'approved'
                           OR (%s::timestamptz IS NOT NULL AND t.sys_from IS DISTINCT FROM %s::timestamptz))
                    ORDER BY 1"""
            ).format(table),
            (load_id, layer.id, load["params"].get("base"), load["params"].get("base")),
        ).fetchall()
        if stale:
            fids = ", ".join(str(r[0]) for r in stale)
            raise LoadError(
                f"load {load_id} edits feature fid {fids} of {layer.id}, which has changed since: "
                "make the edit again from the current version",
                vi=f"lần nạp {load_id} sửa đối tượng fid {fids} của {layer.id}, nhưng đối tượng này đã được thay đổi "
                "sau đó: hãy sửa lại từ phiên bản hiện hành",
            )
    if load["mode"] == "replace":
        conn.execute(
            sql.SQL(
                """INSERT INTO gis_ioc.load_superseded (load_id, layer_id, fid)
                   SELECT %s, %s, fid FROM {} WHERE approval = 'approved' AND load_id IS DISTINCT FROM %s
                   ON CONFLICT DO NOTHING"""
            ).format(table),
            (load_id, layer.id, load_id),
        )
    elif load["mode"] == "upsert" and layer.key is not None:
        conn.execute(
            sql.SQL(
                """INSERT INTO gis_ioc.load_superseded (load_id, layer_id, fid)
                   SELECT %s, %s, t.fid FROM {t} t
                    WHERE t.approval = 'approved' AND t.load_id IS DISTINCT FROM %s
                      AND t.{k} IN (SELECT n.{k} FROM {t} n WHERE n.load_id = %s)
                   ON CONFLICT DO NOTHING"""
            ).format(t=table, k=sql.Identifier(layer.key)),
            (load_id, layer.id, load_id, load_id),
        )
    retired = conn.execute(
        sql.SQL(
            """UPDATE {} SET approval = 'rejected', updated_at = now(), sys_to = coalesce(sys_to, now())
                WHERE fid IN (SELECT fid FROM gis_ioc.load_superseded WHERE load_id = %s AND layer_id = %s)"""
        ).format(table),
        (load_id, layer.id),
    ).rowcount
    try:
        approved = conn.execute(
            sql.SQL(
                "UPDATE {} SET approval = 'approved', updated_at = now(), sys_from = now(), sys_to = NULL "
                "WHERE load_id = %s"
            ).format(table),
            (load_id,),
        ).rowcount
    except psycopg.errors.UniqueViolation as exc:
        detail = exc.diag.message_detail or str(exc)
        raise LoadError(
            f"load {load_id} cannot be approved: an approved feature already has the same key ({detail})"
        ) from exc
    if (load.get("params") or {}).get("edit") in ("replace", "update"):
        _swap_states(conn, layer, load_id, published="current")
    conn.execute(
        "UPDATE gis_ioc.loads SET approval = 'approved', approved_by = %s, approved_at = now() WHERE id = %s",
        (by, load_id),
    )
    return {"load_id": load_id, "approved": approved, "superseded": retired, "layer": layer.id}


def _swap_states(conn: psycopg.Connection[Any], layer: Layer, load_id: int, *, published: str) -> None:
    """An edit of one feature keeps the feature's id: swap the contents of the edit's row and of the row it
    supersedes, and point ``load_superseded`` at the row that now holds the old state. At approval
    (``published="current"``) the feature's own row takes the new state and the draft's row the retired
    one; before a rollback (``published="retired"``) the other way round, so that rolling back deletes the
    edit's row and restores the old state under the feature's id."""
    table = table_ident(layer)
    rows = conn.execute(
        sql.SQL(
            """SELECT (SELECT fid FROM {} WHERE load_id = %s),
                      (SELECT fid FROM gis_ioc.load_superseded WHERE load_id = %s AND layer_id = %s)"""
        ).format(table),
        (load_id, load_id, layer.id),
    ).fetchone()
    if rows is None or rows[0] is None or rows[1] is None:
        return
    edited, superseded = int(rows[0]), int(rows[1])
    columns = [sql.Identifier(c) for c in column_types(layer) if c not in ("fid", "approval")]
    # the edited row out of the key index first: the swap never holds two approved rows with one key
    conn.execute(sql.SQL("UPDATE {} SET approval = 'rejected' WHERE fid = %s").format(table), (edited,))
    keeps = superseded if published == "current" else edited  # the row that ends up holding the edit
    conn.execute(
        sql.SQL(
            """UPDATE {t} t SET ({cols}) = (SELECT {cols} FROM {t} o WHERE o.fid = CASE WHEN t.fid = %s THEN %s
                                                                                 ELSE %s END),
                      approval = CASE WHEN t.fid = %s AND %s THEN 'approved' ELSE 'rejected' END
                WHERE t.fid IN (%s, %s)"""
        ).format(t=table, cols=sql.SQL(", ").join(columns)),
        (edited, superseded, edited, keeps, published == "current", edited, superseded),
    )
    conn.execute(  # (the server's role may insert and delete these records, never rewrite them)
        "DELETE FROM gis_ioc.load_superseded WHERE load_id = %s AND layer_id = %s", (load_id, layer.id)
    )
    conn.execute(
        "INSERT INTO gis_ioc.load_superseded (load_id, layer_id, fid) VALUES (%s, %s, %s)",
        (load_id, layer.id, edited),
    )


def rollback(
    conn: psycopg.Connection[Any], catalog: Catalog, load_id: int, *, by: str, audit: Audit | None = None
) -> dict[str, Any]:
    """Delete a load's rows and restore the rows it replaced, in one transaction; ``audit`` is called in
    it with the result."""
    with conn.transaction():
        load = _get(conn, load_id, lock=True)
        layer = _layer(catalog, load)
        if load["status"] == "rolled_back":
            raise LoadError(f"load {load_id} was already rolled back on {load['rolled_back_at']:%Y-%m-%d %H:%M}")
        _lock_layer(conn, layer)
        table = table_ident(layer)
        later = conn.execute(
            sql.SQL(
                """SELECT DISTINCT s.load_id FROM gis_ioc.load_superseded s
                     JOIN gis_ioc.loads l ON l.id = s.load_id AND l.status = 'done' AND l.approval = 'approved'
                     JOIN {} t ON t.fid = s.fid
                    WHERE s.layer_id = %s AND t.load_id = %s AND s.load_id <> %s ORDER BY 1"""
            ).format(table),
            (layer.id, load_id, load_id),
        ).fetchall()
        if later:
            ids = ", ".join(str(r[0]) for r in later)
            raise LoadError(f"load {load_id} was replaced in part by load {ids}: roll that back first")
        if load["approval"] == "approved" and (load.get("params") or {}).get("edit") in ("replace", "update"):
            _swap_states(conn, layer, load_id, published="retired")  # the old state back under the feature's id
        deleted = conn.execute(sql.SQL("DELETE FROM {} WHERE load_id = %s").format(table), (load_id,)).rowcount
        try:
            restored = conn.execute(
                sql.SQL(
                    """UPDATE {} SET approval = 'approved', updated_at = now(), sys_to = NULL
                        WHERE fid IN (SELECT fid FROM gis_ioc.load_superseded WHERE load_id = %s AND layer_id = %s)
                          AND approval = 'rejected'"""
                ).format(table),
                (load_id, layer.id),
            ).rowcount
        except psycopg.errors.UniqueViolation as exc:
            raise LoadError(f"load {load_id} cannot be rolled back: a later load holds the same keys ({exc})") from exc
        conn.execute(
            """UPDATE gis_ioc.loads SET status = 'rolled_back', rolled_back_by = %s, rolled_back_at = now(),
                      approval = CASE WHEN approval = 'draft' THEN 'rejected' ELSE approval END
                WHERE id = %s""",
            (by, load_id),
        )
        result = {"load_id": load_id, "deleted": deleted, "restored": restored, "layer": layer.id}
        if audit is not None:
            audit(conn, result)
    return result
