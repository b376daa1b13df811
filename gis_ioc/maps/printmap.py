"""Print maps (PNG, PDF) at print quality: A4 or A3, 300 dpi by default, with title, legend with
units, scale bar, north arrow, data source and date. Drawn with matplotlib in VN-2000 / TM-3 105°30'
(EPSG:9209, metres, the national mapping grid of Hưng Yên), so the scale bar is true."""

from __future__ import annotations

import io
import math
import textwrap
from datetime import datetime
from typing import Any

import psycopg
import shapely

from gis_ioc import __version__
from gis_ioc.catalog import Catalog
from gis_ioc.errors import InvalidInput
from gis_ioc.maps.thematic import (
    FLAG_COLOUR,
    LOCAL_TIME,
    METHODS,
    NO_DATA_COLOUR,
    ThematicMap,
    commune_geometries,
    overlay_features,
    vn_date,
    vn_period,
)
from gis_ioc.maps.thematic import vn_number as _vn
from gis_ioc.query.viewer import Viewer

#: paper sizes in inches (ISO 216), portrait
PAPER = {"A4": (210 / 25.4, 297 / 25.4), "A3": (297 / 25.4, 420 / 25.4)}
PRINT_SRID = 989209  # gis_ioc's pinned VN-2000 / TM-3 105°30' (EPSG:9209 with EPSG:6960)
PRINT_CRS_LABEL = "VN-2000 / TM-3 105°30' (EPSG:9209)"


def _nice_length(span_m: float) -> float:
    """A round scale-bar length near a fifth of the map width."""
    raw = span_m / 5
    power = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * power >= raw * 0.7:
            return float(step * power)
    return float(10 * power)


