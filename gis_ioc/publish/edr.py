"""OGC API - Environmental Data Retrieval over the sensor observations, on the ``iot_devices`` collection.

pygeoapi's EDR API answers ``/collections/iot_devices/{position|radius|area|locations}`` and
``/locations/{location_id}`` through :class:`SensorEdrProvider`, gis_ioc's own EDR provider. It reads as
gis_ioc's feature provider does (:mod:`gis_ioc.publish.provider`): the stations are the rows of the
``iot_devices`` layer the request's viewer may read (:func:`~gis_ioc.query.rows.readable_layer` and
:func:`~gis_ioc.query.rows.visible`), in a transaction bound to that viewer
(:func:`gis_ioc.query.scope.transaction`); a caller who may not read the layer gets 404 as at every other
door, and a commune officer sees only their communes' stations. A station is a device with at least one
datastream.

Semantics:

- ``position``: ``coords=POINT(lon lat)`` (CRS84). Stations are points, so an exact hit is useless: the
  answer is the station **nearest** the point within :data:`SNAP_M` (1 km, on the ellipsoid) among those
  observing the asked parameters, or no coverage when none is that close.
- ``radius``: the stations within ``within`` ``within-units`` of ``coords=POINT(lon lat)``, measured on the
  ellipsoid (``ST_DWithin`` on geography); the units are ``km`` or ``m`` (anything else: 400 naming them),
  ``km`` when ``within-units`` is left out (OWSLib 0.36's ``query_data`` cannot send it).
- ``area``: the stations inside ``coords=POLYGON(…)`` or ``MULTIPOLYGON(…)`` (WKT, CRS84).
- ``locations``: the stations as GeoJSON features (id: the device code; ``bbox`` narrows them);
  ``locations/{device_code}``: that station's observations, as for the queries above.
- ``parameter-name``: observed property ids of ``gis_ioc.iot_properties`` (``pm25,pm10``); an unknown one
  is a 400 naming the known ones. Without it, every property the stations observe.
- ``datetime``: an instant (``2026-12-02T10:00:00+07:00``: the readings taken then), a date (that
  Vietnamese calendar day, Asia/Ho_Chi_Minh) or an interval ``start/end`` with open ends (``..`` or empty),
  bounds included. A time without an offset is UTC. Without ``datetime``: the last 24 hours.
- An answer holds at most :data:`MAX_VALUES` readings; a larger one is a 400 saying how to narrow it
  (a shorter ``datetime``, fewer parameters, a smaller area). Nothing is streamed.
- Readings flagged ``out_of_range`` (outside the property's physical range) are served as ``null``;
  other flags (``late``, ``clock_skew``) do not change the value.
- ``z`` is refused (the observations are 2-D), so are other CRSs than CRS84.

The answer is CoverageJSON (``application/vnd.cov+json``): a ``CoverageCollection`` of ``PointSeries``
coverages, one per station having readings in the window (``id``: the device code), with axes ``x``,
``y`` and ``t`` (the times of that station's readings, UTC) and one ``NdArray`` range per parameter,
``null`` where the parameter has no reading at a time. Parameters carry their unit (UCUM symbol where one
exists) and Vietnamese and English labels.

:func:`edr_routes` builds the Starlette routes: it checks the request first (bad ``coords``, missing or
negative ``within``, unknown units or parameters, a bad ``datetime``, ``z``: a 400 in the caller's
language naming the problem), then hands it to pygeoapi's EDR API.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
import pygeoapi.api.environmental_data_retrieval as edr_api
import shapely
from psycopg import sql
from pygeoapi.provider.base import ProviderInvalidQueryError, ProviderItemNotFoundError
from pygeoapi.provider.base_edr import BaseEDRProvider
from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.errors import DatabaseUnavailable, InvalidInput
from gis_ioc.http import problem
from gis_ioc.iot.model import Property, properties
from gis_ioc.publish.cql import Params
from gis_ioc.publish.provider import BACKEND, ProviderUnavailable, _catalog, _pool
from gis_ioc.query import scope
from gis_ioc.query.rows import visible
from gis_ioc.query.viewer import Viewer

if TYPE_CHECKING:
    from gis_ioc.publish.ogc import FeaturesApi, PygeoapiDoor

log = logging.getLogger(__name__)

LAYER = "iot_devices"
#: How far from the asked point ``position`` looks for the nearest station (metres).
SNAP_M = 1000.0
#: Most readings one answer holds.
MAX_VALUES = 50_000
#: The window without ``datetime``.
DEFAULT_WINDOW = dt.timedelta(hours=24)
UNITS = {"km": 1000.0, "m": 1.0}
#: ``within-units`` when left out (OWSLib 0.36's ``query_data`` cannot send it).
DEFAULT_UNITS = "km"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
UCUM_TYPE = "http://www.opengis.net/def/uom/UCUM/"
#: gis_ioc's units (``iot_properties.unit``) → UCUM.
UCUM = {"µg/m³": "ug/m3", "m": "m", "mm": "mm", "°C": "Cel", "%": "%"}
QUERY_TYPES = ("position", "radius", "area", "locations")
#: What each query takes besides ``f`` and ``lang``.
PARAMS = {
    "position": ("coords", "datetime", "parameter-name", "z", "crs"),
    "radius": ("coords", "within", "within-units", "datetime", "parameter-name", "z", "crs"),
    "area": ("coords", "datetime", "parameter-name", "z", "crs"),
    "locations": ("bbox", "datetime", "limit", "crs"),
    "location": ("datetime", "parameter-name", "z", "crs"),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: The language of the request being answered (set by :func:`edr_routes`; the provider's messages).
LANG: ContextVar[str] = ContextVar("gis_ioc_edr_lang", default="vi")


def _invalid(en: str, vi: str) -> InvalidInput:
    return InvalidInput(en, vi=vi)


# -- the request, checked --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Readings with ``start <= phenomenon_time <= end`` (None: open)."""

    start: dt.datetime | None
    end: dt.datetime | None


