"""``gis-ioc map``, ``gis-ioc export layer|run`` and ``gis-ioc report``: thin shells over gis_ioc.maps.

The console operator is a :class:`~gis_ioc.query.viewer.Viewer` too (:meth:`Viewer.console`: every layer
and run, personal data only when asked for); the commands connect as the server's role and bind their
transaction to that viewer, as the server's doors do (:func:`console_transaction`).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import psycopg

from gis_ioc.catalog import Catalog
from gis_ioc.clikit import catalog_of as _catalog
from gis_ioc.clikit import console
from gis_ioc.clikit import progress_bar as _bar
from gis_ioc.clikit import settings_of as _settings
from gis_ioc.database.connection import connect, translate_errors
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings


def operator(personal: bool = False) -> Viewer:
    """The console operator (the system user running the command)."""
    return Viewer.console(getpass.getuser(), personal=personal)


@contextmanager
def console_transaction(
    settings: Settings, catalog: Catalog, viewer: Viewer, purpose: scope.Purpose = "aggregate"
) -> Iterator[psycopg.Connection[Any]]:
    """One transaction as the server's role, bound to the console operator (committed at the end)."""
    with translate_errors(), connect(settings, server=True) as conn, conn.transaction():
        scope.bind(conn, viewer, catalog, purpose)
        yield conn


