"""Selections: a point, a radius around a point, a zone, some communes, or the whole province.

Each selector takes its coordinates in any CRS the server publishes (VN-2000 pinned to EPSG:6960)
and becomes one geometry in EPSG:4326 inside PostGIS; radii are measured on the ground (geography).

Drawn selections are bounded, so that no request can make the server work for long (every figure
rests on the rows inside the selection, and the geometry operations grow with its vertices):

- a zone (a GeoJSON polygon, or a polygon feature ``layer:fid``) must intersect the province, cover at
  most :data:`MAX_ZONE_KM2` and have at most :data:`MAX_ZONE_VERTICES` vertices;
- a radius is at most :data:`MAX_RADIUS_M` and must reach the province.

A selection beyond a bound is refused (400) with the bound named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc import crs as crs_registry
from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.publish.cql import Params, geometry_literal
from gis_ioc.query import rows
from gis_ioc.query.viewer import Viewer

MAX_RADIUS_M = 50_000.0
#: The largest zone, km². The province is 2,574 km² (2025 boundaries): a zone drawn loosely around all of
#: it is still below 3,000 km², and any zone larger only adds ground outside the province, where no row
#: lies. The bound keeps the geography arithmetic on a zone (areas, distances) small whatever is sent.
MAX_ZONE_KM2 = 3_000.0
#: The most vertices a zone may have: the province's own boundary has 7,823, a commune's at most ~4,200.
MAX_ZONE_VERTICES = 10_000


@dataclass
class Selection:
    """What was selected: its kind, how it was asked for, and its geometry (EPSG:4326, as EWKB hex)."""

    kind: str  # point | radius | zone | communes | province
    request: dict[str, Any]
    geometry: str
    communes: list[str] = field(default_factory=list)  # the codes asked for (kind communes)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.request}


def _point_sql(params: Params, x: float, y: float, crs: str | None) -> sql.Composable:
    target = crs_registry.lookup(crs) if crs else crs_registry.PUBLISHED[0]
    return geometry_literal(params, {"type": "Point", "coordinates": [x, y]}, target)


def _fetch(conn: psycopg.Connection[Any], expr: sql.Composable, params: Params) -> str:
    row = conn.execute(sql.SQL("SELECT ST_AsEWKB({})").format(expr), params.values).fetchone()
    if row is None or row[0] is None:
        raise InvalidInput("the selection is empty")
    return bytes(row[0]).hex()


def _check_coordinates(x: float, y: float) -> None:
    for v in (x, y):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or abs(v) == float("inf"):
            raise InvalidInput(f"coordinates must be finite numbers, got {x!r}, {y!r}")


def point(conn: psycopg.Connection[Any], x: float, y: float, crs: str | None = None) -> Selection:
    _check_coordinates(x, y)
    params = Params()
    return Selection("point", {"x": x, "y": y, "crs": crs}, _fetch(conn, _point_sql(params, x, y, crs), params))


def radius(conn: psycopg.Connection[Any], x: float, y: float, metres: float, crs: str | None = None) -> Selection:
    _check_coordinates(x, y)
    if not isinstance(metres, (int, float)) or isinstance(metres, bool) or not 0 < metres <= MAX_RADIUS_M:
        raise InvalidInput(f"radius must be above 0 and at most {MAX_RADIUS_M:,.0f} m, got {metres!r}")
    params = Params()
    centre = _point_sql(params, x, y, crs)
    expr = sql.SQL("ST_Buffer(({})::geography, {}, 'quad_segs=32')::geometry").format(centre, params.add(metres))
    geometry = _fetch(conn, expr, params)
    check_reach(conn, geometry, 0.0, f"the circle of {metres:,.0f} m")
    return Selection("radius", {"x": x, "y": y, "crs": crs, "radius_m": metres}, geometry)


def zone_feature(conn: psycopg.Connection[Any], reference: str, catalog: Catalog, viewer: Viewer) -> Selection:
    """A polygon feature ``layer:fid`` as the viewer may read it (:mod:`gis_ioc.query.rows`): a layer the
    viewer may not read is answered as an unknown layer, and a draft, a former version or another
    commune's feature (for a commune officer) as a feature that does not exist."""
    match = re.fullmatch(r"([a-z][a-z0-9_]*):(\d{1,18})", reference) if isinstance(reference, str) else None
    try:
        layer = rows.readable_layer(viewer, catalog, match[1]) if match is not None else None
    except NotFound:
        layer = None
    if match is None or layer is None:
        raise InvalidInput(f"zone reference {reference!r} must be LAYER:FID with a known layer")
    if "Polygon" not in layer.geometry:
        raise InvalidInput(f"zone reference: layer {layer.id} has no polygons")
    params = Params()
    fid = sql.SQL("t.fid = {}").format(params.add(int(match[2])))
    row = conn.execute(
        sql.SQL("SELECT ST_AsEWKB(t.geom) FROM {} t WHERE {}").format(
            sql.Identifier(SCHEMA, layer.table), rows.where(viewer, layer, params, extra=[fid])
        ),
        params.values,
    ).fetchone()
    if row is None:
        raise NotFound(f"zone reference: no feature {match[2]} in {layer.id}")
    geometry = bytes(row[0]).hex()
    check_zone(conn, geometry, f"zone {reference}")
    return Selection("zone", {"feature": reference}, geometry)


