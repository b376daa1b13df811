"""Geometry helpers for the demo generator: work in metres (UTM 48N), keep everything inside its commune."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

#: WGS 84 / UTM 48N: metric work for synthetic data (not a VN-2000 survey CRS; accuracy is not at stake).
METRIC_CRS = "EPSG:32648"
_TO_METRIC = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
_TO_LONLAT = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)
#: Demo features keep this far (m) inside their commune's boundary, so they are inside after rounding.
MARGIN_M = 3.0


def _apply(transformer: Transformer, geoms: Any) -> Any:
    def fn(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def to_metric(geoms: Any) -> Any:
    return _apply(_TO_METRIC, geoms)


def to_lonlat(geoms: Any) -> Any:
    return _apply(_TO_LONLAT, geoms)


@dataclass
class Commune:
    """A commune ready for placing features: its polygon in metres, shrunk by the margin."""

    code: str
    name: str
    short_name: str
    is_ward: bool
    lonlat: BaseGeometry
    inner: BaseGeometry  # metric, shrunk by MARGIN_M, prepared
    centre: tuple[float, float]  # metric, a point inside
    radius: float  # sqrt(area / pi), metres

    @property
    def area(self) -> float:
        return float(self.inner.area)


def prepare_commune(code: str, name: str, short_name: str, level: str, geom_lonlat: BaseGeometry) -> Commune:
    metric = to_metric(geom_lonlat)
    inner = metric.buffer(-MARGIN_M)
    # the centre: a point inside the largest part, near its middle
    largest = max(getattr(inner, "geoms", [inner]), key=lambda g: g.area)
    centre = largest.point_on_surface() if not largest.contains(largest.centroid) else largest.centroid
    shapely.prepare(inner)
    return Commune(
        code,
        name,
        short_name,
        level == "phường",
        geom_lonlat,
        inner,
        (float(centre.x), float(centre.y)),
        float(np.sqrt(metric.area / np.pi)),
    )


def points_inside(rng: np.random.Generator, commune: Commune, n: int, spread: float = 0.35) -> NDArray[np.float64]:
    """n points inside the commune, gathered around its centre (normal spread in commune radii)."""
    out = np.empty((0, 2))
    cx, cy = commune.centre
    scale = spread * commune.radius
    for _ in range(200):
        if len(out) >= n:
            break
        k = max(4 * (n - len(out)), 16)
        xy = rng.normal([cx, cy], scale, size=(k, 2))
        keep = shapely.contains_xy(commune.inner, xy[:, 0], xy[:, 1])
        out = np.vstack([out, xy[keep]])
        scale = max(scale, 0.6 * commune.radius)  # widen for thin or odd-shaped communes
    if len(out) < n:
        raise RuntimeError(f"could not place {n} points in commune {commune.code}")
    return out[:n]


def grid_cells(commune: Commune, step: float, phase: tuple[float, float]) -> NDArray[np.float64]:
    """Lower-left corners of the step x step cells lying wholly inside the commune."""
    minx, miny, maxx, maxy = commune.inner.bounds
    x0 = np.floor((minx - phase[0]) / step) * step + phase[0]
    y0 = np.floor((miny - phase[1]) / step) * step + phase[1]
    xs = np.arange(x0, maxx, step)
    ys = np.arange(y0, maxy, step)
    gx, gy = np.meshgrid(xs, ys)
    x, y = gx.ravel(), gy.ravel()
    keep = np.ones(len(x), dtype=bool)
    for dx, dy in ((0, 0), (step, 0), (0, step), (step, step), (step / 2, step / 2)):
        keep &= shapely.contains_xy(commune.inner, x + dx, y + dy)
    x, y = x[keep], y[keep]
    boxes = shapely.box(x, y, x + step, y + step)
    exact = shapely.contains_properly(commune.inner, boxes)
    return np.column_stack([x[exact], y[exact]])


def clip_line(commune: Commune, line: BaseGeometry, anchor: tuple[float, float] | None = None) -> BaseGeometry | None:
    """The line's part inside the commune (the piece nearest the anchor, if given), or None."""
    piece = line.intersection(commune.inner)
    if piece.is_empty:
        return None
    parts = [g for g in getattr(piece, "geoms", [piece]) if g.geom_type == "LineString" and g.length > 20]
    if not parts:
        return None
    if anchor is not None:
        point = shapely.Point(anchor)
        parts = [min(parts, key=lambda g: g.distance(point))]
    return shapely.MultiLineString(parts)


def ewkb(geom: Any) -> str:
    """Hex EWKB with SRID 4326, as COPY wants it for a geometry column."""
    return str(shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True))


def ewkb_many(geoms: Any) -> list[str]:
    return [str(h) for h in shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)]
