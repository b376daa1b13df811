"""``/api/exports``: a layer (with a CQL2 filter) or a stored scenario run (a sector run, or an
emergency run: one feature per commune) as GeoPackage, zipped Shapefile, GeoJSON, CSV or XLSX in any
published CRS; spreadsheets hold texts as texts, never formulas (:mod:`gis_ioc.maps.exports`).

``GET /api/exports/layers/{id}`` and ``GET /api/exports/runs/{id}`` answer the file directly (written
in batches, then streamed with its length so the browser shows progress); ``POST /api/exports``
starts a background job whose progress (rows written / rows in all) is at ``/api/exports/jobs/{job}``
and whose file is at ``/api/exports/jobs/{job}/file``; ``DELETE /api/exports/jobs/{job}`` dismisses it
(stops it, or removes it with its file): all only for the account that started it (and administrators);
anyone else gets 404. Jobs live in PostgreSQL (:mod:`gis_ioc.maps.jobs`): any server process answers
about any job. The same job routes serve maps and reports asked with ``Prefer: respond-async``.

Layer exports read through the one read path (:mod:`gis_ioc.query`), in a transaction bound to the
viewer: the CQL2 filter is parsed into cql2-json and compiled with bound values in its own parentheses,
ANDed with the viewer's rows (a commune officer's own communes), so no filter text can widen them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import audit
from gis_ioc.catalog import Catalog
from gis_ioc.crs import PublishedCrs
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.maps import exports, jobs
from gis_ioc.maps.exports import ExportResult, Progress
from gis_ioc.maps.jobs import Job, JobManager
from gis_ioc.publish.cql import Params, parse_filter
from gis_ioc.publish.params import parse_bbox
from gis_ioc.query import rows, scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.engine import get_run

router = APIRouter(prefix="/api/exports", tags=["exports"])
Work = Callable[[Path, Progress], ExportResult]

FormatQ = Annotated[str, Query(description="gpkg, shp (zipped, UTF-8), geojson, csv, xlsx")]
CrsQ = Annotated[str | None, Query(description="CRS84 (default), EPSG:4326, EPSG:3857, EPSG:9209, EPSG:3405")]
FILTER_LANGS = ("cql2-text", "cql2-json")


_MAKING = threading.Lock()


def job_manager(request: Request) -> JobManager:
    """This application's job manager (made at startup, or on first use; closed by the lifespan)."""
    return job_manager_of(request.app)


def job_manager_of(app: Any) -> JobManager:
    manager: JobManager | None = getattr(app.state, "export_jobs", None)
    if manager is None:
        with _MAKING:
            manager = getattr(app.state, "export_jobs", None)
            if manager is None:
                settings = app.state.settings
                manager = JobManager(app.state.pool, settings.home, settings.job_workers, settings.job_retention_hours)
                app.state.export_jobs = manager
    return manager


def _base(request: Request) -> str:
    return f"{request.app.state.settings.base_url}/api/exports/jobs"


def prefers_async(request: Request) -> bool:
    """Did the caller ask ``Prefer: respond-async`` (RFC 7240)?"""
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(p.split(";")[0].split("=")[0].strip().lower() == "respond-async" for p in prefer.split(","))


def submit(
    request: Request, type: str, kind: str, asked: dict[str, Any], work: jobs.Work, *, prefer: bool = False
) -> JSONResponse:
    """Start ``work`` as the caller's background job; 202 with the job and its location."""
    viewer = guard.viewer(request)
    job = job_manager(request).submit(kind, asked, work, owner=viewer.username, type=type, personal=viewer.personal)
    headers = {"Location": f"/api/exports/jobs/{job.id}", "Cache-Control": "private"}
    if prefer:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(job.describe(_base(request)), status_code=202, headers=headers)


