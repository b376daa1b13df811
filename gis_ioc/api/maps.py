"""``/api/maps/{indicator}``: a thematic map of an indicator by commune for a period, as JSON (the
classification), an offline HTML map (folium), or a print map (PNG, PDF).

A map shows every commune's figures: only for viewers who see every commune in detail (roles that read
internal layers); commune officers, external clients and callers without an account are refused.

With ``Prefer: respond-async`` the map is made in the background instead: 202, with the job at the
``Location`` (``/api/exports/jobs/{job}``, the one job system) and the map at its ``/file`` once done."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.api.exports import prefers_async, submit
from gis_ioc.api.scenarios import aggregate, audited
from gis_ioc.catalog import Catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from gis_ioc.maps import folium_, jobs, printmap, thematic
from gis_ioc.maps.exports import Progress
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.engine import RunHidden

router = APIRouter(prefix="/api/maps", tags=["maps"])
MEDIA = {"json": "application/json", "html": "text/html; charset=utf-8", "png": "image/png", "pdf": "application/pdf"}


def parse_layers(raw: str | None, catalog: Catalog, viewer: Viewer) -> list[str]:
    """Overlay layers: only those the viewer may read (any other is answered as an unknown layer)."""
    layers = [x.strip() for x in (raw or "").split(",") if x.strip()]
    for layer_id in layers:
        layer = catalog.layers.get(layer_id)
        if layer is None or not viewer.can_read(layer):
            known = ", ".join(sorted(v.id for v in viewer.readable(list(catalog))))
            raise InvalidInput(f"layers: {layer_id[:64]!r} is not a layer to overlay; known: {known}")
    return layers


async def province_wide(request: Request, viewer: Viewer) -> None:
    """A map by commune shows every commune's figures: only for viewers who see every commune's detail
    (``detail_communes()`` None). Commune officers see their own communes in scenarios and reports; callers
    without an account, and external clients, see totals only (refusals audited)."""
    if viewer.detail_communes() is None:
        return
    path = f"{request.method} {request.url.path}"
    reason = "maps by commune show every commune's figures"
    await run_in_threadpool(guard.record, request, "denied", path, "denied", reason=reason)
    if viewer.anonymous:
        raise Unauthorized(f"log in (or send an API key): {reason}")
    raise Forbidden(f"{reason}; commune officers see their own communes in scenarios and reports")


def _check(
    catalog: Catalog,
    scenarios: dict[str, Any],
    indicator: str,
    period: str | None,
    run: int | None,
    scenario: str | None,
) -> None:
    """What a map job would otherwise fail on at once, answered before it is queued (as the map says it)."""
    if indicator not in {i.id for i in catalog.indicators.indicators}:
        known = ", ".join(i.id for i in catalog.indicators.indicators)
        raise NotFound(f"no indicator {indicator!r}; known: {known}")
    if run is None and (period is None or not PERIOD_RE.match(period)):
        raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
    if run is None and scenario is not None and scenario not in scenarios:
        raise NotFound(f"no scenario {scenario!r}; known: {', '.join(sorted(scenarios))}")


@router.get("/{indicator}", summary="A thematic map of an indicator by commune", response_model=None)
async def thematic_map(
    request: Request,
    indicator: str,
    period: Annotated[str | None, Query(description="YYYY-Qn or YYYY; required unless run is given")] = None,
    method: Annotated[Literal["quantiles", "natural_breaks", "equal_interval"], Query()] = "quantiles",
    classes: Annotated[int, Query(ge=2, le=9)] = 5,
    layers: Annotated[str | None, Query(description="layers drawn over the map, comma-separated")] = None,
    format: Annotated[Literal["html", "png", "pdf", "json"], Query()] = "html",
    paper: Annotated[Literal["A4", "A3"], Query()] = "A4",
    orientation: Annotated[Literal["landscape", "portrait"], Query()] = "landscape",
    dpi: Annotated[int, Query(ge=72, le=600)] = 300,
    run: Annotated[int | None, Query(description="take the figures from this stored run (one you may see)")] = None,
    scenario: Annotated[
        str | None, Query(description="the scenario to run (default: the first with the indicator)")
    ] = None,
) -> Response:
    """The figures come from a new province run (the caller's) or from a stored run the caller may see
    (404 otherwise); overlay layers are drawn as the caller may read them."""
    app = request.app
    viewer = guard.viewer(request)
    await province_wide(request, viewer)
    overlays = parse_layers(layers, app.state.catalog, viewer)
    if period is None and run is None:
        raise InvalidInput("period is required (e.g. 2026-Q3), or run (a stored scenario run id)")

    def figures(conn: psycopg.Connection[Any]) -> thematic.ThematicMap:
        return thematic.thematic_map(
            conn,
            app.state.catalog,
            app.state.scenarios,
            indicator,
            period,
            viewer=viewer,
            method=method,
            classes=classes,
            run_id=run,
            scenario_id=scenario,
            privacy_threshold=app.state.settings.privacy_threshold,
        )

    def draw(tm: thematic.ThematicMap) -> Any:
        if format == "json":
            return tm.as_dict()
        with scope.transaction(app.state.pool, viewer, app.state.catalog, "read") as conn:  # overlays as read
            if format == "html":
                return folium_.render_html(conn, app.state.catalog, tm, overlays, viewer=viewer)
            return printmap.render_print(
                conn,
                app.state.catalog,
                tm,
                format,
                viewer=viewer,
                paper=paper,
                orientation=orientation,
                dpi=dpi,
                overlays=overlays,
            )

    if prefers_async(request):
        _check(app.state.catalog, app.state.scenarios, indicator, period, run, scenario)  # 400/404 now
        asked = dict(request.query_params.items()) | {"indicator": indicator}

        def work(folder: Path, progress: Progress) -> jobs.Result:
            progress(0, 2)
            try:
                with scope.transaction(app.state.pool, viewer, app.state.catalog, "aggregate") as conn:
                    tm = figures(conn)
            except RunHidden:
                guard.record(request, "denied", f"map run {run}", "denied", reason="run not the viewer's")
                raise
            progress(1, 2)
            body = draw(tm)
            progress(2, 2)
            name = f"{tm.indicator.id}_{tm.period}_{tm.method}.{format}"
            path = jobs.write_body(folder, name, body)
            detail = {"indicator": tm.indicator.id, "period": tm.period, "run": tm.run_id, "format": format}
            headers = {"X-Scenario-Run": str(tm.run_id)}
            return jobs.Result(path, MEDIA[format], name, None, detail, headers)

        return await run_in_threadpool(submit, request, "map", "map", asked, work, prefer=True)

    tm = await audited(request, f"map run {run}", aggregate(request, viewer, figures))
    body = await run_in_threadpool(draw, tm)
    headers = {"X-Scenario-Run": str(tm.run_id)}
    name = f"{tm.indicator.id}_{tm.period}_{tm.method}"
    if format == "json":
        return JSONResponse(body, headers=headers)
    if format == "html":
        return HTMLResponse(body, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="{name}.{format}"'
    return Response(body, media_type=MEDIA[format], headers=headers)
