"""CQL2 filters (text and JSON) compiled to SQL whose every value is a bound parameter.

Parsing is done by the ``cql2`` library (both encodings give canonical cql2-json); this module
walks that JSON and emits ``psycopg.sql`` with named placeholders, checking each property against
the layer's queryables and each value against the property's type.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import cql2
from psycopg import sql

from gis_ioc.catalog import Layer
from gis_ioc.crs import CRS84_URI, PublishedCrs
from gis_ioc.errors import InvalidInput

GEOMETRY_NAMES = ("geometry", "geom")
_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_equals": "ST_Equals",
    "s_touches": "ST_Touches",
    "s_crosses": "ST_Crosses",
    "s_overlaps": "ST_Overlaps",
}
_METRES = {
    "meters": 1.0,
    "meter": 1.0,
    "metres": 1.0,
    "metre": 1.0,
    "m": 1.0,
    "kilometers": 1000.0,
    "kilometres": 1000.0,
    "km": 1000.0,
    "feet": 0.3048,
    "ft": 0.3048,
    "miles": 1609.344,
}


#: The layers' field types (and ``geometry``) as Vietnamese messages name them ("trường kiểu số nguyên").
TYPE_VI = {
    "text": "văn bản",
    "integer": "số nguyên",
    "number": "số",
    "boolean": "đúng/sai",
    "date": "ngày",
    "datetime": "ngày giờ",
    "geometry": "hình học",
}


def _type_vi(field_type: str | None) -> str:
    return TYPE_VI.get(field_type or "", str(field_type))


def _vn_count(value: int) -> str:
    """A count as Vietnamese writes it: 100.000 (the English messages write 100,000)."""
    return f"{value:,}".replace(",", ".")


MAX_DEPTH = 40
MAX_LENGTH = 100_000
#: Operators in one filter (AND, OR, NOT, comparisons' arithmetic, signs). The cql2 parser recurses once
#: per operator in a chain: about 3,900 NOTs, 5,000 signs or 20,000 ORs overflow its native stack and kill
#: the process (a segmentation fault, not an exception), so chains are bounded before parsing.
MAX_OPERATORS = 256
_WORD_OPERATOR = re.compile(r"(?i)\b(?:and|or|not)\b")


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside quoted strings (both encodings)."""
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def operator_count(text: str) -> int:
    """Logical and arithmetic operators outside quoted strings."""
    outside = re.sub(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", "''", text)
    return len(_WORD_OPERATOR.findall(outside)) + sum(outside.count(c) for c in "+-*/%^")


def parse_filter(text: str, lang: str | None) -> dict[str, Any]:
    """cql2-text or cql2-json → canonical cql2-json; 400 naming the problem when it does not parse."""
    if len(text) > MAX_LENGTH:
        raise InvalidInput(
            f"filter longer than {MAX_LENGTH:,} characters", vi=f"filter dài quá {_vn_count(MAX_LENGTH)} ký tự"
        )
    if nesting_depth(text) > MAX_DEPTH:  # the parser would exhaust its stack
        raise InvalidInput(f"filter nested deeper than {MAX_DEPTH} levels", vi=f"filter lồng sâu quá {MAX_DEPTH} mức")
    if (count := operator_count(text)) > MAX_OPERATORS:  # so would a long chain of operators
        raise InvalidInput(
            f"filter has {count:,} operators; at most {MAX_OPERATORS} are accepted",
            vi=f"filter có {_vn_count(count)} toán tử; chỉ nhận tối đa {MAX_OPERATORS}",
        )
    lang = (lang or ("cql2-json" if text.lstrip().startswith("{") else "cql2-text")).lower()
    try:
        if lang == "cql2-text":
            expr = cql2.parse_text(text)
        elif lang == "cql2-json":
            expr = cql2.parse_json(text)
        else:
            raise InvalidInput(
                f"filter-lang {lang!r} is not supported; use cql2-text or cql2-json",
                vi=f"filter-lang {lang!r} không được hỗ trợ; dùng cql2-text hoặc cql2-json",
            )
    except InvalidInput:
        raise
    except Exception as exc:  # the parser's own error types vary by version: all mean "does not parse"
        detail = str(exc).strip()  # the cql2 library's own message, in English
        raise InvalidInput(
            f"filter does not parse as {lang}: {detail}", vi=f"filter: không đọc được biểu thức {lang}: {detail}"
        ) from exc
    result = expr.to_json()
    if not isinstance(result, (dict, bool)):
        raise InvalidInput(
            "filter must be a boolean expression", vi="filter phải là một biểu thức logic (cho kết quả đúng/sai)"
        )
    return result if isinstance(result, dict) else {"op": "=", "args": [result, True]}


class Params:
    """Collects bound values; each becomes a named placeholder."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


def geometry_literal(params: Params, geojson: dict[str, Any], crs: PublishedCrs) -> sql.Composed:
    """A GeoJSON geometry in ``crs`` as a PostGIS geometry in EPSG:4326 (VN-2000 pinned)."""
    placeholder = params.add(json.dumps(geojson))
    geom = sql.SQL("ST_GeomFromGeoJSON({})").format(placeholder)
    if crs.uri == CRS84_URI or crs.srid == 4326:
        out = sql.SQL("ST_SetSRID({}, 4326)").format(geom)
        return sql.SQL("ST_FlipCoordinates({})").format(out) if crs.lat_first else out
    if crs.lat_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return sql.SQL("ST_Transform(ST_SetSRID({}, {}), 4326)").format(geom, sql.Literal(crs.srid))


class FilterCompiler:
    """Compile one cql2-json expression for one layer (table alias ``t``)."""

    def __init__(self, layer: Layer, filter_crs: PublishedCrs, params: Params) -> None:
        self.layer = layer
        self.crs = filter_crs
        self.params = params

    # -- entry ----------------------------------------------------------------------------------

    def compile(self, node: Any) -> sql.Composable:
        try:
            return self._compile(node)
        except RecursionError:
            raise InvalidInput(
                f"filter nested deeper than {MAX_DEPTH} levels", vi=f"filter lồng sâu quá {MAX_DEPTH} mức"
            ) from None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise InvalidInput(
                f"filter: malformed expression ({exc})", vi=f"filter: biểu thức sai cấu trúc ({exc})"
            ) from exc

    def _compile(self, node: Any) -> sql.Composable:
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        if isinstance(node, dict) and "property" in node:  # a boolean property used as a predicate
            if self._field_type(node) != "boolean":
                raise InvalidInput(
                    f"filter: {node['property']!r} is not a boolean property",
                    vi=f"filter: {node['property']!r} không phải trường kiểu đúng/sai (boolean)",
                )
            return self._property(node["property"])
        if not isinstance(node, dict) or "op" not in node:
            found = json.dumps(node, ensure_ascii=False)
            raise InvalidInput(
                f"filter: expected a predicate, found {found}", vi=f"filter: cần một điều kiện, nhưng gặp {found}"
            )
        op = str(node["op"]).lower()
        args = node.get("args", [])
        handler = self._handlers().get(op)
        if handler is None:
            if op in _SPATIAL:
                return self._spatial(op, args)
            if op.startswith("t_"):
                return self._temporal(op, args)
            raise InvalidInput(
                f"filter: operator {node['op']!r} is not supported", vi=f"filter: không hỗ trợ toán tử {node['op']!r}"
            )
        return handler(args)

    def _handlers(self) -> dict[str, Callable[[list[Any]], sql.Composable]]:
        return {
            "and": lambda a: self._combine("AND", a),
            "or": lambda a: self._combine("OR", a),
            "not": lambda a: sql.SQL("(NOT {})").format(self.compile(a[0])),
            **{op: self._comparison(op) for op in _COMPARISONS},
            "like": self._like,
            "in": self._in,
            "between": self._between,
            "isnull": self._isnull,
            "s_dwithin": self._dwithin,
        }

    def _combine(self, word: str, args: list[Any]) -> sql.Composable:
        if not isinstance(args, list) or len(args) < 2:
            raise InvalidInput(
                f"filter: {word} needs at least two operands", vi=f"filter: {word} cần ít nhất hai toán hạng"
            )
        return sql.SQL("({})").format(sql.SQL(f" {word} ").join(self.compile(x) for x in args))

    # -- operands ---------------------------------------------------------------------------------

    def _field_type(self, node: Any) -> str | None:
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            if name in GEOMETRY_NAMES:
                return "geometry"
            field = self.layer.field(name)
            return field.type if field else None
        if isinstance(node, dict) and node.get("op", "").lower() == "casei":
            return "text"
        return None

    def _property(self, name: str) -> sql.Composable:
        if name in GEOMETRY_NAMES:
            return sql.SQL("t.geom")
        if self.layer.field(name) is None:
            queryables = ", ".join(f.name for f in self.layer.fields)
            raise InvalidInput(
                f"filter: {name!r} is not a queryable of {self.layer.id}; queryables: {queryables}",
                vi=f"filter: {name!r} không phải trường truy vấn được của lớp {self.layer.id}; "
                f"các trường truy vấn được: {queryables}",
            )
        return sql.Identifier("t", name)

    def _value(self, node: Any, field_type: str | None) -> sql.Composable:
        """A literal (or property, or CASEI) as SQL, coerced to the type of the other operand."""
        if isinstance(node, dict):
            if "property" in node:
                return self._property(node["property"])
            if str(node.get("op", "")).lower() == "casei":
                inner = node["args"][0]
                if not isinstance(inner, str) and self._field_type(inner) != "text":
                    raise InvalidInput("filter: CASEI applies to text", vi="filter: CASEI chỉ dùng cho văn bản")
                return sql.SQL("lower({})").format(self._value(inner, "text"))
            if "op" in node:
                raise InvalidInput(
                    f"filter: operator {node['op']!r} is not supported in a value",
                    vi=f"filter: không hỗ trợ toán tử {node['op']!r} trong một giá trị",
                )
            if "date" in node or "timestamp" in node:
                if field_type not in (None, "date", "datetime"):
                    raise InvalidInput(
                        f"filter: a date or timestamp compared with a {field_type} property",
                        vi=f"filter: so sánh ngày hoặc thời điểm với trường kiểu {_type_vi(field_type)}",
                    )
                if "date" in node:
                    return self.params.add(_parse_date(node["date"]))
                return self.params.add(_parse_timestamp(node["timestamp"]))
            if ("type" in node and "coordinates" in node) or node.get("type") == "GeometryCollection":
                return geometry_literal(self.params, node, self.crs)
            if "bbox" in node:
                return self._bbox(node["bbox"])
            literal = json.dumps(node, ensure_ascii=False)
            raise InvalidInput(f"filter: unsupported literal {literal}", vi=f"filter: không hỗ trợ giá trị {literal}")
        return self.params.add(_coerce(node, field_type))

    def _bbox(self, bbox: list[float]) -> sql.Composable:
        if len(bbox) not in (4, 6):
            raise InvalidInput("filter: BBOX needs 4 or 6 numbers", vi="filter: BBOX cần 4 hoặc 6 số")
        minx, miny, maxx, maxy = (
            (bbox[0], bbox[1], bbox[2], bbox[3]) if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
        )
        ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
        return geometry_literal(self.params, {"type": "Polygon", "coordinates": [ring]}, self.crs)

    # -- predicates -------------------------------------------------------------------------------

    def _comparison(self, op: str) -> Callable[[list[Any]], sql.Composable]:
        return lambda args: self._compare(op, args)

    def _compare(self, op: str, args: list[Any]) -> sql.Composable:
        left, right = args
        lt, rt = self._field_type(left), self._field_type(right)
        if "geometry" in (lt, rt):
            raise InvalidInput(
                "filter: compare geometries with the spatial operators (S_INTERSECTS, …)",
                vi="filter: so sánh hình học bằng các toán tử không gian (S_INTERSECTS, …)",
            )
        if lt and rt and _family(lt) != _family(rt):
            raise InvalidInput(
                f"filter: cannot compare a {lt} property with a {rt} property",
                vi=f"filter: không so sánh được trường kiểu {_type_vi(lt)} với trường kiểu {_type_vi(rt)}",
            )
        return sql.SQL("{} {} {}").format(self._value(left, rt), sql.SQL(_COMPARISONS[op]), self._value(right, lt))

    def _like(self, args: list[Any]) -> sql.Composable:
        left, pattern = args
        if self._field_type(left) != "text":
            raise InvalidInput("filter: LIKE applies to text properties", vi="filter: LIKE chỉ dùng cho trường văn bản")
        if not isinstance(pattern, str) and not (isinstance(pattern, dict) and "op" in pattern):
            raise InvalidInput("filter: LIKE needs a text pattern", vi="filter: LIKE cần một mẫu văn bản")
        return sql.SQL("{} LIKE {}").format(self._value(left, None), self._value(pattern, "text"))

    def _in(self, args: list[Any]) -> sql.Composable:
        left, values = args
        if not isinstance(values, list) or not values:
            raise InvalidInput("filter: IN needs a non-empty list", vi="filter: IN cần một danh sách không rỗng")
        field_type = self._field_type(left)
        coerced = [_coerce(v, field_type) for v in values]
        return sql.SQL("{} = ANY({})").format(self._value(left, None), self.params.add(coerced))

    def _between(self, args: list[Any]) -> sql.Composable:
        left, low, high = args
        field_type = self._field_type(left)
        if field_type not in ("integer", "number", "date", "datetime"):
            raise InvalidInput(
                "filter: BETWEEN applies to number and date properties",
                vi="filter: BETWEEN chỉ dùng cho trường số và trường ngày",
            )
        for bound in (low, high):
            if self._field_type(bound) is not None and _family(self._field_type(bound)) != _family(field_type):
                raise InvalidInput(
                    "filter: BETWEEN bounds must be of the property's type",
                    vi="filter: hai cận của BETWEEN phải cùng kiểu với trường",
                )
        return sql.SQL("{} BETWEEN {} AND {}").format(
            self._value(left, None), self._value(low, field_type), self._value(high, field_type)
        )

    def _isnull(self, args: list[Any]) -> sql.Composable:
        return sql.SQL("{} IS NULL").format(self._value(args[0], None))

    def _geometry_operands(self, args: list[Any]) -> tuple[sql.Composable, sql.Composable]:
        if len(args) < 2:
            raise InvalidInput(
                "filter: a spatial operator needs two geometries", vi="filter: toán tử không gian cần hai hình học"
            )
        left, right = args[0], args[1]
        for side in (left, right):
            if isinstance(side, dict) and "property" in side and side["property"] not in GEOMETRY_NAMES:
                raise InvalidInput(
                    f"filter: {side['property']!r} is not a geometry; use 'geometry'",
                    vi=f"filter: {side['property']!r} không phải hình học; dùng 'geometry'",
                )
        return self._value(left, "geometry"), self._value(right, "geometry")

    def _spatial(self, op: str, args: list[Any]) -> sql.Composable:
        left, right = self._geometry_operands(args)
        return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[op]), left, right)

    def _dwithin(self, args: list[Any]) -> sql.Composable:
        """Distance on the ground, in metres (or the unit named), through geography; index-assisted."""
        if len(args) not in (3, 4):
            raise InvalidInput(
                "filter: S_DWITHIN(geometry, geometry, distance[, units])",
                vi="filter: viết S_DWITHIN(geometry, geometry, khoảng cách[, đơn vị])",
            )
        left, right = self._geometry_operands(args)
        distance = args[2]
        if isinstance(distance, bool) or not isinstance(distance, (int, float)) or distance < 0:
            raise InvalidInput("filter: S_DWITHIN needs a distance ≥ 0", vi="filter: S_DWITHIN cần khoảng cách ≥ 0")
        unit_arg = args[3] if len(args) == 4 else "meters"
        if isinstance(unit_arg, dict) and "property" in unit_arg:  # unquoted: S_DWITHIN(…, 500, meters)
            unit_arg = unit_arg["property"]
        unit = str(unit_arg).lower()
        if unit not in _METRES:
            raise InvalidInput(
                f"filter: unknown distance unit {unit_arg!r}; use meters or kilometers",
                vi=f"filter: không có đơn vị khoảng cách {unit_arg!r}; dùng meters hoặc kilometers",
            )
        metres = float(distance) * _METRES[unit]
        if metres > 500_000:
            raise InvalidInput(
                "filter: S_DWITHIN distance above 500 km", vi="filter: khoảng cách của S_DWITHIN vượt quá 500 km"
            )
        d = self.params.add(metres)
        # a box around the other geometry that is certainly larger than the distance (for the GiST index)
        degrees = self.params.add(metres / (111_320.0 * math.cos(math.radians(30))) + 1e-6)
        return sql.SQL("({0} && ST_Expand({1}, {3}) AND ST_DWithin({0}::geography, {1}::geography, {2}))").format(
            left, right, d, degrees
        )

    def _temporal(self, op: str, args: list[Any]) -> sql.Composable:
        """Temporal predicates on an instant property (a date or date-time field)."""
        prop, other = args
        field_type = self._field_type(prop)
        if field_type not in ("date", "datetime"):
            raise InvalidInput(
                f"filter: {op.upper()} needs a date or date-time property first",
                vi=f"filter: {op.upper()} cần trường kiểu ngày hoặc ngày giờ ở vế đầu",
            )
        column = self._value(prop, None)
        if isinstance(other, dict) and "interval" in other:
            begin, end = (self._instant(v) for v in other["interval"])
            low = sql.SQL("TRUE") if begin is None else sql.SQL("{} >= {}").format(column, begin)
            high = sql.SQL("TRUE") if end is None else sql.SQL("{} <= {}").format(column, end)
            low_x = sql.SQL("TRUE") if begin is None else sql.SQL("{} > {}").format(column, begin)
            high_x = sql.SQL("TRUE") if end is None else sql.SQL("{} < {}").format(column, end)
            forms = {
                "t_intersects": sql.SQL("({} AND {})").format(low, high),
                "t_during": sql.SQL("({} AND {})").format(low_x, high_x),
                "t_disjoint": sql.SQL("NOT ({} AND {})").format(low, high),
                # after an interval open at the end, or before one open at the start: never
                "t_after": sql.SQL("FALSE") if end is None else sql.SQL("{} > {}").format(column, end),
                "t_before": sql.SQL("FALSE") if begin is None else sql.SQL("{} < {}").format(column, begin),
            }
        else:
            instant = self._instant(other)
            forms = {
                "t_intersects": sql.SQL("{} = {}").format(column, instant),
                "t_equals": sql.SQL("{} = {}").format(column, instant),
                "t_disjoint": sql.SQL("{} <> {}").format(column, instant),
                "t_after": sql.SQL("{} > {}").format(column, instant),
                "t_before": sql.SQL("{} < {}").format(column, instant),
            }
        if op not in forms:
            raise InvalidInput(
                f"filter: {op.upper()} is not meaningful for the instant property here",
                vi=f"filter: {op.upper()} không có nghĩa với trường thời điểm ở đây",
            )
        return forms[op]

    def _instant(self, node: Any) -> sql.Composable | None:
        if node == "..":
            return None
        if isinstance(node, dict) and ("date" in node or "timestamp" in node):
            return self._value(node, None)
        if isinstance(node, str):
            return self.params.add(_parse_timestamp(node) if "T" in node else _parse_date(node))
        found = json.dumps(node, ensure_ascii=False)
        raise InvalidInput(
            f"filter: expected a date or timestamp, found {found}",
            vi=f"filter: cần một ngày hoặc thời điểm, nhưng gặp {found}",
        )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"filter: {text!r} is not a date (YYYY-MM-DD)", vi=f"filter: {text!r} không phải ngày (YYYY-MM-DD)"
        ) from None


def _parse_timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"filter: {text!r} is not an RFC 3339 timestamp", vi=f"filter: {text!r} không phải thời điểm RFC 3339"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _coerce(value: Any, field_type: str | None) -> Any:
    """A JSON literal as the Python value the property's type wants; 400 on a mismatch."""
    if field_type is None or value is None:
        return value
    if field_type == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"filter: {value!r} is not a number", vi=f"filter: {value!r} không phải số")
        return int(value) if float(value).is_integer() else float(value)
    if field_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"filter: {value!r} is not a number", vi=f"filter: {value!r} không phải số")
        return float(value)
    if field_type == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(
                f"filter: {value!r} is not true or false", vi=f"filter: {value!r} không phải true hoặc false"
            )
        return value
    if field_type == "text":
        if not isinstance(value, str):
            raise InvalidInput(
                f"filter: {value!r} is not text (quote it)",
                vi=f"filter: {value!r} không phải văn bản (hãy đặt trong dấu nháy)",
            )
        return value
    if field_type in ("date", "datetime"):
        if not isinstance(value, str):
            raise InvalidInput(
                f"filter: {value!r} is not a date; write DATE('YYYY-MM-DD') or TIMESTAMP('…')",
                vi=f"filter: {value!r} không phải ngày; viết DATE('YYYY-MM-DD') hoặc TIMESTAMP('…')",
            )
        return _parse_date(value) if field_type == "date" and "T" not in value else _parse_timestamp(value)
    return value


def _family(field_type: str | None) -> str | None:
    return {"integer": "number", "number": "number", "date": "time", "datetime": "time"}.get(
        field_type or "", field_type
    )
