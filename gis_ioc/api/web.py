"""The leaders' web map at ``/`` and the small JSON API it reads: ``/api/map/config`` (layers, styles,
scenarios, periods), ``/api/overview`` (the province at a glance), ``/api/communes`` (search by name with
or without diacritics, or by code) and ``/api/identify`` (what is at a point, as the caller may read it:
internal layers' rows of a commune officer's own communes only)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from gis_ioc import __version__
from gis_ioc.api import guard
from gis_ioc.errors import InvalidInput, NotFound, Unauthorized
from gis_ioc.maps import mapstyle, places
from gis_ioc.publish import qgis
from gis_ioc.publish.config import PROVINCE_BBOX
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.overview import overview
from gis_ioc.web import TEMPLATES_DIR, glyphs

router = APIRouter(tags=["web map"])
_templates = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))


#: Answers that depend on who asks are kept out of shared caches.
PRIVATE = {"Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization, X-API-Key"}
COMMUNES_TTL = 60.0  # seconds, only while data versions are unknown


def _communes(request: Request) -> list[places.Commune]:
    """The communes in force, read again when the communes layer's data version changes (any process's
    load or approval; while versions are unknown, at most every :data:`COMMUNES_TTL` seconds)."""
    catalog = request.app.state.catalog
    versions = getattr(request.app.state, "versions", None)
    version = versions.get(catalog.layers["communes"].table) if versions is not None else None
    cached: tuple[int | None, float, list[places.Commune]] | None = getattr(request.app.state, "communes_cache", None)
    fresh = cached is not None and (
        cached[0] == version if version is not None else time.monotonic() - cached[1] < COMMUNES_TTL
    )
    if cached is None or not fresh:
        # the same for everyone: the communes layer is public, read as an anonymous caller reads it
        with scope.transaction(request.app.state.pool, Viewer.ANONYMOUS, catalog) as conn:
            cached = (version, time.monotonic(), places.communes(conn))
        request.app.state.communes_cache = cached
    return cached[2]


#: Drawn by default besides :data:`gis_ioc.maps.mapstyle.BASE_LAYERS` (for those who may read them): the
#: drains and canals are the province's water network.
BASE_EXTRA = ("drainage",)
#: MapLibre's glyph ranges, served by gis_ioc (see :mod:`gis_ioc.web.glyphs`).
GLYPHS_URL = "/static/glyphs/{fontstack}/{range}.pbf"
LABEL_LAYER = "commune-labels"


def base_map(style: dict[str, Any], communes: list[places.Commune]) -> dict[str, Any]:
    """The style with the province's own base map: drains drawn by default, and every commune's name at an
    inside point (its short name while zoomed out, the full name from zoom 11), over everything else."""
    for layer in style["layers"]:
        if layer.get("metadata", {}).get("gis_ioc:layer") in BASE_EXTRA:
            layer["layout"] = {**layer.get("layout", {}), "visibility": "visible"}
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(c.centre)},
            "properties": {"code": c.code, "name": c.name, "short_name": c.short_name or c.name},
        }
        for c in communes
    ]
    style["glyphs"] = GLYPHS_URL
    style["sources"][LABEL_LAYER] = {"type": "geojson", "data": {"type": "FeatureCollection", "features": features}}
    style["layers"].append(
        {
            "id": LABEL_LAYER,
            "type": "symbol",
            "source": LABEL_LAYER,
            "layout": {
                "text-field": ["step", ["zoom"], ["get", "short_name"], 11, ["get", "name"]],
                "text-font": [glyphs.FONTSTACK],
                "text-size": ["interpolate", ["linear"], ["zoom"], 8, 11, 10, 13, 13, 16, 16, 18],
                "text-max-width": 8,
                "text-padding": 1,
                "text-variable-anchor": ["center", "top", "bottom", "left", "right"],
                "text-radial-offset": 0.4,
            },
            "paint": {"text-color": "#3a2d63", "text-halo-color": "#ffffff", "text-halo-width": 1.6},
        }
    )
    return style


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
async def index(request: Request, lang: str = "vi") -> HTMLResponse:
    page = _templates.get_template("index.html").render(
        version=__version__, lang="en" if lang == "en" else "vi", ogc_path=request.app.state.settings.ogc_path
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/api/map/config", summary="Layers, MapLibre style, scenarios and periods of the web map")
async def map_config(request: Request) -> JSONResponse:
    app = request.app
    viewer = guard.viewer(request)

    def work() -> list[str]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return places.periods(conn)

    periods = await run_in_threadpool(work)
    communes = await run_in_threadpool(_communes, request)
    catalog = app.state.catalog
    settings = app.state.settings
    hidden = {k for k, layer in catalog.layers.items() if not viewer.can_read(layer)}
    style = base_map(mapstyle.map_style(catalog, settings.ogc_path), communes)
    style["sources"] = {k: v for k, v in style["sources"].items() if k not in hidden}
    style["layers"] = [s for s in style["layers"] if s.get("source") not in hidden]
    layers = [x for x in mapstyle.layer_list(catalog) if x["id"] not in hidden]
    for entry in layers:
        entry["base"] = entry["base"] or entry["id"] in BASE_EXTRA
    config = {
        "version": __version__,
        "bbox": PROVINCE_BBOX,
        "style": style,
        "layers": layers,
        "periods": periods,
        # what the login form tells of refused logins (the server answers all of them alike)
        "auth": {
            "max_failed": settings.auth_max_failed_logins,
            "lockout_minutes": settings.auth_lockout_minutes,
            "inactive_days": settings.auth_inactive_days,
        },
        "scenarios": [
            {"id": s.id, "title": s.title.model_dump(), "description": s.description.model_dump()}
            for s in app.state.scenarios.values()
        ],
    }
    return JSONResponse(config, headers=PRIVATE)  # the layers depend on who asks


@router.get("/api/overview", summary="The province at a glance: sectors' indicators met, not met, stale; trend")
async def province_overview(
    request: Request,
    period: Annotated[
        str | None, Query(max_length=7, description="YYYY-Qn or YYYY; default: the newest period with figures")
    ] = None,
) -> JSONResponse:
    """Every sector scenario run over the whole province for the period (not stored): per sector its
    indicators' province figures counted met / not met / stale, the communes where each is not met, the
    communes most behind (most indicators not met), and the counts over the last four periods. As the
    caller may see it: personal indicators suppressed without access to personal data, per-commune
    detail only for the communes the caller may see (a commune officer's own, none for external
    systems). For accounts: every sector over the whole province takes seconds."""
    app = request.app
    viewer = guard.viewer(request)
    if viewer.anonymous:
        raise Unauthorized(
            "log in (or send an API key) to see the province at a glance",
            code="auth.login_needed",
            vi="Hãy đăng nhập để xem tổng quan toàn tỉnh.",
        )

    def transaction() -> AbstractContextManager[psycopg.Connection[Any]]:
        return scope.transaction(app.state.pool, viewer, app.state.catalog, "aggregate")

    def work() -> dict[str, Any]:
        with transaction() as conn:
            periods = places.periods(conn)
        chosen = period or (periods[0] if periods else None)
        if chosen is None:
            raise NotFound("no indicator figures loaded yet: no period to show")
        return overview(
            transaction,
            app.state.catalog,
            app.state.scenarios,
            chosen,
            viewer=viewer,
            privacy_threshold=app.state.settings.privacy_threshold,
            periods=periods,
        )

    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)  # what is shown depends on who asks


@router.get(
    "/api/qgis-project",
    summary="A ready QGIS project (.qgz) of every layer the caller may read",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def qgis_project(
    request: Request,
    authcfg: Annotated[
        str, Query(description="Id of the QGIS Basic authentication configuration (7 letters or digits)")
    ] = qgis.DEFAULT_AUTHCFG,
    lang: Annotated[str, Query(description="vi or en: titles and legends")] = "vi",
) -> Response:
    """For logged-in users: OGC API Features and vector tiles of every layer they may read, grouped as in
    the catalog and styled, in VN-2000 / TM-3 105°30' (EPSG:9209) with the EPSG:6960 transformation; the
    internal layers use QGIS's Basic authentication configuration ``authcfg`` (user name and API key)."""
    app = request.app
    viewer = guard.viewer(request)
    if viewer.anonymous:
        raise Unauthorized("log in (or send an API key) to download the QGIS project")
    settings = app.state.settings
    base = settings.public_url or str(request.base_url).rstrip("/")

    def work() -> bytes:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return qgis.project_for(
                conn, app.state.catalog, viewer, base, settings.ogc_path, authcfg=authcfg, lang=lang
            )

    data = await run_in_threadpool(work)
    headers = {**PRIVATE, "Content-Disposition": 'attachment; filename="gis_ioc_hung_yen.qgz"'}
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/api/communes", summary="Find communes by name (with or without diacritics) or code")
async def find_communes(
    request: Request,
    q: Annotated[str | None, Query(max_length=100, description="name or code; empty: all communes")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
) -> dict[str, Any]:
    items = await run_in_threadpool(_communes, request)
    found = places.search(items, q, limit) if q and q.strip() else items[:limit]
    return {"query": q, "communes": [c.as_dict() for c in found], "numberMatched": len(found)}


@router.get("/api/communes/{code}", summary="One commune with its bounding box")
async def one_commune(request: Request, code: str) -> dict[str, Any]:
    items = await run_in_threadpool(_communes, request)
    for c in items:
        if c.code == code:
            return c.as_dict()
    raise NotFound(f"no commune with code {code!r} (codes have 5 digits, e.g. 11953)")


@router.get("/api/identify", summary="The commune, the parcel and the facilities nearby at a point (CRS84)")
async def identify(
    request: Request,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    radius: Annotated[float, Query(gt=0, le=places.MAX_NEARBY_METRES, description="metres")] = 500.0,
) -> JSONResponse:
    app = request.app
    viewer = guard.viewer(request)

    def work() -> dict[str, Any]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return places.identify(conn, app.state.catalog, viewer, lon, lat, radius)

    if lon != lon or lat != lat:  # NaN
        raise InvalidInput("lon and lat must be numbers")
    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)  # what is shown depends on who asks
