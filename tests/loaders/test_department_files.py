"""Files shaped as departments hand them over (issue 16): Vietnamese headers and labels as values, no
catalog internals (no commune_code, no area_m2), in the encodings offices use; loaded with column mapping
alone, through Python, the command line and the GIS officer's web upload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.loaders import history, matching, vn_text
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.loaders.conftest import TO_TM3, digest

GIS_IOC = Path(sys.executable).parent / "gis-ioc"
HEADER = ["Mã trường", "Tên trường", "Cấp học", "Loại hình", "Số học sinh", "Kinh độ", "Vĩ độ"]
LEVELS = [("THCS", "lower_secondary"), ("Tiểu học", "primary"), ("Mầm non", "preschool"), ("thpt", "upper_secondary")]


def _excel_csv(path: Path, communes: list[dict[str, Any]], prefix: str, encoding: str = "utf-8-sig") -> Path:
    """What Excel writes for 'CSV UTF-8' (BOM, CRLF), decimal commas; or the same text in a legacy encoding."""
    lines = [",".join(HEADER)]
    for i, (label, _) in enumerate(LEVELS):
        c = communes[60 + i]
        lon, lat = f"{c['lon']:.9f}".replace(".", ","), f"{c['lat']:.9f}".replace(".", ",")
        lines.append(f'{prefix}{i},Trường {label} {c["name"]},{label},Công lập,{300 + i},"{lon}","{lat}"')
    text = "\r\n".join(lines) + "\r\n"
    data = vn_text.encode(text, encoding) if encoding in ("tcvn3", "vni", "cp1258") else text.encode(encoding)
    path.write_bytes(data)
    return path


def _check_schools(db: psycopg.Connection[Any], load_id: int, communes: list[dict[str, Any]], prefix: str) -> None:
    rows = db.execute(
        "SELECT school_code, commune_code, level, ownership, pupils, name FROM layers.schools WHERE load_id = %s",
        (load_id,),
    ).fetchall()
    got = {r[0]: r[1:] for r in rows}
    for i, (label, code) in enumerate(LEVELS):
        commune, level, ownership, pupils, name = got[f"{prefix}{i}"]
        assert (commune, level, ownership, pupils) == (communes[60 + i]["code"], code, "public", 300 + i)
        assert name == f"Trường {label} {communes[60 + i]['name']}"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp1258", "tcvn3", "vni"])
def test_excel_csv_with_vietnamese_headers_and_labels(
    loader: Any,
    db: psycopg.Connection[Any],
    communes: list[dict[str, Any]],
    tmp_path: Path,
    catalog: Catalog,
    encoding: str,
) -> None:
    if encoding == "tcvn3":  # TCVN3 has no capitals with tone marks: such names are not kept exactly
        communes = [c for c in communes if all(ch.isascii() or ch.islower() for ch in c["name"])]
    prefix = f"CSV-{encoding}-"
    path = _excel_csv(tmp_path / "truong_hoc.csv", communes, prefix, encoding)
    report = loader(path, "schools")
    assert report.status == "loaded" and report.loaded == 4, report.as_dict()
    assert report.encoding["used"] == ("utf-8" if encoding == "utf-8-sig" else encoding)
    assert report.mapping == {"school_code": "Mã trường", "name": "Tên trường", "level": "Cấp học",
                              "ownership": "Loại hình", "pupils": "Số học sinh"}  # fmt: skip
    assert "commune_code" in report.derived
    assert any(i.code == "value_matched" and i.field == "level" for i in report.findings.issues)
    _check_schools(db, report.load_id, communes, prefix)
    history.rollback(db, catalog, report.load_id, by="test")


def test_values_match_labels_whatever_the_spelling() -> None:
    from gis_ioc.catalog.store import load_catalog

    catalog = load_catalog(Path("layers"), Path("styles"), Path("config"))
    owner = matching.value_lookup(catalog.layer("land_parcels").field("owner_type"))  # type: ignore[arg-type]
    road = matching.value_lookup(catalog.layer("roads").field("road_class"))  # type: ignore[arg-type]
    level = matching.value_lookup(catalog.layer("schools").field("level"))  # type: ignore[arg-type]
    assert owner[matching.key("Hộ gia đình, cá nhân")] == "household"
    assert owner[matching.key("HO GIA DINH  CA NHAN")] == "household"
    assert road[matching.key("do_thi")] == "urban" and road[matching.key("Đường Tỉnh")] == "provincial"
    assert level[matching.key("thcs")] == "lower_secondary" and level[matching.key("Trung hoc co so")] == (
        "lower_secondary"
    )
    assert matching.key("Đất ở tại nông thôn") == "datotainongthon"


def _parcels_gpkg(spot: dict[str, Any], tmp_path: Path, prefix: str) -> tuple[Path, gpd.GeoDataFrame]:
    """A district's parcels in VN-2000 metres: Vietnamese headers, labels as values, no commune, no area."""
    e0, n0 = TO_TM3.transform(spot["lon"], spot["lat"])
    frame = gpd.GeoDataFrame(
        {
            "Mã thửa": [f"{prefix}{i}" for i in range(3)],
            "Tờ bản đồ": [12, 12, 12],
            "Số thửa": [101, 102, 103],
            "Loại đất": ["Đất ở tại nông thôn", "ONT", "dat trong lua con lai"],
            "Tình trạng pháp lý": ["Đã cấp giấy chứng nhận", "Chưa cấp GCN", "da cap gcn"],
            "Chủ sử dụng": ["Hộ gia đình, cá nhân", "Tổ chức", "UBND xã"],
            "GHI_CHU": ["", "", ""],
        },
        geometry=[shapely.box(e0 + i * 11, n0, e0 + i * 11 + 10, n0 + 9) for i in range(3)],
        crs="EPSG:9209",
    )
    path = tmp_path / "thua_dat_xa.gpkg"
    frame.to_file(path, driver="GPKG")
    return path, frame


