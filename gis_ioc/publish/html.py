"""pygeoapi's HTML pages, made to work offline and named, on their way out.

pygeoapi's templates (used as they are, never copied) load bootstrap, leaflet and its plugins and
swagger-ui from unpkg.com, cdn.jsdelivr.net and cdnjs. :func:`offline_page` points the ones gis_ioc
vendors (``gis_ioc/web/static/vendor/``, served at ``/static/vendor/``) at those copies, removes every
other script or stylesheet of another host (a page never asks another host), sets ``<html lang>`` to the
language of the answer and gives the page a ``<title>`` naming it (what it shows, then the service).

The templates' words come from gettext catalogs kept as ``.po`` files beside this module
(``locale/<lang>/LC_MESSAGES/messages.po``); :func:`compile_locales` compiles them to the ``.mo`` files
pygeoapi reads from ``server.locale_dir`` when the configuration is rendered.
"""

from __future__ import annotations

import functools
import html
import io
import logging
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

# pygeoapi translates its whole configuration for each HTML page, taking every mapping's keys for locales:
# one "unknown locale 'bbox'" (…'title', 'href', …) warning per key and page, none of them a fault
logging.getLogger("pygeoapi.l10n").setLevel(logging.ERROR)

#: The "tile server" of the pages' Leaflet maps: one transparent 1×1 PNG, no request (offline, no third party).
BLANK_TILE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
#: The catalogs (``.po``) of pygeoapi's template strings.
LOCALE_SOURCE = Path(__file__).resolve().parent / "locale"
VENDOR = "/static/vendor"

#: External assets of pygeoapi's templates → gis_ioc's vendored copies (web map's static route).
ASSETS: dict[str, str] = {
    "https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css": f"{VENDOR}/bootstrap/bootstrap.min.css",
    "https://unpkg.com/leaflet@1.3.1/dist/leaflet.css": f"{VENDOR}/leaflet/leaflet.css",
    "https://unpkg.com/leaflet@1.3.1/dist/leaflet.js": f"{VENDOR}/leaflet/leaflet.js",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet/1.3.1/leaflet.js": f"{VENDOR}/leaflet/leaflet.js",
    "https://unpkg.com/leaflet.markercluster/dist/MarkerCluster.css": (
        f"{VENDOR}/leaflet.markercluster/MarkerCluster.css"
    ),
    "https://unpkg.com/leaflet.markercluster/dist/MarkerCluster.Default.css": (
        f"{VENDOR}/leaflet.markercluster/MarkerCluster.Default.css"
    ),
    "https://unpkg.com/leaflet.markercluster/dist/leaflet.markercluster-src.js": (
        f"{VENDOR}/leaflet.markercluster/leaflet.markercluster.js"
    ),
    "https://unpkg.com/leaflet.vectorgrid@latest/dist/Leaflet.VectorGrid.bundled.js": (
        f"{VENDOR}/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
    ),
    # the EDR query page's CoverageJSON map (collections/edr/query.html)
    "https://unpkg.com/leaflet-coverage@0.7/leaflet-coverage.css": f"{VENDOR}/leaflet-coverage/leaflet-coverage.css",
    "https://unpkg.com/leaflet-coverage@0.7/leaflet-coverage.min.js": (
        f"{VENDOR}/leaflet-coverage/leaflet-coverage.min.js"
    ),
    "https://unpkg.com/covutils@0.6/covutils.min.js": f"{VENDOR}/covutils/covutils.min.js",
    "https://unpkg.com/covjson-reader@0.16/covjson-reader.src.js": f"{VENDOR}/covjson-reader/covjson-reader.min.js",
    "https://cdn.jsdelivr.net/npm/c3@0.7.20/c3.css": f"{VENDOR}/c3/c3.min.css",
    "https://cdn.jsdelivr.net/npm/c3@0.7.20/c3.js": f"{VENDOR}/c3/c3.min.js",
    "https://cdn.jsdelivr.net/npm/d3@5.16.0/dist/d3.js": f"{VENDOR}/d3/d3.min.js",
    "https://unpkg.com/swagger-ui-dist/swagger-ui.css": f"{VENDOR}/swagger-ui-dist/swagger-ui.css",
    "https://unpkg.com/swagger-ui-dist/swagger-ui-bundle.js": f"{VENDOR}/swagger-ui-dist/swagger-ui-bundle.js",
    "https://unpkg.com/swagger-ui-dist/swagger-ui-standalone-preset.js": (
        f"{VENDOR}/swagger-ui-dist/swagger-ui-standalone-preset.js"
    ),
    "https://unpkg.com/swagger-ui-dist/favicon-32x32.png": f"{VENDOR}/swagger-ui-dist/favicon-32x32.png",
    "https://unpkg.com/swagger-ui-dist/favicon-16x16.png": f"{VENDOR}/swagger-ui-dist/favicon-16x16.png",
}
#: Leaflet finds its default marker icons beside its stylesheet; the vendored leaflet/ keeps none.
_ICON_PATH = (
    f"<style>.leaflet-default-icon-path{{background-image:url({VENDOR}/leaflet-images/marker-icon.png)}}</style>"
)
_LEAFLET_CSS = f'href="{VENDOR}/leaflet/leaflet.css"'

