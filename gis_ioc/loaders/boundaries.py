"""Load the administrative boundaries of Hưng Yên: the province, its 104 communes/wards, the crosswalk.

Rows are keyed by the official 5-digit codes and carry ``valid_from``/``valid_to``: a later
reorganisation adds a version and closes the previous one instead of overwriting history.
The whole load is one transaction: it lands completely or not at all.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import shapely
from psycopg import sql

from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.database.loads import copy_rows, finish_load, start_load
from gis_ioc.errors import LoadError

#: The 2025 reorganisation (Resolution 1666/NQ-UBTVQH15) took effect on this day.
REORGANISATION_2025 = date(2025, 7, 1)
SOURCE_UNIT = "Sở Nội vụ (ranh giới: bản đồ hành chính sapnhap.bando.com.vn; mã: Cục Thống kê 1027/CTK-CSCL)"


@dataclass(frozen=True)
class BoundarySet:
    """The files of one version of the boundaries."""

    communes: Path
    province: Path
    units: Path
    crosswalk: Path
    valid_from: date

    @classmethod
    def hung_yen_2025(cls, folder: Path) -> BoundarySet:
        return cls(
            communes=folder / "hung_yen_2025_communes_wards.geojson",
            province=folder / "hung_yen_2025_province.geojson",
            units=folder / "hung_yen_units_2025.csv",
            crosswalk=folder / "hung_yen_2025_old_to_new_crosswalk.csv",
            valid_from=REORGANISATION_2025,
        )


@dataclass(frozen=True)
class BoundaryResult:
    loaded: bool
    load_id: int | None
    communes: int
    province: int
    crosswalk: int
    message: str


def _read_polygons(path: Path, key: str) -> gpd.GeoDataFrame:
    if not path.exists():
        raise LoadError(f"{path}: file not found")
    frame = gpd.read_file(path)
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        raise LoadError(f"{path.name}: expected WGS 84 lon/lat (EPSG:4326/CRS84), found {frame.crs}")
    if key not in frame.columns:
        raise LoadError(f"{path.name}: no {key!r} column")
    invalid = frame.loc[~frame.geometry.is_valid, key].tolist()
    if invalid:
        raise LoadError(f"{path.name}: invalid geometries for {invalid}")
    frame["geometry"] = shapely.force_2d(frame.geometry.values)
    multi = frame.geometry.geom_type == "Polygon"
    frame.loc[multi, "geometry"] = [shapely.MultiPolygon([g]) for g in frame.geometry[multi]]
    return frame


def _check_units(communes: gpd.GeoDataFrame, units_path: Path) -> None:
    """The polygons must carry exactly the official list: same codes, same names, same types."""
    with units_path.open(encoding="utf-8") as fh:
        official = {row["code"]: row for row in csv.DictReader(fh)}
    codes = set(communes["code"])
    problems = []
    if missing := sorted(set(official) - codes):
        problems.append(f"codes in the official list without a polygon: {missing}")
    if extra := sorted(codes - set(official)):
        problems.append(f"polygons with codes not in the official list: {extra}")
    if len(codes) != len(communes):
        problems.append("a code appears on more than one polygon")
    for row in communes.itertuples():
        ref = official.get(row.code)
        if ref and (ref["name"] != row.name or ref["type"] != row.level):
            problems.append(
                f"{row.code}: polygon says {row.name} ({row.level}), list says {ref['name']} ({ref['type']})"
            )
    if problems:
        raise LoadError(f"{units_path.name} and the polygons disagree: " + "; ".join(problems))


def _ewkb(geom: Any) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True))


def already_loaded(conn: psycopg.Connection[Any], valid_from: date) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE valid_from = %s").format(sql.Identifier(SCHEMA, "communes")),
        (valid_from,),
    ).fetchone()
    return int(row[0]) if row else 0


def load_boundaries(
    conn: psycopg.Connection[Any], files: BoundarySet, *, loaded_by: str | None = None
) -> BoundaryResult:
    """Load one version of the boundaries; a version already present is left as it is."""
    present = already_loaded(conn, files.valid_from)
    if present:
        return BoundaryResult(
            False, None, present, 0, 0, f"boundaries valid from {files.valid_from} already loaded ({present} communes)"
        )
    communes = _read_polygons(files.communes, "code")
    province = _read_polygons(files.province, "code")
    _check_units(communes, files.units)
    with files.crosswalk.open(encoding="utf-8") as fh:
        crosswalk = list(csv.DictReader(fh))
    unknown = sorted({r["new_code"] for r in crosswalk} - set(communes["code"]))
    if unknown:
        raise LoadError(f"{files.crosswalk.name}: new codes without a commune: {unknown}")

    try:
        return _write(conn, files, communes, province, crosswalk, loaded_by)
    except psycopg.Error as exc:
        raise LoadError(f"boundaries not loaded, nothing changed: {str(exc).strip().splitlines()[0]}") from exc


def _write(
    conn: psycopg.Connection[Any],
    files: BoundarySet,
    communes: gpd.GeoDataFrame,
    province: gpd.GeoDataFrame,
    crosswalk: list[dict[str, str]],
    loaded_by: str | None,
) -> BoundaryResult:
    with conn.transaction():
        load_id = start_load(
            conn,
            kind="boundaries",
            layer_id="communes",
            source_unit=SOURCE_UNIT,
            file=files.communes,
            approval="approved",
            params={"valid_from": files.valid_from.isoformat(), "loaded_by": loaded_by},
        )
        for table in ("communes", "province"):
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET valid_to = %s, updated_at = now() WHERE valid_to IS NULL AND valid_from < %s"
                ).format(sql.Identifier(SCHEMA, table)),
                (files.valid_from, files.valid_from),
            )
        n_communes = copy_rows(
            conn,
            sql.Identifier(SCHEMA, "communes"),
            [
                "code",
                "name",
                "short_name",
                "name_en",
                "level",
                "province_code",
                "area_km2_official",
                "former_districts",
                "former_provinces",
                "n_former_units",
                "valid_from",
                "geom",
                "load_id",
            ],
            (
                (
                    r.code,
                    r.name,
                    r.short_name,
                    r.name_en,
                    r.level,
                    r.province_code,
                    r.area_km2_source,
                    r.former_districts,
                    r.former_provinces,
                    int(r.n_former_units),
                    files.valid_from,
                    _ewkb(r.geometry),
                    load_id,
                )
                for r in communes.itertuples()
            ),
        )
        n_province = copy_rows(
            conn,
            sql.Identifier(SCHEMA, "province"),
            ["code", "name", "name_en", "area_km2_official", "valid_from", "geom", "load_id"],
            (
                (r.code, r.name, r.name_en, r.area_km2_official, files.valid_from, _ewkb(r.geometry), load_id)
                for r in province.itertuples()
            ),
        )
        for table in ("communes", "province"):
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET area_km2 = round((ST_Area(geom::geography) / 1e6)::numeric, 3) WHERE load_id = %s"
                ).format(sql.Identifier(SCHEMA, table)),
                (load_id,),
            )
        n_cross = copy_rows(
            conn,
            sql.Identifier("gis_ioc", "commune_crosswalk"),
            [
                "old_code",
                "old_name",
                "old_district",
                "old_district_code",
                "old_province",
                "old_province_code",
                "new_code",
                "new_name",
                "merge_type",
                "note",
                "valid_from",
            ],
            (
                (
                    r["old_code"],
                    r["old_name"],
                    r["old_district"],
                    r["old_district_code"],
                    r["old_province"],
                    r["old_province_code"],
                    r["new_code"],
                    r["new_name"],
                    r["merge_type"],
                    r["note"] or None,
                    files.valid_from,
                )
                for r in crosswalk
            ),
        )
        finish_load(conn, load_id, n_communes + n_province)
    return BoundaryResult(
        True,
        load_id,
        n_communes,
        n_province,
        n_cross,
        f"loaded {n_communes} communes, {n_province} province outline, {n_cross} crosswalk rows",
    )