def as_job(work: Work) -> jobs.Work:
    """An export's work as a job's: its file with the export's description and download headers."""

    def run(folder: Path, progress: Progress) -> jobs.Result:
        result = work(folder, progress)
        headers = {"X-Feature-Count": str(result.count), "Content-Crs": f"<{result.crs}>"}
        return jobs.Result(result.path, result.media_type, result.filename, result.count, result.describe(), headers)

    return run


def _file(result: ExportResult, cleanup: Path | None) -> FileResponse:
    headers = {"X-Feature-Count": str(result.count), "Content-Crs": f"<{result.crs}>", "Cache-Control": "private"}
    task = BackgroundTask(shutil.rmtree, cleanup, ignore_errors=True) if cleanup else None
    return FileResponse(
        result.path, media_type=result.media_type, filename=result.filename, headers=headers, background=task
    )


async def _answer(work: Work) -> FileResponse:
    """Write the export into a temporary folder and answer it; the folder goes once the file is sent."""
    folder = Path(tempfile.mkdtemp(prefix="gis-ioc-export-"))
    try:
        result = await run_in_threadpool(work, folder, lambda done, total: None)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _file(result, folder)


@dataclass(frozen=True)
class LayerExport:
    """A layer export's checked parameters."""

    layer_id: str
    fmt: str
    crs: PublishedCrs
    filter: dict[str, Any] | None
    filter_text: str | None
    filter_crs: PublishedCrs
    bbox: tuple[float, float, float, float] | None
    #: Vietnamese labels beside codes (a ``NAME_vi`` column each)
    labels: bool = False


def _filter_text(value: Any, lang: Any) -> tuple[str | None, str | None]:
    """The filter as text (a cql2-json object in a POST body is written out) and its language."""
    if lang is not None and lang not in FILTER_LANGS:
        raise InvalidInput(f"filter-lang {lang!r} is not offered; use cql2-text or cql2-json")
    if value is None:
        if lang is not None:
            raise InvalidInput("filter-lang given without filter")
        return None, None
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False), "cql2-json"
    if not isinstance(value, str):
        raise InvalidInput("filter must be CQL2 text or a cql2-json object")
    return value, lang


def check_layer_export(viewer: Viewer, catalog: Catalog, layer_id: str, params: dict[str, Any]) -> LayerExport:
    """A layer export's parameters checked now (400 before any work): the filter parsed into cql2-json
    and compiled once against the layer as the viewer sees it (a personal field is unknown to those
    not granted personal data)."""
    layer = rows.readable_layer(viewer, catalog, layer_id)
    fmt = exports.check_format(params.get("format") or "gpkg")
    crs = exports.resolve_crs(params.get("crs"))
    filter_crs = exports.resolve_crs(params.get("filter-crs"))
    if params.get("bbox-crs") and not params.get("bbox"):
        raise InvalidInput("bbox-crs given without bbox")
    bbox = parse_bbox(str(params["bbox"]), exports.resolve_crs(params.get("bbox-crs"))) if params.get("bbox") else None
    text, lang = _filter_text(params.get("filter"), params.get("filter-lang"))
    node = parse_filter(text, lang) if text is not None else None
    rows.where(viewer, layer, Params(), filter=node, filter_crs=filter_crs)  # unknown fields, bad values: 400
    return LayerExport(layer.id, fmt, crs, node, text, filter_crs, bbox, labels=_flag(params, "labels"))


def _flag(params: dict[str, Any], name: str) -> bool:
    """A yes/no parameter: true/false in a JSON body, true/false/1/0 in a query string."""
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if value in ("true", "1"):
        return True
    if value in ("false", "0", None):
        return False
    raise InvalidInput(f"{name} must be true or false")


