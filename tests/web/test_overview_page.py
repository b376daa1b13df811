"""The province at a glance in the web map, in Debian's chromium at 1920×1080 and 1366×768: after login
the overview shows the API's figures for the newest period, a flagged figure puts its communes on the
map (fitted, painted red, listed), another period is one choice away; a refused login says how long a
lockout lasts and whom to ask; a session that ends mid-use returns to the login form and keeps the map."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from gis_ioc.auth import sessions
from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import ARTIFACTS
from tests.web.conftest import PageLog

PASSWORD = "tổng quan toàn tỉnh mỗi sáng 2026"
SMALL_TEXT = """() => [...document.querySelectorAll('#overview, #overview *, #legend, #legend *, #map-period')]
  .filter((e) => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
  .filter((e) => [...e.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()))
  .map((e) => [e.tagName + '#' + e.id + '.' + e.className, e.textContent.trim().slice(0, 30),
               parseFloat(getComputedStyle(e).fontSize)])
  .filter(([, , size]) => size < 14)"""
CLEAR = "() => { const m = document.querySelector('#login-message'); m.hidden = true; m.textContent = ''; }"
#: What chromium logs for an answer of 401 (a refused login, an ended session): expected in those tests.
REFUSED = "status of 401"


def account(settings: Settings, username: str) -> tuple[str, str]:
    with connect(settings, autocommit=True) as conn:
        first = create(conn, username, ["leader"], full_name="Phạm Văn Khánh", agency="UBND tỉnh Hưng Yên")
        sessions.change_password(conn, username, first, PASSWORD)
    return username, PASSWORD


@pytest.fixture(scope="module")
def leader(settings: Settings, loaded: Any) -> tuple[str, str]:
    return account(settings, "overview.leader")


def open_page(browser: Browser, base_url: str, size: tuple[int, int]) -> tuple[Page, PageLog]:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="vi-VN")
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    page.goto(f"{base_url}/")
    page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    return page, log


def log_in(page: Page, who: tuple[str, str], *, reload: bool = True) -> None:
    page.fill("#login-user", who[0])
    page.fill("#login-password", who[1])
    if reload:
        with page.expect_navigation():
            page.click("#login button[type=submit]")
        page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    else:
        page.click("#login button[type=submit]")
    expect(page.locator("#who")).to_have_text(who[0])


def idle(page: Page) -> None:
    page.wait_for_function(
        "window.gisIocMap && window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded()", timeout=30000
    )


def overview_shown(page: Page, period: str) -> dict[str, Any]:
    page.wait_for_function(
        f"window.gisIoc.overview && window.gisIoc.overview.period === '{period}'"
        " && document.querySelector('#overview-sectors')",
        timeout=120000,
    )
    return dict(page.evaluate("window.gisIoc.overview"))


def assert_shows(page: Page, api: dict[str, Any]) -> None:
    """The panel's figures are the API's, written the Vietnamese way (whole numbers here)."""
    box = page.locator("#overview")
    for key in ("met", "not_met", "stale"):
        expect(box.locator(f'#overview-totals b[data-total="{key}"]')).to_have_text(str(api["totals"][key]))
    for sector in api["sectors"]:
        row = box.locator(f'#overview-sectors tr[data-sector="{sector["id"]}"]')
        expect(row.locator("th")).to_have_text(sector["title"]["vi"])
        for key in ("met", "not_met", "stale"):
            expect(row.locator(f'td[data-count="{key}"]')).to_have_text(str(sector["counts"][key]))
    rows = box.locator("#overview-trend tbody tr")
    expect(rows).to_have_count(4)
    for i, point in enumerate(api["trend"]):
        assert rows.nth(i).get_attribute("data-period") == point["period"]
        cells = rows.nth(i).locator("td")
        assert [c.strip() for c in cells.all_inner_texts()][1:] == [str(point[k]) for k in ("met", "not_met", "stale")]
    behind = box.locator("#overview-behind li")
    expect(behind).to_have_count(len(api["most_behind"]))
    for i, commune in enumerate(api["most_behind"]):
        expect(behind.nth(i)).to_have_text(f"{commune['name']}: {commune['not_met']} chỉ tiêu chưa đạt")
    flagged = {i["id"] for s in api["sectors"] for i in s["indicators"] if i["communes_not_met"]}
    shown = set(box.locator("[data-flag-indicator]").evaluate_all("els => els.map(e => e.dataset.flagIndicator)"))
    assert shown == flagged and box.locator("[data-flag-indicator]").count() == len(flagged)


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)], ids=["1920x1080", "1366x768"])
def test_the_province_at_a_glance_after_login(
    browser: Browser, base_url: str, leader: tuple[str, str], size: tuple[int, int]
) -> None:
    p, log = open_page(browser, base_url, size)
    expect(p.locator("#overview")).to_be_hidden()  # for those logged in
    log_in(p, leader)
    overview_shown(p, "2026-Q3")
    idle(p)
    cookies = {c["name"]: c["value"] for c in p.context.cookies()}
    api = httpx.get(f"{base_url}/api/overview", params={"period": "2026-Q3"}, cookies=cookies, timeout=120).json()
    assert_shows(p, api)
    expect(p.locator("#overview-period option:checked")).to_have_text("Quý III/2026")
    assert p.locator("#overview-period option").evaluate_all("els => els.map(e => e.value)") == api["periods"]
    expect(p.locator("#map-period")).to_have_text("Kỳ số liệu: Quý III/2026")
    # one click on a flagged figure: its communes fitted, painted red and listed
    indicator = max(
        (i for s in api["sectors"] for i in s["indicators"] if 0 < len(i["communes_not_met"]) < 60),
        key=lambda i: len(i["communes_not_met"]),
    )
    codes = sorted(c["code"] for c in indicator["communes_not_met"])
    p.locator(f'[data-flag-indicator="{indicator["id"]}"]').click()
    p.wait_for_function(f"window.gisIoc.flagged.length === {len(codes)}", timeout=30000)
    assert sorted(p.evaluate("window.gisIoc.flagged")) == codes
    listed = p.locator("#flagged-communes li")
    expect(listed).to_have_count(len(codes))
    assert sorted(listed.evaluate_all("els => els.map(e => e.dataset.code)")) == codes
    expect(p.locator("#flagged-communes")).to_contain_text(indicator["name"]["vi"])
    for c in indicator["communes_not_met"]:
        expect(p.locator("#flagged-communes")).to_contain_text(c["name"])
    idle(p)
    communes = {c["code"]: c for c in httpx.get(f"{base_url}/api/communes", params={"limit": 200}).json()["communes"]}
    bounds = p.evaluate("window.gisIocMap.getBounds().toArray()")
    for code in codes:
        lon, lat = communes[code]["centre"]
        assert bounds[0][0] <= lon <= bounds[1][0] and bounds[0][1] <= lat <= bounds[1][1], code
    fitted = [communes[c]["bbox"] for c in codes]
    span = max(b[2] for b in fitted) - min(b[0] for b in fitted)
    assert bounds[1][0] - bounds[0][0] < 2.5 * span  # fitted to them, not the whole world
    painted = p.evaluate(
        "[...new Set(window.gisIocMap.queryRenderedFeatures({layers: ['flagged-fill']})"
        ".map(f => f.properties.code))].sort()"
    )
    assert painted == codes
    expect(p.locator("#legend")).to_contain_text(f"Xã, phường chưa đạt: {indicator['name']['vi']} ({len(codes)})")
    p.screenshot(path=str(ARTIFACTS / f"web-overview-{size[0]}.png"))
    if size == (1366, 768):
        assert p.evaluate(SMALL_TEXT) == []
    # another period: its own figures, and the map says which
    p.select_option("#overview-period", "2026-Q2")
    overview_shown(p, "2026-Q2")
    api2 = httpx.get(f"{base_url}/api/overview", params={"period": "2026-Q2"}, cookies=cookies, timeout=120).json()
    assert_shows(p, api2)
    expect(p.locator("#map-period")).to_have_text("Kỳ số liệu: Quý II/2026")
    assert [t["period"] for t in api2["trend"]] == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]
    assert not [u for u in log.urls if not u.startswith((base_url, "data:", "blob:"))]
    assert log.errors == []
    p.context.close()


def test_a_refused_login_says_how_long_a_lockout_lasts_and_whom_to_ask(
    browser: Browser, base_url: str, settings: Settings
) -> None:
    who = account(settings, "overview.locked")
    p, log = open_page(browser, base_url, (1366, 768))
    message = p.locator("#login-message")
    expect(message).to_be_hidden()
    for _ in range(5):  # five wrong passwords in a row lock the account
        p.evaluate(CLEAR)
        p.fill("#login-user", who[0])
        p.fill("#login-password", "không phải mật khẩu này")
        p.click("#login button[type=submit]")
        expect(message).to_be_visible()
        expect(message).to_contain_text("bị khóa 30 phút")
    expect(message).to_contain_text("Sau 5 lần nhập sai liên tiếp")
    expect(message).to_contain_text("liên hệ quản trị viên hệ thống của Trung tâm IOC tỉnh")
    expect(message).to_contain_text("không dùng quá 45 ngày (hết hạn)")
    assert float(message.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 14
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT locked_until > now() FROM gis_ioc.accounts WHERE username = %s", (who[0],)
        ).fetchone()
    assert row is not None and row[0]
    # the right password now: still refused while locked, and said so
    p.evaluate(CLEAR)
    p.fill("#login-user", who[0])
    p.fill("#login-password", who[1])
    p.click("#login button[type=submit]")
    expect(message).to_contain_text("bị khóa 30 phút")
    expect(p.locator("#who")).to_be_hidden()
    p.click("#lang")
    p.evaluate(CLEAR)
    p.fill("#login-password", who[1])
    p.click("#login button[type=submit]")
    expect(message).to_contain_text("locked for 30 minutes")
    expect(message).to_contain_text("system administrator of the province's IOC centre")
    p.screenshot(path=str(ARTIFACTS / "web-login-locked.png"))
    assert all(REFUSED in e for e in log.errors), log.errors
    p.context.close()


@pytest.fixture
def expiring(settings: Settings, loaded: Any) -> tuple[str, str]:
    return account(settings, "overview.expiring")


def test_a_session_ended_mid_use_returns_to_the_login_form_and_keeps_the_map(
    browser: Browser, base_url: str, settings: Settings, expiring: tuple[str, str]
) -> None:
    p, log = open_page(browser, base_url, (1366, 768))
    log_in(p, expiring)
    overview_shown(p, "2026-Q3")
    idle(p)
    p.fill("#search", "pho hien")
    expect(p.locator("#search-results li").first).to_contain_text("Phố Hiến")
    p.keyboard.press("Enter")
    p.evaluate("window.gisIocMap.keptForTest = true")
    centre = p.evaluate("window.gisIocMap.getCenter().toArray()")
    with connect(settings, autocommit=True) as conn:  # the session ends (idle, or ended by an administrator)
        conn.execute(
            "DELETE FROM gis_ioc.sessions WHERE account_id = (SELECT id FROM gis_ioc.accounts WHERE username = %s)",
            (expiring[0],),
        )
    p.select_option("#overview-period", "2026-Q2")
    message = p.locator("#login-message")
    expect(message).to_have_text(
        "Phiên làm việc đã hết hạn (sau một thời gian không thao tác). Hãy đăng nhập lại: "
        "bản đồ và vùng chọn vẫn được giữ nguyên."
    )
    expect(p.locator("#login")).to_be_visible()
    expect(p.locator("#who")).to_be_hidden()
    log_in(p, expiring, reload=False)  # no reload: the map, its place and the selection stay
    expect(message).to_be_hidden()
    assert p.evaluate("window.gisIocMap.keptForTest") is True
    assert p.evaluate("window.gisIocMap.getCenter().toArray()") == centre
    p.select_option("#overview-period", "2026-Q2")
    overview_shown(p, "2026-Q2")
    assert all(REFUSED in e for e in log.errors), log.errors
    p.context.close()
