"""The interactive thematic map as one HTML file that works offline: folium (Leaflet) with no base
tiles from outside, Leaflet's script and styles inlined from gis_ioc's vendored copy, a legend in
Vietnamese with units, popups with the figures, flagged communes outlined in red, overlay layers."""

from __future__ import annotations

import html
import json
from typing import Any

import psycopg
import shapely

from gis_ioc import __version__
from gis_ioc.catalog import Catalog
from gis_ioc.maps.thematic import (
    FLAG_COLOUR,
    METHODS,
    NO_DATA_COLOUR,
    STATUS_VI,
    ThematicMap,
    commune_geometries,
    overlay_features,
    vn_date,
    vn_number,
    vn_period,
)
from gis_ioc.publish.config import PROVINCE_BBOX
from gis_ioc.query.viewer import Viewer
from gis_ioc.web import VENDOR_DIR

_VENDOR_PREFIX = "gis-ioc-vendor/"


def _require_folium() -> Any:
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is a dependency
        raise RuntimeError("folium is needed for HTML maps: pip install 'folium>=0.17'") from exc
    return folium


def _legend_html(tm: ThematicMap, overlays: list[tuple[str, str]]) -> str:
    rows = "".join(
        f'<div><span style="background:{c};"></span>{html.escape(label)} ({n})</div>'
        for c, label, n in zip(tm.colours, tm.class_labels(), tm.counts, strict=True)
    )
    if any(c.klass is None for c in tm.communes):
        rows += f'<div><span style="background:{NO_DATA_COLOUR};"></span>Không có số liệu</div>'
    rows += (
        f'<div><span style="background:transparent;border:3px solid {FLAG_COLOUR};"></span>'
        f"Chưa đạt mục tiêu ({len(tm.flagged)} xã)</div>"
    )
    rows += "".join(
        f'<div><span style="background:{c};border-radius:50%;"></span>{html.escape(t)}</div>' for t, c in overlays
    )
    ind = tm.indicator
    return f"""
<div id="gis-ioc-legend" style="position:fixed;bottom:24px;right:12px;z-index:1000;background:#fff;padding:8px 12px;
 border:1px solid #999;border-radius:4px;font:13px 'DejaVu Sans',Arial,sans-serif;max-width:360px;">
 <b>{html.escape(ind.name.vi)}</b><br><small>Đơn vị: {html.escape(ind.unit)} · {html.escape(METHODS[tm.method])}</small>
 <style>#gis-ioc-legend span{{display:inline-block;width:16px;height:12px;margin-right:6px;border:1px solid #555;
 vertical-align:middle}}</style>
 {rows}
 <div style="margin-top:6px;color:#555;font-size:11px">Nguồn: {html.escape(ind.source_unit.vi)} · số liệu đến
 {html.escape(vn_date(tm.data_date) if tm.data_date else "—")} · mã lần phân tích {tm.run_id}
 · gis_ioc {__version__}</div>
</div>"""


def _title_html(tm: ThematicMap) -> str:
    return f"""
<div id="gis-ioc-title" style="position:fixed;top:10px;left:60px;z-index:1000;background:rgba(255,255,255,.92);
 padding:6px 12px;border:1px solid #999;border-radius:4px;font:16px 'DejaVu Sans',Arial,sans-serif;">
 <b>{html.escape(tm.indicator.name.vi)}</b> — {html.escape(vn_period(tm.period))} · tỉnh Hưng Yên</div>"""


