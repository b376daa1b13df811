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
        ("32648", _generic(CRS.from_epsg(32648), "EPSG:32648"), ""),
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


#: fit(lon, lat): median distance in metres from these points to the approved roads and parcel boundaries
#: around them (None when there are none to compare with).
Fit = Callable[[np.ndarray, np.ndarray], float | None]
#: Readings tried in this order when several fit the outline equally: UTM 48N is a usual format of
#: survey data, a wrong TM-3 meridian a rarer slip; swapped axes and degrees come last.
_PREFERENCE = ("9209", "3405", "5897", "32648", "local", "4326", "9209-swapped", "3405-swapped", "5897-swapped",
               "4326-swapped")  # fmt: skip
_DIRECTIONS_EN = ("north", "north-north-east", "north-east", "east-north-east", "east", "east-south-east",
                  "south-east", "south-south-east", "south", "south-south-west", "south-west", "west-south-west",
                  "west", "west-north-west", "north-west", "north-north-west")  # fmt: skip
_DIRECTIONS_VI = ("bắc", "bắc đông bắc", "đông bắc", "đông đông bắc", "đông", "đông đông nam", "đông nam",
                  "nam đông nam", "nam", "nam tây nam", "tây nam", "tây tây nam", "tây", "tây tây bắc", "tây bắc",
                  "bắc tây bắc")  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    """How the declared reading fits Hưng Yên, and what to say when it does not (Vietnamese and English)."""

    share: float  # of the sample inside the province under the declared reading
    failed: bool  # the data cannot be loaded as declared
    vi: str | None = None
    en: str | None = None

    @property
    def severity(self) -> str:
        return "error" if self.failed else "warning"


