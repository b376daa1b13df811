"""pygeoapi's HTML pages, served by gis_ioc: offline (every asset from gis_ioc, vendored with its licence),
Vietnamese by default and English with lang=en, each page named in its <title>; in Debian's chromium."""

from __future__ import annotations

import gettext
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pygeoapi
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.support import Translations
from playwright.sync_api import Browser, Page

from gis_ioc.publish.html import (
    ASSETS,
    BLANK_TILE,
    LOCALE_SOURCE,
    compile_locales,
    offline_page,
    page_language,
    page_title,
    translations,
)
from gis_ioc.web import STATIC_DIR
from tests.conftest import ARTIFACTS
from tests.web.conftest import PageLog

TEMPLATES = Path(pygeoapi.__file__).parent / "templates"
#: pygeoapi pages gis_ioc does not serve (no STAC or coverage collections; EDR: tests/web/test_edr_page.py)
NOT_SERVED = ("stac/", "collections/coverage/")
SITE = "Trung tâm Giám sát, điều hành thông minh tỉnh Hưng Yên — dữ liệu không gian"
OWN_CSS = '<link rel="stylesheet" href="http://127.0.0.1:8000/ogc/static/css/default.css">'


def served_templates() -> list[Path]:
    return [p for p in sorted(TEMPLATES.rglob("*.html")) if not str(p.relative_to(TEMPLATES)).startswith(NOT_SERVED)]


# --- the rewrite, fast -------------------------------------------------------------------------------


def test_known_assets_point_at_the_vendored_copies_and_others_are_removed() -> None:
    page = f"""<!doctype html>
<html lang="vi" dir="ltr">
  <head>
    <title> Xã, phường </title>
    <meta property="og:site_name" content="{SITE}" />
    <link rel="stylesheet" href="https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css">
    {OWN_CSS}
    <!--[if lt IE 9]>
      <script src="https://cdnjs.cloudflare.com/ajax/libs/html5shiv/3.7.3/html5shiv.js"></script>
    <![endif]-->
    <link rel="license" type="text/html" title="CC-BY 4.0" href="https://creativecommons.org/licenses/by/4.0/"/>
    <link rel="stylesheet" href="https://unpkg.com/leaflet@1.3.1/dist/leaflet.css"/>
    <script src="https://unpkg.com/leaflet@1.3.1/dist/leaflet.js"></script>
    <script src="https://unpkg.com/leaflet-draw@1.0.4/dist/leaflet.draw.js"></script>
    <link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">
    <script src="http://evil.example:8000/ogc/x.js"></script>
    <script>var map = L.map('items-map');</script>
  </head>
  <body><div class="crumbs"><div class="container"><a href="/ogc">Trang chủ</a>
  / <a href="/ogc/collections">Lớp dữ liệu</a> / <a href="./communes">Xã, phường</a></div></div></body>
</html>"""
    out = offline_page(page, "vi")
    assert '<html lang="vi" dir="ltr">' in out
    assert '<link rel="stylesheet" href="/static/vendor/bootstrap/bootstrap.min.css">' in out
    assert '<link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css"/>' in out
    assert '<script src="/static/vendor/leaflet/leaflet.js"></script>' in out
    assert "/static/vendor/leaflet-images/marker-icon.png" in out  # Leaflet's default icons found
    assert OWN_CSS in out and "<script>var map = L.map('items-map');</script>" in out
    assert 'href="https://creativecommons.org/licenses/by/4.0/"' in out  # a link, not a request: kept
    for gone in ("html5shiv", "leaflet.draw", "fonts.googleapis", "evil.example", "unpkg.com", "cdnjs"):
        assert gone not in out, gone
    assert f"<title>Xã, phường | {SITE}</title>" in out
    assert offline_page(out, "vi") == out  # idempotent


def test_lang_is_the_pages_language() -> None:
    # the OpenAPI page hard-codes lang="en": the answer's Content-Language decides, else Vietnamese
    assert offline_page("<html><head><title>x</title></head></html>", "en-US").startswith('<html lang="en">')
    assert offline_page('<html lang="en"><head></head></html>', None).startswith('<html lang="vi">')
    # pygeoapi's base template writes lang and dir from the locale it rendered in (jobs say en-US anyway)
    assert page_language('<html lang="vi" dir="ltr" >', "en-US") == "vi"
    assert offline_page('<html lang="vi" dir="ltr" ><head></head></html>', "en-US").startswith('<html lang="vi"')