def render_html(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    tm: ThematicMap,
    overlays: list[str] | None = None,
    *,
    viewer: Viewer,
) -> str:
    """The map as one self-contained HTML document (no request leaves the file); overlay layers as the
    viewer may read them."""
    folium = _require_folium()
    from branca.element import Element

    geoms = commune_geometries(conn)
    features = []
    for c in tm.communes:
        wkb = geoms.get(c.code)
        if wkb is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shapely.from_wkb(wkb)),
                "properties": {
                    "code": c.code,
                    "name": c.name,
                    "value": vn_number(c.value),
                    "target": vn_number(c.target),
                    "status": STATUS_VI.get(c.status, c.status),
                    "gap": vn_number(c.gap) if c.flagged else "—",
                    "change": vn_number(c.change),
                    "class": c.klass,
                    "colour": c.colour,
                    "flagged": c.flagged,
                },
            }
        )
    minx, miny, maxx, maxy = PROVINCE_BBOX
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=10, tiles=None, control_scale=True)
    m.default_js = [("leaflet", _VENDOR_PREFIX + "leaflet.js")]
    m.default_css = [("leaflet_css", _VENDOR_PREFIX + "leaflet.css")]
    unit = tm.indicator.unit
    folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=tm.indicator.name.vi,
        style_function=lambda f: {
            "fillColor": f["properties"]["colour"],
            "fillOpacity": 0.85,
            "color": FLAG_COLOUR if f["properties"]["flagged"] else "#555555",
            "weight": 3 if f["properties"]["flagged"] else 0.8,
        },
        highlight_function=lambda f: {"weight": 3, "color": "#1565c0"},
        tooltip=folium.GeoJsonTooltip(fields=["name"], labels=False),
        popup=folium.GeoJsonPopup(
            fields=["name", "code", "value", "target", "status", "gap", "change"],
            aliases=[
                "Xã/phường",
                "Mã",
                f"Giá trị ({unit})",
                f"Mục tiêu ({unit})",
                "Đánh giá",
                "Còn thiếu",
                "So với kỳ trước",
            ],
        ),
    ).add_to(m)
    legend_overlays: list[tuple[str, str]] = []
    for layer_id in overlays or []:
        props, wkbs, _cut = overlay_features(conn, catalog, layer_id, viewer)
        layer = catalog.layers[layer_id]
        style = catalog.style_of(layer)
        colour_of = {str(c.value): c.fill or style.symbol.fill or "#3388ff" for c in style.classes}
        base = style.symbol.fill or "#3388ff"
        feats = [
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shapely.from_wkb(w)),
                "properties": {**p, "_colour": colour_of.get(str(p.get(style.field or "")), base)},
            }
            for p, w in zip(props, wkbs, strict=True)
        ]
        label_field = "name" if layer.field("name") else (layer.key or "")
        group = folium.FeatureGroup(name=layer.title.vi)
        folium.GeoJson(
            {"type": "FeatureCollection", "features": feats},
            marker=folium.CircleMarker(radius=max(3.0, style.symbol.radius), fill=True),
            style_function=lambda f, stroke=style.symbol.stroke: {
                "fillColor": f["properties"]["_colour"],
                "color": stroke if f["geometry"]["type"].endswith("Point") else f["properties"]["_colour"],
                "weight": 1 if f["geometry"]["type"].endswith("Point") else 2,
                "fillOpacity": 0.9,
            },
            tooltip=folium.GeoJsonTooltip(fields=[label_field], labels=False) if label_field else None,
        ).add_to(group)
        group.add_to(m)
        legend_overlays.append((layer.title.vi, base))
    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    m.get_root().html.add_child(Element(_title_html(tm) + _legend_html(tm, legend_overlays)))
    m.get_root().header.add_child(Element(f"<title>{html.escape(tm.title)}</title>"))
    meta = {"indicator": tm.indicator.id, "period": tm.period, "run_id": tm.run_id, "method": tm.method}
    m.get_root().header.add_child(Element(f'<meta name="gis-ioc-map" content="{html.escape(json.dumps(meta))}">'))
    return inline_vendor(m.get_root().render())


def inline_vendor(document: str) -> str:
    """Replace the vendored script and stylesheet links by their contents: the file works offline."""
    leaflet = VENDOR_DIR / "leaflet"
    js = (leaflet / "leaflet.js").read_text(encoding="utf-8")
    css = (leaflet / "leaflet.css").read_text(encoding="utf-8")
    licence = "Leaflet 1.9.4 (BSD-2-Clause), (c) Volodymyr Agafonkin, CloudMade"
    document = document.replace(
        f'<script src="{_VENDOR_PREFIX}leaflet.js"></script>', f"<script>/* {licence} */\n{js}</script>"
    )
    document = document.replace(
        f'<link rel="stylesheet" href="{_VENDOR_PREFIX}leaflet.css"/>', f"<style>/* {licence} */\n{css}</style>"
    )
    if _VENDOR_PREFIX in document:
        raise RuntimeError("a vendored asset was not inlined; folium's template changed")
    return document
