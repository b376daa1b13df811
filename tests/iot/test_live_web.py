"""The live stations on the leaders' web map, in Debian's chromium: a leader logs in, the stations appear,
and a reading committed afterwards reaches the map through the event stream without a reload."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from playwright.sync_api import Browser, expect, sync_playwright

from gis_ioc.api import iot_live
from gis_ioc.app import create_app
from gis_ioc.auth import sessions
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.iot import judge, model
from gis_ioc.iot.store import Message, store_messages
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import free_port, scalar
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, PageLog

LEADER = ("live.web.leader", "bản đồ trực tuyến 2026!")


@pytest.fixture(scope="module")
def base_url(settings: Settings, loaded: DemoResult) -> Iterator[str]:
    """The application with the sensor routes, served by uvicorn on a free port."""
    port = free_port()
    served = settings.model_copy(update={"port": port, "allowed_hosts": f"127.0.0.1:{port}"})
    app = create_app(served)
    if not any(getattr(r, "path", "") == "/api/iot/stream" for r in app.routes):
        app.include_router(iot_live.router)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _push(settings: Settings, device: str, value: float, when: datetime, ds: int) -> None:
    pack = json.dumps([{"n": "pm25", "u": "µg/m³", "v": value, "t": when.timestamp()}]).encode()
    with connect(settings, autocommit=True) as conn:
        [outcome] = store_messages(conn, [Message(device, pack, "http", datetime.now(UTC))])
        assert outcome.accepted == 1, outcome.as_json("en")
        judge.after_commit(conn, [ds], settings.config_dir)


def test_a_new_reading_reaches_the_map_without_reloading(settings: Settings, base_url: str, browser: Browser) -> None:
    with connect(settings, autocommit=True) as conn:
        first = create(conn, LEADER[0], ["leader"], full_name="Lê Văn Minh", agency="UBND tỉnh Hưng Yên")
        sessions.change_password(conn, LEADER[0], first, LEADER[1])
        device = str(
            scalar(
                conn, "SELECT max(device_code) FROM layers.iot_devices WHERE kind = 'camera' AND commune_code = '11953'"
            )
        )
        ds = model.register(conn, device, "pm25", 300).id
    now = datetime.now(UTC).replace(microsecond=0)
    _push(settings, device, 30.0, now - timedelta(minutes=10), ds)

    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    try:
        page.goto(f"{base_url}/")
        page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
        if not page.evaluate("Boolean(document.querySelector('script[src*=\"live.js\"]'))"):
            page.add_script_tag(url="/static/live.js")  # until index.html loads it (with the routes in app.py)
        page.wait_for_timeout(600)
        assert page.evaluate("window.gisIocLive.size") == 0  # anonymous: the devices layer is not readable
        page.fill("#login-user", LEADER[0])
        page.fill("#login-password", LEADER[1])
        with page.expect_navigation():
            page.click("#login button[type=submit]")
        page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
        expect(page.locator("#who")).to_have_text(LEADER[0])
        if not page.evaluate("Boolean(document.querySelector('script[src*=\"live.js\"]'))"):
            page.add_script_tag(url="/static/live.js")
        reading = (
            "([device, value]) => { const f = window.gisIocLive && window.gisIocLive.get(device);"
            " const r = f && f.properties.readings.find((x) => x.property === 'pm25');"
            " return Boolean(r) && r.value === value; }"
        )
        page.wait_for_function(reading, arg=[device, 30], timeout=30000)
        assert page.evaluate("window.gisIocMap.getLayer('iot-live') !== undefined")
        page.evaluate("window.__same_page = true")
        _push(settings, device, 80.0, now - timedelta(minutes=1), ds)
        page.wait_for_function(reading, arg=[device, 80], timeout=15000)
        assert page.evaluate("window.__same_page === true")  # no reload
        feature = page.evaluate("(device) => window.gisIocLive.get(device).properties", device)
        assert feature["stale"] is False and feature["readings"][0]["name"] == "Bụi PM2.5"
        assert log.errors == [], log.errors
    finally:
        context.close()