def layer_work(request: Request, layer_id: str, params: dict[str, Any]) -> Work:
    """Check a layer export's parameters now (400 before any work) and return the work to do."""
    guard.require(request, "export")
    viewer = guard.viewer(request)
    app = request.app
    if layer_id in app.state.catalog.layers and not viewer.can_read(app.state.catalog.layers[layer_id]):
        guard.record(request, "denied", f"layer {layer_id}", "denied", reason="layer not readable")
    try:
        job = check_layer_export(viewer, app.state.catalog, layer_id, params)
    except NotFound:
        raise NotFound(f"no layer {layer_id!r}") from None
    where = guard.address(request)

    def work(folder: Path, progress: Progress) -> ExportResult:
        # reads rows and writes the audit record in one transaction: on the primary (writes=True)
        with scope.transaction(app.state.pool, viewer, app.state.catalog, "read", writes=True) as conn:
            source = exports.layer_source(
                conn, app.state.catalog, viewer, job.layer_id, job.crs,
                filter=job.filter, filter_text=job.filter_text, filter_crs=job.filter_crs, bbox=job.bbox,
                labels=job.labels,
            )  # fmt: skip
            result = exports.export(source, job.fmt, job.crs, folder, progress)
            detail = {"format": job.fmt, "crs": result.crs, "filter": job.filter_text, "rows": result.count}
            audit.record(
                conn, actor=viewer.name, action="export", target=f"layer {job.layer_id}", address=where, detail=detail
            )
            return result

    return work


def run_work(request: Request, run_id: int, params: dict[str, Any]) -> Work:
    guard.require(request, "export")
    viewer = guard.viewer(request)
    app = request.app
    fmt = exports.check_format(params.get("format") or "gpkg")
    crs = exports.resolve_crs(params.get("crs"))
    flagged = bool(params.get("flagged"))
    labels = _flag(params, "labels")
    titles = {key: scenario.title.vi for key, scenario in app.state.scenarios.items()}
    where = guard.address(request)
    with scope.transaction(app.state.pool, viewer, app.state.catalog, "read") as conn:
        exports.check_run(get_run(conn, run_id, viewer), flagged)  # 404 or 400 now rather than a failed job

    def work(folder: Path, progress: Progress) -> ExportResult:
        with scope.transaction(app.state.pool, viewer, app.state.catalog, "read", writes=True) as conn:
            run = get_run(conn, run_id, viewer)  # the viewer's or shared with them; trimmed for them
            source = exports.run_source(conn, run, crs, flagged_only=flagged, labels=labels, scenario_titles=titles)
            result = exports.export(source, fmt, crs, folder, progress)
            detail = {"format": fmt, "crs": result.crs, "flagged": flagged, "rows": result.count}
            audit.record(conn, actor=viewer.name, action="export", target=f"run {run_id}", address=where, detail=detail)
            return result

    return work


@router.get("/layers/{layer_id}", summary="A layer (optionally filtered) as a file", response_class=FileResponse)
async def export_layer(
    request: Request,
    layer_id: str,
    format: FormatQ = "gpkg",
    crs: CrsQ = None,
    filter: Annotated[str | None, Query(description="CQL2 filter, as for the OGC API items")] = None,
    filter_lang: Annotated[str | None, Query(alias="filter-lang")] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs")] = None,
    bbox: Annotated[str | None, Query()] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    labels: Annotated[bool, Query(description="Vietnamese labels beside codes (a NAME_vi column each)")] = False,
) -> FileResponse:
    params = {
        "labels": labels,
        "format": format,
        "crs": crs,
        "filter": filter,
        "filter-lang": filter_lang,
        "filter-crs": filter_crs,
        "bbox": bbox,
        "bbox-crs": bbox_crs,
    }
    work = layer_work(request, layer_id, params)
    return await _answer(work)


@router.get("/runs/{run_id}", summary="A stored scenario run, one feature per commune", response_class=FileResponse)
async def export_run(
    request: Request,
    run_id: int,
    format: FormatQ = "gpkg",
    crs: CrsQ = None,
    flagged: Annotated[bool, Query(description="only the communes with a target not met")] = False,
    labels: Annotated[bool, Query(description="Vietnamese labels beside codes (a NAME_vi column each)")] = False,
) -> FileResponse:
    params = {"format": format, "crs": crs, "flagged": flagged, "labels": labels}
    work = await run_in_threadpool(run_work, request, run_id, params)
    return await _answer(work)


