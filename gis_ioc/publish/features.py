"""Feature queries for the OGC API: one layer, one request, GeoJSON built inside PostGIS.

Rows are read as the viewer may see them (:mod:`gis_ioc.query.rows`): the query's layer is the layer as
the viewer sees it (personal fields dropped unless granted), and its WHERE clause is built by the one
read path (approved rows, the current version, a commune officer's communes, the user's filter in its
own parentheses). Run them inside ``scope.transaction`` so that PostgreSQL knows who asks as well.

Paging: ordered by ``fid`` by default with keyset links (``after=<fid>``: every feature exactly
once, as fast on the last page as on the first); with ``sortby`` the order is the requested one
plus ``fid`` and links use ``offset``. ``numberMatched`` is given only when it is exact and cheap:
the last page of an offset walk, a count that stays under :data:`COUNT_CAP`, or ``resulttype=hits``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.crs import PUBLISHED, PublishedCrs
from gis_ioc.publish.cql import Params
from gis_ioc.query import rows
from gis_ioc.query.viewer import Viewer

COUNT_CAP = 1_000
#: decimals of coordinates by CRS kind: 1e-7° ≈ 1 cm; 1 mm in projected metres
_PRECISION = {True: 7, False: 3}


@dataclass
class ItemsQuery:
    """A validated items request (see :mod:`gis_ioc.publish.params`) of ``viewer``, whose ``layer`` is the
    layer as that viewer sees it (:meth:`Viewer.sees`)."""

    layer: Layer
    viewer: Viewer
    limit: int
    offset: int = 0
    after: int | None = None
    bbox: tuple[float, float, float, float] | None = None  # CRS84
    interval: tuple[datetime | None, datetime | None] | None = None
    crs: PublishedCrs = PUBLISHED[0]
    properties: list[str] | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    skip_geometry: bool = False
    filter: dict[str, Any] | None = None
    filter_crs: PublishedCrs = PUBLISHED[0]
    equals: dict[str, Any] = field(default_factory=dict)
    hits: bool = False

    @property
    def keyset(self) -> bool:
        """Paging by fid (``after``): the default order, unless an offset was asked for."""
        return not self.sortby and self.offset == 0


@dataclass
class FeaturePage:
    features_json: str  # a JSON array of Feature objects
    returned: int
    matched: int | None
    last_fid: int | None


def geometry_sql(crs: PublishedCrs) -> sql.Composable:
    """The layer's geometry (EPSG:4326) in the requested CRS, VN-2000 through the pinned SRIDs."""
    if crs.srid == 4326:
        return sql.SQL("ST_FlipCoordinates(t.geom)") if crs.lat_first else sql.SQL("t.geom")
    return sql.SQL("ST_Transform(t.geom, {})").format(sql.Literal(crs.srid))


def feature_sql(layer: Layer, crs: PublishedCrs, properties: list[str] | None, skip_geometry: bool) -> sql.Composed:
    names = properties if properties is not None else [f.name for f in layer.fields]
    numbers = {f.name for f in layer.fields if f.type == "number"}
    pairs: list[sql.Composable] = []
    for name in names:
        column: sql.Composable = sql.Identifier("t", name)
        if name in numbers:
            # a whole value of a number field written 20.0, not 20: clients that type a field by its first
            # features (QGIS, GDAL) would take it for an integer field and lose the 52.1 that follows
            column = sql.SQL(
                "CASE WHEN abs({c}) < 1e15 AND {c} = trunc({c}) THEN to_json({c}::numeric(16, 1)) ELSE to_json({c}) END"
            ).format(c=column)
        pairs.extend([sql.Literal(name), column])
    props = sql.SQL("json_build_object({})").format(sql.SQL(", ").join(pairs)) if pairs else sql.SQL("'{}'::json")
    geographic = crs.srid == 4326
    geometry = (
        sql.SQL("NULL::json")
        if skip_geometry
        else sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(geometry_sql(crs), sql.Literal(_PRECISION[geographic]))
    )
    return sql.SQL("json_build_object('type', 'Feature', 'id', t.fid, 'geometry', {}, 'properties', {})").format(
        geometry, props
    )


