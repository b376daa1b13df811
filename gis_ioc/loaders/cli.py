"""``gis-ioc load …``: the command-line door of the loaders (registered in :mod:`gis_ioc.cli`)."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gis_ioc.clikit import catalog_of, console, progress_bar, settings_of
from gis_ioc.database.connection import connect
from gis_ioc.errors import GisIocError

if TYPE_CHECKING:
    import psycopg

    from gis_ioc.loaders.vector import LoadReport

MODES = ("append", "replace", "upsert")  # gis_ioc.loaders.vector.MODES, without importing GDAL at start-up

out = Console()
_STAGES = {"read": "reading", "check": "checking", "overlaps": "overlaps", "write": "staging",
           "gates": "checking in SQL", "merge": "merging", "finish": "finishing"}  # fmt: skip
_settings = settings_of
_catalog = catalog_of


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise click.BadParameter(
                f"{pair!r}: write SOURCE_COLUMN=FIELD, e.g. --map SO_THUA=parcel_number", param_hint="--map"
            )
        mapping[src] = dst
    return mapping


_WORDS = {
    "vi": {"features": "đối tượng", "read_as": "đọc dạng", "layer": "lớp", "crs_from": "theo", "text": "văn bản",
           "converted": "giá trị đã chuyển mã", "note": "ghi chú", "row": "dòng", "field": "trường",
           "severity": "mức", "problem": "vấn đề", "title": "Báo cáo chất lượng",
           "more": "còn {n} mục nữa trong --json",
           "totals": "tổng", "derived": "suy ra từ hình học", "proposed": "đề xuất ánh xạ cột",
           "error": "lỗi", "warning": "cảnh báo"},
    "en": {"features": "features", "read_as": "read as", "layer": "layer", "crs_from": "from", "text": "text",
           "converted": "values converted", "note": "note", "row": "row", "field": "field", "severity": "severity",
           "problem": "problem", "title": "Quality report", "more": "{n} more in --json", "totals": "totals",
           "derived": "derived from the geometry", "proposed": "proposed column mapping",
           "error": "error", "warning": "warning"},
}  # fmt: skip


def print_report(report: LoadReport, console_: Console, lang: str = "vi") -> None:
    """The readable summary: what was read, how, and every problem by row (Vietnamese; English with lang='en')."""
    w = _WORDS["en" if lang == "en" else "vi"]
    d = report.as_dict()
    head = f"[bold]{escape(report.file_name)}[/] → [bold]{report.layer_id}[/] ({report.mode})"
    if report.format:  # a file refused before it was read says nothing about features
        head += f": {report.features} {w['features']}, {w['read_as']} {report.format}"
        if report.source_layer:
            head += f", {w['layer']} {escape(report.source_layer)}"
    console_.print(head)
    if report.crs.get("source"):
        name = escape(report.crs.get("name") or "")
        console_.print(f"  CRS: {report.crs['source']} {name} ({w['crs_from']} {report.crs['from']})")
    if report.encoding:
        console_.print(
            f"  {w['text']}: {report.encoding['used']} ({report.encoding['how']}), "
            f"{report.encoding['converted_values']} {w['converted']}"
        )
    for name, how in report.derived.items():
        console_.print(f"  {w['derived']}: {name} — {escape(how)}")
    for note in report.notes:
        console_.print(f"  {w['note']}: {escape(note)}")
    issues = report.findings.issues
    if issues:
        table = Table(w["row"], w["field"], w["severity"], w["problem"], title=w["title"], title_justify="left")
        colours = {"error": "red", "warning": "yellow", "note": "cyan"}
        for issue in issues[:200]:
            table.add_row(
                "" if issue.row is None else str(issue.row),
                issue.field or "",
                f"[{colours[issue.severity]}]{w.get(issue.severity, issue.severity)}[/]",
                escape(issue.text(lang)),
            )
        console_.print(table)
        if len(issues) > 200:
            console_.print("  … " + w["more"].format(n=len(issues) - 200))
    counts = ", ".join(f"{n} {sev} ({code})" for sev, codes in d["counts"].items() for code, n in codes.items())
    if counts:
        console_.print(f"  {w['totals']}: {counts}")
    if report.proposed_map:
        console_.print(f"  {w['proposed']}: {escape(report.proposed_map)}")


@click.group("load")
def load() -> None:
    """Load GIS officers' files: vector layers, planning drawings, boundaries; history, approval, rollback."""


