"""The OGC API as a Starlette application: gis_ioc's own handlers in front of pygeoapi.

Items, single features and queryables in JSON are answered by gis_ioc (validation, SQL that builds
GeoJSON in PostGIS, pinned VN-2000, CQL2, paging links); pygeoapi answers the rest — landing page,
conformance, OpenAPI, collection descriptions and every HTML page — from the configuration rendered
from the catalog, through gis_ioc's provider. pygeoapi's own Starlette module reads its configuration
from environment variables at import time, so gis_ioc builds the ``API`` object itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from collections.abc import Awaitable, Callable
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
from psycopg_pool import ConnectionPool, PoolTimeout
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.openapi import get_oas
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gis_ioc.auth import access
from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, Layer
from gis_ioc.errors import DatabaseUnavailable, GisIocError, InvalidInput, NotFound
from gis_ioc.http import problem
from gis_ioc.publish.features import ItemsQuery, feature_collection, fetch_feature, fetch_page
from gis_ioc.publish.openapi import self_contained
from gis_ioc.publish.params import ITEM_PARAMS, check_unknown, parse_crs, parse_items
from gis_ioc.publish.queryables import queryables_document
from gis_ioc.publish.tiles import (
    fetch_tile,
    parse_tile,
    parse_tile_properties,
    tile_response,
    tileset,
    tileset_list,
    tms_list,
    web_mercator_quad,
)

Handler = Callable[[Request], Awaitable[Response]]
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
WITHDRAWN_CONFORMANCE = {f"{_SPEC}ogcapi-features-4/1.0/conf/create-replace-delete"}
TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"


def build_api(config: dict[str, Any]) -> API:
    """pygeoapi's API object with an OpenAPI document generated from the same configuration."""
    collections = [rid for rid, r in config["resources"].items() if r.get("type") == "collection"]
    openapi = self_contained(get_oas(config, fail_on_invalid_collection=False), collections)
    return API(config, openapi)


def _respond(headers: dict[str, str], status: int, content: Any) -> Response:
    if headers.get("Content-Type") == "text/html":
        response: Response = HTMLResponse(content=content, status_code=status)
    else:
        response = Response(content, status_code=status)
    response.headers.update(headers)
    return response


class ApisByAddress:
    """pygeoapi takes its links and OpenAPI ``servers`` from ``server.url``; so that they are right for
    the address a client reached the server at, one ``API`` is kept per address (at most ``MAX``;
    further addresses get the configured one). With ``GIS_IOC_PUBLIC_URL`` set, that address is used always.
    """

    MAX = 32  # addresses x sets of visible collections

    def __init__(self, config: dict[str, Any], ogc_path: str, fixed: bool, catalog: Catalog) -> None:
        self.config = config
        self.ogc_path = ogc_path
        self.fixed = fixed
        self.layers = [catalog.layers[rid] for rid, r in config["resources"].items() if r.get("type") == "collection"]
        public = frozenset(layer.id for layer in access.readable(None, self.layers))
        self.apis: dict[tuple[str, frozenset[str]], API] = {}
        self.lock = threading.Lock()
        self.default = self.apis[(config["server"]["url"], public)] = self._build(config["server"]["url"], public)

    def __call__(self, request: Request) -> API:
        visible = self.visible(request)
        url = self.config["server"]["url"]
        if not self.fixed:
            host = request.headers.get("host", "")
            if re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host):
                url = f"{request.url.scheme}://{host}{self.ogc_path}"
        key = (url, visible)
        with self.lock:
            api = self.apis.get(key) or self.apis.get((self.config["server"]["url"], visible))
            if api is not None and (api is self.apis.get(key) or len(self.apis) >= self.MAX):
                return api  # beyond MAX addresses: the configured address, showing only what may be seen
            api = self.apis[key] = self._build(url, visible)
        return api

    def _build(self, url: str, visible: frozenset[str]) -> API:
        resources = {
            rid: r for rid, r in self.config["resources"].items() if r.get("type") != "collection" or rid in visible
        }
        return build_api({**self.config, "server": {**self.config["server"], "url": url}, "resources": resources})

    def visible(self, request: Request) -> frozenset[str]:
        """The collections the request's principal may see."""
        who = CURRENT.get()
        return frozenset(layer.id for layer in access.readable(who, self.layers))


