"""The catalog's styles (``styles/*.yaml``) as the stylesheets desktop GIS reads: QGIS QML and OGC SLD 1.0.

One style per collection, ``default``, offered by ``/collections/{id}/styles`` (OGC API - Styles: the
list of a collection's styles, each with a link per stylesheet format) in three encodings: QML
(``application/vnd.qgis.qml``), SLD 1.0 (``application/vnd.ogc.sld+xml;version=1.0``) and the MapLibre
GL style the web map draws (``application/vnd.mapbox.style+json``). Class labels are the catalog's
Vietnamese labels (English with ``lang=en``); sizes are in pixels, as the web map draws them.

The QGIS symbols are also what :mod:`gis_ioc.publish.qgis` puts in the ready-made QGIS project, for
vector layers (``renderer-v2``) and vector tile layers (the ``basic`` renderer's styles).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.models import Style, StyleClass, Symbol
from gis_ioc.errors import InvalidInput, NotFound

QML = "application/vnd.qgis.qml"
SLD = "application/vnd.ogc.sld+xml;version=1.0"
MAPBOX = "application/vnd.mapbox.style+json"
#: ``f=`` value → media type of the stylesheet.
FORMATS = {"qml": QML, "sld": SLD, "mapbox": MAPBOX}
STYLE_ID = "default"
QGIS_VERSION = "3.22.16-Białowieża"
#: Layers whose features are named on the map.
LABELLED = {"communes": "name", "province": "name"}
SLD_NS = {
    "": "http://www.opengis.net/sld",
    "ogc": "http://www.opengis.net/ogc",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}


def kind_of(layer: Layer) -> str:
    """fill, line or marker: the kind of QGIS symbol that draws the layer."""
    if "Polygon" in layer.geometry:
        return "fill"
    return "line" if "Line" in layer.geometry else "marker"


def geometry_code(layer: Layer) -> int:
    """QGIS's geometry type: 0 point, 1 line, 2 polygon."""
    return {"marker": 0, "line": 1, "fill": 2}[kind_of(layer)]


def _rgba(hex_colour: str | None, opacity: float = 1.0) -> str:
    """``#rrggbb`` → QGIS's ``r,g,b,a`` (0–255); no colour: transparent."""
    if hex_colour is None:
        return "0,0,0,0"
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{round(255 * opacity)}"


def _merged(style: Style, cls: StyleClass | None) -> Symbol:
    """The symbol of a class: the class's own values, the style's symbol for the rest."""
    if cls is None:
        return style.symbol
    base = style.symbol.model_dump()
    own = cls.model_dump(exclude={"value", "label"}, exclude_unset=True)
    return Symbol(**{**base, **own})


def _properties(kind: str, sym: Symbol) -> dict[str, str]:
    """The QGIS symbol layer's properties (sizes in pixels, as the web map)."""
    if kind == "fill":
        return {
            "color": _rgba(sym.fill, sym.fill_opacity),
            "style": "solid" if sym.fill is not None else "no",
            "outline_color": _rgba(sym.stroke),
            "outline_style": "solid",
            "outline_width": f"{sym.stroke_width:g}",
            "outline_width_unit": "Pixel",
            "joinstyle": "bevel",
        }
    if kind == "line":
        return {
            "line_color": _rgba(sym.stroke),
            "line_style": "solid",
            "line_width": f"{sym.stroke_width:g}",
            "line_width_unit": "Pixel",
            "capstyle": "round",
            "joinstyle": "round",
        }
    return {
        "name": "circle",
        "color": _rgba(sym.fill or "#3388ff", sym.fill_opacity),
        "outline_color": _rgba(sym.stroke),
        "outline_style": "solid",
        "outline_width": "1",
        "outline_width_unit": "Pixel",
        "size": f"{2 * sym.radius:g}",
        "size_unit": "Pixel",
        "scale_method": "diameter",
    }


