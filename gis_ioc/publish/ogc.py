"""The OGC API as a Starlette application: gis_ioc's own handlers in front of pygeoapi.

Items, single features and queryables in JSON are answered by gis_ioc (validation, SQL that builds
GeoJSON in PostGIS, pinned VN-2000, CQL2, paging links); pygeoapi answers the rest — landing page,
conformance, OpenAPI, collection descriptions and every HTML, CSV and JSON-LD page — from the
configuration rendered from the catalog, through gis_ioc's provider. pygeoapi's own Starlette module
reads its configuration from environment variables at import time, so gis_ioc builds the ``API`` object
itself.

Every door reads as the request's :class:`~gis_ioc.query.viewer.Viewer` (resolved once by the front
door): the collections it may read (a restricted layer only for the accounts granted it; the others
answer 404, as if they did not exist), their rows through :mod:`gis_ioc.query.rows` in a transaction
bound to the viewer (:mod:`gis_ioc.query.scope`), and their fields as the viewer sees them. Answers that
depend on who asks are ``Cache-Control: private`` and ``Vary`` on the credentials. Links are built from
``GIS_IOC_PUBLIC_URL``, or from the Host the client used when it is one of the allowed hosts, never from
any other Host. While PostGIS is unreachable every door answers 503 with ``Retry-After``.

Features are also written (OGC API Features Part 4, :mod:`gis_ioc.publish.edits`): a GeoJSON feature
POSTed to items, PUT/PATCH/DELETE of a single feature, each a draft change set for an approver; a single
feature answers with its version as a strong ``ETag``. ``datetime`` on any collection reads its history
(the features as they stood then) and ``items/{id}/history`` lists a feature's states
(:mod:`gis_ioc.publish.history`).

Errors are problem documents whose ``detail`` is in the caller's language: Vietnamese, or English with
``lang=en`` or an English ``Accept-Language`` (:func:`gis_ioc.api.loads.language`); the provider's messages
through pygeoapi too (:attr:`gis_ioc.publish.provider.Backend.lang`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pygeoapi
import pygeoapi.api as core_api
import pygeoapi.api.itemtypes as itemtypes_api
import pygeoapi.api.processes as processes_api
import pygeoapi.l10n
from psycopg_pool import ConnectionPool
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.openapi import get_oas
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gis_ioc.api import guard
from gis_ioc.api.loads import language
from gis_ioc.catalog import Catalog, Layer
from gis_ioc.database.connection import translate_errors
from gis_ioc.database.versions import DataVersions, VersionedCache
from gis_ioc.errors import DatabaseUnavailable, GisIocError, InvalidInput, NotFound
from gis_ioc.http import problem
from gis_ioc.loaders.edits import version_tag
from gis_ioc.maps.mapstyle import SOURCE_MAXZOOM, style_layers
from gis_ioc.publish import edits, styles
from gis_ioc.publish.cql import parse_filter
from gis_ioc.publish.edr import edr_routes
from gis_ioc.publish.extents import Extents
from gis_ioc.publish.features import (
    ALTERNATES,
    QUERYABLES_REL,
    FeaturePage,
    ItemsQuery,
    feature_collection,
    feature_statement,
    fetch_page,
    link_header,
    restamp,
)
from gis_ioc.publish.history import feature_history
from gis_ioc.publish.html import offline_page, page_language
from gis_ioc.publish.openapi import for_collections, self_contained
from gis_ioc.publish.params import ITEM_PARAMS, check_unknown, parse_crs, parse_items
from gis_ioc.publish.provider import BACKEND, Backend, say
from gis_ioc.publish.queryables import queryables_document
from gis_ioc.publish.tiles import (
    TMS_ID,
    VARY_VIEWER,
    cache_headers,
    parse_tile,
    parse_tile_properties,
    same_for_everyone,
    tile_and_version,
    tile_response,
    tile_statement_versioned,
    tileset,
    tileset_list,
    tms_list,
    web_mercator_quad,
)
from gis_ioc.query import rows, scope
from gis_ioc.query.viewer import Viewer

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger(__name__)
GEOJSON = "application/geo+json"
_SPEC = "http://www.opengis.net/spec/"
#: What gis_ioc's own handlers add to pygeoapi's conformance declaration, and what they withdraw.
EXTRA_CONFORMANCE = [
    f"{_SPEC}ogcapi-features-3/1.0/conf/filter",
    f"{_SPEC}ogcapi-features-3/1.0/conf/features-filter",
    f"{_SPEC}cql2/1.0/conf/cql2-json",
    f"{_SPEC}cql2/1.0/conf/advanced-comparison-operators",
    f"{_SPEC}cql2/1.0/conf/case-insensitive-comparison",
    f"{_SPEC}cql2/1.0/conf/basic-spatial-functions",
    f"{_SPEC}cql2/1.0/conf/basic-spatial-functions-plus",
    f"{_SPEC}cql2/1.0/conf/spatial-functions",
    f"{_SPEC}cql2/1.0/conf/temporal-functions",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/core",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/tileset",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/tilesets-list",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/mvt",
    f"{_SPEC}ogcapi-tiles-1/1.0/conf/oas30",
    f"{_SPEC}tms/2.0/conf/json-tilematrixset",
]
EXTRA_CONFORMANCE += [  # OGC API Features Part 4 (gis_ioc.publish.edits): edits as draft change sets
    f"{_SPEC}ogcapi-features-4/1.0/conf/create-replace-delete",
    f"{_SPEC}ogcapi-features-4/1.0/conf/update",
    f"{_SPEC}ogcapi-features-4/1.0/conf/features",
]
EXTRA_CONFORMANCE += [  # OGC API EDR (gis_ioc.publish.edr): position, radius, area, locations as CoverageJSON
    f"{_SPEC}ogcapi-edr-1/1.0/conf/core",  # whoever asks (pygeoapi lists it only when iot_devices is visible)
    f"{_SPEC}ogcapi-edr-1/1.0/conf/collections",
    f"{_SPEC}ogcapi-edr-1/1.0/conf/covjson",
    f"{_SPEC}ogcapi-edr-1/1.0/conf/html",
    f"{_SPEC}ogcapi-edr-1/1.0/conf/oas30",
]
WITHDRAWN_CONFORMANCE: set[str] = set()
TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
STYLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/styles"


def build_api(config: dict[str, Any], openapi: dict[str, Any] | None = None) -> API:
    """pygeoapi's API object, with an OpenAPI document generated from the same configuration unless given."""
    if openapi is None:
        collections = [rid for rid, r in config["resources"].items() if r.get("type") == "collection"]
        openapi = self_contained(get_oas(config, fail_on_invalid_collection=False), collections)
    return API(config, openapi)