def _offset(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> tuple[float, int]:
    """Median distance (km) and compass direction (index into the 16 directions) from reading 2 to reading 1."""
    ok = np.isfinite(lon1) & np.isfinite(lat1) & np.isfinite(lon2) & np.isfinite(lat2)
    if not ok.any():
        return math.inf, 0
    dx = (np.median(lon1[ok]) - np.median(lon2[ok])) * 111.32 * math.cos(math.radians(20.8))
    dy = (np.median(lat1[ok]) - np.median(lat2[ok])) * 110.57
    angle = math.degrees(math.atan2(dx, dy)) % 360
    return math.hypot(dx, dy), round(angle / 22.5) % 16


def _distance(km: float, lang: str = "vi") -> str:
    if lang == "en":
        return f"{km * 1000:,.0f} m" if km < 2 else f"{km:,.1f} km"
    return f"{_vn_number(km * 1000, 0)} m" if km < 2 else f"{_vn_number(km, 1)} km"


def _vn_number(value: float, decimals: int) -> str:
    """1.234,5: Vietnamese separators."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def _range_text(x: np.ndarray, y: np.ndarray, lang: str) -> str:
    def n(v: float) -> str:
        return _vn_number(float(v), 2) if lang == "vi" else f"{v:,.2f}"

    first, second = ("trục thứ nhất", "trục thứ hai") if lang == "vi" else ("first axis", "second axis")
    return f"{first} {n(np.nanmin(x))} … {n(np.nanmax(x))}, {second} {n(np.nanmin(y))} … {n(np.nanmax(y))}"


_EXPLAIN = {
    "9209-swapped": (
        "hai cột X và Y bị đổi chỗ (theo quy ước Việt Nam X là tọa độ bắc, Y là tọa độ đông)",
        "the X and Y columns are swapped (Vietnamese X is the northing, Y the easting)",
    ),
    "5897": (
        "tệp được tính theo TM-3 kinh tuyến trục 105°00' (múi của Hà Nội) — đọc theo 105°30' lệch khoảng 52 km",
        "the file was computed in TM-3 105°00' (Hà Nội's zone) — read as 105°30' it moves about 52 km",
    ),
    "3405": (
        "tọa độ là VN-2000 / UTM 48N, không phải TM-3 (lệch khoảng 52 km về phía đông và 0,7 km về phía nam "
        "khi nhầm lẫn)",
        "the coordinates are VN-2000 / UTM 48N, not TM-3 (about 52 km east and 0.7 km south when mixed up)",
    ),
    "local": (
        "tọa độ là 'VN-2000 nội bộ' (TM-3 không có tham số chuyển sang WGS 84): lệch khoảng 220 m khi đọc với "
        "phép chuyển đổi chính thức",
        "the coordinates are 'VN-2000 nội bộ' (TM-3 with no datum shift to WGS 84): about 220 m off when read "
        "with the official transformation",
    ),
    "32648": (
        "tọa độ là WGS 84 / UTM 48N (EPSG:32648), không phải VN-2000",
        "the coordinates are WGS 84 / UTM 48N (EPSG:32648), not VN-2000",
    ),
    "4326": (
        "tọa độ là độ (kinh độ, vĩ độ), không phải mét",
        "the coordinates are degrees (longitude, latitude), not metres",
    ),
    "4326-swapped": ("tọa độ là độ với vĩ độ đứng trước", "the coordinates are degrees with latitude first"),
}


def _explain(key: str, reading: SourceCrs) -> tuple[str, str]:
    if key in _EXPLAIN:
        return _EXPLAIN[key]
    base = key.removesuffix("-swapped")
    if base in _EXPLAIN and key.endswith("-swapped"):
        vi, en = _EXPLAIN[base]
        return f"{vi}, hai trục bị đổi chỗ", f"{en}, with the axes swapped"
    return f"tọa độ theo {reading.name}", f"the coordinates are in {reading.name}"


def _suggest(key: str, reading: SourceCrs) -> tuple[str, str]:
    if key == "local":
        return f'--crs "{LOCAL_TM3}"', f'--crs "{LOCAL_TM3}"'
    if key.endswith("-swapped"):
        return (
            f"đổi chỗ hai cột tọa độ (hoặc tên của chúng) và nạp với --crs {reading.label}",
            f"swap the two coordinate columns (or their names) and load with --crs {reading.label}",
        )
    return f"--crs {reading.label}", f"--crs {reading.label}"


def _looks_like(declared: SourceCrs, x: np.ndarray, y: np.ndarray) -> tuple[str, str] | None:
    """Numbers that cannot be what the file says: metres labelled as degrees, or degrees labelled as metres."""
    big = bool(np.nanmax(np.abs(np.concatenate([x, y]))) > 360)
    geographic = declared.label in ("EPSG:4326", "EPSG:4756") or "lat" in declared.name.lower()
    if geographic and big:
        return (
            "các giá trị này trông như mét của một hệ tọa độ phẳng (VN-2000 TM-3 hoặc UTM) nhưng tệp ghi là "
            "kinh độ/vĩ độ",
            "these look like metres of a projected CRS (VN-2000 TM-3 or UTM) labelled as longitude/latitude",
        )
    if not geographic and not big:
        return (
            f"các giá trị này trông như độ (kinh độ/vĩ độ) nhưng tệp ghi là mét của {declared.label}",
            f"these look like degrees (longitude/latitude) labelled as metres of {declared.label}",
        )
    return None


def _fits(fit: Fit | None, readings: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    if fit is None:
        return {}
    out = {}
    for key, (lon, lat) in readings.items():
        ok = np.isfinite(lon) & np.isfinite(lat)
        value = fit(lon[ok], lat[ok]) if ok.any() else None
        if value is not None:
            out[key] = value
    return out


def _clearly_better(better: float | None, worse: float | None) -> bool:
    """Does one reading fit the approved layers clearly better? (median distances in metres)"""
    return better is not None and worse is not None and better <= min(worse / 3, 5.0) and worse >= 2.0


def diagnose(
    declared: SourceCrs | None,
    x: np.ndarray,
    y: np.ndarray,
    province: shapely.Geometry,
    *,
    vertices: tuple[np.ndarray, np.ndarray] | None = None,
    fit: Fit | None = None,
) -> Diagnosis:
    """How the data fits Hưng Yên as declared; when poorly, the usual mistake that explains it.

    Candidate readings are ranked by the share of the data they put inside the province, then — among
    those the outline cannot tell apart (TM-3 105°00' and UTM 48N differ by 0.7 km; 'nội bộ' by 220 m) —
    by how close the features' vertices come to the approved roads and parcel boundaries (``fit`` over
    ``vertices``), then by :data:`_PREFERENCE`. A reading is suggested only when it puts the data inside.
    When the declared reading fits the outline but a near twin fits the approved layers clearly better
    (the 'nội bộ' shift, UTM for TM-3 105°00'), that is a warning.
    """
    shapely.prepare(province)
    vx, vy = vertices if vertices is not None else (x, y)
    candidates = {key: reading for key, reading, _ in _candidates()}
    declared_key = next(
        (k for k, r in candidates.items() if declared is not None and r.label == declared.label and not r.swap),
        None,
    )
    declared_share = 0.0
    if declared is not None:
        lon0, lat0 = to_wgs84(declared, x, y)
        declared_share = _inside(province, lon0, lat0)
        if declared_share >= 0.999:
            return _twin_check(declared, declared_key, declared_share, vx, vy, candidates, fit)
    shares: dict[str, float] = {}
    for key, reading in candidates.items():
        if declared is not None and reading.label == declared.label and reading.swap == declared.swap:
            continue
        lon, lat = to_wgs84(reading, x, y)
        shares[key] = _inside(province, lon, lat)
    top = max(shares.values(), default=0.0)
    tied = [k for k in _PREFERENCE if k in shares and shares[k] >= top - 0.02 and shares[k] >= 0.5]
    fits = _fits(fit, {k: to_wgs84(candidates[k], vx, vy) for k in tied}) if len(tied) > 1 else {}
    ranked = list(tied)  # by preference, unless the approved layers clearly prefer another
    closest = min(fits, key=lambda k: fits[k], default=None)
    if closest is not None and ranked and _clearly_better(fits[closest], fits.get(ranked[0])):
        ranked.remove(closest)
        ranked.insert(0, closest)
    rng_vi, rng_en = _range_text(x, y, "vi"), _range_text(x, y, "en")
    if declared is None:
        if ranked:
            key = ranked[0]
            reading, share = candidates[key], shares[key]
            what = reading.name if not reading.swap else f"{reading.name}"
            fix_vi, fix_en = _suggest(key, reading)
            swapped_vi = ", hai trục đổi chỗ" if reading.swap else ""
            swapped_en = " with the axes swapped" if reading.swap else ""
            return Diagnosis(
                0.0,
                True,
                f"tệp không có hệ tọa độ (không có .prj, hoặc CSV theo X/Y). Tọa độ của tệp ({rng_vi}) khớp với "
                f"{what}{swapped_vi}: đọc như vậy {_pct(share)} nằm trong tỉnh Hưng Yên. Hệ tọa độ không được đoán: "
                f"nạp lại với {fix_vi}{_also(ranked, candidates, fits, 'vi')}",
                f"the file has no coordinate system (no .prj, or a CSV of X/Y). Its coordinates ({rng_en}) "
                f"fit {what}{swapped_en}: read that way {_pct(share, 'en')} of it lies inside Hưng Yên. It is not "
                f"guessed: load again with {fix_en}{_also(ranked, candidates, fits, 'en')}",
            )
        return Diagnosis(
            0.0,
            True,
            f"tệp không có hệ tọa độ và tọa độ của tệp ({rng_vi}) không khớp với VN-2000 TM-3 105°30', TM-3 "
            "105°00', UTM 48N hay độ trong tỉnh Hưng Yên: hãy cho biết hệ tọa độ bằng --crs",
            f"the file has no coordinate system and its coordinates ({rng_en}) fit none of VN-2000 TM-3 105°30', "
            "TM-3 105°00', UTM 48N or degrees inside Hưng Yên: give the CRS with --crs",
        )
    # another reading explains the data when it puts clearly more inside, or all of it where the file's does not
    best = ranked[0] if ranked else None
    explains = best is not None and (
        shares[best] > declared_share + 0.05 or (shares[best] >= 0.999 and declared_share < 0.999)
    )
    label = f"{declared.label} ({declared.name})"
    if best is None or not explains:
        if declared_share >= 0.5:
            return Diagnosis(declared_share, False)
        looks = _looks_like(declared, x, y)
        hint_vi = f" — {looks[0]}" if looks else ""
        hint_en = f" — {looks[1]}" if looks else ""
        return Diagnosis(
            declared_share,
            True,
            f"đọc theo {label} chỉ {_pct(declared_share)} dữ liệu nằm trong tỉnh Hưng Yên ({rng_vi}){hint_vi}; "
            "không lỗi thường gặp nào (đổi trục, sai kinh tuyến trục TM-3, UTM, thiếu tham số chuyển đổi, độ) "
            "giải thích được: hãy kiểm tra hệ tọa độ của tệp",
            f"read as {label} only {_pct(declared_share, 'en')} of the data lies inside Hưng Yên ({rng_en}){hint_en}; "
            "no usual mistake (swapped axes, another TM-3 meridian, UTM, no datum shift, degrees) explains it: "
            "check the coordinate system of the file",
        )
    reading, share = candidates[best], shares[best]
    lon0, lat0 = to_wgs84(declared, x, y)
    lon, lat = to_wgs84(reading, x, y)
    km, direction = _offset(lon0, lat0, lon, lat)
    why_vi, why_en = _explain(best, reading)
    looks = _looks_like(declared, x, y)
    if looks is not None or not math.isfinite(km) or km > 3000:
        where_vi = looks[0] if looks else "tọa độ nằm rất xa tỉnh Hưng Yên"
        where_en = looks[1] if looks else "the coordinates lie far from Hưng Yên"
    else:
        where_vi = (
            f"dữ liệu nằm lệch {_distance(km)} về phía {_DIRECTIONS_VI[direction]} so với cách đọc {reading.label}"
        )
        where_en = f"it lands {_distance(km, 'en')} {_DIRECTIONS_EN[direction]} of where {reading.label} puts it"
    swapped_vi = ", hai trục đổi chỗ" if reading.swap else ""
    swapped_en = " with the axes swapped" if reading.swap else ""
    fix_vi, fix_en = _suggest(best, reading)
    failed = declared_share < 0.5
    return Diagnosis(
        declared_share,
        failed,
        f"đọc theo {label} có {_pct(declared_share)} dữ liệu nằm trong tỉnh Hưng Yên; {where_vi}; đọc theo "
        f"{reading.label}{swapped_vi} thì {_pct(share)} nằm trong tỉnh. Có lẽ {why_vi}. Cách sửa: {fix_vi}"
        f"{_also(ranked, candidates, fits, 'vi')}",
        f"read as {label} {_pct(declared_share, 'en')} of the data lies inside Hưng Yên; {where_en}, and "
        f"{reading.label}{swapped_en} puts {_pct(share, 'en')} inside. Probably {why_en}. Fix: {fix_en}"
        f"{_also(ranked, candidates, fits, 'en')}",
    )


def _pct(share: float, lang: str = "vi") -> str:
    return f"{share:.0%}"


def _also(ranked: list[str], candidates: dict[str, SourceCrs], fits: dict[str, float], lang: str) -> str:
    """The readings the outline cannot tell from the first (when the approved layers could not either)."""
    first = ranked[0] if ranked else None
    if first is None:
        return ""
    if first in fits and any(_clearly_better(fits[first], fits.get(k)) for k in ranked[1:]):
        d = _vn_number(fits[first], 1) if lang == "vi" else f"{fits[first]:,.1f}"
        return (
            f" (cách đọc này khớp nhất với đường và thửa đất đã duyệt: đỉnh cách chúng trung bình {d} m)"
            if lang == "vi"
            else f" (this reading fits the approved roads and parcels best: vertices {d} m from them in the median)"
        )
    twins = [candidates[k].label for k in ranked[1:] if not candidates[k].swap]
    if not twins:
        return ""
    if lang == "vi":
        return f" ({', '.join(twins)} cũng khớp: chúng chỉ khác nhau dưới 1 km, hãy kiểm tra múi chiếu của nguồn)"
    return f" ({', '.join(twins)} fits as well: they differ by under a kilometre, check the source's zone)"


#: Near twins of a declared reading that the province outline cannot tell apart.
_TWINS = {"9209": ("local",), "local": ("9209",), "5897": ("3405", "32648"), "3405": ("5897", "32648"),
          "32648": ("3405", "5897")}  # fmt: skip


def _twin_check(
    declared: SourceCrs,
    declared_key: str | None,
    share: float,
    vx: np.ndarray,
    vy: np.ndarray,
    candidates: dict[str, SourceCrs],
    fit: Fit | None,
) -> Diagnosis:
    """The data fits the outline as declared: does a near twin fit the approved roads and parcels clearly better?"""
    twins = _TWINS.get(declared_key or "", ())
    if fit is None or not twins:
        return Diagnosis(share, False)
    fits = _fits(fit, {k: to_wgs84(candidates[k], vx, vy) for k in (declared_key or "", *twins)})
    for twin in twins:
        if _clearly_better(fits.get(twin), fits.get(declared_key or "")):
            reading = candidates[twin]
            lon0, lat0 = to_wgs84(declared, vx, vy)
            lon, lat = to_wgs84(reading, vx, vy)
            km, direction = _offset(lon0, lat0, lon, lat)
            why_vi, why_en = _explain(twin, reading)
            fix_vi, fix_en = _suggest(twin, reading)
            d0, d1 = fits[declared_key or ""], fits[twin]
            return Diagnosis(
                share,
                False,
                f"đọc theo {declared.label} dữ liệu nằm lệch {_distance(km)} về phía {_DIRECTIONS_VI[direction]} so "
                f"với các lớp đã duyệt (đường, thửa đất): đỉnh cách chúng trung bình {_vn_number(d0, 1)} m, đọc theo "
                f"{reading.label} chỉ {_vn_number(d1, 1)} m. Có lẽ {why_vi}. Cách sửa: {fix_vi}",
                f"read as {declared.label} the data lies {_distance(km, 'en')} {_DIRECTIONS_EN[direction]} of the "
                f"approved layers (roads, parcels): vertices {d0:,.1f} m from them in the median, "
                f"{d1:,.1f} m when read as {reading.label}. Probably {why_en}. Fix: {fix_en}",
            )
    return Diagnosis(share, False)