def qgis_symbol(layer: Layer, sym: Symbol, name: str) -> ET.Element:
    """A QGIS ``<symbol>`` (both the ``Option`` map QGIS 3 writes and the ``prop`` list older versions read)."""
    kind = kind_of(layer)
    symbol = ET.Element("symbol", {"type": kind, "name": name, "alpha": "1", "clip_to_extent": "1", "force_rhr": "0"})
    cls = {"fill": "SimpleFill", "line": "SimpleLine", "marker": "SimpleMarker"}[kind]
    symbol_layer = ET.SubElement(symbol, "layer", {"class": cls, "enabled": "1", "locked": "0", "pass": "0"})
    props = _properties(kind, sym)
    options = ET.SubElement(symbol_layer, "Option", {"type": "Map"})
    for key, value in props.items():
        ET.SubElement(options, "Option", {"name": key, "type": "QString", "value": value})
    for key, value in props.items():
        ET.SubElement(symbol_layer, "prop", {"k": key, "v": value})
    return symbol


def class_label(layer: Layer, style: Style, cls: StyleClass, lang: str) -> str:
    """A class's label: its own, else the catalog's label of the value, else the value."""
    if cls.label is not None:
        return str(getattr(cls.label, lang))
    field = layer.field(style.field) if style.field else None
    for value in (field.values or ()) if field else ():
        if str(value.code) == str(cls.value):
            return str(getattr(value.label, lang))
    return str(cls.value)


def renderer_v2(layer: Layer, style: Style, lang: str = "vi") -> ET.Element:
    """The ``renderer-v2`` of a QGIS vector layer: a single symbol, or categories on the style's field."""
    if style.kind == "single" or style.field is None:
        renderer = ET.Element("renderer-v2", {"type": "singleSymbol", "symbollevels": "0", "forceraster": "0"})
        symbols = ET.SubElement(renderer, "symbols")
        symbols.append(qgis_symbol(layer, style.symbol, "0"))
        return renderer
    renderer = ET.Element(
        "renderer-v2", {"type": "categorizedSymbol", "attr": style.field, "symbollevels": "0", "forceraster": "0"}
    )
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, cls in enumerate(style.classes):
        ET.SubElement(
            categories,
            "category",
            {
                "render": "true",
                "symbol": str(i),
                "value": str(cls.value),
                "label": class_label(layer, style, cls, lang),
            },
        )
        symbols.append(qgis_symbol(layer, _merged(style, cls), str(i)))
    other = str(len(style.classes))  # every other value: the style's own symbol
    ET.SubElement(
        categories,
        "category",
        {"render": "true", "symbol": other, "value": "", "label": "Khác" if lang == "vi" else "Other"},
    )
    symbols.append(qgis_symbol(layer, style.symbol, other))
    source = ET.SubElement(renderer, "source-symbol")
    source.append(qgis_symbol(layer, style.symbol, "0"))
    return renderer


def labeling(layer: Layer) -> ET.Element | None:
    """Names on the map (communes, the province): dark text with a white halo; the polygons are not
    obstacles (the province holds every commune: its interior would hide their names)."""
    field = LABELLED.get(layer.id)
    if field is None:
        return None
    root = ET.Element("labeling", {"type": "simple"})
    settings = ET.SubElement(root, "settings", {"calloutType": "simple"})
    text = ET.SubElement(
        settings,
        "text-style",
        {
            "fieldName": field,
            "isExpression": "0",
            "fontFamily": "DejaVu Sans",
            "fontSize": "9" if layer.id == "communes" else "12",
            "fontSizeUnit": "Point",
            "textColor": "40,40,40,255",
            "fontWeight": "50" if layer.id == "communes" else "75",
            "namedStyle": "Regular",
            "textOpacity": "1",
            "blendMode": "0",
        },
    )
    ET.SubElement(
        text,
        "text-buffer",
        {
            "bufferDraw": "1",
            "bufferSize": "1",
            "bufferSizeUnits": "MM",
            "bufferColor": "255,255,255,255",
            "bufferOpacity": "1",
        },
    )
    ET.SubElement(settings, "placement", {"placement": "0" if layer.id == "communes" else "1"})
    ET.SubElement(
        settings, "rendering", {"drawLabels": "1", "obstacle": "0", "displayAll": "0", "fontLimitPixelSize": "0"}
    )
    return root