def _respond(headers: dict[str, str], status: int, content: Any) -> Response:
    if headers.get("Content-Type") == "text/html":
        if isinstance(content, bytes) and "Content-Encoding" not in headers:
            content = content.decode("utf-8")
        if isinstance(content, str):  # offline assets, the page's language, a title naming the page
            content = offline_page(content, headers.get("Content-Language"))
            headers = {**headers, "Content-Language": page_language(content, headers.get("Content-Language"))}
        response: Response = HTMLResponse(content=content, status_code=status)
    else:
        response = Response(content, status_code=status)
    response.headers.update(headers)
    return response


#: The pygeoapi ``API`` answering the current call (see :class:`TemplateConfigs`).
_ANSWERING: ContextVar[API | None] = ContextVar("gis_ioc_answering_api", default=None)


class TemplateConfigs:
    """Stands in for pygeoapi's ``l10n._cfg_cache``, which keeps the translated configuration its HTML
    templates see once per locale for the whole process, whichever ``API`` object it came from: the
    first page rendered decided every later page's links and stylesheets (a forged or other Host's
    address, for everyone) and collections (500 on the HTML pages of collections the first caller could
    not see, e.g. an internal one after an anonymous page). Here it is kept per ``API`` and locale."""

    def __init__(self) -> None:
        self.by_api: weakref.WeakKeyDictionary[API, dict[Any, Any]] = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()

    def get(self, locale: Any, default: Any = None) -> Any:
        api = _ANSWERING.get()
        with self.lock:
            return default if api is None else self.by_api.get(api, {}).get(locale, default)

    def __setitem__(self, locale: Any, value: Any) -> None:
        api = _ANSWERING.get()
        if api is not None:  # outside gis_ioc's calls: translated again each time, never shared
            with self.lock:
                self.by_api.setdefault(api, {})[locale] = value

    def clear(self) -> None:
        with self.lock:
            self.by_api.clear()

    @classmethod
    def install(cls) -> None:
        if not isinstance(pygeoapi.l10n._cfg_cache, cls):
            pygeoapi.l10n._cfg_cache = cls()


class ApisByAddress:
    """pygeoapi takes its links and OpenAPI ``servers`` from ``server.url``, and shows every collection of
    its configuration; so one ``API`` is kept per address and set of collections a viewer may see (the
    ``MAX`` used last). The address is ``GIS_IOC_PUBLIC_URL`` when it is set; otherwise the Host the client
    used when it is one of the allowed hosts (``GIS_IOC_ALLOWED_HOSTS``), else the configured address: a
    forged Host never reaches a link. The OpenAPI document is generated once, for every collection and
    without personal fields, and cut down to the collections of each ``API`` (a few milliseconds).
    """

    MAX = 32  # addresses x sets of visible collections

    def __init__(self, config: dict[str, Any], ogc_path: str, fixed: bool, catalog: Catalog) -> None:
        self.config = config
        self.ogc_path = ogc_path
        self.fixed = fixed
        self.hosts = frozenset(h.lower() for h in config.get("x-gis_ioc", {}).get("allowed_hosts", ()))
        self.layers = [catalog.layers[rid] for rid, r in config["resources"].items() if r.get("type") == "collection"]
        token = BACKEND.set(None)  # the shared document shows what an anonymous caller may see of each layer
        try:
            self.openapi = self_contained(
                get_oas(config, fail_on_invalid_collection=False), [layer.id for layer in self.layers]
            )
        finally:
            BACKEND.reset(token)
        self.apis: OrderedDict[tuple[str, frozenset[str]], API] = OrderedDict()
        self.lock = threading.Lock()
        self.default = self.api(config["server"]["url"], self.visible(Viewer.ANONYMOUS))

    def url(self, request: Request) -> str:
        """The OGC API's address for links in the answer to this request."""
        configured: str = self.config["server"]["url"]
        if self.fixed:
            return configured
        host = request.headers.get("host", "").lower()
        return f"{request.url.scheme}://{host}{self.ogc_path}" if host in self.hosts else configured

    def origin(self, request: Request) -> str:
        """scheme://host[:port] (and any path prefix) of the server, as :meth:`url` chooses it."""
        url = self.url(request)
        return url[: -len(self.ogc_path)] if self.ogc_path and url.endswith(self.ogc_path) else url

    def __call__(self, request: Request, viewer: Viewer) -> API:
        return self.api(self.url(request), self.visible(viewer))

    def api(self, url: str, visible: frozenset[str]) -> API:
        key = (url, visible)
        with self.lock:
            api = self.apis.get(key)
            if api is not None:
                self.apis.move_to_end(key)
                return api
        api = self._build(url, visible)
        with self.lock:
            self.apis[key] = api
            while len(self.apis) > self.MAX:
                self.apis.popitem(last=False)
        return api

    def _build(self, url: str, visible: frozenset[str]) -> API:
        resources = {
            rid: r for rid, r in self.config["resources"].items() if r.get("type") != "collection" or rid in visible
        }
        hidden = {layer.id for layer in self.layers} - visible
        openapi = {**for_collections(self.openapi, hidden), "servers": [{**self.openapi["servers"][0], "url": url}]}
        config = {**self.config, "server": {**self.config["server"], "url": url}, "resources": resources}
        return build_api(config, openapi)

    def visible(self, viewer: Viewer) -> frozenset[str]:
        """The collections the viewer may see."""
        return frozenset(layer.id for layer in viewer.readable(self.layers))


