"""Demo line networks: roads, power lines, water pipes, drains, cut into one piece per commune."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis_ioc.demo.geometry import Commune, clip_line, ewkb, to_lonlat, to_metric

# Approximate courses of the national roads through the province (lon, lat), for demo purposes only.
NATIONAL_ROADS = {
    "QL5": [(105.93, 20.975), (106.02, 20.955), (106.12, 20.94), (106.20, 20.93)],
    "QL39": [
        (106.03, 20.93),
        (106.04, 20.80),
        (106.05, 20.67),
        (106.20, 20.55),
        (106.34, 20.46),
        (106.47, 20.53),
        (106.58, 20.57),
    ],
    "QL38": [(106.05, 20.67), (106.13, 20.72), (106.22, 20.78)],
    "QL10": [(106.18, 20.38), (106.30, 20.43), (106.36, 20.47), (106.44, 20.56), (106.50, 20.63)],
}
# 110 kV corridors between the main substations (demo)
HV_LINES = {
    "110kV-PN-HY": [(106.06, 20.93), (106.05, 20.80), (106.05, 20.66)],
    "110kV-HY-TB": [(106.06, 20.66), (106.20, 20.56), (106.33, 20.45)],
    "110kV-TB-TH": [(106.34, 20.45), (106.47, 20.52), (106.56, 20.50)],
    "220kV-TB-HH": [(106.33, 20.45), (106.28, 20.55), (106.22, 20.65), (106.18, 20.74)],
}


def _spokes(rng: np.random.Generator, commune: Commune, k: int, offset: float = 0.0) -> list[BaseGeometry]:
    cx, cy = commune.centre
    angles = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.normal(0, 0.15, k)
    out = []
    for a in angles:
        ox, oy = -np.sin(a) * offset, np.cos(a) * offset
        end = (cx + ox + np.cos(a) * 3 * commune.radius, cy + oy + np.sin(a) * 3 * commune.radius)
        start = (cx + ox, cy + oy)
        line = clip_line(commune, shapely.LineString([start, end]), anchor=start)
        if line is not None:
            out.append(line)
    return out


def _lanes(rng: np.random.Generator, commune: Commune, k: int) -> list[BaseGeometry]:
    cx, cy = commune.centre
    out: list[BaseGeometry] = []
    for _ in range(k * 3):
        if len(out) >= k:
            break
        x, y = rng.normal([cx, cy], 0.3 * commune.radius)
        a = rng.uniform(0, np.pi)
        length = rng.uniform(200, 700)
        start = (x, y)
        line = clip_line(
            commune, shapely.LineString([start, (x + np.cos(a) * length, y + np.sin(a) * length)]), anchor=start
        )
        if line is not None:
            out.append(line)
    return out


def _corridors(
    communes: list[Commune], routes: dict[str, list[tuple[float, float]]]
) -> dict[str, list[tuple[str, BaseGeometry]]]:
    out: dict[str, list[tuple[str, BaseGeometry]]] = {}
    for name, coords in routes.items():
        line = to_metric(shapely.LineString(coords))
        for commune in communes:
            piece = clip_line(commune, line)
            if piece is not None:
                out.setdefault(commune.code, []).append((name, piece))
    return out


def _ll(geom: BaseGeometry) -> str:
    return ewkb(to_lonlat(geom))


ROAD_COLUMNS = ["road_code", "commune_code", "name", "road_class", "surface", "width_m", "lanes", "length_m", "geom"]


def road_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    national = _corridors(communes, NATIONAL_ROADS)
    for commune in communes:
        k = 0
        for name, line in national.get(commune.code, []):
            k += 1
            yield (
                f"{commune.code}-R{k:03d}",
                commune.code,
                f"Quốc lộ {name[2:]}",
                "national",
                "asphalt",
                float(rng.choice([12.0, 15.0, 20.0])),
                int(rng.choice([4, 6])),
                round(line.length, 1),
                _ll(line),
            )
        main_class = "urban" if commune.is_ward else "commune"
        for i, line in enumerate(_spokes(rng, commune, int(rng.integers(5, 9)))):
            k += 1
            road_class = "provincial" if i == 0 and not commune.is_ward else main_class
            yield (
                f"{commune.code}-R{k:03d}",
                commune.code,
                f"Đường {'tỉnh' if road_class == 'provincial' else 'trục'} {commune.short_name} {i + 1}",
                road_class,
                "asphalt" if road_class != "commune" else str(rng.choice(["asphalt", "concrete"])),
                float(rng.choice([7.0, 9.0, 12.0])),
                2,
                round(line.length, 1),
                _ll(line),
            )
        for line in _lanes(rng, commune, int(rng.integers(12, 25))):
            k += 1
            yield (
                f"{commune.code}-R{k:03d}",
                commune.code,
                None,
                "village",
                str(rng.choice(["concrete", "concrete", "gravel", "earth"])),
                float(rng.choice([3.0, 3.5, 4.0])),
                1,
                round(line.length, 1),
                _ll(line),
            )


POWER_LINE_COLUMNS = ["line_code", "commune_code", "voltage_kv", "underground", "length_m", "geom"]


def power_line_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    high = _corridors(communes, HV_LINES)
    for commune in communes:
        k = 0
        for name, line in high.get(commune.code, []):
            k += 1
            yield (
                f"{commune.code}-P{k:03d}",
                commune.code,
                int(name.split("kV")[0]),
                False,
                round(line.length, 1),
                _ll(line),
            )
        for line in _spokes(rng, commune, int(rng.integers(3, 5)), offset=25.0):
            k += 1
            yield (
                f"{commune.code}-P{k:03d}",
                commune.code,
                int(rng.choice([22, 35], p=[0.8, 0.2])),
                bool(commune.is_ward and rng.random() < 0.5),
                round(line.length, 1),
                _ll(line),
            )
        for line in _lanes(rng, commune, int(rng.integers(4, 9))):
            k += 1
            yield (f"{commune.code}-P{k:03d}", commune.code, 0, False, round(line.length, 1), _ll(line))


WATER_PIPE_COLUMNS = ["pipe_code", "commune_code", "diameter_mm", "material", "installed_year", "length_m", "geom"]


def water_pipe_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        lines = _spokes(rng, commune, int(rng.integers(3, 6)), offset=-15.0) + _lanes(rng, commune, 5)
        for k, line in enumerate(lines, start=1):
            trunk = k <= 2
            yield (
                f"{commune.code}-W{k:03d}",
                commune.code,
                int(rng.choice([200, 300, 400]) if trunk else rng.choice([63, 90, 110, 160])),
                str(rng.choice(["ductile_iron", "hdpe"]) if trunk else rng.choice(["hdpe", "upvc"])),
                int(rng.integers(1995, 2026)),
                round(line.length, 1),
                _ll(line),
            )


DRAIN_COLUMNS = ["drain_code", "commune_code", "drain_type", "size_mm", "length_m", "geom"]


def drain_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        lines = _spokes(rng, commune, int(rng.integers(2, 5)), offset=8.0) + _lanes(rng, commune, 4)
        for k, line in enumerate(lines, start=1):
            kind = str(
                rng.choice(["box_culvert", "pipe"])
                if commune.is_ward
                else rng.choice(["open_ditch", "pipe"], p=[0.7, 0.3])
            )
            size = int(rng.choice([400, 600, 800, 1000, 1500]))
            yield (f"{commune.code}-D{k:03d}", commune.code, kind, size, round(line.length, 1), _ll(line))
