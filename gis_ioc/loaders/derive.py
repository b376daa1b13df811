"""What a feature's geometry tells, so that a file need not carry it: its commune, its area, its length.

- ``commune_code``: the current commune (``layers.communes``, ``valid_to IS NULL``) that contains a point,
  holds most of a polygon's area or most of a line's length. A code the file gives is kept when it agrees
  (for a point: a commune it touches; for a line or polygon: the commune holding its representative
  point, or one holding at least :data:`GIVEN_SHARE` of it, as a feature on the border may be recorded in
  either); otherwise the row is an error naming both codes.
- ``area_m2`` (polygon layers) on the WGS 84 ellipsoid, through an equal-area projection (Lambert
  azimuthal equal-area on the ellipsoid keeps areas exactly), when the file has no area.
- ``length_m`` (line layers), geodesic on the WGS 84 ellipsoid segment by segment, when the file has none.

Geometries arrive in EPSG:4326 (longitude, latitude), after the quality gates' repairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from pyproj import Geod, Transformer

from gis_ioc.catalog.models import Layer
from gis_ioc.loaders.quality import Findings

COMMUNE_FIELD = "commune_code"
AREA_FIELD = "area_m2"
LENGTH_FIELD = "length_m"
#: A given commune code agrees with a line or polygon when its commune holds at least this share of it.
GIVEN_SHARE = 1 / 3
#: A point just outside every commune (a gap of the boundary data) takes the nearest one within this (degrees).
NEAREST_DEG = 0.0005
_GEOD = Geod(ellps="WGS84")
_EQUAL_AREA = Transformer.from_crs(
    "EPSG:4326", "+proj=laea +lat_0=20.8 +lon_0=106.2 +ellps=WGS84 +units=m +no_defs", always_xy=True
)


def derivable(layer: Layer) -> set[str]:
    """The layer's fields that geometry can give (so a file need not carry them)."""
    out = set()
    if layer.field(COMMUNE_FIELD) is not None and layer.field(COMMUNE_FIELD).type == "text":  # type: ignore[union-attr]
        out.add(COMMUNE_FIELD)
    area, length = layer.field(AREA_FIELD), layer.field(LENGTH_FIELD)
    if area is not None and area.type == "number" and "Polygon" in layer.geometry:
        out.add(AREA_FIELD)
    if length is not None and length.type == "number" and "Line" in layer.geometry:
        out.add(LENGTH_FIELD)
    return out


@dataclass(frozen=True)
class Communes:
    codes: list[str]
    names: list[str]
    geoms: np.ndarray
    tree: shapely.STRtree

    @classmethod
    def current(cls, conn: psycopg.Connection[Any]) -> Communes:
        rows = conn.execute(
            "SELECT code, name, ST_AsBinary(geom) FROM layers.communes WHERE valid_to IS NULL ORDER BY code"
        ).fetchall()
        geoms = np.asarray([shapely.from_wkb(bytes(r[2])) for r in rows], dtype=object)
        return cls([str(r[0]) for r in rows], [str(r[1]) for r in rows], geoms, shapely.STRtree(geoms))

    def label(self, j: int) -> str:
        return f"{self.codes[j]} ({self.names[j]})"


def _measure(parts: np.ndarray, lat0: float) -> np.ndarray:
    """Area (polygons) or length (lines) in comparable units: longitude scaled by cos(latitude)."""
    scale = math.cos(math.radians(lat0))
    scaled = shapely.transform(parts, lambda xy: xy * np.array([scale, 1.0]))
    kinds = shapely.get_type_id(parts)
    out: np.ndarray = np.where(np.isin(kinds, (3, 6)), shapely.area(scaled), shapely.length(scaled))
    return out


def _representative(geoms: np.ndarray) -> np.ndarray:
    """A point of each feature: itself, a point on its surface, or its middle (lines)."""
    kinds = shapely.get_type_id(geoms)
    out = np.empty(len(geoms), dtype=object)
    points, multipoints, lines = kinds == 0, kinds == 4, np.isin(kinds, (1, 2, 5))
    out[points] = geoms[points]
    out[multipoints] = shapely.get_geometry(geoms[multipoints], 0) if multipoints.any() else []
    rest = ~(points | multipoints)
    out[rest] = shapely.point_on_surface(geoms[rest]) if rest.any() else []
    if lines.any():  # the middle of the (first) line, on it
        out[lines] = shapely.line_interpolate_point(shapely.get_geometry(geoms[lines], 0), 0.5, normalized=True)
    return out


