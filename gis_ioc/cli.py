"""``gis-ioc``: the command line of gis_ioc."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis_ioc import __version__
from gis_ioc.auth.cli import account, audit_group, backup_command, restore_command
from gis_ioc.catalog import Catalog
from gis_ioc.clikit import catalog_of, console, settings_of
from gis_ioc.database import migrations
from gis_ioc.database.connection import cluster_for, connect, describe, ensure_database, translate_errors
from gis_ioc.errors import GisIocError
from gis_ioc.iot.cli import broker_group, ingest_command, iot_group
from gis_ioc.loaders.cli import load as load_commands
from gis_ioc.maps.cli import export_group, map_command, report_command
from gis_ioc.publish import qgis
from gis_ioc.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
_settings = settings_of
_catalog = catalog_of


class _Group(click.Group):
    """Turns gis_ioc errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GisIocError as exc:
            console.print(f"[bold red]error:[/] {exc.text('vi')}", highlight=False)  # Vietnamese where written
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="gis-ioc")
@click.pass_context
def main(ctx: click.Context) -> None:
    """gis_ioc: the geospatial analytics server of the Hưng Yên IOC."""
    ctx.ensure_object(dict)


# -- database -----------------------------------------------------------------------------------


@main.group(cls=_Group)
def db() -> None:
    """The embedded PostGIS cluster and the schema."""


def _require_embedded(settings: Settings) -> None:
    if not settings.embedded:
        raise click.UsageError("GIS_IOC_DATABASE_URL is set: gis_ioc manages no cluster of its own")


@db.command("init")
@click.pass_context
def db_init(ctx: click.Context) -> None:
    """Create the private cluster under GIS_IOC_HOME and its database."""
    settings = _settings(ctx)
    _require_embedded(settings)
    cluster = cluster_for(settings)
    created = cluster.init()
    console.print(f"cluster {'created' if created else 'already exists'} in {cluster.data_dir}")
    cluster.start()
    if ensure_database(settings):
        console.print(f"database {settings.db_name} created")


@db.command("start")
@click.pass_context
def db_start(ctx: click.Context) -> None:
    """Start the cluster (pg_ctl; 127.0.0.1 and a private socket)."""
    settings = _settings(ctx)
    _require_embedded(settings)
    cluster = cluster_for(settings)
    started = cluster.start()
    console.print(f"PostgreSQL {'started' if started else 'already running'} on 127.0.0.1:{settings.db_port}")


@db.command("stop")
@click.pass_context
def db_stop(ctx: click.Context) -> None:
    """Stop the cluster (fast shutdown)."""
    settings = _settings(ctx)
    _require_embedded(settings)
    stopped = cluster_for(settings).stop()
    console.print("PostgreSQL stopped" if stopped else "PostgreSQL was not running")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Is the cluster running, where, and is the schema current. Exit 3 when not running."""
    settings = _settings(ctx)
    status: dict[str, Any] = {"database": describe(settings), "embedded": settings.embedded}
    running = True
    if settings.embedded:
        status.update(cluster_for(settings).status())
        running = bool(status["running"])
    if running:
        try:
            with connect(settings, autocommit=True) as conn:
                status["migrations_pending"] = [f"{m.version}_{m.name}" for m in migrations.pending(conn)]
        except GisIocError as exc:
            status["error"] = str(exc)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
    else:
        table = Table(show_header=False, box=None)
        for key, value in status.items():
            table.add_row(key, str(value))
        Console().print(table)
    if not running:
        sys.exit(3)


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations and make the layer tables and indicators match the catalog."""
    settings = _settings(ctx)
    _upgrade(settings, _catalog(settings))


def _upgrade(settings: Settings, catalog: Catalog) -> None:
    from gis_ioc.database.roles import server_password

    with connect(settings, autocommit=True) as conn:
        report = migrations.upgrade(conn, catalog, server_password(settings.home))
    if report.roles_created:
        console.print(f"created database roles: {', '.join(report.roles_created)}")
    if report.applied:
        console.print(f"applied migrations: {', '.join(report.applied)}")
    if report.tables_created:
        console.print(f"created {len(report.tables_created)} layer tables: {', '.join(report.tables_created)}")
    if report.columns_added:
        console.print(f"added columns: {', '.join(report.columns_added)}")
    if report.extra_columns:
        console.print(
            f"[yellow]columns in the database but not in the catalog (kept):[/] {', '.join(report.extra_columns)}"
        )
    if not report.changed:
        console.print("schema is current")


