"""What the web map asks PostGIS: find a commune by name (with or without diacritics) or code, and
what is at a point (the commune, the parcel, facilities nearby) as the viewer may read it.

Commune search is public (the communes layer is). Identify reads every layer through the one read path
(:mod:`gis_ioc.query.rows`) in the caller's transaction, which the door binds to the viewer."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.errors import InvalidInput
from gis_ioc.publish.cql import Params
from gis_ioc.query import rows
from gis_ioc.query.viewer import Viewer

#: The point layers of facilities that identify lists near a click (restricted layers never).
FACILITY_LAYERS = ("schools", "health_facilities", "fire_stations", "shelters", "power_substations")
MAX_NEARBY_METRES = 5000.0


def fold(text: str) -> str:
    """Lower case without diacritics: "Phường Phố Hiến" → "phuong pho hien" (đ → d)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(bare.lower().split())


@dataclass(frozen=True)
class Commune:
    code: str
    name: str
    short_name: str
    level: str
    bbox: tuple[float, float, float, float]
    centre: tuple[float, float]  # a point inside the commune (lon, lat)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "short_name": self.short_name,
            "level": self.level,
            "bbox": list(self.bbox),
            "centre": list(self.centre),
        }


def communes(conn: psycopg.Connection[Any]) -> list[Commune]:
    """The communes in force, with their bounding boxes and an inside point (CRS84)."""
    rows = conn.execute(
        "SELECT code, name, short_name, level, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom), "
        "ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
        "FROM layers.communes WHERE valid_to IS NULL ORDER BY code"
    ).fetchall()
    return [Commune(r[0], r[1], r[2], r[3], (r[4], r[5], r[6], r[7]), (round(r[8], 6), round(r[9], 6))) for r in rows]


def search(items: list[Commune], query: str, limit: int = 10) -> list[Commune]:
    """Communes whose code starts with the query, or whose name (folded) contains it; best first:
    exact short name, then prefix of the short name, then word prefix, then anywhere."""
    q = fold(query)
    if not q:
        return []
    ranked: list[tuple[int, str, Commune]] = []
    for c in items:
        short, full = fold(c.short_name), fold(c.name)
        if c.code.startswith(q):
            rank = 0 if c.code == q else 1
        elif q in (short, full):
            rank = 0
        elif short.startswith(q) or full.startswith(q):
            rank = 2
        elif f" {q}" in f" {full}":
            rank = 3
        elif q in full:
            rank = 4
        else:
            continue
        ranked.append((rank, full, c))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in ranked[:limit]]


