"""Issue 14, item 5: the EDR query page (pygeoapi's collections/edr/query.html) draws its CoverageJSON map
from gis_ioc's own copies of leaflet-coverage, covjson-reader, covutils, c3 and d3 (never a CDN), for a
logged-in leader, in Vietnamese and with lang=en in English; in Debian's chromium.

Three stations of the test's own stand east of a point of Phố Hiến: two within the 2 km radius asked
(0 and 1,2 km), one outside it (3 km); each has readings in the last hours, stored through the sensors'
own storing path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.iot import model
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import ARTIFACTS, push_readings, remove_devices
from tests.web.conftest import PageLog

LON, LAT = 106.0650, 20.6760  # Phố Hiến (commune 11953)
STATIONS = {"EDRW-A": 0.0, "EDRW-B": 1200.0, "EDRW-C": 3000.0}  # metres east of the point
UNITS = {"pm25": "µg/m³", "pm10": "µg/m³"}
PASSWORD = "trạm quan trắc Phố Hiến đo bụi mịn 2026"
QUERY = {"coords": f"POINT({LON} {LAT})", "within": "2", "within-units": "km"}
SITES = {
    "vi": "Trung tâm Giám sát, điều hành thông minh tỉnh Hưng Yên — dữ liệu không gian",
    "en": "Hưng Yên Intelligent Operations Center — geospatial data",
}


def _place(conn: psycopg.Connection[Any], code: str, east_m: float) -> None:
    conn.execute(
        "INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, geom) "
        "VALUES (%s, '11953', 'air_quality', 'online', "
        "ST_Project(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s, radians(90))::geometry)",
        (code, LON, LAT, east_m),
    )
    for prop in UNITS:
        model.register(conn, code, prop, 3600)


@pytest.fixture(scope="module")
def leader(settings: Settings, loaded: DemoResult) -> Iterator[tuple[str, str]]:
    """The stations with their readings, and a leader's account (user name, one-time password)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [end - timedelta(hours=k) for k in (3, 2, 1)]
    with connect(settings, autocommit=True) as conn:
        for n, (code, east) in enumerate(STATIONS.items()):
            _place(conn, code, east)
            push_readings(
                conn,
                code,
                [
                    (p, 20.0 + 15 * n + 5 * k + (10 if p == "pm10" else 0), h)
                    for k, h in enumerate(hours)
                    for p in UNITS
                ],
            )
        account = create(conn, "edrpage.leader", ["leader"], full_name="Trần Văn Bình")
    yield "edrpage.leader", account
    with connect(settings, autocommit=True) as conn:
        remove_devices(conn, list(STATIONS))


@dataclass
class Session:
    context: BrowserContext
    page: Page
    log: PageLog
    statuses: list[tuple[int, str]]


@pytest.fixture(scope="module")
def logged_in(browser: Browser, base_url: str, leader: tuple[str, str]) -> Iterator[BrowserContext]:
    """A browser context with the leader's session cookie: logged in, first password changed."""
    username, first = leader
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh"
    )
    try:
        answer = context.request.post(f"{base_url}/api/auth/login", data={"username": username, "password": first})
        assert answer.status == 200, answer.text()
        changed = context.request.post(
            f"{base_url}/api/auth/password", data={"old_password": first, "new_password": PASSWORD}
        )
        assert changed.status == 200, changed.text()
        assert context.request.get(f"{base_url}/api/auth/session").json()["authenticated"] is True
        yield context
    finally:
        context.close()


@pytest.fixture
def session(logged_in: BrowserContext) -> Iterator[Session]:
    page = logged_in.new_page()
    log = PageLog()
    log.attach(page)
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    try:
        yield Session(logged_in, page, log, statuses)
    finally:
        page.close()


def radius_path(**extra: str) -> str:
    return "/ogc/collections/iot_devices/radius?" + urlencode({**QUERY, **extra})


def open_offline(s: Session, base_url: str, path: str) -> Page:
    """The page, opened until the network is idle: every request to gis_ioc and answered, no error."""
    response = s.page.goto(f"{base_url}{path}", wait_until="networkidle")
    assert response is not None and response.status == 200, path
    assert response.headers["content-type"].startswith("text/html")
    own = urlsplit(base_url).netloc
    elsewhere = [u for u in s.log.urls if not u.startswith("data:") and urlsplit(u).netloc != own]
    assert elsewhere == [], elsewhere
    assert [st for st in s.statuses if st[0] >= 400] == []
    assert s.log.errors == [], s.log.errors
    return s.page