def zone(conn: psycopg.Connection[Any], geojson: dict[str, Any] | None, crs: str | None = None) -> Selection:
    """A GeoJSON polygon (in ``crs``)."""
    params = Params()
    if not isinstance(geojson, dict) or geojson.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("zone must be a GeoJSON Polygon or MultiPolygon geometry")
    if count_positions(geojson.get("coordinates"), MAX_ZONE_VERTICES) > MAX_ZONE_VERTICES:
        raise InvalidInput(f"zone has more than {MAX_ZONE_VERTICES:,} vertices; simplify it")
    crs_obj = crs_registry.lookup(crs) if crs else crs_registry.PUBLISHED[0]
    expr = geometry_literal(params, geojson, crs_obj)
    try:
        with conn.transaction():  # a savepoint: the caller's transaction survives a malformed geometry
            row = conn.execute(
                sql.SQL("SELECT ST_IsValid(g), ST_IsValidReason(g), ST_AsEWKB(g) FROM (SELECT {} AS g) s").format(expr),
                params.values,
            ).fetchone()
    except psycopg.Error as exc:
        raise InvalidInput(f"zone is not a valid GeoJSON geometry: {str(exc).strip().splitlines()[0]}") from None
    assert row is not None
    if not row[0]:
        raise InvalidInput(f"zone geometry is invalid: {row[1]}")
    geometry = bytes(row[2]).hex()
    check_zone(conn, geometry)
    return Selection("zone", {"geometry": geojson, "crs": crs}, geometry)


def count_positions(coordinates: Any, limit: int) -> int:
    """The positions in GeoJSON ``coordinates`` (nested lists), counted up to just above ``limit``."""
    count, stack = 0, [coordinates]
    while stack and count <= limit:
        item = stack.pop()
        if isinstance(item, list) and item and not isinstance(item[0], list):
            count += 1  # a position [x, y]
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _province_sql(geometry: sql.Composable, reach_m: float | None = None) -> sql.Composable:
    """Does the geometry intersect the province (or come within ``reach_m`` metres of it)?"""
    if reach_m is None:
        test = sql.SQL("p.geom && {g} AND ST_Intersects(p.geom, {g})").format(g=geometry)
    else:
        test = sql.SQL("ST_DWithin(p.geom::geography, ({g})::geography, {r})").format(
            g=geometry, r=sql.Literal(float(reach_m))
        )
    return sql.SQL("EXISTS (SELECT 1 FROM layers.province p WHERE p.valid_to IS NULL AND {})").format(test)


