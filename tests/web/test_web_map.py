"""The leaders' web map in a real headless chromium: loads clean, finds communes without diacritics,
runs a scenario over a radius and shows the flagged communes in red."""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pyogrio
import pyotp
import pytest
import rasterio
from playwright.sync_api import Browser, Page, expect
from pyproj import Transformer
from rasterio.transform import from_origin

from gis_ioc.auth import sessions
from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.loaders import history
from gis_ioc.loaders.plans import PlanMeta, load_plan
from gis_ioc.scenarios.aggregate import FLAG_MIN_SHARE
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import ARTIFACTS
from tests.web.conftest import PageLog

THAI_BINH = "13225"
PHO_HIEN = "11953"


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[tuple[Page, PageLog]]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="vi-VN")
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    page.goto(f"{base_url}/")
    page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    wait_idle(page)
    yield page, log
    context.close()


ANALYST = ("web.analyst", "bản đồ điều hành 2026!")


@pytest.fixture(scope="module")
def analyst(settings: Settings, loaded: Any) -> tuple[str, str]:
    """An analyst who has changed the first password (as the leader's staff would have)."""
    with connect(settings, autocommit=True) as conn:
        first = create(conn, ANALYST[0], ["analyst"], full_name="Trần Thị Hoa", agency="Văn phòng UBND tỉnh")
        sessions.change_password(conn, ANALYST[0], first, ANALYST[1])
    return ANALYST


def log_in(page: Page, who: tuple[str, str]) -> None:
    """Through the page's own login form: the session becomes the page's HttpOnly cookie."""
    page.fill("#login-user", who[0])
    page.fill("#login-password", who[1])
    with page.expect_navigation():
        page.click("#login button[type=submit]")
    page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(page.locator("#who")).to_contain_text(who[0])
    wait_idle(page)


def indicator_count(base_url: str, scenario: str) -> int:
    return len(next(s for s in httpx.get(f"{base_url}/api/scenarios").json() if s["id"] == scenario)["indicators"])


def wait_idle(page: Page) -> None:
    page.wait_for_function(
        "window.gisIocMap && window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded()", timeout=30000
    )


def test_root_serves_the_map_and_its_own_scripts(base_url: str) -> None:
    html = httpx.get(f"{base_url}/").text
    assert "maplibre-gl.js" in html and "Bản đồ điều hành" in html
    assert "http://" not in html.replace(base_url, "") and "https://" not in html  # no CDN
    script = httpx.get(f"{base_url}/static/vendor/maplibre-gl/maplibre-gl.js")
    assert script.status_code == 200 and "maplibregl" in script.text[:5000]
    licence = httpx.get(f"{base_url}/static/vendor/maplibre-gl/LICENSE.txt").text
    assert "Copyright" in licence


def test_page_loads_without_errors_and_only_asks_our_server(page: tuple[Page, PageLog], base_url: str) -> None:
    p, log = page
    assert log.errors == []
    # without an account: the login form, and only the public layers
    expect(p.locator("#login")).to_be_visible()
    shown = {layer["id"] for layer in p.evaluate("window.gisIoc.config.layers")}
    assert "schools" in shown and "land_parcels" not in shown and "buildings" not in shown
    assert log.urls and not [u for u in log.urls if not u.startswith((base_url, "data:", "blob:"))], log.urls
    tiles = [u for u in log.urls if "/tiles/WebMercatorQuad/" in u]
    assert any("/collections/communes/" in u for u in tiles) and any("/collections/province/" in u for u in tiles)
    rendered = p.evaluate(
        "new Set(window.gisIocMap.queryRenderedFeatures({layers: ['communes-fill']}).map(f => f.properties.code)).size"
    )
    assert rendered >= 100  # the whole province is in view: 104 communes
    expect(p.locator("#scenario option")).to_have_count(len(httpx.get(f"{base_url}/api/scenarios").json()))
    assert p.locator("#period").input_value() == "2026-Q3"
    p.screenshot(path=str(ARTIFACTS / "web-map-province.png"))