_IE_COMMENT = re.compile(r"<!--\[if [^\]]*\]>.*?<!\[endif\]-->", re.IGNORECASE | re.DOTALL)
_SCRIPT = re.compile(r"<script\b(?=[^>]*\bsrc\s*=)[^>]*>[^<]*</script\s*>", re.IGNORECASE)  # with src only
_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_SRC_OR_HREF = re.compile(r'\b(?:src|href)\s*=\s*(["\'])([^"\']*)\1', re.IGNORECASE)
_REL = re.compile(r'\brel\s*=\s*(["\'])([^"\']*)\1', re.IGNORECASE)
_HTML_TAG = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_LANG_ATTR = re.compile(r'\slang\s*=\s*(["\'])[^"\']*\1', re.IGNORECASE)
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_OWN_STYLESHEET = re.compile(r'href="(https?://[^"/]+)[^"]*/static/css/default\.css"')
#: ``<link rel>`` values that make the browser fetch the address (others only describe the page).
_FETCHING_RELS = {"stylesheet", "icon", "shortcut", "preload", "prefetch", "modulepreload", "preconnect", "manifest"}


def offline_page(page: str, language: str | None) -> str:
    """The page with its assets served by gis_ioc, nothing asked of another host, ``<html lang>`` in the
    page's language (see :func:`page_language`) and a ``<title>`` naming it."""
    lang = page_language(page, language)
    own = _own_origin(page)
    for url, local in ASSETS.items():  # plain replacements: a page of 1,000 features is megabytes long
        page = page.replace(f'"{url}"', f'"{local}"').replace(f"'{url}'", f"'{local}'")
    page = _IE_COMMENT.sub("", page)
    page = _SCRIPT.sub(lambda m: "" if _asks_another_host(m.group(0), own, script=True) else m.group(0), page)
    page = _LINK.sub(lambda m: "" if _asks_another_host(m.group(0), own, script=False) else m.group(0), page)
    if _LEAFLET_CSS in page and _ICON_PATH not in page:
        end = page.index(">", page.index(_LEAFLET_CSS)) + 1
        page = page[:end] + _ICON_PATH + page[end:]
    page = _HTML_TAG.sub(lambda m: _with_lang(m.group(0), lang), page, count=1)
    return _TITLE.sub(lambda m: f"<title>{html.escape(page_title(page, lang), quote=False)}</title>", page, count=1)


def page_language(page: str, header: str | None) -> str:
    """The language the page is written in: the ``<html lang>`` of pygeoapi's base template (it writes
    ``lang`` and ``dir`` from the locale it renders in; some answers' ``Content-Language`` says en-US
    regardless, e.g. the jobs), else ``Content-Language`` (its OpenAPI page hard-codes ``lang="en"``),
    else Vietnamese."""
    tag = _HTML_TAG.search(page)
    if tag and re.search(r"\sdir\s*=", tag.group(0)) and (own := _LANG_ATTR.search(tag.group(0))):
        value = own.group(0).split("=", 1)[1].strip().strip("\"'")
    else:
        value = header or "vi"
    return value.split(",")[0].strip().split("-")[0].lower() or "vi"


def _own_origin(page: str) -> str | None:
    """scheme://host[:port] of gis_ioc as the page links to itself (pygeoapi's own stylesheet)."""
    match = _OWN_STYLESHEET.search(page)
    return match.group(1).lower() if match else None


