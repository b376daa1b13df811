"""The OGC API (Features) as a Starlette application over a pygeoapi ``API`` instance.

pygeoapi's own Starlette module reads its configuration from environment variables when it is
imported; gis_ioc instead builds the ``API`` object from the rendered configuration and routes to
pygeoapi's request handlers itself, so one process can hold any configuration and gis_ioc can put
its own checks in front of pygeoapi without forking it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pygeoapi
import pygeoapi.api as core_api
import pygeoapi.api.itemtypes as itemtypes_api
from pygeoapi.api import API, APIRequest, apply_gzip
from pygeoapi.openapi import get_oas
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

Handler = Callable[[Request], Awaitable[Response]]


def build_api(config: dict[str, Any]) -> API:
    """pygeoapi's API object with an OpenAPI document generated from the same configuration."""
    openapi = get_oas(config, fail_on_invalid_collection=False)
    return API(config, openapi)


def _respond(headers: dict[str, str], status: int, content: Any) -> Response:
    if headers.get("Content-Type") == "text/html":
        response: Response = HTMLResponse(content=content, status_code=status)
    else:
        response = Response(content, status_code=status)
    response.headers.update(headers)
    return response


def _handler(api: API, function: Callable[..., Any], *param_names: str, validate: bool = True) -> Handler:
    async def endpoint(request: Request) -> Response:
        api_request = await APIRequest.from_starlette(request, api.locales)
        if validate and not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            args = [request.path_params.get(name) for name in param_names]
            loop = asyncio.get_running_loop()

            def call() -> tuple[dict[str, str], int, Any]:
                asyncio.set_event_loop(loop)  # pygeoapi looks for a loop in its worker thread
                return function(api, api_request, *args)  # type: ignore[no-any-return]

            headers, status, content = await loop.run_in_executor(None, call)
            if status != HTTPStatus.NO_CONTENT:
                content = apply_gzip(headers, content)
        return _respond(headers, status, content)

    return endpoint


def create_ogc_app(config: dict[str, Any]) -> Starlette:
    """Landing page, conformance, OpenAPI, collections, queryables, schema, items and single items."""
    api = build_api(config)
    routes = [
        Route("/", _handler(api, core_api.landing_page)),
        Route("/openapi", _handler(api, core_api.openapi_)),
        Route("/conformance", _handler(api, core_api.conformance)),
        Route("/collections", _handler(api, core_api.describe_collections)),
        Route("/collections/{collection_id}", _handler(api, core_api.describe_collections, "collection_id")),
        Route(
            "/collections/{collection_id}/queryables",
            _handler(api, itemtypes_api.get_collection_queryables, "collection_id"),
        ),
        Route("/collections/{collection_id}/schema", _handler(api, core_api.get_collection_schema, "collection_id")),
        Route(
            "/collections/{collection_id}/items",
            _handler(api, itemtypes_api.get_collection_items, "collection_id", validate=False),
        ),
        Route(
            "/collections/{collection_id}/items/{item_id}",
            _handler(api, itemtypes_api.get_collection_item, "collection_id", "item_id"),
        ),
        Mount("/static", StaticFiles(directory=Path(pygeoapi.__file__).parent / "static")),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    app.state.pygeoapi = api
    return app


def landing_redirect(target: str) -> Handler:
    async def endpoint(request: Request) -> Response:
        return RedirectResponse(target, status_code=307)

    return endpoint