@load.command("vector")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", "layer_id", required=True, help="Layer id from the catalog (gis-ioc catalog list).")
@click.option(
    "--crs", help="Source CRS when the file has none or a wrong one, e.g. EPSG:9209 (VN-2000 / TM-3 105°30')."
)
@click.option("--mode", type=click.Choice(MODES), default="append", show_default=True)
@click.option("--source-unit", help="Unit that supplied the data (provenance), e.g. 'UBND xã Tân Hưng'.")
@click.option("--map", "maps", multiple=True, help="SOURCE_COLUMN=FIELD (repeatable).")
@click.option(
    "--set", "sets", multiple=True, help="FIELD=VALUE for every feature (repeatable), e.g. a CAD drawing's commune."
)
@click.option(
    "--encoding", help="Text encoding of a Shapefile/CSV/DXF: utf-8, cp1258, tcvn3 (ABC), vni (default: detected)."
)
@click.option("--source-layer", help="Layer inside a GeoPackage, KML or archive holding several.")
@click.option("--where", help="OGR attribute filter, e.g. \"Layer = 'RANH_THUA'\" for a DXF.")
@click.option("--source-date", type=click.DateTime(["%Y-%m-%d"]), help="Date the data describes (freshness).")
@click.option("--accept-warnings", is_flag=True, help="Load although the report has warnings.")
@click.option("--dry-run", is_flag=True, help="Check only; write nothing.")
@click.option("--loaded-by", help="Who loads (default: the system user).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on standard output.")
@click.option(
    "--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True, help="Language of the report."
)
@click.pass_context
def load_vector_cmd(
    ctx: click.Context,
    file: Path,
    layer_id: str,
    crs: str | None,
    mode: Any,
    source_unit: str | None,
    maps: tuple[str, ...],
    sets: tuple[str, ...],
    encoding: str | None,
    source_layer: str | None,
    where: str | None,
    source_date: datetime | None,
    accept_warnings: bool,
    dry_run: bool,
    loaded_by: str | None,
    as_json: bool,
    lang: str,
) -> None:
    """Load FILE (GeoJSON, zipped Shapefile, GeoPackage, KML/KMZ, CSV, FlatGeobuf, DXF) into a layer as a draft."""
    from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, LoadRejected, load_vector

    settings = _settings(ctx)
    options = LoadOptions(
        layer_id=layer_id,
        crs=crs,
        mode=mode,
        source_unit=source_unit,
        mapping=_mapping(maps),
        constants=_mapping(sets),
        encoding=encoding,
        source_layer=source_layer,
        where=where,
        source_date=source_date.date() if source_date else None,
        accept_warnings=accept_warnings,
        dry_run=dry_run,
        loaded_by=loaded_by or getpass.getuser(),
    )
    try:
        with connect(settings, autocommit=True) as conn, progress_bar(transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            report = load_vector(
                conn, _catalog(settings), file, options, LoaderConfig.from_settings(settings), progress=progress,
                audit=lambda c, r: _audit(c, "load", f"load {r.load_id}", r.approval or "done",
                                          layer=layer_id, file=file.name),
            )  # fmt: skip
    except LoadRejected as exc:
        if as_json:
            click.echo(json.dumps(exc.report.as_dict(), ensure_ascii=False, indent=2, default=str))
        else:
            print_report(exc.report, console, lang)
        exc.args = (exc.report.text(lang),)  # the one-line refusal, in the report's language
        raise
    except GisIocError as exc:
        if lang == "en":
            exc.vi = None  # the message in English, as asked
        raise
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        print_report(report, console, lang)
    console.print(f"[green]{escape(report.text(lang))}[/]")
    if report.load_id is not None and report.approval == "draft":
        console.print(("approve with" if lang == "en" else "phê duyệt") + f": gis-ioc load approve {report.load_id}")


def _audit(conn: psycopg.Connection[Any], action: str, target: str, result: str, **detail: Any) -> None:
    """What the operator did at the console goes into the audit trail as ``cli:<system user>``, in the
    transaction of the action itself."""
    from gis_ioc.auth import audit

    audit.record(conn, actor=f"cli:{getpass.getuser()}", action=action, target=target, result=result, detail=detail)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "" if value is None else str(value)


@load.command("history")
@click.option("--layer", "layer_id", help="Only this layer.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def load_history(ctx: click.Context, layer_id: str | None, limit: int, as_json: bool) -> None:
    """The latest loads, newest first."""
    from gis_ioc.loaders import history

    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        rows = history.history(conn, layer_id=layer_id, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    table = Table("id", "kind", "layer", "mode", "file", "source unit", "by", "at", "rows", "status", "approval")
    for r in rows:
        table.add_row(
            str(r["id"]), r["kind"], r["layer_id"] or "", r["mode"] or "", escape(r["file_name"] or ""),
            escape(r["source_unit"] or ""), r["loaded_by"], _when(r["started_at"]), str(r["row_count"] or ""),
            r["status"], r["approval"],
        )  # fmt: skip
    out.print(table)


@load.command("show")
@click.argument("load_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def load_show(ctx: click.Context, load_id: int, as_json: bool) -> None:
    """One load: provenance, state, rows, and its quality report."""
    from gis_ioc.loaders import history

    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        row = history.show(conn, _catalog(settings), load_id)
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False, indent=2, default=str))
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "kind", "layer_id", "mode", "file_name", "file_sha256", "source_unit", "loaded_by", "started_at",
                "finished_at", "status", "approval", "approved_by", "approved_at", "rolled_back_by", "rolled_back_at",
                "row_count", "rows", "superseded", "source_date"):  # fmt: skip
        if key in row and row[key] is not None:
            table.add_row(key, escape(_when(row[key]) if isinstance(row[key], datetime) else str(row[key])))
    out.print(table)
    report = row.get("report") or {}
    for issue in report.get("issues", [])[:50]:
        out.print(
            f"  {issue.get('severity')}: row {issue.get('row', '-')} {issue.get('field', '')}: "
            + escape(issue["message"])
        )


@load.command("approve")
@click.argument("load_id", type=int)
@click.option("--by", "by", help="Who approves (default: the system user).")
@click.pass_context
def load_approve(ctx: click.Context, load_id: int, by: str | None) -> None:
    """Approve a draft load: its features become visible (OGC API, scenarios); replaced rows retire."""
    from gis_ioc.loaders import history

    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        result = history.approve(
            conn, _catalog(settings), load_id, by=by or getpass.getuser(),
            audit=lambda c, r: _audit(c, "load.approve", f"load {load_id}", "ok", by=by, approved=r["approved"]),
        )  # fmt: skip
    console.print(
        f"load {load_id} approved: {result['approved']} features of {result['layer']} published, "
        f"{result['superseded']} replaced"
    )


@load.command("rollback")
@click.argument("load_id", type=int)
@click.option("--by", "by", help="Who rolls back (default: the system user).")
@click.pass_context
def load_rollback(ctx: click.Context, load_id: int, by: str | None) -> None:
    """Undo a load: delete its features and restore the features it replaced."""
    from gis_ioc.loaders import history

    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        result = history.rollback(
            conn, _catalog(settings), load_id, by=by or getpass.getuser(),
            audit=lambda c, r: _audit(c, "load.rollback", f"load {load_id}", "ok", by=by, deleted=r["deleted"]),
        )  # fmt: skip
    console.print(
        f"load {load_id} rolled back: {result['deleted']} features deleted, "
        f"{result['restored']} restored in {result['layer']}"
    )


@load.command("boundaries")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--valid-from", type=click.DateTime(["%Y-%m-%d"]), help="Day the new boundaries take effect.")
@click.option(
    "--crosswalk",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV old_code,new_code,merge_type[,area_share,old_name,new_name,note]: former units → new ones.",
)
@click.option("--crs", help="Source CRS when the file has none, e.g. EPSG:9209.")
@click.option("--map", "maps", multiple=True, help="SOURCE_COLUMN=FIELD (code, name, short_name, level, …).")
@click.option("--encoding", help="Text encoding of a Shapefile/CSV/DXF (default: detected).")
@click.option("--source-unit", default="Sở Nội vụ", show_default=True)
@click.pass_context
def load_boundaries_cmd(
    ctx: click.Context,
    file: Path | None,
    valid_from: datetime | None,
    crosswalk: Path | None,
    crs: str | None,
    maps: tuple[str, ...],
    encoding: str | None,
    source_unit: str,
) -> None:
    """Add a version of the communes valid from --valid-from (closing the current one, keeping history).

    Without FILE: the bundled boundaries of 1 July 2025 (as `gis-ioc boundaries load`)."""
    from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
    from gis_ioc.loaders.boundary_versions import load_boundary_version
    from gis_ioc.loaders.vector import LoaderConfig

    settings = _settings(ctx)
    if file is None:
        with connect(settings, autocommit=True) as conn:
            console.print(load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir)).message)
        return
    if valid_from is None:
        raise click.UsageError("--valid-from DATE is required with a FILE")
    with connect(settings, autocommit=True) as conn:
        result = load_boundary_version(
            conn, file, valid_from.date(), LoaderConfig.from_settings(settings), crosswalk=crosswalk, crs=crs,
            mapping=_mapping(maps), encoding=encoding, source_unit=source_unit, loaded_by=getpass.getuser(),
        )  # fmt: skip
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    console.print(result.message)