@pytest.mark.parametrize(
    ("typed", "code"), [("pho hien", PHO_HIEN), ("Phố Hiến", PHO_HIEN), ("11953", PHO_HIEN), ("thai binh", THAI_BINH)]
)
def test_commune_search_without_diacritics_zooms_to_it(
    page: tuple[Page, PageLog], typed: str, code: str, db: psycopg.Connection[Any]
) -> None:
    p, log = page
    p.fill("#search", typed)
    first = p.locator("#search-results li").first
    expect(first).to_contain_text(code)
    name = db.execute("SELECT name FROM layers.communes WHERE code = %s AND valid_to IS NULL", (code,)).fetchone()[0]
    expect(first).to_contain_text(name)
    p.keyboard.press("Enter")
    wait_idle(p)
    centre = p.evaluate("window.gisIocMap.getCenter().toArray()")
    inside = db.execute(
        "SELECT ST_Intersects(geom, ST_Expand(ST_SetSRID(ST_MakePoint(%s, %s), 4326), 0.005)) FROM layers.communes "
        "WHERE code = %s AND valid_to IS NULL",
        (centre[0], centre[1], code),
    ).fetchone()[0]
    assert inside, centre
    assert p.evaluate("window.gisIocMap.getZoom()") > 11
    assert log.errors == []


def test_search_api_answers_problems_for_bad_input(base_url: str) -> None:
    r = httpx.get(f"{base_url}/api/communes", params={"limit": "lots"})
    assert (
        r.status_code == 422
        and r.headers["content-type"] == "application/problem+json"
        and "limit" in r.json()["detail"]
    )
    r = httpx.get(f"{base_url}/api/communes/99999")
    assert r.status_code == 404 and "99999" in r.json()["detail"]
    r = httpx.get(f"{base_url}/api/identify", params={"lon": 106.05, "lat": 95})
    assert r.status_code == 422 and "lat" in r.json()["detail"]


def expected_flags(
    db: psycopg.Connection[Any], catalog: Catalog, codes: list[str], period: str, indicators: list[str]
) -> set[str]:
    """Communes whose own value of a rate indicator misses its target, computed from the tables directly."""
    out = set()
    for ind_id in indicators:
        ind = catalog.indicators.get(ind_id)
        if ind.aggregation.kind != "rate":
            continue
        rows = db.execute(
            "SELECT commune_code, numerator / denominator * %s FROM gis_ioc.indicator_values "
            "WHERE indicator_id = %s AND period = %s AND commune_code = ANY(%s) AND denominator > 0",
            (ind.aggregation.scale, ind_id, period, codes),
        ).fetchall()
        for code, value in rows:
            target = ind.target_for(period, code)
            if target is None:
                continue
            if (value < target) if ind.direction == "higher" else (value > target):
                out.add(code)
    return out