def identify(
    conn: psycopg.Connection[Any], catalog: Catalog, viewer: Viewer, lon: float, lat: float, metres: float = 500.0
) -> dict[str, Any]:
    """The commune and the parcel at a point (CRS84), and the facilities within ``metres``, nearest first,
    as ``viewer`` may read them (:mod:`gis_ioc.query.rows`): layers they may not read are left out, a
    commune officer sees internal layers' rows of their own communes only, personal fields never unless
    granted. Public layers answer everyone."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is not a longitude, latitude in degrees")
    if not 0 < metres <= MAX_NEARBY_METRES:
        raise InvalidInput(f"radius {metres} must be above 0 and at most {MAX_NEARBY_METRES:g} metres")
    answer: dict[str, Any] = {"point": [lon, lat], "radius_m": metres, "commune": None, "parcel": None, "nearby": []}
    for key, layer_id in (("commune", "communes"), ("parcel", "land_parcels")):
        answer[key] = _feature_at(conn, catalog, viewer, layer_id, lon, lat)
    answer["nearby"] = _nearby(conn, catalog, viewer, lon, lat, metres)
    return answer


def _point(params: Params, lon: float, lat: float) -> sql.Composed:
    return sql.SQL("ST_SetSRID(ST_MakePoint({}, {}), 4326)").format(params.add(lon), params.add(lat))


def _feature_at(
    conn: psycopg.Connection[Any], catalog: Catalog, viewer: Viewer, layer_id: str, lon: float, lat: float
) -> dict[str, Any] | None:
    """The first feature of the layer at the point that the viewer may read (None: none, or unreadable)."""
    found = catalog.layers.get(layer_id)
    if found is None or not viewer.can_read(found):
        return None
    layer = viewer.sees(found)
    fields = [f.name for f in layer.fields]
    params = Params()
    point = _point(params, lon, lat)
    # the bounding-box test first: && is LEAKPROOF (roles.mark_leakproof), so under row-level security it
    # still uses the spatial index, where ST_Intersects alone got a parallel scan of every parcel (0.4 s)
    at = sql.SQL("t.geom && {point} AND ST_Intersects(t.geom, {point})").format(point=point)
    row = conn.execute(
        sql.SQL("SELECT t.fid, {cols} FROM {table} t WHERE {where} LIMIT 1").format(
            cols=sql.SQL(", ").join(sql.Identifier("t", f) for f in fields),
            table=sql.Identifier(SCHEMA, layer.table),
            where=rows.where(viewer, layer, params, extra=[at]),
        ),
        params.values,
    ).fetchone()
    if row is None:
        return None
    props = {f: _jsonable(v) for f, v in zip(fields, row[1:], strict=True)}
    return {
        "layer": layer.id,
        "title": {"vi": layer.title.vi, "en": layer.title.en},
        "fid": row[0],
        "properties": props,
        "labels": _labels(layer, props),
    }


def _nearby(
    conn: psycopg.Connection[Any], catalog: Catalog, viewer: Viewer, lon: float, lat: float, metres: float
) -> list[dict[str, Any]]:
    """Facilities within ``metres`` of the point, nearest first (at most 25), of the layers and rows the
    viewer may read."""
    params = Params()
    parts = []
    for layer_id in FACILITY_LAYERS:
        found = catalog.layers.get(layer_id)
        if found is None or not viewer.can_read(found):
            continue
        layer = viewer.sees(found)
        pt = sql.SQL("{}::geography").format(_point(params, lon, lat))
        # a box in degrees first (index, LEAKPROOF &&): a degree is more than 100 km anywhere in Viet Nam
        box = sql.SQL("t.geom && ST_Expand({}, {})").format(_point(params, lon, lat), params.add(metres / 100_000))
        near = sql.SQL("{} AND ST_DWithin(t.geom::geography, {}, {})").format(box, pt, params.add(metres))
        label = sql.Identifier("t", "name") if layer.field("name") else sql.Identifier("t", layer.key or "fid")
        parts.append(
            sql.SQL(
                "SELECT {lid} AS layer, t.fid, {key}::text AS code, {label}::text AS name, "
                "ST_Distance(t.geom::geography, {pt}) AS d, ST_X(t.geom) AS x, ST_Y(t.geom) AS y "
                "FROM {table} t WHERE {where}"
            ).format(
                lid=sql.Literal(layer.id),
                key=sql.Identifier("t", layer.key or "fid"),
                label=label,
                pt=pt,
                table=sql.Identifier(SCHEMA, layer.table),
                where=rows.where(viewer, layer, params, extra=[near]),
            )
        )
    if not parts:
        return []
    found_rows = conn.execute(
        sql.SQL(" UNION ALL ").join(parts) + sql.SQL(" ORDER BY d LIMIT 25"), params.values
    ).fetchall()
    return [
        {
            "layer": layer_id,
            "title": {"vi": catalog.layers[layer_id].title.vi, "en": catalog.layers[layer_id].title.en},
            "fid": fid,
            "code": code,
            "name": name,
            "distance_m": round(float(dist), 1),
            "point": [x, y],
        }
        for layer_id, fid, code, name, dist, x, y in found_rows
    ]


def _labels(layer: Layer, props: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The catalog's labels of coded values (land use ODT → "Đất ở tại đô thị")."""
    out = {}
    for f in layer.fields:
        if f.values and props.get(f.name) is not None:
            hit = next((v.label for v in f.values if str(v.code) == str(props[f.name])), None)
            if hit is not None:
                out[f.name] = {"vi": hit.vi, "en": hit.en}
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def periods(conn: psycopg.Connection[Any]) -> list[str]:
    """The periods that have indicator values, newest first."""
    rows = conn.execute("SELECT DISTINCT period FROM gis_ioc.indicator_values ORDER BY period DESC").fetchall()
    return [r[0] for r in rows]
