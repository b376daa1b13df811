"""``/api/plans``: planning drawings, their PNG map tiles (from the COG) and their documents.

Approved drawings are public. Drafts (loaded, not yet approved) are served only to those who may load
or approve (so that they can check a drawing before approving it), and only when asked for
(``?drafts=true`` on the list); to everyone else a draft does not exist (404). Answers about a draft
are ``Cache-Control: private``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.errors import NotFound
from gis_ioc.loaders import plans
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer

router = APIRouter(prefix="/api/plans", tags=["plans"])


def sees_drafts(viewer: Viewer) -> bool:
    """May this viewer see drawings that are not approved yet? Those who load or approve them."""
    return viewer.may("load") or viewer.may("approve")


def _info(request: Request, plan_id: int) -> dict[str, Any]:
    viewer = guard.viewer(request)
    with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
        return plans.plan_info(conn, plan_id, approved_only=not sees_drafts(viewer))


def _cache(info: dict[str, Any]) -> str:
    return "public, max-age=3600" if info["approval"] == "approved" else "private, no-store"


def _public(info: dict[str, Any], base: str) -> dict[str, Any]:
    out = {k: v for k, v in info.items() if k != "cog_path"}
    out["documents"] = [
        {k: v for k, v in d.items() if k != "path"} | {"href": f"{base}/api/plans/{info['id']}/documents/{d['id']}"}
        for d in info["documents"]
    ]
    out["tiles"] = f"{base}/api/plans/{info['id']}/tiles/{{z}}/{{x}}/{{y}}.png"
    out["cog"] = f"{base}/api/plans/{info['id']}/cog.tif"
    return out


@router.get("", summary="Approved planning drawings (drafts too for those who load or approve, if asked)")
async def list_plans(
    request: Request,
    drafts: Annotated[bool, Query(description="also drafts (only for those who may load or approve)")] = False,
) -> JSONResponse:
    viewer = guard.viewer(request)
    with_drafts = drafts and sees_drafts(viewer)

    def work() -> list[dict[str, Any]]:
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
            return plans.list_plans(conn, drafts=with_drafts)

    found = await run_in_threadpool(work)
    return JSONResponse(found, headers={"Cache-Control": "private" if with_drafts else "no-cache"})


@router.get("/{plan_id}", summary="One drawing: metadata, footprint, documents, tile template")
async def get_plan(request: Request, plan_id: int) -> JSONResponse:
    info = await run_in_threadpool(_info, request, plan_id)
    body = _public(info, str(request.base_url).rstrip("/"))
    return JSONResponse(body, headers={"Cache-Control": "no-cache" if info["approval"] == "approved" else "private"})


@router.get("/{plan_id}/tiles/{z}/{x}/{y}.png", summary="A 256×256 PNG map tile (XYZ, Web Mercator)")
async def tile(request: Request, plan_id: int, z: int, x: int, y: int) -> Response:
    info = await run_in_threadpool(_info, request, plan_id)
    png = await run_in_threadpool(plans.render_tile, Path(info["cog_path"]), z, x, y)
    if png is None:
        return Response(status_code=204, headers={"Cache-Control": _cache(info)})
    return Response(png, media_type="image/png", headers={"Cache-Control": _cache(info)})


@router.get("/{plan_id}/cog.tif", summary="The Cloud-Optimized GeoTIFF (EPSG:3857)")
async def cog(request: Request, plan_id: int) -> FileResponse:
    info = await run_in_threadpool(_info, request, plan_id)
    return FileResponse(
        info["cog_path"],
        media_type="image/tiff; application=geotiff; profile=cloud-optimized",
        headers={"Cache-Control": _cache(info)},
    )


@router.get("/{plan_id}/documents/{doc_id}", summary="An attached document (PDF)")
async def document(request: Request, plan_id: int, doc_id: int) -> FileResponse:
    info = await run_in_threadpool(_info, request, plan_id)
    doc = next((d for d in info["documents"] if d["id"] == doc_id), None)
    if doc is None:
        raise NotFound(f"plan {plan_id} has no document {doc_id}")
    return FileResponse(
        doc["path"], media_type="application/pdf", filename=doc["file_name"], headers={"Cache-Control": _cache(info)}
    )
