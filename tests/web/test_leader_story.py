"""Issue 13, item 9: a new leader's whole story in Debian's chromium, at a laptop's and a meeting room's
screen: first login with the one-time password, the password changed in the page, the map drawn, the
province at a glance on arrival and for another period, a flagged figure to its communes on the map, a
radius selection and its scenario answer, the emergency panel, a report downloaded. Every figure shown is
checked against the API's answer. At every step: no request to another host, no console error, page
error or refused request; at 1366×768 no text in the panels under 14 px. A screenshot of each step and
the times the steps were reached are kept under test-artifacts/leader-story/."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, Route, expect

from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import ARTIFACTS
from tests.web.conftest import PageLog

SHOTS = ARTIFACTS / "leader-story"
NEW_PASSWORD = "đê sông Luộc vững vàng qua mùa lũ 2026"
WHOLE_UNITS = {"người", "hộ", "trường", "giường", "ngày", "chỗ", "cơ sở", "xã"}
PANELS = "#panel, #legend, #map-period, #account-dialog"
# every visible element that carries text of its own, inside the panels, and its computed font size
SMALL_TEXT = """(panels) => [...document.querySelectorAll(panels)]
  .flatMap((root) => [root, ...root.querySelectorAll('*')])
  .filter((e) => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
  .filter((e) => [...e.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()))
  .map((e) => [e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''),
               e.textContent.trim().slice(0, 40), parseFloat(getComputedStyle(e).fontSize)])
  .filter(([, , size]) => size < 14)"""


def vi_number(value: float | None, digits: int) -> str:
    """A number as the page writes it in Vietnamese: "." between thousands, "," before decimals, at most
    ``digits`` decimals without trailing zeros, never "-0"."""
    if value is None:
        return "—"
    quantum = Decimal(1).scaleb(-digits)
    rounded = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        rounded = Decimal(0).quantize(quantum)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    fraction = fraction.rstrip("0")
    return sign + grouped + ("," + fraction if fraction else "")


def figure(value: float | None, unit: str) -> str:
    return vi_number(value, 0 if unit.strip() in WHOLE_UNITS else 2)


def test_vi_number_writes_vietnamese_separators() -> None:
    assert vi_number(8726.35, 0) == "8.726"
    assert vi_number(1234.5, 2) == "1.234,5"
    assert vi_number(-0.001, 2) == "0"
    assert vi_number(1.14, 2) == "1,14"
    assert vi_number(None, 2) == "—"


class Story:
    """The leader's browser: one context, every request and every error of every page in it (the report
    opens in a tab of its own), and a numbered screenshot per step."""

    def __init__(self, context: BrowserContext, base_url: str, size: tuple[int, int]) -> None:
        self.context = context
        self.base_url = base_url
        self.size = size
        self.log = PageLog()
        self.step = 0
        self.started = time.monotonic()
        self.times: list[str] = []
        self.overviews: list[Response] = []  # the API's answers to the page's overview requests
        for old in SHOTS.glob(f"{size[0]}x{size[1]}-*"):
            old.unlink()  # a shorter story than the last one leaves no stale step behind
        context.on("page", self.watch)
        self.page = context.new_page()

    def watch(self, page: Page) -> None:
        self.log.attach(page)
        page.on("response", self.answered)

    def answered(self, response: Response) -> None:
        if response.status >= 400:  # the console says only "status of 404": keep which answer it was
            self.log.errors.append(f"{response.status} {response.url}")
        if response.url.startswith(f"{self.base_url}/api/overview"):
            self.overviews.append(response)

    def shot(self, name: str) -> None:
        self.step += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        prefix = f"{self.size[0]}x{self.size[1]}"
        self.page.screenshot(path=str(SHOTS / f"{prefix}-{self.step:02d}-{name}.png"))
        # how long the story took to reach each step, beside the screenshots
        self.times.append(f"{self.step:02d} {name}: {time.monotonic() - self.started:.1f} s")
        (SHOTS / f"{prefix}-steps.txt").write_text("\n".join(self.times) + "\n")

    def check_clean(self) -> None:
        # data:, blob: and the browser's own PDF viewer (chrome:, chrome-extension:) never leave the machine
        network = [u for u in self.log.urls if urlsplit(u).scheme in {"http", "https", "ws", "wss", "ftp"}]
        foreign = [u for u in network if not u.startswith(self.base_url + "/")]
        assert not foreign, foreign
        # the browser's PDF viewer in the report's tab may drop its own resources as the tab closes
        errors = [e for e in self.log.errors if not e.startswith(("failed: chrome://", "failed: chrome-extension://"))]
        assert not errors, errors
        if self.size == (1366, 768):
            small = self.page.evaluate(SMALL_TEXT, PANELS)
            assert not small, small

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.context.cookies()}

    def ready(self) -> None:
        self.page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
        self.page.wait_for_function(
            "window.gisIocMap && window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded()", timeout=30000
        )


@pytest.fixture
def story(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Story]:
    size: tuple[int, int] = request.param
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]}, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh"
    )
    try:
        yield Story(context, base_url, size)
    finally:
        context.close()


def first_login(s: Story, settings: Settings) -> None:
    """The account as an administrator makes it: a one-time password handed over on paper."""
    p = s.page
    username = f"story.leader{s.size[0]}"
    with connect(settings, autocommit=True) as conn:
        first = create(conn, username, ["leader"], full_name="Nguyễn Thị Hằng", agency="UBND tỉnh Hưng Yên")
    p.goto(f"{s.base_url}/")
    s.ready()
    expect(p.locator("#login")).to_be_visible()
    s.shot("arrival")
    p.fill("#login-user", username)
    p.fill("#login-password", first)
    with p.expect_navigation():
        p.click("#login button[type=submit]")
    p.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    expect(p.locator("#account-dialog")).to_be_visible()
    expect(p.locator("#password-form h2")).to_have_text("Đổi mật khẩu lần đầu")
    s.shot("first-password")
    s.check_clean()
    p.fill("#pw-old", first)
    p.fill("#pw-new", NEW_PASSWORD)
    p.fill("#pw-again", NEW_PASSWORD)
    with p.expect_navigation():
        p.click("#password-form button[type=submit]")
    s.ready()
    expect(p.locator("#account-dialog")).to_be_hidden()
    expect(p.locator("#who")).to_have_text(username)


def map_drawn(s: Story) -> None:
    """The whole province drawn: every commune's polygon rendered."""
    p = s.page
    drawn = p.evaluate(
        "new Set(window.gisIocMap.queryRenderedFeatures({layers: ['communes-fill']}).map(f => f.properties.code)).size"
    )
    assert drawn >= 100  # the whole province in view: 104 communes
    s.shot("map")
    s.check_clean()