class PygeoapiDoor:
    """pygeoapi's handlers called for one request: the API for its address and viewer, and the viewer,
    pool and catalog handed to gis_ioc's provider (:data:`gis_ioc.publish.provider.BACKEND`)."""

    def __init__(self, apis: ApisByAddress, pool: ConnectionPool, catalog: Catalog) -> None:
        self.apis = apis
        self.pool = pool
        self.catalog = catalog

    def __call__(self, function: Callable[..., Any], *param_names: str, validate: bool = True) -> Handler:
        async def endpoint(request: Request) -> Response:
            viewer = guard.viewer(request)
            api = self.apis(request, viewer)
            api_request = await APIRequest.from_starlette(request, api.locales)
            if validate and not api_request.is_valid():
                headers, status, content = api.get_format_exception(api_request)
                return _respond(headers, status, content)
            args = [request.path_params.get(name) for name in param_names]
            lang = language(request)
            backend = Backend(self.pool, self.catalog, viewer, lang)
            loop = asyncio.get_running_loop()

            def call() -> tuple[dict[str, str], int, Any]:
                asyncio.set_event_loop(loop)  # pygeoapi looks for a loop in its worker thread
                BACKEND.set(backend)  # in this call's own copy of the context
                _ANSWERING.set(api)
                return function(api, api_request, *args)  # type: ignore[no-any-return]

            headers, status, content = await loop.run_in_executor(None, contextvars.copy_context().run, call)
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                return _unavailable(headers, content, lang)
            if status != HTTPStatus.NO_CONTENT:
                content = apply_gzip(headers, content)
            return _respond(headers, status, content)

        return endpoint


def _unavailable(headers: dict[str, str], content: Any, lang: str) -> Response:
    """pygeoapi's 503 (the provider could not reach PostGIS): its HTML page, or problem+json; Retry-After."""
    if headers.get("Content-Type") == "text/html":
        response = _respond(headers, HTTPStatus.SERVICE_UNAVAILABLE, content)
        response.headers["Retry-After"] = "5"
        return response
    unreachable = say(lang, "PostGIS is unreachable", "không kết nối được PostGIS")
    try:
        detail = str(json.loads(content).get("description") or unreachable)
    except (TypeError, ValueError, AttributeError):
        detail = unreachable
    return problem(503, DatabaseUnavailable.title, detail)


def wants_html(request: Request) -> bool:
    f = request.query_params.get("f")
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "json" not in accept


@contextmanager
def _database_refusals() -> Iterator[None]:
    """What the database refuses about a request, as gis_ioc errors naming it."""
    try:
        yield
    except psycopg.errors.QueryCanceled as exc:
        raise DatabaseUnavailable(
            "the query took too long; narrow it with bbox, filter or limit",
            vi="truy vấn chạy quá lâu; hãy thu hẹp bằng bbox, filter hoặc limit",
        ) from exc
    except (
        psycopg.errors.DataError,
        psycopg.errors.InternalError,
        psycopg.errors.InvalidParameterValue,
        psycopg.ProgrammingError,  # e.g. an operator between types the filter checks did not foresee
    ) as exc:
        message = str(exc).strip().splitlines()[0]  # PostgreSQL's own message, in English
        raise InvalidInput(
            f"the database refused the request: {message}", vi=f"cơ sở dữ liệu từ chối yêu cầu: {message}"
        ) from exc


