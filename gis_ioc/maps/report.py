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
from gis_ioc.maps.thematic import STATUS_VI, thematic_map, vn_number
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


@dataclass
class Source:
    indicator: str
    name: str
    source_unit: str
    last_update: str | None
    freshness_days: int
    fresh: bool | None


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
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def run_ids(self) -> list[int]:
        return [r["id"] for r in self.runs]

    @property
    def title(self) -> str:
        return f"Báo cáo phục vụ họp giao ban — kỳ {self.period}"

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


def describe_selection(selection: dict[str, Any], communes: list[str]) -> str:
    """The report's scope in Vietnamese, from a stored run's selection."""
    kind = selection.get("kind")
    names = ", ".join(communes)
    if kind == "province":
        return "Toàn tỉnh Hưng Yên"
    if kind == "communes":
        return f"Xã, phường: {names}"
    where = ""
    if selection.get("x") is not None and selection.get("y") is not None:
        crs = selection.get("crs") or "CRS84"
        where = f" quanh điểm ({vn_number(selection['x'], 5)}; {vn_number(selection['y'], 5)}, {crs})"
    if kind == "radius":
        return f"Vòng tròn bán kính {vn_number(selection.get('radius_m'), 0)} m{where}, gồm (một phần) các xã: {names}"
    if kind == "point":
        return f"Điểm{where.replace(' quanh điểm', '')} thuộc {names}"
    return f"Vùng chọn ({kind}) gồm (một phần) các xã: {names}"


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
    scope = describe_selection(sel, list(names.values()))
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
                    )
                )
    flags.sort(key=lambda f: (-f.severity, f.indicator, f.where))
    order = list(SECTORS_VI)
    by_sector = dict(sorted(by_sector.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    report = Report(
        period=period,
        scope=scope,
        runs=[
            {"id": r["id"], "scenario": r["scenario"], "run_at": r["run_at"], "data_version": r["data_version"]}
            for r in runs
        ],
        sectors=by_sector,
        flags=flags,
        sources=_sources(conn, catalog, period, [r.indicator for rows in by_sector.values() for r in rows]),
        layers=_layer_sources(conn, catalog, runs, scenarios or {}),
    )
    if maps:
        _add_maps(conn, catalog, report, runs, map_dpi, scenarios or {}, step, viewer)
    return report


def _sources(conn: psycopg.Connection[Any], catalog: Catalog, period: str, ids: list[str]) -> list[Source]:
    updated = dict(
        conn.execute(
            "SELECT indicator_id, max(updated_at) FROM gis_ioc.indicator_values "
            "WHERE period = %s AND indicator_id = ANY(%s) GROUP BY indicator_id",
            (period, ids),
        ).fetchall()
    )
    now = datetime.now(UTC)
    out = []
    for i in ids:
        ind = catalog.indicators.get(i)
        when = updated.get(i)
        fresh = None if when is None else when >= now - timedelta(days=ind.freshness_days)
        out.append(
            Source(
                i, ind.name.vi, ind.source_unit.vi, when.date().isoformat() if when else None, ind.freshness_days, fresh
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
                when.date().isoformat() if when else None,
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


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["num"] = lambda v, d=2: vn_number(v, d)
    env.filters["status"] = lambda s: STATUS_VI.get(s, s)
    env.filters["sector"] = lambda s: SECTORS_VI.get(s, s)
    env.filters["b64"] = lambda b: base64.b64encode(b).decode("ascii")
    return env


def render_html(report: Report) -> str:
    shown, left_out = report.flags_shown()
    return (
        _env()
        .get_template("report.html")
        .render(r=report, version=__version__, counts=report.counts(), flags=shown, left_out=left_out)
    )


def render_pdf(report: Report, html: str | None = None, chromium: str | Path = "/usr/bin/chromium") -> bytes:
    """The HTML printed to A4 by Debian's chromium (Playwright drives it; no browser is downloaded)."""
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
            pdf = page.pdf(
                format="A4",
                print_background=True,
                margin={"top": "15mm", "bottom": "15mm", "left": "14mm", "right": "14mm"},
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=(
                    '<div style="font-size:8px;width:100%;text-align:center;color:#555">'
                    f"{report.title} · lần chạy {', '.join(f'#{i}' for i in report.run_ids)} · "
                    'trang <span class="pageNumber"></span>/<span class="totalPages"></span></div>'
                ),
            )
        finally:
            browser.close()
    return pdf


def render_docx(report: Report) -> bytes:
    """An editable Word document with the same content as the HTML."""
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.shared import Cm, Pt, RGBColor

    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.left_margin = section.right_margin = Cm(1.8)
    style = doc.styles["Normal"]
    style.font.name = "DejaVu Sans"
    style.font.size = Pt(10)
    red = RGBColor(0xC6, 0x28, 0x28)
    doc.add_heading(report.title, 0)
    doc.add_paragraph(f"{report.scope}. Lập lúc {report.generated_at} bởi gis_ioc {__version__} (IOC Hưng Yên).")
    counts = report.counts()
    doc.add_paragraph(
        f"{sum(counts.values())} chỉ tiêu: {counts.get('met', 0)} đạt, {counts.get('not met', 0)} chưa đạt, "
        f"{counts.get('stale', 0)} số liệu cũ, {counts.get('no data', 0)} không có số liệu; "
        f"{len(report.flags)} mục chưa đạt mục tiêu."
    )
    doc.add_heading("1. Chỉ tiêu so với mục tiêu, theo lĩnh vực", 1)
    for sector, rows in report.sectors.items():
        doc.add_heading(SECTORS_VI.get(sector, sector), 2)
        table = doc.add_table(rows=1, cols=7)
        table.style = "Light Grid Accent 1"
        for cell, text in zip(
            table.rows[0].cells,
            ["Chỉ tiêu", "Đơn vị", "Giá trị", "Mục tiêu", "Đánh giá", "Xu hướng", "Xã chưa đạt"],
            strict=True,
        ):
            cell.text = text
        for r in rows:
            cells = table.add_row().cells
            values = [
                r.name,
                r.unit,
                vn_number(r.value),
                vn_number(r.target),
                STATUS_VI.get(r.status, r.status),
                f"{r.trend} ({vn_number(r.change)})" if r.change is not None else r.trend,
                f"{r.communes_not_met}/{r.communes_total}",
            ]
            for cell, text in zip(cells, values, strict=True):
                cell.text = text
                if r.status == "not met":
                    for run in cell.paragraphs[0].runs:
                        run.font.color.rgb = red
    doc.add_heading("2. Các mục chưa đạt mục tiêu (nặng nhất trước)", 1)
    shown, left_out = report.flags_shown()
    if shown:
        table = doc.add_table(rows=1, cols=6)
        table.style = "Light Grid Accent 1"
        for cell, text in zip(
            table.rows[0].cells, ["Chỉ tiêu", "Nơi", "Giá trị", "Mục tiêu", "Còn thiếu", "Xu hướng"], strict=True
        ):
            cell.text = text
        for f in shown:
            cells = table.add_row().cells
            for cell, text in zip(
                cells,
                [f.name, f.commune, vn_number(f.value), vn_number(f.target), f"{vn_number(f.gap)} {f.unit}", f.trend],
                strict=True,
            ):
                cell.text = text
        if left_out:
            doc.add_paragraph(f"Và {left_out} mục khác ở cấp xã (xuất đầy đủ: gis-ioc export run ID).")
    else:
        doc.add_paragraph("Tất cả chỉ tiêu có mục tiêu đều đạt.")
    if report.maps:
        doc.add_heading("3. Bản đồ chuyên đề", 1)
        for m in report.maps:
            doc.add_paragraph(f"{m['title']} — {m['flagged']} xã chưa đạt (lần chạy #{m['run_id']})")
            doc.add_picture(io.BytesIO(m["png"]), width=Cm(17))
    doc.add_heading("4. Nguồn số liệu và độ cập nhật", 1)
    table = doc.add_table(rows=1, cols=4)
    table.style = "Light Grid Accent 1"
    for cell, text in zip(table.rows[0].cells, ["Chỉ tiêu", "Đơn vị cung cấp", "Cập nhật", "Tình trạng"], strict=True):
        cell.text = text
    for s in report.sources:
        cells = table.add_row().cells
        state = "còn hạn" if s.fresh else ("quá hạn" if s.fresh is False else "không có")
        for cell, text in zip(
            cells, [s.name, s.source_unit, s.last_update or "—", f"{state} ({s.freshness_days} ngày)"], strict=True
        ):
            cell.text = text
    table = doc.add_table(rows=1, cols=4)
    table.style = "Light Grid Accent 1"
    for cell, text in zip(
        table.rows[0].cells, ["Lớp dữ liệu", "Đơn vị quản lý", "Số đối tượng", "Cập nhật"], strict=True
    ):
        cell.text = text
    for ls in report.layers:
        cells = table.add_row().cells
        for cell, text in zip(
            cells, [ls.title, ls.owner, vn_number(ls.features, 0), ls.last_update or "—"], strict=True
        ):
            cell.text = text
    doc.add_heading("5. Căn cứ lập báo cáo", 1)
    for run in report.runs:
        doc.add_paragraph(
            f"Lần chạy kịch bản #{run['id']} ({run['scenario']}) lúc {run['run_at']}", style="List Bullet"
        )
    doc.add_paragraph(f"Lập lại báo cáo này: gis-ioc report --runs {','.join(str(i) for i in report.run_ids)}")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
