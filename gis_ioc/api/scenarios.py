"""``/api/scenarios``: list scenarios, run one over a selection, read, rerun and share a stored run;
``/api/emergency``: the emergency scenario.

Every route resolves the viewer once, does its database work in one transaction bound to it
(:func:`gis_ioc.query.scope.transaction`, purpose ``aggregate``: the figures cover every row) and answers
the result as the viewer may see it (:func:`gis_ioc.scenarios.view.trim`). A stored run that is not the
viewer's is answered 404, like one that does not exist (and the refusal is audited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Request
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import audit
from gis_ioc.errors import InvalidInput
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors, view
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import RunHidden, get_run, rerun, run_scenario, share_run
from gis_ioc.scenarios.models import get_scenario

router = APIRouter(prefix="/api/scenarios", tags=["scenarios"])

_EXAMPLE = {"period": "2026-Q3", "radius": {"at": [106.05, 20.65], "metres": 2000}}


async def audited[T](request: Request, what: str, pending: Awaitable[T]) -> T:
    """Audit a refused read of a run that is not the viewer's (still answered 404, as if it did not exist)."""
    try:
        return await pending
    except RunHidden:
        await run_in_threadpool(guard.record, request, "denied", what, "denied", reason="run not the viewer's")
        raise


async def aggregate[T](request: Request, viewer: Viewer, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """``work`` in a thread, in one transaction bound to the viewer for scenario figures."""
    app = request.app

    def call() -> T:
        with scope.transaction(app.state.pool, viewer, app.state.catalog, "aggregate") as conn:
            return work(conn)

    return await run_in_threadpool(call)


@router.get("", summary="The scenarios and their indicators")
async def list_scenarios(request: Request) -> list[dict[str, Any]]:
    scenarios = request.app.state.scenarios
    return [s.model_dump(mode="json") for s in scenarios.values()]


@router.post("/{scenario_id}/run", summary="Run a scenario over a selection for a period (stored)")
async def run(
    request: Request, scenario_id: str, body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])]
) -> dict[str, Any]:
    """Body: ``period`` and exactly one of ``point`` [x, y], ``radius`` {"at": [x, y], "metres": m, at most
    50 km}, ``zone`` (GeoJSON polygon, or "layer:fid"; it must intersect the province, cover at most
    3,000 km² and have at most 10,000 vertices), ``communes`` [codes], ``province`` (true); optional
    ``crs`` for the coordinates (default CRS84; VN-2000 EPSG:9209 and others accepted). The run is
    stored and belongs to the caller. Per-commune detail: every commune for roles that read internal
    layers, a commune officer's own communes, totals only without an account."""
    app = request.app
    viewer = guard.viewer(request)
    scenario = get_scenario(app.state.scenarios, scenario_id)
    period = body.get("period")
    if not isinstance(period, str):
        raise InvalidInput("period is required, e.g. 2026-Q3")

    def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        selection = selectors.from_request(conn, body, app.state.catalog, viewer)
        return run_scenario(
            conn,
            app.state.catalog,
            scenario,
            selection,
            period,
            viewer=viewer,
            privacy_threshold=app.state.settings.privacy_threshold,
        ).as_dict()

    return view.trim(viewer, await aggregate(request, viewer, work))


@router.get("/runs/{run_id}", summary="A stored run, as it was answered")
async def stored_run(request: Request, run_id: int) -> dict[str, Any]:
    """Only for the account that made it, those it is shared with, and administrators (404 otherwise)."""
    viewer = guard.viewer(request)
    return await audited(
        request, f"run {run_id}", aggregate(request, viewer, lambda conn: get_run(conn, run_id, viewer))
    )


