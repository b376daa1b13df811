"""Meeting reports: their figures are the scenario runs' figures, in the PDF (pdftotext), the DOCX and
the HTML; they are rebuilt identically from their run ids."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from docx import Document
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.cli import main
from gis_ioc.maps import report as reports
from gis_ioc.maps.thematic import STATUS_VI, gap_text, vn_date, vn_datetime, vn_figure, vn_number, vn_period
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.engine import get_run
from gis_ioc.scenarios.models import load_scenarios
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS

PERIOD = "2026-Q3"
CONSOLE = Viewer.console("test")


@pytest.fixture(scope="module")
def cli_report(settings: Settings, loaded: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(
        main, ["report", "--period", PERIOD, "--sector", "education", "-o", str(out)], obj={"settings": settings}
    )
    assert result.exit_code == 0, result.output
    files = {p.suffix: p for p in out.iterdir()}
    assert set(files) == {".pdf", ".docx", ".html"}
    html = files[".html"].read_text(encoding="utf-8")
    ids = [int(x) for x in re.search(r'name="gis-ioc-runs" content="([\d,]+)"', html)[1].split(",")]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-education.pdf").write_bytes(files[".pdf"].read_bytes())
    return {"files": files, "html": html, "ids": ids, "output": result.output}


def education_totals(db: psycopg.Connection[Any], ids: list[int], catalog: Catalog) -> dict[str, dict[str, Any]]:
    """The education indicators' totals as the stored runs hold them (first run that has each)."""
    out: dict[str, dict[str, Any]] = {}
    for rid in ids:
        for ind in get_run(db, rid, CONSOLE)["indicators"]:
            if ind["sector"] == "education" and ind["id"] not in out:
                out[ind["id"]] = {**ind["total"], "name": ind["name"]["vi"], "unit": ind["unit"]}
    return out


