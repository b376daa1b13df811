"""OGC API Tiles for every published layer: WebMercatorQuad, Mapbox Vector Tiles made by PostGIS.

Geometries are simplified to the tile's pixel size before ``ST_AsMVTGeom`` quantises them, and
polygons smaller than a pixel are left out below zoom 14, so a map can draw the 200,000 parcels.
A tile holds the rows (and fields) the viewer may read (:mod:`gis_ioc.query.rows`). Tiles carry an ETag
made from their bytes (so two viewers who see different rows get different ETags) and Cache-Control:
public for public layers, private (with ``Vary`` on the credentials) for the others; an unchanged tile
answers 304.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.publish.cql import Params
from gis_ioc.publish.extents import PIXEL_FILTER_BELOW, Extent
from gis_ioc.query import rows
from gis_ioc.query.viewer import Viewer

TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
MVT = "application/vnd.mapbox-vector-tile"
MAX_ZOOM = 22
EXTENT = 4096
_WORLD = 40075016.68557849  # metres, the side of the Web Mercator square


def default_tile_properties(layer: Layer, catalog: Catalog) -> list[str]:
    """What a tile carries unless asked: the key, the name and the styled field (the rest: /items/{fid})."""
    wanted = [layer.key, "name", catalog.style_of(layer).field]
    return [f.name for f in layer.fields if f.name in wanted]


def tile_sql(
    viewer: Viewer, layer: Layer, z: int, x: int, y: int, params: Params, properties: list[str] | None = None
) -> sql.Composed:
    """One tile of the rows of ``layer`` (as the viewer sees it) that the viewer may read, as MVT bytes;
    its values go into ``params``. ``properties`` None: every field the viewer sees."""
    layer = viewer.sees(layer)
    pixel = _WORLD / (2**z) / 256  # metres per screen pixel at this zoom
    geom: sql.Composable = sql.SQL("ST_Transform(t.geom, 3857)")
    if "Point" not in layer.geometry:
        geom = sql.SQL("ST_Simplify({}, {}, true)").format(geom, sql.Literal(pixel / 2))
    extra: list[sql.Composable] = [sql.SQL("t.geom && ST_Transform(b.env, 4326)")]
    if "Polygon" in layer.geometry and z < PIXEL_FILTER_BELOW:
        extra.append(sql.SQL("ST_Area(t.geom::box2d::geometry) > {}").format(sql.Literal((pixel / 111_000) ** 2)))
    names = [f.name for f in layer.fields] if properties is None else properties
    props = sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier("t", n)) for n in names)
    envelope = sql.SQL("ST_TileEnvelope({}, {}, {})").format(params.add(z), params.add(x), params.add(y))
    return sql.SQL(
        "WITH b AS (SELECT {envelope} AS env), "
        "m AS (SELECT t.fid, {props}ST_AsMVTGeom({geom}, b.env, {extent}, 64, true) AS mvt_geom "
        "FROM {table} t, b WHERE {where}) "
        "SELECT ST_AsMVT(m.*, {name}, {extent}, 'mvt_geom', 'fid') FROM m WHERE mvt_geom IS NOT NULL"
    ).format(
        envelope=envelope,
        props=props,
        geom=geom,
        extent=sql.Literal(EXTENT),
        table=sql.Identifier(SCHEMA, layer.table),
        where=rows.where(viewer, layer, params, extra=extra),
        name=sql.Literal(layer.id),
    )


def tile_statement_versioned(
    viewer: Viewer, layer: Layer, z: int, x: int, y: int, properties: list[str] | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """One tile (:func:`tile_sql`) and the layer's data version, read in the same statement (so in the same
    snapshot: a cache keeps the tile under the version of the data it holds, whichever server it came
    from); its values. :func:`tile_and_version` reads the row."""
    params = Params()
    tile = tile_sql(viewer, layer, z, x, y, params, properties)
    query = sql.SQL("SELECT ({}), (SELECT version FROM gis_ioc.data_versions WHERE layer_table = {})").format(
        tile, params.add(layer.table)
    )
    return query, params.values


def tile_and_version(row: tuple[Any, ...] | None) -> tuple[bytes, int | None]:
    if row is None:
        return b"", None
    return (bytes(row[0]) if row[0] is not None else b""), (int(row[1]) if row[1] is not None else None)


def parse_tile(layer: Layer, tms: str, z: str, row: str, col: str) -> tuple[int, int, int]:
    if tms != TMS_ID:
        raise NotFound(
            f"tile matrix set {tms!r} is not offered; use {TMS_ID}",
            vi=f"tile matrix set {tms!r} không được hỗ trợ; dùng {TMS_ID}",
        )
    try:
        zi, yi, xi = int(z), int(row), int(col)
    except ValueError:
        raise InvalidInput(
            f"tile indices must be integers: {z}/{row}/{col}", vi=f"chỉ số tile phải là số nguyên: {z}/{row}/{col}"
        ) from None
    if not 0 <= zi <= MAX_ZOOM:
        raise InvalidInput(f"tileMatrix {zi} outside 0–{MAX_ZOOM}", vi=f"tileMatrix {zi} nằm ngoài khoảng 0–{MAX_ZOOM}")
    if not (0 <= xi < 2**zi and 0 <= yi < 2**zi):
        raise InvalidInput(
            f"tile {zi}/{yi}/{xi} is outside the tile matrix (0–{2**zi - 1})",
            vi=f"tile {zi}/{yi}/{xi} nằm ngoài lưới tile (0–{2**zi - 1})",
        )
    return zi, xi, yi


def parse_tile_properties(layer: Layer, catalog: Catalog, raw: str | None) -> list[str]:
    """``properties=a,b`` (or ``*`` for every field); default: :func:`default_tile_properties`."""
    if raw is None:
        return default_tile_properties(layer, catalog)
    if raw.strip() == "*":
        return [f.name for f in layer.fields]
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if layer.field(n) is None]
    if unknown:
        available = ", ".join(f.name for f in layer.fields)
        raise InvalidInput(
            f"properties: unknown {unknown}; available: {available}",
            vi=f"properties: không có trường {unknown}; các trường hiện có: {available}",
        )
    return names


#: What a shared cache must key a viewer-dependent answer on: the caller's credentials.
VARY_VIEWER = "Authorization, X-API-Key, Cookie"


def same_for_everyone(layer: Layer) -> bool:
    """Is every answer about this layer the same whoever asks (a public layer without personal fields)?"""
    return layer.access == "public" and not any(f.personal for f in layer.fields)


def cache_headers(layer: Layer, max_age: int | None = None) -> dict[str, str]:
    """Cache-Control and Vary for an answer about ``layer``: answers that depend on who asks are private
    to the caller, and vary with the credentials."""
    age = f", max-age={max_age}" if max_age is not None else ""
    if same_for_everyone(layer):
        return {"Cache-Control": f"public{age}", "Vary": "Accept-Encoding"}
    return {"Cache-Control": f"private{age}", "Vary": f"Accept-Encoding, {VARY_VIEWER}"}


def tile_response(request: Request, data: bytes, layer: Layer) -> Response:
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, **cache_headers(layer, 300)}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MVT, headers=headers)


def _tile_range(bbox: list[float], z: int) -> dict[str, Any]:
    def col(lon: float) -> int:
        return int((lon + 180) / 360 * 2**z)

    def row(lat: float) -> int:
        r = math.radians(lat)
        return int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * 2**z)

    return {
        "tileMatrix": str(z),
        "minTileRow": row(bbox[3]),
        "maxTileRow": row(bbox[1]),
        "minTileCol": col(bbox[0]),
        "maxTileCol": col(bbox[2]),
    }


def tileset(layer: Layer, catalog: Catalog, base: str, extent: Extent) -> dict[str, Any]:
    """Tileset metadata (OGC API Tiles, 2DTMS JSON). The levels listed are those whose tiles can hold
    something: from the style's minimum zoom, or from the zoom at which the layer's largest polygon
    covers a pixel when that is higher (smaller polygons are left out of a tile)."""
    min_zoom = max(catalog.style_of(layer).min_zoom, extent.data_min_zoom)
    bbox = extent.bbox
    return {
        "title": layer.title.vi,
        "description": layer.description.vi,
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": [_tile_range(bbox, z) for z in range(min_zoom, MAX_ZOOM + 1)],
        "layers": [
            {
                "id": layer.id,
                "title": layer.title.vi,
                "dataType": "vector",
                "geometryDimension": 0 if "Point" in layer.geometry else 1 if "Line" in layer.geometry else 2,
                "minTileMatrix": str(min_zoom),
                "maxTileMatrix": str(MAX_ZOOM),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {f.name: {"title": f.title.vi} for f in layer.fields},
                },
            }
        ],
        "boundingBox": {
            "lowerLeft": bbox[:2],
            "upperRight": bbox[2:],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/tiles/{TMS_ID}"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "href": f"{base.rsplit('/collections/', 1)[0]}/tileMatrixSets/{TMS_ID}",
            },
            {
                "rel": "item",
                "type": MVT,
                "templated": True,
                "href": f"{base}/tiles/{TMS_ID}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
            },
        ],
    }


def tileset_list(layer: Layer, base: str) -> dict[str, Any]:
    return {
        "tilesets": [
            {
                "title": layer.title.vi,
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": TMS_URI,
                "links": [
                    {"rel": "self", "type": "application/json", "href": f"{base}/tiles/{TMS_ID}"},
                    {
                        "rel": "item",
                        "type": MVT,
                        "templated": True,
                        "href": f"{base}/tiles/{TMS_ID}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                    },
                ],
            }
        ],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/tiles"}],
    }


def web_mercator_quad() -> dict[str, Any]:
    """The WebMercatorQuad tile matrix set (OGC 17-083r4), levels 0–MAX_ZOOM."""
    origin = [-_WORLD / 2, _WORLD / 2]
    return {
        "id": TMS_ID,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": 559082264.0287178 / 2**z,
                "cellSize": _WORLD / 256 / 2**z,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": origin,
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**z,
                "matrixHeight": 2**z,
            }
            for z in range(MAX_ZOOM + 1)
        ],
    }


def tms_list(base: str) -> JSONResponse:
    return JSONResponse(
        {
            "tileMatrixSets": [
                {
                    "id": TMS_ID,
                    "title": "Google Maps Compatible for the World",
                    "uri": TMS_URI,
                    "links": [{"rel": "self", "type": "application/json", "href": f"{base}/tileMatrixSets/{TMS_ID}"}],
                }
            ]
        }
    )
