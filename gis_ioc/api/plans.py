"""``/api/plans``: approved planning drawings, their PNG map tiles (from the COG) and their documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import NotFound
from gis_ioc.loaders import plans

router = APIRouter(prefix="/api/plans", tags=["plans"])


def _info(request: Request, plan_id: int) -> dict[str, Any]:
    with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
        return plans.plan_info(conn, plan_id)


def _public(info: dict[str, Any], base: str) -> dict[str, Any]:
    out = {k: v for k, v in info.items() if k != "cog_path"}
    out["documents"] = [
        {k: v for k, v in d.items() if k != "path"} | {"href": f"{base}/api/plans/{info['id']}/documents/{d['id']}"}
        for d in info["documents"]
    ]
    out["tiles"] = f"{base}/api/plans/{info['id']}/tiles/{{z}}/{{x}}/{{y}}.png"
    out["cog"] = f"{base}/api/plans/{info['id']}/cog.tif"
    return out


@router.get("", summary="Approved planning drawings")
async def list_plans(request: Request) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return plans.list_plans(conn)

    return await run_in_threadpool(work)


@router.get("/{plan_id}", summary="One drawing: metadata, footprint, documents, tile template")
async def get_plan(request: Request, plan_id: int) -> dict[str, Any]:
    info = await run_in_threadpool(_info, request, plan_id)
    return _public(info, str(request.base_url).rstrip("/"))


@router.get("/{plan_id}/tiles/{z}/{x}/{y}.png", summary="A 256×256 PNG map tile (XYZ, Web Mercator)")
async def tile(request: Request, plan_id: int, z: int, x: int, y: int) -> Response:
    info = await run_in_threadpool(_info, request, plan_id)
    png = await run_in_threadpool(plans.render_tile, Path(info["cog_path"]), z, x, y)
    if png is None:
        return Response(status_code=204)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/{plan_id}/cog.tif", summary="The Cloud-Optimized GeoTIFF (EPSG:3857)")
async def cog(request: Request, plan_id: int) -> FileResponse:
    info = await run_in_threadpool(_info, request, plan_id)
    return FileResponse(info["cog_path"], media_type="image/tiff; application=geotiff; profile=cloud-optimized")


@router.get("/{plan_id}/documents/{doc_id}", summary="An attached document (PDF)")
async def document(request: Request, plan_id: int, doc_id: int) -> FileResponse:
    info = await run_in_threadpool(_info, request, plan_id)
    doc = next((d for d in info["documents"] if d["id"] == doc_id), None)
    if doc is None:
        raise NotFound(f"plan {plan_id} has no document {doc_id}")
    return FileResponse(doc["path"], media_type="application/pdf", filename=doc["file_name"])