def where_sql(query: ItemsQuery, params: Params) -> sql.Composed:
    """The read path's WHERE (what the viewer may read, the user's filter in its own parentheses) AND the
    request's bbox, time and property conditions."""
    layer = query.layer
    extra: list[sql.Composable] = []
    if layer.versioned and query.interval is not None:  # the versions valid during the interval
        begin, end = query.interval
        if end is not None:
            extra.append(sql.SQL("t.valid_from <= {}::date").format(params.add(end)))
        if begin is not None:
            extra.append(sql.SQL("t.valid_to IS NULL OR t.valid_to > {}::date").format(params.add(begin)))
    if query.bbox is not None:
        envelope = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)")
        extra.append(sql.SQL("t.geom && {}").format(envelope.format(*(params.add(v) for v in query.bbox))))
        extra.append(sql.SQL("ST_Intersects(t.geom, {})").format(envelope.format(*(params.add(v) for v in query.bbox))))
    elif query.interval is not None and layer.temporal is not None:  # the layer's own time field
        column = sql.Identifier("t", layer.temporal)
        field = layer.field(layer.temporal)
        # a date matches when its day (UTC) meets the interval
        cast = sql.SQL("::date") if field is not None and field.type == "date" else sql.SQL("")
        begin, end = query.interval
        if begin is not None:
            extra.append(sql.SQL("{} >= {}{}").format(column, params.add(begin), cast))
        if end is not None:
            extra.append(sql.SQL("{} <= {}{}").format(column, params.add(end), cast))
    for name, value in query.equals.items():
        extra.append(sql.SQL("{} = {}").format(sql.Identifier("t", name), params.add(value)))
    current = not (layer.versioned and query.interval is not None)
    return rows.where(
        query.viewer, layer, params, filter=query.filter, filter_crs=query.filter_crs, extra=extra, current=current
    )


def source_sql(query: ItemsQuery, params: Params) -> sql.Composable:
    """What the rows are read from: the layer's table; with ``datetime`` on a layer without versions and
    without a time field of its own (``temporal`` in its layer file), the states of its features that
    were published during the interval (``[sys_from, sys_to)`` meets it: an instant gives the layer as it
    stood then), presented as published rows so that the read path's
    WHERE (:func:`where_sql`: a commune officer's communes, the user's filter) applies to them as it does
    to the current rows; row-level security applies to the table underneath as always. Only the columns
    the viewer may read are selected, and a layer read as its collection reads it (:meth:`Layer.published`)
    gets its live fields joined (:func:`live_source`), in both cases."""
    table = sql.Identifier(SCHEMA, query.layer.table)
    if query.interval is None or query.layer.versioned or query.layer.temporal is not None:
        return live_source(query.layer, table)
    begin, end = query.interval
    stored = [f.name for f in query.layer.stored_fields()]
    names = ["fid", *stored, "geom", "load_id", "updated_at", "sys_from", "sys_to"]
    alive: list[sql.Composable] = [sql.SQL("h.approval <> 'draft'"), sql.SQL("h.sys_from IS NOT NULL")]
    if end is not None:
        alive.append(sql.SQL("h.sys_from <= {}").format(params.add(end)))
    if begin is not None:
        alive.append(sql.SQL("(h.sys_to IS NULL OR h.sys_to > {})").format(params.add(begin)))
    history = sql.SQL("(SELECT {}, 'approved'::text AS approval FROM {} h WHERE {})").format(
        sql.SQL(", ").join(sql.Identifier("h", n) for n in names), table, sql.SQL(" AND ").join(alive)
    )
    return live_source(query.layer, history)


def live_source(layer: Layer, source: sql.Composable) -> sql.Composable:
    """``source`` (the layer's table, or its history) with the layer's live fields (the ``live`` block of its
    layer file) LEFT JOINed from their view in schema ``gis_ioc`` on the layer's key, when ``layer`` is the
    layer as its collection reads it (:meth:`Layer.published`); otherwise ``source`` itself. The rows are
    the table's (row-level security applies to it, the read path's WHERE to the result); the view only
    adds columns, one row per key at most."""
    live = layer.live
    names = {f.name for f in layer.fields}
    if live is None or layer.key is None or not names & layer.live_names:
        return source
    stored = ["fid", *(f.name for f in layer.stored_fields())]
    if layer.versioned:
        stored += ["valid_from", "valid_to"]
    stored += ["geom", "load_id", "approval", "updated_at", "sys_from", "sys_to"]
    columns = [sql.Identifier("s", n) for n in stored]
    columns += [sql.Identifier("v", f.name) for f in live.fields if f.name in names]
    return sql.SQL("(SELECT {} FROM {} s LEFT JOIN {} v ON v.{} = s.{})").format(
        sql.SQL(", ").join(columns),
        source,
        sql.Identifier("gis_ioc", live.source),
        sql.Identifier(layer.key),
        sql.Identifier(layer.key),
    )


def order_sql(query: ItemsQuery) -> sql.Composed:
    terms: list[sql.Composable] = [
        sql.SQL("{} {} NULLS LAST").format(sql.Identifier("t", name), sql.SQL("DESC" if desc else "ASC"))
        for name, desc in query.sortby
    ]
    terms.append(sql.SQL("t.fid"))
    return sql.SQL(", ").join(terms)