def check_zone(conn: psycopg.Connection[Any], geometry: str, what: str = "zone") -> None:
    """Refuse a zone (EWKB hex) beyond the bounds: outside the province, above :data:`MAX_ZONE_KM2` or
    :data:`MAX_ZONE_VERTICES`."""
    g = sql.SQL("ST_GeomFromEWKB(decode(%(g)s, 'hex'))")
    row = conn.execute(
        sql.SQL("SELECT ST_NPoints({g}), ST_Area(({g})::geography) / 1e6, {inside}").format(
            g=g, inside=_province_sql(g)
        ),
        {"g": geometry},
    ).fetchone()
    assert row is not None
    vertices, km2, inside = int(row[0]), float(row[1]), bool(row[2])
    if vertices > MAX_ZONE_VERTICES:
        raise InvalidInput(f"{what} has {vertices:,} vertices, more than the {MAX_ZONE_VERTICES:,} allowed")
    if km2 > MAX_ZONE_KM2:
        raise InvalidInput(f"{what} covers {km2:,.0f} km², more than the {MAX_ZONE_KM2:,.0f} km² allowed")
    if not inside:
        raise InvalidInput(f"{what} lies outside the province")


def check_reach(conn: psycopg.Connection[Any], geometry: str, metres: float, what: str) -> None:
    """Refuse a point (EWKB hex) farther than ``metres`` from the province."""
    g = sql.SQL("ST_GeomFromEWKB(decode(%(g)s, 'hex'))")
    row = conn.execute(sql.SQL("SELECT {}").format(_province_sql(g, metres)), {"g": geometry}).fetchone()
    if row is None or not row[0]:
        raise InvalidInput(f"{what} does not reach the province")


def communes(conn: psycopg.Connection[Any], codes: list[str]) -> Selection:
    codes = sorted({c.strip() for c in codes if c.strip()})
    if not codes:
        raise InvalidInput("give at least one commune code")
    rows = conn.execute(
        "SELECT code FROM layers.communes WHERE valid_to IS NULL AND code = ANY(%s)", (codes,)
    ).fetchall()
    unknown = sorted(set(codes) - {r[0] for r in rows})
    if unknown:
        raise InvalidInput(f"unknown commune codes: {', '.join(unknown)}")
    row = conn.execute(
        "SELECT ST_AsEWKB(ST_Union(geom)) FROM layers.communes WHERE valid_to IS NULL AND code = ANY(%s)", (codes,)
    ).fetchone()
    assert row is not None
    return Selection("communes", {"codes": codes}, bytes(row[0]).hex(), communes=codes)


def province(conn: psycopg.Connection[Any]) -> Selection:
    row = conn.execute("SELECT ST_AsEWKB(geom) FROM layers.province WHERE valid_to IS NULL").fetchone()
    if row is None:
        raise InvalidInput("no province boundary loaded")
    return Selection("province", {}, bytes(row[0]).hex())


def from_request(conn: psycopg.Connection[Any], body: dict[str, Any], catalog: Catalog, viewer: Viewer) -> Selection:
    """A selection from a JSON request: {"point"|"radius"|"zone"|"communes"|"province": …}; a zone given
    as ``layer:fid`` is read as the viewer may read it."""
    kinds = [k for k in ("point", "radius", "zone", "communes", "province") if k in body]
    if len(kinds) != 1:
        raise InvalidInput("give exactly one of point, radius, zone, communes, province")
    kind = kinds[0]
    value = body[kind]
    crs = body.get("crs")
    try:
        if kind == "point":
            return point(conn, float(value[0]), float(value[1]), crs)
        if kind == "radius":
            return radius(conn, float(value["at"][0]), float(value["at"][1]), float(value["metres"]), crs)
        if kind == "zone":
            if isinstance(value, str):
                return zone_feature(conn, value, catalog, viewer)
            return zone(conn, value, crs)
        if kind == "communes":
            return communes(conn, [str(c) for c in value])
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(f"{kind}: malformed ({exc}); see the API documentation for the shape") from None
    return province(conn)
