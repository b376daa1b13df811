"""What geometry tells: the commune a feature lies in, areas and lengths on the ellipsoid (issue 16, part 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import shapely

from gis_ioc.catalog import Catalog
from gis_ioc.loaders import derive, history
from tests.loaders.conftest import TO_TM3
from tests.loaders.test_vector import _parcels, _rejected


def _schools(communes: list[dict[str, Any]], picks: list[int], prefix: str) -> gpd.GeoDataFrame:
    rows = [communes[i] for i in picks]
    return gpd.GeoDataFrame(
        {
            "school_code": [f"{prefix}{i}" for i in range(len(rows))],
            "name": [f"Trường THCS {r['name']}" for r in rows],
            "level": ["lower_secondary"] * len(rows),
        },
        geometry=[shapely.Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )


def test_commune_code_comes_from_where_the_school_lies(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    frame = _schools(communes, [3, 17, 58], "DV-")
    path = tmp_path / "truong.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = loader(path, "schools")
    assert report.status == "loaded" and report.loaded == 3
    assert "commune_code" in report.derived
    stored = dict(
        db.execute("SELECT school_code, commune_code FROM layers.schools WHERE load_id = %s", (report.load_id,))
    )
    assert stored == {"DV-0": communes[3]["code"], "DV-1": communes[17]["code"], "DV-2": communes[58]["code"]}
    history.rollback(db, catalog, report.load_id, by="test")


def test_a_given_commune_code_that_disagrees_is_a_row_error(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    frame = _schools(communes, [5, 6, 7], "DX-")
    frame["commune_code"] = [communes[5]["code"], "NA", communes[20]["code"]]
    path = tmp_path / "truong_sai_xa.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = _rejected(loader, db, path, "schools").report
    errors = [i for i in report.findings.issues if i.severity == "error"]
    assert [(i.row, i.code, i.field) for i in errors] == [(2, "commune_mismatch", "commune_code"),
                                                          (3, "commune_mismatch", "commune_code")]  # fmt: skip
    assert "'NA'" in errors[0].message and communes[6]["code"] in errors[0].message
    assert errors[0].message.startswith("mã xã") and errors[0].en is not None
    assert repr(communes[20]["code"]) in errors[1].message and communes[7]["code"] in errors[1].message


def test_parcels_without_commune_or_area_from_a_dxf(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    """A CAD drawing of parcels (VN-2000 metres): commune and area come from the geometry."""
    e0, n0 = TO_TM3.transform(empty_spot["lon"], empty_spot["lat"])
    rings = [shapely.box(e0 + i * 12, n0, e0 + i * 12 + 10, n0 + 8).exterior for i in range(3)]
    dxf = tmp_path / "ranh_thua.dxf"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"Layer": ["RANH_THUA"] * 3}, geometry=rings), dxf, driver="DXF")
    report = loader(
        dxf, "land_parcels", crs="EPSG:9209", mapping={"EntityHandle": "parcel_code"}, where="Layer = 'RANH_THUA'",
        constants={"map_sheet": "7", "parcel_number": "1", "land_use": "ONT", "legal_status": "certified"},
    )  # fmt: skip
    assert report.loaded == 3 and set(report.derived) == {"commune_code", "area_m2"}
    rows = db.execute(
        "SELECT commune_code, area_m2, ST_Area(geom::geography) FROM layers.land_parcels WHERE load_id = %s",
        (report.load_id,),
    ).fetchall()
    assert {r[0] for r in rows} == {empty_spot["code"]}
    for _, area, geodesic in rows:
        assert abs(area - geodesic) < 0.01 and abs(area - 80) < 0.1  # 10 m × 8 m (TM-3 scale 0.9999)
    history.rollback(db, catalog, report.load_id, by="test")


def test_blank_commune_and_area_cells_are_filled(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    frame = _parcels(empty_spot, 3, "DB")
    frame["commune_code"] = [empty_spot["code"], None, None]
    frame["area_m2"] = [64.0, None, 64.0]
    path = tmp_path / "thua_trong.gpkg"
    frame.to_file(path, driver="GPKG")
    report = loader(path, "land_parcels", dry_run=True)
    assert report.status == "checked" and report.errors == 0
    assert "commune_code" in report.derived and "area_m2" in report.derived


def test_road_length_and_commune_by_most_length(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    c = communes[30]
    line = shapely.LineString([(c["lon"], c["lat"]), (c["lon"] + 0.0015, c["lat"] + 0.0008)])
    frame = gpd.GeoDataFrame(
        {"road_code": ["DL-1"], "road_class": ["commune"]}, geometry=[shapely.MultiLineString([line])], crs="EPSG:4326"
    )
    path = tmp_path / "duong.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = loader(path, "roads")
    assert set(report.derived) == {"commune_code", "length_m"}
    code, length, geodesic, most = db.execute(
        """SELECT r.commune_code, r.length_m, ST_Length(r.geom::geography),
                  (SELECT c.code FROM layers.communes c WHERE c.valid_to IS NULL AND ST_Intersects(c.geom, r.geom)
                    ORDER BY ST_Length(ST_Intersection(c.geom, r.geom)::geography) DESC LIMIT 1)
             FROM layers.roads r WHERE r.load_id = %s""",
        (report.load_id,),
    ).fetchone()
    assert code == most and abs(length - geodesic) < 0.01 and 150 < length < 200
    history.rollback(db, catalog, report.load_id, by="test")


def test_commune_by_most_area_length_and_border_points() -> None:
    """Two side-by-side communes: a polygon 70/30 across the border, a line likewise, a point on it."""
    left, right = shapely.box(106.0, 20.6, 106.1, 20.7), shapely.box(106.1, 20.6, 106.2, 20.7)
    geoms = np.array([left, right], dtype=object)
    communes = derive.Communes(["L", "R"], ["Trái", "Phải"], geoms, shapely.STRtree(geoms))
    features = np.array(
        [
            shapely.box(106.093, 20.65, 106.103, 20.651),  # 70 % left
            shapely.LineString([(106.097, 20.62), (106.107, 20.62)]),  # 30 % left
            shapely.Point(106.1, 20.65),  # on the border
            shapely.Point(106.15, 20.65),  # inside R
        ],
        dtype=object,
    )
    best, shares = derive.commune_shares(features, np.ones(4, dtype=bool), communes)
    assert best.tolist() == [0, 1, 0, 1]
    assert abs(shares[0][0] - 0.7) < 1e-6 and abs(shares[1][0] - 0.3) < 1e-6
    assert shares[2] == {0: 1.0, 1: 1.0}
    given = np.array([1, 0, 1, 0])  # R for the polygon (30 %), L for the line (30 %): both below a third
    best2, _ = derive.commune_shares(features, np.ones(4, dtype=bool), communes, given)
    assert best2.tolist() == best.tolist()
