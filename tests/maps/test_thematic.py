"""Thematic maps: classes and colours match the values, flagged communes are the scenario's, the HTML
works offline in a real browser, the PNG and PDF are print quality and say what they show."""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any

import mapclassify
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from gis_ioc.catalog import Catalog
from gis_ioc.cli import main
from gis_ioc.maps.thematic import vn_number
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

INDICATOR = "clean_water_access_rate"
PERIOD = "2026-Q3"


def independent_values(db: psycopg.Connection[Any], catalog: Catalog, indicator: str) -> dict[str, float]:
    """Each commune's rate straight from the table (numerator / denominator × scale)."""
    ind = catalog.indicators.get(indicator)
    rows = db.execute(
        "SELECT commune_code, numerator / denominator * %s FROM gis_ioc.indicator_values "
        "WHERE indicator_id = %s AND period = %s AND denominator > 0",
        (ind.aggregation.scale, indicator, PERIOD),
    ).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def classified(client: TestClient) -> dict[str, Any]:
    r = client.get(f"/api/maps/{INDICATOR}", params={"period": PERIOD, "method": "natural_breaks", "format": "json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_classes_and_colours_match_the_values(
    classified: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    values = independent_values(db, catalog, INDICATOR)
    communes = {c["code"]: c for c in classified["communes"]}
    assert len(communes) == 104 and set(values) <= set(communes)
    for code, value in values.items():
        assert communes[code]["value"] == pytest.approx(value)
    y = np.array([values[c] for c in sorted(values)])
    expected = mapclassify.FisherJenks(y, k=5)
    classes = classified["classes"]
    assert [c["upper"] for c in classes] == pytest.approx(list(expected.bins))
    assert [c["count"] for c in classes] == list(expected.counts)
    colours = [c["colour"] for c in classes]
    assert len(set(colours)) == 5
    for code, value in values.items():
        k = communes[code]["class"]
        assert (classes[k - 1]["upper"] if k else -np.inf) < value <= classes[k]["upper"] + 1e-9
        assert communes[code]["colour"] == colours[k]
    # darker classes for higher values of a "higher is better" indicator
    lum = [sum(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in colours]
    assert lum == sorted(lum, reverse=True)
    assert classes[0]["label"].endswith("%") and "," in classes[1]["label"]  # Vietnamese decimals, units


def test_flagged_communes_are_those_the_scenario_flagged(
    classified: dict[str, Any], db: psycopg.Connection[Any], catalog: Catalog
) -> None:
    run = db.execute("SELECT result FROM gis_ioc.scenario_runs WHERE id = %s", (classified["run_id"],)).fetchone()[0]
    flagged_by_run = {f["where"] for f in run["flags"] if f["indicator"] == INDICATOR} - {"total"}
    assert set(classified["flagged"]) == flagged_by_run and flagged_by_run
    ind = catalog.indicators.get(INDICATOR)
    missing = {c for c, v in independent_values(db, catalog, INDICATOR).items() if v < ind.target_for(PERIOD, c)}
    # below target and not flagged only when the commune's figure is stale (it reported too long ago)
    statuses = {c["code"]: c["status"] for c in classified["communes"]}
    assert flagged_by_run <= missing
    assert {statuses[c] for c in missing - flagged_by_run} <= {"stale"}


def test_html_map_works_offline_in_a_browser(client: TestClient, classified: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    r = client.get(
        f"/api/maps/{INDICATOR}",
        params={"period": PERIOD, "method": "natural_breaks", "format": "html", "layers": "schools"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<script src=" not in html and 'rel="stylesheet" href=' not in html  # everything inline
    assert "Tỷ lệ hộ dân được sử dụng nước sạch" in html or classified["name"]["vi"] in html
    page_file = tmp_path / "map.html"
    page_file.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(page_file.as_uri())
        page.wait_for_selector("path.leaflet-interactive")
        fills = page.eval_on_selector_all(
            "path.leaflet-interactive", "els => els.map(e => [e.getAttribute('fill'), e.getAttribute('stroke')])"
        )
        legend = page.inner_text("#gis-ioc-legend")
        page.screenshot(path=str(ARTIFACTS / "thematic-map.png"))
        browser.close()
    assert errors == [] and [u for u in requests if not u.startswith(("file:", "data:"))] == []
    for cls in classified["classes"]:
        assert sum(1 for f, _ in fills if f == cls["colour"]) == cls["count"]
        assert cls["label"] in legend
    assert sum(1 for _, s in fills if s == "#c62828") == len(classified["flagged"])
    assert "Đơn vị: %" in legend and "Chưa đạt mục tiêu" in legend and "Trường học" in legend


def test_print_maps_png_and_pdf(client: TestClient, classified: dict[str, Any], tmp_path: Path) -> None:
    png = client.get(f"/api/maps/{INDICATOR}", params={"period": PERIOD, "method": "natural_breaks", "format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(BytesIO(png.content)).convert("RGB")
    assert abs(image.width - 3508) <= 2 and abs(image.height - 2480) <= 2  # A4 landscape at 300 dpi
    (ARTIFACTS / "thematic-map-a4.png").write_bytes(png.content)
    colours = {tuple(int(v) for v in px) for px in np.unique(np.asarray(image).reshape(-1, 3), axis=0)}
    for cls in classified["classes"]:
        rgb = tuple(int(cls["colour"][i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, cls
    pdf = client.get(
        f"/api/maps/{INDICATOR}",
        params={
            "period": PERIOD,
            "method": "natural_breaks",
            "format": "pdf",
            "paper": "A3",
            "run": classified["run_id"],
        },
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    path = tmp_path / "map.pdf"
    path.write_bytes(pdf.content)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    size = next(line for line in info.splitlines() if line.startswith("Page size:"))
    assert "(A3)" in size and float(size.split()[2]) > float(size.split()[4])  # A3, landscape
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert classified["name"]["vi"] in text and "Quý III/2026" in text
    for cls in classified["classes"]:
        assert vn_number(cls["upper"]) in text
    assert f"Chưa đạt mục tiêu ({len(classified['flagged'])} xã)" in text
    assert classified["source"]["vi"] in text and f"#{classified['run_id']}" in text and "EPSG:9209" in text
    assert "km" in text and "B" in text  # scale bar and north arrow (Bắc)


def test_bad_map_requests_are_named(client: TestClient) -> None:
    cases = [
        ("/api/maps/nope", {"period": PERIOD}, 404, "nope"),
        (f"/api/maps/{INDICATOR}", {}, 400, "period"),
        (f"/api/maps/{INDICATOR}", {"period": "2026-Q5"}, 400, "2026-Q5"),
        (f"/api/maps/{INDICATOR}", {"period": PERIOD, "method": "jenks"}, 422, "method"),
        (f"/api/maps/{INDICATOR}", {"period": PERIOD, "classes": 12}, 422, "classes"),
        (f"/api/maps/{INDICATOR}", {"period": PERIOD, "layers": "police_posts"}, 400, "police_posts"),
        (f"/api/maps/{INDICATOR}", {"run": 99999999}, 404, "99999999"),
    ]
    for url, params, status, words in cases:
        r = client.get(url, params=params)
        assert r.status_code == status and r.headers["content-type"] == "application/problem+json", (
            url,
            params,
            r.text,
        )
        assert words in r.json()["detail"]


def test_cli_map_writes_html_png_and_pdf(settings: Settings, loaded: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "map",
            "poor_household_rate",
            "--period",
            PERIOD,
            "--method",
            "equal_interval",
            "--dpi",
            "100",
            "-o",
            str(tmp_path),
        ],
        obj={"settings": settings},
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"poor_household_rate_{PERIOD}_equal_interval.{x}" for x in ("html", "pdf", "png")]
    bad = CliRunner().invoke(main, ["map", "nope", "--period", PERIOD], obj={"settings": settings})
    assert bad.exit_code == 1 and "nope" in bad.output
