"""Collection extents that follow the data.

A collection's spatial and temporal extent, and the lowest zoom at which its vector tiles hold anything,
are read from its published rows (approved, the current version) and kept per process under the layer's
data version (:mod:`gis_ioc.database.versions`): a load, an approval or an edit on any server changes the
version, and the next request that shows an extent (``/collections``, a collection, its tileset) reads it
again. Without the versions listener an extent is read again after :data:`MAX_AGE` seconds.

The extents are written into the resources of the OGC configuration (pygeoapi reads them there when it
answers, in JSON and HTML), so every page shows the same figures.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.crs import CRS84_URI
from gis_ioc.database.versions import DataVersions
from gis_ioc.publish.cql import Params
from gis_ioc.query import rows, scope
from gis_ioc.query.viewer import Viewer

#: Seconds an extent is trusted when no versions listener tells of changes.
MAX_AGE = 60.0
#: Bounds of boundaries/hung_yen_2025_province.geojson (lon/lat, rounded outwards): an empty layer's extent.
PROVINCE_BBOX = [105.8945, 20.249, 106.6595, 21.0071]
WORLD_M = 40075016.68557849  # the side of the Web Mercator square, metres
DEGREE_M = 111_000.0  # metres per degree, as the tile query's pixel filter counts them
#: Below this zoom the tiles leave out polygons smaller than a pixel (gis_ioc.publish.tiles).
PIXEL_FILTER_BELOW = 14
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


@dataclass(frozen=True)
class Extent:
    bbox: list[float]
    #: First and last instant of the layer's time field, or, for a layer without one nor versions, of its
    #: history (the end None while features are published: an open interval); None: no time, or no rows.
    temporal: tuple[datetime, datetime | None] | None
    #: The lowest zoom whose tiles can hold a feature (polygons: the largest one covers a pixel).
    data_min_zoom: int
    empty: bool
    version: int | None
    read_at: float

    def as_config(self) -> dict[str, Any]:
        """The pygeoapi configuration's ``extents`` of a collection."""
        extents: dict[str, Any] = {"spatial": {"bbox": self.bbox, "crs": CRS84_URI}}
        if self.temporal is not None:
            extents["temporal"] = {"begin": self.temporal[0], "end": self.temporal[1], "trs": TRS}
        return extents


def min_zoom_for(largest_box_deg2: float | None) -> int:
    """The lowest zoom at which a polygon whose bounding box has this area (square degrees) survives the
    tiles' sub-pixel filter (``ST_Area(box) > (pixel / 111 km)²``)."""
    if largest_box_deg2 is None or largest_box_deg2 <= 0:
        return PIXEL_FILTER_BELOW
    ratio = WORLD_M / (256 * DEGREE_M * math.sqrt(largest_box_deg2))
    if ratio < 1:
        return 0
    return min(PIXEL_FILTER_BELOW, math.floor(math.log2(ratio)) + 1)


def _as_datetime(value: Any) -> datetime:
    moment: datetime = (
        value if isinstance(value, datetime) else datetime(value.year, value.month, value.day, tzinfo=UTC)
    )
    return moment.astimezone(UTC)


def extent_statement(layer: Layer) -> tuple[sql.Composed, dict[str, Any]]:
    """One statement: the layer's published rows' extent, largest polygon box, time range, and the data
    version they were read at (the same snapshot)."""
    params = Params()
    where = rows.visible(Viewer.console("extents"), layer, params)
    polygons = "Polygon" in layer.geometry
    largest = sql.SQL("max(ST_Area(t.geom::box2d::geometry))" if polygons else "NULL::float8")
    times: sql.Composable = sql.SQL("NULL, NULL")
    if layer.temporal:  # the layer's own time field
        times = sql.SQL("min({0}), max({0})").format(sql.Identifier("t", layer.temporal))
    elif not layer.versioned:  # its history: from the first publication, open while anything is published
        times = sql.SQL(
            "(SELECT min(h.sys_from) FROM {0} h WHERE h.approval <> 'draft'), "
            "(SELECT CASE WHEN bool_or(h.approval = 'approved') THEN NULL ELSE max(h.sys_to) END "
            "FROM {0} h WHERE h.approval <> 'draft')"
        ).format(sql.Identifier(SCHEMA, layer.table))
    query = sql.SQL(
        "SELECT ST_XMin(s.e), ST_YMin(s.e), ST_XMax(s.e), ST_YMax(s.e), s.largest, s.t0, s.t1, "
        "(SELECT version FROM gis_ioc.data_versions WHERE layer_table = {table_name}) FROM ("
        "SELECT ST_Extent(t.geom) AS e, {largest} AS largest, {times_} FROM {table} t WHERE {where}"
        ") AS s(e, largest, t0, t1)"
    ).format(
        table_name=params.add(layer.table),
        largest=largest,
        times_=times,
        table=sql.Identifier(SCHEMA, layer.table),
        where=where,
    )
    return query, params.values


def read_extent(conn: psycopg.Connection[Any], layer: Layer) -> Extent:
    query, values = extent_statement(layer)
    row = conn.execute(query, values).fetchone()
    assert row is not None
    empty = row[0] is None
    bbox = PROVINCE_BBOX if empty else [round(float(v), 6) for v in row[:4]]
    temporal = (_as_datetime(row[5]), _as_datetime(row[6]) if row[6] is not None else None) if row[5] else None
    zoom = 0 if "Polygon" not in layer.geometry else min_zoom_for(row[4])
    return Extent(bbox, temporal, zoom, empty, int(row[7]) if row[7] is not None else None, time.monotonic())


class Extents:
    """The extents of the published collections, per process, read again when their data changes."""

    def __init__(
        self,
        catalog: Catalog,
        pool: ConnectionPool,
        layers: list[Layer],
        versions: DataVersions | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.catalog = catalog
        self.pool = pool
        self.layers = layers
        self.versions = versions
        self.resources = resources if resources is not None else {}
        self._known: dict[str, Extent] = {}
        self._lock = threading.Lock()

    def _fresh(self, layer: Layer, extent: Extent | None) -> bool:
        if extent is None:
            return False
        if self.versions is not None and self.versions.live:
            return extent.version is not None and extent.version == self.versions.get(layer.table)
        return time.monotonic() - extent.read_at < MAX_AGE

    def refresh(self, only: list[Layer] | None = None) -> dict[str, Extent]:
        """Every extent (or those of ``only``), reading again the ones whose data changed; blocking."""
        wanted = only if only is not None else self.layers
        stale = [layer for layer in wanted if not self._fresh(layer, self._known.get(layer.id))]
        if stale:
            with self.pool.connection() as conn, conn.transaction():
                scope.bind(conn, Viewer.console("extents"), self.catalog, "read")
                found = {layer.id: read_extent(conn, layer) for layer in stale}
            with self._lock:
                self._known.update(found)
                for layer_id, extent in found.items():
                    resource = self.resources.get(layer_id)
                    if resource is not None:  # pygeoapi reads the configuration when it answers
                        resource["extents"] = extent.as_config()
        with self._lock:
            return {layer.id: self._known[layer.id] for layer in wanted}

    def of(self, layer: Layer) -> Extent:
        return self.refresh([layer])[layer.id]