def overview_answer(s: Story, period: str) -> dict[str, Any]:
    """The API's answer the page received for the overview of ``period`` (each overview runs every sector
    over the province for four periods: the story does not ask for it twice)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for response in reversed(s.overviews):
            if response.ok and response.json()["period"] == period:
                return dict(response.json())
        s.page.wait_for_timeout(200)
    raise AssertionError(f"no overview of {period} answered: {[r.url for r in s.overviews]}")


def check_overview(s: Story, api: dict[str, Any]) -> None:
    """The province at a glance as the page shows it: every count is the API's for the same period."""
    p = s.page
    body = p.locator("#overview-body")
    expect(p.locator("#overview-period")).to_have_value(api["period"], timeout=120000)
    expect(body.locator("#overview-totals")).to_be_visible(timeout=120000)
    for key in ("met", "not_met", "stale"):
        expect(body.locator(f'#overview-totals [data-total="{key}"]')).to_have_text(vi_number(api["totals"][key], 0))
    assert sum(api["totals"][k] for k in ("met", "not_met", "stale")) > 0  # figures, not an empty frame
    for sector in api["sectors"]:
        row = body.locator(f'#overview-sectors tr[data-sector="{sector["id"]}"]')
        for key in ("met", "not_met", "stale"):
            expect(row.locator(f'td[data-count="{key}"]')).to_have_text(vi_number(sector["counts"][key], 0))
    expect(body.locator("#overview-trend tbody tr")).to_have_count(len(api["trend"]))
    for point in api["trend"]:
        row = body.locator(f'#overview-trend tr[data-period="{point["period"]}"]')
        for key in ("met", "not_met", "stale"):
            expect(row.locator(f'td[data-count="{key}"]')).to_have_text(vi_number(point[key], 0))
    behind = body.locator("#overview-behind li")
    expect(behind).to_have_count(len(api["most_behind"]))
    for i, commune in enumerate(api["most_behind"]):
        expect(behind.nth(i)).to_contain_text(commune["name"])
        expect(behind.nth(i)).to_contain_text(vi_number(commune["not_met"], 0))