def qml(layer: Layer, catalog: Catalog, lang: str = "vi") -> str:
    """A QGIS layer style file (QML) for the layer as OGC API Features."""
    style = catalog.style_of(layer)
    root = ET.Element("qgis", {"version": QGIS_VERSION, "styleCategories": "Symbology|Labeling"})
    root.append(renderer_v2(layer, style, lang))
    labels = labeling(layer)
    if labels is not None:
        root.set("labelsEnabled", "1")
        root.append(labels)
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def tile_styles(layer: Layer, style: Style, lang: str = "vi", min_zoom: int = -1) -> list[ET.Element]:
    """The ``<style>`` entries of a QGIS vector tile layer's basic renderer drawing this layer."""
    geometry = str(geometry_code(layer))
    out = []

    def entry(name: str, expression: str, sym: Symbol, i: int) -> ET.Element:
        element = ET.Element(
            "style",
            {
                "name": name,
                "layer": layer.id,
                "geometry": geometry,
                "enabled": "1",
                "expression": expression,
                "min-zoom": str(min_zoom),
                "max-zoom": "-1",
            },
        )
        ET.SubElement(element, "symbols").append(qgis_symbol(layer, sym, "0"))
        return element

    if style.kind == "single" or style.field is None:
        return [entry(str(getattr(layer.title, lang)), "", style.symbol, 0)]
    quoted = '"' + style.field.replace('"', '""') + '"'
    values = []
    for i, cls in enumerate(style.classes):
        literal = "'" + str(cls.value).replace("'", "''") + "'"
        values.append(literal)
        out.append(
            entry(class_label(layer, style, cls, lang), f"to_string({quoted}) = {literal}", _merged(style, cls), i)
        )
    out.append(
        entry(
            "Khác" if lang == "vi" else "Other",
            f"to_string({quoted}) IS NULL OR to_string({quoted}) NOT IN ({', '.join(values)})",
            style.symbol,
            len(style.classes),
        )
    )
    return out


# -- SLD 1.0 ---------------------------------------------------------------------------------------------


def _css(parent: ET.Element, tag: str, values: dict[str, str]) -> ET.Element:
    element = ET.SubElement(parent, tag)
    for name, value in values.items():
        ET.SubElement(element, "CssParameter", {"name": name}).text = value
    return element


def _sld_symbolizer(rule: ET.Element, layer: Layer, sym: Symbol) -> None:
    kind = kind_of(layer)
    if kind == "fill":
        poly = ET.SubElement(rule, "PolygonSymbolizer")
        if sym.fill is not None:
            _css(poly, "Fill", {"fill": sym.fill, "fill-opacity": f"{sym.fill_opacity:g}"})
        _css(poly, "Stroke", {"stroke": sym.stroke, "stroke-width": f"{sym.stroke_width:g}"})
    elif kind == "line":
        line = ET.SubElement(rule, "LineSymbolizer")
        _css(line, "Stroke", {"stroke": sym.stroke, "stroke-width": f"{sym.stroke_width:g}"})
    else:
        graphic = ET.SubElement(ET.SubElement(rule, "PointSymbolizer"), "Graphic")
        mark = ET.SubElement(graphic, "Mark")
        ET.SubElement(mark, "WellKnownName").text = "circle"
        _css(mark, "Fill", {"fill": sym.fill or "#3388ff", "fill-opacity": f"{sym.fill_opacity:g}"})
        _css(mark, "Stroke", {"stroke": sym.stroke, "stroke-width": "1"})
        ET.SubElement(graphic, "Size").text = f"{2 * sym.radius:g}"