_JOB_EXAMPLE = {"layer": "land_parcels", "format": "gpkg", "crs": "EPSG:9209", "filter": "land_use = 'ODT'"}
_TEXT_MEMBERS = ("format", "crs", "filter-lang", "filter-crs", "bbox", "bbox-crs")
_JOB_MEMBERS = {
    "layer", "run", "format", "crs", "filter", "filter-lang", "filter-crs", "bbox", "bbox-crs", "flagged", "labels",
}  # fmt: skip


@router.post("", status_code=202, summary="Start an export in the background; follow its progress")
async def start_export(
    request: Request, body: Annotated[dict[str, Any], Body(examples=[_JOB_EXAMPLE])]
) -> JSONResponse:
    """Body: ``layer`` (with optional ``filter``, ``filter-lang``, ``filter-crs``, ``bbox``, ``bbox-crs``) or
    ``run`` (with optional ``flagged``), and ``format``, ``crs`` and ``labels`` (Vietnamese labels beside
    codes)."""
    if unknown := sorted(set(body) - _JOB_MEMBERS):
        raise InvalidInput(f"unknown members {unknown}; allowed: {sorted(_JOB_MEMBERS)}")
    if ("layer" in body) == ("run" in body):
        raise InvalidInput("give exactly one of layer (a layer id) or run (a scenario run id)")
    if wrong := sorted(k for k in _TEXT_MEMBERS if body.get(k) is not None and not isinstance(body[k], str)):
        raise InvalidInput(f'{", ".join(wrong)}: give text, e.g. "format": "gpkg", "bbox": "105.9,20.6,106.1,20.8"')
    for name in ("flagged", "labels"):
        if not isinstance(body.get(name, False), bool):
            raise InvalidInput(f"{name} must be true or false")
    if "layer" in body:
        if not isinstance(body["layer"], str):
            raise InvalidInput("layer must be a layer id (text)")
        work = layer_work(request, body["layer"], body)  # an unknown or unreadable layer: 404 alike
        kind = "layer"
    else:
        if not isinstance(body["run"], int) or isinstance(body["run"], bool):
            raise InvalidInput("run must be a scenario run id (an integer)")
        work = await run_in_threadpool(run_work, request, body["run"], body)
        kind = "run"
    return await run_in_threadpool(submit, request, "export", kind, body, as_job(work))


async def _job(request: Request, job_id: str) -> Job:
    return await run_in_threadpool(job_manager(request).get, job_id, guard.viewer(request))


@router.get("/jobs/{job_id}", summary="A job's progress: an export, map or report (its owner's only)")
async def job_status(request: Request, job_id: str) -> JSONResponse:
    job = await _job(request, job_id)
    return JSONResponse(job.describe(_base(request)), headers={"Cache-Control": "private"})


@router.get("/jobs/{job_id}/file", summary="A job's file, once done (its owner's only)")
async def job_file(request: Request, job_id: str) -> FileResponse:
    job = await _job(request, job_id)
    path = job.file()
    assert job.result is not None
    headers = {**job.result.headers, "Cache-Control": "private"}
    return FileResponse(path, media_type=job.result.media_type, filename=job.result.filename, headers=headers)


@router.delete("/jobs/{job_id}", summary="Dismiss a job: stop it, or remove it and its file (its owner's only)")
async def dismiss_job(request: Request, job_id: str) -> JSONResponse:
    """A queued or running job stops (whichever server process runs it) and is kept as ``dismissed``
    until the retention removes it; a finished one is removed now with its file."""
    viewer = guard.viewer(request)
    job = await run_in_threadpool(job_manager(request).dismiss, job_id, viewer)
    await run_in_threadpool(guard.record, request, "dismiss", f"{job.type} job {job.id}")
    return JSONResponse(job.describe(_base(request)), headers={"Cache-Control": "private"})
