"""The vector loader with real files in every format, good and bad, against the suite's PostGIS."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from gis_ioc.catalog import Catalog
from gis_ioc.errors import InvalidInput, LoadError
from gis_ioc.loaders import history, vn_text
from gis_ioc.loaders.crs_check import LOCAL_TM3
from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, LoadRejected, load_vector
from tests.conftest import scalar
from tests.loaders.conftest import TO_TM3, TO_TM3_105, digest, stations_frame, write_csv

TABLE = "layers.fire_stations"
DBF_MAP = {"MA_DOI": "station_code", "MA_XA": "commune_code", "TEN": "name", "SO_XE": "engines"}


def _stored(db: psycopg.Connection[Any], load_id: int) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(
        "SELECT station_code, commune_code, name, engines, ST_X(geom), ST_Y(geom), approval FROM layers.fire_stations "
        "WHERE load_id = %s",
        (load_id,),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _zip(path: Path, files: list[Path]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
    return path


def _shapefile(frame: gpd.GeoDataFrame, folder: Path, name: str, encoding: str | None, prj: bool) -> Path:
    """A zipped Shapefile like a district office's: text in ``encoding``, no .cpg, with or without .prj."""
    folder.mkdir(parents=True, exist_ok=True)
    out = frame.rename(columns={v: k for k, v in DBF_MAP.items()})  # DBF names have 10 characters at most
    if encoding is not None:  # bytes of the legacy encoding written one character per byte
        out["TEN"] = [vn_text.encode(v, encoding).decode("latin-1") for v in out["TEN"]]
    shp = folder / f"{name}.shp"
    pyogrio.write_dataframe(out, shp, encoding="ISO-8859-1" if encoding else "UTF-8")
    for sidecar in [shp.with_suffix(".cpg")] + ([] if prj else [shp.with_suffix(".prj")]):
        sidecar.unlink(missing_ok=True)
    files = [shp.with_suffix(s) for s in (".shp", ".shx", ".dbf", ".prj", ".cpg") if shp.with_suffix(s).exists()]
    return _zip(folder / f"{name}.zip", files)


def _rejected(loader: Any, db: psycopg.Connection[Any], path: Path, layer: str = "fire_stations", **kw: Any) -> Any:
    before = digest(db, f"layers.{layer}")
    with pytest.raises(LoadRejected) as info:
        loader(path, layer, **kw)
    assert digest(db, f"layers.{layer}") == before, "a refused load changed the database"
    return info.value


# -- the officer's story: a 2015 VN-2000 shapefile with TCVN3 text and no .prj -------------------------


def test_vn2000_tcvn3_shapefile_without_prj(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    names = [c for c in communes if all(ch.isascii() or ch.islower() for ch in c["name"])][:6]
    frame = stations_frame(names, 6, "HY15-")
    lon = np.array([g.x for g in frame.geometry])
    lat = np.array([g.y for g in frame.geometry])
    e, n = TO_TM3.transform(lon, lat)
    vn = frame.copy()
    vn.geometry = gpd.points_from_xy(e, n)
    vn = vn.set_crs(None, allow_override=True)
    path = _shapefile(vn, tmp_path / "shp", "pccc_2015", "tcvn3", prj=False)

    error = _rejected(loader, db, path, mapping=DBF_MAP)
    crs_issue = next(i for i in error.report.findings.issues if i.code == "crs")
    assert "không có hệ tọa độ" in crs_issue.message and "--crs EPSG:9209" in crs_issue.message
    assert crs_issue.en is not None and "no coordinate system" in crs_issue.en and "--crs EPSG:9209" in crs_issue.en
    assert error.report.encoding["used"] == "tcvn3"

    report = loader(
        path, "fire_stations", crs="EPSG:9209", source_unit="Phòng TN&MT huyện Ân Thi (2015)", mapping=DBF_MAP
    )
    assert report.status == "loaded" and report.loaded == 6 and report.approval == "draft"
    assert report.encoding["used"] == "tcvn3" and report.encoding["converted_values"] == 6
    assert "EPSG:6960" in report.crs["operation"] or "VN-2000 to WGS 84 (2)" in report.crs["operation"]
    stored = _stored(db, report.load_id)
    for i, code in enumerate(frame["station_code"]):
        _, name, _, x, y, approval = stored[code]
        assert name == frame["name"][i] and approval == "draft"
        # back in WGS 84 where the points came from: under a centimetre (1e-7° ≈ 1 cm)
        assert abs(x - lon[i]) < 1e-7 and abs(y - lat[i]) < 1e-7
    # provenance on the load record
    load = history.show(db, catalog, report.load_id)
    assert load["file_name"] == "pccc_2015.zip" and len(load["file_sha256"]) == 64
    assert load["source_unit"] == "Phòng TN&MT huyện Ân Thi (2015)" and load["loaded_by"] == "test"
    assert load["rows"] == {"draft": 6} and load["status"] == "done"
    # drafts are not published; approval publishes; rollback removes
    result = history.approve(db, catalog, report.load_id, by="lead")
    assert result["approved"] == 6
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.fire_stations WHERE load_id = %s AND approval = 'approved'",
            (report.load_id,),
        )
        == 6
    )
    history.rollback(db, catalog, report.load_id, by="lead")
    assert scalar(db, "SELECT count(*) FROM layers.fire_stations WHERE load_id = %s", (report.load_id,)) == 0
    assert scalar(db, "SELECT status FROM gis_ioc.loads WHERE id = %s", (report.load_id,)) == "rolled_back"


