"""Serving the sensors: stations with their latest values, AQI, flood alarm level and staleness, and a
SensorThings-style read of datastreams and observations (a documented subset of OGC SensorThings 1.1).

Every function takes the viewer's connection (a transaction bound by :mod:`gis_ioc.query.scope`) and the
viewer: the devices are rows of the ``iot_devices`` layer (internal), read through the access core, so a
caller who may not read the layer sees no station, and a commune officer only the communes' own.

SensorThings subset (``/api/iot/v1.1``): ``Datastreams`` and ``Datastreams({id})/Observations`` with
``$top`` (default 100, at most 1000), ``$skip``, ``$count=true``, ``$orderby=phenomenonTime [asc|desc]``
and ``$filter`` on ``phenomenonTime`` only: comparisons ``gt``, ``ge``, ``lt``, ``le``, ``eq`` with an
ISO 8601 instant carrying its offset, joined by ``and`` (e.g.
``phenomenonTime ge 2026-01-01T00:00:00+07:00 and phenomenonTime lt 2026-01-02T00:00:00+07:00``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.iot import aqi, judge
from gis_ioc.publish.cql import Params
from gis_ioc.query import Viewer
from gis_ioc.query.rows import readable_layer, visible

LAYER = "iot_devices"
MAX_TOP = 1000
ROMAN = {1: "I", 2: "II", 3: "III"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def _devices_sql(viewer: Viewer, catalog: Catalog, params: Params) -> sql.Composed | None:
    """The devices the viewer may read (None: the layer is not readable to them)."""
    try:
        layer = readable_layer(viewer, catalog, LAYER)
    except NotFound:
        return None
    return sql.SQL(
        "SELECT t.device_code, t.commune_code, t.kind, t.status, ST_X(t.geom), ST_Y(t.geom) "
        "FROM layers.iot_devices t WHERE {}"
    ).format(visible(viewer, layer, params))


def _visible_streams(
    conn: psycopg.Connection[Any], viewer: Viewer, catalog: Catalog, datastream_ids: Sequence[int] | None = None
) -> dict[str, tuple[str, str, str, float, float]]:
    """device_code → (commune, kind, status, lon, lat) of the readable devices having a datastream (one of
    ``datastream_ids``, when given)."""
    params = Params()
    devices = _devices_sql(viewer, catalog, params)
    if devices is None:
        return {}
    query = sql.SQL(
        "SELECT v.* FROM ({}) v(device_code, commune_code, kind, status, lon, lat) WHERE EXISTS ("
        "SELECT 1 FROM gis_ioc.iot_datastreams d WHERE d.device_code = v.device_code AND ({} OR d.id = ANY({})))"
    ).format(devices, params.add(datastream_ids is None), params.add(list(datastream_ids or [])))
    return {r[0]: (r[1], r[2], r[3], float(r[4]), float(r[5])) for r in conn.execute(query, params.values)}


def readable_devices(conn: psycopg.Connection[Any], viewer: Viewer, catalog: Catalog) -> list[str]:
    """The codes of the devices (with a datastream) the viewer may read."""
    return sorted(_visible_streams(conn, viewer, catalog))


@dataclass(frozen=True)
class Texts:
    lang: str

    def alarm(self, level: int) -> str:
        return f"Alarm level {ROMAN[level]}" if self.lang == "en" else f"Báo động cấp {ROMAN[level]}"


def stations(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    rules: judge.Rules,
    *,
    lang: str = "vi",
    now: dt.datetime | None = None,
    datastream_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The readable stations (devices with datastreams; those of ``datastream_ids`` only, when given) as a
    GeoJSON FeatureCollection: latest value per property, the AQI and its band, the flood alarm level,
    staleness and the number of live alerts."""
    when = now or dt.datetime.now(dt.UTC)
    devices = _visible_streams(conn, viewer, catalog, datastream_ids)
    if not devices:
        return {"type": "FeatureCollection", "features": [], "generated": when.isoformat()}
    streams = judge.load_streams(conn, devices=sorted(devices), props=set(aqi.PARAMETERS))
    names = {
        r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, name_vi, name_en, unit FROM gis_ioc.iot_properties")
    }
    alerts = dict(
        conn.execute(
            "SELECT device_code, count(*) FROM gis_ioc.iot_alerts WHERE state <> 'closed' AND device_code = ANY(%s) "
            "GROUP BY 1",
            (sorted(devices),),
        ).fetchall()
    )
    daily = judge.daily_dust(conn, streams)
    by_device: dict[str, list[judge.Stream]] = {}
    for s in streams:
        by_device.setdefault(s.device, []).append(s)
    texts = Texts(lang)
    features = []
    for device, own in sorted(by_device.items()):
        commune, kind, status, lon, lat = devices[device]
        readings = []
        for s in sorted(own, key=lambda x: x.prop):
            name_vi, name_en, unit = names.get(s.prop, (s.prop, s.prop, ""))
            readings.append(
                {
                    "datastream": s.id,
                    "property": s.prop,
                    "name": name_en if lang == "en" else name_vi,
                    "unit": unit,
                    "value": s.result,
                    "time": s.time.isoformat() if s.time else None,
                    "interval_s": s.interval_s,
                    "stale": judge.is_stale(s.time, s.created_at, s.interval_s, when),
                }
            )
        props: dict[str, Any] = {
            "device_code": device,
            "commune_code": commune,
            "kind": kind,
            "status": status,
            "readings": readings,
            "stale": any(r["stale"] for r in readings),
            "alerts": int(alerts.get(device, 0)),
            "aqi": _aqi(rules.aqi, own, daily, lang),
            "water": None,
        }
        if (water := judge.gauge_of(rules, device, own)) is not None:
            station, _, metres = water
            level = station.alarm_level(metres)
            props["water"] = {
                "station": station.id,
                "name": station.name_en if lang == "en" else station.name_vi,
                "river": station.river_en if lang == "en" else station.river_vi,
                "level": level,
                "label": texts.alarm(level) if level else ("No alarm" if lang == "en" else "Dưới báo động I"),
                "thresholds": list(station.levels),
            }
        features.append(
            {
                "type": "Feature",
                "id": device,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features, "generated": when.isoformat()}


def _aqi(
    table: aqi.AqiTable, own: Sequence[judge.Stream], daily: dict[int, tuple[dt.date, float]], lang: str
) -> dict[str, Any] | None:
    """The station's VN_AQI as the judge computes it (:func:`gis_ioc.iot.judge.device_aqi`), with its band."""
    found = judge.device_aqi(table, own, daily)
    if found is None:
        return None
    band = table.band(found.value.value)
    return {
        "value": found.value.value,
        "dominant": found.value.dominant,
        "basis": found.basis,
        "at": found.at.isoformat(),
        "band": band.code,
        "label": band.label(lang),
        "colour": band.colour,
    }


# -- SensorThings-style reads --------------------------------------------------------------------------

_CLAUSE = re.compile(r"^\s*phenomenonTime\s+(gt|ge|lt|le|eq)\s+(\S+)\s*$", re.IGNORECASE)
_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "="}


