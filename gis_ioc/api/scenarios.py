"""``/api/scenarios``: list scenarios, run one over a selection, read a stored run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from starlette.concurrency import run_in_threadpool

from gis_ioc.auth import access
from gis_ioc.auth.context import CURRENT
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import get_run, rerun, run_scenario
from gis_ioc.scenarios.models import get_scenario

router = APIRouter(prefix="/api/scenarios", tags=["scenarios"])

_EXAMPLE = {"period": "2026-Q3", "radius": {"at": [106.05, 20.65], "metres": 2000}}


@router.get("", summary="The scenarios and their indicators")
async def list_scenarios(request: Request) -> list[dict[str, Any]]:
    scenarios = request.app.state.scenarios
    return [s.model_dump(mode="json") for s in scenarios.values()]


@router.post("/{scenario_id}/run", summary="Run a scenario over a selection for a period (stored)")
async def run(
    request: Request, scenario_id: str, body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])]
) -> dict[str, Any]:
    """Body: ``period`` and exactly one of ``point`` [x, y], ``radius`` {"at": [x, y], "metres": m},
    ``zone`` (GeoJSON polygon, or "layer:fid"), ``communes`` [codes], ``province`` (true); optional
    ``crs`` for the coordinates (default CRS84; VN-2000 EPSG:9209 and others accepted)."""
    app = request.app
    scenario = get_scenario(app.state.scenarios, scenario_id)
    period = body.get("period")
    if not isinstance(period, str):
        raise InvalidInput("period is required, e.g. 2026-Q3")

    def work() -> dict[str, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            selection = selectors.from_request(conn, body, app.state.catalog)
            return run_scenario(
                conn,
                app.state.catalog,
                scenario,
                selection,
                period,
                privacy_threshold=app.state.settings.privacy_threshold,
                personal_access=access.personal_access(CURRENT.get()),
            ).as_dict()

    return access.trim(CURRENT.get(), await run_in_threadpool(work))


@router.get("/runs/{run_id}", summary="A stored run, as it was answered")
async def stored_run(request: Request, run_id: int) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            run = get_run(conn, run_id)
        if run.get("personal") and not access.personal_access(CURRENT.get()):
            # made with access to personal data: not for those without it
            raise NotFound(f"no scenario run {run_id}")
        return run

    return access.trim(CURRENT.get(), await run_in_threadpool(work))


@router.post("/runs/{run_id}/rerun", summary="Run a stored run again: reproduce it, or compare with another period")
async def rerun_stored(
    request: Request, run_id: int, body: Annotated[dict[str, Any] | None, Body(examples=[{"period": "2026-Q4"}])] = None
) -> dict[str, Any]:
    """Body (optional): ``period``; without it the run's own period (to reproduce a figure quoted in a
    meeting). Answers the new run and, per indicator, the stored and the new total side by side."""
    period = (body or {}).get("period")
    if period is not None and not isinstance(period, str):
        raise InvalidInput("period must be YYYY or YYYY-Qn")
    app = request.app

    def work() -> dict[str, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            return rerun(
                conn,
                app.state.catalog,
                app.state.scenarios,
                run_id,
                period,
                privacy_threshold=app.state.settings.privacy_threshold,
                personal_access=access.personal_access(CURRENT.get()),
            )

    return access.trim(CURRENT.get(), await run_in_threadpool(work))


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
    ``rings`` (metres, ascending, at most six; default 500, 1000, 2000) or ``zone`` (a GeoJSON polygon, or
    "layer:fid"); optional ``crs`` for the coordinates (default CRS84; VN-2000 EPSG:9209 and others)."""
    app = request.app

    def work() -> dict[str, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            incident = incident_from_request(conn, body, app.state.emergency, app.state.catalog)
            return run_emergency(
                conn,
                app.state.catalog,
                app.state.emergency,
                incident,
                privacy_threshold=app.state.settings.privacy_threshold,
                personal_access=access.personal_access(CURRENT.get()),
            ).as_dict()

    return access.trim(CURRENT.get(), await run_in_threadpool(work))