def pygeoapi_handler(
    apis: Callable[[Request], API], function: Callable[..., Any], *param_names: str, validate: bool = True
) -> Handler:
    async def endpoint(request: Request) -> Response:
        api = apis(request)
        api_request = await APIRequest.from_starlette(request, api.locales)
        if validate and not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            args = [request.path_params.get(name) for name in param_names]
            loop = asyncio.get_running_loop()

            def call() -> tuple[dict[str, str], int, Any]:
                asyncio.set_event_loop(loop)  # pygeoapi looks for a loop in its worker thread
                return function(api, api_request, *args)  # type: ignore[no-any-return]

            headers, status, content = await loop.run_in_executor(None, contextvars.copy_context().run, call)
            if status != HTTPStatus.NO_CONTENT:
                content = apply_gzip(headers, content)
        return _respond(headers, status, content)

    return endpoint


def wants_html(request: Request) -> bool:
    f = request.query_params.get("f")
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "json" not in accept


class FeaturesApi:
    """gis_ioc's handlers for the data-heavy endpoints."""

    def __init__(self, catalog: Catalog, pool: ConnectionPool, public_url: str | None, published: set[str]) -> None:
        self.catalog = catalog
        self.pool = pool
        self.public_url = public_url
        self.published = published
        self.extents: dict[str, list[float]] = {}

    def layer(self, request: Request) -> Layer:
        """The collection asked for; one the principal may not read is answered as if it did not exist."""
        layer_id = request.path_params["collection_id"]
        if layer_id not in self.published or not access.can_read(CURRENT.get(), self.catalog.layers[layer_id]):
            raise NotFound(f"no collection {layer_id!r}")
        return self.catalog.layers[layer_id]

    @staticmethod
    def communes(layer: Layer) -> frozenset[str] | None:
        return access.row_communes(CURRENT.get(), layer)

    def _url(self, request: Request, params: dict[str, str] | None = None) -> str:
        public = self.public_url
        base = public.rstrip("/") + request.url.path if public else str(request.url.replace(query=""))
        query = urlencode(params if params is not None else dict(request.query_params))
        return f"{base}?{query}" if query else base

    def _run[T](self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self.pool.connection(timeout=10) as conn:
                return work(conn)
        except PoolTimeout as exc:
            raise DatabaseUnavailable("PostGIS is unreachable or busy") from exc
        except psycopg.errors.QueryCanceled as exc:
            raise DatabaseUnavailable("the query took too long; narrow it with bbox, filter or limit") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable("PostGIS is unreachable") from exc
        except (
            psycopg.errors.DataError,
            psycopg.errors.InternalError,
            psycopg.errors.InvalidParameterValue,
            psycopg.ProgrammingError,  # e.g. an operator between types the filter checks did not foresee
        ) as exc:
            message = str(exc).strip().splitlines()[0]
            raise InvalidInput(f"the database refused the request: {message}") from exc

    async def items(self, request: Request) -> Response:
        layer = self.layer(request)
        params = dict(request.query_params)
        if request.method == "POST":  # a cql2-json filter in the body (OGC API Features Part 3)
            body = (await request.body()).decode("utf-8", errors="replace")
            if not body.strip():
                raise InvalidInput("POST items needs a cql2-json filter in the body")
            if "filter" in params:
                raise InvalidInput("give the filter either in the body or as the filter parameter, not both")
            params = {**params, "filter": body, "filter-lang": "cql2-json"}
        query: ItemsQuery = parse_items(layer, params)
        query.communes = self.communes(layer)
        page = await run_in_threadpool(self._run, lambda conn: fetch_page(conn, query))
        links = self._links(request, params, query, page.returned, page.matched, page.last_fid)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = feature_collection(page, links, stamp)
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{query.crs.uri}>"})

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
            {
                "rel": "alternate",
                "type": "text/html",
                "title": "This page as HTML",
                "href": self._url(request, {**asked, "f": "html"}),
            },
            {
                "rel": "collection",
                "type": "application/json",
                "title": query.layer.title.en,
                "href": self._url(request, {}).rsplit("/items", 1)[0],
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
        layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ITEM_PARAMS)
        crs = parse_crs(params, "crs")
        raw = request.path_params["item_id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise NotFound(f"no feature {raw!r} in {layer.id}")
        text = await run_in_threadpool(
            self._run, lambda conn: fetch_feature(conn, layer, int(raw), crs, self.communes(layer))
        )
        if text is None:
            raise NotFound(f"no feature {raw} in {layer.id}")
        links = [
            {"rel": "self", "type": GEOJSON, "href": self._url(request)},
            {"rel": "collection", "type": "application/json", "href": self._url(request, {}).rsplit("/items/", 1)[0]},
        ]
        body = text[:-1] + ', "links": ' + _json(links) + "}"
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs.uri}>"})

    def _collection_base(self, request: Request) -> str:
        url = self._url(request, {})
        return url.split("/tiles", 1)[0]

    async def tilesets(self, request: Request) -> Response:
        layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f"])
        return JSONResponse(tileset_list(layer, self._collection_base(request)))

    async def tileset(self, request: Request) -> Response:
        layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f"])
        if request.path_params["tms"] != "WebMercatorQuad":
            raise NotFound(f"tile matrix set {request.path_params['tms']!r} is not offered; use WebMercatorQuad")
        bbox = self.extents.get(layer.id, [-180.0, -85.0, 180.0, 85.0])
        return JSONResponse(tileset(layer, self.catalog, self._collection_base(request), bbox))

    async def tile(self, request: Request) -> Response:
        layer = self.layer(request)
        params = dict(request.query_params)
        check_unknown(params, ["f", "properties"])
        p = request.path_params
        z, x, y = parse_tile(layer, p["tms"], p["z"], p["row"], p["col"])
        properties = parse_tile_properties(layer, self.catalog, params.get("properties"))
        if z < self.catalog.style_of(layer).min_zoom:
            return tile_response(request, b"", layer)
        communes = self.communes(layer)
        data = await run_in_threadpool(self._run, lambda conn: fetch_tile(conn, layer, z, x, y, properties, communes))
        return tile_response(request, data, layer)

    async def tile_matrix_sets(self, request: Request) -> Response:
        return tms_list(self._url(request, {}).rsplit("/tileMatrixSets", 1)[0])

    async def tile_matrix_set(self, request: Request) -> Response:
        if request.path_params["tms"] != "WebMercatorQuad":
            raise NotFound(f"tile matrix set {request.path_params['tms']!r} is not offered; use WebMercatorQuad")
        return JSONResponse(web_mercator_quad())

    async def queryables(self, request: Request) -> Response:
        layer = self.layer(request)
        check_unknown(dict(request.query_params), ["f", "lang"])
        document = queryables_document(layer, self._url(request, {}))
        return Response(_json(document), media_type="application/schema+json")


def amend_json(handler: Handler, amend: Callable[[Any, Request], None]) -> Handler:
    """Run pygeoapi's handler, then let gis_ioc complete its JSON answer."""

    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("application/json"):
            return response
        import json

        data = json.loads(bytes(response.body))
        amend(data, request)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse(data, headers=headers)

    return endpoint


def _conformance(data: Any, request: Request) -> None:
    classes = [c for c in data.get("conformsTo", []) if c not in WITHDRAWN_CONFORMANCE]
    data["conformsTo"] = sorted(set(classes) | set(EXTRA_CONFORMANCE))


def _tiles_link(collection: dict[str, Any]) -> None:
    self_link = next((li["href"] for li in collection.get("links", []) if li.get("rel") == "self"), None)
    if self_link is None:
        return
    base = self_link.split("?", 1)[0]
    collection["links"].append(
        {"rel": TILESETS_REL, "type": "application/json", "title": "Vector tiles", "href": f"{base}/tiles?f=json"}
    )


def _collections(data: Any, request: Request) -> None:
    for collection in data.get("collections", []):
        _tiles_link(collection)


def _collection(data: Any, request: Request) -> None:
    _tiles_link(data)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _guard(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GisIocError as exc:
            return problem(exc.status, exc.title, str(exc))
        except SQLAlchemyOperationalError:  # pygeoapi's job manager cannot reach PostGIS
            return problem(503, DatabaseUnavailable.title, "PostGIS is unreachable")

    return endpoint


#: ``f`` values: gis_ioc answers JSON itself; pygeoapi renders the others.
OURS_FORMATS = ("json", "geojson")
PYGEOAPI_FORMATS = ("html", "jsonld", "csv")


def _either(ours: Handler, theirs: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        f = request.query_params.get("f")
        if f is not None and f not in OURS_FORMATS + PYGEOAPI_FORMATS:
            allowed = ", ".join(OURS_FORMATS + PYGEOAPI_FORMATS)
            return problem(400, "Invalid input", f"f={f!r} is not offered here; use one of {allowed}")
        if wants_html(request) or f in PYGEOAPI_FORMATS:
            return await theirs(request)
        try:
            return await ours(request)
        except GisIocError as exc:
            return problem(exc.status, exc.title, str(exc))

    return endpoint


def _job(apis: Callable[[Request], API]) -> Handler:
    status = pygeoapi_handler(apis, processes_api.get_jobs, "job_id")
    delete = pygeoapi_handler(apis, processes_api.delete_job, "job_id")

    async def endpoint(request: Request) -> Response:
        return await (delete if request.method == "DELETE" else status)(request)

    return endpoint


def create_ogc_app(
    config: dict[str, Any], catalog: Catalog, pool: ConnectionPool, public_url: str | None, ogc_path: str = "/ogc"
) -> Starlette:
    api = ApisByAddress(config, ogc_path, fixed=public_url is not None, catalog=catalog)
    collections = {rid: r for rid, r in config["resources"].items() if r.get("type") == "collection"}
    features = FeaturesApi(catalog, pool, public_url, set(collections))
    features.extents = {rid: r["extents"]["spatial"]["bbox"] for rid, r in collections.items()}
    routes = [
        Route("/", pygeoapi_handler(api, core_api.landing_page)),
        Route("/openapi", pygeoapi_handler(api, core_api.openapi_)),
        Route("/conformance", amend_json(pygeoapi_handler(api, core_api.conformance), _conformance)),
        Route("/collections", amend_json(pygeoapi_handler(api, core_api.describe_collections), _collections)),
        Route(
            "/collections/{collection_id}",
            amend_json(pygeoapi_handler(api, core_api.describe_collections, "collection_id"), _collection),
        ),
        Route("/tileMatrixSets", _guard(features.tile_matrix_sets)),
        Route("/tileMatrixSets/{tms}", _guard(features.tile_matrix_set)),
        Route("/collections/{collection_id}/tiles", _guard(features.tilesets)),
        Route("/collections/{collection_id}/tiles/{tms}", _guard(features.tileset)),
        Route("/collections/{collection_id}/tiles/{tms}/{z}/{row}/{col}", _guard(features.tile)),
        Route(
            "/collections/{collection_id}/queryables",
            _either(
                features.queryables, pygeoapi_handler(api, itemtypes_api.get_collection_queryables, "collection_id")
            ),
        ),
        Route(
            "/collections/{collection_id}/schema",
            pygeoapi_handler(api, core_api.get_collection_schema, "collection_id"),
        ),
        Route(
            "/collections/{collection_id}/items",
            _either(
                features.items,
                pygeoapi_handler(api, itemtypes_api.get_collection_items, "collection_id", validate=False),
            ),
            methods=["GET", "POST"],
        ),
        Route(
            "/collections/{collection_id}/items/{item_id}",
            _either(
                features.item, pygeoapi_handler(api, itemtypes_api.get_collection_item, "collection_id", "item_id")
            ),
        ),
        # OGC API - Processes: the scenarios, run by pygeoapi's job manager (gis_ioc.publish.processes)
        Route("/processes", _guard(pygeoapi_handler(api, processes_api.describe_processes))),
        Route("/processes/{process_id}", _guard(pygeoapi_handler(api, processes_api.describe_processes, "process_id"))),
        Route(
            "/processes/{process_id}/execution",
            _guard(pygeoapi_handler(api, processes_api.execute_process, "process_id")),
            methods=["POST"],
        ),
        Route("/jobs", _guard(pygeoapi_handler(api, processes_api.get_jobs))),
        Route("/jobs/{job_id}", _guard(_job(api)), methods=["GET", "DELETE"]),
        Route("/jobs/{job_id}/results", _guard(pygeoapi_handler(api, processes_api.get_job_result, "job_id"))),
        Mount("/static", StaticFiles(directory=Path(pygeoapi.__file__).parent / "static")),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    app.state.pygeoapi = api.default
    return app