def sld(layer: Layer, catalog: Catalog, lang: str = "vi") -> str:
    """An OGC Styled Layer Descriptor 1.0 for the layer."""
    style = catalog.style_of(layer)
    root = ET.Element(
        "StyledLayerDescriptor",
        {
            "version": "1.0.0",
            "xmlns": SLD_NS[""],
            "xmlns:ogc": SLD_NS["ogc"],
            "xmlns:xlink": SLD_NS["xlink"],
            "xmlns:xsi": SLD_NS["xsi"],
            "xsi:schemaLocation": "http://www.opengis.net/sld http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd",
        },
    )
    named = ET.SubElement(root, "NamedLayer")
    ET.SubElement(named, "Name").text = layer.id
    user = ET.SubElement(named, "UserStyle")
    ET.SubElement(user, "Name").text = STYLE_ID
    ET.SubElement(user, "Title").text = str(getattr(style.title, lang))
    fts = ET.SubElement(user, "FeatureTypeStyle")
    if style.kind == "single" or style.field is None:
        rule = ET.SubElement(fts, "Rule")
        ET.SubElement(rule, "Title").text = str(getattr(layer.title, lang))
        _sld_symbolizer(rule, layer, style.symbol)
    else:
        for cls in style.classes:
            rule = ET.SubElement(fts, "Rule")
            ET.SubElement(rule, "Name").text = str(cls.value)
            ET.SubElement(rule, "Title").text = class_label(layer, style, cls, lang)
            equal = ET.SubElement(ET.SubElement(rule, "ogc:Filter"), "ogc:PropertyIsEqualTo")
            ET.SubElement(equal, "ogc:PropertyName").text = style.field
            ET.SubElement(equal, "ogc:Literal").text = str(cls.value)
            _sld_symbolizer(rule, layer, _merged(style, cls))
        rule = ET.SubElement(fts, "Rule")
        ET.SubElement(rule, "Title").text = "Khác" if lang == "vi" else "Other"
        ET.SubElement(rule, "ElseFilter")
        _sld_symbolizer(rule, layer, style.symbol)
    field = LABELLED.get(layer.id)
    if field is not None:
        rule = ET.SubElement(fts, "Rule")
        text = ET.SubElement(rule, "TextSymbolizer")
        ET.SubElement(ET.SubElement(text, "Label"), "ogc:PropertyName").text = field
        _css(text, "Font", {"font-family": "DejaVu Sans", "font-size": "12"})
        halo = ET.SubElement(text, "Halo")
        ET.SubElement(halo, "Radius").text = "1"
        _css(halo, "Fill", {"fill": "#ffffff"})
        _css(text, "Fill", {"fill": "#282828"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# -- OGC API - Styles ------------------------------------------------------------------------------------


def parse_format(raw: str | None) -> str:
    if raw is None:
        return "qml"
    if raw not in FORMATS:
        raise InvalidInput(
            f"f={raw!r}: a style is offered as {', '.join(FORMATS)}",
            vi=f"f={raw!r}: kiểu hiển thị chỉ có ở các định dạng {', '.join(FORMATS)}",
        )
    return raw


def parse_lang(raw: str | None) -> str:
    if raw is None:
        return "vi"
    if raw not in ("vi", "en"):
        raise InvalidInput(f"lang={raw!r}: use vi or en", vi=f"lang={raw!r}: dùng vi hoặc en")
    return raw


def check_style_id(style_id: str) -> None:
    if style_id != STYLE_ID:
        raise NotFound(
            f"style {style_id!r} not found; this collection has the style {STYLE_ID!r}",
            vi=f"không có kiểu hiển thị {style_id!r}; lớp này có kiểu hiển thị {STYLE_ID!r}",
        )


def styles_list(layer: Layer, catalog: Catalog, base: str) -> dict[str, Any]:
    """``/collections/{id}/styles``: the collection's one style and its stylesheets."""
    style = catalog.style_of(layer)
    return {
        "default": STYLE_ID,
        "styles": [
            {
                "id": STYLE_ID,
                "title": style.title.vi,
                "links": [
                    {
                        "rel": "stylesheet",
                        "type": media,
                        "title": {"qml": "QGIS (QML)", "sld": "OGC SLD 1.0", "mapbox": "MapLibre / Mapbox GL"}[f],
                        "href": f"{base}/styles/{STYLE_ID}?f={f}",
                    }
                    for f, media in FORMATS.items()
                ],
            }
        ],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/styles"}],
    }