@load.command("rekey")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--code-column", default="commune_code", show_default=True)
@click.option("--value-column", required=True, help="Additive figure (count, sum) to carry over.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Communes valid on this day (default today).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV to write (default stdout).")
@click.pass_context
def load_rekey(
    ctx: click.Context, file: Path, code_column: str, value_column: str, as_of: datetime | None, output: Path | None
) -> None:
    """Re-key a CSV of figures coded by former communes to the current ones (partial merges split by area)."""
    import csv

    from gis_ioc.loaders.boundary_versions import rekey

    with file.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and (code_column not in rows[0] or value_column not in rows[0]):
        raise click.BadParameter(
            f"{file.name} has columns {', '.join(rows[0])}", param_hint="--code-column/--value-column"
        )
    try:
        values = [(r[code_column], float(r[value_column] or 0)) for r in rows]
    except ValueError as exc:
        raise click.BadParameter(f"{file.name}: {exc}", param_hint="--value-column") from None
    with connect(_settings(ctx), autocommit=True) as conn:
        totals, unknown = rekey(conn, values, as_of=as_of.date() if as_of else None)
    lines = [f"{code_column},{value_column}"] + [f"{c},{v:.6g}" for c, v in sorted(totals.items())]
    if output:
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        click.echo("\n".join(lines))
    if unknown:
        console.print(f"[yellow]codes matching no commune (left out):[/] {', '.join(unknown)}")


