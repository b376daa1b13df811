"""``/api/reports``: a meeting report as PDF, DOCX, HTML or JSON, made from new scenario runs for a
period (``period``, ``sector``, ``commune``) or rebuilt from stored runs (``runs``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import access
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import Forbidden, InvalidInput, NotFound
from gis_ioc.maps import report as reports
from gis_ioc.scenarios.engine import get_run

router = APIRouter(prefix="/api/reports", tags=["reports"])
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def parse_runs(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"runs {text!r} must be comma-separated run ids, e.g. 12,13") from None
    if not ids or len(ids) > 50:
        raise InvalidInput("runs: give between 1 and 50 run ids")
    return ids


@router.get("", summary="A meeting report (PDF, DOCX, HTML, JSON)", response_model=None)
async def report(
    request: Request,
    period: Annotated[str | None, Query(description="run the scenarios now for this period, e.g. 2026-Q3")] = None,
    sector: Annotated[list[str] | None, Query(description="only these sectors (repeat)")] = None,
    commune: Annotated[
        list[str] | None, Query(description="only these communes (repeat); default the province")
    ] = None,
    runs: Annotated[str | None, Query(description="rebuild from these stored run ids, e.g. 12,13")] = None,
    format: Annotated[Literal["pdf", "docx", "html", "json"], Query()] = "pdf",
    maps: Annotated[bool, Query(description="include thematic maps")] = True,
) -> Response:
    app = request.app
    if (period is None) == (runs is None):
        raise InvalidInput("give period (run the scenarios now) or runs (rebuild from stored run ids)")
    run_ids = parse_runs(runs) if runs is not None else None
    own = access.detail_communes(guard.who())
    # commune officers: reports on their own communes only
    if own is not None and (run_ids is not None or not commune or not set(commune) <= own):
        raise Forbidden(f"commune officers report on their own communes: commune={', '.join(sorted(own))}")
    if run_ids is not None and not access.personal_access(guard.who()):
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            if any(get_run(conn, i).get("personal") for i in run_ids):
                raise NotFound("no such scenario runs")

    def work() -> tuple[reports.Report, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            ids = run_ids
            if ids is None:
                ids = reports.run_for_report(
                    conn,
                    app.state.catalog,
                    app.state.scenarios,
                    str(period),
                    sectors=sector,
                    communes=commune,
                    privacy_threshold=app.state.settings.privacy_threshold,
                )
            rep = reports.build_report(
                conn,
                app.state.catalog,
                ids,
                sectors=sector,
                maps=maps and format != "json",
                scenarios=app.state.scenarios,
            )
        if format == "json":
            body = asdict(rep)
            body["maps"] = [{k: v for k, v in m.items() if k != "png"} for m in rep.maps]
            return rep, body
        if format == "docx":
            return rep, reports.render_docx(rep)
        html = reports.render_html(rep)
        return rep, html if format == "html" else reports.render_pdf(rep, html, chromium=app.state.settings.chromium)

    rep, body = await run_in_threadpool(work)
    headers = {"X-Scenario-Runs": ",".join(str(i) for i in rep.run_ids)}
    name = f"bao_cao_{rep.period}_runs_{'-'.join(str(i) for i in rep.run_ids)}"
    if format == "json":
        return JSONResponse(body, headers=headers)
    if format == "html":
        return HTMLResponse(body, headers=headers)
    headers["Content-Disposition"] = f'{"inline" if format == "pdf" else "attachment"}; filename="{name}.{format}"'
    return Response(body, media_type="application/pdf" if format == "pdf" else DOCX, headers=headers)
