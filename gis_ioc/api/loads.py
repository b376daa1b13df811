"""``/api/loads``: upload a file into a layer (multipart), the load history, one load, approve, roll back.

The upload runs the same :func:`gis_ioc.loaders.vector.load_vector` as ``gis-ioc load vector``.
A refused load answers 422 ``application/problem+json`` with the whole quality report under ``report``.

Loading needs the ``load`` permission and, for a restricted layer, that layer's grant
(:meth:`gis_ioc.query.viewer.Viewer.may_load`); approving needs ``approve``. A load, approval or rollback
runs in one transaction bound to the viewer (purpose ``write``) in which its audit record is written, so
the record stands or falls with the change. Loads of layers the viewer may not read are not listed or
shown to them.
"""

from __future__ import annotations

import html
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import audit
from gis_ioc.errors import Forbidden, InvalidInput, NotFound
from gis_ioc.http import problem
from gis_ioc.loaders import history
from gis_ioc.loaders.sources import FORMATS
from gis_ioc.loaders.vector import MODES, LoaderConfig, LoadOptions, LoadRejected, LoadReport, load_vector
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings

router = APIRouter(prefix="/api/loads", tags=["loads"])
_CHUNK = 1 << 20
#: Statements of a load, approval or rollback may take longer than a map's (300,000 parcels).
WRITE_STATEMENT_TIMEOUT = "15min"


def _save_upload(upload: UploadFile, settings: Settings, folder: Path) -> Path:
    name = Path(upload.filename or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"file {name!r}: unknown format {suffix or '(no extension)'}; accepted: {', '.join(FORMATS)}",
            vi=f"tệp {name!r}: định dạng {suffix or '(không có phần mở rộng)'} không đọc được; "
            f"các định dạng nhận: {', '.join(FORMATS)}",
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
                    f"file {name!r} is larger than {settings.load_max_upload_mb} MB (GIS_IOC_LOAD_MAX_UPLOAD_MB)",
                    vi=f"tệp {name!r} lớn hơn {settings.load_max_upload_mb} MB cho phép",
                )
            out.write(chunk)
    return target


def _mapping(pairs: list[str], name: str = "map") -> dict[str, str]:
    out = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            form = "SOURCE_COLUMN=FIELD" if name == "map" else "FIELD=VALUE"
            raise InvalidInput(
                f"{name} {pair!r}: write {form}",
                vi=f"{name} {pair!r}: viết {'CỘT_TRONG_TỆP=TRƯỜNG' if name == 'map' else 'TRƯỜNG=GIÁ_TRỊ'}",
            )
        out[src] = dst
    return out


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"source_date {value!r} is not a date (YYYY-MM-DD)",
            vi=f"source_date {value!r} không phải là ngày (NĂM-THÁNG-NGÀY, ví dụ 2026-12-02)",
        ) from None


def language(request: Request) -> str:
    """``en`` when the caller asks for English (``?lang=en``, or ``Accept-Language`` preferring English to
    Vietnamese); Vietnamese otherwise."""
    asked = request.query_params.get("lang")
    if asked in ("vi", "en"):
        return asked
    best, best_q = "vi", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("vi", "en"):
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best


_HTML_WORDS = {
    "vi": ("Báo cáo nạp dữ liệu", "đối tượng", "lỗi", "cảnh báo", "dòng", "trường", "mức", "vấn đề"),
    "en": ("Load report", "features", "errors", "warnings", "row", "field", "severity", "problem"),
}


