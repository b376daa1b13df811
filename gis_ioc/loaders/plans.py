"""Planning drawings: a georeferenced raster becomes a Cloud-Optimized GeoTIFF with its footprint and papers.

``gis-ioc load plan FILE …`` takes a GeoTIFF, or an image with a world file (.tfw/.pgw/.jgw/.wld) or
ground control points, in any CRS the loader accepts (VN-2000 pinned to EPSG:6960 through gis_ioc's
own PROJ definitions, never PROJ's automatic choice), and
- writes a COG in EPSG:3857 (tiled, DEFLATE, overviews) under ``GIS_IOC_HOME/plans/``;
- records the drawing's footprint in the ``planning_zones`` layer with the plan's metadata (name,
  level, scale, approving authority, decision number and date), as a draft of a ``raster`` load that
  ``gis-ioc load approve`` publishes and ``gis-ioc load rollback`` removes;
- stores the attached PDFs (explanatory note, decision) with their SHA-256, linked to the plan.
Approved drawings are served as PNG map tiles (``/api/plans/{id}/tiles/{z}/{x}/{y}.png``).
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from pyproj import CRS

from gis_ioc import crs as crs_registry
from gis_ioc.database.loads import sha256_file
from gis_ioc.errors import InvalidInput, LoadError, NotFound
from gis_ioc.loaders import crs_check, history

LEVELS = ("master", "zoning", "detailed")
DOC_KINDS = ("explanatory_note", "decision", "other")
TILE = 256
WEB_MERCATOR_HALF = 20037508.342789244


@dataclass
class PlanMeta:
    zone_code: str
    name: str
    level: str
    decision_number: str
    decision_date: date
    approving_authority: str | None = None
    scale: str | None = None
    zoning: str = "mixed"


@dataclass
class PlanResult:
    plan_id: int
    load_id: int
    cog: Path
    footprint_km2: float
    documents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return (
            f"plan {self.plan_id} (load {self.load_id}, draft): COG {self.cog.name}, footprint "
            f"{self.footprint_km2:,.3f} km², {len(self.documents)} documents; "
            f"approve with: gis-ioc load approve {self.load_id}"
        )


def _pinned_crs(crs: CRS) -> tuple[CRS, str, int | None]:
    """The CRS GDAL should warp with: VN-2000 as gis_ioc's PROJ string carrying EPSG:6960's +towgs84."""
    reading = crs_check.source_crs(crs)
    epsg = int(reading.label.split(":")[1]) if reading.label.startswith("EPSG:") else None
    for known in crs_registry.ALL:
        if known.epsg == epsg and known.proj4 is not None:
            return CRS.from_proj4(known.proj4), reading.label, epsg
    return crs, reading.label, epsg


def _check_pdf(path: Path) -> None:
    with path.open("rb") as fh:
        if fh.read(5) != b"%PDF-":
            raise LoadError(f"{path.name}: not a PDF (attach the explanatory note and the decision as PDF)")


def load_plan(
    conn: psycopg.Connection[Any],
    path: Path,
    meta: PlanMeta,
    store: Path,
    *,
    crs: str | None = None,
    documents: list[tuple[str, Path]] | None = None,
    source_unit: str | None = None,
    loaded_by: str = "gis-ioc",
    audit: Callable[[psycopg.Connection[Any], int], None] | None = None,
) -> PlanResult:
    """Load one planning drawing; the database and the store change together or not at all. ``audit``
    (called with the load id) writes the load's audit record in the same transaction."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.shutil import copy as rio_copy
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import Resampling

    if meta.level not in LEVELS:
        raise InvalidInput(f"--level {meta.level!r}: use one of {', '.join(LEVELS)}")
    docs = documents or []
    for kind, doc in docs:
        if kind not in DOC_KINDS:
            raise InvalidInput(f"document kind {kind!r}: use one of {', '.join(DOC_KINDS)}")
        _check_pdf(doc)
    if not path.exists():
        raise LoadError(f"{path}: file not found")
    notes: list[str] = []
    folder = store / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    cog = folder / "drawing.tif"
    try:
        try:
            src = rasterio.open(path)
        except RasterioError as exc:
            raise LoadError(f"{path.name}: not a readable raster (GeoTIFF, PNG/JPEG with a world file): {exc}") from exc
        with src:
            gcps, gcp_crs = src.gcps
            georef = not src.transform.is_identity or bool(gcps)
            if not georef:
                raise LoadError(
                    f"{path.name}: the image is not georeferenced: give a GeoTIFF, a world file "
                    "(.tfw/.pgw/.jgw/.wld beside it) or ground control points"
                )
            file_crs = gcp_crs if gcps else src.crs
            if crs:
                source = crs_check.parse_crs(crs)
            elif file_crs is not None:
                source = CRS.from_wkt(file_crs.to_wkt())
            else:
                raise LoadError(
                    f"{path.name}: georeferenced but without a coordinate system: give it with --crs EPSG:9209"
                )
            warp_crs, label, epsg = _pinned_crs(source)
            vrt_options: dict[str, Any] = {
                "crs": "EPSG:3857",
                "resampling": Resampling.bilinear,
                "src_crs": warp_crs.to_wkt(),
            }
            if gcps:
                notes.append(f"georeferenced by {len(gcps)} ground control points")
            with WarpedVRT(src, **vrt_options) as vrt:
                rio_copy(vrt, cog, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(TILE), OVERVIEWS="AUTO",
                         RESAMPLING="AVERAGE")  # fmt: skip
            footprint = _footprint(src, label, epsg, warp_crs)
            width, height = src.width, src.height
        shapely.prepare(footprint)
        return _record(
            conn, path, meta, cog, footprint, label, width, height, docs, folder, notes, source_unit, loaded_by, audit
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _footprint(src: Any, label: str, epsg: int | None, warp_crs: CRS) -> shapely.Geometry:
    """The drawing's outline (edges densified) in EPSG:4326, through the pinned transformation."""
    from pyproj import Transformer

    n = 50
    rows = np.concatenate(
        [np.zeros(n), np.linspace(0, src.height, n), np.full(n, src.height), np.linspace(src.height, 0, n)]
    )
    cols = np.concatenate(
        [np.linspace(0, src.width, n), np.full(n, src.width), np.linspace(src.width, 0, n), np.zeros(n)]
    )
    gcps, _ = src.gcps
    if gcps:
        from rasterio.transform import GCPTransformer

        with GCPTransformer(gcps) as t:
            xs, ys = t.xy(rows, cols, offset="ul")
    else:
        xs, ys = src.transform * (cols, rows)
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if epsg is not None and epsg in crs_check.VN2000_NAMES:
        lon, lat = crs_registry.transformer(epsg, 4326).transform(xs, ys)
    else:
        lon, lat = Transformer.from_crs(warp_crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    del label
    return shapely.make_valid(shapely.Polygon(np.column_stack([lon, lat])))


def _record(
    conn: psycopg.Connection[Any],
    path: Path,
    meta: PlanMeta,
    cog: Path,
    footprint: shapely.Geometry,
    label: str,
    width: int,
    height: int,
    docs: list[tuple[str, Path]],
    folder: Path,
    notes: list[str],
    source_unit: str | None,
    loaded_by: str,
    audit: Callable[[psycopg.Connection[Any], int], None] | None = None,
) -> PlanResult:
    province = conn.execute("SELECT ST_AsBinary(geom) FROM layers.province WHERE valid_to IS NULL").fetchone()
    if province is None or not shapely.intersects(shapely.from_wkb(bytes(province[0])), footprint):
        raise LoadError(
            f"{path.name}: read as {label} the drawing lies outside Hưng Yên; check the coordinate system (--crs)"
        )
    multi = shapely.multipolygons(shapely.get_parts(footprint))
    stored: list[dict[str, Any]] = []
    try:
        with conn.transaction():
            load_id = history.insert_load(
                conn, kind="raster", layer_id="planning_zones", mode="append", source_unit=source_unit,
                file_name=path.name, file_sha256=sha256_file(path), loaded_by=loaded_by,
                params={"crs": label, "plan": meta.name, "documents": [d.name for _, d in docs]},
            )  # fmt: skip
            commune = conn.execute(
                """SELECT code FROM layers.communes WHERE valid_to IS NULL
                    ORDER BY ST_Area(ST_Intersection(geom, ST_GeomFromWKB(%s, 4326))) DESC LIMIT 1""",
                (shapely.to_wkb(multi),),
            ).fetchone()
            conn.execute(
                """INSERT INTO layers.planning_zones (zone_code, commune_code, plan_name, plan_level, decision_number,
                       approval_date, approving_authority, zoning, scale, geom, is_demo, load_id, approval)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326), false, %s, 'draft')""",
                (meta.zone_code, commune[0] if commune else None, meta.name, meta.level, meta.decision_number,
                 meta.decision_date, meta.approving_authority, meta.zoning, meta.scale, shapely.to_wkb(multi), load_id),
            )  # fmt: skip
            row = conn.execute(
                """INSERT INTO gis_ioc.plans (load_id, zone_code, name, cog_path, width, height, source_crs, footprint)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id""",
                (load_id, meta.zone_code, meta.name, str(cog), width, height, label, shapely.to_wkb(multi)),
            ).fetchone()
            assert row is not None
            plan_id = int(row[0])
            for kind, doc in docs:
                target = folder / f"{kind}-{doc.name}"
                shutil.copyfile(doc, target)
                digest = sha256_file(target)
                doc_row = conn.execute(
                    """INSERT INTO gis_ioc.plan_documents (plan_id, kind, file_name, file_sha256, path, size_bytes)
                       VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
                    (plan_id, kind, doc.name, digest, str(target), target.stat().st_size),
                ).fetchone()
                assert doc_row is not None
                stored.append({"id": int(doc_row[0]), "kind": kind, "file_name": doc.name, "sha256": digest})
            area = conn.execute(
                "SELECT ST_Area(ST_GeomFromWKB(%s, 4326)::geography) / 1e6", (shapely.to_wkb(multi),)
            ).fetchone()
            conn.execute(
                """UPDATE gis_ioc.loads SET status = 'done', finished_at = clock_timestamp(), row_count = 1, report = %s
                    WHERE id = %s""",
                (json.dumps({"plan_id": plan_id, "documents": stored, "notes": notes}), load_id),
            )
            if audit is not None:
                audit(conn, load_id)
    except psycopg.Error as exc:
        raise LoadError(f"plan not loaded, nothing changed: {str(exc).strip().splitlines()[0]}") from exc
    return PlanResult(plan_id, load_id, cog, float(area[0]) if area else 0.0, stored, notes)


# -- serving ---------------------------------------------------------------------------------------


def plan_info(conn: psycopg.Connection[Any], plan_id: int, *, approved_only: bool = True) -> dict[str, Any]:
    """One drawing of a finished load: approved, or (``approved_only`` False, for those who load or approve)
    also a draft. A rolled-back or rejected drawing is 404 for everyone."""
    row = conn.execute(
        """SELECT p.id, p.zone_code, p.name, p.cog_path, p.width, p.height, p.source_crs, l.approval, l.status,
                  ST_AsGeoJSON(p.footprint)::json, p.load_id
             FROM gis_ioc.plans p JOIN gis_ioc.loads l ON l.id = p.load_id WHERE p.id = %s""",
        (plan_id,),
    ).fetchone()
    shown = ("approved",) if approved_only else ("approved", "draft")
    if row is None or row[7] not in shown or row[8] != "done":
        raise NotFound(f"no approved plan {plan_id}" if approved_only else f"no plan {plan_id}")
    docs = conn.execute(
        "SELECT id, kind, file_name, file_sha256, size_bytes, path FROM gis_ioc.plan_documents "
        "WHERE plan_id = %s ORDER BY id",
        (plan_id,),
    ).fetchall()
    return {
        "id": row[0], "zone_code": row[1], "name": row[2], "cog_path": row[3], "width": row[4], "height": row[5],
        "source_crs": row[6], "approval": row[7], "footprint": row[9], "load_id": row[10],
        "documents": [{"id": d[0], "kind": d[1], "file_name": d[2], "sha256": d[3], "size_bytes": d[4], "path": d[5]}
                      for d in docs],
    }  # fmt: skip


def list_plans(conn: psycopg.Connection[Any], *, drafts: bool = False) -> list[dict[str, Any]]:
    """The drawings of finished loads: approved ones, and drafts too when ``drafts`` (for those who load
    or approve)."""
    shown = ["approved", "draft"] if drafts else ["approved"]
    rows = conn.execute(
        """SELECT p.id, p.zone_code, p.name, p.source_crs, ST_AsGeoJSON(ST_Envelope(p.footprint))::json, l.approval
             FROM gis_ioc.plans p JOIN gis_ioc.loads l ON l.id = p.load_id
            WHERE l.approval = ANY(%s) AND l.status = 'done' ORDER BY p.id""",
        (shown,),
    ).fetchall()
    return [
        {"id": r[0], "zone_code": r[1], "name": r[2], "source_crs": r[3], "bbox": r[4], "approval": r[5]} for r in rows
    ]


def render_tile(cog: Path, z: int, x: int, y: int) -> bytes | None:
    """A 256×256 PNG of the drawing in the XYZ tile z/x/y (Web Mercator), or None when it is empty."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.windows import from_bounds

    if not (0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist")
    size = 2 * WEB_MERCATOR_HALF / 2**z
    left = -WEB_MERCATOR_HALF + x * size
    top = WEB_MERCATOR_HALF - y * size
    with rasterio.open(cog) as src:
        b = src.bounds
        if left >= b.right or left + size <= b.left or top <= b.bottom or top - size >= b.top:
            return None
        # Only the part of the tile the drawing covers is read, at the size it takes in the tile (so the
        # COG's overviews serve low zooms). A boundless read of the whole tile at the drawing's own
        # resolution took minutes and gigabytes at zoom 0-6.
        part = (max(left, b.left), max(top - size, b.bottom), min(left + size, b.right), min(top, b.top))
        col0, col1 = (round((part[0] - left) / size * TILE), round((part[2] - left) / size * TILE))
        row0, row1 = (round((top - part[3]) / size * TILE), round((top - part[1]) / size * TILE))
        width, height = max(1, min(TILE, col1) - col0), max(1, min(TILE, row1) - row0)
        col0, row0 = min(col0, TILE - width), min(row0, TILE - height)
        window = from_bounds(*part, transform=src.transform)
        bands = min(src.count - 1 if src.count in (2, 4) else src.count, 3)  # the last band is the alpha
        data = np.zeros((bands, TILE, TILE), dtype=src.dtypes[0])
        mask = np.zeros((TILE, TILE), dtype="uint8")
        data[:, row0 : row0 + height, col0 : col0 + width] = src.read(
            list(range(1, bands + 1)), window=window, out_shape=(bands, height, width),
            resampling=rasterio.enums.Resampling.bilinear,
        )  # fmt: skip
        mask[row0 : row0 + height, col0 : col0 + width] = src.read_masks(1, window=window, out_shape=(height, width))
    if not mask.any():
        return None
    if bands == 1:
        data = np.repeat(data, 3, axis=0)
    alpha = np.where(mask > 0, 255, 0).astype("uint8")
    rgba = np.concatenate([data.astype("uint8"), alpha[np.newaxis]])
    with MemoryFile() as mem:
        with mem.open(driver="PNG", width=TILE, height=TILE, count=4, dtype="uint8") as png:
            png.write(rgba)
        return bytes(mem.read())


def tile_zoom_hint(width_m: float) -> int:
    """The zoom at which a drawing this wide fills about one tile (for clients' initial view)."""
    return max(0, min(22, round(math.log2(2 * WEB_MERCATOR_HALF / max(width_m, 1.0)))))
