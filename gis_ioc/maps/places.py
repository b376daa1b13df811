"""What the web map asks PostGIS: find a commune by name (with or without diacritics) or code, and
what is at a point (the commune, the parcel, facilities nearby)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.auth import access
from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.errors import InvalidInput

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


def _public_fields(layer: Layer) -> list[str]:
    return [f.name for f in layer.fields if not f.personal]


def identify(
    conn: psycopg.Connection[Any], catalog: Catalog, lon: float, lat: float, metres: float = 500.0
) -> dict[str, Any]:
    """The commune and the parcel at a point (CRS84), and the facilities within ``metres``, nearest first."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is not a longitude, latitude in degrees")
    if not 0 < metres <= MAX_NEARBY_METRES:
        raise InvalidInput(f"radius {metres} must be above 0 and at most {MAX_NEARBY_METRES:g} metres")
    point = {"lon": lon, "lat": lat, "m": metres}
    pt = sql.SQL("ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)")
    answer: dict[str, Any] = {"point": [lon, lat], "radius_m": metres, "commune": None, "parcel": None, "nearby": []}
    for key, layer_id, extra in (("commune", "communes", "t.valid_to IS NULL AND "), ("parcel", "land_parcels", "")):
        layer = catalog.layers.get(layer_id)
        if layer is None or not access.can_read(CURRENT.get(), layer):
            continue
        fields = _public_fields(layer)
        row = conn.execute(
            sql.SQL(
                "SELECT t.fid, {cols} FROM {table} t "
                "WHERE {extra}t.approval = 'approved' AND ST_Intersects(t.geom, {pt}) LIMIT 1"
            ).format(
                cols=sql.SQL(", ").join(sql.Identifier("t", f) for f in fields),
                table=sql.Identifier(SCHEMA, layer.table),
                extra=sql.SQL(extra),
                pt=pt,
            ),
            point,
        ).fetchone()
        if row is not None:
            props = {f: _jsonable(v) for f, v in zip(fields, row[1:], strict=True)}
            answer[key] = {
                "layer": layer.id,
                "title": {"vi": layer.title.vi, "en": layer.title.en},
                "fid": row[0],
                "properties": props,
                "labels": _labels(layer, props),
            }
    parts = []
    for layer_id in FACILITY_LAYERS:
        layer = catalog.layers.get(layer_id)
        if layer is None or not access.can_read(CURRENT.get(), layer):
            continue
        label = sql.Identifier("t", "name") if layer.field("name") else sql.Identifier("t", layer.key or "fid")
        parts.append(
            sql.SQL(
                "SELECT {lid} AS layer, t.fid, {key}::text AS code, {label}::text AS name, "
                "ST_Distance(t.geom::geography, {pt}::geography) AS d, ST_X(t.geom) AS x, ST_Y(t.geom) AS y "
                "FROM {table} t WHERE t.approval = 'approved' "
                "AND ST_DWithin(t.geom::geography, {pt}::geography, %(m)s)"
            ).format(
                lid=sql.Literal(layer.id),
                key=sql.Identifier("t", layer.key or "fid"),
                label=label,
                table=sql.Identifier(SCHEMA, layer.table),
                pt=pt,
            )
        )
    if parts:
        rows = conn.execute(sql.SQL(" UNION ALL ").join(parts) + sql.SQL(" ORDER BY d LIMIT 25"), point).fetchall()
        for layer_id, fid, code, name, dist, x, y in rows:
            layer = catalog.layers[layer_id]
            answer["nearby"].append(
                {
                    "layer": layer_id,
                    "title": {"vi": layer.title.vi, "en": layer.title.en},
                    "fid": fid,
                    "code": code,
                    "name": name,
                    "distance_m": round(float(dist), 1),
                    "point": [x, y],
                }
            )
    return answer


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
