"""``gis-ioc iot judge`` (for cron) and ``gis-ioc iot alerts list|ack``: the sensor alerts' command line.

Registered on the ``gis-ioc iot`` group (:mod:`gis_ioc.iot.cli`) with ``iot_group.add_command``.
"""

from __future__ import annotations

import getpass
import json
import sys

import click
from rich.table import Table

from gis_ioc.clikit import console, settings_of
from gis_ioc.database.connection import connect
from gis_ioc.errors import GisIocError
from gis_ioc.iot import alerts, judge
from gis_ioc.maps.thematic import vn_number

STATE_VI = {"open": "đang mở", "acknowledged": "đã xác nhận", "closed": "đã đóng"}
KIND_VI = {"limit": "vượt QCVN", "aqi": "AQI", "water": "báo động lũ", "stale": "mất tín hiệu"}


def _fail(exc: GisIocError) -> None:
    console.print(f"[bold red]lỗi:[/] {exc.text('vi')}", highlight=False)
    sys.exit(1)


@click.command("judge")
@click.pass_context
def judge_command(ctx: click.Context) -> None:
    """Judge every datastream now (limits, AQI, flood levels, staleness) and move the alerts (cron)."""
    settings = settings_of(ctx)
    try:
        with connect(settings, autocommit=True) as conn:
            moved = judge.judge_all(conn, settings.config_dir)
            live = len(alerts.listing(conn, state="live", limit=1000))
    except GisIocError as exc:
        _fail(exc)
        return
    click.echo(f"{moved} cảnh báo mở hoặc đóng; {live} cảnh báo đang hiệu lực")


@click.group("alerts")
def alerts_group() -> None:
    """The sensor alerts: list them, acknowledge one."""


@alerts_group.command("list")
@click.option(
    "--state", type=click.Choice(["open", "acknowledged", "closed", "live"]), default="live", show_default=True
)
@click.option("--device", help="Only this device.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alerts_list(ctx: click.Context, state: str, device: str | None, as_json: bool) -> None:
    """The alerts, newest first."""
    settings = settings_of(ctx)
    with connect(settings, autocommit=True) as conn:
        found = alerts.listing(conn, state=state, device_code=device, limit=1000)
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in found], ensure_ascii=False, indent=1))
        return
    table = Table("Số", "Thiết bị", "Loại", "Điều kiện", "Mức", "Giá trị", "Trạng thái", "Mở lúc")
    for a in found:
        value = "" if a.value is None else vn_number(a.value)
        opened = a.opened_at.astimezone(judge.VIETNAM).strftime("%d/%m/%Y %H:%M")
        table.add_row(
            str(a.id), a.device_code, KIND_VI[a.kind], a.condition, str(a.severity), value, STATE_VI[a.state], opened
        )
    console.print(table)


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.option("--note", help="What was done (kept in the audit trail).")
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int, note: str | None) -> None:
    """Acknowledge an open alert (recorded in the audit trail as the console's user)."""
    settings = settings_of(ctx)
    try:
        with connect(settings, autocommit=True) as conn:
            alert = alerts.acknowledge(conn, alert_id, f"cli:{getpass.getuser()}", note=note)
    except GisIocError as exc:
        _fail(exc)
        return
    click.echo(f"Cảnh báo {alert.id} ({alert.device_code}, {alert.condition}): {STATE_VI[alert.state]}")
