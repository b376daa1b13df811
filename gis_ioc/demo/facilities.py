"""Demo point features, green spaces, planning zones, IoT devices and their readings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import shapely

from gis_ioc.demo.geometry import Commune, ewkb, points_inside, to_lonlat

# Communes that held the former district seats and the two former provincial capitals get the
# larger facilities (demo: chosen as the wards plus every eighth commune).
_HOSPITAL_WARDS = {"11953": "provincial_hospital", "13225": "provincial_hospital"}


def _major(commune: Commune, index: int) -> bool:
    return commune.is_ward or index % 8 == 0


def _points(rng: np.random.Generator, commune: Commune, n: int, spread: float = 0.35) -> list[str]:
    xy = points_inside(rng, commune, n, spread)
    return [ewkb(to_lonlat(shapely.Point(x, y))) for x, y in xy]


SCHOOL_COLUMNS = [
    "school_code",
    "commune_code",
    "name",
    "level",
    "ownership",
    "pupils",
    "classes",
    "capacity",
    "national_standard",
    "geom",
]
_SCHOOL_NAMES = {
    "preschool": "Trường Mầm non",
    "primary": "Trường Tiểu học",
    "lower_secondary": "Trường THCS",
    "upper_secondary": "Trường THPT",
}


def school_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        # A commune of 2025 joins three or four former communes, each with its own primary school and kindergarten.
        levels = (
            ["preschool"] * int(rng.integers(2, 5))
            + ["primary"] * int(rng.integers(3, 6))
            + ["lower_secondary"] * int(rng.integers(1, 3))
        )
        if _major(commune, i) or rng.random() < 0.3:
            levels.append("upper_secondary")
        for k, (level, geom) in enumerate(zip(levels, _points(rng, commune, len(levels)), strict=True), start=1):
            classes = int(rng.integers(8, 40))
            pupils = classes * int(rng.integers(25, 42))
            suffix = f" số {k}" if levels.count(level) > 1 else ""
            yield (
                f"{commune.code}-S{k:02d}",
                commune.code,
                f"{_SCHOOL_NAMES[level]} {commune.short_name}{suffix}",
                level,
                "private" if rng.random() < 0.07 else "public",
                pupils,
                classes,
                int(pupils * rng.uniform(0.9, 1.25)),
                bool(rng.random() < 0.86),
                geom,
            )


HEALTH_COLUMNS = ["facility_code", "commune_code", "name", "kind", "beds", "doctors", "emergency", "geom"]


def health_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        kinds = ["commune_station"]
        if commune.code in _HOSPITAL_WARDS:
            kinds += ["provincial_hospital", "provincial_hospital", "health_centre"]
        elif _major(commune, i):
            kinds += ["regional_hospital" if i % 3 == 0 else "health_centre"]
        kinds += ["private_clinic"] * int(rng.integers(0, 4 if commune.is_ward else 2))
        for k, (kind, geom) in enumerate(zip(kinds, _points(rng, commune, len(kinds), 0.25), strict=True), start=1):
            beds, doctors = {
                "provincial_hospital": (int(rng.integers(500, 1200)), int(rng.integers(150, 400))),
                "regional_hospital": (int(rng.integers(150, 400)), int(rng.integers(40, 110))),
                "health_centre": (int(rng.integers(80, 250)), int(rng.integers(20, 60))),
                "commune_station": (int(rng.integers(3, 8)), int(rng.integers(1, 3))),
                "private_clinic": (int(rng.integers(0, 10)), int(rng.integers(1, 5))),
            }[kind]
            name = {
                "provincial_hospital": f"Bệnh viện tỉnh cơ sở {commune.short_name} {k}",
                "regional_hospital": f"Bệnh viện Đa khoa khu vực {commune.short_name}",
                "health_centre": f"Trung tâm Y tế khu vực {commune.short_name}",
                "commune_station": f"Trạm Y tế {commune.short_name}",
                "private_clinic": f"Phòng khám tư nhân {commune.short_name} {k}",
            }[kind]
            yield (
                f"{commune.code}-H{k:02d}",
                commune.code,
                name,
                kind,
                beds,
                doctors,
                kind in ("provincial_hospital", "regional_hospital", "health_centre"),
                geom,
            )


POLICE_COLUMNS = ["post_code", "commune_code", "name", "kind", "officers", "phone", "geom"]


def police_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        kinds = ["commune_police"] + (["traffic_station"] if i % 10 == 0 else [])
        for k, (kind, geom) in enumerate(zip(kinds, _points(rng, commune, len(kinds), 0.15), strict=True), start=1):
            name = (
                f"Công an {'phường' if commune.is_ward else 'xã'} {commune.short_name}"
                if kind == "commune_police"
                else f"Trạm CSGT {commune.short_name}"
            )
            yield (
                f"{commune.code}-CA{k}",
                commune.code,
                name,
                kind,
                int(rng.integers(12, 45)),
                f"0221{int(rng.integers(3000000, 3999999))}",
                geom,
            )


FIRE_COLUMNS = ["station_code", "commune_code", "name", "engines", "phone", "geom"]


def fire_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        if not (commune.is_ward or i % 9 == 0):
            continue
        (geom,) = _points(rng, commune, 1, 0.2)
        yield (
            f"{commune.code}-F1",
            commune.code,
            f"Đội Cảnh sát PCCC và CNCH khu vực {commune.short_name}",
            int(rng.integers(2, 8)),
            "114",
            geom,
        )


SUBSTATION_COLUMNS = ["station_code", "commune_code", "name", "voltage_kv", "capacity_kva", "geom"]


def substation_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        n = int(rng.integers(2, 6)) + (1 if _major(commune, i) else 0)
        for k, geom in enumerate(_points(rng, commune, n, 0.4), start=1):
            big = k == 1 and _major(commune, i)
            yield (
                f"{commune.code}-T{k:02d}",
                commune.code,
                f"Trạm {'110 kV' if big else 'biến áp'} {commune.short_name} {k}",
                110 if big else 22,
                float(rng.choice([40000, 63000])) if big else float(rng.choice([160, 250, 400, 560, 630])),
                geom,
            )


TREE_COLUMNS = ["tree_code", "commune_code", "species", "height_m", "condition", "planted_year", "geom"]
_SPECIES = ["Bằng lăng", "Sấu", "Xà cừ", "Phượng vĩ", "Long não", "Muồng hoàng yến", "Sao đen", "Hoa sữa"]


def tree_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        n = int(rng.integers(25, 45)) if commune.is_ward else int(rng.integers(5, 12))
        for k, geom in enumerate(_points(rng, commune, n, 0.2), start=1):
            yield (
                f"{commune.code}-C{k:03d}",
                commune.code,
                str(rng.choice(_SPECIES)),
                float(round(rng.uniform(3, 22), 1)),
                str(rng.choice(["good", "fair", "hazardous"], p=[0.8, 0.16, 0.04])),
                int(rng.integers(1980, 2025)),
                geom,
            )


GREEN_COLUMNS = ["space_code", "commune_code", "name", "kind", "area_m2", "geom"]


def green_space_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        n = int(rng.integers(1, 4)) if commune.is_ward else int(rng.random() < 0.4)
        if n == 0:
            continue
        for k, (x, y) in enumerate(points_inside(rng, commune, n, 0.3), start=1):
            shape = shapely.Point(x, y).buffer(rng.uniform(40, 160), quad_segs=6).intersection(commune.inner)
            if shape.is_empty or shape.area < 500:
                continue
            polys = [g for g in getattr(shape, "geoms", [shape]) if g.geom_type == "Polygon"]
            kind = str(rng.choice(["park", "garden", "green_strip"], p=[0.5, 0.35, 0.15]))
            name = {"park": "Công viên", "garden": "Vườn hoa", "green_strip": "Dải cây xanh"}[kind]
            yield (
                f"{commune.code}-G{k}",
                commune.code,
                f"{name} {commune.short_name} {k}",
                kind,
                float(round(shape.area, 1)),
                ewkb(to_lonlat(shapely.MultiPolygon(polys))),
            )


SHELTER_COLUMNS = ["shelter_code", "commune_code", "name", "capacity", "kind", "flood_safe", "geom"]


def shelter_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        n = int(rng.integers(2, 5))
        for k, geom in enumerate(_points(rng, commune, n, 0.3), start=1):
            kind = str(rng.choice(["school", "community_hall", "office", "high_ground"], p=[0.45, 0.35, 0.15, 0.05]))
            label = {
                "school": "Điểm trường",
                "community_hall": "Nhà văn hóa",
                "office": "Trụ sở",
                "high_ground": "Điểm cao",
            }[kind]
            yield (
                f"{commune.code}-E{k}",
                commune.code,
                f"{label} {commune.short_name} {k}",
                int(rng.integers(150, 1500)),
                kind,
                bool(rng.random() < 0.7),
                geom,
            )


PLANNING_COLUMNS = [
    "zone_code",
    "commune_code",
    "plan_name",
    "plan_level",
    "decision_number",
    "approval_date",
    "approving_authority",
    "zoning",
    "scale",
    "geom",
]
_PLANS = [
    ("zoning", "residential", "Khu đô thị mới"),
    ("detailed", "industrial", "Cụm công nghiệp"),
    ("detailed", "residential", "Khu dân cư mới"),
    ("detailed", "commercial", "Khu thương mại dịch vụ"),
    ("zoning", "mixed", "Phân khu đô thị"),
    ("detailed", "green", "Công viên cây xanh"),
    ("detailed", "public_services", "Trung tâm hành chính"),
    ("master", "mixed", "Quy hoạch chung đô thị"),
]


def planning_rows(rng: np.random.Generator, communes: list[Commune], count: int = 12) -> Iterator[tuple[Any, ...]]:
    chosen = [c for c in communes if c.is_ward] + [c for i, c in enumerate(communes) if not c.is_ward and i % 9 == 4]
    for k, commune in enumerate(chosen[:count], start=1):
        level, zoning, label = _PLANS[(k - 1) % len(_PLANS)]
        ((x, y),) = points_inside(rng, commune, 1, 0.3)
        size = {"master": 0.6, "zoning": 0.35, "detailed": 0.15}[level] * commune.radius
        zone = shapely.box(x - size, y - size * 0.7, x + size, y + size * 0.7).intersection(commune.inner)
        polys = [g for g in getattr(zone, "geoms", [zone]) if g.geom_type == "Polygon"]
        approved = date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 7 * 365)))
        scale = {"master": "1/10.000", "zoning": "1/2.000", "detailed": "1/500"}[level]
        yield (
            f"QH-{commune.code}-{k:02d}",
            commune.code,
            f"{label} {commune.short_name}",
            level,
            f"{int(rng.integers(100, 3500))}/QĐ-UBND",
            approved,
            "UBND tỉnh Hưng Yên",
            zoning,
            scale,
            ewkb(to_lonlat(shapely.MultiPolygon(polys))),
        )


DEVICE_COLUMNS = ["device_code", "commune_code", "kind", "status", "installed_date", "operator", "geom"]
QUANTITIES = {
    "air_quality": [("pm25", "ug/m3"), ("pm10", "ug/m3")],
    "water_level": [("water_level", "m")],
    "rain_gauge": [("rainfall", "mm")],
}


def device_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for i, commune in enumerate(communes):
        kinds = ["camera"] * (int(rng.integers(3, 7)) if commune.is_ward else 1)
        if commune.is_ward or i % 3 == 0:
            kinds.append("air_quality")
        if i % 4 == 1:
            kinds.append("water_level")
        if i % 4 == 2:
            kinds.append("rain_gauge")
        for k, (kind, geom) in enumerate(zip(kinds, _points(rng, commune, len(kinds), 0.3), strict=True), start=1):
            yield (
                f"{commune.code}-{kind[:3].upper()}{k:02d}",
                commune.code,
                kind,
                str(rng.choice(["online", "offline", "maintenance"], p=[0.9, 0.07, 0.03])),
                date(2021, 1, 1) + timedelta(days=int(rng.integers(0, 4 * 365))),
                "Trung tâm Giám sát, điều hành thông minh tỉnh" if kind == "camera" else "Sở Nông nghiệp và Môi trường",
                geom,
            )


def observation_rows(
    rng: np.random.Generator, devices: list[tuple[str, str]], until: date, days: int = 365
) -> Iterator[tuple[Any, ...]]:
    """Daily readings (the day's mean, or total for rain) for every sensor, ending the day before ``until``."""
    start = until - timedelta(days=days)
    t = np.arange(days)
    season = np.cos(2 * np.pi * ((start.toordinal() + t) % 365.25 - 15) / 365.25)  # +1 mid-January
    for code, kind in devices:
        for quantity, unit in QUANTITIES.get(kind, []):
            if quantity == "pm25":
                base = rng.uniform(22, 38)
                values = np.maximum(3, base * (1 + 0.45 * season) * rng.lognormal(0, 0.3, days))
            elif quantity == "pm10":
                values = np.maximum(5, rng.uniform(40, 65) * (1 + 0.35 * season) * rng.lognormal(0, 0.25, days))
            elif quantity == "water_level":
                values = rng.uniform(1.5, 3.0) - 1.4 * season + np.cumsum(rng.normal(0, 0.05, days)) * 0.2
            else:
                wet = rng.random(days) < (0.25 - 0.18 * season)
                values = np.where(wet, rng.gamma(0.8, 18 * (1 - 0.7 * season)), 0.0)
            for day, value in zip(t, values, strict=True):
                observed = datetime.combine(start + timedelta(days=int(day)), datetime.min.time(), UTC)
                yield (code, quantity, observed, float(round(value, 2)), unit)
