"""The source CRS of a load, VN-2000 pinned, and a diagnosis when the data does not land in Hưng Yên.

The CRS comes from the file or from ``--crs``. VN-2000 CRSs always go to WGS 84 through the official
EPSG:6960 operation (:func:`gis_ioc.crs.transformer`); a ``.prj`` that describes a VN-2000 CRS by
parameters (with a missing or mis-signed ``+towgs84``) is recognised and replaced by its EPSG code.

When the data falls outside the province, the coordinates are read again under the usual mistakes
(swapped axes, the wrong TM-3 meridian, UTM instead of TM-3, no datum shift, degrees) and the reading
that puts the data inside the province is named with its evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gis_ioc import crs as crs_registry
from gis_ioc.errors import LoadError

#: VN-2000 CRSs by EPSG code, with a reader's name.
VN2000_NAMES = {
    9209: "VN-2000 / TM-3 105°30' (Hưng Yên, Thái Bình)",
    5897: "VN-2000 / TM-3 105°00' (Hà Nội)",
    5896: "VN-2000 / TM-3 102°00'",
    5898: "VN-2000 / TM-3 108°00'",
    5899: "VN-2000 / TM-3 107°45'",
    3405: "VN-2000 / UTM 48N",
    4756: "VN-2000 (degrees)",
}
_TM3_BY_MERIDIAN = {105.5: 9209, 105.0: 5897, 102.0: 5896, 108.0: 5898, 107.75: 5899}
#: TM-3 105°30' coordinates inside Hưng Yên: easting (Vietnamese Y) and northing (Vietnamese X).
HUNG_YEN_TM3 = {"easting": (541_000.0, 620_000.0), "northing": (2_245_000.0, 2_326_000.0)}
LOCAL_TM3 = "+proj=tmerc +lat_0=0 +lon_0=105.5 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m +no_defs"


@dataclass(frozen=True)
class SourceCrs:
    """The CRS a load is read in, and how to bring it to EPSG:4326 (x = longitude)."""

    label: str  # "EPSG:9209" or a PROJ string
    name: str
    to_wgs84: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    operation: str  # what transformed it (for the report)
    swap: bool = False


def _vn2000_epsg(crs: CRS) -> int | None:
    """The EPSG code of a VN-2000 CRS, also when a .prj describes it by parameters.

    Only a CRS on the VN-2000 datum (by name, or by the EPSG:6960 translation in its +towgs84) counts:
    the same projection on bare WGS 84 ("VN-2000 nội bộ") is another CRS and is read as it says.
    """
    datum = getattr(crs.datum, "name", "") or ""
    if "2000" not in datum and "-191.904" not in crs.to_wkt():
        return None
    code = crs.to_epsg(min_confidence=70)
    if code in VN2000_NAMES:
        return code
    if crs.is_geographic:
        return 4756
    params = crs.to_dict()
    if params.get("proj") == "utm" and params.get("zone") == 48:
        return 3405
    if params.get("proj") == "tmerc" and abs(float(params.get("k", params.get("k_0", 0))) - 0.9999) < 1e-9:
        return _TM3_BY_MERIDIAN.get(round(float(params.get("lon_0", 0)) * 4) / 4)
    return None


def _pinned(epsg: int, *, swap: bool = False) -> SourceCrs:
    transformer = crs_registry.transformer(epsg, 4326)

    def run(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = transformer.transform(x, y)
        return np.asarray(lon), np.asarray(lat)

    name = VN2000_NAMES.get(epsg) or CRS.from_epsg(epsg).name
    return SourceCrs(f"EPSG:{epsg}", name, run, transformer.description, swap)


def _generic(crs: CRS, label: str, *, swap: bool = False) -> SourceCrs:
    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def run(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = transformer.transform(x, y)
        return np.asarray(lon), np.asarray(lat)

    return SourceCrs(label, crs.name, run, transformer.description, swap)


def parse_crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value.strip())
    except CRSError as exc:
        raise LoadError(f"--crs {value!r} is not a coordinate system PROJ knows (e.g. EPSG:9209): {exc}") from exc


def source_crs(crs: CRS, notes: list[str] | None = None) -> SourceCrs:
    """How to read coordinates in ``crs``: VN-2000 through the official EPSG:6960, others as PROJ says."""
    code = _vn2000_epsg(crs)
    if code is not None:
        if crs.to_epsg(min_confidence=70) != code and notes is not None:
            notes.append(
                f"the file describes its CRS by parameters ({crs.name}); read as EPSG:{code} "
                f"{VN2000_NAMES[code]} with the official VN-2000 → WGS 84 transformation (EPSG:6960)"
            )
        return _pinned(code)
    epsg = crs.to_epsg(min_confidence=100)
    if epsg == 4326:
        return SourceCrs("EPSG:4326", "WGS 84", lambda x, y: (np.asarray(x), np.asarray(y)), "none (already WGS 84)")
    return _generic(crs, f"EPSG:{epsg}" if epsg else crs.to_proj4() or crs.name)


def _candidates() -> list[tuple[str, SourceCrs, str]]:
    """(key, reading, explanation) of the usual mistakes."""
    local = _generic(CRS.from_proj4(LOCAL_TM3), "VN-2000 nội bộ (TM-3 105°30', no datum shift)")
    return [
        ("9209", _pinned(9209), ""),
        ("9209-swapped", _pinned(9209, swap=True), ""),
        ("5897", _pinned(5897), ""),
        ("5897-swapped", _pinned(5897, swap=True), ""),
        ("3405", _pinned(3405), ""),
        ("3405-swapped", _pinned(3405, swap=True), ""),
        ("local", local, ""),
        ("4326", source_crs(CRS.from_epsg(4326)), ""),
        ("4326-swapped", SourceCrs("EPSG:4326", "WGS 84", lambda x, y: (np.asarray(x), np.asarray(y)), "", True), ""),
    ]


def to_wgs84(reading: SourceCrs, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if reading.swap:
        x, y = y, x
    with np.errstate(all="ignore"):
        lon, lat = reading.to_wgs84(x, y)
    return lon, lat


def _inside(province: shapely.Geometry, lon: np.ndarray, lat: np.ndarray) -> float:
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return 0.0
    inside = np.zeros(len(lon), dtype=bool)
    inside[ok] = shapely.contains_xy(province, lon[ok], lat[ok])
    return float(inside.mean())


def _offset(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> tuple[float, str]:
    """Median distance (km) and compass direction from reading 2 to reading 1."""
    ok = np.isfinite(lon1) & np.isfinite(lat1) & np.isfinite(lon2) & np.isfinite(lat2)
    if not ok.any():
        return math.inf, "?"
    dx = (np.median(lon1[ok]) - np.median(lon2[ok])) * 111.32 * math.cos(math.radians(20.8))
    dy = (np.median(lat1[ok]) - np.median(lat2[ok])) * 110.57
    angle = math.degrees(math.atan2(dx, dy)) % 360
    direction = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"][
        round(angle / 45) % 8
    ]
    return math.hypot(dx, dy), direction


def _range_text(x: np.ndarray, y: np.ndarray) -> str:
    return (
        f"first axis {np.nanmin(x):,.2f} … {np.nanmax(x):,.2f}, second axis {np.nanmin(y):,.2f} … {np.nanmax(y):,.2f}"
    )


_EXPLAIN = {
    "9209-swapped": "the X and Y columns are swapped (Vietnamese X is the northing, Y the easting)",
    "5897": "the file was computed in TM-3 105°00' (Hà Nội's zone) — read as 105°30' it moves about 52 km",
    "3405": "the coordinates are VN-2000 / UTM 48N, not TM-3 (about 52 km east and 0.7 km south when mixed up)",
    "local": (
        "the coordinates are 'VN-2000 nội bộ' (TM-3 with no datum shift to WGS 84): about 220 m off when read "
        "with the official transformation"
    ),
    "4326": "the coordinates are degrees (longitude, latitude), not metres",
    "4326-swapped": "the coordinates are degrees with latitude first",
}


def _suggest(key: str, reading: SourceCrs) -> str:
    if key == "local":
        return f'--crs "{LOCAL_TM3}"'
    if key.endswith("-swapped"):
        return f"swap the two coordinate columns (or their names) and load with --crs {reading.label}"
    return f"--crs {reading.label}"


def diagnose(
    declared: SourceCrs | None, x: np.ndarray, y: np.ndarray, province: shapely.Geometry
) -> tuple[float, str | None]:
    """Share of sample points inside the province under ``declared``, and an explanation when it is poor.

    The explanation names the reading that puts the data inside Hưng Yên, its share and the offset.
    """
    shapely.prepare(province)
    declared_share = 0.0
    if declared is not None:
        lon0, lat0 = to_wgs84(declared, x, y)
        declared_share = _inside(province, lon0, lat0)
        if declared_share >= 0.999:
            return declared_share, None
    best: tuple[float, str, SourceCrs, np.ndarray, np.ndarray] | None = None
    shares: dict[str, tuple[float, SourceCrs]] = {}
    for key, reading, _ in _candidates():
        if declared is not None and reading.label == declared.label and reading.swap == declared.swap:
            continue
        lon, lat = to_wgs84(reading, x, y)
        share = _inside(province, lon, lat)
        shares[key] = (share, reading)
        if best is None or share > best[0]:
            best = (share, key, reading, lon, lat)
    also = ""
    if best is not None:  # readings the outline cannot tell apart (TM-3 105°00' and UTM 48N differ by 0.7 km)
        twins = [r.label for k, (s, r) in shares.items() if k != best[1] and s >= best[0] - 0.02 and not r.swap]
        if twins:
            also = f" ({', '.join(twins)} fits as well: they differ by under a kilometre, check the source's zone)"
    rng = _range_text(x, y)
    if declared is None:
        if best is not None and best[0] >= 0.5:
            share, key, reading, _, _ = best
            what = reading.name if not reading.swap else f"{reading.name} with the axes swapped"
            return 0.0, (
                f"the file has no coordinate system (no .prj, or a CSV of X/Y). Its coordinates ({rng}) "
                f"fit {what}: read that way {share:.0%} of it lies inside Hưng Yên. It is not guessed: "
                f"load again with {_suggest(key, reading)}"
            )
        return 0.0, (
            f"the file has no coordinate system and its coordinates ({rng}) fit none of VN-2000 TM-3 105°30', "
            "TM-3 105°00', UTM 48N or degrees inside Hưng Yên: give the CRS with --crs"
        )
    # another reading explains the data when it puts clearly more inside, or all of it where the file's does not
    explains = (
        best is not None
        and best[0] >= 0.5
        and (best[0] > declared_share + 0.05 or (best[0] >= 0.999 and declared_share < 0.999))
    )
    if best is None or not explains:
        if declared_share >= 0.5:
            return declared_share, None
        return declared_share, (
            f"read as {declared.label} ({declared.name}) only {declared_share:.0%} of the data lies inside Hưng Yên "
            f"({rng}); no usual mistake (swapped axes, another TM-3 meridian, UTM, no datum shift, degrees) "
            "explains it: check the coordinate system of the file"
        )
    share, key, reading, lon, lat = best
    lon0, lat0 = to_wgs84(declared, x, y)
    km, direction = _offset(lon0, lat0, lon, lat)
    distance = f"{km * 1000:,.0f} m" if km < 2 else f"{km:,.1f} km"
    explanation = _EXPLAIN.get(key, f"the coordinates are in {reading.name}")
    if key == "4326" and declared.label != "EPSG:4326":
        explanation = f"the coordinates are degrees (longitude, latitude) but the file says {declared.label}"
    return declared_share, (
        f"read as {declared.label} ({declared.name}) {declared_share:.0%} of the data lies inside Hưng Yên; "
        f"it lands {distance} {direction} of where {reading.label}"
        f"{' with the axes swapped' if reading.swap else ''} puts it, and that reading puts {share:.0%} inside. "
        f"Probably {explanation}. Fix: {_suggest(key, reading)}{also}"
    )