class FeaturesApi:
    """gis_ioc's handlers for the data-heavy endpoints."""

    def __init__(self, catalog: Catalog, pool: ConnectionPool, apis: ApisByAddress, published: set[str]) -> None:
        self.catalog = catalog
        self.pool = pool
        self.apis = apis
        self.published = published
        #: the collections' extents, read again when their data changes
        self.extents = Extents(catalog, pool, [])
        #: the layers' data versions as this process knows them (None: no listener, nothing cached)
        self.versions: DataVersions | None = None
        self.tiles = VersionedCache(0)
        #: GeoJSON answers (items pages, single features) of GET requests, as tiles are cached
        self.answers = VersionedCache(0, max_age=60)

    def layer(self, request: Request) -> tuple[Viewer, Layer]:
        """Who asks, and the collection asked for as they may see it; a collection they may not read is
        answered as if it did not exist."""
        viewer = guard.viewer(request)
        layer_id = request.path_params["collection_id"]
        try:
            return viewer, rows.readable_layer(viewer, self.catalog, layer_id, published=self.published)
        except NotFound as exc:  # the same answer whether it does not exist or may not be read
            raise NotFound(str(exc), vi=f"không có lớp dữ liệu {layer_id!r}") from None

    def _url(self, request: Request, params: dict[str, str] | None = None) -> str:
        base = self.apis.origin(request) + request.url.path
        query = urlencode(params if params is not None else dict(request.query_params))
        return f"{base}?{query}" if query else base

    def _run[T](self, viewer: Viewer, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(conn)`` in a transaction bound to the viewer (PostgreSQL knows who asks, too)."""
        with scope.transaction(self.pool, viewer, self.catalog, "read") as conn, _database_refusals():
            return work(conn)

    def _at_once(self, viewer: Viewer, statements: list[scope.Statement]) -> list[list[tuple[Any, ...]]]:
        """Read-only statements for the viewer in one round trip (:func:`scope.read_at_once`)."""
        with _database_refusals():
            return scope.read_at_once(self.pool, viewer, self.catalog, statements)

    def _version(self, layer: Layer) -> int | None:
        """The layer's data version as this process knows it (None: caches are not to be used)."""
        return self.versions.get(layer.table) if self.versions is not None else None

    @staticmethod
    def _version_statement(layer: Layer) -> scope.Statement:
        return "SELECT version FROM gis_ioc.data_versions WHERE layer_table = %s", (layer.table,)

    def _answer_key(self, request: Request, viewer: Viewer, layer: Layer) -> tuple[Any, ...]:
        """What a GeoJSON answer depends on: the address as asked (links), the parameters, and the
        viewer's class for this layer (same rows, same fields)."""
        params = tuple(sorted(request.query_params.multi_items()))
        return (self.apis.origin(request), request.url.path, params, viewer.view_class(layer))

    async def _cached[T](
        self,
        cache: VersionedCache,
        layer: Layer,
        key: tuple[Any, ...],
        fetch: Callable[[], tuple[T, int | None]],
        render: Callable[[T], bytes | None],
    ) -> bytes | None:
        """The answer from this process's ``cache``, or made by ``fetch`` (in a worker thread: the result
        and the layer's data version read in the same snapshot) then ``render``, and kept under the
        version of the data it holds, from the primary or a replica alike. Nothing is kept while the
        versions are unknown (no listener), nor a ``render`` of None (not found)."""
        # answers of a layer with live fields (computed when read) move without its data version: not kept
        version = None if layer.live is not None and cache is self.answers else self._version(layer)
        body = cache.get(layer.table, key, version)
        if body is not None:
            return body
        result, made_from = await run_in_threadpool(fetch)
        body = render(result)
        if body is not None and version is not None:
            cache.put(layer.table, key, made_from, body)
        return body

    async def items(self, request: Request) -> Response:
        viewer, layer = self.layer(request)
        params = dict(request.query_params)
        if request.method == "POST":  # a cql2-json filter in the body (OGC API Features Part 3)
            body = (await request.body()).decode("utf-8", errors="replace")
            if not body.strip():
                raise InvalidInput(
                    "POST items needs a cql2-json filter in the body",
                    vi="POST items cần một filter cql2-json trong nội dung yêu cầu",
                )
            if "filter" in params:
                raise InvalidInput(
                    "give the filter either in the body or as the filter parameter, not both",
                    vi="chỉ gửi filter trong nội dung yêu cầu hoặc trong tham số filter, không gửi cả hai",
                )
            params = {**params, "filter": body, "filter-lang": "cql2-json"}
        query: ItemsQuery = parse_items(viewer, layer.published(), params)  # with its live fields
        # the links that do not depend on the page (self, alternates, collection) also as a Link header
        headers = {
            "Content-Crs": f"<{query.crs.uri}>",
            "Link": link_header(self._links(request, params, query, 0, 0, None)),
        }

        def render(page: FeaturePage) -> bytes:
            links = self._links(request, params, query, page.returned, page.matched, page.last_fid)
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return feature_collection(page, links, stamp).encode()

        if request.method != "GET":
            page = await run_in_threadpool(self._run, viewer, lambda conn: fetch_page(conn, query))
            return Response(render(page), media_type=GEOJSON, headers=headers)

        def fetch() -> tuple[FeaturePage, int | None]:
            def page_and_version(conn: psycopg.Connection[Any]) -> tuple[FeaturePage, int | None]:
                row = conn.execute(*self._version_statement(layer)).fetchone()
                return fetch_page(conn, query), (int(row[0]) if row else None)

            return self._run(viewer, page_and_version)

        answer = await self._cached(self.answers, layer, self._answer_key(request, viewer, layer), fetch, render)
        # a kept answer says when this response was made, not when it was first made (Part 1: timeStamp)
        return Response(restamp(answer or b"", datetime.now(UTC)), media_type=GEOJSON, headers=headers)

    def _links(
        self,
        request: Request,
        asked: dict[str, str],
        query: ItemsQuery,
        returned: int,
        matched: int | None,
        last_fid: int | None,
    ) -> list[dict[str, str]]:
        """Links that repeat the request as asked (a POSTed filter goes into the query as cql2-json)."""
        params = {k: v for k, v in asked.items() if k not in ("offset", "after")}
        links = [
            {"rel": "self", "type": GEOJSON, "title": "This page", "href": self._url(request, asked)},
            *(
                {
                    "rel": "alternate",
                    "type": media,
                    "title": f"This page as {name}",
                    "href": self._url(request, {**asked, "f": f}),
                }
                for f, media, name in ALTERNATES
            ),
            {
                "rel": "collection",
                "type": "application/json",
                "title": query.layer.title.en,
                "href": self._url(request, {}).rsplit("/items", 1)[0],
            },
            {  # what the filter may name (OGC API Features Part 3)
                "rel": QUERYABLES_REL,
                "type": "application/schema+json",
                "title": "Queryables",
                "href": self._url(request, {}).rsplit("/items", 1)[0] + "/queryables",
            },
        ]
        full = returned == query.limit
        if query.keyset:
            if full and last_fid is not None:
                links.append(
                    {
                        "rel": "next",
                        "type": GEOJSON,
                        "title": "Next page",
                        "href": self._url(request, {**params, "after": str(last_fid)}),
                    }
                )
        else:
            if full and (matched is None or query.offset + returned < matched):
                links.append(
                    {
                        "rel": "next",
                        "type": GEOJSON,
                        "title": "Next page",
                        "href": self._url(request, {**params, "offset": str(query.offset + query.limit)}),
                    }
                )
            if query.offset > 0:
                links.append(
                    {
                        "rel": "prev",
                        "type": GEOJSON,
                        "title": "Previous page",
                        "href": self._url(request, {**params, "offset": str(max(0, query.offset - query.limit))}),
                    }
                )
        return links

    async def item(self, request: Request) -> Response:
        viewer, layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ITEM_PARAMS)
        crs = parse_crs(params, "crs")
        raw = request.path_params["item_id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise NotFound(f"no feature {raw!r} in {layer.id}", vi=f"không có đối tượng {raw!r} trong lớp {layer.id}")
        fid = int(raw)
        # self, the same feature in the other formats offered (pygeoapi renders them), and its collection
        asked = {k: v for k, v in params.items() if k != "f"}
        links = [
            {"rel": "self", "type": GEOJSON, "title": "This feature", "href": self._url(request)},
            *(
                {
                    "rel": "alternate",
                    "type": media,
                    "title": f"This feature as {name}",
                    "href": self._url(request, {**asked, "f": f}),
                }
                for f, media, name in ALTERNATES
                if f != "csv"
            ),
            {
                "rel": "collection",
                "type": "application/json",
                "title": layer.title.en,
                "href": self._url(request, {}).rsplit("/items/", 1)[0],
            },
        ]

        def render(found: tuple[str, str] | None) -> bytes | None:
            """The ETag's line, then the feature (kept together in the cache)."""
            if found is None:
                return None
            text, tag = found
            return (tag + "\n" + text[:-1] + ', "links": ' + _json(links) + "}").encode()

        def fetch() -> tuple[tuple[str, str] | None, int | None]:
            found, made_from = self._at_once(
                viewer, [feature_statement(viewer, layer, fid, crs), self._version_statement(layer)]
            )
            feature = (str(found[0][0]), version_tag(fid, found[0][1])) if found else None
            return feature, (int(made_from[0][0]) if made_from else None)

        kept = await self._cached(self.answers, layer, self._answer_key(request, viewer, layer), fetch, render)
        if kept is None:
            raise NotFound(f"no feature {raw} in {layer.id}", vi=f"không có đối tượng {raw} trong lớp {layer.id}")
        tag, _, body = kept.partition(b"\n")
        headers = {"Content-Crs": f"<{crs.uri}>", "Link": link_header(links), "ETag": tag.decode()}
        return Response(body, media_type=GEOJSON, headers=headers)

    async def item_history(self, request: Request) -> Response:
        """Every published state of a feature (:mod:`gis_ioc.publish.history`), oldest first."""
        viewer, layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ITEM_PARAMS)
        crs = parse_crs(params, "crs")
        raw = request.path_params["item_id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise NotFound(f"no feature {raw!r} in {layer.id}", vi=f"không có đối tượng {raw!r} trong lớp {layer.id}")
        found = await run_in_threadpool(
            self._run, viewer, lambda conn: feature_history(conn, viewer, layer, int(raw), crs)
        )
        if found is None:
            raise NotFound(f"no feature {raw} in {layer.id}", vi=f"không có đối tượng {raw} trong lớp {layer.id}")
        base = self._url(request, {}).rsplit("/history", 1)[0]
        links = [
            {
                "rel": "self",
                "type": "application/geo+json",
                "title": "This feature's history",
                "href": self._url(request),
            },
            {"rel": "about", "type": "application/geo+json", "title": "This feature", "href": base},
        ]
        body = found[:-1] + ', "links": ' + _json(links) + "}"
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs.uri}>"})

    def _collection_base(self, request: Request) -> str:
        url = self._url(request, {})
        return url.split("/tiles", 1)[0]

    async def tilesets(self, request: Request) -> Response:
        _, layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f", "lang"])
        return JSONResponse(tileset_list(layer, self._collection_base(request)))

    async def tileset(self, request: Request) -> Response:
        _, layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f", "lang"])
        if request.path_params["tms"] != "WebMercatorQuad":
            tms = request.path_params["tms"]
            raise NotFound(
                f"tile matrix set {tms!r} is not offered; use WebMercatorQuad",
                vi=f"tile matrix set {tms!r} không được hỗ trợ; dùng WebMercatorQuad",
            )
        extent = await run_in_threadpool(self.extents.of, layer)
        return JSONResponse(tileset(layer, self.catalog, self._collection_base(request), extent))

    async def tile(self, request: Request) -> Response:
        viewer, layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ["f", "lang", "properties"])
        p = request.path_params
        z, x, y = parse_tile(layer, p["tms"], p["z"], p["row"], p["col"])
        properties = parse_tile_properties(layer, self.catalog, params.get("properties"))
        if z < self.catalog.style_of(layer).min_zoom:
            return tile_response(request, b"", layer)

        def fetch() -> tuple[bytes, int | None]:
            (row,) = self._at_once(viewer, [tile_statement_versioned(viewer, layer, z, x, y, properties)])
            return tile_and_version(row[0] if row else None)

        # a tile is shared by the viewers of one class (same rows, same fields) until the layer changes
        key = (z, x, y, tuple(properties), viewer.view_class(layer))
        data = await self._cached(self.tiles, layer, key, fetch, lambda tile: tile)
        return tile_response(request, data or b"", layer)

    async def styles(self, request: Request) -> Response:
        _, layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f", "lang"])
        return JSONResponse(styles.styles_list(layer, self.catalog, self._url(request, {}).rsplit("/styles", 1)[0]))

    async def style(self, request: Request) -> Response:
        """One stylesheet of a collection's style: QML (default), SLD 1.0 or MapLibre GL (``f=``)."""
        _, layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ["f", "lang"])
        styles.check_style_id(request.path_params["style_id"])
        form, lang = styles.parse_format(params.get("f")), styles.parse_lang(params.get("lang"))
        headers = {"Content-Disposition": f'inline; filename="{layer.id}.{form if form != "mapbox" else "json"}"'}
        headers.update(cache_headers(layer, 300))
        if form == "qml":
            return Response(styles.qml(layer, self.catalog, lang), media_type=styles.QML, headers=headers)
        if form == "sld":
            return Response(styles.sld(layer, self.catalog, lang), media_type=styles.SLD, headers=headers)
        base = self._url(request, {}).rsplit("/styles/", 1)[0]
        style = self.catalog.style_of(layer)
        document = {
            "version": 8,
            "name": style.title.vi if lang == "vi" else style.title.en,
            "sources": {
                layer.id: {
                    "type": "vector",
                    "tiles": [f"{base}/tiles/{TMS_ID}/{{z}}/{{y}}/{{x}}"],
                    "minzoom": 0,
                    "maxzoom": SOURCE_MAXZOOM,
                }
            },
            "layers": style_layers(layer, style, True),
        }
        return JSONResponse(document, media_type=styles.MAPBOX, headers=headers)

    async def tile_matrix_sets(self, request: Request) -> Response:
        return tms_list(self._url(request, {}).rsplit("/tileMatrixSets", 1)[0])

    async def tile_matrix_set(self, request: Request) -> Response:
        if request.path_params["tms"] != "WebMercatorQuad":
            tms = request.path_params["tms"]
            raise NotFound(
                f"tile matrix set {tms!r} is not offered; use WebMercatorQuad",
                vi=f"tile matrix set {tms!r} không được hỗ trợ; dùng WebMercatorQuad",
            )
        return JSONResponse(web_mercator_quad())

    async def queryables(self, request: Request) -> Response:
        _, layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f", "lang"])
        document = queryables_document(layer, self._url(request, {}))
        return Response(_json(document), media_type="application/schema+json")


