"""``/api/loads``: upload a file into a layer (multipart), the load history, one load, approve, roll back.

The upload runs the same :func:`gis_ioc.loaders.vector.load_vector` as ``gis-ioc load vector``.
A refused load answers 422 ``application/problem+json`` with the whole quality report under ``report``.
There are no accounts yet: keep the server on a trusted network (README).
"""

from __future__ import annotations

import html
import json
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import access
from gis_ioc.auth.sessions import Principal
from gis_ioc.database.connection import connect, translate_errors
from gis_ioc.errors import InvalidInput
from gis_ioc.http import problem
from gis_ioc.loaders import history
from gis_ioc.loaders.sources import FORMATS
from gis_ioc.loaders.vector import MODES, LoaderConfig, LoadOptions, LoadRejected, LoadReport, load_vector
from gis_ioc.settings import Settings

router = APIRouter(prefix="/api/loads", tags=["loads"])
_CHUNK = 1 << 20


def _save_upload(upload: UploadFile, settings: Settings, folder: Path) -> Path:
    name = Path(upload.filename or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"file {name!r}: unknown format {suffix or '(no extension)'}; accepted: {', '.join(FORMATS)}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"upload{suffix}"
    limit = settings.load_max_upload_mb * 1024 * 1024
    size = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"file {name!r} is larger than {settings.load_max_upload_mb} MB (GIS_IOC_LOAD_MAX_UPLOAD_MB)"
                )
            out.write(chunk)
    return target


def _mapping(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise InvalidInput(f"map {pair!r}: write SOURCE_COLUMN=FIELD")
        out[src] = dst
    return out


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"source_date {value!r} is not a date (YYYY-MM-DD)") from None


def report_html(report: dict[str, Any]) -> str:
    """The report as a small HTML page (for a browser or an e-mail)."""
    e = html.escape
    rows = "".join(
        f"<tr class='{e(i['severity'])}'><td>{i.get('row', '')}</td><td>{e(i.get('field', ''))}</td>"
        f"<td>{e(i['severity'])}</td><td>{e(i['message'])}</td></tr>"
        for i in report.get("issues", [])
    )
    file = report.get("file", {})
    return (
        "<!doctype html><html lang='vi'><meta charset='utf-8'><title>Báo cáo nạp dữ liệu / Load report</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".error{background:#fdd}.warning{background:#ffd}.note{background:#eef}</style>"
        f"<h1>{e(str(file.get('name', '')))} → {e(str(report.get('layer', '')))}</h1>"
        f"<p><b>{e(str(report.get('status', '')))}</b>: {e(str(report.get('message', '')))}</p>"
        f"<p>{report.get('features', 0)} features; CRS {e(str(report.get('crs', {}).get('source')))}; "
        f"{report.get('errors', 0)} errors, {report.get('warnings', 0)} warnings</p>"
        f"<table><tr><th>row</th><th>field</th><th>severity</th><th>problem</th></tr>{rows}</table></html>"
    )


@router.post("", summary="Load a file into a layer (multipart upload); features are drafts until approved")
async def upload(
    request: Request,
    file: Annotated[
        UploadFile | None, File(description="GeoJSON, zipped Shapefile, GPKG, KML/KMZ, CSV, FGB, DXF")
    ] = None,
    layer: Annotated[str | None, Form(description="Layer id")] = None,
    crs: Annotated[str | None, Form(description="Source CRS, e.g. EPSG:9209")] = None,
    mode: Annotated[str, Form()] = "append",
    source_unit: Annotated[str | None, Form()] = None,
    map: Annotated[list[str] | None, Form(description="SOURCE_COLUMN=FIELD, repeatable")] = None,
    encoding: Annotated[str | None, Form()] = None,
    source_layer: Annotated[str | None, Form()] = None,
    where: Annotated[str | None, Form()] = None,
    source_date: Annotated[str | None, Form()] = None,
    accept_warnings: Annotated[bool, Form()] = False,
    dry_run: Annotated[bool, Form()] = False,
    f: str | None = None,
) -> Any:
    settings: Settings = request.app.state.settings
    principal = guard.require(request, "load")
    if file is None or not file.filename:
        raise InvalidInput("no file: send the data as the multipart field 'file'")
    if not layer:
        raise InvalidInput("no layer: send the layer id as the form field 'layer' (see /ogc/collections)")
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r}: use one of {', '.join(MODES)}")
    options = LoadOptions(
        layer_id=layer,
        crs=crs or None,
        mode=mode,
        source_unit=source_unit or None,
        mapping=_mapping(map or []),
        encoding=encoding or None,
        source_layer=source_layer or None,
        where=where or None,
        source_date=_date(source_date),
        accept_warnings=accept_warnings,
        dry_run=dry_run,
        loaded_by=principal.username,
        file_name=Path(file.filename).name,
    )
    config = LoaderConfig.from_settings(settings)
    folder = config.work_dir / f"upload-{uuid.uuid4().hex}"

    def work() -> LoadReport:
        try:
            path = _save_upload(file, settings, folder)
            with translate_errors(), connect(settings, autocommit=True) as conn:
                return load_vector(conn, request.app.state.catalog, path, options, config)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        report = await run_in_threadpool(work)
    except LoadRejected as exc:
        guard.record(request, "load", f"layer {layer}", "rejected", file=options.file_name, reason=str(exc))
        body = exc.report.as_dict()
        if f == "html":
            return HTMLResponse(report_html(body), status_code=422)
        return problem(422, exc.title, str(exc), report=_jsonable(body))
    body = report.as_dict()
    if report.load_id:
        guard.record(request, "load", f"load {report.load_id}", "draft", layer=layer, file=options.file_name)
    if f == "html":
        return HTMLResponse(report_html(body), status_code=201 if report.load_id else 200)
    return JSONResponse(_jsonable(body), status_code=201 if report.load_id else 200)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@router.get("", summary="The latest loads, newest first")
