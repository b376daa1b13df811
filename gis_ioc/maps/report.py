"""Meeting reports built entirely from the database: the indicators against their targets by sector,
the flagged items with their gap and trend, thematic maps, the data sources and their freshness, and
the scenario run ids the report rests on.

A report is made in two steps: :func:`run_for_report` runs the scenarios over the selection (each run
is stored), and :func:`build_report` reads those runs back by id and shapes the report. Building from
the same run ids always gives the same figures, so a report is reproducible from its run ids.
Outputs: HTML (:func:`render_html`), PDF (the HTML printed by chromium, :func:`render_pdf`) and an
editable DOCX (:func:`render_docx`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gis_ioc import __version__
from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.errors import ConfigError, InvalidInput
from gis_ioc.maps.thematic import (
    LOCAL_TIME,
    STATUS_VI,
    gap_text,
    thematic_map,
    unit_digits,
    vn_date,
    vn_datetime,
    vn_figure,
    vn_number,
    vn_period,
)
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.engine import get_run, run_scenario
from gis_ioc.scenarios.models import Scenario

TEMPLATES = Path(__file__).resolve().parent / "templates"
SECTORS_VI = {
    "population": "Dân số",
    "health": "Y tế",
    "education": "Giáo dục",
    "transport": "Giao thông",
    "environment": "Môi trường",
    "public_order": "An ninh trật tự",
    "social_welfare": "An sinh xã hội",
    "economy": "Kinh tế",
    "administration": "Cải cách hành chính",
}
Step = Callable[[str], None]
#: The issuing body of the reports (Nghị định 30/2020/NĐ-CP, Phụ lục I: the body above it, then itself)
#: and the place on their date line.
ISSUER_PARENT = "UBND TỈNH HƯNG YÊN"
ISSUER = "TRUNG TÂM GIÁM SÁT, ĐIỀU HÀNH THÔNG MINH"
ISSUER_SHORT = "TTGSĐHTM"
PLACE = "Hưng Yên"


def run_for_report(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenarios: dict[str, Scenario],
    period: str,
    *,
    viewer: Viewer,
    sectors: list[str] | None = None,
    communes: list[str] | None = None,
    privacy_threshold: int = 5,
    step: Step | None = None,
) -> list[int]:
    """Run every scenario that has an indicator of the chosen sectors (all by default) over the
    province or the chosen communes, for the viewer (the runs are the viewer's); returns the stored run
    ids."""
    if not PERIOD_RE.match(period):
        raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
    if sectors:
        unknown = [s for s in sectors if s not in SECTORS_VI]
        if unknown:
            raise InvalidInput(f"unknown sectors {unknown}; known: {', '.join(SECTORS_VI)}")
    body: dict[str, Any] = {"communes": communes} if communes else {"province": True}
    selection = selectors.from_request(conn, body, catalog, viewer)
    if communes:
        found = {
            r[0]
            for r in conn.execute(
                "SELECT code FROM layers.communes WHERE valid_to IS NULL AND code = ANY(%s)", (communes,)
            )
        }
        if missing := sorted(set(communes) - found):
            raise InvalidInput(f"no commune with code {', '.join(missing)} (codes have 5 digits, e.g. 11953)")
    ids = []
    for sid in sorted(scenarios):
        scenario = scenarios[sid]
        if sectors and not any(catalog.indicators.get(i).sector in sectors for i in scenario.indicators):
            continue
        if step:
            step(f"{scenario.title.vi} ({sid})")
        run = run_scenario(
            conn, catalog, scenario, selection, period, viewer=viewer, privacy_threshold=privacy_threshold
        )
        ids.append(run.id)
    if not ids:
        raise InvalidInput(f"no scenario covers the sectors {sectors}")
    return ids


@dataclass
class Row:
    indicator: str
    name: str
    unit: str
    sector: str
    value: float | None
    target: float | None
    status: str
    gap: float | None
    previous: float | None
    change: float | None
    trend: str
    communes_not_met: int
    communes_total: int
    run_id: int
    direction: str = "higher"
    updated_at: str | None = None  # the date the total rests on (a report, a reading), ISO


@dataclass
class Flag:
    indicator: str
    name: str
    unit: str
    where: str
    commune: str
    value: float | None
    target: float | None
    gap: float | None
    change: float | None
    trend: str
    severity: float
    run_id: int
    direction: str = "higher"
    share: float = 1.0  # of the commune inside the selection

    @property
    def gap_text(self) -> str:
        """``còn thiếu …`` or, for a "lower is better" indicator, ``vượt … so với chỉ tiêu``."""
        return gap_text(self.direction, self.gap, self.unit)


@dataclass
class Source:
    """Where an indicator's figure comes from: ``basis`` says what it rests on (the communes' reports, a
    map layer, the monitoring stations), ``last_update`` the latest date it rests on (ISO)."""

    indicator: str
    name: str
    source_unit: str
    last_update: str | None
    freshness_days: int
    fresh: bool | None
    basis: str = ""


@dataclass
class LayerSource:
    layer: str
    title: str
    owner: str
    features: int
    last_update: str | None
    freshness_days: int
    fresh: bool | None


@dataclass
class Report:
    period: str
    scope: str
    runs: list[dict[str, Any]]
    sectors: dict[str, list[Row]]
    flags: list[Flag]
    sources: list[Source]
    layers: list[LayerSource]
    maps: list[dict[str, Any]] = field(default_factory=list)  # indicator, title, png (bytes), run_id, flagged
    generated_at: str = field(default_factory=lambda: datetime.now(LOCAL_TIME).isoformat(timespec="seconds"))

    @property
    def run_ids(self) -> list[int]:
        return [r["id"] for r in self.runs]

    @property
    def period_text(self) -> str:
        return vn_period(self.period)

    @property
    def title(self) -> str:
        return f"Báo cáo phục vụ họp giao ban — {self.period_text}"

    @property
    def subject(self) -> str:
        """The report's summary line (trích yếu) under its type."""
        sectors = ", ".join(SECTORS_VI.get(s, s).lower() for s in self.sectors)
        return f"Tình hình thực hiện các chỉ tiêu {sectors} {self.period_text}"

    @property
    def dateline(self) -> str:
        """``Hưng Yên, ngày 02 tháng 12 năm 2026`` (the day the report is made, Vietnam's time)."""
        when = datetime.fromisoformat(self.generated_at).astimezone(LOCAL_TIME)
        return f"{PLACE}, ngày {when.day:02d} tháng {when.month:02d} năm {when.year}"

    def flags_shown(self, per_indicator: int = 5) -> tuple[list[Flag], int]:
        """What the meeting reads: every selection-wide flag and the worst communes of each indicator;
        and how many commune flags are left out (all are in the runs and the exports)."""
        shown: list[Flag] = []
        kept: dict[str, int] = {}
        for f in self.flags:
            if f.where == "total":
                shown.append(f)
            elif kept.get(f.indicator, 0) < per_indicator:
                kept[f.indicator] = kept.get(f.indicator, 0) + 1
                shown.append(f)
        return shown, len(self.flags) - len(shown)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rows in self.sectors.values():
            for r in rows:
                out[r.status] = out.get(r.status, 0) + 1
        return out

    def source_rows(self) -> list[dict[str, str]]:
        """The one table of sources: each indicator with what it rests on, then each map layer; the
        same wording in every format."""
        out = []
        for s in self.sources:
            out.append(
                {
                    "what": s.name,
                    "unit": s.source_unit,
                    "basis": s.basis,
                    "updated": vn_date(s.last_update),
                    "state": _freshness(s.fresh, s.freshness_days),
                    "stale": "1" if s.fresh is False else "",
                }
            )
        for ls in self.layers:
            out.append(
                {
                    "what": f"Lớp dữ liệu: {ls.title}",
                    "unit": ls.owner,
                    "basis": f"{vn_number(ls.features, 0)} đối tượng",
                    "updated": vn_date(ls.last_update),
                    "state": _freshness(ls.fresh, ls.freshness_days),
                    "stale": "1" if ls.fresh is False else "",
                }
            )
        return out