def parse_filter(text: str | None) -> list[tuple[str, dt.datetime]]:
    """``$filter`` of the subset: comparisons of phenomenonTime with instants, joined by ``and``."""
    if not text or not text.strip():
        return []
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if match is None:
            raise InvalidInput(
                f"$filter: {part[:80]!r} is not supported; use phenomenonTime gt|ge|lt|le|eq <ISO 8601 instant>, "
                "joined by 'and'",
                vi=f"$filter: {part[:80]!r} không được hỗ trợ; dùng phenomenonTime gt|ge|lt|le|eq "
                "<thời điểm ISO 8601>, nối bằng 'and'",
            )
        raw = match[2].strip("'\"")
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise InvalidInput(
                f"$filter: {raw[:40]!r} is not an ISO 8601 instant with an offset (e.g. 2026-01-01T00:00:00+07:00)",
                vi=f"$filter: {raw[:40]!r} không phải thời điểm ISO 8601 có múi giờ (ví dụ 2026-01-01T00:00:00+07:00)",
            )
        out.append((_OPS[match[1].lower()], when))
    return out


def _page(top: int | None, skip: int | None) -> tuple[int, int]:
    top = 100 if top is None else top
    skip = 0 if skip is None else skip
    if not 0 <= top <= MAX_TOP:
        raise InvalidInput(
            f"$top must be 0 to {MAX_TOP}, not {top}", vi=f"$top phải từ 0 đến {MAX_TOP}, không phải {top}"
        )
    if skip < 0:
        raise InvalidInput(f"$skip cannot be negative: {skip}", vi=f"$skip không được âm: {skip}")
    return top, skip


def _datastream_json(base: str, row: Sequence[Any], lang: str) -> dict[str, Any]:
    ds, device, prop, interval, name_vi, name_en, unit, first, last = row
    name = name_en if lang == "en" else name_vi
    return {
        "@iot.id": ds,
        "@iot.selfLink": f"{base}/Datastreams({ds})",
        "name": f"{device}: {name}",
        "description": (
            f"{name} at {device}, every {interval} s"
            if lang == "en"
            else f"{name} tại {device}, chu kỳ {interval} giây"
        ),
        "observationType": MEASUREMENT,
        "unitOfMeasurement": {"name": unit, "symbol": unit, "definition": ""},
        "ObservedProperty": {"@iot.id": prop, "name": name},
        "Thing": {"@iot.id": device},
        "properties": {"device_code": device, "property": prop, "interval_s": interval},
        "phenomenonTime": f"{first.isoformat()}/{last.isoformat()}" if first and last else None,
        "Observations@iot.navigationLink": f"{base}/Datastreams({ds})/Observations",
    }


_DATASTREAMS = """
SELECT d.id, d.device_code, d.property_id, d.interval_s, p.name_vi, p.name_en, p.unit,
       (SELECT min(h.hour) FROM gis_ioc.iot_hourly h WHERE h.datastream_id = d.id), l.phenomenon_time
  FROM gis_ioc.iot_datastreams d JOIN gis_ioc.iot_properties p ON p.id = d.property_id
  LEFT JOIN gis_ioc.iot_latest l ON l.datastream_id = d.id
 WHERE d.device_code IN (SELECT device_code FROM ({devices}) v)
"""