@pytest.mark.parametrize("encoding", ["vni", "cp1258", "utf-8"])
def test_shapefile_encodings_detected(
    loader: Any,
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
    catalog: Catalog,
    encoding: str,
) -> None:
    frame = stations_frame(communes[10:], 8, f"ENC-{encoding}-")
    path = _shapefile(frame, tmp_path, f"st_{encoding.replace('-', '')}", encoding, prj=True)
    report = loader(path, "fire_stations", mapping=DBF_MAP)
    assert report.encoding["used"] == encoding
    stored = _stored(db, report.load_id)
    assert sorted(v[1] for v in stored.values()) == sorted(frame["name"])
    history.rollback(db, catalog, report.load_id, by="test")


def test_encoding_override(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    frame = stations_frame(communes[20:], 3, "OVR-")
    path = _shapefile(frame, tmp_path, "ovr", "vni", prj=True)
    report = loader(path, "fire_stations", encoding="vni", mapping=DBF_MAP)
    assert report.encoding["how"] == "given with --encoding"
    assert sorted(v[1] for v in _stored(db, report.load_id).values()) == sorted(frame["name"])
    history.rollback(db, catalog, report.load_id, by="test")


# -- every format ------------------------------------------------------------------------------------


def _formats(frame: gpd.GeoDataFrame, folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    out["geojson"] = (folder / "st.geojson", {})
    frame.to_file(out["geojson"][0], driver="GeoJSON")
    gpkg = folder / "st.gpkg"
    frame.to_file(gpkg, layer="doi_pccc", driver="GPKG")
    frame.iloc[:1].to_file(gpkg, layer="khac", driver="GPKG")
    out["gpkg"] = (gpkg, {"source_layer": "doi_pccc"})
    out["fgb"] = (folder / "st.fgb", {})
    frame.to_file(out["fgb"][0], driver="FlatGeobuf")
    kml = folder / "st.kml"
    frame.to_file(kml, driver="KML")
    out["kml"] = (kml, {})
    out["kmz"] = (_zip(folder / "st.kmz", [kml]), {})
    lon = [g.x for g in frame.geometry]
    lat = [g.y for g in frame.geometry]
    rows = [[*r, x, y] for r, x, y in zip(frame.drop(columns="geometry").values.tolist(), lon, lat, strict=True)]
    out["csv-lonlat"] = (write_csv(folder / "st_lonlat.csv", [*frame.columns.drop("geometry"), "lon", "lat"], rows), {})
    e, n = TO_TM3.transform(lon, lat)
    rows = [[*r, x, y] for r, x, y in zip(frame.drop(columns="geometry").values.tolist(), n, e, strict=True)]
    out["csv-vn2000"] = (
        write_csv(folder / "st_vn.csv", [*frame.columns.drop("geometry"), "X", "Y"], rows),
        {"crs": "EPSG:9209"},
    )
    return out


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "fgb", "kml", "kmz", "csv-lonlat", "csv-vn2000"])
def test_formats(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog, fmt: str
) -> None:
    frame = stations_frame(communes[30:], 7, f"F-{fmt}-")
    path, kw = _formats(frame, tmp_path)[fmt]
    report = loader(path, "fire_stations", **kw)
    assert report.loaded == 7
    stored = _stored(db, report.load_id)
    for i, code in enumerate(frame["station_code"]):
        commune, name, engines, x, y, _ = stored[code]
        assert (commune, name, engines) == (frame["commune_code"][i], frame["name"][i], frame["engines"][i])
        assert abs(x - frame.geometry[i].x) < 1e-6 and abs(y - frame.geometry[i].y) < 1e-6
    history.rollback(db, catalog, report.load_id, by="test")


