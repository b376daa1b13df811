"""CRS mistakes told apart by the approved layers (issue 16, part 4): UTM 48N, TM-3 105°00' and 'nội bộ'
readings that the province outline cannot separate, and numbers that make sense in the messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely
from pyproj import Transformer

from gis_ioc.crs import transformer
from gis_ioc.loaders.crs_check import LOCAL_TM3
from tests.loaders.test_vector import _rejected


@pytest.fixture(scope="module")
def approved_parcels(db_session: psycopg.Connection[Any]) -> list[shapely.Geometry]:
    """Thirty approved parcels side by side, well inside the province (WGS 84)."""
    rows = db_session.execute(
        """WITH centre AS (SELECT ST_PointOnSurface(geom) AS g FROM layers.province WHERE valid_to IS NULL)
           SELECT ST_AsBinary(l.geom) FROM layers.land_parcels l, centre
            WHERE l.approval = 'approved' ORDER BY l.geom <-> centre.g LIMIT 30"""
    ).fetchall()
    assert len(rows) == 30
    return [shapely.from_wkb(bytes(r[0])) for r in rows]


def _file(parcels: list[shapely.Geometry], to: Any, path: Path, label: str) -> Path:
    """The parcels' coordinates computed with ``to`` (WGS 84 → metres), the file labelled ``label``."""
    geoms = [shapely.transform(g, lambda xy: np.column_stack(to.transform(xy[:, 0], xy[:, 1]))) for g in parcels]
    frame = gpd.GeoDataFrame(
        {"parcel_code": [f"CRS-{i}" for i in range(len(geoms))], "map_sheet": 1, "parcel_number": 1,
         "land_use": "ONT", "legal_status": "certified"},
        geometry=geoms, crs=label,
    )  # fmt: skip
    frame.to_file(path, driver="GPKG")
    return path


def _crs_issue(error: Any) -> Any:
    return next(i for i in error.report.findings.issues if i.code == "crs")


def test_utm_declared_as_tm3_is_named_utm_first(
    loader: Any, db: psycopg.Connection[Any], approved_parcels: list[shapely.Geometry], tmp_path: Path
) -> None:
    path = _file(approved_parcels, transformer(4326, 3405), tmp_path / "utm.gpkg", "EPSG:9209")
    issue = _crs_issue(_rejected(loader, db, path, "land_parcels"))
    assert issue.severity == "error" and "Cách sửa: --crs EPSG:3405" in issue.message
    assert "Fix: --crs EPSG:3405" in issue.en and "fits the approved roads and parcels best" in issue.en


def test_tm3_105_declared_as_105_30_is_named_by_the_approved_layers(
    loader: Any, db: psycopg.Connection[Any], approved_parcels: list[shapely.Geometry], tmp_path: Path
) -> None:
    path = _file(approved_parcels, transformer(4326, 5897), tmp_path / "tm3_105.gpkg", "EPSG:9209")
    issue = _crs_issue(_rejected(loader, db, path, "land_parcels"))
    assert "Cách sửa: --crs EPSG:5897" in issue.message and "Fix: --crs EPSG:5897" in issue.en


def test_following_a_wrong_twin_is_a_warning(
    loader: Any, db: psycopg.Connection[Any], approved_parcels: list[shapely.Geometry], tmp_path: Path
) -> None:
    """UTM 48N data loaded with --crs EPSG:5897 fits the outline but lands 0.7 km off the approved layers."""
    path = _file(approved_parcels, transformer(4326, 3405), tmp_path / "utm_as_5897.gpkg", "EPSG:9209")
    issue = _crs_issue(_rejected(loader, db, path, "land_parcels", crs="EPSG:5897"))
    assert issue.severity == "warning" and "--crs EPSG:3405" in issue.message
    assert " m " in issue.en and "approved layers" in issue.en


def test_noi_bo_is_a_warning_with_its_shift(
    loader: Any, db: psycopg.Connection[Any], approved_parcels: list[shapely.Geometry], tmp_path: Path
) -> None:
    local = Transformer.from_crs("EPSG:4326", LOCAL_TM3, always_xy=True)
    path = _file(approved_parcels, local, tmp_path / "noi_bo.gpkg", "EPSG:9209")
    issue = _crs_issue(_rejected(loader, db, path, "land_parcels"))
    assert issue.severity == "warning" and "nội bộ" in issue.message and "đông đông nam" in issue.message
    assert "east-south-east" in issue.en
    shift = float(issue.en.split(" lies ")[1].split(" m ")[0].replace(",", ""))
    assert 180 < shift < 260


def test_metres_labelled_as_degrees(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    to_tm3 = transformer(4326, 9209)
    features = []
    for i, c in enumerate(communes[:5]):
        e, n = to_tm3.transform(c["lon"], c["lat"])
        features.append({"type": "Feature", "properties": {"station_code": f"MD-{i}", "name": "Đội PCCC"},
                         "geometry": {"type": "Point", "coordinates": [e, n]}})  # fmt: skip
    path = tmp_path / "met_la_do.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    error = _rejected(loader, db, path)
    english = error.report.text("en")
    assert "these look like metres of a projected CRS (VN-2000 TM-3 or UTM) labelled as longitude/latitude" in english
    assert "--crs EPSG:9209" in str(error) and " km " not in english and "trông như mét" in str(error)
