"""OGC API Features Part 4 doors: create (POST items), replace (PUT), update (PATCH, a JSON merge patch of
``geometry`` and ``properties``) and delete (DELETE) single features, as draft change sets.

Who may: accounts allowed to load into the layer (the rule of the loads doors,
:meth:`gis_ioc.query.viewer.Viewer.may_load`): anonymous callers 401, other accounts 403, a layer they may
not read 404. What happens: :func:`gis_ioc.loaders.edits.apply_edit`, in one transaction bound to the
viewer (purpose ``write``) in which the audit record is written. Every answer names the change set (the
draft load): ``201 Created`` with ``Location`` (the draft feature, published once approved) for a create,
``200`` with the same JSON and the feature's own address (``feature``: it keeps its id when the change
set is approved; the draft's row then holds the state it replaced) for the others; the change set is
approved with ``gis-ioc load approve N`` or ``POST /api/loads/N/approve``. Geometries are CRS84 unless
``Content-Crs`` names another CRS the collections are offered in (a projected one: VN-2000 or Web
Mercator). Refusals are problem documents, Vietnamese first (English with ``?lang=en`` or
``Accept-Language``): 400 naming the gate broken (with the loader's report), 412 for a stale ``If-Match``,
428 without one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import gettempdir
from typing import TYPE_CHECKING, Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gis_ioc.api import guard
from gis_ioc.api.loads import WRITE_STATEMENT_TIMEOUT, language, loadable
from gis_ioc.auth import audit
from gis_ioc.crs import PUBLISHED
from gis_ioc.errors import GisIocError, InvalidInput, NotFound
from gis_ioc.http import problem
from gis_ioc.loaders.edits import EditRejected, EditResult, Operation, apply_edit, check_feature
from gis_ioc.loaders.vector import LoaderConfig
from gis_ioc.publish.tiles import same_for_everyone
from gis_ioc.query import scope

if TYPE_CHECKING:
    from gis_ioc.publish.ogc import FeaturesApi

Handler = Callable[[Request], Awaitable[Response]]
#: media types of a feature sent to be created (a cql2-json filter is POSTed to the same address)
FEATURE_TYPES = ("application/geo+json", "application/json")
#: the CRSs a geometry may be sent in (``Content-Crs``): CRS84 and the projected ones offered
_INPUT_CRS = {c.uri: (f"EPSG:{c.epsg}" if c.epsg else None) for c in PUBLISHED if not c.lat_first}


def loader_config(features: FeaturesApi) -> LoaderConfig:
    """The loader's configuration of this server (set by the application), or the loader's defaults."""
    found = getattr(features, "loader", None)
    if isinstance(found, LoaderConfig):
        return found
    return LoaderConfig(work_dir=Path(gettempdir()) / "gis_ioc-edits")


def is_feature_post(request: Request, body: bytes) -> bool:
    """Is this POST to items a feature to create (GeoJSON) rather than a cql2-json filter?"""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/geo+json":
        return True
    if media not in ("", "application/json"):
        return False
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("type") == "Feature"


def _content_crs(request: Request) -> str | None:
    raw = request.headers.get("content-crs")
    if raw is None:
        return None
    uri = raw.strip().strip("<>").strip()
    if uri not in _INPUT_CRS:
        offered = ", ".join(f"<{u}>" for u in _INPUT_CRS)
        raise InvalidInput(
            f"Content-Crs {raw!r} is not accepted for edits; send one of {offered}",
            vi=f"Content-Crs {raw!r} không được nhận khi sửa dữ liệu; dùng một trong: {offered}",
        )
    return _INPUT_CRS[uri]


def _fid(request: Request, layer_id: str) -> int:
    raw = request.path_params["item_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no feature {raw!r} in {layer_id}", vi=f"không có đối tượng {raw!r} trong {layer_id}")
    return int(raw)


def _body(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidInput(
            f"the body is not JSON: {exc}", vi=f"nội dung gửi lên không phải JSON hợp lệ: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidInput(
            'the body must be a GeoJSON Feature: {"type": "Feature", "geometry": {…}, "properties": {…}}',
            vi='nội dung phải là một đối tượng GeoJSON: {"type": "Feature", "geometry": {…}, "properties": {…}}',
        )
    return document


async def edit(features: FeaturesApi, request: Request, operation: Operation, raw: bytes | None = None) -> Response:
    """One Part 4 request; errors as problem documents, Vietnamese first."""
    lang = language(request)
    try:
        return await _edit(features, request, operation, raw)
    except EditRejected as exc:
        guard.record(request, f"feature.{operation}", request.url.path, "rejected", reason=str(exc))
        report = json.loads(json.dumps(exc.report.as_dict(lang), default=str))
        answer = problem(exc.status, exc.title, exc.text(lang), report=report)
    except GisIocError as exc:
        answer = problem(exc.status, exc.title, exc.text(lang), **({"code": exc.code} if exc.code else {}))
        if exc.status == 401:
            answer.headers["WWW-Authenticate"] = getattr(exc, "challenge", 'Bearer realm="gis_ioc"')
    answer.headers["Content-Language"] = lang
    return answer


async def _edit(features: FeaturesApi, request: Request, operation: Operation, raw: bytes | None) -> Response:
    guard.require(request, "load")
    viewer = guard.viewer(request)
    layer_id = request.path_params["collection_id"]
    if layer_id not in features.published:
        raise NotFound(f"no collection {layer_id!r}", vi=f"không có lớp dữ liệu {layer_id!r}")
    loadable(request, viewer, layer_id)
    layer = features.catalog.layers[layer_id]
    fid = None if operation == "create" else _fid(request, layer_id)
    body: dict[str, Any] | None = None
    if operation != "delete":
        body = check_feature(
            layer, viewer, _body(raw if raw is not None else await request.body()), partial=operation == "update"
        )
    crs = _content_crs(request)
    accept = request.query_params.get("accept_warnings", "false").lower() == "true"
    config = loader_config(features)
    address = guard.address(request)
    lang = language(request)

    def record(conn: psycopg.Connection[Any], result: dict[str, Any]) -> None:
        audit.record(conn, actor=viewer.name, action=f"feature.{operation}", target=f"load {result['load_id']}",
                     result="draft", address=address,
                     detail={"layer": layer.id, "fid": result["fid"], "replaces": result["replaces"]})  # fmt: skip

    def work() -> EditResult:
        with scope.transaction(features.pool, viewer, features.catalog, "write") as conn:
            conn.execute(f"SET LOCAL statement_timeout = '{WRITE_STATEMENT_TIMEOUT}'")
            result = apply_edit(
                conn, features.catalog, viewer, layer, operation, config,
                fid=fid, body=body, crs=crs, if_match=request.headers.get("if-match"),
                accept_warnings=accept, audit=record,
            )  # fmt: skip
        if features.versions is not None:  # this process's caches see the change at once
            with features.pool.connection(timeout=10) as conn:
                features.versions.catch_up(conn)
        return result

    result = await run_in_threadpool(work)
    collection = features.apis.origin(request) + request.url.path.split("/items", 1)[0]
    document = result.as_dict(lang)
    headers = {"Content-Language": lang, "Link": f'</api/loads/{result.load_id}>; rel="related"; title="change set"'}
    if result.fid is not None:
        document["draft"] = f"{collection}/items/{result.fid}"
    if result.replaces is not None:  # the feature keeps this address once the change set is approved
        document["feature"] = f"{collection}/items/{result.replaces}"
    if operation == "create":
        headers["Location"] = f"{collection}/items/{result.fid}"
        return JSONResponse(document, status_code=201, headers=headers)
    return JSONResponse(document, status_code=200, headers=headers)


def live_answer(features: FeaturesApi, request: Request, response: Response) -> Response:
    """A read of a collection with live fields (its layer file's ``live`` block) shows state that moves
    without the layer's data changing: no cache may answer for the server (``no-cache``: revalidate every
    time; a single feature's ETag is its row's version, for ``If-Match``, and is never answered with 304)."""
    layer = features.catalog.layers.get(request.path_params.get("collection_id", ""))
    if layer is not None and layer.live is not None and response.status_code < 300:
        response.headers["Cache-Control"] = "no-cache" if same_for_everyone(layer) else "private, no-cache"
    return response


def writable(features: FeaturesApi, items: Handler, item: Handler) -> tuple[Handler, Handler]:
    """Items and single features with their Part 4 methods (:mod:`gis_ioc.publish.edits`): a GeoJSON
    feature POSTed to items is created (any other POST body is a cql2-json filter); PUT, PATCH and
    DELETE of a feature replace, update and delete it. Reads of a collection with live fields are not to
    be kept by caches (:func:`live_answer`)."""

    async def items_endpoint(request: Request) -> Response:
        if request.method == "POST":
            body = await request.body()
            if is_feature_post(request, body):
                return await edit(features, request, "create", body)
        return live_answer(features, request, await items(request))

    operations: dict[str, Operation] = {"PUT": "replace", "PATCH": "update", "DELETE": "delete"}

    async def item_endpoint(request: Request) -> Response:
        if request.method in operations:
            return await edit(features, request, operations[request.method])
        return live_answer(features, request, await item(request))

    return items_endpoint, item_endpoint
