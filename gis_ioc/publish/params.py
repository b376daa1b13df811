"""Query parameters of the items endpoint, validated into an :class:`ItemsQuery`.

Every malformed value is a 400 whose message names the parameter and what would be accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gis_ioc import crs as crs_registry
from gis_ioc.catalog import Layer
from gis_ioc.crs import PublishedCrs
from gis_ioc.errors import InvalidInput
from gis_ioc.publish.cql import TYPE_VI, parse_filter
from gis_ioc.publish.features import ItemsQuery
from gis_ioc.query.viewer import Viewer

ITEMS_PARAMS = (
    "f",
    "lang",
    "limit",
    "offset",
    "after",
    "bbox",
    "bbox-crs",
    "datetime",
    "crs",
    "properties",
    "sortby",
    "skipGeometry",
    "filter",
    "filter-lang",
    "filter-crs",
    "resulttype",
)
ITEM_PARAMS = ("f", "lang", "crs")
_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[Tt ](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?P<tz>[Zz]|[+-]\d{2}:\d{2}))?$"
)


def check_unknown(params: Mapping[str, str], allowed: tuple[str, ...] | list[str]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        raise InvalidInput(
            f"unknown parameter {names}; this endpoint takes: {', '.join(allowed)}",
            vi=f"tham số không được hỗ trợ {names}; địa chỉ này nhận: {', '.join(allowed)}",
        )


def _int(params: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            f"{name} must be an integer, got {raw!r}", vi=f"{name} phải là số nguyên, không phải {raw!r}"
        ) from None
    if value < minimum:
        raise InvalidInput(
            f"{name} must be at least {minimum}, got {value}",
            vi=f"{name} phải từ {minimum} trở lên, không phải {value}",
        )
    return value


def parse_crs(params: Mapping[str, str], name: str) -> PublishedCrs:
    raw = params.get(name)
    if raw is None:
        return crs_registry.PUBLISHED[0]
    try:
        return crs_registry.lookup(raw)
    except InvalidInput as exc:  # crs.lookup's message names the CRS and the offered ones, in English only
        offered = ", ".join(c.uri for c in crs_registry.PUBLISHED)
        raise InvalidInput(
            f"{name}: {exc}", vi=f"{name}: hệ tọa độ {raw!r} không được hỗ trợ; dùng một trong: {offered}"
        ) from None


def parse_bbox(raw: str, bbox_crs: PublishedCrs) -> tuple[float, float, float, float]:
    """bbox in its CRS → CRS84 (VN-2000 through the pinned transformation). Four numbers, or six with
    heights (minx,miny,minz,maxx,maxy,maxz, as OGC API Features allows): the layers are 2D, so the heights
    are checked and then ignored."""
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidInput(
            "bbox needs 4 comma-separated numbers (minx,miny,maxx,maxy) or 6 with heights "
            f"(minx,miny,minz,maxx,maxy,maxz), got {len(parts)}: {raw!r}",
            vi="bbox cần 4 số cách nhau bằng dấu phẩy (minx,miny,maxx,maxy) hoặc 6 số kèm độ cao "
            f"(minx,miny,minz,maxx,maxy,maxz), nhưng có {len(parts)}: {raw!r}",
        )
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput(
            f"bbox values must be numbers: {raw!r}", vi=f"bbox: các giá trị phải là số: {raw!r}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(
            f"bbox values must be finite numbers: {raw!r}", vi=f"bbox: các giá trị phải là số hữu hạn: {raw!r}"
        )
    if len(values) == 6:
        minz, maxz = values[2], values[5]
        if minz > maxz:
            raise InvalidInput(
                f"bbox: the lower height ({minz}) is above the upper height ({maxz})",
                vi=f"bbox: độ cao dưới ({minz}) lớn hơn độ cao trên ({maxz})",
            )
        values = [values[0], values[1], values[3], values[4]]  # 2D data: the heights select nothing
    if bbox_crs.lat_first:  # EPSG:4326 / 4756: latitude first
        values = [values[1], values[0], values[3], values[2]]
    minx, miny, maxx, maxy = values
    if bbox_crs.srid == 4326 or bbox_crs.epsg == 4756:
        if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
            raise InvalidInput(
                f"bbox latitude out of range [-90, 90]: {raw!r}", vi=f"bbox: vĩ độ nằm ngoài khoảng [-90, 90]: {raw!r}"
            )
        if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
            raise InvalidInput(
                f"bbox longitude out of range [-180, 180]: {raw!r}",
                vi=f"bbox: kinh độ nằm ngoài khoảng [-180, 180]: {raw!r}",
            )
    if miny > maxy:
        raise InvalidInput(
            f"bbox: the lower y ({miny}) is above the upper y ({maxy})",
            vi=f"bbox: y nhỏ nhất ({miny}) lớn hơn y lớn nhất ({maxy})",
        )
    if minx > maxx:
        raise InvalidInput(
            f"bbox: minx ({minx}) is greater than maxx ({maxx}); boxes across the antimeridian are not supported",
            vi=f"bbox: minx ({minx}) lớn hơn maxx ({maxx}); không hỗ trợ khung bao vắt qua kinh tuyến 180°",
        )
    if bbox_crs.srid == 4326:
        return (minx, miny, maxx, maxy)
    t = crs_registry.transformer(bbox_crs.epsg or 4326, 4326)
    lon0, lat0, lon1, lat1 = t.transform_bounds(minx, miny, maxx, maxy, densify_pts=21)
    return (float(lon0), float(lat0), float(lon1), float(lat1))


def _instant(text: str, *, end: bool) -> datetime:
    match = _RFC3339.match(text)
    if match is None:
        raise InvalidInput(
            f"datetime {text!r} is not RFC 3339 (e.g. 2026-07-01T00:00:00Z or 2026-07-01)",
            vi=f"datetime {text!r} không đúng dạng RFC 3339 (ví dụ 2026-07-01T00:00:00Z hoặc 2026-07-01)",
        )
    try:
        day = date.fromisoformat(match["date"])
        if match["time"] is None:  # a whole day
            start = datetime.combine(day, time(0), UTC)
            return start + timedelta(days=1, microseconds=-1) if end else start
        tz = "+00:00" if match["tz"] in ("Z", "z") else match["tz"]
        return datetime.fromisoformat(f"{match['date']}T{match['time']}{tz}")
    except ValueError:
        raise InvalidInput(
            f"datetime {text!r} is not a valid date or time",
            vi=f"datetime {text!r} không phải ngày hoặc thời điểm hợp lệ",
        ) from None


#: Interval ends that mean "open": year 0 and the last day of year 9999.
OPEN_START = "0000-"
OPEN_END = "9999-12-31"


def parse_datetime(raw: str) -> tuple[datetime | None, datetime | None]:
    if "/" in raw:
        first, _, second = raw.partition("/")
        if "/" in second:
            raise InvalidInput(
                f"datetime interval has more than two ends: {raw!r}",
                vi=f"datetime: khoảng thời gian có nhiều hơn hai đầu: {raw!r}",
            )
        # clients that cannot send an open end send the calendar's ends (QGIS: 0000-01-01T00:00:00Z)
        sentinel = first.startswith(OPEN_START) or second.startswith(OPEN_END)
        begin = None if first in ("", "..") or first.startswith(OPEN_START) else _instant(first, end=False)
        end = None if second in ("", "..") or second.startswith(OPEN_END) else _instant(second, end=True)
        if begin is None and end is None:
            if sentinel:
                return (None, None)  # every time: no filter
            raise InvalidInput(
                "datetime interval open at both ends ('../..'): leave datetime out instead",
                vi="datetime: khoảng thời gian để mở cả hai đầu ('../..'): hãy bỏ tham số datetime",
            )
        if begin is not None and end is not None and begin > end:
            raise InvalidInput(
                f"datetime interval ends before it begins: {raw!r}",
                vi=f"datetime: khoảng thời gian kết thúc trước khi bắt đầu: {raw!r}",
            )
        return (begin, end)
    return (_instant(raw, end=False), _instant(raw, end=True))


def coerce_query_value(layer: Layer, name: str, raw: str) -> Any:
    field = layer.field(name)
    assert field is not None
    try:
        if field.type == "integer":
            return int(raw)
        if field.type == "number":
            return float(raw)
        if field.type == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if field.type == "date":
            return date.fromisoformat(raw)
        if field.type == "datetime":
            return _instant(raw, end=False)
    except ValueError:
        raise InvalidInput(
            f"{name}={raw!r}: not a valid {field.type}",
            vi=f"{name}={raw!r}: không phải giá trị {TYPE_VI.get(field.type, field.type)} hợp lệ",
        ) from None
    return raw


def parse_items(viewer: Viewer, layer: Layer, params: Mapping[str, str]) -> ItemsQuery:
    """The items request of ``viewer``, checked against the layer as that viewer sees it: a field the
    viewer may not see (personal data) is unknown to it, in properties, sortby, filters and equalities."""
    layer = viewer.sees(layer)
    queryables = [f.name for f in layer.fields]
    check_unknown(params, [*ITEMS_PARAMS, *queryables])
    limit = _int(params, "limit", layer.paging.default_limit, 1)
    query = ItemsQuery(layer=layer, viewer=viewer, limit=min(limit, layer.paging.max_limit))
    query.offset = _int(params, "offset", 0, 0)
    if "after" in params:
        query.after = _int(params, "after", 0, 0)
        if query.offset:
            raise InvalidInput(
                "after and offset cannot be combined: follow the next link, or use offset alone",
                vi="không dùng after cùng với offset: hãy theo liên kết next, hoặc chỉ dùng offset",
            )
    query.crs = parse_crs(params, "crs")
    if "bbox-crs" in params and "bbox" not in params:
        raise InvalidInput("bbox-crs given without bbox", vi="có bbox-crs nhưng thiếu bbox")
    if "bbox" in params:
        query.bbox = parse_bbox(params["bbox"], parse_crs(params, "bbox-crs"))
    if "datetime" in params:
        # on every collection, against its one declared time: the time field its layer file names
        # (planning_zones: approval_date, its queryables' primary-instant), a versioned boundary layer's
        # validity dates, and for every other layer its history: the features as they stood at that
        # instant, or every state alive during the interval (issue 17)
        interval = parse_datetime(params["datetime"])
        if interval != (None, None):
            query.interval = interval
    if "properties" in params:
        names = [p.strip() for p in params["properties"].split(",") if p.strip()]
        unknown = [n for n in names if n not in queryables]
        if unknown:
            raise InvalidInput(
                f"properties: unknown {unknown}; available: {', '.join(queryables)}",
                vi=f"properties: không có trường {unknown}; các trường hiện có: {', '.join(queryables)}",
            )
        query.properties = names
    if "sortby" in params:
        for term in params["sortby"].split(","):
            term = term.strip()
            desc = term.startswith("-")
            name = term.lstrip("+-").strip()
            if name not in queryables:
                raise InvalidInput(
                    f"sortby: {term!r} is not a property of {layer.id}; "
                    f"sort by one of {', '.join(queryables)}, with - for descending",
                    vi=f"sortby: {term!r} không phải trường của lớp {layer.id}; "
                    f"hãy sắp xếp theo một trong: {', '.join(queryables)}, thêm dấu - để xếp giảm dần",
                )
            query.sortby.append((name, desc))
        if query.after is not None:
            raise InvalidInput(
                "after pages by fid and cannot be combined with sortby; use offset",
                vi="after phân trang theo fid nên không dùng cùng sortby được; hãy dùng offset",
            )
    if "skipGeometry" in params:
        value = params["skipGeometry"].lower()
        if value not in ("true", "false"):
            raise InvalidInput("skipGeometry must be true or false", vi="skipGeometry phải là true hoặc false")
        query.skip_geometry = value == "true"
    if "resulttype" in params:
        if params["resulttype"] not in ("results", "hits"):
            raise InvalidInput("resulttype must be results or hits", vi="resulttype phải là results hoặc hits")
        query.hits = params["resulttype"] == "hits"
    query.filter_crs = parse_crs(params, "filter-crs")
    if "filter" in params:
        query.filter = parse_filter(params["filter"], params.get("filter-lang"))
    elif "filter-lang" in params or "filter-crs" in params:
        raise InvalidInput(
            "filter-lang/filter-crs given without filter", vi="có filter-lang/filter-crs nhưng thiếu filter"
        )
    for name in queryables:
        if name in params:
            query.equals[name] = coerce_query_value(layer, name, params[name])
    return query