def test_parcels_as_a_district_hands_them_over(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    path, _ = _parcels_gpkg(empty_spot, tmp_path, "DP-")
    report = loader(path, "land_parcels")
    assert report.loaded == 3, report.as_dict()
    assert set(report.derived) == {"commune_code", "area_m2"}
    rows = db.execute(
        """SELECT parcel_code, commune_code, map_sheet, parcel_number, land_use, legal_status, owner_type, area_m2
             FROM layers.land_parcels WHERE load_id = %s ORDER BY parcel_code""",
        (report.load_id,),
    ).fetchall()
    code = empty_spot["code"]
    assert [r[:7] for r in rows] == [
        ("DP-0", code, 12, 101, "ONT", "certified", "household"),
        ("DP-1", code, 12, 102, "ONT", "not_certified", "organisation"),
        ("DP-2", code, 12, 103, "LUK", "certified", "commune_people_committee"),
    ]
    assert all(abs(r[7] - 90) < 0.1 for r in rows)  # 10 m × 9 m
    history.rollback(db, catalog, report.load_id, by="test")


def test_dry_run_proposes_a_map_line_that_loads(
    loader: Any, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    path, frame = _parcels_gpkg(empty_spot, tmp_path, "PM-")
    odd = frame.rename(columns={"Tờ bản đồ": "So_to_BD", "Số thửa": "SoThua_DC"})
    odd.to_file(path, driver="GPKG")
    before = digest(db, "layers.land_parcels")
    with pytest.raises(Exception) as info:
        loader(path, "land_parcels", dry_run=True)
    report = info.value.report  # type: ignore[attr-defined]
    missing = {i.field for i in report.findings.issues if i.code == "missing_column"}
    assert missing == {"map_sheet", "parcel_number"}
    assert report.proposed_map == "--map So_to_BD=map_sheet --map SoThua_DC=parcel_number"
    assert digest(db, "layers.land_parcels") == before
    mapping = dict(arg.split("=") for arg in report.proposed_map.replace("--map ", "").split())
    assert loader(path, "land_parcels", mapping=mapping, dry_run=True).status == "checked"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
    env.update({"GIS_IOC_HOME": str(settings.home), "GIS_IOC_DB_PORT": str(settings.db_port),
                "GIS_IOC_DB_NAME": settings.db_name, "COLUMNS": "200"})  # fmt: skip
    return subprocess.run([str(GIS_IOC), *args], env=env, capture_output=True, text=True, timeout=300)


def test_command_line_speaks_vietnamese_first(
    settings: Settings, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path
) -> None:
    path, frame = _parcels_gpkg(empty_spot, tmp_path, "CL-")
    frame.rename(columns={"Tờ bản đồ": "So_to_BD"}).to_file(path, driver="GPKG")
    vi = _run(settings, "load", "vector", str(path), "--layer", "land_parcels", "--dry-run")
    assert vi.returncode == 1 and "Traceback" not in vi.stderr
    assert "trường bắt buộc map_sheet" in vi.stderr and "--map So_to_BD=map_sheet" in vi.stderr
    assert "0 features read as ?" not in vi.stderr and "lỗi" in vi.stderr
    en = _run(settings, "load", "vector", str(path), "--layer", "land_parcels", "--dry-run", "--lang", "en")
    assert en.returncode == 1 and "required field map_sheet" in en.stderr and "nothing was loaded" in en.stderr
    ok = _run(settings, "load", "vector", str(path), "--layer", "land_parcels", "--dry-run",
              "--map", "So_to_BD=map_sheet", "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "checked"


@pytest.fixture(scope="module")
def officer(settings: Settings, loaded: Any) -> Iterator[TestClient]:
    """The web upload as a GIS officer of a department (API key)."""
    with connect(settings, autocommit=True) as conn:
        create(conn, "loader.department", ["gis_officer"], with_password=False)
        key = accounts.issue_key(conn, "loader.department", REF, "cli:test")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


def test_web_upload_with_the_proposed_mapping(
    officer: TestClient, db: psycopg.Connection[Any], empty_spot: dict[str, Any], tmp_path: Path, catalog: Catalog
) -> None:
    """The GIS officer's upload: refused with a proposal (Vietnamese, or English when asked), then loaded."""
    path, frame = _parcels_gpkg(empty_spot, tmp_path, "WU-")
    frame.rename(columns={"Số thửa": "SoThua_DC"}).to_file(path, driver="GPKG")
    before = digest(db, "layers.land_parcels")
    files = {"file": ("thua_dat_xa.gpkg", path.read_bytes())}
    refused = officer.post("/api/loads", data={"layer": "land_parcels"}, files=files)
    assert refused.status_code == 422 and refused.headers["content-language"] == "vi"
    body = refused.json()
    assert "lỗi" in body["detail"] and body["report"]["proposed_map"] == "--map SoThua_DC=parcel_number"
    assert any(i["code"] == "missing_column" and i["message"].startswith("trường bắt buộc")
               for i in body["report"]["issues"])  # fmt: skip
    english = officer.post("/api/loads", data={"layer": "land_parcels"}, files=files,
                          headers={"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})  # fmt: skip
    assert english.headers["content-language"] == "en" and "nothing was loaded" in english.json()["detail"]
    assert digest(db, "layers.land_parcels") == before
    loaded = officer.post("/api/loads", data={"layer": "land_parcels", "map": ["SoThua_DC=parcel_number"]}, files=files)
    assert loaded.status_code == 201, loaded.text
    result = loaded.json()
    assert result["loaded"] == 3 and set(result["derived"]) == {"commune_code", "area_m2"}
    assert officer.post(f"/api/loads/{result['load_id']}/rollback").json()["deleted"] == 3


def test_web_upload_of_a_cad_drawing(officer: TestClient, empty_spot: dict[str, Any], tmp_path: Path) -> None:
    """A DXF over the web door: constants with `set` (Vietnamese labels too), area and commune from geometry."""
    e0, n0 = TO_TM3.transform(empty_spot["lon"], empty_spot["lat"])
    rings = [shapely.box(e0 + i * 12, n0 + 20, e0 + i * 12 + 10, n0 + 28).exterior for i in range(2)]
    dxf = tmp_path / "ban_ve.dxf"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"Layer": ["RANH_THUA"] * 2}, geometry=rings), dxf, driver="DXF")
    constants = ["map_sheet=7", "parcel_number=1", "land_use=Đất ở tại nông thôn", "legal_status=Đã cấp GCN"]
    form = {"layer": "land_parcels", "crs": "EPSG:9209", "map": ["EntityHandle=parcel_code"],
            "where": "Layer = 'RANH_THUA'", "dry_run": "true", "set": constants}  # fmt: skip
    answer = officer.post("/api/loads", data=form, files={"file": ("ban_ve.dxf", dxf.read_bytes())})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "checked" and body["features"] == 2 and body["errors"] == 0
    assert set(body["derived"]) == {"commune_code", "area_m2"}
