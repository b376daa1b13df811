"""The real boundaries of Hưng Yên: 104 communes with official codes and names, valid, on the ellipsoid."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gis_ioc.errors import LoadError
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.settings import Settings
from tests.conftest import scalar


def _official(settings: Settings) -> dict[str, dict[str, str]]:
    with (settings.boundaries_dir / "hung_yen_units_2025.csv").open(encoding="utf-8") as fh:
        return {row["code"]: row for row in csv.DictReader(fh)}


def test_104_communes_with_official_codes_and_names(db: psycopg.Connection[Any], settings: Settings) -> None:
    rows = db.execute("SELECT code, name, level FROM layers.communes WHERE valid_to IS NULL").fetchall()
    official = _official(settings)
    assert len(rows) == 104
    assert {r[0]: (r[1], r[2]) for r in rows} == {c: (o["name"], o["type"]) for c, o in official.items()}
    assert sum(1 for r in rows if r[2] == "phường") == 11
    assert db.execute("SELECT name FROM layers.communes WHERE code = '11953'").fetchone() == ("Phường Phố Hiến",)


def test_geometries_valid_multipolygons_in_4326(db: psycopg.Connection[Any]) -> None:
    assert scalar(db, "SELECT count(*) FROM layers.communes WHERE NOT ST_IsValid(geom)") == 0
    assert scalar(db, "SELECT DISTINCT ST_SRID(geom) FROM layers.communes") == 4326
    assert scalar(db, "SELECT DISTINCT GeometryType(geom) FROM layers.communes") == "MULTIPOLYGON"


def test_areas_on_the_ellipsoid_sum_to_about_2570_km2(db: psycopg.Connection[Any]) -> None:
    total = scalar(db, "SELECT sum(area_km2) FROM layers.communes WHERE valid_to IS NULL")
    assert 2565 < total < 2580
    # stored areas equal PostGIS' geodesic areas, and the province outline agrees with the communes
    assert scalar(db, "SELECT max(abs(area_km2 - ST_Area(geom::geography) / 1e6)) FROM layers.communes") < 0.001
    province = scalar(db, "SELECT area_km2 FROM layers.province WHERE valid_to IS NULL")
    assert abs(province - total) / total < 0.002
    # official natural areas are kept beside the computed ones
    assert round(scalar(db, "SELECT sum(area_km2_official) FROM layers.communes"), 2) == 2514.81


def test_validity_dates_and_crosswalk(db: psycopg.Connection[Any], settings: Settings) -> None:
    assert db.execute("SELECT DISTINCT valid_from, valid_to FROM layers.communes").fetchall() == [
        (date(2025, 7, 1), None)
    ]
    with (settings.boundaries_dir / "hung_yen_2025_old_to_new_crosswalk.csv").open(encoding="utf-8") as fh:
        source = list(csv.DictReader(fh))
    assert scalar(db, "SELECT count(*) FROM gis_ioc.commune_crosswalk") == len(source) == 384
    stored = db.execute("SELECT old_code, new_code, merge_type FROM gis_ioc.commune_crosswalk").fetchall()
    assert sorted(stored) == sorted((r["old_code"], r["new_code"], r["merge_type"]) for r in source)
    # every former commune points at a current unit
    assert (
        scalar(
            db,
            "SELECT count(*) FROM gis_ioc.commune_crosswalk x LEFT JOIN layers.communes c "
            "ON c.code = x.new_code WHERE c.code IS NULL",
        )
        == 0
    )
    load = db.execute(
        "SELECT kind, status, approval, file_sha256 FROM gis_ioc.loads WHERE kind = 'boundaries'"
    ).fetchone()
    assert load is not None and load[:3] == ("boundaries", "done", "approved") and len(load[3]) == 64


def test_second_load_changes_nothing(db: psycopg.Connection[Any], settings: Settings) -> None:
    result = load_boundaries(db, BoundarySet.hung_yen_2025(settings.boundaries_dir))
    assert not result.loaded and "already loaded" in result.message
    assert scalar(db, "SELECT count(*) FROM layers.communes") == 104


def _copy(settings: Settings, tmp_path: Path, valid_from: date) -> BoundarySet:
    for f in settings.boundaries_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    files = BoundarySet.hung_yen_2025(tmp_path)
    return BoundarySet(files.communes, files.province, files.units, files.crosswalk, valid_from)


def test_a_failed_new_version_leaves_history_untouched(
    db: psycopg.Connection[Any], settings: Settings, tmp_path: Path
) -> None:
    files = _copy(settings, tmp_path, date(2027, 1, 1))
    text = files.crosswalk.read_text(encoding="utf-8").replace(",partial,", ",bogus,", 1)
    files.crosswalk.write_text(text, encoding="utf-8")
    before = db.execute("SELECT count(*), count(valid_to), max(load_id) FROM layers.communes").fetchone()
    loads = scalar(db, "SELECT count(*) FROM gis_ioc.loads")
    with pytest.raises(LoadError, match="nothing changed"):
        load_boundaries(db, files)
    assert db.execute("SELECT count(*), count(valid_to), max(load_id) FROM layers.communes").fetchone() == before
    assert scalar(db, "SELECT count(*) FROM gis_ioc.loads") == loads


def test_units_list_disagreeing_with_polygons_is_refused(
    db: psycopg.Connection[Any], settings: Settings, tmp_path: Path
) -> None:
    files = _copy(settings, tmp_path, date(2027, 1, 1))
    lines = files.units.read_text(encoding="utf-8").splitlines()
    files.units.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # drop the last unit
    with pytest.raises(LoadError, match=r"polygons with codes not in the official list: \[.13279.\]"):
        load_boundaries(db, files)
    assert scalar(db, "SELECT count(*) FROM layers.communes") == 104