async def list_loads(request: Request, layer: str | None = None, limit: int = 50) -> Any:
    _loader_or_approver(request)
    if not 1 <= limit <= 10_000:
        raise InvalidInput(f"limit {limit} is outside 1…10000")

    def work() -> list[dict[str, Any]]:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return history.history(conn, layer_id=layer, limit=limit)

    return _jsonable(await run_in_threadpool(work))


@router.get("/{load_id}", summary="One load: provenance, state, rows and its quality report")
async def get_load(request: Request, load_id: int, f: str | None = None) -> Any:
    _loader_or_approver(request)

    def work() -> dict[str, Any]:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return history.show(conn, request.app.state.catalog, load_id)

    load = await run_in_threadpool(work)
    if f == "html" and load.get("report"):
        return HTMLResponse(report_html(load["report"]))
    return _jsonable(load)


@router.post("/{load_id}/approve", summary="Approve a draft load (its features are published)")
async def approve(request: Request, load_id: int) -> Any:
    by = guard.require(request, "approve").username

    def work() -> dict[str, Any]:
        with translate_errors(), connect(request.app.state.settings, autocommit=True) as conn:
            return history.approve(conn, request.app.state.catalog, load_id, by=by)

    result = await run_in_threadpool(work)
    guard.record(request, "load.approve", f"load {load_id}")
    return result


@router.post("/{load_id}/rollback", summary="Undo a load: delete its features, restore those it replaced")
async def rollback(request: Request, load_id: int) -> Any:
    by = _loader_or_approver(request).username

    def work() -> dict[str, Any]:
        with translate_errors(), connect(request.app.state.settings, autocommit=True) as conn:
            return history.rollback(conn, request.app.state.catalog, load_id, by=by)

    result = await run_in_threadpool(work)
    guard.record(request, "load.rollback", f"load {load_id}")
    return result


def _loader_or_approver(request: Request) -> Principal:
    found = guard.who()
    if found is not None and access.may(found, "approve"):
        return guard.require(request, "approve")
    return guard.require(request, "load")