@router.post("/runs/{run_id}/rerun", summary="Run a stored run again: reproduce it, or compare with another period")
async def rerun_stored(
    request: Request, run_id: int, body: Annotated[dict[str, Any] | None, Body(examples=[{"period": "2026-Q4"}])] = None
) -> dict[str, Any]:
    """Body (optional): ``period``; without it the run's own period (to reproduce a figure quoted in a
    meeting). Answers the new run and, per indicator, the stored and the new total side by side. Only
    for a run the caller may see (404 otherwise); the new run is the caller's."""
    period = (body or {}).get("period")
    if period is not None and not isinstance(period, str):
        raise InvalidInput("period must be YYYY or YYYY-Qn")
    app = request.app
    viewer = guard.viewer(request)

    def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        return rerun(
            conn,
            app.state.catalog,
            app.state.scenarios,
            run_id,
            period,
            viewer=viewer,
            privacy_threshold=app.state.settings.privacy_threshold,
        )

    return view.trim(viewer, await audited(request, f"rerun {run_id}", aggregate(request, viewer, work)))


@router.put("/runs/{run_id}/shared_with", summary="Share a stored run with other accounts")
async def share(
    request: Request, run_id: int, body: Annotated[dict[str, Any], Body(examples=[{"accounts": ["an.nguyen"]}])]
) -> dict[str, Any]:
    """Body: ``accounts``, the account names the run is shared with (``*``: every account; ``public``:
    everyone, also without an account), replacing the run's shares (``[]``: nobody). Only the account
    that made the run (or an administrator) shares it. Those it is shared with see it as their own
    access allows (their communes, totals only without an account)."""
    principal = guard.require(request, "scenario")
    viewer = guard.viewer(request)
    accounts = body.get("accounts") if isinstance(body, dict) else None
    if not isinstance(accounts, list):
        raise InvalidInput('give accounts: a list of account names, e.g. {"accounts": ["an.nguyen"]}')

    def work(conn: psycopg.Connection[Any]) -> list[str]:
        names = share_run(conn, run_id, viewer, accounts)
        audit.record(
            conn,
            actor=principal.name,
            action="share",
            target=f"run {run_id}",
            address=guard.address(request),
            detail={"with": names},
        )
        return names

    names = await audited(request, f"share run {run_id}", aggregate(request, viewer, work))
    return {"id": run_id, "shared_with": names}


emergency_router = APIRouter(prefix="/api/emergency", tags=["scenarios"])

_INCIDENT_EXAMPLE = {"incident": "flood", "at": [106.05, 20.65], "rings": [500, 1000, 2000]}


@emergency_router.get("", summary="The emergency scenario: incidents, default rings, layers it looks at")
async def emergency_config(request: Request) -> dict[str, Any]:
    config: dict[str, Any] = request.app.state.emergency.model_dump(mode="json")
    return config


@emergency_router.post("/run", summary="People, facilities, shelters and contacts for an incident (stored)")
async def emergency_run(
    request: Request, body: Annotated[dict[str, Any], Body(examples=[_INCIDENT_EXAMPLE])]
) -> dict[str, Any]:
    """Body: ``incident`` (flood, fire, epidemic, environment, rescue) and either ``at`` [x, y] with optional
    ``rings`` (metres, ascending, at most six, the outer one at most 20 km and reaching the province;
    default 500, 1000, 2000) or ``zone`` (a GeoJSON polygon, or "layer:fid", bounded as for scenarios);
    optional ``crs`` for the coordinates (default CRS84; VN-2000 EPSG:9209 and others). A request beyond
    a bound is a 400 naming it. Counts of people and households: exact for accounts granted personal
    data; for everyone else cumulative per ring, rounded to 10, and withheld when they rest on fewer
    buildings than the privacy threshold (see ``disclosure`` in the answer). Officials' contacts only
    for leaders and administrators; per-commune figures as for scenarios."""
    app = request.app
    viewer = guard.viewer(request)

    def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        incident = incident_from_request(conn, body, app.state.emergency, app.state.catalog, viewer)
        return run_emergency(
            conn,
            app.state.catalog,
            app.state.emergency,
            incident,
            viewer=viewer,
            privacy_threshold=app.state.settings.privacy_threshold,
        ).as_dict()

    return view.trim(viewer, await aggregate(request, viewer, work))
