"""A feature's history: every state of it that was ever published, with when and through which change set.

A layer row that was published has a system time ``[sys_from, sys_to)`` (set by approval:
:mod:`gis_ioc.loaders.history`). The states of one feature are linked by the loads that replaced them:
an approved load's row follows the row it superseded (``gis_ioc.load_superseded``) when that load is an
edit (:mod:`gis_ioc.loaders.edits`: one feature replacing one) or when both rows carry the same key. The
history of a feature is every state reachable from it through those links, oldest first, read through the
read path with the viewer's rules (a commune officer's communes, the fields they may see; row-level
security underneath), as a GeoJSON FeatureCollection whose features carry a ``state`` member:
``validFrom``, ``validTo`` (null: the current state), ``approvedBy``, ``approvedAt``, ``changeSet`` (the
load), ``operation`` (an edit's ``create``/``replace``/``update``, or ``load`` for a file) and
``current``. A feature that was deleted ends with ``deletedBy``/``deletedIn`` on its last state.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.crs import PublishedCrs
from gis_ioc.publish.cql import Params
from gis_ioc.publish.features import feature_sql
from gis_ioc.query import rows
from gis_ioc.query.viewer import Viewer


def states_sql(layer: Layer) -> sql.Composed:
    """Every published state of the layer's features (the columns ``layer`` shows: the layer as the viewer
    sees it), presented as published rows for the read path's WHERE."""
    names = ["fid", *(f.name for f in layer.fields), "geom", "load_id", "sys_from", "sys_to"]
    if layer.versioned:
        names += ["valid_from", "valid_to"]
    return sql.SQL(
        "(SELECT {}, 'approved'::text AS approval FROM {} h WHERE h.approval <> 'draft' AND h.sys_from IS NOT NULL)"
    ).format(sql.SQL(", ").join(sql.Identifier("h", n) for n in names), sql.Identifier(SCHEMA, layer.table))


def history_statement(viewer: Viewer, layer: Layer, fid: int, crs: PublishedCrs) -> tuple[sql.Composed, dict[str, Any]]:
    """The states of feature ``fid`` as JSON text (a FeatureCollection), or a NULL collection when the
    viewer may read none of them; ``layer`` is the layer as the viewer sees it."""
    params = Params()
    start, layer_id = params.add(fid), params.add(layer.id)
    same_key = sql.SQL("OR n.{k} = o.{k}").format(k=sql.Identifier(layer.key)) if layer.key is not None else sql.SQL("")
    states = states_sql(layer)
    statement = sql.SQL(
        """WITH RECURSIVE edges AS (
             SELECT n.fid AS a, s.fid AS b
               FROM {states} n
               JOIN gis_ioc.load_superseded s ON s.load_id = n.load_id AND s.layer_id = {layer_id}
               JOIN gis_ioc.loads l ON l.id = s.load_id
               JOIN {states} o ON o.fid = s.fid
              WHERE l.params ? 'edit' {same_key}
           ), lineage(fid) AS (
             SELECT {start}::bigint
             UNION
             SELECT CASE WHEN e.a = lineage.fid THEN e.b ELSE e.a END
               FROM edges e JOIN lineage ON lineage.fid IN (e.a, e.b)
           ), found AS (
             SELECT {feature} AS feature, t.sys_from, t.sys_to, t.fid, l.id AS load_id, l.approved_by,
                    l.approved_at, coalesce(l.params ->> 'edit', 'load') AS operation,
                    (SELECT json_build_object('deletedIn', d.id, 'deletedBy', d.approved_by)
                       FROM gis_ioc.load_superseded ds JOIN gis_ioc.loads d ON d.id = ds.load_id
                      WHERE ds.layer_id = {layer_id} AND ds.fid = t.fid AND d.params ->> 'edit' = 'delete'
                        AND d.approval = 'approved' LIMIT 1) AS deleted
               FROM {states} t JOIN lineage USING (fid) LEFT JOIN gis_ioc.loads l ON l.id = t.load_id
              WHERE {where}
           )
           SELECT CASE WHEN bool_or(fid = {start}) THEN json_build_object(
                    'type', 'FeatureCollection',
                    'features', json_agg(feature::jsonb || jsonb_build_object('state', jsonb_strip_nulls(
                        jsonb_build_object('validFrom', sys_from, 'validTo', sys_to, 'current', sys_to IS NULL,
                                           'approvedBy', approved_by, 'approvedAt', approved_at,
                                           'changeSet', load_id, 'operation', operation))
                        || coalesce(deleted::jsonb, '{{}}'::jsonb))
                      ORDER BY sys_from, fid),
                    'numberReturned', count(*)) END::text
             FROM found"""
    ).format(
        states=states,
        layer_id=layer_id,
        same_key=same_key,
        start=start,
        feature=feature_sql(layer, crs, None, False),
        where=rows.where(viewer, layer, params, current=False),
    )
    return statement, params.values


def feature_history(
    conn: psycopg.Connection[Any], viewer: Viewer, layer: Layer, fid: int, crs: PublishedCrs
) -> str | None:
    """The history of feature ``fid`` as GeoJSON text, or None when the viewer may read no such feature."""
    statement, values = history_statement(viewer, layer, fid, crs)
    row = conn.execute(statement, values).fetchone()
    return None if row is None or row[0] is None else str(row[0])