def _asks_another_host(tag: str, own: str | None, *, script: bool) -> bool:
    opening = tag[: tag.index(">") + 1]
    match = _SRC_OR_HREF.search(opening)
    if match is None:
        return False  # an inline script
    url = urlsplit(html.unescape(match.group(2)).strip())
    if not url.netloc and not url.scheme:
        return False  # relative to this server
    if url.scheme in ("data", "blob"):
        return False
    if not script:
        rel = _REL.search(opening)
        rels = set(rel.group(2).lower().split()) if rel else set()
        if not rels & _FETCHING_RELS:
            return False  # alternate, license, describedby…: a link, not a request
    return own is None or f"{url.scheme}://{url.netloc}".lower() != own


def _with_lang(tag: str, lang: str) -> str:
    if _LANG_ATTR.search(tag):
        return _LANG_ATTR.sub(f' lang="{lang}"', tag, count=1)
    return tag[:-1].rstrip() + f' lang="{lang}">'


class _Crumbs(HTMLParser):
    """The breadcrumb trail of a pygeoapi page (``div.crumbs``) and the service's name (``og:site_name``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.crumbs: list[str] = []
        self.site = ""
        self._depth = 0  # open <div>s inside the trail, 0 outside it
        self._spans = 0  # open <span>s inside it (the format links: json, jsonld)
        self._in_a = False
        self.heading = ""  # the first <h1>
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("property") == "og:site_name":
            self.site = (values.get("content") or "").strip()
        elif tag == "div" and (self._depth or "crumbs" in (values.get("class") or "").split()):
            self._depth += 1
        elif tag == "h1" and not self.heading:
            self._in_h1 = True
        elif tag == "span" and self._depth:
            self._spans += 1
        elif tag == "a" and self._depth and not self._spans:
            self._in_a = True
            self.crumbs.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1
        elif tag == "span" and self._spans:
            self._spans -= 1
        elif tag == "a":
            self._in_a = False
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_a:
            self.crumbs[-1] += data
        if self._in_h1:
            self.heading += data


def page_title(page: str, lang: str = "vi") -> str:
    """What the page shows, most specific first, then the service: "Đối tượng — Trường học | …"."""
    parser = _Crumbs()
    head = page.find("</h1>")  # all it needs comes before the heading's end, not the (large) data after it
    parser.feed(page[: head + 5] if head >= 0 else page[:65536])
    match = _TITLE.search(page)
    current = " ".join(html.unescape(match.group(1)).split()) if match else ""
    site = parser.site
    if site and current.endswith(f" | {site}"):
        return current  # already named
    for tool in ("Swagger UI - ", "ReDoc - "):  # pygeoapi's OpenAPI pages name only the tool and the service
        if not site and current.startswith(tool):
            site = current.removeprefix(tool)
    if current.startswith(("Swagger UI", "ReDoc")):
        current = translations(lang).gettext("API Definition") + " (OpenAPI)"
    crumbs = [" ".join(c.split()) for c in parser.crumbs[1:]]  # the first one is the home page
    if current == site or not current:  # pygeoapi named it by the service, or not at all: its heading
        current = " ".join(parser.heading.split()) or (crumbs[-1] if crumbs else translations(lang).gettext("Home"))
    kind = crumbs[-1] if crumbs else ""
    shortened = kind.endswith("...") and current.startswith(kind[:-3].rstrip())
    parts = [kind, current] if kind and kind != current and not shortened else [current]
    return " — ".join(parts) + (f" | {site}" if site and site != current else "")


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalog of one language (English: the msgids themselves)."""
    po = LOCALE_SOURCE / lang / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def compile_locales(target: Path) -> Path:
    """Compile each ``locale/<lang>/LC_MESSAGES/messages.po`` to ``target/<lang>/LC_MESSAGES/messages.mo``
    when missing or older (written aside, then renamed: workers starting together never read half a file);
    returns ``target`` for ``server.locale_dir``."""
    for po in sorted(LOCALE_SOURCE.glob("*/LC_MESSAGES/messages.po")):
        lang = po.parent.parent.name
        mo = target / lang / "LC_MESSAGES" / "messages.mo"
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f, locale=lang)
        fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog)
        os.replace(tmp, mo)
    return target