def test_the_format_links_are_not_crumbs() -> None:
    page = (
        f'<html><head><title> Xã, phường </title><meta property="og:site_name" content="{SITE}"></head><body>'
        '<div class="crumbs"><div class="container"><a href="/">Trang chủ</a> / <a href="#">Lớp dữ liệu</a>'
        ' / <a href="#">Xã, phường</a> / <a href="#">Đối tượng</a>'
        '<span style="float: inline-end"><a href="?f=json">json</a> <a href="?f=jsonld">jsonld</a></span>'
        "</div></div></body></html>"
    )
    assert page_title(page) == f"Đối tượng — Xã, phường | {SITE}"


@pytest.mark.parametrize(
    ("title", "crumbs", "expected"),
    [
        ("Trang chủ", [], f"Trang chủ | {SITE}"),
        ("Lớp dữ liệu", ["Lớp dữ liệu"], f"Lớp dữ liệu | {SITE}"),
        ("  ", ["Lớp dữ liệu", "Xã, phường", "Đối tượng"], f"Đối tượng — Xã, phường | {SITE}"),
        ("Xã, phường", ["Lớp dữ liệu", "Xã, phường", "Đối tượng"], f"Đối tượng — Xã, phường | {SITE}"),
        (
            "Cơ sở giáo dục mầm non và phổ thông",
            ["Lớp dữ liệu", "Cơ sở giáo dục mầm non..."],
            f"Cơ sở giáo dục mầm non và phổ thông | {SITE}",
        ),
        (
            "Xã, phường",
            ["Lớp dữ liệu", "Xã, phường", "Trường truy vấn được"],
            f"Trường truy vấn được — Xã, phường | {SITE}",
        ),
        (f"Swagger UI - {SITE}", [], f"Định nghĩa API (OpenAPI) | {SITE}"),
        (SITE, ["Lớp dữ liệu", "Xã, phường", "Lược đồ"], f"Lược đồ — Xã, phường | {SITE}"),
    ],
)
def test_the_title_names_the_page(title: str, crumbs: list[str], expected: str) -> None:
    trail = " / ".join(f'<a href="#">{c}</a>' for c in ["Trang chủ", *crumbs])
    page = (
        f'<html><head><title>{title}</title><meta property="og:site_name" content="{SITE}"></head>'
        f'<body><div class="crumbs"><div class="row">{trail}</div></div><a href="#">not a crumb</a>'
        "<section><h1> Xã, phường </h1></section></body></html>"
    )
    assert page_title(page, "vi") == expected


def test_every_external_asset_of_the_served_templates_is_vendored_or_removed() -> None:
    tag = re.compile(r'<(?:script|link)\b[^>]*?(?:src|href)="(https?://[^"{]+)"[^>]*>(?:\s*</script>)?')
    seen = set()
    for template in served_templates():
        for match in tag.finditer(template.read_text(encoding="utf-8")):
            seen.add(match.group(1))
            out = offline_page(f"<html><head><title>t</title>{OWN_CSS}{match.group(0)}</head></html>", "vi")
            remaining = re.findall(r'(?:src|href)="(https?://[^"]+)"', out)
            assert all(url.startswith("http://127.0.0.1:8000/") for url in remaining), (template, remaining)
    # the pages' libraries are kept, not just dropped
    assert {
        "https://unpkg.com/leaflet@1.3.1/dist/leaflet.js",
        "https://unpkg.com/swagger-ui-dist/swagger-ui-bundle.js",
    } <= seen
    assert set(ASSETS) & seen == set(ASSETS)  # no stale entries


def test_the_vendored_copies_are_whole_with_their_licences() -> None:
    folders = {Path(path).parts[3] for path in ASSETS.values()} | {"leaflet-images"}
    assert folders == {p.name for p in (STATIC_DIR / "vendor").iterdir()} - {"maplibre-gl"}
    for name in folders:
        folder = STATIC_DIR / "vendor" / name
        assert (folder / "LICENSE.txt").stat().st_size > 100, name
        assert (folder / "VERSION").read_text().strip(), name
        sums = dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
        assert set(sums) == {p.name for p in folder.iterdir()} - {"SHA256SUMS", "VERSION"}, name
        for file, digest in sums.items():
            assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, (name, file)
    for path in ASSETS.values():
        assert (STATIC_DIR / path.removeprefix("/static/")).is_file(), path