def test_report_runs_are_stored_and_cover_the_sector(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog, settings: Settings
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    expected = sorted(
        s.id for s in scenarios.values() if any(catalog.indicators.get(i).sector == "education" for i in s.indicators)
    )
    runs = [get_run(db, i, CONSOLE) for i in cli_report["ids"]]
    assert sorted(r["scenario"] for r in runs) == expected
    assert all(r["period"] == PERIOD and r["selection"]["kind"] == "province" for r in runs)
    assert f"gis-ioc report --runs {','.join(map(str, cli_report['ids']))}" in cli_report["output"]


def test_pdf_text_holds_the_indicator_names_and_figures(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    raw = subprocess.run(
        ["pdftotext", str(cli_report["files"][".pdf"]), "-"], capture_output=True, text=True, check=True
    )
    text = " ".join(raw.stdout.split())
    totals = education_totals(db, cli_report["ids"], catalog)
    assert totals
    for ind_id, total in totals.items():
        assert total["name"] in text, total["name"]
        if total["value"] is not None:
            assert vn_figure(total["value"], total["unit"]) in text, (ind_id, total["value"])
        if total["target"] is not None:
            assert vn_figure(total["target"], total["unit"]) in text
    assert "BÁO CÁO" in text and "Quý III/2026" in text and "2026-Q3" not in text
    assert "Nguồn số liệu và độ cập nhật" in text and "Sở Giáo" in text  # table cells wrap: "dục và Đào tạo"
    for rid in cli_report["ids"]:
        assert f"mã lần phân tích {rid}" in text
    assert "Bản đồ chuyên đề" in text  # maps are in


def test_html_and_docx_numbers_equal_the_runs(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    totals = education_totals(db, cli_report["ids"], catalog)
    html = cli_report["html"]
    for ind_id, total in totals.items():
        row = re.search(rf'<tr class="([^"]*)" data-indicator="{ind_id}">(.*?)</tr>', html, flags=re.S)
        assert row is not None, ind_id
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[2], flags=re.S)]
        assert cells[2] == vn_figure(total["value"], total["unit"])
        assert cells[3] == vn_figure(total["target"], total["unit"])
        assert cells[4] == STATUS_VI[total["status"]]
        assert ("not-met" in row[1]) == (total["status"] == "not met")
    doc = Document(str(cli_report["files"][".docx"]))
    rows: dict[str, list[str]] = {}
    for table in doc.tables:  # the sector tables come first; the sources table repeats the names
        for r in table.rows:
            rows.setdefault(r.cells[0].text, [c.text for c in r.cells])
    for total in totals.values():
        cells = rows[total["name"]]
        assert cells[2] == vn_figure(total["value"], total["unit"])
        assert cells[3] == vn_figure(total["target"], total["unit"])
        assert cells[4] == STATUS_VI[total["status"]]
    assert len(doc.inline_shapes) >= 1  # the thematic maps


def test_flags_in_the_report_are_the_runs_flags(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog, settings: Settings
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    rep = reports.build_report(
        db, catalog, cli_report["ids"], viewer=CONSOLE, sectors=["education"], maps=False, scenarios=scenarios
    )
    totals = education_totals(db, cli_report["ids"], catalog)
    expected = set()
    seen: set[str] = set()
    for rid in cli_report["ids"]:
        run = get_run(db, rid, CONSOLE)
        ids = {i["id"] for i in run["indicators"] if i["sector"] == "education"} - seen
        expected |= {(f["indicator"], f["where"], f["gap"]) for f in run["flags"] if f["indicator"] in ids}
        seen |= ids
    assert {(f.indicator, f.where, f.gap) for f in rep.flags} == expected and set(seen) == set(totals)
    severities = [f.severity for f in rep.flags]
    assert severities == sorted(severities, reverse=True)


def test_a_report_is_reproducible_from_its_run_ids(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog, settings: Settings, client: TestClient
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    first = reports.build_report(
        db, catalog, cli_report["ids"], viewer=CONSOLE, sectors=["education"], maps=False, scenarios=scenarios
    )
    again = reports.build_report(
        db, catalog, cli_report["ids"], viewer=CONSOLE, sectors=["education"], maps=False, scenarios=scenarios
    )
    assert asdict(first)["sectors"] == asdict(again)["sectors"] and first.flags == again.flags
    runs = ",".join(map(str, cli_report["ids"]))
    params = {"runs": runs, "sector": "education", "format": "json"}
    refused = client.get("/api/reports", params=params)  # the console's runs: not the leader's to see
    assert refused.status_code == 404 and "no scenario run" in refused.json()["detail"]
    for rid in cli_report["ids"]:  # shared by the console operator with the suite's leader
        shared = CliRunner().invoke(
            main, ["scenario", "share", str(rid), "--with", "suite.reader"], obj={"settings": settings}
        )
        assert shared.exit_code == 0 and "suite.reader" in shared.output, shared.output
    r = client.get("/api/reports", params=params)
    assert r.status_code == 200 and r.headers["x-scenario-runs"] == runs
    body = r.json()
    assert body["sectors"] == asdict(first)["sectors"]
    assert len(body["flags"]) == len(first.flags)


def test_http_report_pdf_for_some_communes_and_bad_requests(client: TestClient, db: psycopg.Connection[Any]) -> None:
    r = client.get("/api/reports", params={"period": PERIOD, "sector": "health", "commune": ["13225", "11953"]})
    assert r.status_code == 200 and r.content.startswith(b"%PDF") and r.headers["content-type"] == "application/pdf"
    ids = [int(x) for x in r.headers["x-scenario-runs"].split(",")]
    assert all(
        get_run(db, i, CONSOLE)["selection"] == {"kind": "communes", "codes": ["11953", "13225"]} for i in ids
    ) or all(sorted(get_run(db, i, CONSOLE)["selection"].get("codes", [])) == ["11953", "13225"] for i in ids)
    docx = client.get("/api/reports", params={"runs": ",".join(map(str, ids)), "format": "docx"})
    assert docx.status_code == 200 and docx.content[:2] == b"PK"
    for params, status, words in [
        ({}, 400, "period"),
        ({"period": PERIOD, "runs": "1"}, 400, "period"),
        ({"runs": "abc"}, 400, "abc"),
        ({"runs": "99999999"}, 404, "99999999"),
        ({"period": PERIOD, "sector": "sport"}, 400, "sport"),
        ({"period": PERIOD, "commune": "99999"}, 400, "99999"),
        ({"period": "2026-Q9"}, 400, "2026-Q9"),
    ]:
        bad = client.get("/api/reports", params=params)
        assert bad.status_code == status and bad.headers["content-type"] == "application/problem+json", (
            params,
            bad.text,
        )
        assert words in bad.json()["detail"]


def test_an_emergency_run_makes_no_report_and_says_why(client: TestClient) -> None:
    """An emergency run has no indicators: a report from it is a 400 naming the run, never a 500."""
    flood = client.post("/api/emergency/run", json={"incident": "flood", "at": [106.05, 20.65]})
    assert flood.status_code == 200, flood.text
    run_id = flood.json()["id"]
    sector = client.post("/api/scenarios/health/run", json={"period": PERIOD, "communes": ["11953"]}).json()["id"]
    for runs in (str(run_id), f"{sector},{run_id}"):
        for fmt in ("json", "html"):
            bad = client.get("/api/reports", params={"runs": runs, "format": fmt})
            assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json", bad.text
            assert f"run {run_id} is an emergency run" in bad.json()["detail"]


# -- the state's format (Nghị định 30/2020/NĐ-CP, Phụ lục I) and the words and numbers ---------------------


def pdf_text(path: Any, first: int | None = None, last: int | None = None) -> str:
    pages = (["-f", str(first)] if first else []) + (["-l", str(last)] if last else [])
    return subprocess.run(
        ["pdftotext", *pages, "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_words_and_numbers_read_as_a_vietnamese_reader_writes_them() -> None:
    assert gap_text("lower", 0.74, "vụ/10.000 dân/quý") == "vượt 0,74 vụ/10.000 dân/quý so với chỉ tiêu"
    assert gap_text("higher", 2.5, "%") == "còn thiếu 2,5 %"
    assert gap_text("higher", -1.0, "%") == "đạt chỉ tiêu"
    assert vn_figure(8726.35, "hộ") == "8.726" and vn_figure(1234.5, "%") == "1.234,5"
    assert vn_number(-0.0001) == "0" and vn_number(-0.004, 2) == "0" and vn_number(-0.4, 0) == "0"
    assert vn_number(-1.5) == "-1,5"
    assert vn_period("2026-Q3") == "Quý III/2026" and vn_period("2026-Q1") == "Quý I/2026"
    assert vn_period("2026") == "Năm 2026" and vn_period("2026-Q4", "en") == "Q4 2026"
    assert vn_datetime("2026-12-02T14:05:09+00:00") == "02/12/2026 21:05"  # Asia/Ho_Chi_Minh
    assert vn_datetime("2026-12-31T20:00:00Z") == "01/01/2027 03:00"
    assert vn_date("2026-03-09") == "09/03/2026" and vn_date(None) == "—"


def test_pdf_is_a4_with_page_numbers_from_page_two_and_the_motto(cli_report: dict[str, Any]) -> None:
    path = cli_report["files"][".pdf"]
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    size = next(line for line in info.splitlines() if line.startswith("Page size:"))
    assert "(A4)" in size and float(size.split()[2]) < float(size.split()[4]), size  # A4 portrait
    pages = int(next(line for line in info.splitlines() if line.startswith("Pages:")).split()[1])
    assert pages >= 2
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "LiberationSerif" in fonts and "LiberationSerif-Bold" in fonts  # Times New Roman's metrics
    first = [line.strip() for line in pdf_text(path, 1, 1).splitlines() if line.strip()]
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in first[0] and "UBND TỈNH HƯNG YÊN" in first[0]
    assert "Độc lập - Tự do - Hạnh phúc" in " ".join(first[:3]) and "TRUNG TÂM GIÁM SÁT" in " ".join(first[:3])
    assert not first[0].strip().isdigit()  # no number on the first page
    for page in range(2, pages + 1):  # then the page's number, alone, at the top
        lines = [line.strip() for line in pdf_text(path, page, page).splitlines() if line.strip()]
        assert lines[0] == str(page), (page, lines[:2])
    # the top margin (20 mm) holds the number; the text starts below it; left margin 30 mm
    bbox = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    boxes = [
        (float(m[1]), float(m[2]), m[3])
        for m in re.finditer(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" yMax="[\d.]+">([^<]*)<', bbox)
    ]
    number = next(b for b in boxes if b[2] == "2")
    assert number[1] < 20 * 72 / 25.4  # in the top margin
    assert 280 < number[0] < 330  # centred between 30 mm and 15 mm margins (about 305 pt)
    body = [b for b in boxes if b[2] != "2"]
    assert min(b[0] for b in body) == pytest.approx(30 * 72 / 25.4, abs=4)
    assert min(b[1] for b in body) >= 20 * 72 / 25.4 - 1


def test_pdf_speaks_to_leaders_local_times_vietnamese_names_one_sources_table(
    cli_report: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    text = " ".join(pdf_text(cli_report["files"][".pdf"]).split())
    assert "gis-ioc" not in text and "--runs" not in text  # no command line for leaders
    assert "UTC" not in text and "+00:00" not in text and not re.search(r"\d{4}-\d{2}-\d{2}", text)
    assert re.search(r"ngày \d{2} tháng \d{2} năm \d{4}", text)
    for rid in cli_report["ids"]:
        run = get_run(db, rid, CONSOLE)
        assert f"({run['scenario']})" not in text  # scenario ids stay out; their Vietnamese titles are in
        assert vn_datetime(run["run_at"]) in text
    assert "Phân tích lĩnh vực Giáo dục" in text
    # the sources table names every indicator given above, with a date, never "không có số liệu"
    rep = reports.build_report(db, catalog, cli_report["ids"], viewer=CONSOLE, sectors=["education"], maps=False)
    values = {r.indicator for rows in rep.sectors.values() for r in rows if r.value is not None}
    sources = {s.indicator: s for s in rep.sources}
    assert values <= set(sources)
    for ind in values:
        assert sources[ind].last_update is not None and sources[ind].fresh is not None, sources[ind]
    rows = rep.source_rows()
    assert all(
        r["state"] != "không có số liệu"
        for r in rows[: len(rep.sources)]
        if r["what"] in {sources[i].name for i in values}
    )
    assert "Lớp dữ liệu: Trường học" in {r["what"] for r in rows}


def test_docx_is_in_the_states_format(cli_report: dict[str, Any], db: psycopg.Connection[Any]) -> None:
    from docx.oxml.ns import qn

    doc = Document(str(cli_report["files"][".docx"]))
    for section in doc.sections:
        assert round(section.page_width.mm) == 210 and round(section.page_height.mm) == 297  # A4 portrait
        assert 20 <= round(section.top_margin.mm) <= 25 and 20 <= round(section.bottom_margin.mm) <= 25
        assert 30 <= round(section.left_margin.mm) <= 35 and 15 <= round(section.right_margin.mm) <= 20
        # page numbers: a PAGE field centred in the header from page 2; the first page has none
        assert section.different_first_page_header_footer
        header = section.header.paragraphs[0]
        assert header.alignment == 1  # centre
        assert "PAGE" in "".join(t.text or "" for t in header._p.iter(qn("w:instrText")))
        assert not "".join(p.text for p in section.first_page_header.paragraphs).strip()
        assert not list(section.first_page_header._element.iter(qn("w:instrText")))
    normal = doc.styles["Normal"].font
    assert normal.name == "Times New Roman" and 13 <= normal.size.pt <= 14
    fonts = doc.styles["Normal"].element.rPr.rFonts
    assert {fonts.get(qn(a)) for a in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs")} == {"Times New Roman"}
    for name in ("Heading 1", "Heading 2"):
        assert doc.styles[name].font.name == "Times New Roman" and 13 <= doc.styles[name].font.size.pt <= 14
    head = doc.tables[0].rows[0].cells
    assert head[0].text.startswith("UBND TỈNH HƯNG YÊN\nTRUNG TÂM GIÁM SÁT, ĐIỀU HÀNH THÔNG MINH")
    assert head[1].text.startswith("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc")
    assert re.search(r"Hưng Yên, ngày \d{2} tháng \d{2} năm \d{4}", head[1].text)
    body = "\n".join(p.text for p in doc.paragraphs) + "\n".join(
        c.text for t in doc.tables for r in t.rows for c in r.cells
    )
    assert "BÁO CÁO" in body and "Quý III/2026" in body and "2026-Q3" not in body
    assert "gis-ioc" not in body and "UTC" not in body and not re.search(r"\d{4}-\d{2}-\d{2}", body)
    for rid in cli_report["ids"]:
        run = get_run(db, rid, CONSOLE)
        assert f"({run['scenario']})" not in body and vn_datetime(run["run_at"]) in body


def test_lower_is_better_shortfalls_read_as_above_the_target(
    db: psycopg.Connection[Any], catalog: Catalog, settings: Settings
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    ids = reports.run_for_report(db, catalog, scenarios, PERIOD, viewer=CONSOLE, sectors=["public_order"])
    rep = reports.build_report(
        db, catalog, ids, viewer=CONSOLE, sectors=["public_order"], maps=False, scenarios=scenarios
    )
    crime = [f for f in rep.flags if f.indicator == "crime_incidents_per_10k"]
    assert crime and all(f.direction == "lower" and f.value > f.target for f in crime)
    html = reports.render_html(rep)
    for f in crime[:3]:
        assert f.gap_text == f"vượt {vn_figure(f.value - f.target, f.unit)} {f.unit} so với chỉ tiêu"
        assert f.gap_text in html
    assert "còn thiếu" not in " ".join(f.gap_text for f in crime)


def test_the_scope_names_partial_communes_with_their_share() -> None:
    communes = [
        {"code": "11953", "name": "Phường Phố Hiến", "share": 1.0},
        {"code": "13225", "name": "Xã Hoàng Hoa Thám", "share": 0.354},
    ]
    radius = {"kind": "radius", "x": 106.05, "y": 20.65, "radius_m": 2500, "crs": None}
    assert reports.describe_selection(radius, communes) == (
        "Vòng tròn bán kính 2.500 m quanh điểm kinh độ 106,05, vĩ độ 20,65, gồm các xã, phường "
        "(phần trong vòng tròn): Phường Phố Hiến, Xã Hoàng Hoa Thám (35 %)"
    )
    assert reports.describe_selection({"kind": "province"}, communes) == "Toàn tỉnh Hưng Yên"
    zone = reports.describe_selection({"kind": "zone", "geometry": {}}, communes)
    assert zone.startswith("Vùng vẽ trên bản đồ") and "(zone)" not in zone


def test_print_maps_hatch_what_the_legend_says_and_number_the_communes(
    db: psycopg.Connection[Any], catalog: Catalog, settings: Settings, tmp_path: Any
) -> None:
    """The legend's red hatching is drawn on each commune not met (one hatched fill each, and the
    legend's swatch); every commune has a number on the map and its name in the index."""
    import zlib

    from gis_ioc.maps.printmap import commune_numbers, render_print, short_name
    from gis_ioc.maps.thematic import thematic_map

    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    tm = thematic_map(db, catalog, scenarios, "poor_household_rate", PERIOD, viewer=CONSOLE)
    assert tm.flagged
    pdf = render_print(db, catalog, tm, "pdf", viewer=CONSOLE, dpi=100)
    hatched = 0
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            hatched += len(re.findall(rb"/Pattern cs /H\d+ scn", zlib.decompress(stream)))
        except zlib.error:
            continue
    assert hatched == len(tm.flagged) + 1  # each commune not met, and the legend
    path = tmp_path / "map.pdf"
    path.write_bytes(pdf)
    text = " ".join(pdf_text(path).split())
    numbers = commune_numbers(tm)
    assert sorted(numbers.values()) == list(range(1, len(tm.communes) + 1))
    assert "Bảng tra cứu số hiệu xã, phường" in text and "Quý III/2026" in text
    for c in tm.communes:
        assert f"{numbers[c.code]}. {short_name(c.name)}" in text, c.name
    assert "UTC" not in text and "(giờ Việt Nam)" in text