def test_the_radius_page_draws_the_stations_offline(session: Session, base_url: str) -> None:
    answer = session.context.request.get(f"{base_url}{radius_path(f='json')}")
    assert answer.status == 200, answer.text()
    coverages = answer.json()["coverages"]
    mine = sorted(c["id"] for c in coverages if c["id"].startswith("EDRW-"))
    assert mine == ["EDRW-A", "EDRW-B"]  # C is 3 km away
    page = open_offline(session, base_url, radius_path(f="html"))
    # the vendored libraries are the ones running, from gis_ioc
    assert (
        page.evaluate("[typeof C.dataLayer, typeof CovJSON.read, typeof CovUtils.isDomain, typeof c3.generate]")
        == ["function"] * 4
    )
    scripts = page.evaluate("[...document.scripts].map(s => s.src).filter(Boolean)")
    assert {urlsplit(s).path for s in scripts} >= {
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/d3/d3.min.js",
        "/static/vendor/c3/c3.min.js",
        "/static/vendor/covutils/covutils.min.js",
        "/static/vendor/covjson-reader/covjson-reader.min.js",
        "/static/vendor/leaflet-coverage/leaflet-coverage.min.js",
    }
    # the coverage layer is on the map: one circle per station of the answer, the map zoomed to them
    page.wait_for_function("window.api && window.api.layers.size > 0", timeout=30000)
    marks = page.locator("#coverages-map .leaflet-overlay-pane path.leaflet-interactive")
    assert marks.count() == len(coverages), (marks.count(), [c["id"] for c in coverages])
    bounds = page.evaluate("(() => { const b = window.api.map.getBounds(); return [b.getWest(), b.getEast()] })()")
    assert bounds[0] <= LON <= bounds[1]
    # the layer control lists the parameters of the answer
    overlays = page.inner_text("#coverages-map .leaflet-control-layers-overlays")
    assert {"pm25", "pm10"} <= set(overlays.split())
    page.screenshot(path=ARTIFACTS / "ogc-edr-radius.png")
    assert session.log.errors == [], session.log.errors
    assert [u for u in session.log.urls if urlsplit(u).netloc not in ("", urlsplit(base_url).netloc)] == []


def test_a_station_opens_its_time_series_chart(session: Session, base_url: str) -> None:
    """Clicking station A (the westernmost) opens its readings as a c3 chart: c3 and d3, vendored, at work."""
    page = open_offline(session, base_url, radius_path(f="html"))
    page.wait_for_function("window.api && window.api.layers.size > 0", timeout=30000)
    marks = page.locator("#coverages-map .leaflet-overlay-pane path.leaflet-interactive")
    lefts: list[float] = page.evaluate(
        "[...document.querySelectorAll('#coverages-map .leaflet-overlay-pane path.leaflet-interactive')]"
        ".map(p => p.getBoundingClientRect().left)"
    )
    marks.nth(lefts.index(min(lefts))).click()
    page.wait_for_selector("#coverages-map .leaflet-popup .c3 svg", timeout=30000)
    # A's three hours of readings of the parameter shown (pm10 or pm25, each three readings)
    page.wait_for_function("document.querySelectorAll('#coverages-map .leaflet-popup .c3-circle').length === 3")
    page.wait_for_timeout(500)  # the popup's pan and the chart's transition, for the screenshot
    page.screenshot(path=ARTIFACTS / "ogc-edr-radius-chart.png")
    assert session.log.errors == [], session.log.errors


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_page_speaks_the_asked_language(session: Session, base_url: str, lang: str) -> None:
    page = open_offline(session, base_url, radius_path(f="html", **({"lang": "en"} if lang == "en" else {})))
    assert page.evaluate("document.documentElement.lang") == lang
    crumbs = page.inner_text(".crumbs")
    if lang == "vi":
        assert "Trang chủ" in crumbs and "Lớp dữ liệu" in crumbs and "Home" not in crumbs
    else:
        assert "Home" in crumbs and "Collections" in crumbs and "Trang chủ" not in crumbs
    title = page.title()
    assert title.endswith(f" | {SITES[lang]}") and ("Thiết bị IoT" if lang == "vi" else "IoT devices") in title, title
