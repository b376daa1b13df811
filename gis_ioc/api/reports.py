"""``/api/reports``: a meeting report as PDF, DOCX, HTML or JSON, made from new scenario runs for a
period (``period``, ``sector``, ``commune``) or rebuilt from stored runs (``runs``, ones the caller may
see). Province reports and reports from stored runs are for roles that see every commune in detail;
commune officers report on their own communes; callers without an account and external clients on none.

With ``Prefer: respond-async`` the report is made in the background instead: 202, with the job at the
``Location`` (``/api/exports/jobs/{job}``, the one job system) and the report at its ``/file`` once done."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.api.exports import prefers_async, submit
from gis_ioc.api.scenarios import aggregate, audited
from gis_ioc.errors import Forbidden, InvalidInput, Unauthorized
from gis_ioc.maps import jobs
from gis_ioc.maps import report as reports
from gis_ioc.maps.exports import Progress
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.engine import RunHidden

router = APIRouter(prefix="/api/reports", tags=["reports"])
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MEDIA = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf", "docx": DOCX}


def parse_runs(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"runs {text!r} must be comma-separated run ids, e.g. 12,13") from None
    if not ids or len(ids) > 50:
        raise InvalidInput("runs: give between 1 and 50 run ids")
    return ids


async def _may_report(request: Request, viewer: Viewer, communes: list[str] | None, run_ids: list[int] | None) -> None:
    """Reports over the province, or rebuilt from stored runs, are for viewers who see every commune's
    detail; commune officers report on their own communes; callers without an account and external
    clients (totals only) get none (refusals audited)."""
    own = viewer.detail_communes()
    if own is None or (own and run_ids is None and communes and set(communes) <= own):
        return
    path = f"{request.method} {request.url.path}"
    await run_in_threadpool(guard.record, request, "denied", path, "denied", reason="report beyond own communes")
    if viewer.anonymous:
        raise Unauthorized("log in (or send an API key) to make a report")
    if not own:
        raise Forbidden("reports show communes' figures; this account sees totals only")
    raise Forbidden(f"commune officers report on their own communes: commune={', '.join(sorted(own))}")


@router.get("", summary="A meeting report (PDF, DOCX, HTML, JSON)", response_model=None)
async def report(
    request: Request,
    period: Annotated[str | None, Query(description="run the scenarios now for this period, e.g. 2026-Q3")] = None,
    sector: Annotated[list[str] | None, Query(description="only these sectors (repeat)")] = None,
    commune: Annotated[
        list[str] | None, Query(description="only these communes (repeat); default the province")
    ] = None,
    runs: Annotated[str | None, Query(description="rebuild from these stored run ids (ones you may see)")] = None,
    format: Annotated[Literal["pdf", "docx", "html", "json"], Query()] = "pdf",
    maps: Annotated[bool, Query(description="include thematic maps")] = True,
) -> Response:
    """New runs (the caller's) for a period, or a report rebuilt from stored runs the caller may see
    (404 for any other, as if it did not exist)."""
    app = request.app
    viewer = guard.viewer(request)
    if (period is None) == (runs is None):
        raise InvalidInput("give period (run the scenarios now) or runs (rebuild from stored run ids)")
    run_ids = parse_runs(runs) if runs is not None else None
    await _may_report(request, viewer, commune, run_ids)

    def build(conn: psycopg.Connection[Any]) -> reports.Report:
        ids = run_ids
        if ids is None:
            ids = reports.run_for_report(
                conn,
                app.state.catalog,
                app.state.scenarios,
                str(period),
                viewer=viewer,
                sectors=sector,
                communes=commune,
                privacy_threshold=app.state.settings.privacy_threshold,
            )
        return reports.build_report(
            conn,
            app.state.catalog,
            ids,
            viewer=viewer,
            sectors=sector,
            maps=maps and format != "json",
            scenarios=app.state.scenarios,
        )

    def render(rep: reports.Report) -> Any:
        if format == "json":
            body = asdict(rep)
            body["maps"] = [{k: v for k, v in m.items() if k != "png"} for m in rep.maps]
            return body
        if format == "docx":
            return reports.render_docx(rep)
        html = reports.render_html(rep)
        return html if format == "html" else reports.render_pdf(rep, html, chromium=app.state.settings.chromium)

    if prefers_async(request):
        asked: dict[str, Any] = {"period": period, "sector": sector, "commune": commune, "runs": runs}
        asked |= {"format": format, "maps": maps}

        def work(folder: Path, progress: Progress) -> jobs.Result:
            progress(0, 2)
            try:
                with scope.transaction(app.state.pool, viewer, app.state.catalog, "aggregate") as conn:
                    rep = build(conn)
            except RunHidden:
                what = f"report runs {runs}"[:200]
                guard.record(request, "denied", what, "denied", reason="run not the viewer's")
                raise
            progress(1, 2)
            body = render(rep)
            progress(2, 2)
            name = f"bao_cao_{rep.period}_runs_{'-'.join(str(i) for i in rep.run_ids)}.{format}"
            path = jobs.write_body(folder, name, body)
            detail = {"period": rep.period, "runs": rep.run_ids, "format": format}
            headers = {"X-Scenario-Runs": ",".join(str(i) for i in rep.run_ids)}
            return jobs.Result(path, MEDIA[format], name, None, detail, headers)

        return await run_in_threadpool(submit, request, "report", "report", asked, work, prefer=True)

    rep = await audited(request, f"report runs {runs}"[:200], aggregate(request, viewer, build))
    body = await run_in_threadpool(render, rep)
    headers = {"X-Scenario-Runs": ",".join(str(i) for i in rep.run_ids)}
    name = f"bao_cao_{rep.period}_runs_{'-'.join(str(i) for i in rep.run_ids)}"
    if format == "json":
        return JSONResponse(body, headers=headers)
    if format == "html":
        return HTMLResponse(body, headers=headers)
    headers["Content-Disposition"] = f'{"inline" if format == "pdf" else "attachment"}; filename="{name}.{format}"'
    return Response(body, media_type="application/pdf" if format == "pdf" else DOCX, headers=headers)