def overview(s: Story) -> dict[str, Any]:
    """On arrival the current period (the newest with figures), then the one before from the selector."""
    p = s.page
    expect(p.locator("#overview")).to_be_visible()
    current = overview_answer(s, "2026-Q3")
    assert [r.url for r in s.overviews] == [f"{s.base_url}/api/overview"]  # the page asked for the current one
    check_overview(s, current)
    expect(p.locator("#overview-period option:checked")).to_have_text("Quý III/2026")
    s.shot("overview")
    s.check_clean()
    earlier = "2026-Q2"
    assert earlier in current["periods"]
    p.select_option("#overview-period", earlier)
    expect(p.locator("#overview-period option:checked")).to_have_text("Quý II/2026")
    api = overview_answer(s, earlier)
    assert s.overviews[-1].url == f"{s.base_url}/api/overview?period={earlier}"
    check_overview(s, api)
    s.shot("overview-earlier")
    s.check_clean()
    return api


def flagged_figure(s: Story, api: dict[str, Any]) -> None:
    """One click on the first flagged figure: its communes listed, painted, and the map fitted to them."""
    p = s.page
    figure_ = p.locator("#overview-body [data-flag-indicator]").first
    indicator = figure_.get_attribute("data-flag-indicator")
    communes = next(
        i["communes_not_met"] for sector in api["sectors"] for i in sector["indicators"] if i["id"] == indicator
    )
    assert communes
    figure_.click()
    listed = p.locator("#flagged-communes li")
    expect(listed).to_have_count(len(communes))
    assert listed.all_inner_texts() == [c["name"] for c in communes]
    codes = sorted(c["code"] for c in communes)
    s.ready()
    assert sorted(p.evaluate("window.gisIoc.flagged")) == codes
    painted = p.evaluate(
        "[...new Set(window.gisIocMap.queryRenderedFeatures({layers: ['flagged-fill']})"
        ".map(f => String(f.properties.code)))].sort()"
    )
    assert painted == codes
    # fitted: every flagged commune inside the view, and the view no larger than needed (about their extent)
    index = {
        c["code"]: c["bbox"] for c in httpx.get(f"{s.base_url}/api/communes", params={"limit": 200}).json()["communes"]
    }
    boxes = [index[c] for c in codes]
    want = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    west, south, east, north = p.evaluate("window.gisIocMap.getBounds().toArray().flat()")
    slack = 1e-6
    assert west <= want[0] + slack and south <= want[1] + slack and east >= want[2] - slack and north >= want[3] - slack
    assert (east - west) < 2.5 * (want[2] - want[0]) or (north - south) < 2.5 * (want[3] - want[1])
    s.shot("flagged-figure")
    s.check_clean()