@dataclass
class EdrQuery:
    """An EDR request as gis_ioc understands it."""

    kind: str  # position, radius, area, locations, location
    geometry: BaseGeometry | None = None
    distance_m: float | None = None
    window: Window = field(default_factory=lambda: Window(None, None))
    parameters: list[str] = field(default_factory=list)
    location: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def parse_coords(kind: str, raw: str | None) -> BaseGeometry:
    """``coords`` as a 2-D geometry of the type the query takes, in CRS84 (longitude, latitude)."""
    wanted = ("Polygon", "MultiPolygon") if kind == "area" else ("Point",)
    shown = "POLYGON or MULTIPOLYGON" if kind == "area" else "POINT(lon lat)"
    if raw is None or not raw.strip():
        raise _invalid(f"{kind} needs coords: a {shown} in WKT", f"{kind} cần coords: một {shown} dạng WKT")
    try:
        geometry = shapely_wkt.loads(raw)
    except (ShapelyError, ValueError, TypeError):
        raise _invalid(
            f"coords {raw[:80]!r} is not WKT; e.g. coords=POINT(106.05 20.65)",
            f"coords {raw[:80]!r} không phải WKT; ví dụ coords=POINT(106.05 20.65)",
        ) from None
    if geometry.geom_type not in wanted:
        raise _invalid(
            f"{kind} takes a {shown} as coords, not a {geometry.geom_type.upper()}",
            f"{kind} nhận coords là {shown}, không phải {geometry.geom_type.upper()}",
        )
    if geometry.has_z:
        raise _invalid(
            "coords has a height (z); the observations are 2-D: give longitude and latitude only",
            "coords có độ cao (z); số đo chỉ có hai chiều: chỉ ghi kinh độ và vĩ độ",
        )
    if kind == "area" and not geometry.is_empty and not geometry.is_valid:
        # an outline rounded by its client (a ring collapsed, a spike) or drawn crossing itself: the area it
        # encloses, as PostGIS's ST_MakeValid makes it
        reason = explain_validity(geometry)
        geometry = _polygonal(shapely.make_valid(geometry))
        if geometry.is_empty:
            raise _invalid(
                f"coords {raw[:80]!r} encloses no area (GEOS: {reason})",
                f"coords {raw[:80]!r} không bao vùng nào (GEOS: {reason})",
            )
    if geometry.is_empty or not geometry.is_valid:
        raise _invalid(
            f"coords {raw[:80]!r} is empty or not a valid geometry",
            f"coords {raw[:80]!r} rỗng hoặc không phải hình hợp lệ",
        )
    minx, miny, maxx, maxy = geometry.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise _invalid(
            "coords must be longitude (−180…180) then latitude (−90…90), CRS84",
            "coords phải là kinh độ (−180…180) rồi vĩ độ (−90…90), CRS84",
        )
    return geometry


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """The polygons of a repaired geometry (make_valid may add the lines and points a ring collapsed to)."""
    if isinstance(geometry, Polygon | MultiPolygon):
        return geometry
    parts = [
        p
        for g in getattr(geometry, "geoms", [])
        for p in (g.geoms if isinstance(g, MultiPolygon) else [g])
        if isinstance(p, Polygon) and not p.is_empty
    ]
    return MultiPolygon(parts) if len(parts) > 1 else parts[0] if parts else Polygon()


