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
from gis_ioc.maps.thematic import STATUS_VI, vn_number
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
            assert vn_number(total["value"]) in text, (ind_id, total["value"])
        if total["target"] is not None:
            assert vn_number(total["target"]) in text
    assert "Báo cáo phục vụ họp giao ban — kỳ 2026-Q3" in text
    assert "Nguồn số liệu và độ cập nhật" in text and "Sở Giáo dục và Đào tạo" in text
    for rid in cli_report["ids"]:
        assert f"#{rid}" in text
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
        assert cells[2] == vn_number(total["value"]) and cells[3] == vn_number(total["target"])
        assert cells[4] == STATUS_VI[total["status"]]
        assert ("not-met" in row[1]) == (total["status"] == "not met")
    doc = Document(str(cli_report["files"][".docx"]))
    rows: dict[str, list[str]] = {}
    for table in doc.tables:  # the sector tables come first; the sources table repeats the names
        for r in table.rows:
            rows.setdefault(r.cells[0].text, [c.text for c in r.cells])
    for total in totals.values():
        cells = rows[total["name"]]
        assert cells[2] == vn_number(total["value"]) and cells[3] == vn_number(total["target"])
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
