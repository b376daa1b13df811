"""``/api/exports``: a layer (with a CQL2 filter) or a stored scenario run as GeoPackage, zipped
Shapefile, GeoJSON, CSV or XLSX in any published CRS.

``GET /api/exports/layers/{id}`` and ``GET /api/exports/runs/{id}`` answer the file directly (written
in batches, then streamed with its length so the browser shows progress); ``POST /api/exports``
starts a background job whose progress (rows written / rows in all) is at ``/api/exports/jobs/{job}``
and whose file is at ``/api/exports/jobs/{job}/file``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import access, audit
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.maps import exports
from gis_ioc.maps.exports import ExportResult, Progress
from gis_ioc.maps.jobs import JobManager, JobNotReady
from gis_ioc.publish.params import parse_bbox
from gis_ioc.scenarios.engine import get_run

router = APIRouter(prefix="/api/exports", tags=["exports"])
Work = Callable[[Path, Progress], ExportResult]

FormatQ = Annotated[str, Query(description="gpkg, shp (zipped, UTF-8), geojson, csv, xlsx")]
CrsQ = Annotated[str | None, Query(description="CRS84 (default), EPSG:4326, EPSG:3857, EPSG:9209, EPSG:3405")]


def _jobs(request: Request) -> JobManager:
    manager: JobManager | None = getattr(request.app.state, "export_jobs", None)
    if manager is None:
        manager = JobManager(request.app.state.settings.home / "exports")
        request.app.state.export_jobs = manager
    return manager


def _file(result: ExportResult, cleanup: Path | None) -> FileResponse:
    headers = {"X-Feature-Count": str(result.count), "Content-Crs": f"<{result.crs}>"}
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


def layer_work(request: Request, layer_id: str, params: dict[str, Any]) -> Work:
    """Check a layer export's parameters now (400 before any work) and return the work to do."""
    app = request.app
    guard.require(request, "export")
    layer = guard.readable_layer(request, layer_id)
    own = access.row_communes(guard.who(), layer)
    fmt = exports.check_format(params.get("format") or "gpkg")
    crs = exports.resolve_crs(params.get("crs"))
    filter_crs = exports.resolve_crs(params.get("filter-crs"))
    bbox = parse_bbox(params["bbox"], exports.resolve_crs(params.get("bbox-crs"))) if params.get("bbox") else None
    cql, lang = params.get("filter"), params.get("filter-lang")
    if lang is not None and lang not in ("cql2-text", "cql2-json"):
        raise InvalidInput(f"filter-lang {lang!r} is not offered; use cql2-text or cql2-json")
    if own is not None:  # a commune officer exports their own communes' features only
        cql, lang = own_communes_filter(cql, lang, own)
    who = guard.actor()

    def work(folder: Path, progress: Progress) -> ExportResult:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            source = exports.layer_source(
                conn, app.state.catalog, layer_id, crs, cql=cql, filter_lang=lang, filter_crs=filter_crs, bbox=bbox
            )
            result = exports.export(source, fmt, crs, folder, progress)
            audit.record(
                conn,
                actor=who,
                action="export",
                target=f"layer {layer_id}",
                detail={"format": fmt, "crs": result.crs, "filter": cql, "rows": result.count},
            )
            return result

    return work


def own_communes_filter(cql: str | None, lang: str | None, communes: frozenset[str]) -> tuple[str, str | None]:
    """The caller's filter (if any) narrowed to some communes (five-digit codes, checked when granted)."""
    codes = sorted(communes)
    if lang == "cql2-json" and cql:
        try:
            theirs = json.loads(cql)
        except ValueError as exc:
            raise InvalidInput(f"filter is not JSON: {exc}") from None
        own = {"op": "in", "args": [{"property": "commune_code"}, codes]}
        return json.dumps({"op": "and", "args": [theirs, own]}), lang
    own_text = "commune_code IN (" + ", ".join(f"'{c}'" for c in codes) + ")"
    return (f"({cql}) AND {own_text}" if cql else own_text), "cql2-text"


def run_work(request: Request, run_id: int, params: dict[str, Any]) -> Work:
    app = request.app
    guard.require(request, "export")
    principal = guard.who()
    fmt = exports.check_format(params.get("format") or "gpkg")
    crs = exports.resolve_crs(params.get("crs"))
    flagged = bool(params.get("flagged"))

    def work(folder: Path, progress: Progress) -> ExportResult:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            run = get_run(conn, run_id)
            if run.get("personal") and not access.personal_access(principal):
                raise NotFound(f"no scenario run {run_id}")
            run = access.trim(principal, run)
            result = exports.export(
                exports.run_source(conn, run, crs, flagged_only=flagged), fmt, crs, folder, progress
            )
            audit.record(
                conn,
                actor=principal.username if principal else "anonymous",
                action="export",
                target=f"run {run_id}",
                detail={"format": fmt, "crs": result.crs, "flagged": flagged, "rows": result.count},
            )
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
) -> FileResponse:
    params = {
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
) -> FileResponse:
    work = run_work(request, run_id, {"format": format, "crs": crs, "flagged": flagged})
    return await _answer(work)


_JOB_EXAMPLE = {"layer": "land_parcels", "format": "gpkg", "crs": "EPSG:9209", "filter": "land_use = 'ODT'"}


@router.post("", status_code=202, summary="Start an export in the background; follow its progress")
async def start_export(
    request: Request, body: Annotated[dict[str, Any], Body(examples=[_JOB_EXAMPLE])]
) -> JSONResponse:
    """Body: ``layer`` (with optional ``filter``, ``filter-lang``, ``filter-crs``, ``bbox``, ``bbox-crs``) or
    ``run`` (with optional ``flagged``), and ``format`` and ``crs``."""
    allowed = {"layer", "run", "format", "crs", "filter", "filter-lang", "filter-crs", "bbox", "bbox-crs", "flagged"}
    if unknown := sorted(set(body) - allowed):
        raise InvalidInput(f"unknown members {unknown}; allowed: {sorted(allowed)}")
    if ("layer" in body) == ("run" in body):
        raise InvalidInput("give exactly one of layer (a layer id) or run (a scenario run id)")
    if "layer" in body:
        if not isinstance(body["layer"], str) or body["layer"] not in request.app.state.catalog.layers:
            raise InvalidInput(f"layer {body['layer']!r} is not a layer of the catalog")
        work = layer_work(request, body["layer"], body)
        kind = "layer"
    else:
        if not isinstance(body["run"], int) or isinstance(body["run"], bool):
            raise InvalidInput("run must be a scenario run id (an integer)")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            get_run(conn, body["run"])  # 404 now rather than a failed job
        work = run_work(request, body["run"], body)
        kind = "run"
    job = _jobs(request).submit(kind, body, work)
    base = f"{request.app.state.settings.base_url}/api/exports/jobs"
    return JSONResponse(job.describe(base), status_code=202, headers={"Location": f"/api/exports/jobs/{job.id}"})


@router.get("/jobs/{job_id}", summary="An export job's progress")
async def job_status(request: Request, job_id: str) -> dict[str, Any]:
    return _jobs(request).get(job_id).describe(f"{request.app.state.settings.base_url}/api/exports/jobs")


@router.get("/jobs/{job_id}/file", summary="An export job's file, once done", response_class=FileResponse)
async def job_file(request: Request, job_id: str) -> FileResponse:
    job = _jobs(request).get(job_id)
    if job.status != "done" or job.result is None:
        raise JobNotReady(f"export job {job_id} is {job.status}" + (f": {job.error}" if job.error else ""))
    return _file(job.result, None)