# -- data -----------------------------------------------------------------------------------------


@main.group(cls=_Group)
def boundaries() -> None:
    """Administrative boundaries of Hưng Yên."""


@boundaries.command("load")
@click.pass_context
def boundaries_load(ctx: click.Context) -> None:
    """Load the 104 communes/wards, the province and the crosswalk from boundaries/ (valid from 2025-07-01)."""
    from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries

    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        result = load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
    console.print(result.message)


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("demo data", total=total)

    def advance(self, label: str, rows: int) -> None:
        self.progress.console.print(f"  {label:<20} {rows:>9,} rows")
        self.progress.update(self.task, advance=1, description=f"demo data: {label}")


@main.command()
@click.option("--seed", type=int, default=None, help="Random seed (default GIS_IOC_DEMO_SEED).")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Reference day: indicators for the four quarters before it, readings for the year before it.",
)
@click.option("--parcels", type=click.IntRange(1000), default=200_000, show_default=True)
@click.option("--buildings", type=click.IntRange(0), default=100_000, show_default=True)
@click.option("--force", is_flag=True, help="Regenerate even if the same demo data is present.")
@click.pass_context
def demo(ctx: click.Context, seed: int | None, as_of: Any, parcels: int, buildings: int, force: bool) -> None:
    """Fill every other layer with deterministic synthetic data, marked as demo data."""
    from gis_ioc.demo import DemoOptions, generate_demo

    settings = _settings(ctx)
    options = DemoOptions(
        seed=settings.demo_seed if seed is None else seed,
        as_of=as_of.date() if as_of else date.today(),
        parcels=parcels,
        buildings=buildings,
    )
    catalog = _catalog(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with connect(settings, autocommit=True) as conn, Progress(*columns, console=console, transient=True) as bar:
        result = generate_demo(conn, catalog, options, force=force, progress=_RichProgress(bar))
    console.print(result.message)


@main.command()
@click.option("--no-demo", is_flag=True, help="Do not generate demo data.")
@click.pass_context
def setup(ctx: click.Context, no_demo: bool) -> None:
    """Everything the server needs: cluster, database, schema, boundaries, demo data. Idempotent."""
    settings = _settings(ctx)
    catalog = _catalog(settings)
    if settings.embedded:
        ctx.invoke(db_init)
    _upgrade(settings, catalog)
    ctx.invoke(boundaries_load)
    if not no_demo:
        ctx.invoke(demo, seed=None, as_of=None, parcels=200_000, buildings=100_000, force=False)


# -- scenarios ------------------------------------------------------------------------------------


@main.group(cls=_Group)
def scenario() -> None:
    """Scenarios: indicators over a selection, against their targets."""


@scenario.command("list")
@click.pass_context
def scenario_list(ctx: click.Context) -> None:
    """The scenarios and their indicators."""
    from gis_ioc.scenarios.models import load_scenarios

    settings = _settings(ctx)
    for s in load_scenarios(settings.config_dir / "scenarios", _catalog(settings)).values():
        click.echo(f"{s.id}\t{s.title.vi}\t{', '.join(s.indicators)}")


def _read_zone(path: Path) -> dict[str, Any]:
    """One polygon geometry from a GeoJSON file (a geometry, a Feature or a one-feature collection)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("type") == "FeatureCollection":
            if len(data["features"]) != 1:
                raise click.BadParameter(f"{path}: a zone file holds one feature, this one has {len(data['features'])}")
            data = data["features"][0]
        geometry: dict[str, Any] = data.get("geometry", data)
        return geometry
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise click.BadParameter(f"{path}: not a GeoJSON polygon ({exc})") from None


def _xy(at: str) -> list[float]:
    try:
        x, y = (float(v) for v in at.split(","))
    except ValueError:
        raise click.BadParameter("--at wants X,Y (e.g. 106.05,20.65)") from None
    return [x, y]


@scenario.command("run")
@click.argument("name")
@click.option("--period", required=True, help="YYYY-Qn or YYYY, e.g. 2026-Q3.")
@click.option("--commune", "codes", multiple=True, help="A commune code (repeat for several).")
@click.option("--province", "whole", is_flag=True, help="The whole province.")
@click.option("--at", "at", help="X,Y of a point (with --radius: the centre).")
@click.option("--radius", type=float, help="Metres on the ground around --at.")
@click.option(
    "--zone",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GeoJSON file with one polygon (a geometry, a Feature or a one-feature collection).",
)
@click.option("--crs", help="CRS of --at/--zone coordinates (default CRS84 lon,lat; e.g. EPSG:9209).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option(
    "--show-personal",
    is_flag=True,
    help="Do not suppress figures about fewer people than GIS_IOC_PRIVACY_THRESHOLD (operators only).",
)
@click.pass_context
def scenario_run(
    ctx: click.Context,
    name: str,
    period: str,
    codes: tuple[str, ...],
    whole: bool,
    at: str | None,
    radius: float | None,
    zone: Path | None,
    crs: str | None,
    as_json: bool,
    show_personal: bool,
) -> None:
    """Run scenario NAME over a selection and print its figures and flags (the run is stored)."""
    from gis_ioc.maps.cli import console_transaction, operator
    from gis_ioc.scenarios import selectors
    from gis_ioc.scenarios.engine import run_scenario
    from gis_ioc.scenarios.models import get_scenario, load_scenarios

    settings = _settings(ctx)
    cat = _catalog(settings)
    chosen = get_scenario(load_scenarios(settings.config_dir / "scenarios", cat), name)
    given = sum(bool(v) for v in (codes, whole, zone, at))
    if given != 1:
        raise click.UsageError("give exactly one of --commune, --province, --at (with or without --radius), --zone")
    viewer = operator(personal=show_personal)
    with console_transaction(settings, cat, viewer) as conn:
        if codes:
            selection = selectors.communes(conn, list(codes))
        elif whole:
            selection = selectors.province(conn)
        elif zone is not None:
            selection = selectors.zone(conn, _read_zone(zone), crs)
        else:
            x, y = _xy(str(at))
            selection = (
                selectors.radius(conn, x, y, radius, crs) if radius is not None else selectors.point(conn, x, y, crs)
            )
        run = run_scenario(
            conn,
            cat,
            chosen,
            selection,
            period,
            viewer=viewer,
            privacy_threshold=settings.privacy_threshold,
        )
    if as_json:
        click.echo(json.dumps(run.as_dict(), ensure_ascii=False, indent=2, default=str))
        return
    table = Table("indicator", "unit", "value", "target", "status", "change", title=f"{chosen.title.vi} — {period}")
    for ind in run.indicators:
        total = ind["total"]
        value = "–" if total["value"] is None else f"{total['value']:,.2f}"
        target = "–" if total["target"] is None else f"{total['target']:,.2f}"
        change = "–" if total["change"] is None else f"{total['change']:+,.2f}"
        colour = {"met": "green", "not met": "red"}.get(total["status"], "yellow")
        table.add_row(ind["name"]["vi"], ind["unit"], value, target, f"[{colour}]{total['status']}[/]", change)
    out = Console()
    out.print(table)
    methods = sorted({c["method"] for c in run.communes})
    out.print(
        f"{len(run.communes)} communes ({', '.join(methods)}); {len(run.flags)} flags; "
        f"{run.suppressed} figures suppressed for privacy; run {run.id}"
    )
    for flag in run.flags[:10]:
        where = "toàn vùng chọn" if flag["where"] == "total" else flag["commune"]
        out.print(
            f"  [red]✗[/] {flag['name']['vi']} — {where}: {flag['value']:,.2f} / {flag['target']:,.2f} {flag['unit']}"
        )


@scenario.command("rerun")
@click.argument("run_id", type=int)
@click.option("--period", help="Another period to compare with (default: the run's own, to reproduce it).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
@click.option("--show-personal", is_flag=True, help="A run made with personal data; do not suppress (operators only).")
@click.pass_context
def scenario_rerun(ctx: click.Context, run_id: int, period: str | None, as_json: bool, show_personal: bool) -> None:
    """Run stored run RUN_ID again over the same selection and show old and new figures side by side."""
    from gis_ioc.maps.cli import console_transaction, operator
    from gis_ioc.scenarios.engine import rerun
    from gis_ioc.scenarios.models import load_scenarios

    settings = _settings(ctx)
    cat = _catalog(settings)
    viewer = operator(personal=show_personal)
    with console_transaction(settings, cat, viewer) as conn:
        result = rerun(
            conn,
            cat,
            load_scenarios(settings.config_dir / "scenarios", cat),
            run_id,
            period,
            viewer=viewer,
            privacy_threshold=settings.privacy_threshold,
        )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    before, after = result["before"], result["after"]
    table = Table(
        "indicator",
        f"run {before['id']} ({before['period']})",
        f"run {after['id']} ({after['period']})",
        "change",
        title=f"{after['scenario']}: " + ("data changed since" if result["data_changed"] else "same data"),
    )
    for row in result["indicators"]:
        old = "–" if row["before"]["value"] is None else f"{row['before']['value']:,.2f} ({row['before']['status']})"
        new = "–" if row["after"]["value"] is None else f"{row['after']['value']:,.2f} ({row['after']['status']})"
        change = "–" if row["change"] is None else f"{row['change']:+,.2f}"
        table.add_row(row["name"]["vi"], old, new, change)
    Console().print(table)


@scenario.command("share")
@click.argument("run_id", type=int)
@click.option("--with", "accounts", multiple=True, help="An account name, '*' (every account) or 'public' (repeat).")
@click.pass_context
def scenario_share(ctx: click.Context, run_id: int, accounts: tuple[str, ...]) -> None:
    """Share stored run RUN_ID with these accounts, replacing its shares (none given: share it with nobody)."""
    from gis_ioc.auth import audit
    from gis_ioc.maps.cli import console_transaction, operator
    from gis_ioc.scenarios.engine import share_run

    settings = _settings(ctx)
    viewer = operator(personal=True)  # the console shares any run, also one made with personal data
    with console_transaction(settings, _catalog(settings), viewer) as conn:
        names = share_run(conn, run_id, viewer, list(accounts))
        audit.record(conn, actor=viewer.name, action="share", target=f"run {run_id}", detail={"with": names})
    console.print(f"run {run_id} shared with: {', '.join(names) or 'nobody'}", highlight=False)


@scenario.command("emergency")
@click.option(
    "--incident",
    type=click.Choice(["flood", "fire", "epidemic", "environment", "rescue"]),
    required=True,
    help="What happened.",
)
@click.option("--at", "at", help="X,Y of the incident (rings are drawn around it).")
@click.option("--rings", help="Ring radii in metres, ascending, e.g. 500,1000,2000 (default from the scenario file).")
@click.option(
    "--zone",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instead of --at: a GeoJSON file with the flooded polygon.",
)
@click.option("--crs", help="CRS of --at/--zone coordinates (default CRS84 lon,lat; e.g. EPSG:9209).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--show-personal", is_flag=True, help="Do not suppress counts below GIS_IOC_PRIVACY_THRESHOLD.")
@click.pass_context
def scenario_emergency(
    ctx: click.Context,
    incident: str,
    at: str | None,
    rings: str | None,
    zone: Path | None,
    crs: str | None,
    as_json: bool,
    show_personal: bool,
) -> None:
    """People, facilities, shelters and contacts for an incident at a point (rings) or a flooded zone."""
    from gis_ioc.maps.cli import console_transaction, operator
    from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
    from gis_ioc.scenarios.models import load_emergency

    settings = _settings(ctx)
    cat = _catalog(settings)
    config = load_emergency(settings.config_dir / "scenarios", cat)
    body: dict[str, Any] = {"incident": incident, "crs": crs}
    if (at is None) == (zone is None):
        raise click.UsageError("give either --at (with optional --rings) or --zone")
    if zone is not None:
        body["zone"] = _read_zone(zone)
    else:
        body["at"] = _xy(str(at))
        if rings:
            try:
                body["rings"] = [float(r) for r in rings.split(",")]
            except ValueError:
                raise click.BadParameter("--rings wants metres separated by commas, e.g. 500,1000,2000") from None
    viewer = operator(personal=show_personal)
    with console_transaction(settings, cat, viewer) as conn:
        found = incident_from_request(conn, body, config, cat, viewer)
        run = run_emergency(conn, cat, config, found, viewer=viewer, privacy_threshold=settings.privacy_threshold)
    if as_json:
        click.echo(json.dumps(run.as_dict(), ensure_ascii=False, indent=2, default=str))
        return
    out = Console()
    table = Table(
        "vòng / ring",
        "cộng dồn người / people within",
        "cộng dồn hộ / households within",
        "người / people",
        "hộ / households",
        title=f"{config.title.vi}: {incident}",
    )
    for ring in run.rings:  # band figures only with --show-personal (cumulative ones are safe to show)
        table.add_row(
            *(
                str("–" if ring.get(k) is None else f"{ring[k]:,}") if k != "label" else ring[k]
                for k in ("label", "people_within", "households_within", "people", "households")
            )
        )
    out.print(table)
    for layer_id, items in run.inside.items():
        out.print(f"{layer_id} inside: {len(items)}" + "".join(f"\n  {i.get('name')} ({i['ring']})" for i in items[:8]))
    for spec_id, items in run.nearest.items():
        out.print(f"{spec_id}: " + "; ".join(f"{i.get('name')} {i['distance_m'] / 1000:.1f} km" for i in items))
    sh = run.shelters
    out.print(
        f"shelters: capacity {sh['capacity']:,} for "
        f"{'–' if sh['people_to_evacuate'] is None else format(sh['people_to_evacuate'], ',')} people "
        f"({len(sh['usable'])} usable)"
    )
    for flag in run.flags[:10]:
        out.print(f"  [red]✗[/] {flag['kind']} {flag.get('name') or flag['where']}: short by {flag['gap']:,}")
    for commune in run.communes:
        chair = next((c for c in commune["contacts"] if c["role"] == "chairman"), None)
        contact = f" — {chair['title']}: {chair['name']}, {chair['office_phone']}" if chair else ""
        out.print(f"  {commune['name']} ({commune['code']}): {commune['people'] or 0:,} people{contact}")
    out.print(f"run {run.id}, {run.duration_ms:.0f} ms")


# -- catalog and configuration --------------------------------------------------------------------


@main.group(cls=_Group)
def catalog() -> None:
    """The layer catalog (layers/, styles/, config/indicators.yaml)."""


@catalog.command("validate")
@click.pass_context
def catalog_validate(ctx: click.Context) -> None:
    """Validate every layer, style and indicator file."""
    cat = _catalog(_settings(ctx))
    console.print(
        f"catalog valid: {len(cat.layers)} layers, {len(cat.styles)} styles, "
        f"{len(cat.indicators.indicators)} indicators"
    )


@catalog.command("list")
@click.pass_context
def catalog_list(ctx: click.Context) -> None:
    """The layers with their group, geometry, access and owner."""
    cat = _catalog(_settings(ctx))
    rows = [(lyr.id, lyr.title.vi, lyr.group, lyr.geometry, lyr.access, lyr.owner_unit.vi) for lyr in cat]
    if not sys.stdout.isatty():  # tab-separated for scripts
        for row in rows:
            click.echo("\t".join(row))
        return
    table = Table("id", "title", "group", "geometry", "access", "owner unit")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@main.group(cls=_Group)
def config() -> None:
    """Rendered configuration."""


@config.command("render")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write (default GIS_IOC_HOME/pygeoapi/config.yml); '-' for standard output.",
)
@click.option("--offline", is_flag=True, help="Do not read extents from the database.")
@click.pass_context
def config_render(ctx: click.Context, output: Path | None, offline: bool) -> None:
    """Render pygeoapi's configuration from the catalog and validate it against pygeoapi's schema."""
    import yaml
    from pygeoapi.config import validate_config

    from gis_ioc.publish.config import render_config, write_config

    settings = _settings(ctx)
    cat = _catalog(settings)
    if offline:
        rendered = render_config(settings, cat, None)
    else:
        with connect(settings, autocommit=True) as conn:
            rendered = render_config(settings, cat, conn)
    validate_config(rendered)
    if str(output) == "-":
        click.echo(yaml.safe_dump(rendered, allow_unicode=True, sort_keys=False))
        return
    path = write_config(rendered, output or settings.home / "pygeoapi" / "config.yml")
    kinds = [r.get("type") for r in rendered["resources"].values()]
    console.print(f"wrote {path} ({kinds.count('collection')} collections, {kinds.count('process')} processes, valid)")


# -- server ----------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Listen address (default GIS_IOC_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default GIS_IOC_PORT, 8000).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Server processes (default GIS_IOC_WORKERS, else the machine's cores).",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the server: uvicorn with N worker processes sharing one port. Any worker answers any request:
    jobs, rate limits, lockouts and sessions live in PostgreSQL, and caches follow the data's version."""
    import uvicorn

    settings = _settings(ctx)
    updates = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    count = server_workers(settings)
    if settings.embedded:
        cluster = cluster_for(settings)
        if cluster.is_initialised():
            cluster.start()
    # every worker process makes its application from the environment (create_app's factory): the
    # options given here reach them as the settings they override
    for name, value in updates.items():
        os.environ[f"GIS_IOC_{name.upper()}"] = str(value)
    console.print(
        f"[bold green]gis_ioc[/] serving Hưng Yên at [bold]{settings.base_url}/[/] with {count} worker"
        f"{'s' if count > 1 else ''}  (OGC API: {settings.base_url}{settings.ogc_path}/collections, "
        f"health: {settings.base_url}/api/health)"
    )
    # the sensors' ingester runs beside the server, started again whenever it ends; without a broker it
    # waits and retries (GIS_IOC_HOME/log/ingest.log)
    from gis_ioc.iot.ingest import Supervisor

    ingester = Supervisor(settings).start()
    try:
        uvicorn.run(
            "gis_ioc.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=count,
            log_level=settings.log_level,
            proxy_headers=True,
            timeout_graceful_shutdown=30,
        )
    finally:
        ingester.stop()


def server_workers(settings: Settings) -> int:
    """GIS_IOC_WORKERS, or one per core this process may use."""
    if settings.workers is not None:
        return settings.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# -- citizen reports ----------------------------------------------------------------------------------


@main.group(cls=_Group)
def feedback() -> None:
    """Citizen reports (Open311, /phan-anh): see docs/feedback.md."""


@feedback.command("escalate")
@click.pass_context
def feedback_escalate(ctx: click.Context) -> None:
    """Send every overdue report to the level above its handling unit (run it from cron, e.g. hourly)."""
    from gis_ioc.feedback.config import load_config
    from gis_ioc.feedback.store import escalate_overdue

    settings = _settings(ctx)
    with translate_errors(), connect(settings, server=True) as conn, conn.transaction():
        moved = escalate_overdue(conn, load_config(settings.config_dir), "cli:feedback")
    console.print(f"{len(moved)} phản ánh quá hạn được chuyển lên cấp trên")


# -- QGIS ---------------------------------------------------------------------------------------------


@main.command("qgis-project")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path), default="gis_ioc_hung_yen.qgz")
@click.option("--account", "account_name", help="The layers this account may read (default: the public layers only).")
@click.option("--url", help="The server's public address (default: GIS_IOC_PUBLIC_URL, else HOST:PORT).")
@click.option(
    "--authcfg",
    default=qgis.DEFAULT_AUTHCFG,
    show_default=True,
    help="Id of the QGIS Basic authentication configuration the internal layers use.",
)
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@click.pass_context
def qgis_project_command(
    ctx: click.Context, output: Path, account_name: str | None, url: str | None, authcfg: str, lang: str
) -> None:
    """A ready QGIS project (.qgz): every layer the account may read, grouped, styled, in VN-2000 / TM-3
    105°30' (EPSG:9209) with the EPSG:6960 transformation. See docs/qgis.md."""
    from gis_ioc.auth.accounts import get_account
    from gis_ioc.auth.sessions import Principal
    from gis_ioc.query import scope
    from gis_ioc.query.viewer import Viewer

    settings = _settings(ctx)
    catalog = _catalog(settings)
    with translate_errors(), connect(settings, server=True) as conn:
        viewer = Viewer.ANONYMOUS
        if account_name is not None:
            found = get_account(conn, account_name)
            if found.state != "active":
                raise GisIocError(f"account {account_name!r} is {found.state}")
            viewer = Viewer.of(
                Principal(
                    found.username,
                    frozenset(found.roles),
                    frozenset(found.communes),
                    frozenset(found.grants),
                    via="console",
                )
            )
        with conn.transaction():
            scope.bind(conn, viewer, catalog, "read")
            data = qgis.project_for(
                conn, catalog, viewer, url or settings.base_url, settings.ogc_path, authcfg=authcfg, lang=lang
            )
    output.write_bytes(data)
    shown = len(viewer.readable(list(catalog)))
    console.print(f"{output}: {shown} layers for {account_name or 'the public'} ({len(data) / 1024:.0f} KB)")


# -- loading: gis-ioc load … (gis_ioc/loaders/cli.py) ----------------------------------------------
main.add_command(load_commands)

# -- maps, exports and reports: gis-ioc map / export / report (gis_ioc/maps/cli.py) --------------------
main.add_command(map_command)
main.add_command(export_group)
main.add_command(report_command)


if __name__ == "__main__":
    main()

# -- accounts, audit, backups: gis_ioc/auth/cli.py ------------------------------------------------
main.add_command(account)
main.add_command(audit_group, name="audit")
main.add_command(backup_command)
main.add_command(restore_command)

# -- sensors: gis_ioc/iot/cli.py -------------------------------------------------------------------
main.add_command(broker_group)
main.add_command(ingest_command)
main.add_command(iot_group)