def _draw_scale_bar(ax: Any, x0: float, y0: float, length: float, height: float) -> None:
    from matplotlib.patches import Rectangle

    parts = 4
    for i in range(parts):
        ax.add_patch(
            Rectangle(
                (x0 + i * length / parts, y0),
                length / parts,
                height,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.6,
                zorder=20,
            )
        )
    for i in (0, parts // 2, parts):
        ax.text(
            x0 + i * length / parts,
            y0 + height * 1.6,
            _vn(i * length / parts / 1000, 1),
            ha="center",
            va="bottom",
            fontsize=7,
            zorder=20,
        )
    ax.text(x0 + length + height, y0 + height / 2, "km", ha="left", va="center", fontsize=7, zorder=20)


def _draw_north_arrow(ax: Any, x: float, y: float, size: float) -> None:
    from matplotlib.patches import Polygon

    ax.add_patch(
        Polygon(
            [(x, y + size), (x - size * 0.35, y), (x, y + size * 0.25)],
            closed=True,
            facecolor="black",
            edgecolor="black",
            zorder=20,
        )
    )
    ax.add_patch(
        Polygon(
            [(x, y + size), (x + size * 0.35, y), (x, y + size * 0.25)],
            closed=True,
            facecolor="white",
            edgecolor="black",
            zorder=20,
        )
    )
    ax.text(x, y + size * 1.08, "B", ha="center", va="bottom", fontsize=11, fontweight="bold", zorder=20)  # Bắc


#: How a commune that misses its target is drawn, on the map and in the legend alike: a thick red
#: outline and red hatching over its class colour.
FLAG_STYLE: dict[str, Any] = {
    "facecolor": "none",
    "edgecolor": FLAG_COLOUR,
    "hatchcolor": FLAG_COLOUR,
    "hatch": "////",
    "linewidth": 1.6,
}


def short_name(name: str) -> str:
    """A commune's name for the index: ``Xã Đông Thụy Anh`` → ``Đông Thụy Anh``, ``Phường Phố Hiến`` →
    ``P. Phố Hiến``."""
    return name.replace("Phường ", "P. ").replace("Xã ", "")


def commune_numbers(tm: ThematicMap) -> dict[str, int]:
    """Each commune's number on the map, 1… in the order of their names (so the index reads
    alphabetically)."""
    ordered = sorted(tm.communes, key=lambda c: (_collation_key(short_name(c.name)), c.code))
    return {c.code: i for i, c in enumerate(ordered, start=1)}


def _collation_key(text: str) -> tuple[str, str]:
    """Vietnamese names in a plain alphabetical order (letters first, then diacritics)."""
    import unicodedata

    bare = unicodedata.normalize("NFD", text.replace("Đ", "D~").replace("đ", "d~"))
    return "".join(ch for ch in bare if not unicodedata.combining(ch)).lower(), text


def _draw_index(
    fig: Any, tm: ThematicMap, numbers: dict[str, int], x0: float, top: float, x1: float, bottom: float, h_in: float
) -> None:
    """The index of the communes' numbers, in as many columns as the box needs (red: target not met)."""
    by_number = sorted(tm.communes, key=lambda c: numbers[c.code])
    fig.text(x0, top, "Bảng tra cứu số hiệu xã, phường", fontsize=7.5, fontweight="bold", va="top")
    line = 7.0 / 72 / h_in  # 7 pt lines, as a fraction of the page height
    rows = max(1, int((top - 0.018 - bottom) / line))
    columns = -(-len(by_number) // rows)
    width = (x1 - x0) / max(columns, 1)
    size = 5.5 if width * fig.get_figwidth() >= 0.95 else 4.8
    for i, c in enumerate(by_number):
        col, row = divmod(i, rows)
        fig.text(
            x0 + col * width,
            top - 0.018 - row * line,
            f"{numbers[c.code]}. {short_name(c.name)}",
            fontsize=size,
            va="top",
            color=FLAG_COLOUR if c.flagged else "#1a1a1a",
            fontweight="bold" if c.flagged else "normal",
        )


def render_print(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    tm: ThematicMap,
    fmt: str = "pdf",
    *,
    viewer: Viewer,
    paper: str = "A4",
    orientation: str = "landscape",
    dpi: int = 300,
    overlays: list[str] | None = None,
) -> bytes:
    """The map as PNG or PDF bytes; overlay layers as the viewer may read them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, PathPatch
    from matplotlib.path import Path as MplPath

    if fmt not in ("png", "pdf"):
        raise InvalidInput(f"print format {fmt!r} must be png or pdf")
    if paper.upper() not in PAPER:
        raise InvalidInput(f"paper {paper!r} must be one of {', '.join(PAPER)}")
    if orientation not in ("landscape", "portrait"):
        raise InvalidInput(f"orientation {orientation!r} must be landscape or portrait")
    if not 72 <= dpi <= 600:
        raise InvalidInput(f"dpi {dpi} must be between 72 and 600")
    w, h = PAPER[paper.upper()]
    if orientation == "landscape":
        w, h = h, w
    plt.rcParams.update({"font.family": "DejaVu Sans", "pdf.fonttype": 42})
    fig = plt.figure(figsize=(w, h), dpi=dpi)
    legend_w = 0.27 if orientation == "landscape" else 0.0
    map_box = (0.03, 0.1, 0.94 - legend_w, 0.78) if orientation == "landscape" else (0.04, 0.33, 0.92, 0.56)
    ax = fig.add_axes(map_box)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_linewidth(0.8)

    geoms = commune_geometries(conn, PRINT_SRID, tolerance=5.0)  # 5 m: well under a printed dot
    by_code = {c.code: c for c in tm.communes}

    def patch_of(geom: Any, **style: Any) -> PathPatch:
        polys = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
        verts: list[tuple[float, float]] = []
        codes: list[int] = []
        for poly in polys:
            for ring in [poly.exterior, *poly.interiors]:
                coords = list(ring.coords)
                verts += coords
                codes += [int(MplPath.MOVETO)] + [int(MplPath.LINETO)] * (len(coords) - 2) + [int(MplPath.CLOSEPOLY)]
        return PathPatch(MplPath(verts, codes), **style)

    shapes = {code: shapely.from_wkb(wkb) for code, wkb in geoms.items() if code in by_code}
    fills = [
        patch_of(geom, facecolor=by_code[code].colour, edgecolor="#4d4d4d", linewidth=0.35)
        for code, geom in shapes.items()
    ]
    ax.add_collection(PatchCollection(fills, match_original=True, zorder=2), autolim=False)
    flagged = [code for code in shapes if by_code[code].flagged]
    for code in flagged:  # each patch on its own: a collection would drop the hatching the legend shows
        ax.add_patch(patch_of(shapes[code], zorder=4, **FLAG_STYLE))
    # every commune numbered on the map, its name in the index beside it (names would not fit)
    numbers = commune_numbers(tm)
    for code, geom in shapes.items():
        p = geom.representative_point()
        red = by_code[code].flagged
        ax.text(
            p.x,
            p.y,
            str(numbers[code]),
            fontsize=5.5 if red else 5,
            fontweight="bold" if red else "normal",
            color=FLAG_COLOUR if red else "#1a1a1a",
            ha="center",
            va="center",
            zorder=6,
            bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    bounds = [g.bounds for g in shapes.values()]
    minx, miny = min(b[0] for b in bounds), min(b[1] for b in bounds)
    maxx, maxy = max(b[2] for b in bounds), max(b[3] for b in bounds)
    pad = 0.03 * max(maxx - minx, maxy - miny)
    ax.set_xlim(minx - pad, maxx + pad)
    ax.set_ylim(miny - pad, maxy + pad)

    handles: list[Any] = [
        Patch(facecolor=c, edgecolor="#4d4d4d", label=f"{label}  ({n})")
        for c, label, n in zip(tm.colours, tm.class_labels(), tm.counts, strict=True)
    ]
    if any(c.klass is None for c in tm.communes):
        handles.append(Patch(facecolor=NO_DATA_COLOUR, edgecolor="#4d4d4d", label="Không có số liệu"))
    handles.append(Patch(**FLAG_STYLE, label=f"Chưa đạt mục tiêu ({len(tm.flagged)} xã)"))
    for layer_id in overlays or []:
        layer = catalog.layers[layer_id]
        style = catalog.style_of(layer)
        _props, wkbs, _cut = overlay_features(conn, catalog, layer_id, viewer, PRINT_SRID)
        colour = style.symbol.fill or style.symbol.stroke
        xs, ys = [], []
        for wkb in wkbs:
            g = shapely.from_wkb(wkb)
            if g.geom_type.endswith("Point"):
                pts = list(g.geoms) if hasattr(g, "geoms") else [g]
                xs += [p.x for p in pts]
                ys += [p.y for p in pts]
            else:
                for part in list(g.geoms) if hasattr(g, "geoms") else [g]:
                    line = part.exterior if part.geom_type == "Polygon" else part
                    lx, ly = line.xy
                    ax.plot(lx, ly, color=style.symbol.stroke, linewidth=0.5, zorder=5)
        if xs:
            ax.scatter(xs, ys, s=6, c=colour, edgecolors=style.symbol.stroke, linewidths=0.3, zorder=5)
        handles.append(Patch(facecolor=colour, edgecolor=style.symbol.stroke, label=layer.title.vi))

    from gis_ioc.maps.report import SECTORS_VI

    ind = tm.indicator
    fig.text(0.03, 0.955, f"{ind.name.vi}", fontsize=17, fontweight="bold", va="top")
    fig.text(
        0.03,
        0.915,
        f"Tỉnh Hưng Yên — {vn_period(tm.period)} — theo xã, phường ({len(tm.communes)} đơn vị)",
        fontsize=10.5,
        va="top",
    )
    legend_anchor = (1.02, 1.0) if orientation == "landscape" else (0.0, -0.03)
    legend = ax.legend(
        handles=handles,
        title=f"{ind.name.vi}\n(đơn vị: {ind.unit}; {METHODS[tm.method].lower()})",
        loc="upper left",
        bbox_to_anchor=legend_anchor,
        fontsize=8,
        title_fontsize=8.5,
        frameon=True,
        alignment="left",
    )
    legend.get_frame().set_edgecolor("#999999")
    span = (maxx - minx) + 2 * pad
    bar = _nice_length(span)
    _draw_scale_bar(ax, minx, miny - pad * 0.6, bar, pad * 0.25)
    _draw_north_arrow(ax, maxx, maxy - pad * 3.2, pad * 2.4)
    fig.canvas.draw()  # the legend's size is known only once drawn: the index goes below it
    box = legend.get_window_extent().transformed(fig.transFigure.inverted())
    if orientation == "landscape":
        _draw_index(fig, tm, numbers, box.x0, box.y0 - 0.02, 0.985, 0.1, h)
    else:
        _draw_index(fig, tm, numbers, box.x1 + 0.03, box.y1, 0.97, 0.1, h)
    now = datetime.now(LOCAL_TIME).strftime("%d/%m/%Y %H:%M")
    sector = SECTORS_VI.get(ind.sector, ind.sector).lower()
    footer = (
        f"Nguồn số liệu: {ind.source_unit.vi}; số liệu cập nhật {vn_date(tm.data_date)}; phân tích lĩnh vực "
        f"{sector}, lần phân tích #{tm.run_id} (mã kỳ {tm.period}). Hệ tọa độ {PRINT_CRS_LABEL}. "
        f"Lập lúc {now} (giờ Việt Nam) bởi gis_ioc {__version__} (IOC Hưng Yên)."
    )
    width = int(w * 17)  # characters of 7 pt text across the page
    fig.text(0.03, 0.065, "\n".join(textwrap.wrap(footer, width)), fontsize=7, va="bottom")
    if tm.flagged:
        flagged_text = "; ".join(
            f"{numbers[c.code]}. {short_name(c.name)} ({_vn(c.value)} / {_vn(c.target)})" for c in tm.flagged[:12]
        )
        if len(tm.flagged) > 12:
            flagged_text += f" và {len(tm.flagged) - 12} xã, phường khác (đỏ trong bảng tra cứu)"
        fig.text(
            0.03,
            0.058,
            "\n".join(textwrap.wrap(f"Chưa đạt mục tiêu (giá trị / mục tiêu): {flagged_text}", width)),
            fontsize=7,
            va="top",
            color=FLAG_COLOUR,
        )
    out = io.BytesIO()
    fig.savefig(
        out,
        format=fmt,
        dpi=dpi,
        metadata={"Title": tm.title, "Creator": f"gis_ioc {__version__}"} if fmt == "pdf" else None,
    )
    plt.close(fig)
    return out.getvalue()
