"""A running `gis-ioc serve` and Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # WebGL in software: MapLibre needs it without a GPU
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="package")
def base_url(settings: Settings, loaded: DemoResult) -> Iterator[str]:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(settings, ARTIFACTS / "web-server.log") as base:
        yield base


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Playwright gives each launch a fresh temporary profile of its own
    with sync_playwright() as p:
        context_browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield context_browser
        context_browser.close()


class PageLog:
    """Console errors, page errors, failed requests and every URL the page asked for."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url} {r.failure}"))
        page.on("request", lambda r: self.urls.append(r.url))