def test_radius_scenario_shows_results_and_flags_in_red(
    page: tuple[Page, PageLog],
    db: psycopg.Connection[Any],
    catalog: Catalog,
    base_url: str,
    tmp_path: Path,
    analyst: tuple[str, str],
) -> None:
    p, log = page
    log_in(p, analyst)  # the report and the exports are for logged-in staff
    internal = [layer["id"] for layer in p.evaluate("window.gisIoc.config.layers")]
    assert "land_parcels" in internal and "buildings" in internal
    cookies = {c["name"]: c["value"] for c in p.context.cookies()}
    assert "gis_ioc_session" in cookies
    p.fill("#search", "thai binh")
    expect(p.locator("#search-results li").first).to_contain_text("Thái Bình")
    p.keyboard.press("Enter")
    p.check('input[name="mode"][value="radius"]')
    p.fill("#radius", "2500")
    p.select_option("#scenario", "education")
    p.select_option("#period", "2026-Q3")
    p.click("#run")
    expect(p.locator("#results table tbody tr")).to_have_count(indicator_count(base_url, "education"))
    run = p.evaluate("window.gisIoc.lastRun")
    stored = db.execute("SELECT selection, result FROM gis_ioc.scenario_runs WHERE id = %s", (run["id"],)).fetchone()
    assert stored[0]["kind"] == "radius" and stored[0]["radius_m"] == 2500
    flagged_db = sorted({f["where"] for f in stored[1]["flags"] if f["where"] != "total"})
    shown = sorted(p.evaluate("window.gisIoc.flagged"))
    assert shown == flagged_db and shown
    # communes barely inside the circle are listed with their share, not flagged
    codes = [c["code"] for c in run["communes"] if c["share"] >= FLAG_MIN_SHARE]
    rates = [i["id"] for i in run["indicators"] if catalog.indicators.get(i["id"]).aggregation.kind == "rate"]
    independent = expected_flags(db, catalog, codes, "2026-Q3", rates)
    assert independent and independent == {f["where"] for f in stored[1]["flags"] if f["indicator"] in rates} - {
        "total"
    }
    # every flag is listed in red; the map paints exactly those communes red
    expect(p.locator("#results li.flag")).to_have_count(len(stored[1]["flags"]))
    color = p.eval_on_selector("#results li.flag", "el => getComputedStyle(el).color")
    assert color == "rgb(198, 40, 40)"
    wait_idle(p)
    painted = p.evaluate(
        "[...new Set(window.gisIocMap.queryRenderedFeatures({layers: ['flagged-fill']})"
        ".map(f => f.properties.code))].sort()"
    )
    assert painted == shown
    names = [
        r[0] for r in db.execute("SELECT name FROM layers.communes WHERE code = ANY(%s) AND valid_to IS NULL", (shown,))
    ]
    for name in names:
        expect(p.locator("#flagged-list")).to_contain_text(name)
    assert log.errors == []
    p.screenshot(path=str(ARTIFACTS / "web-map-radius-education.png"))
    # what the leader prints for the meeting, and what the analyst takes to QGIS, from the same run
    report = httpx.get(base_url + p.get_attribute("#results .actions a >> nth=0", "href"), timeout=120, cookies=cookies)
    assert report.status_code == 200 and report.content.startswith(b"%PDF")
    assert report.headers["x-scenario-runs"] == str(run["id"])
    (ARTIFACTS / "web-map-report.pdf").write_bytes(report.content)
    text = subprocess.run(
        ["pdftotext", str(ARTIFACTS / "web-map-report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Vòng tròn bán kính 2.500 m" in " ".join(text.split()) and f"mã lần phân tích {run['id']}" in text
    gpkg = httpx.get(base_url + p.get_attribute("#results .actions a >> nth=1", "href"), timeout=60, cookies=cookies)
    assert httpx.get(base_url + p.get_attribute("#results .actions a >> nth=1", "href")).status_code == 401
    assert gpkg.status_code == 200 and gpkg.headers["content-crs"].endswith("/9209>")
    path = tmp_path / "flagged.gpkg"
    path.write_bytes(gpkg.content)
    frame = pyogrio.read_dataframe(path)
    assert sorted(frame["code"]) == shown and frame.crs.to_epsg() == 9209


def test_identify_a_point_and_pick_communes(
    page: tuple[Page, PageLog], db: psycopg.Connection[Any], base_url: str, analyst: tuple[str, str]
) -> None:
    p, log = page
    log_in(p, analyst)  # results by commune are for staff; without an account a selection shows totals only
    p.fill("#search", "11953")
    p.keyboard.press("Enter")
    wait_idle(p)
    # identify at the middle of the map: the commune there, as PostGIS says
    box = p.locator("#map").bounding_box()
    assert box is not None
    x, y = box["width"] / 2, box["height"] / 2
    lnglat = p.evaluate(f"window.gisIocMap.unproject([{x}, {y}]).toArray()")
    p.mouse.click(box["x"] + x, box["y"] + y)
    expected = db.execute(
        "SELECT name FROM layers.communes WHERE valid_to IS NULL "
        "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
        tuple(lnglat),
    ).fetchone()[0]
    expect(p.locator(".maplibregl-popup-content h4").first).to_have_text(expected)
    p.keyboard.press("Escape")
    # pick communes by clicking, then run the health scenario over them
    p.check('input[name="mode"][value="communes"]')
    p.mouse.click(box["x"] + x, box["y"] + y)
    expect(p.locator("#selection-text")).to_contain_text(expected)
    p.select_option("#scenario", "health")
    p.click("#run")
    expect(p.locator("#results table tbody tr")).to_have_count(indicator_count(base_url, "health"))
    run = p.evaluate("window.gisIoc.lastRun")
    assert [c["name"] for c in run["communes"]] == [expected]
    assert log.errors == []


def test_polygon_selection(page: tuple[Page, PageLog], base_url: str, analyst: tuple[str, str]) -> None:
    p, log = page
    log_in(p, analyst)
    p.check('input[name="mode"][value="polygon"]')
    box = p.locator("#map").bounding_box()
    assert box is not None
    for dx, dy in ((-60, -60), (60, -60), (60, 60), (-60, 60)):
        p.mouse.click(box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2 + dy)
    p.click("#polygon-finish")
    p.select_option("#scenario", "transport")
    p.click("#run")
    expect(p.locator("#results table tbody tr")).to_have_count(indicator_count(base_url, "transport"))
    run = p.evaluate("window.gisIoc.lastRun")
    assert run["selection"]["kind"] == "zone" and run["communes"]
    assert log.errors == []


def test_english_on_a_switch_and_control_room_screen(browser: Browser, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 3840, "height": 2160})
    p = context.new_page()
    log = PageLog()
    log.attach(p)
    p.goto(f"{base_url}/")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(p.locator("h1")).to_have_text("Bản đồ điều hành tỉnh Hưng Yên")
    p.click("#lang")
    expect(p.locator("h1")).to_have_text("Hưng Yên operations map")
    expect(p.locator("#run")).to_have_text("Analyse")
    font = p.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert font >= 24  # readable across a control room
    wait_idle(p)
    p.screenshot(path=str(ARTIFACTS / "web-map-4k-english.png"))
    p.reload()
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(p.locator("h1")).to_have_text("Hưng Yên operations map")  # the choice is remembered
    assert log.errors == []
    context.close()


def test_an_approved_planning_drawing_appears_on_the_map(
    page: tuple[Page, PageLog], db: psycopg.Connection[Any], catalog: Catalog, settings: Settings, tmp_path: Path
) -> None:
    p, log = page
    lon, lat = db.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) AS c FROM layers.communes WHERE code = %s) x",
        (PHO_HIEN,),
    ).fetchone()
    east, north = Transformer.from_crs("EPSG:4326", "EPSG:9209", always_xy=True).transform(lon, lat)
    drawing = tmp_path / "qh_pho_hien.tif"
    with rasterio.open(
        drawing, "w", driver="GTiff", width=400, height=300, count=3, dtype="uint8", crs="EPSG:9209",
        transform=from_origin(east - 400, north + 300, 2.0, 2.0),
    ) as dst:  # fmt: skip
        dst.write(np.full((3, 300, 400), 180, dtype="uint8"))
    meta = PlanMeta("QH-WEB-1", "Quy hoạch chi tiết phường Phố Hiến", "detailed", "99/QĐ-UBND", date(2026, 5, 4),
                    "UBND tỉnh Hưng Yên", "1/500", "residential")  # fmt: skip
    plan = load_plan(db, drawing, meta, settings.home / "plans", loaded_by="test")
    history.approve(db, catalog, plan.load_id, by="test")
    try:
        p.reload()
        p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
        layer_id = f"plan-{plan.plan_id}"
        titles = {layer["id"]: layer["title"]["vi"] for layer in p.evaluate("window.gisIoc.config.layers")}
        assert titles[layer_id] == "Quy hoạch chi tiết phường Phố Hiến"
        p.fill("#search", "pho hien")
        expect(p.locator("#search-results li").first).to_contain_text("Phố Hiến")
        p.keyboard.press("Enter")
        p.check(f'input[data-layer="{layer_id}"]')
        wait_idle(p)
        assert any(f"/api/plans/{plan.plan_id}/tiles/" in u for u in log.urls)
        assert log.errors == []
        p.screenshot(path=str(ARTIFACTS / "web-map-planning-drawing.png"))
    finally:
        history.rollback(db, catalog, plan.load_id, by="test")