def _freshness(fresh: bool | None, days: int) -> str:
    if fresh is None:
        return "không có số liệu"
    return f"{'còn hạn' if fresh else 'quá hạn'} (cập nhật tối thiểu {days} ngày/lần)"


def describe_selection(selection: dict[str, Any], communes: list[dict[str, Any]]) -> str:
    """The report's scope in Vietnamese, from a stored run's selection and communes (a commune cut by a
    radius or zone with the share of it inside)."""
    kind = selection.get("kind")
    if kind == "province":
        return "Toàn tỉnh Hưng Yên"
    if kind == "communes":
        return f"Xã, phường: {', '.join(c['name'] for c in communes)}"
    names = ", ".join(
        c["name"] if c.get("share", 1.0) >= 0.995 else f"{c['name']} ({vn_number(100 * c.get('share', 0.0), 0)} %)"
        for c in communes
    )
    where = ""
    if selection.get("x") is not None and selection.get("y") is not None:
        crs = selection.get("crs")
        if crs in (None, "", "CRS84", "EPSG:4326", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
            where = f" quanh điểm kinh độ {vn_number(selection['x'], 5)}, vĩ độ {vn_number(selection['y'], 5)}"
        else:
            where = f" quanh điểm X = {vn_number(selection['x'], 1)}, Y = {vn_number(selection['y'], 1)} ({crs})"
    if kind == "radius":
        return (
            f"Vòng tròn bán kính {vn_number(selection.get('radius_m'), 0)} m{where}, gồm các xã, phường "
            f"(phần trong vòng tròn): {names}"
        )
    if kind == "point":
        return f"Điểm{where.replace(' quanh điểm', '')} thuộc {names}"
    return f"Vùng vẽ trên bản đồ, gồm các xã, phường (phần trong vùng): {names}"


def trend(direction: str, change: float | None) -> str:
    """↑/↓ by the sign of the change, and whether it is better or worse for this indicator."""
    if change is None:
        return "—"
    if abs(change) < 1e-9:
        return "→ không đổi"
    better = (change > 0) == (direction == "higher")
    return ("↑" if change > 0 else "↓") + (" tốt lên" if better else " xấu đi")


def build_report(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    run_ids: list[int],
    *,
    viewer: Viewer,
    sectors: list[str] | None = None,
    maps: bool = True,
    map_dpi: int = 150,
    scenarios: dict[str, Scenario] | None = None,
    step: Step | None = None,
) -> Report:
    """The report from stored runs only (figures; runs the viewer may see, as the viewer sees them), plus
    the catalog (names, units, sources). Only sector scenario runs make a report (an emergency run has no
    indicators: 400)."""
    if not run_ids:
        raise InvalidInput("a report needs at least one scenario run id")
    runs = [get_run(conn, rid, viewer) for rid in run_ids]
    if other := [r for r in runs if not isinstance(r.get("indicators"), list)]:
        raise InvalidInput(
            f"run {other[0]['id']} is an {other[0]['scenario']} run; a report is built from sector scenario runs "
            "(indicators against their targets)"
        )
    periods = {r["period"] for r in runs}
    if len(periods) != 1:
        raise InvalidInput(f"runs {run_ids} are for different periods {sorted(periods)}; a report covers one")
    selections = {str(r["selection"]) for r in runs}
    if len(selections) != 1:
        raise InvalidInput(f"runs {run_ids} are over different selections; a report covers one")
    period = runs[0]["period"]
    sel = runs[0]["selection"]
    names = {c["code"]: c["name"] for c in runs[0]["communes"]}
    scope = describe_selection(sel, runs[0]["communes"])
    seen: set[str] = set()
    by_sector: dict[str, list[Row]] = {}
    flags: list[Flag] = []
    for run in runs:
        for ind in run["indicators"]:
            if ind["id"] in seen or (sectors and ind["sector"] not in sectors):
                continue
            seen.add(ind["id"])
            total = ind["total"]
            communes = ind["communes"]
            not_met = sum(1 for f in communes.values() if f["status"] == "not met")
            by_sector.setdefault(ind["sector"], []).append(
                Row(
                    ind["id"],
                    ind["name"]["vi"],
                    ind["unit"],
                    ind["sector"],
                    total["value"],
                    total["target"],
                    total["status"],
                    total["gap"],
                    total.get("previous"),
                    total.get("change"),
                    trend(ind["direction"], total.get("change")),
                    not_met,
                    len(communes),
                    run["id"],
                    ind["direction"],
                    total.get("updated_at"),
                )
            )
            for f in run["flags"]:
                if f["indicator"] != ind["id"]:
                    continue
                fig = total if f["where"] == "total" else communes.get(f["where"], {})
                flags.append(
                    Flag(
                        ind["id"],
                        ind["name"]["vi"],
                        ind["unit"],
                        f["where"],
                        "Toàn vùng"
                        if f["where"] == "total"
                        else (f.get("commune") or names.get(f["where"], f["where"])),
                        f["value"],
                        f["target"],
                        f["gap"],
                        fig.get("change"),
                        trend(ind["direction"], fig.get("change")),
                        f["severity"],
                        run["id"],
                        ind["direction"],
                        float(f.get("share", 1.0)),
                    )
                )
    flags.sort(key=lambda f: (-f.severity, f.indicator, f.where))
    order = list(SECTORS_VI)
    by_sector = dict(sorted(by_sector.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    layers = _layer_sources(conn, catalog, runs, scenarios or {})
    report = Report(
        period=period,
        scope=scope,
        runs=[
            {
                "id": r["id"],
                "scenario": r["scenario"],
                "title": _scenario_title(scenarios or {}, r["scenario"]),
                "run_at": r["run_at"],
                "data_version": r["data_version"],
            }
            for r in runs
        ],
        sectors=by_sector,
        flags=flags,
        sources=_sources(conn, catalog, period, [r for rows in by_sector.values() for r in rows], layers),
        layers=layers,
    )
    if maps:
        _add_maps(conn, catalog, report, runs, map_dpi, scenarios or {}, step, viewer)
    return report


def _scenario_title(scenarios: dict[str, Scenario], scenario_id: str) -> str:
    s = scenarios.get(scenario_id)
    if s is not None:
        return s.title.vi
    return SECTORS_VI.get(scenario_id, "Phân tích theo lĩnh vực")


def _sources(
    conn: psycopg.Connection[Any], catalog: Catalog, period: str, rows: list[Row], layers: list[LayerSource]
) -> list[Source]:
    """Each indicator's source and the latest date its figure rests on: the communes' reports of the
    period, the map layer it is measured from, or the monitoring stations' readings. So a figure given
    above never reads "no data" here."""
    ids = [r.indicator for r in rows]
    updated = dict(
        conn.execute(
            "SELECT indicator_id, max(updated_at) FROM gis_ioc.indicator_values "
            "WHERE period = %s AND indicator_id = ANY(%s) GROUP BY indicator_id",
            (period, ids),
        ).fetchall()
    )
    by_layer = {ls.layer: ls for ls in layers}
    now = datetime.now(UTC)
    out = []
    for row in rows:
        ind = catalog.indicators.get(row.indicator)
        agg = ind.aggregation
        when: datetime | None
        if agg.kind in ("layer", "reach"):
            layer = by_layer.get(agg.layer or "")
            title = layer.title if layer else (agg.layer or "")
            basis = f"đo trên lớp dữ liệu {title}"
            when = datetime.fromisoformat(layer.last_update) if layer and layer.last_update else None
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=LOCAL_TIME)
        elif agg.kind == "sensor":
            basis = "trạm quan trắc tự động (IoT)"
            when = datetime.fromisoformat(row.updated_at) if row.updated_at else None
        else:
            basis = "báo cáo của các xã, phường"
            when = updated.get(row.indicator)
        if when is None and row.value is not None and row.updated_at:
            when = datetime.fromisoformat(row.updated_at)
        fresh = None if when is None else when >= now - timedelta(days=ind.freshness_days)
        out.append(
            Source(
                row.indicator,
                ind.name.vi,
                ind.source_unit.vi,
                when.astimezone(LOCAL_TIME).date().isoformat() if when else None,
                ind.freshness_days,
                fresh,
                basis,
            )
        )
    return out


def _layer_sources(
    conn: psycopg.Connection[Any], catalog: Catalog, runs: list[dict[str, Any]], scenarios: dict[str, Scenario]
) -> list[LayerSource]:
    from psycopg import sql

    layer_ids = ["communes"]
    for r in runs:
        s = scenarios.get(r["scenario"])
        layer_ids += list(s.layers) if s else []
        for ind in r["indicators"]:
            agg = catalog.indicators.get(ind["id"]).aggregation
            if agg.layer:
                layer_ids.append(agg.layer)
            if agg.origin:
                layer_ids.append(agg.origin)
    out = []
    now = datetime.now(UTC)
    for lid in dict.fromkeys(layer_ids):
        layer = catalog.layers.get(lid)
        if layer is None:
            continue
        row = conn.execute(
            sql.SQL("SELECT count(*), max(updated_at) FROM {} WHERE approval = 'approved'").format(
                sql.Identifier(SCHEMA, layer.table)
            )
        ).fetchone()
        count, when = (row[0], row[1]) if row else (0, None)
        fresh = None if when is None else when >= now - timedelta(days=layer.freshness_days)
        out.append(
            LayerSource(
                lid,
                layer.title.vi,
                layer.owner_unit.vi,
                int(count),
                when.astimezone(LOCAL_TIME).date().isoformat() if when else None,
                layer.freshness_days,
                fresh,
            )
        )
    return out


def _add_maps(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    report: Report,
    runs: list[dict[str, Any]],
    dpi: int,
    scenarios: dict[str, Scenario],
    step: Step | None,
    viewer: Viewer,
) -> None:
    """One map per sector: the indicator with the most communes below target (if any)."""
    from gis_ioc.maps.printmap import render_print

    if len(runs[0]["communes"]) < 2:
        return  # a map of one commune says nothing a table does not
    for rows in report.sectors.values():
        candidates = [r for r in rows if r.communes_not_met > 0]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r.communes_not_met)
        if step:
            step(f"bản đồ {best.name}")
        tm = thematic_map(conn, catalog, scenarios, best.indicator, viewer=viewer, run_id=best.run_id)
        png = render_print(conn, catalog, tm, "png", viewer=viewer, paper="A4", orientation="landscape", dpi=dpi)
        report.maps.append(
            {
                "indicator": best.indicator,
                "title": best.name,
                "png": png,
                "run_id": best.run_id,
                "flagged": len(tm.flagged),
            }
        )


# -- rendering -------------------------------------------------------------------------------------
#
# The documents follow Nghị định 30/2020/NĐ-CP, Phụ lục I (the state's format for administrative
# documents): A4 portrait; margins top and bottom 20 mm, left 30 mm, right 15 mm; Times New Roman 13 pt
# (Liberation Serif, metric-compatible, where the server prints the PDF); page numbers centred in the top
# margin from the second page; the issuing body and the national motto at the head.

#: Page margins in millimetres (top, bottom, left, right), within Phụ lục I's 20–25, 20–25, 30–35, 15–20.
MARGINS_MM = (20, 20, 30, 15)
#: Body text size in points (Phụ lục I: 13–14).
BODY_PT = 13
MOTTO_1 = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_2 = "Độc lập - Tự do - Hạnh phúc"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["num"] = lambda v, d=2: vn_number(v, d)
    env.filters["fig"] = vn_figure
    env.filters["status"] = lambda s: STATUS_VI.get(s, s)
    env.filters["sector"] = lambda s: SECTORS_VI.get(s, s)
    env.filters["b64"] = lambda b: base64.b64encode(b).decode("ascii")
    env.filters["datetime"] = vn_datetime
    env.filters["date"] = vn_date
    return env


def _run_line(run: dict[str, Any]) -> str:
    """One run in the report's basis, in words a leader reads."""
    version = run.get("data_version") or {}
    updated = version.get("values_updated_at")
    text = f"Phân tích lĩnh vực {run.get('title') or run['scenario']} (mã lần phân tích {run['id']}), lập lúc "
    text += vn_datetime(run["run_at"])
    if updated:
        text += f"; số liệu chỉ tiêu cập nhật đến {vn_datetime(updated)}"
    return text


def _change_text(row: Row | Flag) -> str:
    if row.change is None or round(row.change, unit_digits(row.unit)) == 0:
        return row.trend
    return f"{row.trend} ({vn_figure(row.change, row.unit)})"


def render_html(report: Report) -> str:
    shown, left_out = report.flags_shown()
    return (
        _env()
        .get_template("report.html")
        .render(
            r=report,
            version=__version__,
            counts=report.counts(),
            flags=shown,
            left_out=left_out,
            issuer_parent=ISSUER_PARENT,
            issuer=ISSUER,
            issuer_short=ISSUER_SHORT,
            motto=(MOTTO_1, MOTTO_2),
            margins=MARGINS_MM,
            body_pt=BODY_PT,
            run_lines=[_run_line(run) for run in report.runs],
            sources=report.source_rows(),
            change_text=_change_text,
        )
    )


def render_pdf(report: Report, html: str | None = None, chromium: str | Path = "/usr/bin/chromium") -> bytes:
    """The HTML printed by Debian's chromium (Playwright drives it; no browser is downloaded): the page
    size, margins and page numbers come from the template's ``@page`` rules."""
    from playwright.sync_api import sync_playwright

    if not Path(chromium).is_file():
        raise ConfigError(
            f"no chromium at {chromium} to print the PDF: apt-get install chromium, or set GIS_IOC_CHROMIUM"
        )
    html = html or render_html(report)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page()
            page.set_content(html, wait_until="load")
            pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        finally:
            browser.close()
    return pdf


def render_docx(report: Report) -> bytes:
    """An editable Word document with the same content as the HTML, in the state's format."""
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Mm, Pt, RGBColor

    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    top, bottom, left, right = MARGINS_MM
    section.top_margin, section.bottom_margin = Mm(top), Mm(bottom)
    section.left_margin, section.right_margin = Mm(left), Mm(right)
    section.header_distance = section.footer_distance = Mm(10)
    black = RGBColor(0, 0, 0)
    red = RGBColor(0xC6, 0x28, 0x28)

    def font(style: Any, size: float, bold: bool | None = None) -> None:
        style.font.name = "Times New Roman"
        style.font.size = Pt(size)
        style.font.color.rgb = black
        if bold is not None:
            style.font.bold = bold
        fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
        for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):  # Vietnamese is also "complex" to Word
            fonts.set(qn(attr), "Times New Roman")
        for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
            fonts.attrib.pop(qn(attr), None)

    font(doc.styles["Normal"], BODY_PT)
    doc.styles["Normal"].paragraph_format.space_after = Pt(4)
    for name, size in (("Title", 14), ("Heading 1", 13), ("Heading 2", 13), ("Heading 3", 13)):
        font(doc.styles[name], size, bold=True)
        doc.styles[name].font.italic = name == "Heading 2"

    # page numbers: centred in the top margin from the second page (none on the first)
    section.different_first_page_header_footer = True
    number = section.header.paragraphs[0]
    number.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _page_field(number.add_run(), qn)

    def para(
        text: str = "",
        *,
        bold: bool = False,
        italic: bool = False,
        size: float = BODY_PT,
        center: bool = False,
        cell: Any = None,
        space_after: float = 0,
    ) -> Any:
        p = (
            cell.paragraphs[0]
            if cell is not None and not cell.paragraphs[0].text and not cell.paragraphs[0].runs
            else (cell.add_paragraph() if cell is not None else doc.add_paragraph())
        )
        if center:
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.paragraph_format.space_after = Pt(space_after)
        run = p.add_run(text)
        run.bold, run.italic, run.font.size = bold, italic, Pt(size)
        return p

    # the head: the issuing body (left) and the national motto (right)
    head = doc.add_table(rows=1, cols=2)
    head.alignment = WD_TABLE_ALIGNMENT.CENTER
    head.autofit = False
    widths = (Mm(68), Mm(97))
    for cell, width in zip(head.rows[0].cells, widths, strict=True):
        cell.width = width
    left_cell, right_cell = head.rows[0].cells
    para(ISSUER_PARENT, size=13, center=True, cell=left_cell)
    para(ISSUER, bold=True, size=13, center=True, cell=left_cell)
    para("———", bold=True, size=9, center=True, cell=left_cell)
    para(f"Số:       /BC-{ISSUER_SHORT}", size=13, center=True, cell=left_cell)
    para(MOTTO_1, bold=True, size=13, center=True, cell=right_cell)
    para(MOTTO_2, bold=True, size=14, center=True, cell=right_cell)
    para("—————————", bold=True, size=9, center=True, cell=right_cell)
    para(report.dateline, italic=True, size=14, center=True, cell=right_cell)
    doc.add_paragraph()
    para("BÁO CÁO", bold=True, size=14, center=True)
    para(report.subject, bold=True, size=14, center=True)
    para(
        f"(Phục vụ họp giao ban — {report.period_text}; {report.scope})",
        italic=True,
        size=13,
        center=True,
        space_after=8,
    )

    counts = report.counts()
    doc.add_paragraph(
        f"Số liệu tổng hợp từ cơ sở dữ liệu của Trung tâm lúc {vn_datetime(report.generated_at)}. "
        f"{sum(counts.values())} chỉ tiêu: {counts.get('met', 0)} đạt, {counts.get('not met', 0)} chưa đạt, "
        f"{counts.get('stale', 0)} số liệu cũ, {counts.get('no data', 0)} không có số liệu; "
        f"{len(report.flags)} mục chưa đạt chỉ tiêu (toàn vùng và theo xã, phường)."
    )

    def table(header: list[str], rows: list[tuple[list[str], bool]]) -> None:
        t = doc.add_table(rows=1, cols=len(header))
        t.style = "Table Grid"
        for cell, text in zip(t.rows[0].cells, header, strict=True):
            para(text, bold=True, size=12, cell=cell)
        for values, flagged in rows:
            cells = t.add_row().cells
            for cell, text in zip(cells, values, strict=True):
                run = para(text, size=12, cell=cell).runs[0]
                if flagged:
                    run.font.color.rgb = red

    doc.add_heading("1. Chỉ tiêu so với mục tiêu, theo lĩnh vực", 1)
    for sector, rows in report.sectors.items():
        doc.add_heading(SECTORS_VI.get(sector, sector), 2)
        table(
            ["Chỉ tiêu", "Đơn vị", "Giá trị", "Mục tiêu", "Đánh giá", "Xu hướng", "Xã chưa đạt"],
            [
                (
                    [
                        r.name,
                        r.unit,
                        vn_figure(r.value, r.unit),
                        vn_figure(r.target, r.unit),
                        STATUS_VI.get(r.status, r.status),
                        _change_text(r),
                        f"{r.communes_not_met}/{r.communes_total}",
                    ],
                    r.status == "not met",
                )
                for r in rows
            ],
        )
    doc.add_heading("2. Các mục chưa đạt chỉ tiêu (nặng nhất trước)", 1)
    shown, left_out = report.flags_shown()
    if shown:
        table(
            ["Chỉ tiêu", "Nơi", "Giá trị", "Mục tiêu", "So với chỉ tiêu", "Xu hướng"],
            [
                (
                    [
                        f.name,
                        f.commune if f.share >= 0.995 else f"{f.commune} ({vn_number(100 * f.share, 0)} % trong vùng)",
                        vn_figure(f.value, f.unit),
                        vn_figure(f.target, f.unit),
                        f.gap_text,
                        _change_text(f),
                    ],
                    True,
                )
                for f in shown
            ],
        )
        if left_out:
            doc.add_paragraph(
                f"Và {left_out} mục khác ở cấp xã, phường; danh sách đầy đủ có trong tệp xuất số liệu kèm theo."
            )
    else:
        doc.add_paragraph("Tất cả chỉ tiêu có mục tiêu đều đạt.")
    if report.maps:
        doc.add_heading("3. Bản đồ chuyên đề", 1)
        for m in report.maps:
            doc.add_picture(io.BytesIO(m["png"]), width=Mm(165))
            para(
                f"{m['title']}, {report.period_text}: {m['flagged']} xã, phường chưa đạt chỉ tiêu (gạch chéo đỏ).",
                italic=True,
                size=12,
                center=True,
                space_after=6,
            )
    doc.add_heading("4. Nguồn số liệu và độ cập nhật", 1)
    table(
        ["Số liệu", "Đơn vị cung cấp", "Căn cứ", "Cập nhật gần nhất", "Tình trạng"],
        [
            ([s["what"], s["unit"], s["basis"], s["updated"], s["state"]], bool(s["stale"]))
            for s in report.source_rows()
        ],
    )
    doc.add_heading("5. Căn cứ lập báo cáo", 1)
    for run in report.runs:
        doc.add_paragraph(_run_line(run), style="List Bullet")
    doc.add_paragraph(
        "Mọi số liệu trong báo cáo lấy từ cơ sở dữ liệu của Trung tâm qua các lần phân tích trên; "
        "báo cáo lập lại từ các mã lần phân tích này cho đúng các số liệu này."
    )
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _page_field(run: Any, qn: Callable[[str], str]) -> None:
    """A PAGE field (Word fills in the page number)."""
    from docx.oxml import OxmlElement

    begin, instr, end = OxmlElement("w:fldChar"), OxmlElement("w:instrText"), OxmlElement("w:fldChar")
    begin.set(qn("w:fldCharType"), "begin")
    instr.set(qn("xml:space"), "preserve")
    instr.text = "PAGE"
    end.set(qn("w:fldCharType"), "end")
    for element in (begin, instr, end):
        run._r.append(element)
