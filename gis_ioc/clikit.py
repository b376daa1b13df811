"""What every ``gis-ioc`` command module shares: the settings and catalog of the invocation, the console
for messages (stderr; results go to stdout), and the progress bar of long work."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.settings import Settings

console = Console(stderr=True)


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation, read from the environment once."""
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        from gis_ioc.auth import audit

        obj["settings"] = Settings()
        audit.configure(obj["settings"].home)  # the audit chain's key and head file live under GIS_IOC_HOME
    settings: Settings = obj["settings"]
    return settings


def catalog_of(settings: Settings) -> Catalog:
    return load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
