"""The web map's offline base map: glyph ranges made from DejaVu Sans Bold and served by gis_ioc (every
Vietnamese letter with its tone marks), commune names drawn from them, the province's own layers, a
legend, the period shown and a scale bar; nothing asked of another host."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from gis_ioc.web import glyphs
from tests.conftest import ARTIFACTS
from tests.web.conftest import PageLog

#: Every letter of Vietnamese, with every tone, upper and lower case.
VIETNAMESE = unicodedata.normalize(
    "NFC",
    "".join(
        base + tone
        for base in "aăâeêioôơuưyAĂÂEÊIOÔƠUƯY"
        for tone in ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
    )
    + "đĐ",
)


LABELS = "window.gisIocMap.queryRenderedFeatures({layers: ['commune-labels']})"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """A protocol-buffer message's fields (varints and length-delimited only, as glyph files have)."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        if key & 7 == 0:
            value, at = _varint(data, at)
            yield key >> 3, value
        else:
            size, at = _varint(data, at)
            yield key >> 3, data[at : at + size]
            at += size


def read_range(path: Path) -> tuple[str, str, dict[int, dict[int, Any]]]:
    """(font stack, range, {code point: {field number: value}}) of a glyph range file."""
    ((number, stack),) = list(_fields(path.read_bytes()))
    assert number == 1 and isinstance(stack, bytes)
    name = span = ""
    found: dict[int, dict[int, Any]] = {}
    for field, value in _fields(stack):
        assert isinstance(value, bytes)
        if field == 1:
            name = value.decode()
        elif field == 2:
            span = value.decode()
        elif field == 3:
            glyph = dict(_fields(value))
            found[int(glyph[1])] = glyph
    return name, span, found