def radius_scenario(s: Story) -> dict[str, Any]:
    """Around Thái Bình, 2.5 km, education, Quý III/2026: the page's figures are the API's for the same
    request, written the Vietnamese way."""
    p = s.page
    p.fill("#search", "thai binh")
    expect(p.locator("#search-results li").first).to_contain_text("Thái Bình")
    p.keyboard.press("Enter")
    expect(p.locator('input[name="mode"][value="radius"]')).to_be_checked()
    p.fill("#radius", "2500")
    p.select_option("#scenario", "education")
    p.select_option("#period", "2026-Q3")
    expect(p.locator("#period option:checked")).to_have_text("Quý III/2026")
    p.click("#run")
    run = p.wait_for_function("window.gisIoc.lastRun", timeout=30000).json_value()
    centre = p.evaluate("window.gisIoc.centre")
    answer = httpx.post(
        f"{s.base_url}/api/scenarios/education/run",
        json={"period": "2026-Q3", "radius": {"at": centre, "metres": 2500}},
        cookies=s.cookies(),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    api = answer.json()
    assert api["id"] != run["id"]  # a run of its own, with the same figures
    assert [c["code"] for c in api["communes"]] == [c["code"] for c in run["communes"]]
    rows = p.locator("#results table tbody tr")
    expect(rows).to_have_count(len(api["indicators"]))
    for ind in api["indicators"]:
        row = p.locator(f'#results tr[data-indicator="{ind["id"]}"]')
        cells = row.locator("td.num")
        value = cells.nth(0).inner_text().split(" (")[0].strip()
        assert value == figure(ind["total"]["value"], ind["unit"]), (ind["id"], value, ind["total"])
        assert cells.nth(1).inner_text().strip() == figure(ind["total"]["target"], ind["unit"]), ind["id"]
        assert ("not-met" in (row.get_attribute("class") or "")) == (ind["total"]["status"] == "not met")
    expect(p.locator("#results li.flag")).to_have_count(len(api["flags"]))
    flagged = sorted({f["where"] for f in api["flags"] if f["where"] != "total"})
    assert sorted(p.evaluate("window.gisIoc.flagged")) == flagged and flagged
    s.ready()
    s.shot("radius-scenario")
    s.check_clean()
    return dict(run)


def emergency(s: Story) -> None:
    """A flood at the same point, rings of 500 m, 1 km and 2 km: people and households in each ring as
    the API counts them."""
    p = s.page
    p.select_option("#incident", "flood")
    p.fill("#rings", "500, 1000, 2000")
    p.click("#emergency-run")
    results = p.locator("#emergency-results")
    expect(results).to_be_visible(timeout=30000)
    expect(results.locator("h2")).to_have_text("Sự cố: Lũ lụt, ngập úng")
    at = p.evaluate("window.gisIoc.centre")
    answer = httpx.post(
        f"{s.base_url}/api/emergency/run",
        json={"incident": "flood", "at": at, "rings": [500, 1000, 2000]},
        cookies=s.cookies(),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    rings = answer.json()["rings"]
    rows = results.locator("tbody tr")
    expect(rows).to_have_count(3)
    shown = [[cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()] for i in range(3)]
    expected = [[r["label"], vi_number(r["people_within"], 0), vi_number(r["households_within"], 0)] for r in rings]
    assert shown == expected
    assert all(r["people_within"] > 0 and r["households_within"] > 0 for r in rings), rings
    expect(results).to_contain_text("Bệnh viện gần nhất")
    s.shot("emergency")
    s.check_clean()


def report(s: Story, run: dict[str, Any]) -> None:
    """The run's report link: the PDF is made and opens in a tab of its own. What the browser receives is
    kept on its way (the request goes to the server unchanged, its answer back to the tab unchanged)."""
    p = s.page
    link = p.locator("#results .actions a").first
    expect(link).to_have_text("Báo cáo PDF")
    href = link.get_attribute("href") or ""
    assert f"runs={run['id']}" in href
    received: list[tuple[int, dict[str, str], bytes]] = []

    def keep(route: Route) -> None:
        answer = route.fetch(timeout=180000)
        received.append((answer.status, answer.headers, answer.body()))
        route.fulfill(response=answer)

    s.context.route(f"{s.base_url}{href}", keep)
    with s.context.expect_page(timeout=180000) as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state(timeout=180000)
    assert tab.url == f"{s.base_url}{href}"
    assert len(received) == 1
    status, headers, data = received[0]
    assert status == 200
    assert headers["content-type"] == "application/pdf"
    assert headers["x-scenario-runs"] == str(run["id"])
    assert data.startswith(b"%PDF") and len(data) > 20_000, len(data)
    (SHOTS / f"{s.size[0]}x{s.size[1]}-report.pdf").write_bytes(data)
    text = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()
    words = " ".join(text.split())
    assert "Vòng tròn bán kính 2.500 m" in words and "Phường Thái Bình" in words, words[:2000]
    assert f"Giáo dục (mã lần phân tích {run['id']})" in words, words[:2000]
    tab.close()
    s.shot("report")
    s.check_clean()


@pytest.mark.parametrize("story", [(1920, 1080), (1366, 768)], indirect=True, ids=["1920x1080", "1366x768"])
def test_a_new_leaders_whole_story(story: Story, settings: Settings) -> None:
    first_login(story, settings)
    map_drawn(story)
    shown = overview(story)
    flagged_figure(story, shown)
    run = radius_scenario(story)
    emergency(story)
    report(story, run)
