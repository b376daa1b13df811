"""The report page in Debian's chromium at a phone's size: a report sent by tapping the map, only gis_ioc's
own address asked, no script error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS, serve
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, PageLog


@pytest.fixture(scope="module")
def base_url(settings: Settings, loaded: DemoResult) -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(settings, ARTIFACTS / "feedback-server.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """This module's own chromium, closed with the module: a Playwright left open would keep its event
    loop in the main thread and refuse every later sync_playwright (the reports' PDF, tests/web)."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_a_report_sent_from_a_phone(base_url: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    page.goto(f"{base_url}/phan-anh")
    page.wait_for_function("document.querySelectorAll('#category option').length > 5")
    page.select_option("#category", "rac_thai")
    page.fill("#description", "Rác đổ trộm ven đường, bốc mùi")
    page.wait_for_selector("#map canvas")
    page.wait_for_timeout(1500)  # the style and the first tiles
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.input_value("#lat") and page.input_value("#long")
    page.fill("input[name=first_name]", "Lê Văn Nam")
    page.fill("input[name=phone]", "0977000111")
    page.click("#submit")
    page.wait_for_selector("#result.ok, #result.err")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-page-phone.png"), full_page=True)
    result = page.inner_text("#result")
    assert "Đã tiếp nhận" in result, result
    assert "Mã xác nhận" in result
    assert not log.errors, log.errors
    assert all(u.startswith(base_url) or u.startswith("data:") or u.startswith("blob:") for u in log.urls), [
        u for u in log.urls if not u.startswith(base_url)
    ]
    context.close()