def test_every_template_string_has_a_vietnamese_translation() -> None:
    mapping = [("**.html", "jinja2")]
    options = {"**.html": {"extensions": "jinja2.ext.i18n"}}
    ids = set()
    for filename, _, message, _, _ in extract_from_dir(str(TEMPLATES), mapping, options):
        if not filename.startswith(NOT_SERVED):
            ids.add(message if isinstance(message, str) else message[0])
    with (LOCALE_SOURCE / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    assert len(ids) > 100
    missing = sorted(i for i in ids if catalog.get(i) is None or not catalog[i].string)
    assert missing == [], missing
    vi = translations("vi")
    assert vi.gettext("Collections") == "Lớp dữ liệu" and vi.gettext("text_direction") == "ltr"
    assert translations("en").gettext("text_direction") == "ltr"  # not dir="text_direction"


def test_the_catalogs_compile_to_what_pygeoapi_reads(tmp_path: Path) -> None:
    target = compile_locales(tmp_path / "locale")
    with (target / "vi" / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        assert Translations(f).gettext("View the collections in this service") == "Xem các lớp dữ liệu của dịch vụ này"
    # as pygeoapi.l10n.translate_gettext reads a catalog (its link titles: the EDR queries' among them)
    vi = gettext.translation("messages", localedir=target, languages=["vi"], fallback=True)
    assert "radius " + vi.gettext("query for this collection as HTML") == (
        "radius — truy vấn trên lớp dữ liệu này, dạng HTML"
    )
    before = (target / "vi" / "LC_MESSAGES" / "messages.mo").stat().st_mtime_ns
    compile_locales(target)  # up to date: not written again
    assert (target / "vi" / "LC_MESSAGES" / "messages.mo").stat().st_mtime_ns == before


# --- the pages in chromium ---------------------------------------------------------------------------


class Visit:
    def __init__(self, page: Page, log: PageLog, statuses: list[tuple[int, str]]) -> None:
        self.page = page
        self.log = log
        self.statuses = statuses


@pytest.fixture
def visit(browser: Browser, base_url: str) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    page = context.new_page()
    log = PageLog()
    log.attach(page)
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    yield Visit(page, log, statuses)
    context.close()


def open_page(visit: Visit, base_url: str, path: str) -> Page:
    response = visit.page.goto(f"{base_url}{path}", wait_until="networkidle")
    assert response is not None and response.status == 200, path
    assert "text/html" in response.headers["content-type"]
    own = urlsplit(base_url).netloc
    elsewhere = [u for u in visit.log.urls if not u.startswith("data:") and urlsplit(u).netloc != own]
    assert elsewhere == [], elsewhere
    assert [s for s in visit.statuses if s[0] >= 400] == []
    assert visit.log.errors == [], visit.log.errors
    # bootstrap is applied (served by gis_ioc): its container class centres the page with a max width
    assert visit.page.evaluate("getComputedStyle(document.querySelector('.container') || document.body).maxWidth")
    return visit.page


def first_id(base_url: str, collection: str) -> str:
    answer = httpx.get(f"{base_url}/ogc/collections/{collection}/items?f=json&limit=1", timeout=60).json()
    return str(answer["features"][0]["id"])


def first_process(base_url: str) -> str:
    return str(httpx.get(f"{base_url}/ogc/processes?f=json", timeout=60).json()["processes"][0]["id"])


#: kind → path, a label of its body (vi, en), how its title starts (vi, en)
PAGES = {
    "landing": (
        "/ogc/?f=html",
        ("Xem các lớp dữ liệu của dịch vụ này", "View the collections in this service"),
        ("Trang chủ", "Home"),
    ),
    "collections": (
        "/ogc/collections?f=html",
        ("Các lớp dữ liệu của dịch vụ này", "Data collections in this service"),
        ("Lớp dữ liệu", "Collections"),
    ),
    "collection": (
        "/ogc/collections/communes?f=html",
        ("Duyệt", "Browse"),
        ("Xã, phường", "Communes and wards"),
    ),
    "items": (
        "/ogc/collections/communes/items?f=html",
        ("Đối tượng", "Items"),
        ("Đối tượng — Xã, phường", "Items — Communes and wards"),
    ),
    "points": (
        "/ogc/collections/schools/items?f=html",
        ("Đối tượng", "Items"),
        ("Đối tượng — Trường học", "Items — Schools"),
    ),
    "item": ("/ogc/collections/communes/items/{fid}?f=html", ("Xã, phường", "Communes and wards"), ("", "")),
    "queryables": (
        "/ogc/collections/communes/queryables?f=html",
        ("Trường truy vấn được", "Queryables"),
        ("Trường truy vấn được — Xã, phường", "Queryables — Communes and wards"),
    ),
    "conformance": ("/ogc/conformance?f=html", ("Tuân thủ chuẩn", "Conformance"), ("Tuân thủ chuẩn", "Conformance")),
    "processes": (
        "/ogc/processes?f=html",
        ("Các quy trình xử lý của dịch vụ này", "Processes in this service"),
        ("Quy trình xử lý", "Processes"),
    ),
    "process": ("/ogc/processes/{process}?f=html", ("Quy trình xử lý", "Processes"), ("", "")),
    "jobs": ("/ogc/jobs?f=html", ("Mã tác vụ", "Job ID"), ("Tác vụ", "Jobs")),
}
SITES = {"vi": SITE, "en": "Hưng Yên Intelligent Operations Center — geospatial data"}


@pytest.mark.parametrize("kind", list(PAGES))
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_each_page_renders_offline_in_its_language(visit: Visit, base_url: str, kind: str, lang: str) -> None:
    path, labels, titles = PAGES[kind]
    if "{fid}" in path:
        path = path.format(fid=first_id(base_url, "communes"))
    if "{process}" in path:
        path = path.format(process=first_process(base_url))
    page = open_page(visit, base_url, path + ("&lang=en" if lang == "en" else ""))
    index = 0 if lang == "vi" else 1
    assert page.evaluate("document.documentElement.lang") == lang
    assert labels[index] in page.inner_text("body")
    title = page.title()
    assert title.startswith(titles[index]) and title.endswith(f" | {SITES[lang]}"), title
    assert title != f"{SITES[lang]} | {SITES[lang]}"
    crumbs = page.inner_text(".crumbs")
    assert ("Trang chủ" in crumbs and "Home" not in crumbs) if lang == "vi" else ("Home" in crumbs)


def test_the_items_map_draws_the_features(visit: Visit, base_url: str) -> None:
    page = open_page(visit, base_url, "/ogc/collections/communes/items?f=html&limit=20")
    page.wait_for_selector("#items-map path.leaflet-interactive")
    assert page.locator("#items-map path.leaflet-interactive").count() == 20
    assert page.title() == f"Đối tượng — Xã, phường | {SITE}"
    assert page.evaluate("typeof L.markerClusterGroup") == "function"
    page.screenshot(path=ARTIFACTS / "ogc-items-communes.png")


def test_point_items_show_their_markers(visit: Visit, base_url: str) -> None:
    page = open_page(visit, base_url, "/ogc/collections/schools/items?f=html&limit=50")
    page.wait_for_selector("#items-map .leaflet-marker-icon")
    icons = page.locator("#items-map img.leaflet-marker-icon, #items-map .marker-cluster")
    assert icons.count() > 0
    # every marker image drawn (none broken): the icons come from gis_ioc's vendored leaflet images
    assert page.evaluate(
        "[...document.querySelectorAll('#items-map img')].filter(i => !i.src.startsWith('data:'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def test_the_feature_page_draws_its_feature(visit: Visit, base_url: str) -> None:
    fid = first_id(base_url, "communes")
    page = open_page(visit, base_url, f"/ogc/collections/communes/items/{fid}?f=html")
    page.wait_for_selector("#items-map path.leaflet-interactive")
    assert page.evaluate("document.querySelector('#items-map .leaflet-tile-container img')?.src ?? ''") in (
        "",
        BLANK_TILE,
    )


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_openapi_page_runs_swagger_ui_offline(visit: Visit, base_url: str, lang: str) -> None:
    page = open_page(visit, base_url, "/ogc/openapi?f=html" + ("&lang=en" if lang == "en" else ""))
    page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
    assert "Hưng Yên" in page.inner_text(".swagger-ui .info .title")
    page.screenshot(path=ARTIFACTS / f"ogc-openapi-{lang}.png")
    assert page.evaluate("document.documentElement.lang") == lang
    assert (
        page.title()
        == ("Định nghĩa API (OpenAPI)" if lang == "vi" else "API Definition (OpenAPI)") + f" | {SITES[lang]}"
    )


def test_the_redoc_page_asks_no_other_host(visit: Visit, base_url: str) -> None:
    """ReDoc is not vendored (its bundle draws its logo from cdn.redoc.ly): the page stays empty, offline."""
    response = visit.page.goto(f"{base_url}/ogc/openapi?f=html&ui=redoc", wait_until="networkidle")
    assert response is not None and response.status == 200
    own = urlsplit(base_url).netloc
    assert [u for u in visit.log.urls if urlsplit(u).netloc != own] == []
    assert visit.page.title() == f"Định nghĩa API (OpenAPI) | {SITE}"


def test_english_from_the_browser_language(browser: Browser, base_url: str) -> None:
    context = browser.new_context(locale="en-GB", extra_http_headers={"Accept-Language": "en-GB,en;q=0.8"})
    try:
        page = context.new_page()
        page.goto(f"{base_url}/ogc/collections?f=html", wait_until="networkidle")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "View the collections" in page.inner_text("body") or "Collections" in page.inner_text(".crumbs")
    finally:
        context.close()
