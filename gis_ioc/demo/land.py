"""Demo land parcels and buildings: non-overlapping rectangles on a grid inside each commune.

Each commune is laid out in rings around its centre: residential and services near the centre,
gardens and aquaculture around them, paddy fields outside. Buildings stand inside parcels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from gis_ioc.demo.geometry import Commune, ewkb_many, grid_cells, to_lonlat

CELL_M = 70.0  # one parcel per 70 m cell at most

# land use by ring (share of the commune's parcels, nearest the centre first)
_RINGS: list[tuple[float, list[str], list[float]]] = [
    (0.47, ["RES", "TMD", "SKC", "TSC", "DGD", "DYT", "DGT"], [0.88, 0.03, 0.03, 0.01, 0.02, 0.01, 0.02]),
    (0.60, ["CLN", "HNK", "NTS", "SKC", "NTD"], [0.40, 0.30, 0.20, 0.06, 0.04]),
    (1.01, ["LUC", "LUK", "NTS", "DTL", "HNK", "BCS"], [0.70, 0.10, 0.08, 0.05, 0.04, 0.03]),
]
# price table (VND/m2) before the location factor; None: land without a price in the table
_PRICE = {
    "ODT": 18e6,
    "ONT": 4.5e6,
    "TMD": 6e6,
    "SKC": 2.5e6,
    "LUC": 65e3,
    "LUK": 60e3,
    "HNK": 70e3,
    "CLN": 85e3,
    "NTS": 60e3,
}
_BUILDABLE = ("ONT", "ODT", "TMD", "SKC", "TSC", "DGD", "DYT")


@dataclass
class Parcels:
    """Parcels of all communes, as arrays (metric rectangles x, y, w, h)."""

    commune: NDArray[Any]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    w: NDArray[np.float64]
    h: NDArray[np.float64]
    land_use: NDArray[Any]
    code: NDArray[Any]

    def __len__(self) -> int:
        return len(self.x)


def _land_use(rng: np.random.Generator, commune: Commune, dist: NDArray[np.float64]) -> NDArray[Any]:
    n = len(dist)
    rank = np.empty(n)
    rank[np.argsort(dist, kind="stable")] = np.arange(n) / max(n, 1)
    out = np.empty(n, dtype=object)
    lower = 0.0
    for upper, uses, weights in _RINGS:
        sel = (rank >= lower) & (rank < upper)
        out[sel] = rng.choice(uses, size=int(sel.sum()), p=weights)
        lower = upper
    out[out == "RES"] = "ODT" if commune.is_ward else "ONT"
    return out


def make_parcels(rng: np.random.Generator, communes: list[Commune], total: int) -> Parcels:
    areas = np.array([c.area for c in communes])
    quota = np.floor(total * areas / areas.sum()).astype(int)
    quota[np.argsort(-areas)[: total - quota.sum()]] += 1
    cols: dict[str, list[NDArray[Any]]] = {k: [] for k in ("commune", "x", "y", "w", "h", "land_use", "code")}
    for commune, n in zip(communes, quota, strict=True):
        cells = grid_cells(commune, CELL_M, phase=(rng.uniform(0, CELL_M), rng.uniform(0, CELL_M)))
        if len(cells) < n:
            n = len(cells)
        cells = cells[rng.choice(len(cells), size=n, replace=False)]
        w = CELL_M * rng.uniform(0.55, 0.95, n)
        h = CELL_M * rng.uniform(0.55, 0.95, n)
        x = cells[:, 0] + rng.uniform(0, 1, n) * (CELL_M - w)
        y = cells[:, 1] + rng.uniform(0, 1, n) * (CELL_M - h)
        dist = np.hypot(x + w / 2 - commune.centre[0], y + h / 2 - commune.centre[1])
        # map sheets: 1 km squares numbered in reading order; parcels numbered within each sheet
        minx, _, _, maxy = commune.inner.bounds
        sx = ((x - minx) // 1000).astype(int)
        sy = ((maxy - y) // 1000).astype(int)
        sheet_key = sy * 1000 + sx
        _, sheet = np.unique(sheet_key, return_inverse=True)
        order = np.lexsort((x, -y, sheet))
        number = np.empty(n, dtype=int)
        counts = np.bincount(sheet[order])
        number[order] = np.concatenate([np.arange(1, c + 1) for c in counts]) if n else []
        cols["commune"].append(np.full(n, commune.code, dtype=object))
        cols["x"].append(x)
        cols["y"].append(y)
        cols["w"].append(w)
        cols["h"].append(h)
        cols["land_use"].append(_land_use(rng, commune, dist))
        cols["code"].append(
            np.array([f"{commune.code}-{s + 1:03d}-{k:04d}" for s, k in zip(sheet, number, strict=True)], dtype=object)
        )
    return Parcels(**{k: np.concatenate(v) for k, v in cols.items()})


def parcel_rows(rng: np.random.Generator, parcels: Parcels, ward_codes: set[str]) -> Iterator[tuple[Any, ...]]:
    """Rows for layers.land_parcels (without load_id/is_demo, added by the caller)."""
    n = len(parcels)
    rects = shapely.box(parcels.x, parcels.y, parcels.x + parcels.w, parcels.y + parcels.h)
    geoms = shapely.multipolygons(to_lonlat(rects), indices=np.arange(n))
    hexes = ewkb_many(geoms)
    area = np.round(parcels.w * parcels.h, 1)
    status = rng.choice(["certified", "pending", "not_certified", "disputed"], size=n, p=[0.85, 0.08, 0.05, 0.02])
    owner = rng.choice(["household", "organisation", "commune_people_committee"], size=n, p=[0.86, 0.06, 0.08])
    location = rng.uniform(0.7, 1.4, n)
    change = rng.random(n) < 0.06
    planned_alt = rng.choice(["ONT", "ODT", "SKC", "TMD", "DGT", "CLN"], size=n)
    survey_day = rng.integers(0, (date(2025, 12, 31) - date(2015, 1, 1)).days, n)
    ward = np.isin(parcels.commune, list(ward_codes))
    for i in range(n):
        use = parcels.land_use[i]
        base = _PRICE.get(use)
        price = None if base is None else float(round(base * location[i] * (2.2 if ward[i] else 1.0), -3))
        owner_i = owner[i] if use not in ("DGT", "DTL", "NTD", "BCS") else "commune_people_committee"
        planned = planned_alt[i] if change[i] else use
        yield (
            parcels.code[i],
            parcels.commune[i],
            int(parcels.code[i][6:9]),
            int(parcels.code[i][10:]),
            use,
            float(area[i]),
            price,
            status[i],
            planned,
            owner_i,
            date.fromordinal(date(2015, 1, 1).toordinal() + int(survey_day[i])),
            hexes[i],
        )


PARCEL_COLUMNS = [
    "parcel_code",
    "commune_code",
    "map_sheet",
    "parcel_number",
    "land_use",
    "area_m2",
    "land_price",
    "legal_status",
    "planned_use",
    "owner_type",
    "survey_date",
    "geom",
]

BUILDING_COLUMNS = [
    "building_code",
    "commune_code",
    "parcel_code",
    "building_type",
    "floors",
    "dwellings",
    "households",
    "footprint_m2",
    "year_built",
    "geom",
]


def building_rows(rng: np.random.Generator, parcels: Parcels, total: int) -> Iterator[tuple[Any, ...]]:
    """One building inside each chosen parcel: buildable land first, then gardens."""
    buildable = np.flatnonzero(np.isin(parcels.land_use, _BUILDABLE))
    gardens = np.flatnonzero(np.isin(parcels.land_use, ("CLN", "HNK")))
    chosen = rng.permutation(buildable)[:total]
    if len(chosen) < total:
        chosen = np.concatenate([chosen, rng.permutation(gardens)[: total - len(chosen)]])
    chosen = np.sort(chosen)
    n = len(chosen)
    fw, fh = rng.uniform(0.4, 0.75, n), rng.uniform(0.4, 0.75, n)
    w, h = parcels.w[chosen] * fw, parcels.h[chosen] * fh
    x = parcels.x[chosen] + rng.uniform(0.1, 0.9, n) * (parcels.w[chosen] - w)
    y = parcels.y[chosen] + rng.uniform(0.1, 0.9, n) * (parcels.h[chosen] - h)
    geoms = shapely.multipolygons(to_lonlat(shapely.box(x, y, x + w, y + h)), indices=np.arange(n))
    hexes = ewkb_many(geoms)
    year = rng.integers(1975, 2026, n)
    u = rng.random(n)
    for i, p in enumerate(chosen):
        use = parcels.land_use[p]
        if use == "ODT":
            kind = "apartment" if u[i] < 0.03 else ("row_house" if u[i] < 0.6 else "detached_house")
        elif use in ("ONT", "CLN", "HNK"):
            kind = "row_house" if u[i] < 0.1 else "detached_house"
        elif use == "TMD":
            kind = "commercial"
        elif use == "SKC":
            kind = "industrial"
        else:
            kind = "public"
        if kind == "apartment":
            floors = int(rng.integers(9, 26))
            dwellings = floors * int(rng.integers(6, 12))
        elif kind in ("row_house", "detached_house"):
            floors = int(rng.integers(3, 6)) if kind == "row_house" else int(rng.integers(1, 4))
            dwellings = 1
        else:
            floors = int(rng.integers(1, 6))
            dwellings = 0
        households = round(dwellings * rng.uniform(0.85, 1.0)) if dwellings > 1 else dwellings
        if dwellings == 1 and rng.random() < 0.12:
            households = 2  # two generations registered as two households
        yield (
            f"{parcels.code[p]}-B",
            parcels.commune[p],
            parcels.code[p],
            kind,
            floors,
            dwellings,
            households,
            float(round(w[i] * h[i], 1)),
            int(year[i]),
            hexes[i],
        )
