"""A new version of the boundaries (in its own database): the old one is closed, history kept, data re-keyed."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Geod

from gis_ioc.catalog import Catalog
from gis_ioc.cli import main
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.errors import InvalidInput, LoadError
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.loaders.boundary_versions import load_boundary_version, rekey
from gis_ioc.loaders.vector import LoaderConfig
from gis_ioc.settings import Settings
from tests.conftest import scalar

GEOD = Geod(ellps="WGS84")


def _area(geom: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def test_reorganisation_2026(empty_db: Settings, catalog: Catalog, tmp_path: Path) -> None:
    communes = gpd.read_file(empty_db.boundaries_dir / "hung_yen_2025_communes_wards.geojson")
    a, b, c = communes.iloc[10], communes.iloc[11], communes.iloc[12]
    assert communes.iloc[0].code == "11953"  # Phố Hiến, where the former 11956 (An Tảo) went in 2025
    cx = c.geometry.centroid.x
    minx, miny, maxx, maxy = c.geometry.bounds
    west = c.geometry.intersection(shapely.box(minx - 1, miny - 1, cx, maxy + 1))
    east = c.geometry.intersection(shapely.box(cx, miny - 1, maxx + 1, maxy + 1))
    keep = communes.drop(index=[10, 11, 12])[["code", "name", "level", "geometry"]]
    new = pd.concat(
        [
            keep,
            gpd.GeoDataFrame(
                {
                    "code": ["99001", "99002", "99003"],
                    "name": ["Xã Hợp Nhất", "Xã Tây Mới", "Phường Đông Mới"],
                    "level": ["xã", "xã", "phường"],
                },
                geometry=[a.geometry.union(b.geometry), west, east],
                crs="EPSG:4326",
            ),
        ]
    )
    gpkg = tmp_path / "ranh_gioi_2026.gpkg"
    gpd.GeoDataFrame(new, crs="EPSG:4326").to_crs("EPSG:9209").to_file(gpkg, driver="GPKG")
    crosswalk = tmp_path / "crosswalk_2026.csv"
    with crosswalk.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["old_code", "new_code", "merge_type"])
        w.writerows([[a.code, "99001", "full"], [b.code, "99001", "full"], [c.code, "99002", "partial"],
                     [c.code, "99003", "partial"]])  # fmt: skip
    config = LoaderConfig.from_settings(empty_db)
    with connect(empty_db, autocommit=True) as conn:
        upgrade(conn, catalog)
        load_boundaries(conn, BoundarySet.hung_yen_2025(empty_db.boundaries_dir))
        province_2025 = scalar(conn, "SELECT area_km2 FROM layers.province WHERE valid_to IS NULL")
        with pytest.raises(InvalidInput, match="must be later"):
            load_boundary_version(conn, gpkg, date(2025, 7, 1), config, crosswalk=crosswalk)
        result = load_boundary_version(conn, gpkg, date(2026, 1, 1), config, crosswalk=crosswalk)
        assert (result.communes, result.closed, result.crosswalk) == (104, 104, 4)
        assert scalar(conn, "SELECT count(*) FROM layers.communes WHERE valid_to IS NULL") == 104
        assert scalar(conn, "SELECT count(*) FROM layers.communes WHERE valid_to = '2026-01-01'") == 104
        assert scalar(conn, "SELECT count(*) FROM layers.province") == 2
        province_2026 = scalar(conn, "SELECT area_km2 FROM layers.province WHERE valid_to IS NULL")
        assert abs(province_2026 - province_2025) / province_2025 < 0.001
        assert scalar(conn, "SELECT level FROM layers.communes WHERE code = '99003'") == "phường"
        stored_share = scalar(
            conn,
            "SELECT area_share FROM gis_ioc.commune_crosswalk WHERE old_code = %s AND new_code = '99002'",
            (c.code,),
        )
        expected = _area(west) / (_area(west) + _area(east))
        assert abs(stored_share - expected) < 0.005
        # figures keyed by 2025 communes, and by a pre-2025 commune, land on the 2026 units
        totals, unknown = rekey(
            conn, [(a.code, 10), (b.code, 5), (c.code, 100), ("11953", 7), ("11956", 3), ("00000", 1)]
        )
        assert unknown == ["00000"]
        assert totals["99001"] == pytest.approx(15)
        assert totals["99002"] == pytest.approx(100 * expected, rel=0.01)
        assert totals["99003"] == pytest.approx(100 * (1 - expected), rel=0.01)
        assert totals["11953"] == pytest.approx(7 + 3)
        assert sum(totals.values()) == pytest.approx(125)
        # the day before, the 2025 communes are current: nothing moves but the pre-2025 code
        before, _ = rekey(conn, [(a.code, 10), ("11956", 3)], as_of=date(2025, 12, 31))
        assert before == {a.code: 10, "11953": 3}
        # a bad file changes nothing
        rows_before = scalar(conn, "SELECT count(*) FROM layers.communes")
        broken = tmp_path / "broken.geojson"
        new.assign(code="12").to_file(broken, driver="GeoJSON")
        with pytest.raises(LoadError, match="5 digits"):
            load_boundary_version(conn, broken, date(2027, 1, 1), config)
        assert scalar(conn, "SELECT count(*) FROM layers.communes") == rows_before

    values = tmp_path / "ho_ngheo.csv"
    values.write_text(f"commune_code,households\n{a.code},10\n{b.code},5\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["load", "rekey", str(values), "--value-column", "households"], obj={"settings": empty_db}
    )
    assert result.exit_code == 0, result.output
    assert "99001,15" in result.output