def parse_within(raw: str | None, units: str | None) -> float:
    """``within`` ``within-units`` in metres."""
    if raw is None or not raw.strip():
        raise _invalid(
            "radius needs within: a distance, e.g. within=2", "radius cần within: một khoảng cách, ví dụ within=2"
        )
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise _invalid(
            f"within must be a number 0 or more, not {raw[:40]!r}",
            f"within phải là một số không âm, không phải {raw[:40]!r}",
        )
    allowed = ", ".join(UNITS)
    if units is None or not units.strip():
        units = DEFAULT_UNITS
    factor = UNITS.get(units.strip().lower())
    if factor is None:
        raise _invalid(
            f"within-units {units[:20]!r} is not offered; use one of {allowed}",
            f"within-units {units[:20]!r} không được hỗ trợ; dùng một trong {allowed}",
        )
    return value * factor


def _instant(raw: str, end: bool) -> dt.datetime:
    text = raw.strip()
    if _DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            day = None
        if day is not None:  # a Vietnamese calendar day
            start = dt.datetime.combine(day, dt.time(), VIETNAM)
            return start + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end else start
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _invalid(
            f"datetime {raw[:60]!r} is not an RFC 3339 instant or date (e.g. 2026-12-02T10:00:00+07:00)",
            f"datetime {raw[:60]!r} không phải thời điểm hay ngày RFC 3339 (ví dụ 2026-12-02T10:00:00+07:00)",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def parse_datetime(raw: str | None, now: dt.datetime) -> Window:
    """``datetime``: an instant, a date, or an interval with open ends; the last 24 hours without it."""
    if raw is None or not raw.strip():
        return Window(now - DEFAULT_WINDOW, now)
    text = raw.strip()
    if "/" not in text:
        if _DATE.match(text):
            return Window(_instant(text, False), _instant(text, True))
        when = _instant(text, False)
        return Window(when, when)
    parts = text.split("/")
    if len(parts) != 2 or all(p.strip() in ("", "..") for p in parts):
        raise _invalid(
            f"datetime {raw[:60]!r} is not an interval start/end (one end may be '..')",
            f"datetime {raw[:60]!r} không phải khoảng bắt đầu/kết thúc (một đầu có thể là '..')",
        )
    start = None if parts[0].strip() in ("", "..") else _instant(parts[0], False)
    end = None if parts[1].strip() in ("", "..") else _instant(parts[1], True)
    if start is not None and end is not None and start > end:
        raise _invalid(
            f"datetime {raw[:60]!r} ends before it starts", f"datetime {raw[:60]!r} kết thúc trước khi bắt đầu"
        )
    return Window(start, end)


def _bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    if raw is None or not raw.strip():
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[0] > values[2] or values[1] > values[3]:
        raise _invalid(
            f"bbox {raw[:80]!r} must be four numbers: min lon, min lat, max lon, max lat",
            f"bbox {raw[:80]!r} phải là bốn số: kinh độ nhỏ nhất, vĩ độ nhỏ nhất, kinh độ lớn nhất, vĩ độ lớn nhất",
        )
    if not (values[0] >= -180 and values[2] <= 180 and values[1] >= -90 and values[3] <= 90):
        raise _invalid(
            f"bbox {raw[:80]!r} is outside longitudes -180 to 180 or latitudes -90 to 90 (CRS84)",
            f"bbox {raw[:80]!r} nằm ngoài kinh độ -180 đến 180 hoặc vĩ độ -90 đến 90 (CRS84)",
        )
    return values[0], values[1], values[2], values[3]


def parse_query(kind: str, params: Mapping[str, str], now: dt.datetime, location: str | None = None) -> EdrQuery:
    """Check an EDR request's parameters (no database): the query, or InvalidInput naming the problem."""
    allowed = (*PARAMS[kind], "f", "lang")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        raise _invalid(
            f"unknown parameter {names}; this query takes: {', '.join(allowed)}",
            f"tham số không được hỗ trợ {names}; truy vấn này nhận: {', '.join(allowed)}",
        )
    if params.get("z") is not None:
        raise _invalid(
            "z: the observations are 2-D (no vertical levels); leave z out",
            "z: số đo chỉ có hai chiều (không có độ cao); bỏ tham số z",
        )
    crs = params.get("crs")
    if crs is not None and crs.strip() not in (CRS84, "CRS84", "OGC:CRS84"):
        raise _invalid(
            f"crs {crs[:80]!r} is not offered here; use {CRS84}", f"crs {crs[:80]!r} không được hỗ trợ; dùng {CRS84}"
        )
    query = EdrQuery(kind=kind, window=parse_datetime(params.get("datetime"), now), location=location)
    if kind in ("position", "radius", "area"):
        query.geometry = parse_coords(kind, params.get("coords"))
    if kind == "radius":
        query.distance_m = parse_within(params.get("within"), params.get("within-units"))
    if kind == "locations":
        query.bbox = _bbox(params.get("bbox"))
    wanted = params.get("parameter-name")
    if wanted is not None:
        query.parameters = [n.strip() for n in wanted.split(",") if n.strip()]
        if not query.parameters:
            raise _invalid(
                "parameter-name is empty; name observed properties, e.g. parameter-name=pm25,pm10",
                "parameter-name rỗng; ghi các đại lượng, ví dụ parameter-name=pm25,pm10",
            )
    return query


# -- reading -------------------------------------------------------------------------------------------


def parameter(p: Property) -> dict[str, Any]:
    """An observed property as a CoverageJSON parameter object."""
    unit: dict[str, Any] = {"label": {"vi": p.unit, "en": p.unit}}
    if p.unit in UCUM:
        unit["symbol"] = {"value": UCUM[p.unit], "type": UCUM_TYPE}
    else:
        unit["symbol"] = p.unit
    return {
        "type": "Parameter",
        "description": {"vi": p.name_vi, "en": p.name_en},
        "unit": unit,
        "observedProperty": {"id": p.id, "label": {"vi": p.name_vi, "en": p.name_en}},
    }


def check_parameters(names: Sequence[str], known: Mapping[str, Property]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(known)
        bad = ", ".join(repr(n) for n in unknown)
        raise _invalid(
            f"parameter-name: unknown observed property {bad}; known: {listed}",
            f"parameter-name: không có đại lượng {bad}; các đại lượng: {listed}",
        )


@dataclass(frozen=True)
class Station:
    code: str
    commune: str
    lon: float
    lat: float


def _stations(
    conn: psycopg.Connection[Any], viewer: Viewer, layer: Layer, query: EdrQuery, props: Sequence[str]
) -> list[Station]:
    """The readable stations the query selects (having a datastream of one of ``props``)."""
    params = Params()
    table = sql.Identifier(SCHEMA, layer.table)
    where: list[sql.Composable] = [
        visible(viewer, layer, params),
        sql.SQL(
            "EXISTS (SELECT 1 FROM gis_ioc.iot_datastreams d WHERE d.device_code = t.device_code "
            "AND d.property_id = ANY({}))"
        ).format(params.add(list(props))),
    ]
    order: sql.Composable = sql.SQL("t.device_code")
    limit: sql.Composable = sql.SQL("ALL")
    geometry = query.geometry
    if query.kind in ("position", "radius") and isinstance(geometry, Point):
        point = sql.SQL("ST_SetSRID(ST_MakePoint({}, {}), 4326)::geography").format(
            params.add(float(geometry.x)), params.add(float(geometry.y))
        )
        distance = SNAP_M if query.kind == "position" else float(query.distance_m or 0.0)
        where.append(sql.SQL("ST_DWithin(t.geom::geography, {}, {})").format(point, params.add(distance)))
        if query.kind == "position":
            order = sql.SQL("ST_Distance(t.geom::geography, {}), t.device_code").format(point)
            limit = sql.SQL("1")
    elif query.kind == "area" and geometry is not None:
        where.append(sql.SQL("ST_Intersects(t.geom, ST_GeomFromText({}, 4326))").format(params.add(geometry.wkt)))
    elif query.kind == "location":
        where.append(sql.SQL("t.device_code = {}").format(params.add(query.location)))
    elif query.kind == "locations" and query.bbox is not None:
        where.append(
            sql.SQL("t.geom && ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(*(params.add(v) for v in query.bbox))
        )
    statement = sql.SQL(
        "SELECT t.device_code, t.commune_code, ST_X(t.geom), ST_Y(t.geom) FROM {} t WHERE {} ORDER BY {} LIMIT {}"
    ).format(table, sql.SQL(" AND ").join(where), order, limit)
    return [Station(r[0], r[1], float(r[2]), float(r[3])) for r in conn.execute(statement, params.values)]


def _window_sql(window: Window, params: Params) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    if window.start is not None:
        parts.append(sql.SQL("o.phenomenon_time >= {}").format(params.add(window.start)))
    if window.end is not None:
        parts.append(sql.SQL("o.phenomenon_time <= {}").format(params.add(window.end)))
    return sql.SQL(" AND ").join(parts)


def _too_many(lang: str) -> str:
    if lang == "en":
        return (
            f"more than {MAX_VALUES:,} readings match; narrow the query: a shorter datetime interval, "
            "fewer parameter-name values or a smaller area"
        )
    return (
        f"có hơn {MAX_VALUES:,} số đo khớp".replace(",", ".")
        + "; hãy thu hẹp truy vấn: khoảng datetime ngắn hơn, ít parameter-name hơn hoặc vùng nhỏ hơn"
    )


class TooManyValues(InvalidInput):
    """The answer would hold more than :data:`MAX_VALUES` readings."""


def coverage_collection(
    conn: psycopg.Connection[Any], viewer: Viewer, layer: Layer, query: EdrQuery, lang: str = "vi"
) -> dict[str, Any]:
    """The CoverageJSON answer of a position, radius, area or location query."""
    known = properties(conn)
    check_parameters(query.parameters, known)
    asked = query.parameters or list(known)
    stations = _stations(conn, viewer, layer, query, asked)
    out: dict[str, Any] = {
        "type": "CoverageCollection",
        "domainType": "PointSeries",
        "parameters": {},
        "referencing": [
            {"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}},
            {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}},
        ],
        "coverages": [],
    }
    if not stations:
        return out
    params = Params()
    streams = conn.execute(
        "SELECT id, device_code, property_id FROM gis_ioc.iot_datastreams "
        "WHERE device_code = ANY(%s) AND property_id = ANY(%s)",
        ([s.code for s in stations], asked),
    ).fetchall()
    by_id = {int(r[0]): (r[1], r[2]) for r in streams}
    window = _window_sql(query.window, params)
    ids = params.add(sorted(by_id))
    counted = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM gis_ioc.iot_observations o "
            "WHERE o.datastream_id = ANY({}) AND {} LIMIT {}) s"
        ).format(ids, window, params.add(MAX_VALUES + 1)),
        params.values,
    ).fetchone()
    if counted is not None and int(counted[0]) > MAX_VALUES:
        raise TooManyValues(_too_many("en"), vi=_too_many("vi"))
    params = Params()
    window = _window_sql(query.window, params)
    rows = conn.execute(
        sql.SQL(
            "SELECT o.datastream_id, o.phenomenon_time, o.result, 'out_of_range' = ANY(o.flags) "
            "FROM gis_ioc.iot_observations o WHERE o.datastream_id = ANY({}) AND {} "
            "ORDER BY o.phenomenon_time, o.datastream_id LIMIT {}"
        ).format(params.add(sorted(by_id)), window, params.add(MAX_VALUES + 1)),
        params.values,
    ).fetchall()
    if len(rows) > MAX_VALUES:  # readings stored since they were counted
        raise TooManyValues(_too_many("en"), vi=_too_many("vi"))
    readings: dict[str, dict[dt.datetime, dict[str, float | None]]] = {}
    for ds, when, result, out_of_range in rows:
        device, prop = by_id[int(ds)]
        readings.setdefault(device, {}).setdefault(when, {})[prop] = None if out_of_range else float(result)
    used: set[str] = set()
    for station in stations:
        series = readings.get(station.code)
        if not series:
            continue
        times = sorted(series)
        own = sorted({p for values in series.values() for p in values})
        used.update(own)
        out["coverages"].append(
            {
                "type": "Coverage",
                "id": station.code,
                "domain": {
                    "type": "Domain",
                    "domainType": "PointSeries",
                    "axes": {
                        "x": {"values": [station.lon]},
                        "y": {"values": [station.lat]},
                        "t": {"values": [_iso(t) for t in times]},
                    },
                },
                "ranges": {
                    p: {
                        "type": "NdArray",
                        "dataType": "float",
                        "axisNames": ["t"],
                        "shape": [len(times)],
                        "values": [series[t].get(p) for t in times],
                    }
                    for p in own
                },
            }
        )
    out["parameters"] = {p: parameter(known[p]) for p in (query.parameters or sorted(used))}
    return out


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def locations(conn: psycopg.Connection[Any], viewer: Viewer, layer: Layer, query: EdrQuery) -> dict[str, Any]:
    """The readable stations as GeoJSON (id: the device code), with the properties they observe."""
    stations = _stations(conn, viewer, layer, query, list(properties(conn)))
    observed: dict[str, list[str]] = {}
    if stations:
        for device, prop in conn.execute(
            "SELECT device_code, property_id FROM gis_ioc.iot_datastreams WHERE device_code = ANY(%s) "
            "ORDER BY device_code, property_id",
            ([s.code for s in stations],),
        ):
            observed.setdefault(device, []).append(prop)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": s.code,
                "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                "properties": {"commune_code": s.commune, "parameter-name": observed.get(s.code, [])},
            }
            for s in stations
        ],
    }


