"""``/api/maps/{indicator}``: a thematic map of an indicator by commune for a period, as JSON (the
classification), an offline HTML map (folium), or a print map (PNG, PDF)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.auth import access
from gis_ioc.auth.context import CURRENT
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import Forbidden, InvalidInput
from gis_ioc.maps import folium_, printmap, thematic

router = APIRouter(prefix="/api/maps", tags=["maps"])


def parse_layers(raw: str | None, catalog: Any) -> list[str]:
    layers = [x.strip() for x in (raw or "").split(",") if x.strip()]
    for layer_id in layers:
        layer = catalog.layers.get(layer_id)
        if layer is None or not access.can_read(CURRENT.get(), layer):
            known = ", ".join(sorted(k for k, v in catalog.layers.items() if access.can_read(CURRENT.get(), v)))
            raise InvalidInput(f"layers: {layer_id!r} is not a layer to overlay; known: {known}")
    return layers


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
    run: Annotated[int | None, Query(description="take the figures from this stored run")] = None,
    scenario: Annotated[
        str | None, Query(description="the scenario to run (default: the first with the indicator)")
    ] = None,
) -> Response:
    app = request.app
    if access.detail_communes(CURRENT.get()) is not None:
        raise Forbidden("a map by commune shows every commune's figures; commune officers see their own in scenarios")
    overlays = parse_layers(layers, app.state.catalog)
    if period is None and run is None:
        raise InvalidInput("period is required (e.g. 2026-Q3), or run (a stored scenario run id)")

    def work() -> tuple[thematic.ThematicMap, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            tm = thematic.thematic_map(
                conn,
                app.state.catalog,
                app.state.scenarios,
                indicator,
                period,
                method=method,
                classes=classes,
                run_id=run,
                scenario_id=scenario,
                privacy_threshold=app.state.settings.privacy_threshold,
            )
            if format == "json":
                return tm, tm.as_dict()
            if format == "html":
                return tm, folium_.render_html(conn, app.state.catalog, tm, overlays)
            return tm, printmap.render_print(
                conn, app.state.catalog, tm, format, paper=paper, orientation=orientation, dpi=dpi, overlays=overlays
            )

    tm, body = await run_in_threadpool(work)
    headers = {"X-Scenario-Run": str(tm.run_id)}
    name = f"{tm.indicator.id}_{tm.period}_{tm.method}"
    if format == "json":
        return JSONResponse(body, headers=headers)
    if format == "html":
        return HTMLResponse(body, headers=headers)
    media = "image/png" if format == "png" else "application/pdf"
    headers["Content-Disposition"] = f'inline; filename="{name}.{format}"'
    return Response(body, media_type=media, headers=headers)