def test_the_glyph_ranges_hold_every_vietnamese_letter_with_its_licence() -> None:
    folder = glyphs.GLYPHS_DIR
    covered: set[int] = set()
    for start in glyphs.RANGES:
        name, span, found = read_range(folder / glyphs.FONTSTACK / f"{start}-{start + 255}.pbf")
        assert name == glyphs.FONTSTACK and span == f"{start}-{start + 255}"
        assert all(start <= code <= start + 255 for code in found)
        for code, glyph in found.items():
            if code != 32 and glyph[3]:  # drawn glyphs: a field of (width + 6) × (height + 6) bytes
                assert len(glyph[2]) == (glyph[3] + 6) * (glyph[4] + 6), code
        covered |= set(found)
    assert {ord(c) for c in VIETNAMESE + "0123456789 ,.-–()/"} <= covered
    assert (folder / "LICENSE.txt").read_text().count("Bitstream") >= 1
    assert "DejaVu" in (folder / "VERSION").read_text()
    sums = dict(line.split("  ", 1)[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {
        "SHA256SUMS",
        "VERSION",
    }
    for file, digest in sums.items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, file


def test_the_vendored_ranges_are_what_the_generator_makes() -> None:
    start = 8192  # the smallest range: punctuation
    made = glyphs.glyph_range(Path(glyphs.DEJAVU_BOLD), start)
    assert made == (glyphs.GLYPHS_DIR / glyphs.FONTSTACK / f"{start}-{start + 255}.pbf").read_bytes()


@pytest.fixture(params=[(1920, 1080), (1366, 768)], ids=["1920x1080", "1366x768"])
def page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[Page, PageLog]]:
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    page.goto(f"{base_url}/")
    page.wait_for_function("window.gisIoc && window.gisIoc.ready", timeout=30000)
    page.wait_for_function("window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded()", timeout=30000)
    yield page, log
    context.close()


def test_commune_names_legend_period_and_scale_bar_offline(
    page: tuple[Page, PageLog], base_url: str, db: psycopg.Connection[Any]
) -> None:
    p, log = page
    names = {r[0] for r in db.execute("SELECT name FROM layers.communes WHERE valid_to IS NULL")}
    shorts = {r[0] for r in db.execute("SELECT short_name FROM layers.communes WHERE valid_to IS NULL")}
    p.wait_for_function(
        "window.gisIocMap.queryRenderedFeatures({layers: ['commune-labels']}).length > 20", timeout=30000
    )
    drawn = set(
        p.evaluate("window.gisIocMap.queryRenderedFeatures({layers: ['commune-labels']}).map(f => f.properties.name)")
    )
    assert drawn <= names and len(drawn) > 20
    assert any(not n.isascii() for n in drawn)  # with their diacritics
    # the whole province in view: short names, then full names once zoomed in
    assert p.evaluate("window.gisIocMap.getZoom()") < 11
    p.evaluate("window.gisIocMap.jumpTo({center: [106.0518, 20.6461], zoom: 13})")  # Phố Hiến
    p.wait_for_function("window.gisIocMap.loaded() && window.gisIocMap.areTilesLoaded()", timeout=30000)
    p.wait_for_function(
        "window.gisIocMap.queryRenderedFeatures({layers: ['commune-labels']}).length > 0", timeout=30000
    )
    near = p.evaluate(f"{LABELS}.map(f => f.properties)")
    assert near and all(f["name"] in names and f["short_name"] in shorts for f in near)
    # the glyphs came from gis_ioc, including the range of Vietnamese letters with tones
    asked = [u for u in log.urls if "/static/glyphs/" in u]
    assert any(u.startswith(base_url) and u.endswith("/7680-7935.pbf") for u in asked), asked
    # the province's own base map: communes, roads and green spaces drawn; the legend says what they are
    legend = p.locator("#legend")
    expect(legend).to_be_visible()
    expect(legend.locator("h3")).to_have_text("Chú giải")
    for text in ("Tên xã, phường", "Xã, phường", "Đường giao thông", "Quốc lộ", "Công viên"):
        expect(legend).to_contain_text(text)
    expect(p.locator("#map-period")).to_have_text("Kỳ số liệu: Quý III/2026")
    scale = p.locator(".maplibregl-ctrl-scale")
    expect(scale).to_be_visible()
    assert scale.inner_text().strip().split()[-1] in ("m", "km")
    # a layer switched off leaves the legend
    p.uncheck('#layers input[data-layer="roads"]')
    expect(legend).not_to_contain_text("Quốc lộ")
    # English on the switch
    p.click("#lang")
    expect(legend.locator("h3")).to_have_text("Legend")
    expect(p.locator("#map-period")).to_have_text("Period: Q3 2026")
    size = p.viewport_size
    assert size is not None
    if size["width"] == 1366:
        small = p.evaluate(
            """() => [...document.querySelectorAll('#legend, #legend *, #map-period')]
              .filter((e) => [...e.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()))
              .map((e) => parseFloat(getComputedStyle(e).fontSize)).filter((s) => s < 14)"""
        )
        assert small == []
    p.screenshot(path=str(ARTIFACTS / f"web-map-labels-{size['width']}.png"))
    assert not [u for u in log.urls if not u.startswith((base_url, "data:", "blob:"))]
    assert log.errors == []


def test_the_glyphs_are_served(base_url: str) -> None:
    r = httpx.get(f"{base_url}/static/glyphs/{glyphs.FONTSTACK}/7680-7935.pbf")
    assert r.status_code == 200
    assert r.content == (glyphs.GLYPHS_DIR / glyphs.FONTSTACK / "7680-7935.pbf").read_bytes()
    style = httpx.get(f"{base_url}/api/map/config").json()["style"]
    assert style["glyphs"] == "/static/glyphs/{fontstack}/{range}.pbf"
    labels = next(layer for layer in style["layers"] if layer["id"] == "commune-labels")
    assert labels["layout"]["text-font"] == [glyphs.FONTSTACK]
    assert len(style["sources"]["commune-labels"]["data"]["features"]) == 104