def datastreams(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    base: str,
    *,
    top: int | None = None,
    skip: int | None = None,
    count: bool = False,
    lang: str = "vi",
) -> dict[str, Any]:
    """``GET …/Datastreams``: the datastreams of the devices the viewer may read, by id."""
    top, skip = _page(top, skip)
    params = Params()
    devices = _devices_sql(viewer, catalog, params)
    if devices is None:
        return {"@iot.count": 0, "value": []} if count else {"value": []}
    query = sql.SQL(_DATASTREAMS + " ORDER BY d.id LIMIT {top} OFFSET {skip}").format(
        devices=devices, top=params.add(top + 1), skip=params.add(skip)
    )
    rows = conn.execute(query, params.values).fetchall()
    out: dict[str, Any] = {}
    if count:
        cparams = Params()
        cdevices = _devices_sql(viewer, catalog, cparams)
        assert cdevices is not None
        total = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM gis_ioc.iot_datastreams d WHERE d.device_code IN (SELECT device_code FROM ({}) v)"
            ).format(cdevices),
            cparams.values,
        ).fetchone()
        out["@iot.count"] = int(total[0]) if total else 0
    out["value"] = [_datastream_json(base, r, lang) for r in rows[:top]]
    if len(rows) > top:
        out["@iot.nextLink"] = f"{base}/Datastreams?$top={top}&$skip={skip + top}"
    return out


def datastream(
    conn: psycopg.Connection[Any], catalog: Catalog, viewer: Viewer, base: str, ds: int, lang: str = "vi"
) -> dict[str, Any]:
    """``GET …/Datastreams({id})``; 404 when it does not exist or its device is not readable."""
    params = Params()
    devices = _devices_sql(viewer, catalog, params)
    row = None
    if devices is not None:
        query = sql.SQL(_DATASTREAMS + " AND d.id = {ds}").format(devices=devices, ds=params.add(ds))
        row = conn.execute(query, params.values).fetchone()
    if row is None:
        raise NotFound(f"no datastream {ds}", vi=f"không có luồng dữ liệu {ds}")
    return _datastream_json(base, row, lang)


def observations(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    base: str,
    ds: int,
    *,
    top: int | None = None,
    skip: int | None = None,
    filter: str | None = None,
    orderby: str | None = None,
    count: bool = False,
) -> dict[str, Any]:
    """``GET …/Datastreams({id})/Observations``: the readings, flagged ones with their flags
    (``resultQuality``), newest first unless ``$orderby=phenomenonTime asc``."""
    datastream(conn, catalog, viewer, base, ds)  # 404 unless readable
    top, skip = _page(top, skip)
    conditions = parse_filter(filter)
    order = (orderby or "phenomenonTime desc").strip().lower().split()
    if order[:1] != ["phenomenontime"] or order[1:] not in ([], ["asc"], ["desc"]):
        raise InvalidInput(
            f"$orderby: {orderby!r} is not supported; use phenomenonTime asc or phenomenonTime desc",
            vi=f"$orderby: {orderby!r} không được hỗ trợ; dùng phenomenonTime asc hoặc phenomenonTime desc",
        )
    direction = sql.SQL("DESC" if order[1:] == ["desc"] else "ASC")
    params = Params()
    where: list[sql.Composable] = [sql.SQL("datastream_id = {}").format(params.add(ds))]
    for op, when in conditions:
        where.append(sql.SQL("phenomenon_time {} {}").format(sql.SQL(op), params.add(when)))
    clause = sql.SQL(" AND ").join(where)
    query = sql.SQL(
        "SELECT phenomenon_time, result, received_at, flags FROM gis_ioc.iot_observations WHERE {} "
        "ORDER BY phenomenon_time {} LIMIT {} OFFSET {}"
    ).format(clause, direction, params.add(top + 1), params.add(skip))
    rows = conn.execute(query, params.values).fetchall()
    out: dict[str, Any] = {}
    if count:
        total = conn.execute(
            sql.SQL("SELECT count(*) FROM gis_ioc.iot_observations WHERE {}").format(clause), params.values
        ).fetchone()
        out["@iot.count"] = int(total[0]) if total else 0
    out["value"] = [
        {
            "@iot.id": f"{ds}-{int(t.timestamp() * 1000)}",
            "phenomenonTime": t.isoformat(),
            "resultTime": received.isoformat(),
            "result": result,
            "resultQuality": list(flags),
        }
        for t, result, received, flags in rows[:top]
    ]
    if len(rows) > top:
        query_string = {"$top": top, "$skip": skip + top, "$filter": filter, "$orderby": orderby}
        kept = urlencode({k: v for k, v in query_string.items() if v is not None}, quote_via=quote)
        out["@iot.nextLink"] = f"{base}/Datastreams({ds})/Observations?{kept}"
    return out