def test_logged_in_users_download_the_qgis_project(
    page: tuple[Page, PageLog], base_url: str, analyst: tuple[str, str], tmp_path: Any
) -> None:
    p, log = page
    expect(p.locator("#qgis-project")).to_be_hidden()  # nobody logged in: no project to offer
    log_in(p, analyst)
    link = p.locator("#qgis-project")
    expect(link).to_be_visible()
    expect(link).to_have_text("Tải dự án QGIS")
    with p.expect_download() as info:
        link.click()
    path = tmp_path / "project.qgz"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        document = archive.read(archive.namelist()[0]).decode()
    assert "<authid>EPSG:9209</authid>" in document and "Xã, phường" in document
    assert "/collections/land_parcels/tiles/" in document  # an internal layer the analyst may read
    assert not log.errors


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_a_new_leaders_first_login_in_the_page(
    browser: Browser, base_url: str, settings: Settings, size: tuple[int, int]
) -> None:
    """Issue 13, item 1: the one-time password is changed in the page, then a second factor is enrolled
    with a QR code drawn by the server; the server's messages are shown in Vietnamese."""
    username = f"web.first{size[0]}"
    with connect(settings, autocommit=True) as conn:
        first = create(conn, username, ["leader"], full_name="Phạm Thị Lan", agency="UBND tỉnh Hưng Yên")
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="vi-VN")
    p = context.new_page()
    log = PageLog()
    log.attach(p)
    p.goto(f"{base_url}/")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    p.fill("#login-user", username)
    p.fill("#login-password", "sai mật khẩu")
    p.click("#login button[type=submit]")
    expect(p.locator("#status")).to_contain_text("Tên đăng nhập, mật khẩu hoặc mã OTP không đúng")
    p.fill("#login-password", first)
    with p.expect_navigation():
        p.click("#login button[type=submit]")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)  # the map loads behind
    dialog = p.locator("#account-dialog")
    expect(dialog).to_be_visible()
    expect(p.locator("#password-form h2")).to_have_text("Đổi mật khẩu lần đầu")
    p.fill("#pw-old", first)
    p.fill("#pw-new", "ngắn")
    p.fill("#pw-again", "ngắn")
    p.click("#password-form button[type=submit]")
    expect(p.locator("#pw-error")).to_contain_text("ít nhất 14 ký tự")
    p.fill("#pw-new", "sông Hồng chảy qua Phố Hiến mùa nhãn 2026")
    p.fill("#pw-again", "sông Hồng chảy qua Phố Hiến mùa nhãn 2027")
    p.click("#password-form button[type=submit]")
    expect(p.locator("#pw-error")).to_have_text("Hai lần nhập mật khẩu mới không giống nhau.")
    new = "sông Hồng chảy qua Phố Hiến mùa nhãn 2026"
    p.fill("#pw-again", new)
    with p.expect_navigation():
        p.click("#password-form button[type=submit]")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(dialog).to_be_hidden()
    expect(p.locator("#who")).to_have_text(username)
    expect(p.locator("#qgis-project")).to_be_visible()
    p.click("#totp-open")
    p.fill("#totp-password", new)
    p.click("#totp-start")
    qr = p.locator("#totp-qr svg")
    expect(qr).to_be_visible()
    assert (qr.bounding_box() or {"width": 0})["width"] >= 100
    secret = p.locator("#totp-secret").inner_text()
    p.fill("#totp-code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    p.click("#totp-confirm")
    expect(p.locator("#totp-error")).to_contain_text("Mã OTP không khớp")
    p.fill("#totp-code", pyotp.TOTP(secret).now())
    p.click("#totp-confirm")
    expect(p.locator("#totp-done")).to_be_visible()
    small = p.evaluate(
        """() => [...document.querySelectorAll('#account-dialog p, #account-dialog label span, #account-dialog button')]
               .filter((e) => e.offsetParent !== null)
               .map((e) => parseFloat(getComputedStyle(e).fontSize)).filter((s) => s < 14)"""
    )
    assert not small, small  # text at least 14 px
    p.screenshot(path=str(ARTIFACTS / f"first-login-{size[0]}x{size[1]}.png"))
    with connect(settings) as conn:
        enrolled = conn.execute(
            "SELECT totp_secret IS NOT NULL, must_change_password FROM gis_ioc.accounts WHERE username = %s",
            (username,),
        ).fetchone()
    assert enrolled == (True, False)
    # the browser logs each refused request (the wrong password, the short one, the wrong code): nothing else
    unexpected = [e for e in log.errors if "status of 400" not in e and "status of 401" not in e]
    assert not unexpected, log.errors
    context.close()


def test_a_leader_sees_the_reports_to_handle(browser: Browser, base_url: str, settings: Settings) -> None:
    """Issue 15, item 4: the handling units' queue in the web map, and the public layer of reports."""
    with connect(settings, autocommit=True) as conn:
        first = create(conn, "web.queue", ["leader"], full_name="Đỗ Văn Minh", agency="UBND tỉnh Hưng Yên")
        sessions.change_password(conn, "web.queue", first, "hàng đợi phản ánh của tỉnh Hưng Yên 2026")
        lon, lat = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM layers.communes "
            "WHERE valid_to IS NULL AND code = %s) s",
            (PHO_HIEN,),
        ).fetchone() or (0.0, 0.0)
    sent = httpx.post(
        f"{base_url}/open311/v2/requests.json",
        data={
            "service_code": "chieu_sang",
            "lat": f"{lat:.7f}",
            "long": f"{lon:.7f}",
            "description": "Đèn đường tắt cả tuần",
            "phone": "0912000111",
        },
        headers={"X-Forwarded-For": "198.51.100.23"},
    )
    assert sent.status_code == 201, sent.text
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    p = context.new_page()
    log = PageLog()
    log.attach(p)
    p.goto(f"{base_url}/")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(p.locator("#feedback-queue")).to_be_hidden()  # nobody logged in
    log_in(p, ("web.queue", "hàng đợi phản ánh của tỉnh Hưng Yên 2026"))
    queue = p.locator("#feedback-queue")
    expect(queue).to_be_visible()
    expect(queue.locator("h2")).to_have_text("Phản ánh cần xử lý")
    expect(p.locator("#feedback-list li").first).to_contain_text("Phường Phố Hiến")
    p.locator("#feedback-list li", has_text="Phường Phố Hiến").first.click()
    p.wait_for_function("window.gisIocMap.getZoom() > 15", timeout=10000)
    toggle = p.locator("input[data-layer='feedback-points']")
    expect(toggle).to_be_attached()
    toggle.check()
    wait_idle(p)
    drawn = p.evaluate("window.gisIocMap.queryRenderedFeatures({layers: ['feedback-points']}).length")
    assert drawn >= 1
    # the flight cancels the tiles it passes over (net::ERR_ABORTED): nothing else may fail
    assert not [e for e in log.errors if "ERR_ABORTED" not in e], log.errors
    context.close()


