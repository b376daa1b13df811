"""A MapLibre GL style made from the catalog's styles (``styles/*.yaml``) over gis_ioc's own vector
tiles: no external tile server. Base layers (province, communes, roads, green spaces) are on
by default; every other published layer can be switched on."""

from __future__ import annotations

from typing import Any

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.models import Style, Symbol
from gis_ioc.publish.config import PROVINCE_BBOX, published_layers

#: Drawn from our own data underneath everything, visible when the page opens.
BASE_LAYERS = ("province", "communes", "green_spaces", "roads")
#: Drawing order: polygons below lines below points.
_ORDER = {"Polygon": 0, "MultiPolygon": 0, "LineString": 1, "MultiLineString": 1, "Point": 2, "MultiPoint": 2}
SOURCE_MAXZOOM = 16


def _paint_value(style: Style, attr: str, default: Any) -> Any:
    """A constant, or a ``match`` expression on the style's field for categorized styles."""
    base = getattr(style.symbol, attr)
    base = default if base is None else base
    if style.kind == "single" or style.field is None:
        return base
    expr: list[Any] = ["match", ["to-string", ["get", style.field]]]
    for cls in style.classes:
        value = getattr(cls, attr)
        expr += [str(cls.value), default if value is None else value]
    expr.append(base)
    return expr


def style_layers(layer: Layer, style: Style, visible: bool) -> list[dict[str, Any]]:
    """The MapLibre layers drawing one catalog layer."""
    common = {
        "source": layer.id,
        "source-layer": layer.id,
        "minzoom": style.min_zoom,
        "layout": {"visibility": "visible" if visible else "none"},
        "metadata": {"gis_ioc:layer": layer.id},
    }
    sym = Symbol()
    if "Polygon" in layer.geometry:
        out = []
        if style.symbol.fill is not None or any(c.fill for c in style.classes):
            out.append(
                {
                    "id": f"{layer.id}-fill",
                    "type": "fill",
                    **common,
                    "paint": {
                        "fill-color": _paint_value(style, "fill", "#cccccc"),
                        "fill-opacity": _paint_value(style, "fill_opacity", sym.fill_opacity),
                    },
                }
            )
        out.append(
            {
                "id": f"{layer.id}-line",
                "type": "line",
                **common,
                "paint": {
                    "line-color": _paint_value(style, "stroke", sym.stroke),
                    "line-width": _paint_value(style, "stroke_width", sym.stroke_width),
                },
            }
        )
        return out
    if "Line" in layer.geometry:
        return [
            {
                "id": f"{layer.id}-line",
                "type": "line",
                **common,
                "paint": {
                    "line-color": _paint_value(style, "stroke", sym.stroke),
                    "line-width": _paint_value(style, "stroke_width", sym.stroke_width),
                },
            }
        ]
    return [
        {
            "id": f"{layer.id}-circle",
            "type": "circle",
            **common,
            "paint": {
                "circle-color": _paint_value(style, "fill", "#3388ff"),
                "circle-opacity": _paint_value(style, "fill_opacity", sym.fill_opacity),
                "circle-radius": _paint_value(style, "radius", sym.radius),
                "circle-stroke-color": _paint_value(style, "stroke", sym.stroke),
                "circle-stroke-width": 1,
            },
        }
    ]


def map_layers(catalog: Catalog) -> list[Layer]:
    """Published layers in drawing order."""
    return sorted(published_layers(catalog), key=lambda layer: (_ORDER[layer.geometry], layer.id != "communes"))


def legend(layer: Layer, style: Style) -> list[dict[str, Any]]:
    field = layer.field(style.field) if style.field else None
    labels = {str(v.code): {"vi": v.label.vi, "en": v.label.en} for v in (field.values or ())} if field else {}
    if style.kind == "single":
        return [
            {
                "label": {"vi": layer.title.vi, "en": layer.title.en},
                "fill": style.symbol.fill,
                "stroke": style.symbol.stroke,
            }
        ]
    return [
        {
            "label": (
                {"vi": c.label.vi, "en": c.label.en}
                if c.label
                else labels.get(str(c.value), {"vi": str(c.value), "en": str(c.value)})
            ),
            "fill": c.fill,
            "stroke": c.stroke,
        }
        for c in style.classes
    ]


def map_style(catalog: Catalog, ogc_path: str) -> dict[str, Any]:
    """The MapLibre style (tile URLs are paths under the server's address; the page makes them absolute)."""
    layers = map_layers(catalog)
    sources = {
        layer.id: {
            "type": "vector",
            "tiles": [f"{ogc_path}/collections/{layer.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"],
            "minzoom": 0,
            "maxzoom": SOURCE_MAXZOOM,
            "bounds": PROVINCE_BBOX,
        }
        for layer in layers
    }
    style_layers_: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#eef2f3"}}
    ]
    for layer in layers:
        style_layers_ += style_layers(layer, catalog.style_of(layer), layer.id in BASE_LAYERS)
    return {"version": 8, "name": "gis_ioc", "sources": sources, "layers": style_layers_}


def layer_list(catalog: Catalog) -> list[dict[str, Any]]:
    """The layer switcher's entries."""
    out = []
    for layer in map_layers(catalog):
        style = catalog.style_of(layer)
        out.append(
            {
                "id": layer.id,
                "title": {"vi": layer.title.vi, "en": layer.title.en},
                "group": layer.group,
                "geometry": layer.geometry,
                "access": layer.access,
                "base": layer.id in BASE_LAYERS,
                "min_zoom": style.min_zoom,
                "style_layers": [s["id"] for s in style_layers(layer, style, True)],
                "legend": legend(layer, style),
            }
        )
    return out