@click.command("map")
@click.argument("indicator")
@click.option("--period", help="YYYY-Qn or YYYY, e.g. 2026-Q3 (not with --run).")
@click.option(
    "--method",
    type=click.Choice(["quantiles", "natural_breaks", "equal_interval"]),
    default="quantiles",
    show_default=True,
)
@click.option("--classes", type=click.IntRange(2, 9), default=5, show_default=True)
@click.option("--layer", "layers", multiple=True, help="A layer drawn over the map (repeat for several).")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["html", "png", "pdf", "json"]),
    multiple=True,
    help="Output formats (repeat; default html, png and pdf).",
)
@click.option("--paper", type=click.Choice(["A4", "A3"]), default="A4", show_default=True)
@click.option("--orientation", type=click.Choice(["landscape", "portrait"]), default="landscape", show_default=True)
@click.option("--dpi", type=click.IntRange(72, 600), default=300, show_default=True)
@click.option("--run", "run_id", type=int, help="Map the figures of this stored scenario run.")
@click.option("--scenario", help="Scenario to run over the province (default: the first with the indicator).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder.")
@click.pass_context
def map_command(
    ctx: click.Context,
    indicator: str,
    period: str | None,
    method: str,
    classes: int,
    layers: tuple[str, ...],
    formats: tuple[str, ...],
    paper: str,
    orientation: str,
    dpi: int,
    run_id: int | None,
    scenario: str | None,
    output: Path,
) -> None:
    """A thematic map of INDICATOR by commune: classified, communes missing their target marked."""
    from gis_ioc.maps import folium_, printmap, thematic
    from gis_ioc.scenarios.models import load_scenarios

    if (period is None) == (run_id is None):
        raise click.UsageError("give --period or --run")
    settings = _settings(ctx)
    cat = _catalog(settings)
    scenarios = load_scenarios(settings.config_dir / "scenarios", cat)
    for layer_id in layers:
        if layer_id not in cat.layers:
            raise click.BadParameter(f"unknown layer {layer_id!r}", param_hint="--layer")
    output.mkdir(parents=True, exist_ok=True)
    viewer = operator()
    with console_transaction(settings, cat, viewer) as conn:
        tm = thematic.thematic_map(
            conn,
            cat,
            scenarios,
            indicator,
            period,
            viewer=viewer,
            method=method,
            classes=classes,
            run_id=run_id,
            scenario_id=scenario,
            privacy_threshold=settings.privacy_threshold,
        )
        stem = output / f"{tm.indicator.id}_{tm.period}_{tm.method}"
        for fmt in formats or ("html", "png", "pdf"):
            path = stem.with_suffix(f".{fmt}")
            if fmt == "json":
                path.write_text(json.dumps(tm.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
            elif fmt == "html":
                path.write_text(folium_.render_html(conn, cat, tm, list(layers), viewer=viewer), encoding="utf-8")
            else:
                path.write_bytes(
                    printmap.render_print(
                        conn,
                        cat,
                        tm,
                        fmt,
                        viewer=viewer,
                        paper=paper,
                        orientation=orientation,
                        dpi=dpi,
                        overlays=list(layers),
                    )
                )
            click.echo(str(path))
    console.print(
        f"{tm.indicator.name.vi} {tm.period}: {len(tm.bins)} classes ({tm.method}), "
        f"{len(tm.flagged)} communes miss their target; scenario run #{tm.run_id}",
        highlight=False,
    )


@click.group("export")
def export_group() -> None:
    """Export a layer or a scenario run: GeoPackage, zipped Shapefile, GeoJSON, CSV, XLSX."""


_FORMAT = click.Choice(["gpkg", "shp", "geojson", "csv", "xlsx"])


def _run_export(source_fn: Any, fmt: str, crs_text: str | None, output: Path, conn: Any, target: str) -> None:
    from gis_ioc.auth import audit
    from gis_ioc.maps import exports

    crs = exports.resolve_crs(crs_text)
    with _bar() as bar:
        task = bar.add_task("export", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        source = source_fn(crs)
        result = exports.export(source, fmt, crs, output, progress)
    audit.record(
        conn,
        actor=f"cli:{getpass.getuser()}",
        action="export",
        target=target,
        detail={"format": fmt, "crs": result.crs, "rows": result.count, "file": str(result.path)},
    )
    click.echo(str(result.path))
    info = result.describe()
    console.print(f"{info['features']} features, {info['bytes']:,} bytes, {info['crs']}", highlight=False)
    if result.field_map:
        renamed = {k: v for k, v in result.field_map.items() if k != v}
        if renamed:
            console.print("shapefile field names (also in fields.csv inside the zip):", highlight=False)
            for k, v in renamed.items():
                console.print(f"  {v:<10} ← {k}", highlight=False)


@export_group.command("layer")
@click.argument("layer_id")
@click.option("--format", "fmt", type=_FORMAT, default="gpkg", show_default=True)
@click.option("--crs", help="CRS84 (default), EPSG:4326, EPSG:3857, EPSG:9209 (VN-2000 TM-3), EPSG:3405 (VN-2000 UTM).")
@click.option("--filter", "cql", help="CQL2 text filter, e.g. \"level = 'primary'\".")
@click.option("--filter-crs", help="CRS of coordinates in the filter (default CRS84).")
@click.option("--include-personal", is_flag=True, help="Also the fields marked personal (operators only).")
@click.option("--labels", is_flag=True, help="Vietnamese labels beside codes (a NAME_vi column each).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder.")
@click.pass_context
def export_layer(
    ctx: click.Context,
    layer_id: str,
    fmt: str,
    crs: str | None,
    cql: str | None,
    filter_crs: str | None,
    include_personal: bool,
    labels: bool,
    output: Path,
) -> None:
    """Export layer LAYER_ID (its current, approved features)."""
    from gis_ioc.maps import exports
    from gis_ioc.publish.cql import parse_filter

    settings = _settings(ctx)
    cat = _catalog(settings)
    viewer = operator(personal=include_personal)
    with console_transaction(settings, cat, viewer, "read") as conn:
        _run_export(
            lambda c: exports.layer_source(
                conn,
                cat,
                viewer,
                layer_id,
                c,
                filter=parse_filter(cql, "cql2-text") if cql else None,
                filter_text=cql,
                filter_crs=exports.resolve_crs(filter_crs),
                labels=labels,
            ),
            fmt,
            crs,
            output,
            conn,
            f"layer {layer_id}",
        )


@export_group.command("run")
@click.argument("run_id", type=int)
@click.option("--format", "fmt", type=_FORMAT, default="gpkg", show_default=True)
@click.option("--crs", help="CRS84 (default), EPSG:4326, EPSG:3857, EPSG:9209 (VN-2000 TM-3), EPSG:3405 (VN-2000 UTM).")
@click.option("--flagged-only", is_flag=True, help="Only the communes with a target not met.")
@click.option("--include-personal", is_flag=True, help="Also a run made with personal data (operators only).")
@click.option("--labels", is_flag=True, help="Vietnamese labels beside codes (a NAME_vi column each).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder.")
@click.pass_context
def export_run(
    ctx: click.Context,
    run_id: int,
    fmt: str,
    crs: str | None,
    flagged_only: bool,
    include_personal: bool,
    labels: bool,
    output: Path,
) -> None:
    """Export stored scenario run RUN_ID: one feature per commune with its figures and flags."""
    from gis_ioc.maps import exports
    from gis_ioc.scenarios.engine import get_run
    from gis_ioc.scenarios.models import load_scenarios

    settings = _settings(ctx)
    viewer = operator(personal=include_personal)
    cat = _catalog(settings)
    titles = {key: s.title.vi for key, s in load_scenarios(settings.config_dir / "scenarios", cat).items()}
    with console_transaction(settings, cat, viewer) as conn:
        run = get_run(conn, run_id, viewer)
        _run_export(
            lambda c: exports.run_source(
                conn, run, c, flagged_only=flagged_only, labels=labels, scenario_titles=titles
            ),
            fmt,
            crs,
            output,
            conn,
            f"run {run_id}",
        )


def _run_ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of run ids", param_hint="--runs") from None


@click.command("report")
@click.option("--period", help="YYYY-Qn or YYYY, e.g. 2026-Q3 (runs the scenarios now).")
@click.option("--sector", "sectors", multiple=True, help="Only this sector (repeat): education, health, …")
@click.option("--commune", "communes", multiple=True, help="Only this commune code (repeat); default the province.")
@click.option("--runs", "runs_text", help="Rebuild from these stored run ids (comma-separated), e.g. 12,13.")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["pdf", "docx", "html"]),
    multiple=True,
    help="Output formats (repeat; default pdf, docx and html).",
)
@click.option("--no-maps", is_flag=True, help="Leave out the thematic maps.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."), show_default=True, help="Folder.")
@click.pass_context
def report_command(
    ctx: click.Context,
    period: str | None,
    sectors: tuple[str, ...],
    communes: tuple[str, ...],
    runs_text: str | None,
    formats: tuple[str, ...],
    no_maps: bool,
    output: Path,
) -> None:
    """A meeting report entirely from the database (PDF, DOCX, HTML), reproducible from its run ids."""
    from gis_ioc.maps import report as reports
    from gis_ioc.scenarios.models import load_scenarios

    if (period is None) == (runs_text is None):
        raise click.UsageError("give --period (run the scenarios now) or --runs (rebuild from stored runs)")
    if runs_text is not None and communes:
        raise click.UsageError("--commune goes with --period; stored runs carry their own selection")
    settings = _settings(ctx)
    cat = _catalog(settings)
    scenarios = load_scenarios(settings.config_dir / "scenarios", cat)
    output.mkdir(parents=True, exist_ok=True)

    def step(text: str) -> None:
        console.print(f"  {text}", highlight=False)

    viewer = operator()
    with console_transaction(settings, cat, viewer) as conn:
        if period is not None:
            console.print(f"Chạy kịch bản cho kỳ {period}…", highlight=False)
            ids = reports.run_for_report(
                conn,
                cat,
                scenarios,
                period,
                viewer=viewer,
                sectors=list(sectors) or None,
                communes=list(communes) or None,
                privacy_threshold=settings.privacy_threshold,
                step=step,
            )
        else:
            ids = _run_ids(str(runs_text))
        console.print(f"Lập báo cáo từ các lần chạy {', '.join(f'#{i}' for i in ids)}…", highlight=False)
        rep = reports.build_report(
            conn,
            cat,
            ids,
            viewer=viewer,
            sectors=list(sectors) or None,
            maps=not no_maps,
            scenarios=scenarios,
            step=step,
        )
    stem = output / f"bao_cao_{rep.period}_runs_{'-'.join(str(i) for i in rep.run_ids)}"
    html = reports.render_html(rep)
    for fmt in formats or ("pdf", "docx", "html"):
        path = stem.with_suffix(f".{fmt}")
        if fmt == "html":
            path.write_text(html, encoding="utf-8")
        elif fmt == "pdf":
            path.write_bytes(reports.render_pdf(rep, html, chromium=settings.chromium))
        else:
            path.write_bytes(reports.render_docx(rep))
        click.echo(str(path))
    counts = rep.counts()
    console.print(
        f"{sum(counts.values())} chỉ tiêu, {counts.get('not met', 0)} chưa đạt, {len(rep.flags)} mục chưa đạt; "
        f"lập lại: gis-ioc report --runs {','.join(str(i) for i in rep.run_ids)}",
        highlight=False,
    )