def amend_json(handler: Handler, amend: Callable[[Any, Request], None]) -> Handler:
    """Run pygeoapi's handler, then let gis_ioc complete its JSON answer."""

    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("application/json"):
            return response
        data = json.loads(bytes(response.body))
        amend(data, request)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse(data, headers=headers)

    return endpoint


def _conformance(data: Any, request: Request) -> None:
    classes = [c for c in data.get("conformsTo", []) if c not in WITHDRAWN_CONFORMANCE]
    data["conformsTo"] = sorted(set(classes) | set(EXTRA_CONFORMANCE))


def _tiles_link(collection: dict[str, Any]) -> None:
    """A collection's links to its vector tiles and its styles."""
    self_link = next((li["href"] for li in collection.get("links", []) if li.get("rel") == "self"), None)
    if self_link is None:
        return
    base = self_link.split("?", 1)[0]
    collection["links"].append(
        {"rel": TILESETS_REL, "type": "application/json", "title": "Vector tiles", "href": f"{base}/tiles?f=json"}
    )
    collection["links"].append(
        {"rel": STYLES_REL, "type": "application/json", "title": "Styles: QML, SLD, MapLibre", "href": f"{base}/styles"}
    )


def _collections(data: Any, request: Request) -> None:
    for collection in data.get("collections", []):
        _tiles_link(collection)