@load.command("plan")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--code", "zone_code", required=True, help="Zone code of the plan (planning_zones.zone_code).")
@click.option("--name", required=True, help="Name of the plan (tên đồ án).")
@click.option("--level", type=click.Choice(["master", "zoning", "detailed"]), required=True)
@click.option("--scale", help="Drawing scale, e.g. 1/2000.")
@click.option("--authority", help="Approving authority, e.g. UBND tỉnh Hưng Yên.")
@click.option("--decision-number", required=True, help="Approval decision number, e.g. 1234/QĐ-UBND.")
@click.option("--decision-date", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--zoning", default="mixed", show_default=True, help="Land-use zoning code of the footprint.")
@click.option("--crs", help="CRS of a world file or GCPs without one, e.g. EPSG:9209.")
@click.option("--note", "notes", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Explanatory note (thuyết minh), PDF.")  # fmt: skip
@click.option("--decision", "decisions", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Approval decision (quyết định), PDF.")  # fmt: skip
@click.option("--source-unit", help="Unit that supplied the drawing.")
@click.pass_context
def load_plan_cmd(
    ctx: click.Context,
    file: Path,
    zone_code: str,
    name: str,
    level: str,
    scale: str | None,
    authority: str | None,
    decision_number: str,
    decision_date: datetime,
    zoning: str,
    crs: str | None,
    notes: tuple[Path, ...],
    decisions: tuple[Path, ...],
    source_unit: str | None,
) -> None:
    """Load a georeferenced planning drawing (GeoTIFF, or an image with a world file or GCPs) as a COG."""
    from gis_ioc.loaders.plans import PlanMeta, load_plan

    settings = _settings(ctx)
    meta = PlanMeta(zone_code, name, level, decision_number, decision_date.date(), authority, scale, zoning)
    docs = [("explanatory_note", p) for p in notes] + [("decision", p) for p in decisions]
    with connect(settings, autocommit=True) as conn:
        result = load_plan(conn, file, meta, settings.home / "plans", crs=crs, documents=docs,
                           source_unit=source_unit, loaded_by=getpass.getuser(),
                           audit=lambda c, load_id: _audit(c, "load", f"load {load_id}", "draft",
                                                           layer="planning_zones", file=file.name))  # fmt: skip
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    console.print(result.message)