def fetch_page(conn: psycopg.Connection[Any], query: ItemsQuery) -> FeaturePage:
    params = Params()
    where = where_sql(query, params)
    table = source_sql(query, params)
    matched: int | None = None
    if query.hits:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(table, where), params.values).fetchone()
        return FeaturePage("[]", 0, int(row[0]) if row else 0, None)
    page_where: sql.Composable = where
    if query.keyset and query.after is not None:
        page_where = sql.SQL("{} AND t.fid > {}").format(where, params.add(query.after))
    statement = sql.SQL(
        "WITH page AS (SELECT t.fid, {feature} AS feature FROM {table} t WHERE {where} ORDER BY {order} "
        "LIMIT {limit} OFFSET {offset}) "
        "SELECT coalesce(json_agg(feature), '[]'::json)::text, count(*), max(fid) FROM page"
    ).format(
        feature=feature_sql(query.viewer.sees(query.layer), query.crs, query.properties, query.skip_geometry),
        table=table,
        where=page_where,
        order=order_sql(query),
        limit=params.add(query.limit),
        offset=params.add(0 if query.keyset else query.offset),
    )
    row = conn.execute(statement, params.values).fetchone()
    assert row is not None
    features_json, returned, last_fid = row[0], int(row[1]), row[2]
    if returned < query.limit and (returned > 0 or query.offset == 0) and query.after is None:
        matched = query.offset + returned  # the walk ends here: exact for free
    else:
        capped = conn.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} t WHERE {} LIMIT {}) c").format(
                table, where, sql.Literal(COUNT_CAP + 1)
            ),
            params.values,
        ).fetchone()
        if capped is not None and capped[0] <= COUNT_CAP:
            matched = int(capped[0])
    return FeaturePage(features_json, returned, matched, last_fid)


def fetch_feature(
    conn: psycopg.Connection[Any], viewer: Viewer, layer: Layer, fid: int, crs: PublishedCrs
) -> str | None:
    """One feature (of any version, for versioned layers) that the viewer may read, as GeoJSON text, or
    None; ``layer`` is the layer as the viewer sees it."""
    statement, values = feature_statement(viewer, layer, fid, crs)
    row = conn.execute(statement, values).fetchone()
    return None if row is None else str(row[0])


def feature_statement(viewer: Viewer, layer: Layer, fid: int, crs: PublishedCrs) -> tuple[bytes, dict[str, Any]]:
    """The SELECT of :func:`fetch_feature` (the feature with its live fields, if its layer has any, and its
    row's ``updated_at``: its version, whatever the live state) and its values. The SQL text depends only
    on the layer, the viewer's class for it (:meth:`Viewer.view_class`: same rows, same fields) and the CRS, so it is
    composed once per such triple; only the feature id changes between requests."""
    text, values = _feature_template(viewer, layer, crs)
    return text, {**values, _FID: fid}


_FID = "p0"  # the first value added: the feature id
_FEATURE_TEMPLATES: dict[tuple[Any, ...], tuple[bytes, dict[str, Any]]] = {}
_TEMPLATES_LOCK = threading.Lock()


def _feature_template(viewer: Viewer, layer: Layer, crs: PublishedCrs) -> tuple[bytes, dict[str, Any]]:
    layer = viewer.sees(layer.published())
    key = (layer.id, viewer.view_class(layer), crs.uri)
    found = _FEATURE_TEMPLATES.get(key)
    if found is None:
        params = Params()
        fid = params.add(0)
        assert fid.as_string(None) == f"%({_FID})s"
        statement = sql.SQL("SELECT {}::text, t.updated_at FROM {} t WHERE t.fid = {} AND {}").format(
            feature_sql(layer, crs, None, False),
            live_source(layer, sql.Identifier(SCHEMA, layer.table)),
            fid,
            rows.visible(viewer, layer, params, current=False),
        )
        found = (statement.as_bytes(None), params.values)
        with _TEMPLATES_LOCK:
            _FEATURE_TEMPLATES[key] = found
            while len(_FEATURE_TEMPLATES) > 1024:  # bounded whatever the viewers
                _FEATURE_TEMPLATES.pop(next(iter(_FEATURE_TEMPLATES)))
    return found


#: The other formats of items and features (``f``, media type, name), rendered by pygeoapi: the ``alternate``
#: links (a single feature has no CSV).
ALTERNATES = (
    ("html", "text/html", "HTML"),
    ("jsonld", "application/ld+json", "JSON-LD"),
    ("csv", "text/csv", "CSV"),
)


QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


def link_header(links: list[dict[str, str]]) -> str:
    """``links`` as an RFC 8288 Link header (OGC API Features Part 1, /rec/core/link-header)."""
    return ", ".join(f'<{link["href"]}>; rel="{link["rel"]}"; type="{link["type"]}"' for link in links)


_STAMP = b'"timeStamp": "'
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def restamp(body: bytes, now: datetime) -> bytes:
    """A :func:`feature_collection` body (kept in a cache) with its ``timeStamp`` set to ``now``."""
    start = body.find(_STAMP, 0, 400)  # in the head, before the links and features
    if start < 0:
        return body
    start += len(_STAMP)
    stamp = now.strftime(_STAMP_FORMAT).encode()
    return body[:start] + stamp + body[start + len(stamp) :]


def feature_collection(page: FeaturePage, links: list[dict[str, str]], stamp: str) -> str:
    """The response body, assembled around the features JSON that PostGIS built."""
    head = {"type": "FeatureCollection", "numberReturned": page.returned}
    if page.matched is not None:
        head["numberMatched"] = page.matched
    head["timeStamp"] = stamp
    head["links"] = links
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "features": ' + page.features_json + "}"
