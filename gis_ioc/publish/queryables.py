"""Queryables (OGC API Features Part 3) generated from the catalog, as JSON Schema 2020-12."""

from __future__ import annotations

from typing import Any

from gis_ioc.catalog import Layer

_GEOMETRY_FORMATS = {
    "Point": "geometry-point",
    "MultiPoint": "geometry-multipoint",
    "LineString": "geometry-linestring",
    "MultiLineString": "geometry-multilinestring",
    "Polygon": "geometry-polygon",
    "MultiPolygon": "geometry-multipolygon",
}
_TYPES = {
    "text": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "date": "string",
    "datetime": "string",
}


def json_schema_type(field_type: str) -> dict[str, str]:
    """The JSON Schema type (and format) of a catalog field type."""
    out = {"type": _TYPES[field_type]}
    if field_type == "date":
        out["format"] = "date"
    elif field_type == "datetime":
        out["format"] = "date-time"
    return out


def queryables_document(layer: Layer, url: str) -> dict[str, Any]:
    """The queryables of ``layer``'s collection: its stored fields, then its live ones (computed when read,
    ``readOnly``: a filter or sort may name them, an edit may not)."""
    layer = layer.published()
    properties: dict[str, Any] = {
        "geometry": {
            "title": "Geometry",
            "format": _GEOMETRY_FORMATS[layer.geometry],
            "x-ogc-role": "primary-geometry",
        },
    }
    for f in layer.fields:
        schema: dict[str, Any] = {"title": f.title.vi, "x-title-en": f.title.en, **json_schema_type(f.type)}
        if f.description:
            schema["description"] = f.description.vi
        if f.unit:
            schema["x-ogc-unit"] = f.unit
        if f.values is not None:
            schema["enum"] = list(f.codes)
            schema["x-enum-labels"] = {str(v.code): {"vi": v.label.vi, "en": v.label.en} for v in f.values}
        if f.minimum is not None:
            schema["minimum"] = f.minimum
        if f.maximum is not None:
            schema["maximum"] = f.maximum
        if layer.temporal == f.name:
            schema["x-ogc-role"] = "primary-instant"
        if layer.key == f.name:
            schema["x-ogc-role"] = "id"
        if f.name in layer.live_names:
            schema["readOnly"] = True
        properties[f.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url,
        "type": "object",
        "title": layer.title.vi,
        "description": layer.description.vi,
        "properties": properties,
        "additionalProperties": False,
    }