def report_html(report: dict[str, Any], lang: str = "vi") -> str:
    """The report as a small HTML page (for a browser or an e-mail)."""
    title, features, errors, warnings, row, field, severity, problem_ = _HTML_WORDS["en" if lang == "en" else "vi"]
    e = html.escape
    rows = "".join(
        f"<tr class='{e(i['severity'])}'><td>{i.get('row', '')}</td><td>{e(i.get('field', ''))}</td>"
        f"<td>{e(i['severity'])}</td><td>{e(i.get('en') if lang == 'en' and i.get('en') else i['message'])}</td></tr>"
        for i in report.get("issues", [])
    )
    file = report.get("file", {})
    return (
        f"<!doctype html><html lang='{'en' if lang == 'en' else 'vi'}'><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".error{background:#fdd}.warning{background:#ffd}.note{background:#eef}</style>"
        f"<h1>{e(str(file.get('name', '')))} → {e(str(report.get('layer', '')))}</h1>"
        f"<p><b>{e(str(report.get('status', '')))}</b>: "
        f"{e(str((lang == 'en' and report.get('message_en')) or report.get('message', '')))}</p>"
        f"<p>{report.get('features', 0)} {features}; CRS {e(str(report.get('crs', {}).get('source')))}; "
        f"{report.get('errors', 0)} {errors}, {report.get('warnings', 0)} {warnings}</p>"
        f"<table><tr><th>{row}</th><th>{field}</th><th>{severity}</th><th>{problem_}</th></tr>{rows}</table></html>"
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
    constants: Annotated[
        list[str] | None, Form(alias="set", description="FIELD=VALUE for every feature, repeatable")
    ] = None,
    encoding: Annotated[str | None, Form()] = None,
    source_layer: Annotated[str | None, Form()] = None,
    where: Annotated[str | None, Form()] = None,
    source_date: Annotated[str | None, Form()] = None,
    accept_warnings: Annotated[bool, Form()] = False,
    dry_run: Annotated[bool, Form()] = False,
    f: str | None = None,
) -> Any:
    settings: Settings = request.app.state.settings
    lang = language(request)
    guard.require(request, "load")
    viewer = guard.viewer(request)
    if file is None or not file.filename:
        raise InvalidInput(
            "no file: send the data as the multipart field 'file'", vi="chưa có tệp: gửi dữ liệu trong trường 'file'"
        )
    if not layer:
        raise InvalidInput(
            "no layer: send the layer id as the form field 'layer' (see /ogc/collections)",
            vi="chưa chọn lớp: gửi mã lớp trong trường 'layer' (xem /ogc/collections)",
        )
    loadable(request, viewer, layer)
    if mode not in MODES:
        raise InvalidInput(
            f"mode {mode!r}: use one of {', '.join(MODES)}",
            vi=f"chế độ {mode!r} không có; dùng một trong: {', '.join(MODES)}",
        )
    options = LoadOptions(
        layer_id=layer,
        crs=crs or None,
        mode=mode,
        source_unit=source_unit or None,
        mapping=_mapping(map or []),
        constants=_mapping(constants or [], "set"),
        encoding=encoding or None,
        source_layer=source_layer or None,
        where=where or None,
        source_date=_date(source_date),
        accept_warnings=accept_warnings,
        dry_run=dry_run,
        loaded_by=viewer.name,
        file_name=Path(file.filename).name,
    )
    config = LoaderConfig.from_settings(settings)
    folder = config.work_dir / f"upload-{uuid.uuid4().hex}"
    address = guard.address(request)

    def record(conn: psycopg.Connection[Any], report: LoadReport) -> None:
        detail = {"layer": layer, "file": options.file_name, "rows": report.loaded}
        audit.record(conn, actor=viewer.name, action="load", target=f"load {report.load_id}",
                     result=report.approval or "draft", address=address, detail=detail)  # fmt: skip

    def work() -> LoadReport:
        try:
            path = _save_upload(file, settings, folder)
            with _writing(request, viewer) as conn:
                return load_vector(conn, request.app.state.catalog, path, options, config, audit=record)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        report = await run_in_threadpool(work)
    except LoadRejected as exc:  # nothing was written: the refusal is recorded on its own
        guard.record(request, "load", f"layer {layer}", "rejected", file=options.file_name, reason=str(exc))
        body = exc.report.as_dict(lang)
        if f == "html":
            return HTMLResponse(report_html(body, lang), status_code=422, headers={"Content-Language": lang})
        answer = problem(422, exc.title, exc.report.text(lang), report=_jsonable(body))
        answer.headers["Content-Language"] = lang
        return answer
    body = report.as_dict(lang)
    status = 201 if report.load_id else 200
    if f == "html":
        return HTMLResponse(report_html(body, lang), status_code=status, headers={"Content-Language": lang})
    return JSONResponse(_jsonable(body), status_code=status, headers={"Content-Language": lang})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@router.get("", summary="The latest loads, newest first")
async def list_loads(request: Request, layer: str | None = None, limit: int = 50) -> Any:
    viewer = _loader_or_approver(request)
    if not 1 <= limit <= 10_000:
        raise InvalidInput(f"limit {limit} is outside 1…10000")
    catalog = request.app.state.catalog
    hidden = [k for k, found in catalog.layers.items() if not viewer.can_read(found)]

    def work() -> list[dict[str, Any]]:
        with scope.transaction(request.app.state.pool, viewer, catalog) as conn:
            return history.history(conn, layer_id=layer, limit=limit, hidden=hidden)

    return _jsonable(await run_in_threadpool(work))


@router.get("/{load_id}", summary="One load: provenance, state, rows and its quality report")
async def get_load(request: Request, load_id: int, f: str | None = None) -> Any:
    viewer = _loader_or_approver(request)

    def work() -> dict[str, Any]:
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
            _load_of(request, viewer, conn, load_id)
            return history.show(conn, request.app.state.catalog, load_id)

    load = await run_in_threadpool(work)
    if f == "html" and load.get("report"):
        return HTMLResponse(report_html(load["report"], language(request)))
    return _jsonable(load)


@router.post("/{load_id}/approve", summary="Approve a draft load (its features are published)")
async def approve(request: Request, load_id: int) -> Any:
    guard.require(request, "approve")
    viewer = guard.viewer(request)
    hook = _audit_hook(request, viewer, "load.approve", load_id)

    def work() -> dict[str, Any]:
        with _writing(request, viewer) as conn:
            _load_of(request, viewer, conn, load_id)
            return history.approve(conn, request.app.state.catalog, load_id, by=viewer.name, audit=hook)

    return await run_in_threadpool(work)


@router.post("/{load_id}/rollback", summary="Undo a load: delete its features, restore those it replaced")
async def rollback(request: Request, load_id: int) -> Any:
    viewer = _loader_or_approver(request)
    hook = _audit_hook(request, viewer, "load.rollback", load_id)

    def work() -> dict[str, Any]:
        with _writing(request, viewer) as conn:
            _load_of(request, viewer, conn, load_id)
            return history.rollback(conn, request.app.state.catalog, load_id, by=viewer.name, audit=hook)

    return await run_in_threadpool(work)


def _loader_or_approver(request: Request) -> Viewer:
    viewer = guard.viewer(request)
    guard.require(request, "approve" if viewer.may("approve") else "load")
    return viewer


def loadable(request: Request, viewer: Viewer, layer_id: str) -> None:
    """May the viewer load into this layer? A layer they may not read is answered as one that does not
    exist (404, naming only the layers they may load into); a readable one without the load grant is
    403. Neither answer says anything about the layer's rows."""
    catalog = request.app.state.catalog
    found = catalog.layers.get(layer_id)
    if found is not None and viewer.may_load(found):
        return
    if found is not None:
        guard.record(request, "denied", f"layer {layer_id}", "denied", reason="may not load into the layer")
        if viewer.can_read(found):
            raise Forbidden(f"loading into {layer_id} needs that layer's grant")
    mine = ", ".join(sorted(k for k, other in catalog.layers.items() if viewer.may_load(other) and not other.versioned))
    raise NotFound(f"no layer {layer_id!r} to load into; you may load into: {mine}")


def _load_of(request: Request, viewer: Viewer, conn: psycopg.Connection[Any], load_id: int) -> dict[str, Any]:
    """The load, if its layer is one the viewer may read (404 otherwise, as for a load that never was)."""
    load = history.show_row(conn, load_id)
    layer = request.app.state.catalog.layers.get(load["layer_id"]) if load["layer_id"] else None
    if layer is not None and not viewer.can_read(layer):
        raise NotFound(f"no load {load_id}")
    return load


@contextmanager
def _writing(request: Request, viewer: Viewer) -> Iterator[psycopg.Connection[Any]]:
    """One transaction bound to the viewer for a write (load, approval, rollback), with a statement
    timeout fit for large layers rather than for answering a map."""
    with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog, "write") as conn:
        conn.execute(f"SET LOCAL statement_timeout = '{WRITE_STATEMENT_TIMEOUT}'")
        yield conn
    versions = getattr(request.app.state, "versions", None)
    if versions is not None:  # this process's caches see the change at once, not a notification later
        with request.app.state.pool.connection(timeout=10) as conn:
            versions.catch_up(conn)


def _audit_hook(request: Request, viewer: Viewer, action: str, load_id: int) -> history.Audit:
    """The audit record of an approval or rollback, written in its own transaction by the loader."""
    address = guard.address(request)

    def hook(conn: psycopg.Connection[Any], result: dict[str, Any]) -> None:
        audit.record(conn, actor=viewer.name, action=action, target=f"load {load_id}", address=address,
                     detail={"layer": result.get("layer")})  # fmt: skip

    return hook