def commune_shares(
    geoms: np.ndarray, ok: np.ndarray, communes: Communes, given: np.ndarray | None = None
) -> tuple[np.ndarray, dict[int, dict[int, float]]]:
    """The index of each feature's commune (-1 when none) and, for features in several, their shares.

    Fast path: a feature whose representative point lies in the commune the file gives (``given``:
    commune index per row, -1 for none), or whose every vertex lies in the commune holding that point, is
    that commune's. The rest — features across a border, points on a boundary — are measured piece by
    piece (a border parcel against a commune of thousands of vertices costs about a third of a millisecond).
    """
    n = len(geoms)
    best = np.full(n, -1, dtype=np.int64)
    shares: dict[int, dict[int, float]] = {}
    idx = np.flatnonzero(ok)
    if not len(idx):
        return best, shares
    shapely.prepare(communes.geoms)
    points = _representative(geoms[idx])
    reps = np.column_stack([shapely.get_x(points), shapely.get_y(points)])
    coords, owner = shapely.get_coordinates(geoms[idx], return_index=True)
    bounds = shapely.bounds(communes.geoms)
    candidate = np.full(len(idx), -1, dtype=np.int64)
    for j in range(len(communes.geoms)):  # point-in-polygon on prepared communes: vectorised, indexed
        x0, y0, x1, y1 = bounds[j]
        near = np.flatnonzero(
            (candidate < 0) & (reps[:, 0] >= x0) & (reps[:, 0] <= x1) & (reps[:, 1] >= y0) & (reps[:, 1] <= y1)
        )
        if len(near):
            hit = shapely.contains_xy(communes.geoms[j], reps[near, 0], reps[near, 1])
            candidate[near[hit]] = j
    settled = (candidate >= 0) & (given[idx] == candidate) if given is not None else np.zeros(len(idx), dtype=bool)
    # whole: every vertex inside the candidate commune (features are small against communes)
    check = (candidate >= 0) & ~settled
    vertex_in = np.zeros(len(coords), dtype=bool)
    vertex_commune = np.where(check[owner], candidate[owner], -1)
    order = np.argsort(vertex_commune, kind="stable")
    starts = np.searchsorted(vertex_commune[order], np.arange(len(communes.geoms) + 1))
    for j in range(len(communes.geoms)):
        at = order[starts[j] : starts[j + 1]]
        if len(at):
            vertex_in[at] = shapely.contains_xy(communes.geoms[j], coords[at, 0], coords[at, 1])
    outside_vertices = np.bincount(owner[~vertex_in], minlength=len(idx))
    whole = settled | (check & (outside_vertices == 0))
    best[idx[whole]] = candidate[whole]
    border = idx[~whole]
    if len(border):
        feats, comms = communes.tree.query(geoms[border], predicate="intersects")
        feats = border[feats]
        counts = np.bincount(feats, minlength=n)
        single = counts[feats] == 1
        best[feats[single]] = comms[single]
        many = ~single
        if many.any():
            f_many, c_many = feats[many], comms[many]
            pieces = shapely.intersection(geoms[f_many], communes.geoms[c_many])
            lat0 = float(np.nanmean(shapely.bounds(geoms[f_many])[:, 1]))
            amounts = _measure(pieces, lat0)
            for f, c, a in zip(f_many.tolist(), c_many.tolist(), amounts.tolist(), strict=True):
                shares.setdefault(f, {})[c] = a
            for f, by in shares.items():
                total = sum(by.values())
                if total > 0:
                    shares[f] = {c: a / total for c, a in by.items()}
                else:  # a point on a border: every commune it touches holds it
                    shares[f] = dict.fromkeys(by, 1.0)
                best[f] = max(shares[f], key=lambda c: (shares[f][c], -c))
    lost = np.flatnonzero(ok & (best < 0))
    if len(lost):
        near_f, near_c = communes.tree.query_nearest(geoms[lost], max_distance=NEAREST_DEG)
        best[lost[near_f]] = near_c
    return best, shares


def fill(
    conn: psycopg.Connection[Any],
    layer: Layer,
    geoms: np.ndarray,
    ok: np.ndarray,
    casted: dict[str, list[Any]],
    findings: Findings,
) -> dict[str, str]:
    """Fill or check the derivable fields in ``casted`` (values per row); returns field → how it was derived."""
    wanted = derivable(layer)
    how: dict[str, str] = {}
    n = len(geoms)
    rows_ok = ok & ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if COMMUNE_FIELD in wanted:
        how.update(_fill_commune(conn, layer, geoms, rows_ok, casted, findings))
    if AREA_FIELD in wanted and _all_blank(casted.get(AREA_FIELD), n):
        casted[AREA_FIELD] = _rounded(area_m2(geoms, rows_ok))
        how[AREA_FIELD] = "diện tích tính trên ellipsoid WGS 84 / area on the WGS 84 ellipsoid"
    elif AREA_FIELD in wanted:
        how.update(_fill_blanks(casted, AREA_FIELD, area_m2(geoms, rows_ok)))
    if LENGTH_FIELD in wanted and _all_blank(casted.get(LENGTH_FIELD), n):
        casted[LENGTH_FIELD] = _rounded(length_m(geoms, rows_ok))
        how[LENGTH_FIELD] = "chiều dài trắc địa trên ellipsoid WGS 84 / geodesic length on the WGS 84 ellipsoid"
    elif LENGTH_FIELD in wanted:
        how.update(_fill_blanks(casted, LENGTH_FIELD, length_m(geoms, rows_ok)))
    for name in wanted:
        fld = layer.field(name)
        if fld is not None and fld.required and name in casted:
            blank = np.flatnonzero(np.array([v is None for v in casted[name]], dtype=bool) & rows_ok)
            findings.rows(
                "error",
                "required",
                blank + 1,
                f"{name} bắt buộc: tệp không có và không suy ra được từ hình học",
                name,
                en=f"{name} is required: not in the file and not derivable from the geometry",
            )
    return how


