"""Benchmark: the leaders' screen in Debian's chromium (issue 13, item 9) — time to the first drawn map and
to each answer a leader waits for, beside the same requests made directly over HTTP.

Each run is a fresh browser context (empty cache, the leader's session cookie) at 1920×1080:

- first drawn map: from the start of the navigation to MapLibre's first ``idle`` (style, tiles of every
  visible layer and the overlays loaded and drawn), measured in the page (``performance.now()``);
- overview on arrival: from the start of the navigation to the province overview's figures on screen;
- overview, another period: a period picked in ``#overview-period`` to its figures on screen;
- flagged figure: a click on the first flagged figure to its communes listed and the map fitted and idle;
- radius scenario: education over 2.5 km around Thái Bình, from the click on «Phân tích» to the table;
- emergency: a flood at the same point with rings of 500 m, 1 km and 2 km, from the click to the panel;
- report: the run's PDF report, from the click (Alt+click: the browser saves the link) to the whole file.

The reference column is the same request made directly over HTTP with httpx in this process, right after
the browser's (the scenario, emergency and report requests each make a new run or document: nothing is
answered from a cache), so the browser's own cost (JavaScript, drawing, tiles) is the difference. The
in-page times are polled once per animation frame (about 16 ms resolution).

Against a throwaway cluster with the boundaries and the demo data, served by ``gis-ioc serve``:

    .venv/bin/python bench/bench_leader_screen.py [--runs 10] [--parcels 200000]

or against a running server and an account that has changed its first password:

    .venv/bin/python bench/bench_leader_screen.py --url http://127.0.0.1:8000 --user lanh.dao --password '…'
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from _support import free_port, remove_bench_database, start_bench_database
from playwright.sync_api import Browser, Page, sync_playwright

from gis_ioc.auth import accounts, audit, sessions
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo

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
USER, PASSWORD = "bench.leader", "đo thời gian màn hình điều hành 2026"
PERIOD, EARLIER = "2026-Q3", "2026-Q2"
RADIUS_M, RINGS = 2500, [500, 1000, 2000]
# the map created by app.js is caught as it is set, to note when it first loads and first goes idle
HOOK = """(() => {
  let map;
  Object.defineProperty(window, "gisIocMap", { configurable: true, get: () => map, set: (m) => {
    map = m;
    m.once("load", () => { window.__benchLoad = performance.now(); });
    m.once("idle", () => { window.__benchIdle = performance.now(); });
  } });
})();"""
STEPS = [
    ("first drawn map", "GET /api/map/config"),
    ("overview on arrival", f"GET /api/overview?period={PERIOD}"),
    ("overview, another period", f"GET /api/overview?period={EARLIER}"),
    ("flagged figure → communes", "GET /api/communes?limit=200"),
    ("radius scenario", "POST /api/scenarios/education/run"),
    ("emergency, 3 rings", "POST /api/emergency/run"),
    ("report (PDF)", "GET /api/reports?runs=…&format=pdf"),
]


@dataclass
class Timings:
    browser: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name, _ in STEPS})
    http: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name, _ in STEPS})


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


def timed(work: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    answer = work()
    took = (time.perf_counter() - started) * 1000
    answer.raise_for_status()
    return took


def now(page: Page) -> float:
    return float(page.evaluate("performance.now()"))


def until(page: Page, condition: str, timeout: float = 120_000) -> float:
    """performance.now() at the first animation frame where ``condition`` holds."""
    return float(page.wait_for_function(f"() => ({condition}) && performance.now()", timeout=timeout).json_value())


def one_run(browser: Browser, base: str, client: httpx.Client, cookies: list[Any], t: Timings) -> None:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="vi-VN")
    try:
        context.add_cookies(cookies)
        context.add_init_script(HOOK)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/")
        until(page, "window.__benchIdle")
        t.browser["first drawn map"].append(float(page.evaluate("window.__benchIdle")))
        t.http["first drawn map"].append(timed(lambda: client.get("/api/map/config")))

        t.browser["overview on arrival"].append(until(page, "document.querySelector('#overview-totals')"))
        t.http["overview on arrival"].append(timed(lambda: client.get("/api/overview", params={"period": PERIOD})))

        shown = (
            "window.gisIoc.overview && window.gisIoc.overview.period === '{}' "
            "&& document.querySelector('#overview-totals')"
        )
        started = now(page)
        page.select_option("#overview-period", EARLIER)
        t.browser["overview, another period"].append(until(page, shown.format(EARLIER)) - started)
        t.http["overview, another period"].append(
            timed(lambda: client.get("/api/overview", params={"period": EARLIER}))
        )
        page.select_option("#overview-period", PERIOD)
        until(page, shown.format(PERIOD))

        figure = page.locator("#overview-body [data-flag-indicator]").first
        indicator = figure.get_attribute("data-flag-indicator")
        started = now(page)
        figure.click()
        t.browser["flagged figure → communes"].append(
            until(
                page,
                f"window.gisIoc.flagIndicator === '{indicator}' && document.querySelector('#flagged-communes li') "
                "&& window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded() && !window.gisIocMap.isMoving()",
            )
            - started
        )
        t.http["flagged figure → communes"].append(timed(lambda: client.get("/api/communes", params={"limit": 200})))

        page.fill("#search", "thai binh")
        page.locator("#search-results li").first.wait_for()
        page.keyboard.press("Enter")
        page.fill("#radius", str(RADIUS_M))
        page.select_option("#scenario", "education")
        page.select_option("#period", PERIOD)
        centre = page.evaluate("window.gisIoc.centre")
        started = now(page)
        page.click("#run")
        t.browser["radius scenario"].append(
            until(page, "window.gisIoc.lastRun && document.querySelector('#results tbody tr')") - started
        )
        run_id = page.evaluate("window.gisIoc.lastRun.id")
        body = {"period": PERIOD, "radius": {"at": centre, "metres": RADIUS_M}}
        t.http["radius scenario"].append(timed(lambda: client.post("/api/scenarios/education/run", json=body)))

        page.select_option("#incident", "flood")
        page.fill("#rings", ", ".join(str(r) for r in RINGS))
        started = now(page)
        page.click("#emergency-run")
        t.browser["emergency, 3 rings"].append(
            until(
                page,
                "!document.getElementById('emergency-results').hidden "
                "&& document.querySelector('#emergency-results tbody tr')",
            )
            - started
        )
        flood = {"incident": "flood", "at": centre, "rings": RINGS}
        t.http["emergency, 3 rings"].append(timed(lambda: client.post("/api/emergency/run", json=flood)))

        link = page.locator("#results .actions a").first
        started_s = time.perf_counter()
        with page.expect_download(timeout=180_000) as got:
            link.click(modifiers=["Alt"])  # the browser saves the link's target
        saved = Path(got.value.path())
        t.browser["report (PDF)"].append((time.perf_counter() - started_s) * 1000)
        if not saved.read_bytes().startswith(b"%PDF"):
            raise RuntimeError(f"the downloaded report is not a PDF: {saved}")
        t.http["report (PDF)"].append(
            timed(lambda: client.get("/api/reports", params={"runs": run_id, "format": "pdf"}, timeout=180))
        )
        if errors:
            raise RuntimeError(f"errors in the page: {errors}")
    finally:
        context.close()


def session_cookies(base: str, user: str, password: str) -> tuple[httpx.Client, list[Any]]:
    client = httpx.Client(base_url=base, timeout=120)
    answer = client.post("/api/auth/login", json={"username": user, "password": password})
    if answer.status_code != 200:
        raise SystemExit(f"login of {user} refused: {answer.status_code} {answer.text}")
    host = httpx.URL(base).host
    cookies = [{"name": c.name, "value": c.value or "", "domain": host, "path": "/"} for c in client.cookies.jar]
    return client, cookies


@contextmanager
def own_server(parcels: int) -> Iterator[str]:
    """A throwaway cluster with the demo data, a leader account, and `gis-ioc serve` (one worker)."""
    settings, cluster, catalog = start_bench_database()
    proc: subprocess.Popen[bytes] | None = None
    log = settings.home / "serve.log"
    audit.configure(settings.home)  # the bench's account is created in the audit trail, as the console does
    try:
        print(f"loading demo data ({parcels:,} parcels) …", flush=True)
        with connect(settings, autocommit=True) as conn:
            generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27), parcels=parcels))
            ref = accounts.RequestRef("1/BENCH", date(2026, 12, 1), "benchmark")
            _, first = accounts.create_account(
                conn,
                username=USER,
                full_name="Lãnh đạo đo thời gian",
                agency="UBND tỉnh Hưng Yên",
                roles=["leader"],
                ref=ref,
                actor="cli:bench",
            )
            sessions.change_password(conn, USER, first, PASSWORD)
        port = free_port()
        env = {
            **os.environ,
            "GIS_IOC_HOME": str(settings.home),
            "GIS_IOC_DB_PORT": str(settings.db_port),
            "GIS_IOC_PORT": str(port),
            "GIS_IOC_LOG_LEVEL": "warning",
        }
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "gis-ioc"), "serve", "--workers", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base} not ready in 120 s")
            time.sleep(0.5)
        yield base
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        remove_bench_database(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="fresh browser contexts, each the whole story")
    parser.add_argument("--parcels", type=int, default=200_000, help="demo parcels (own server only)")
    parser.add_argument("--url", help="a running gis_ioc server instead of a throwaway one")
    parser.add_argument("--user", default=USER)
    parser.add_argument("--password", default=PASSWORD)
    args = parser.parse_args()
    with own_server(args.parcels) if args.url is None else nullcontext(args.url) as base:
        client, cookies = session_cookies(base, args.user, args.password)
        t = Timings()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                one_run(browser, base, client, cookies, Timings())  # warm the server (and discard)
                for i in range(args.runs):
                    one_run(browser, base, client, cookies, t)
                    print(f"  run {i + 1}/{args.runs} done", flush=True)
            finally:
                browser.close()
        client.close()
    print(f"\n{args.runs} runs, chromium 1920×1080, one uvicorn worker; ms")
    print(f"{'step':<28}{'browser p50':>12}{'p95':>9}{'HTTP p50':>10}{'p95':>9}  reference request")
    for name, reference in STEPS:
        b, h = t.browser[name], t.http[name]
        print(
            f"{name:<28}{statistics.median(b):12.0f}{p95(b):9.0f}{statistics.median(h):10.0f}{p95(h):9.0f}  {reference}"
        )


if __name__ == "__main__":
    main()