def test_gpkg_with_several_layers_asks_which(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = _formats(stations_frame(communes, 3, "G-"), tmp_path)["gpkg"]
    error = _rejected(loader, db, path)
    assert "doi_pccc" in str(error) and "--source-layer" in str(error)


def test_dxf_from_autocad(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    """Closed polylines drawn in CAD (VN-2000 metres) become green spaces; constant fields come from --set."""
    centre = communes[40]
    e0, n0 = TO_TM3.transform(centre["lon"], centre["lat"])
    squares = [shapely.box(e0 + i * 60, n0, e0 + i * 60 + 40, n0 + 40).exterior for i in range(3)]
    frame = gpd.GeoDataFrame({"Layer": ["CAYXANH"] * 3}, geometry=squares)
    dxf = tmp_path / "cayxanh.dxf"
    pyogrio.write_dataframe(frame, dxf, driver="DXF")
    report = loader(
        dxf, "green_spaces", crs="EPSG:9209", mapping={"EntityHandle": "space_code"},
        constants={"commune_code": centre["code"], "kind": "park"}, where="Layer = 'CAYXANH'",
    )  # fmt: skip
    assert report.loaded == 3
    areas = db.execute(
        "SELECT ST_Area(geom::geography) FROM layers.green_spaces WHERE load_id = %s", (report.load_id,)
    ).fetchall()
    assert all(abs(a[0] - 1600) < 2 for a in areas)  # 40 m × 40 m on the ground (TM-3 scale 0.9999)
    history.rollback(db, catalog, report.load_id, by="test")


# -- coordinate mistakes ------------------------------------------------------------------------------


def _vn_csv(frame: gpd.GeoDataFrame, path: Path, transformer: Any, swap: bool = False) -> Path:
    lon = [g.x for g in frame.geometry]
    lat = [g.y for g in frame.geometry]
    e, n = transformer.transform(lon, lat)
    x_col, y_col = (e, n) if swap else (n, e)  # Vietnamese X is the northing
    rows = [[*r, x, y] for r, x, y in zip(frame.drop(columns="geometry").values.tolist(), x_col, y_col, strict=True)]
    return write_csv(path, [*frame.columns.drop("geometry"), "X", "Y"], rows)


def test_swapped_axes(loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path) -> None:
    path = _vn_csv(stations_frame(communes, 10, "SW-"), tmp_path / "swapped.csv", TO_TM3, swap=True)
    error = _rejected(loader, db, path, crs="EPSG:9209")
    assert "đổi chỗ" in str(error) and "swapped" in error.report.text("en")


def test_wrong_tm3_meridian(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = _vn_csv(stations_frame(communes, 20, "WZ-"), tmp_path / "hanoi_zone.csv", TO_TM3_105)
    error = _rejected(loader, db, path, crs="EPSG:9209")
    # points far from roads and parcels: the outline alone cannot tell TM-3 105°00' from UTM 48N (0.7 km);
    # UTM 48N is named first (the usual format), TM-3 105°00' with it
    assert "--crs EPSG:3405" in str(error) and "EPSG:5897" in str(error) and "52" in str(error)
    assert "dưới 1 km" in str(error) and "under a kilometre" in error.report.text("en")


def test_degrees_in_a_projected_file(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    frame = stations_frame(communes, 5, "DG-").set_crs("EPSG:9209", allow_override=True)
    path = tmp_path / "deg.gpkg"
    frame.to_file(path, driver="GPKG")
    error = _rejected(loader, db, path)
    assert "trông như độ" in str(error) and "--crs EPSG:4326" in str(error)
    english = error.report.text("en")
    assert "these look like degrees (longitude/latitude) labelled as metres of EPSG:9209" in english
    assert " km " not in english  # no distance between degrees and metres


# -- quality gates ------------------------------------------------------------------------------------


def test_missing_required_bad_values_and_duplicate_keys(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    frame = stations_frame(communes, 5, "Q-")
    frame.loc[1, "name"] = None
    frame["engines"] = ["1", "hai", "3", "-2", "5"]
    frame.loc[4, "station_code"] = "Q-000"
    path = tmp_path / "bad.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = _rejected(loader, db, path).report
    got = {(i.row, i.field, i.code) for i in report.findings.issues if i.severity == "error"}
    assert {(2, "name", "required"), (2, "engines", "bad_value"), (4, "engines", "out_of_range"),
            (5, "station_code", "duplicate_key")} <= got  # fmt: skip
    frame = stations_frame(communes, 3, "Q2-").drop(columns="name")
    frame.to_file(path, driver="GeoJSON")
    issues = _rejected(loader, db, path).report.findings.issues
    assert any(i.code == "missing_column" and i.field == "name" for i in issues)


def test_outside_province_row(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    frame = stations_frame(communes, 12, "OUT-")
    frame.loc[3, "geometry"] = shapely.Point(105.80, 21.03)  # Hà Nội
    path = tmp_path / "out.geojson"
    frame.to_file(path, driver="GeoJSON")
    issues = _rejected(loader, db, path).report.findings.issues
    assert [(i.row, i.code) for i in issues if i.severity == "error"] == [(4, "outside_province")]


def _parcels(centre: dict[str, Any], n: int, prefix: str, size: float = 8.0) -> gpd.GeoDataFrame:
    e0, n0 = TO_TM3.transform(centre["lon"], centre["lat"])
    to_wgs = __import__("pyproj").Transformer.from_crs(
        __import__("tests.loaders.conftest", fromlist=["VN2000_TM3_10530"]).VN2000_TM3_10530,
        "EPSG:4326",
        always_xy=True,
    )
    geoms = []
    for i in range(n):
        box = shapely.box(e0 + i * size, n0, e0 + (i + 1) * size, n0 + size)
        geoms.append(shapely.transform(box, lambda xy: np.column_stack(to_wgs.transform(xy[:, 0], xy[:, 1]))))
    return gpd.GeoDataFrame(
        {
            "parcel_code": [f"{prefix}-{i}" for i in range(n)],
            "commune_code": centre["code"],
            "map_sheet": 99,
            "parcel_number": list(range(1, n + 1)),
            "land_use": "ONT",
            "area_m2": size * size,
            "legal_status": "certified",
            "survey_date": "2026-06-30",
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


def test_self_intersecting_and_overlapping_parcels(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path
) -> None:
    frame = _parcels(empty_spot, 4, "SI")
    x0, y0, x1, y1 = frame.geometry[0].bounds
    frame.loc[0, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # a bow-tie
    frame.loc[3, "geometry"] = shapely.affinity.translate(frame.geometry[2], (x1 - x0) * 0.5)  # half on its neighbour
    path = tmp_path / "parcels.gpkg"
    frame.to_file(path, driver="GPKG")
    issues = _rejected(loader, db, path, layer="land_parcels").report.findings.issues
    codes = {(i.row, i.code) for i in issues if i.severity == "error"}
    assert (1, "invalid_geometry") in codes and (4, "overlap") in codes
    bowtie = next(i for i in issues if i.code == "invalid_geometry")
    assert "Self-intersection" in bowtie.message


def test_parcels_overlapping_approved_ones(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    first = _parcels(empty_spot, 3, "OV1")
    path = tmp_path / "p1.geojson"
    first.to_file(path, driver="GeoJSON")
    report = loader(path, "land_parcels")
    history.approve(db, catalog, report.load_id, by="test")
    second = _parcels(empty_spot, 3, "OV2")
    second.geometry = second.geometry.translate(0.00005, 0)  # about 5 m east: overlaps the approved parcels
    path2 = tmp_path / "p2.geojson"
    second.to_file(path2, driver="GeoJSON")
    issues = _rejected(loader, db, path2, layer="land_parcels").report.findings.issues
    assert {i.code for i in issues if i.severity == "error"} == {"overlap_existing"}
    history.rollback(db, catalog, report.load_id, by="test")


def test_warnings_need_the_flag(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    frame = stations_frame(communes[50:], 3, "W-")
    frame.loc[2, "geometry"] = frame.geometry[1]  # the same point twice: a warning
    frame.loc[2, "commune_code"] = frame["commune_code"][1]  # (its commune goes with it: else a row error)
    path = tmp_path / "dup.geojson"
    frame.to_file(path, driver="GeoJSON")
    error = _rejected(loader, db, path)
    assert "--accept-warnings" in str(error)
    assert [(i.row, i.code) for i in error.report.findings.issues if i.severity == "warning"] == [
        (3, "duplicate_geometry")
    ]
    report = loader(path, "fire_stations", accept_warnings=True)
    assert report.loaded == 3
    history.rollback(db, catalog, report.load_id, by="test")


def test_dry_run_writes_nothing(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "d.geojson"
    stations_frame(communes, 4, "DRY-").to_file(path, driver="GeoJSON")
    before = digest(db, TABLE)
    report = loader(path, "fire_stations", dry_run=True)
    assert report.status == "checked" and report.load_id is None and digest(db, TABLE) == before


# -- bad files ----------------------------------------------------------------------------------------


def test_zip_slip_refused(loader: Any, db: psycopg.Connection[Any], tmp_path: Path, settings: Any) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../x", "owned")
        zf.writestr("ok.geojson", '{"type": "FeatureCollection", "features": []}')
    error = _rejected(loader, db, path)
    assert "ra ngoài tệp nén" in str(error) and "points outside the archive" in error.report.text("en")
    assert not (settings.home / "work" / "x").exists() and not (settings.home / "x").exists()
    assert not any(settings.home.rglob("x"))


def test_zip_bomb_claim_refused(loader: Any, db: psycopg.Connection[Any], tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.geojson", b" " * 1000)
    data = bytearray(path.read_bytes())
    claim = (2 << 30).to_bytes(4, "little")  # 2 GiB uncompressed, in the local and the central header
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = claim
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = claim
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 2000
    error = _rejected(loader, db, path)
    assert "GB" in str(error) and "giới hạn" in str(error) and "limit" in error.report.text("en")


@pytest.mark.parametrize("case", ["empty", "truncated-gpkg", "truncated-zip", "not-json", "no-features"])
def test_broken_files(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, case: str
) -> None:
    if case == "empty":
        path = tmp_path / "empty.geojson"
        path.write_bytes(b"")
        expected = "rỗng"
    elif case == "truncated-gpkg":
        full = tmp_path / "full.gpkg"
        stations_frame(communes, 50, "TR-").to_file(full, driver="GPKG")
        path = tmp_path / "cut.gpkg"
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
        expected = "cut.gpkg"
    elif case == "truncated-zip":
        full = _shapefile(stations_frame(communes, 5, "TZ-"), tmp_path / "z", "tz", None, prj=True)
        path = tmp_path / "cut.zip"
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        expected = "zip"
    elif case == "not-json":
        path = tmp_path / "x.geojson"
        path.write_text("{ this is not json", encoding="utf-8")
        expected = "x.geojson"
    else:
        path = tmp_path / "none.geojson"
        path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
        expected = "không có đối tượng"
    error = _rejected(loader, db, path)
    assert expected in str(error)


def test_unknown_layer_and_mode(loader: Any, tmp_path: Path, communes: list[dict[str, Any]]) -> None:
    path = tmp_path / "s.geojson"
    stations_frame(communes, 2, "U-").to_file(path, driver="GeoJSON")
    with pytest.raises(InvalidInput, match="unknown layer"):
        loader(path, "nope")
    with pytest.raises(InvalidInput, match="versioned"):
        loader(path, "communes")
    with pytest.raises(InvalidInput, match="mode 'merge'"):
        loader(path, "fire_stations", mode="merge")


# -- modes, approval, rollback ------------------------------------------------------------------------


def test_upsert_and_replace_with_rollback(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    approved_before = db.execute(
        "SELECT fid FROM layers.fire_stations WHERE approval = 'approved' ORDER BY fid"
    ).fetchall()
    base = stations_frame(communes[60:], 4, "UP-")
    path = tmp_path / "a.geojson"
    base.to_file(path, driver="GeoJSON")
    first = loader(path, "fire_stations")
    history.approve(db, catalog, first.load_id, by="test")

    changed = base.copy()
    changed["engines"] = [10, 11, 12, 13]
    changed = changed.iloc[:2]
    path2 = tmp_path / "b.geojson"
    changed.to_file(path2, driver="GeoJSON")
    with pytest.raises(LoadRejected, match="lỗi"):
        loader(path2, "fire_stations")  # append: the keys exist already
    second = loader(path2, "fire_stations", mode="upsert")
    result = history.approve(db, catalog, second.load_id, by="test")
    assert result == {"load_id": second.load_id, "approved": 2, "superseded": 2, "layer": "fire_stations"}
    engines = dict(
        db.execute(
            "SELECT station_code, engines FROM layers.fire_stations "
            "WHERE station_code LIKE 'UP-%' AND approval = 'approved'"
        ).fetchall()
    )
    assert engines == {"UP-000": 10, "UP-001": 11, "UP-002": 3, "UP-003": 4}
    with pytest.raises(LoadError, match="replaced in part by load"):
        history.rollback(db, catalog, first.load_id, by="test")

    # replace: the whole layer gives way to the file, and comes back on rollback
    snapshot = digest(db, TABLE)
    third = loader(path2, "fire_stations", mode="replace")
    history.approve(db, catalog, third.load_id, by="test")
    assert scalar(db, "SELECT count(*) FROM layers.fire_stations WHERE approval = 'approved'") == 2
    history.rollback(db, catalog, third.load_id, by="test")
    history.rollback(db, catalog, second.load_id, by="test")
    history.rollback(db, catalog, first.load_id, by="test")
    after = db.execute("SELECT fid FROM layers.fire_stations WHERE approval = 'approved' ORDER BY fid").fetchall()
    assert after == approved_before
    assert snapshot["layers.fire_stations"][0] > 0


def test_repairable_ring_is_a_note(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    frame = _parcels(empty_spot, 2, "RP")
    x0, y0, x1, y1 = frame.geometry[0].bounds
    # a ring that runs back over itself (a spike): invalid, and its repair keeps one polygon
    frame.loc[0, "geometry"] = shapely.MultiPolygon(
        [
            shapely.Polygon(
                [
                    (x0, y0),
                    (x1, y0),
                    (x1, y1),
                    (x0, y1),
                    (x0, y0 + (y1 - y0) / 2),
                    (x0 - 0.00002, y0 + (y1 - y0) / 2),
                    (x0, y0 + (y1 - y0) / 2),
                ]
            )
        ]
    )
    path = tmp_path / "spike.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = loader(path, "land_parcels")
    repaired = [i for i in report.findings.issues if i.code == "repaired_geometry"]
    assert [(i.row, i.severity) for i in repaired] == [(1, "note")]
    assert scalar(
        db, "SELECT bool_and(ST_IsValid(geom)) FROM layers.land_parcels WHERE load_id = %s", (report.load_id,)
    )
    history.rollback(db, catalog, report.load_id, by="test")


def test_trusted_feed_is_approved_at_once(
    settings: Any, catalog: Catalog, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "feed.geojson"
    stations_frame(communes[90:], 3, "FEED-").to_file(path, driver="GeoJSON")
    config = dataclasses.replace(LoaderConfig.from_settings(settings), auto_approve_units=("Cảnh sát PCCC tỉnh (API)",))
    report = load_vector(
        db, catalog, path, LoadOptions("fire_stations", source_unit="Cảnh sát PCCC tỉnh (API)"), config
    )
    assert report.approval == "approved"
    assert (
        scalar(db, "SELECT approval || '/' || approved_by FROM gis_ioc.loads WHERE id = %s", (report.load_id,))
        == "approved/auto (Cảnh sát PCCC tỉnh (API))"
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.fire_stations WHERE load_id = %s AND approval = 'approved'",
            (report.load_id,),
        )
        == 3
    )
    other = load_vector(
        db, catalog, path, LoadOptions("fire_stations", source_unit="someone else", mode="upsert"), config
    )
    assert other.approval == "draft"
    history.rollback(db, catalog, other.load_id, by="test")
    history.rollback(db, catalog, report.load_id, by="test")


@pytest.mark.parametrize("stage", ["write", "gates", "merge", "finish"])
def test_a_crash_mid_load_changes_nothing(
    settings: Any,
    catalog: Catalog,
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
    stage: str,
) -> None:
    path = tmp_path / "crash.geojson"
    stations_frame(communes[95:], 5, f"CR-{stage}-").to_file(path, driver="GeoJSON")
    before = digest(db, TABLE)

    def crash(at: str, done: int, total: int) -> None:
        if at == stage:
            raise KeyboardInterrupt(f"power cut during {stage}")

    with pytest.raises(KeyboardInterrupt):
        load_vector(
            db, catalog, path, LoadOptions("fire_stations"), LoaderConfig.from_settings(settings), progress=crash
        )
    assert digest(db, TABLE) == before
    assert db.execute("SELECT to_regclass('pg_temp._gis_ioc_stage')").fetchone() == (None,)


def test_vn2000_noi_bo_near_the_border(
    loader: Any, db: psycopg.Connection[Any], tmp_path: Path, catalog: Catalog
) -> None:
    """Coordinates made without the datum shift ("VN-2000 nội bộ") land ~220 m off: the border rows show it."""
    province = shapely.from_wkb(db.execute("SELECT ST_AsBinary(geom) FROM layers.province").fetchone()[0])
    ring = max(shapely.get_parts(province.buffer(-0.0012)), key=lambda p: p.area).exterior  # ~120 m inside
    points = [ring.interpolate(f, normalized=True) for f in np.linspace(0, 1, 60, endpoint=False)]
    local = Transformer.from_crs("EPSG:4326", LOCAL_TM3, always_xy=True)
    e, n = local.transform([p.x for p in points], [p.y for p in points])
    frame = gpd.GeoDataFrame(
        {"station_code": [f"NB-{i}" for i in range(60)], "name": "Đội PCCC"},  # the commune: from the geometry
        geometry=gpd.points_from_xy(e, n), crs="EPSG:9209",
    )  # fmt: skip
    path = tmp_path / "noi_bo.gpkg"
    frame.to_file(path, driver="GPKG")
    issues = _rejected(loader, db, path).report.findings.issues
    crs_issue = next(i for i in issues if i.code == "crs")
    assert crs_issue.severity == "warning" and "nội bộ" in crs_issue.message and "+towgs84" not in crs_issue.message
    assert any(i.code == "outside_province" for i in issues)
    report = loader(path, "fire_stations", crs=LOCAL_TM3)
    assert report.loaded == 60
    stored = db.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM layers.fire_stations WHERE load_id = %s ORDER BY fid", (report.load_id,)
    ).fetchall()
    assert max(abs(x - p.x) + abs(y - p.y) for (x, y), p in zip(stored, points, strict=True)) < 1e-7
    history.rollback(db, catalog, report.load_id, by="test")


def _schema_of(db: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    """The table's indexes and foreign keys, with their validity (what a bulk merge drops and restores)."""
    return db.execute(
        """SELECT 'index', c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass
           UNION ALL
           SELECT 'constraint', conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
            WHERE conrelid = %s::regclass
           ORDER BY 1, 2""",
        (table, table),
    ).fetchall()


@pytest.mark.parametrize("rebuild", [False, True])
def test_bulk_merge_restores_the_foreign_key_and_index(
    loader: Any,
    db: psycopg.Connection[Any],
    empty_spot: dict[str, Any],
    tmp_path: Path,
    catalog: Catalog,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    rebuild: bool,
) -> None:
    """Large loads insert without the per-row FK trigger (and index upkeep): the table ends as it was."""
    from gis_ioc.loaders import vector

    monkeypatch.setattr(vector, "BULK_ROWS", 1)
    monkeypatch.setattr(vector, "_rebuild_indexes", lambda existing, n: rebuild)
    table = "layers.land_parcels"
    schema = _schema_of(db, table)
    assert any(kind == "constraint" and "REFERENCES" in d and "loads(id)" in d for kind, _, d, _ in schema)

    frame = _parcels(empty_spot, 3, f"BULK{int(rebuild)}")
    path = tmp_path / "bulk.gpkg"
    frame.to_file(path, driver="GPKG")
    report = loader(path, "land_parcels")
    assert report.loaded == 3
    assert _schema_of(db, table) == schema
    assert scalar(db, f"SELECT count(*) FROM {table} WHERE load_id = %s", (report.load_id,)) == 3
    history.rollback(db, catalog, report.load_id, by="test")

    # a value beyond the integer column fails in the merge: nothing written, constraint and index intact
    frame["map_sheet"] = 3_000_000_000
    frame.to_file(path, driver="GPKG")
    rejected = _rejected(loader, db, path, layer="land_parcels")
    assert "out of range" in rejected.report.message
    assert _schema_of(db, table) == schema

    # a crash after the merge rolls the dropped constraint and index back with the rows
    frame["map_sheet"] = 7
    frame.to_file(path, driver="GPKG")
    before = digest(db, table)

    def crash(at: str, done: int, total: int) -> None:
        if at == "finish":
            raise KeyboardInterrupt("power cut after the merge")

    with pytest.raises(KeyboardInterrupt):
        load_vector(
            db, catalog, path, LoadOptions("land_parcels"), LoaderConfig.from_settings(settings), progress=crash
        )
    assert digest(db, table) == before
    assert _schema_of(db, table) == schema


def test_binary_copy_keeps_every_type(
    loader: Any, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path, catalog: Catalog
) -> None:
    """Booleans (có/không/blank), integers given as text, Vietnamese text: stored as read (binary COPY)."""
    rows = communes[40:43]
    frame = gpd.GeoDataFrame(
        {
            "shelter_code": [f"BIN-{i}" for i in range(3)],
            "commune_code": [r["code"] for r in rows],
            "name": ["Nhà văn hóa thôn Đông", "Trường THCS Tân Hưng", "Điểm cao đê tả"],
            "capacity": ["120", "2,0e2", ""],  # the third is blank: required, so it must be refused
            "kind": ["community_hall", "school", "high_ground"],
            "flood_safe": ["có", "không", ""],
        },
        geometry=[shapely.Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )
    path = tmp_path / "shelters.geojson"
    frame.to_file(path, driver="GeoJSON")
    rejected = _rejected(loader, db, path, layer="shelters")
    assert {(i.row, i.code) for i in rejected.report.findings.issues if i.severity == "error"} == {(3, "required")}
    frame.loc[2, "capacity"] = "35"
    frame.to_file(path, driver="GeoJSON")
    report = loader(path, "shelters")
    stored = db.execute(
        "SELECT shelter_code, name, capacity, flood_safe FROM layers.shelters WHERE load_id = %s ORDER BY 1",
        (report.load_id,),
    ).fetchall()
    assert stored == [
        ("BIN-0", "Nhà văn hóa thôn Đông", 120, True),
        ("BIN-1", "Trường THCS Tân Hưng", 200, False),
        ("BIN-2", "Điểm cao đê tả", 35, None),
    ]
    history.rollback(db, catalog, report.load_id, by="test")