def _all_blank(values: list[Any] | None, n: int) -> bool:
    return values is None or all(v is None for v in values)


def _rounded(values: np.ndarray) -> list[Any]:
    return [None if not math.isfinite(v) else round(float(v), 2) for v in values.tolist()]


def _fill_blanks(casted: dict[str, list[Any]], name: str, computed: np.ndarray) -> dict[str, str]:
    values = casted[name]
    filled = 0
    for i, v in enumerate(values):
        if v is None and math.isfinite(computed[i]):
            values[i] = round(float(computed[i]), 2)
            filled += 1
    return {name: f"{filled} ô trống điền từ hình học / blanks filled from the geometry"} if filled else {}


def area_m2(geoms: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Areas in m² on the WGS 84 ellipsoid (NaN where the row failed the gates)."""
    out = np.full(len(geoms), np.nan)
    if ok.any():
        projected = shapely.transform(geoms[ok], lambda xy: np.column_stack(_EQUAL_AREA.transform(xy[:, 0], xy[:, 1])))
        out[ok] = shapely.area(projected)
    return out


def length_m(geoms: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Geodesic lengths in m on the WGS 84 ellipsoid (NaN where the row failed the gates)."""
    out = np.full(len(geoms), np.nan)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return out
    parts, part_of = shapely.get_parts(geoms[idx], return_index=True)
    coords, coord_part = shapely.get_coordinates(parts, return_index=True)
    same = coord_part[1:] == coord_part[:-1]
    _, _, dist = _GEOD.inv(coords[:-1, 0][same], coords[:-1, 1][same], coords[1:, 0][same], coords[1:, 1][same])
    per_part = np.bincount(coord_part[1:][same], weights=dist, minlength=len(parts))
    out[idx] = np.bincount(part_of, weights=per_part, minlength=len(idx))
    return out


def _fill_commune(
    conn: psycopg.Connection[Any],
    layer: Layer,
    geoms: np.ndarray,
    ok: np.ndarray,
    casted: dict[str, list[Any]],
    findings: Findings,
) -> dict[str, str]:
    communes = Communes.current(conn)
    if not communes.codes:
        return {}
    given = casted.get(COMMUNE_FIELD)
    index = {c: j for j, c in enumerate(communes.codes)}
    given_index = (
        np.fromiter((index.get(str(v).strip(), -1) if v is not None else -1 for v in given), dtype=np.int64)
        if given is not None
        else None
    )
    best, shares = commune_shares(geoms, ok, communes, given_index)
    derived: list[Any] = [communes.codes[j] if j >= 0 else None for j in best.tolist()]
    if given is None or all(v is None for v in given):
        casted[COMMUNE_FIELD] = derived
        return {COMMUNE_FIELD: "xã chứa đối tượng (ranh giới hiện hành) / the commune the feature lies in"}
    polygonal = "Point" not in layer.geometry
    out = list(given)
    filled = 0
    for i, code in enumerate(given):
        j = int(best[i])
        if not ok[i] or j < 0:
            continue
        if code is None:
            out[i] = derived[i]
            filled += 1
            continue
        code_text = str(code).strip()
        k = index.get(code_text)
        if k == j:
            continue
        by = shares.get(i)
        if k is not None and by is not None and by.get(k, 0.0) >= (GIVEN_SHARE if polygonal else 1.0):
            continue
        findings.add(
            "error",
            "commune_mismatch",
            f"mã xã {code_text!r} trong tệp khác với xã chứa đối tượng: {communes.label(j)}",
            i + 1,
            COMMUNE_FIELD,
            en=f"commune code {code_text!r} in the file differs from the commune the feature lies in: "
            f"{communes.label(j)}",
        )
    casted[COMMUNE_FIELD] = out
    return {COMMUNE_FIELD: f"{filled} ô trống điền từ hình học / blanks filled from the geometry"} if filled else {}