# -- the pygeoapi provider -----------------------------------------------------------------------------


class SensorEdrProvider(BaseEDRProvider):  # type: ignore[misc]
    """``type: edr``, ``name: gis_ioc.publish.edr.SensorEdrProvider`` on the ``iot_devices`` resource.

    Built per request by pygeoapi, cheaply (no database): the pool, catalog and viewer come from
    :data:`gis_ioc.publish.provider.BACKEND` as for gis_ioc's feature provider."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.conninfo: str = provider_def["data"]
        self.backend = BACKEND.get()
        dirs = provider_def["catalog"]
        self.catalog: Catalog = (
            self.backend.catalog if self.backend else _catalog(dirs["layers"], dirs["styles"], dirs["config"])
        )
        self.viewer: Viewer = self.backend.viewer if self.backend else Viewer.of(CURRENT.get())
        self.whole: Layer = self.catalog.layer(provider_def.get("layer", LAYER))
        self._fields: dict[str, dict[str, Any]] = {}

    def _read[T](self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(conn)`` in a transaction bound to the viewer; gis_ioc's errors as pygeoapi's."""
        if not self.viewer.can_read(self.whole):
            raise ProviderItemNotFoundError(user_msg=f"no collection {self.whole.id!r}")
        pool = self.backend.pool if self.backend else _pool(self.conninfo)
        lang = LANG.get()
        try:
            with scope.transaction(pool, self.viewer, self.catalog, "read") as conn:
                return work(conn)
        except InvalidInput as exc:
            raise ProviderInvalidQueryError(user_msg=exc.text(lang)) from exc
        except psycopg.errors.QueryCanceled as exc:
            message = "the query took too long; narrow it" if lang == "en" else "truy vấn quá lâu; hãy thu hẹp nó"
            raise ProviderUnavailable(user_msg=message) from exc
        except (DatabaseUnavailable, psycopg.OperationalError, OSError) as exc:
            raise ProviderUnavailable(user_msg="PostGIS is unreachable or busy; try again shortly") from exc

    def get_fields(self) -> dict[str, dict[str, Any]]:
        """The observed properties (EDR parameters)."""
        if not self._fields:
            known = self._read(properties)
            self._fields = {
                p.id: {"type": "number", "title": p.name_en, "x-ogc-unit": UCUM.get(p.unit, p.unit)}
                for p in known.values()
            }
        return self._fields

    def get_parameters(self, parameters: set[str] | list[str] | None = None, as_list: bool = False) -> Any:
        """The observed properties as CoverageJSON parameters (the collection's ``parameter_names``)."""
        try:
            known = self._read(properties)
        except ProviderUnavailable:
            log.warning("the observed properties could not be read for the collection description")
            return [] if as_list else {}
        chosen = {k: parameter(p) | {"id": k} for k, p in known.items() if not parameters or k in parameters}
        return list(chosen.values()) if as_list else chosen

    def _query(self, kind: str, kwargs: dict[str, Any]) -> EdrQuery:
        """pygeoapi's arguments as gis_ioc's query (checked again: pygeoapi may be run on its own)."""
        params: dict[str, str] = {}
        if (shape := kwargs.get("wkt")) is not None:
            params["coords"] = shape.wkt if isinstance(shape, BaseGeometry) else str(shape)
        if kwargs.get("datetime_"):
            params["datetime"] = str(kwargs["datetime_"])
        if kwargs.get("select_properties"):
            params["parameter-name"] = ",".join(kwargs["select_properties"])
        if kind == "radius":
            for name, key in (("within", "within"), ("within-units", "within_units")):
                if kwargs.get(key) is not None:
                    params[name] = str(kwargs[key])
        if kwargs.get("z") is not None:
            params["z"] = str(kwargs["z"])
        try:
            query = parse_query(kind, params, dt.datetime.now(dt.UTC), kwargs.get("location_id"))
        except InvalidInput as exc:
            raise ProviderInvalidQueryError(user_msg=exc.text(LANG.get())) from exc
        if kind == "locations" and kwargs.get("bbox"):
            bbox = kwargs["bbox"]
            query.bbox = (
                (bbox[0], bbox[1], bbox[2], bbox[3]) if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
            )
        return query

    def _answer(self, query: EdrQuery) -> dict[str, Any]:
        layer = self.viewer.sees(self.whole)
        lang = LANG.get()
        return self._read(lambda conn: coverage_collection(conn, self.viewer, layer, query, lang))

    def position(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer(self._query("position", kwargs))

    def radius(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer(self._query("radius", kwargs))

    def area(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer(self._query("area", kwargs))

    def locations(self, **kwargs: Any) -> dict[str, Any]:
        location = kwargs.get("location_id")
        if location is None:
            query = self._query("locations", kwargs)
            layer = self.viewer.sees(self.whole)
            return self._read(lambda conn: locations(conn, self.viewer, layer, query))
        query = self._query("location", kwargs)
        layer = self.viewer.sees(self.whole)
        found = self._read(lambda conn: _stations(conn, self.viewer, layer, query, list(properties(conn))))
        if not found:
            message = f"no station {location!r}" if LANG.get() == "en" else f"không có trạm {location!r}"
            raise ProviderItemNotFoundError(user_msg=message)
        return self._answer(query)


# -- the routes ----------------------------------------------------------------------------------------


#: The answers' formats (``f``): CoverageJSON (GeoJSON for ``locations``), pygeoapi's HTML page and CSV, and
#: JSON-LD, which pygeoapi's page links to and answers as CoverageJSON.
FORMATS = ("json", "html", "csv", "jsonld")


def language(request: Request) -> str:
    """``lang=en`` or an English ``Accept-Language``: English; otherwise Vietnamese."""
    lang = request.query_params.get("lang")
    if lang is None:
        lang = request.headers.get("accept-language", "vi").split(",")[0].strip()
    return "en" if lang.lower().startswith("en") else "vi"


class _ObservationsApi:
    """pygeoapi's ``API`` as its EDR handler should see it: pygeoapi checks ``datetime`` against the
    collection's temporal extent, which is the devices' (the features), not their observations'; gis_ioc
    checks ``datetime`` itself, so the EDR handler is shown the collection without a temporal extent. It
    also renders its HTML page in the API's default language whatever the request's: here the default is
    the request's language."""

    def __init__(self, api: Any, dataset: str, locale: Any) -> None:
        self._api = api
        self.default_locale = locale or api.default_locale
        config: dict[str, Any] = api.config
        resource = config["resources"].get(dataset)
        if resource is not None and "temporal" in resource.get("extents", {}):
            extents = {k: v for k, v in resource["extents"].items() if k != "temporal"}
            resources = {**config["resources"], dataset: {**resource, "extents": extents}}
            config = {**config, "resources": resources}
        self.config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def _edr_call(query_type: str) -> Callable[..., Any]:
    def call(api: Any, api_request: Any, dataset: str, location_id: str | None = None) -> Any:
        observations = _ObservationsApi(api, dataset, api_request.locale)
        return edr_api.get_collection_edr_query(observations, api_request, dataset, None, query_type, location_id)

    return call


def _as_problem(response: Response) -> Response:
    """pygeoapi's JSON error (``{"code", "description"}``) as ``application/problem+json``."""
    if response.status_code < 400 or not response.headers.get("content-type", "").startswith("application/json"):
        return response
    try:
        body = json.loads(bytes(response.body))
        detail = str(body.get("description") or body.get("detail") or "")
    except (ValueError, AttributeError):
        return response
    titles = {400: "Invalid input", 404: "Not found", 503: DatabaseUnavailable.title}
    return problem(response.status_code, titles.get(response.status_code, "Error"), detail)


def edr_routes(door: PygeoapiDoor, features: FeaturesApi) -> list[Route]:
    """The EDR query routes under ``/collections/{collection_id}`` (guarded, private to the caller)."""
    from gis_ioc.publish.ogc import _guard, per_viewer

    def handler(kind: str, query_type: str) -> Callable[[Request], Any]:
        answer = door(_edr_call(query_type), "collection_id", "location_id", validate=False)

        async def endpoint(request: Request) -> Response:
            viewer, layer = features.layer(request)  # 404 unless readable
            lang = language(request)
            try:
                if layer.id != LAYER:
                    raise _invalid(
                        f"collection {layer.id!r} offers no EDR queries; {LAYER!r} does",
                        f"lớp {layer.id!r} không có truy vấn EDR; lớp {LAYER!r} có",
                    )
                params = dict(request.query_params)
                if params.get("f", "json") not in FORMATS:
                    raise _invalid(
                        f"f={params['f'][:40]!r} is not offered here; use one of {', '.join(FORMATS)}",
                        f"f={params['f'][:40]!r} không có ở đây; dùng một trong {', '.join(FORMATS)}",
                    )
                query = parse_query(kind, params, dt.datetime.now(dt.UTC), request.path_params.get("location_id"))
                if query.parameters:
                    known = await run_in_threadpool(features._run, viewer, properties)
                    check_parameters(query.parameters, known)
            except InvalidInput as exc:
                return problem(exc.status, exc.title, exc.text(lang))
            token = LANG.set(lang)
            try:
                response = await answer(request)
            finally:
                LANG.reset(token)
            if kind == "locations" and response.headers.get("content-type", "").startswith("application/vnd.cov+json"):
                response.headers["content-type"] = "application/geo+json"  # the stations, not a coverage
            return _as_problem(response)

        return endpoint

    base = "/collections/{collection_id}"
    paths = [
        (f"{base}/position", "position", "position"),
        (f"{base}/radius", "radius", "radius"),
        (f"{base}/area", "area", "area"),
        (f"{base}/locations", "locations", "locations"),
        (f"{base}/locations/{{location_id}}", "location", "locations"),
    ]
    return [
        Route(path, per_viewer(_guard(handler(kind, query_type)), features.catalog), methods=["GET"])
        for path, kind, query_type in paths
    ]