def _collection(data: Any, request: Request) -> None:
    _tiles_link(data)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def refusal(request: Request, status: int, title: str, en: str, vi: str | None = None) -> Response:
    """A problem document whose detail is in the caller's language (``vi``, or ``en`` when the caller asks
    for English or no Vietnamese is written), saying which (``Content-Language``; ``Vary`` for caches)."""
    lang = language(request)
    response = problem(status, title, vi if lang == "vi" and vi else en)
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language"
    return response


def refused(request: Request, exc: GisIocError) -> Response:
    """gis_ioc's error as a problem document in the caller's language."""
    return refusal(request, exc.status, exc.title, str(exc), exc.vi)


def _guard(handler: Handler) -> Handler:
    """gis_ioc's errors as problem documents in the caller's language."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GisIocError as exc:
            return refused(request, exc)
        except SQLAlchemyOperationalError:  # pygeoapi's job manager cannot reach PostGIS
            return refusal(
                request, 503, DatabaseUnavailable.title, "PostGIS is unreachable", "không kết nối được PostGIS"
            )

    return endpoint


#: ``f`` values: gis_ioc answers JSON itself; pygeoapi renders the others.
OURS_FORMATS = ("json", "geojson")
PYGEOAPI_FORMATS = ("html", "jsonld", "csv")


def _either(ours: Handler, theirs: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        f = request.query_params.get("f")
        try:
            if f is not None and f not in OURS_FORMATS + PYGEOAPI_FORMATS:
                allowed = ", ".join(OURS_FORMATS + PYGEOAPI_FORMATS)
                raise InvalidInput(
                    f"f={f!r} is not offered here; use one of {allowed}",
                    vi=f"f={f!r} không có ở đây; dùng một trong {allowed}",
                )
            if wants_html(request) or f in PYGEOAPI_FORMATS:
                if (text := request.query_params.get("filter")) is not None:
                    # pygeoapi parses with its own parser: the same bounds first, the same 400 as JSON
                    parse_filter(text, request.query_params.get("filter-lang"))
                return await theirs(request)
            return await ours(request)
        except GisIocError as exc:
            return refused(request, exc)

    return endpoint


def private(response: Response) -> Response:
    """Mark an answer that depends on who asks: no shared cache keeps it, and a browser's cache keys it
    on the credentials too."""
    cache = response.headers.get("cache-control", "")
    if not cache.startswith("private"):
        ages = [part.strip() for part in cache.split(",") if part.strip().startswith("max-age")]
        response.headers["Cache-Control"] = ", ".join(["private", *ages])
    vary = [v.strip() for v in response.headers.get("vary", "").split(",") if v.strip()]
    known = {v.lower() for v in vary}
    vary += [name for name in VARY_VIEWER.split(", ") if name.lower() not in known]
    response.headers["Vary"] = ", ".join(vary)
    return response


def per_viewer(handler: Handler, catalog: Catalog) -> Handler:
    """Answers about a collection whose rows or fields depend on who asks (any but a public layer without
    personal fields), and lists of the collections a viewer sees, are private to the caller."""

    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        layer_id = request.path_params.get("collection_id")
        layer = catalog.layers.get(layer_id) if layer_id is not None else None
        # an unknown collection answers exactly as one the caller may not read (no header tells them apart)
        if layer is None or not same_for_everyone(layer):
            return private(response)
        return response

    return endpoint


def _execution(handler: Handler) -> Handler:
    """An execution request whose body is JSON but not an object (``[null]``, ``3``) is a 400 naming the
    problem before pygeoapi sees it (pygeoapi would fail on it)."""

    async def endpoint(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None  # not JSON: pygeoapi answers 400 itself
        if body is not None and not isinstance(body, dict):
            kind = type(body).__name__
            return refusal(
                request,
                400,
                InvalidInput.title,
                f'the execution request must be a JSON object ({{"inputs": {{…}}}}), not {kind}',
                f'yêu cầu chạy phải là một đối tượng JSON ({{"inputs": {{…}}}}), không phải {kind}',
            )
        return await handler(request)

    return endpoint


def true_extents(handler: Handler, features: FeaturesApi) -> Handler:
    """Bring the extents of the collections an answer shows up to date with their data, then answer (with
    the extents last read if PostGIS cannot be reached now)."""

    async def endpoint(request: Request) -> Response:
        layer_id = request.path_params.get("collection_id")
        layers = None if layer_id is None else [la for la in features.extents.layers if la.id == layer_id]
        if layers != []:
            try:
                await run_in_threadpool(_refresh_extents, features.extents, layers)
            except DatabaseUnavailable as exc:
                log.warning("extents not refreshed: %s", exc)
        return await handler(request)

    return endpoint


def _refresh_extents(extents: Extents, layers: list[Layer] | None) -> None:
    with translate_errors():
        extents.refresh(layers)


def _job(door: PygeoapiDoor) -> Handler:
    status = door(processes_api.get_jobs, "job_id")
    delete = door(processes_api.delete_job, "job_id")

    async def endpoint(request: Request) -> Response:
        return await (delete if request.method == "DELETE" else status)(request)

    return endpoint


def _collection_routes(pygeoapi: PygeoapiDoor, features: FeaturesApi) -> list[Route]:
    """The collections and everything under them (each answer private when it depends on who asks)."""
    items = _either(features.items, pygeoapi(itemtypes_api.get_collection_items, "collection_id", validate=False))
    item = _either(features.item, pygeoapi(itemtypes_api.get_collection_item, "collection_id", "item_id"))
    items, item = edits.writable(features, items, item)
    queryables = _either(features.queryables, pygeoapi(itemtypes_api.get_collection_queryables, "collection_id"))
    describe = pygeoapi(core_api.describe_collections)
    describe_one = pygeoapi(core_api.describe_collections, "collection_id")
    base = "/collections/{collection_id}"
    tiles = f"{base}/tiles"
    handlers: list[tuple[str, Handler, list[str]]] = [
        ("/collections", true_extents(amend_json(describe, _collections), features), ["GET"]),
        (base, true_extents(amend_json(describe_one, _collection), features), ["GET"]),
        (tiles, _guard(features.tilesets), ["GET"]),
        (f"{tiles}/{{tms}}", _guard(features.tileset), ["GET"]),
        (f"{tiles}/{{tms}}/{{z}}/{{row}}/{{col}}", _guard(features.tile), ["GET"]),
        (f"{base}/queryables", queryables, ["GET"]),
        (f"{base}/styles", _guard(features.styles), ["GET"]),
        (f"{base}/styles/{{style_id}}", _guard(features.style), ["GET"]),
        (f"{base}/schema", _guard(pygeoapi(core_api.get_collection_schema, "collection_id")), ["GET"]),
        (f"{base}/items", items, ["GET", "POST"]),
        (f"{base}/items/{{item_id}}", item, ["GET", "PUT", "PATCH", "DELETE"]),
        (f"{base}/items/{{item_id}}/history", _guard(features.item_history), ["GET"]),
    ]
    routes = [
        Route(path, per_viewer(handler, features.catalog), methods=methods) for path, handler, methods in handlers
    ]
    return routes + edr_routes(pygeoapi, features)  # OGC API EDR over the sensor observations


async def _no_route(request: Request, exc: Exception) -> Response:
    """An address the OGC API does not have, or a method it does not take there: problem+json in the caller's
    language (Starlette's own answer is plain text, which the API definition does not declare)."""
    status = int(getattr(exc, "status_code", 404))
    lang = language(request)
    path = request.url.path[:200]
    if status == 405:
        detail = say(lang, f"{request.method} is not allowed on {path}", f"không dùng được {request.method} với {path}")
        answer = problem(405, "Method not allowed", detail)
        answer.headers.update(getattr(exc, "headers", None) or {})  # Allow
        return answer
    return problem(404, NotFound.title, say(lang, f"no such address: {path}", f"không có địa chỉ {path}"))


def create_ogc_app(
    config: dict[str, Any],
    catalog: Catalog,
    pool: ConnectionPool,
    public_url: str | None,
    ogc_path: str = "/ogc",
    *,
    versions: DataVersions | None = None,
    tile_cache_bytes: int = 0,
    answer_cache_bytes: int = 0,
) -> Starlette:
    TemplateConfigs.install()
    apis = ApisByAddress(config, ogc_path, fixed=public_url is not None, catalog=catalog)
    pygeoapi_ = PygeoapiDoor(apis, pool, catalog)
    collections = {rid: r for rid, r in config["resources"].items() if r.get("type") == "collection"}
    features = FeaturesApi(catalog, pool, apis, set(collections))
    features.versions = versions
    features.extents = Extents(catalog, pool, [catalog.layers[rid] for rid in collections], versions, collections)
    features.tiles = VersionedCache(tile_cache_bytes)
    features.answers = VersionedCache(answer_cache_bytes, max_age=60)
    if versions is not None:  # a changed layer's entries go at once (their memory back)
        versions.subscribe(features.tiles.drop)
        versions.subscribe(features.answers.drop)
    routes = [
        Route("/", _guard(pygeoapi_(core_api.landing_page))),
        Route("/openapi", per_viewer(_guard(pygeoapi_(core_api.openapi_)), catalog)),
        Route("/conformance", amend_json(pygeoapi_(core_api.conformance), _conformance)),
        Route("/tileMatrixSets", _guard(features.tile_matrix_sets)),
        Route("/tileMatrixSets/{tms}", _guard(features.tile_matrix_set)),
        *_collection_routes(pygeoapi_, features),
        # OGC API - Processes: the scenarios, run by pygeoapi's job manager (gis_ioc.publish.processes)
        Route("/processes", _guard(pygeoapi_(processes_api.describe_processes))),
        Route("/processes/{process_id}", _guard(pygeoapi_(processes_api.describe_processes, "process_id"))),
        Route(
            "/processes/{process_id}/execution",
            _guard(_execution(pygeoapi_(processes_api.execute_process, "process_id"))),
            methods=["POST"],
        ),
        Route("/jobs", _guard(pygeoapi_(processes_api.get_jobs))),
        Route("/jobs/{job_id}", _guard(_job(pygeoapi_)), methods=["GET", "DELETE"]),
        Route("/jobs/{job_id}/results", _guard(pygeoapi_(processes_api.get_job_result, "job_id"))),
        Mount("/static", StaticFiles(directory=Path(pygeoapi.__file__).parent / "static")),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _no_route, 405: _no_route})
    app.router.redirect_slashes = False
    app.state.pygeoapi = apis.default
    app.state.features = features
    app.state.pool = pool  # the audit of refusals (gis_ioc.api.guard) and the loads' access rule
    app.state.catalog = catalog
    return app