def test_the_emergency_panel(page: tuple[Page, PageLog], base_url: str, analyst: tuple[str, str]) -> None:
    """Issue 13, item 4: a point, an incident, rings → people exposed, shelters and their shortfall, the
    nearest hospitals and fire stations with distances; printable."""
    p, log = page
    log_in(p, analyst)
    p.click("#emergency-run")
    expect(p.locator("#status")).to_contain_text("Hãy bấm một điểm trên bản đồ")
    p.check("input[name=mode][value=radius]")
    box = p.locator("#map").bounding_box()
    assert box is not None
    centre = p.evaluate("window.gisIocMap.project([106.05, 20.65])")
    p.mouse.click(box["x"] + centre["x"], box["y"] + centre["y"])
    p.select_option("#incident", "flood")
    expect(p.locator("#incident option[value=fire]")).to_have_text("Cháy, nổ")
    p.fill("#rings", "2000, 1000")
    p.click("#emergency-run")
    expect(p.locator("#status")).to_contain_text("tăng dần")
    p.fill("#rings", "500, 1000, 2000")
    p.click("#emergency-run")
    results = p.locator("#emergency-results")
    expect(results).to_be_visible(timeout=30000)
    expect(results.locator("h2")).to_have_text("Sự cố: Lũ lụt, ngập úng")
    expect(results.locator("tbody tr")).to_have_count(3)
    expect(results).to_contain_text("Bệnh viện gần nhất")
    expect(results).to_contain_text("km")
    expect(results).to_contain_text("Số dân cần sơ tán")
    hospitals = httpx.post(
        f"{base_url}/api/emergency/run",
        json={"incident": "flood", "at": [106.05, 20.65]},
        headers={"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in p.context.cookies())},
    ).json()["nearest"]["hospitals"]
    expect(results).to_contain_text(hospitals[0]["name"])
    p.emulate_media(media="print")
    expect(p.locator("#map")).to_be_hidden()
    expect(results).to_be_visible()
    p.screenshot(path=str(ARTIFACTS / "emergency-print.png"), full_page=True)
    p.emulate_media(media="screen")
    assert not [e for e in log.errors if "ERR_ABORTED" not in e], log.errors
