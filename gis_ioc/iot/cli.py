"""``gis-ioc broker``, ``gis-ioc ingest`` and ``gis-ioc iot``: the sensors' command line."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gis_ioc.clikit import console, settings_of
from gis_ioc.database.connection import connect, translate_errors
from gis_ioc.errors import GisIocError
from gis_ioc.iot import model
from gis_ioc.iot.alerts_cli import alerts_group, judge_command
from gis_ioc.iot.broker import Broker
from gis_ioc.maps.thematic import vn_datetime, vn_number


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


class _Group(click.Group):
    """gis_ioc errors as a one-line message (Vietnamese) and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GisIocError as exc:
            console.print(f"[bold red]lỗi:[/] {exc.text('vi')}", highlight=False)
            sys.exit(1)


# -- broker ----------------------------------------------------------------------------------------


@click.group("broker", cls=_Group)
def broker_group() -> None:
    """gis-ioc's MQTT broker (Debian's mosquitto under GIS_IOC_MQTT_HOME)."""


@broker_group.command("start")
@click.pass_context
def broker_start(ctx: click.Context) -> None:
    """Write the configuration, password and ACL files from the database, and start the broker."""
    settings = settings_of(ctx)
    broker = Broker.of(settings)
    devices: list[tuple[str, str]] | None
    try:
        with connect(settings) as conn:
            devices = model.credential_hashes(conn)
    except (GisIocError, OSError) as exc:
        devices = None
        console.print(f"[yellow]Không đọc được thiết bị từ PostGIS ({exc}); dùng tệp mật khẩu hiện có[/]")
    if broker.start(devices):
        console.print(f"Broker MQTT đã chạy trên {broker.host}:{broker.port} (pid {broker.pid()})")
    else:
        listeners = _listeners(broker)
        with translate_errors(), connect(settings) as conn:
            count = broker.sync(conn)
        console.print(f"Broker MQTT đang chạy (pid {broker.pid()}); đã nạp lại {count} thiết bị")
        if _listeners(broker) != listeners:
            console.print(
                "[yellow]Cổng nghe đã đổi: broker chỉ mở cổng mới khi khởi động lại "
                "(gis-ioc broker stop rồi gis-ioc broker start)[/]"
            )
    cert = broker.certificate() if broker.tls_port else None
    if cert is not None:
        trust = f"thiết bị tin {broker.ca_file}" if cert.trial else "chứng chỉ của người vận hành"
        console.print(
            f"TLS cho thiết bị: {broker.tls_host}:{broker.tls_port} ({trust}); SHA-256 {cert.sha256}, "
            f"hết hạn {vn_datetime(cert.not_after)}",
            highlight=False,
        )
    for warning in broker.warnings():
        console.print(f"[bold yellow]Cảnh báo:[/] {warning}", highlight=False)


def _listeners(broker: Broker) -> list[str]:
    """The listener lines of the broker's configuration file as written."""
    try:
        text = broker.config_file.read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith("listener ")]


@broker_group.command("stop")
@click.pass_context
def broker_stop(ctx: click.Context) -> None:
    """Stop the broker (it saves its persistence file first)."""
    broker = Broker.of(settings_of(ctx))
    console.print("Đã dừng broker MQTT" if broker.stop() else "Broker MQTT không chạy")


@broker_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def broker_status(ctx: click.Context, as_json: bool) -> None:
    """Running or not, pid, address, folder, device accounts, the TLS certificate's SHA-256 fingerprint
    and expiry (what devices pin), warnings; exit 3 when not running."""
    state = Broker.of(settings_of(ctx)).status()
    if as_json:
        click.echo(json.dumps(state, ensure_ascii=False))
    else:
        for key, value in state.items():
            if key == "warnings":
                continue
            if key == "tls_expires" and isinstance(value, str):
                value = f"{vn_datetime(value)} (giờ Việt Nam)"
            click.echo(f"{key}: {value}")
        warnings = state["warnings"]
        for warning in warnings if isinstance(warnings, list) else []:
            click.echo(f"Cảnh báo: {warning}")
    if not state["running"]:
        sys.exit(3)


# -- ingester --------------------------------------------------------------------------------------


@click.command("ingest")
@click.pass_context
def ingest_command(ctx: click.Context) -> None:
    """Run the ingester: readings from the broker into PostGIS (until SIGTERM or Ctrl-C)."""
    from gis_ioc.iot.ingest import run_forever

    settings = settings_of(ctx)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    stats = run_forever(settings)
    console.print(f"{stats.messages} tin, {stats.accepted} số đo mới, {stats.duplicates} trùng")


# -- iot -------------------------------------------------------------------------------------------


@click.group("iot", cls=_Group)
def iot_group() -> None:
    """Sensors: datastreams, device credentials, partitions, simulator."""


@iot_group.command("register")
@click.argument("device")
@click.option("--property", "properties", multiple=True, required=True, help="Property id, e.g. pm25 (repeatable).")
@click.option("--interval", type=click.IntRange(1), required=True, help="Expected seconds between readings.")
@click.pass_context
def iot_register(ctx: click.Context, device: str, properties: tuple[str, ...], interval: int) -> None:
    """Register the datastreams DEVICE × PROPERTY (the device: approved in the iot_devices layer)."""
    from gis_ioc.auth import audit

    settings = settings_of(ctx)
    with translate_errors(), connect(settings) as conn, conn.transaction():
        streams = [model.register(conn, device, p, interval) for p in properties]
        audit.record(
            conn,
            actor=_actor(),
            action="iot.register",
            target=device,
            detail={"properties": list(properties), "interval_s": interval},
        )
    for s in streams:
        console.print(f"Luồng dữ liệu {s.id}: {device} × {s.property.id} ({s.property.unit}), chu kỳ {interval} giây")


@iot_group.command("list")
@click.option("--device", help="Only this device.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def iot_list(ctx: click.Context, device: str | None, as_json: bool) -> None:
    """The datastreams with their latest reading."""
    settings = settings_of(ctx)
    with translate_errors(), connect(settings) as conn:
        streams = model.datastreams(conn, [device] if device else None)
        latest = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT datastream_id, phenomenon_time, result FROM gis_ioc.iot_latest").fetchall()
        }
    rows: list[dict[str, Any]] = [
        {
            "id": s.id,
            "device": s.device_code,
            "property": s.property.id,
            "unit": s.property.unit,
            "interval_s": s.interval_s,
            "latest_time": latest[s.id][0].isoformat() if s.id in latest else None,
            "latest": latest[s.id][1] if s.id in latest else None,
        }
        for s in streams
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("id", "thiết bị", "đại lượng", "đơn vị", "chu kỳ (giây)", "số đo mới nhất", "lúc")
    for r in rows:
        value = "" if r["latest"] is None else vn_number(float(r["latest"]), 3)
        when = vn_datetime(r["latest_time"], seconds=True) if r["latest_time"] else ""  # Vietnam's time
        cells = (r["id"], r["device"], r["property"], r["unit"], r["interval_s"], value, when)
        table.add_row(*(str(c) for c in cells))
    Console().print(table)  # results on standard output


@iot_group.command("credentials")
@click.argument("device")
@click.pass_context
def iot_credentials(ctx: click.Context, device: str) -> None:
    """A new secret for DEVICE (MQTT user name = device code; HTTP header X-Device-Key: CODE:SECRET),
    printed once; the broker's password file is written again."""
    from gis_ioc.auth import audit

    settings = settings_of(ctx)
    broker = Broker.of(settings)
    with translate_errors(), connect(settings) as conn:
        with conn.transaction():
            secret = model.issue_credentials(conn, device)
            audit.record(conn, actor=_actor(), action="iot.credentials", target=device)
        broker.sync(conn)
    click.echo(secret)
    console.print(
        f"Bí mật mới của {device} (chỉ hiện một lần). MQTT: người dùng {device}, chủ đề {model.topic_of(device)}; "
        f"HTTP: POST /api/iot/devices/{device}/senml với tiêu đề X-Device-Key: {device}:<bí mật>"
    )


@iot_group.command("maintain")
@click.option(
    "--retain-months",
    type=int,
    default=None,
    help="Vietnamese months of readings kept, the current one included (24: this month and the 23 before it).",
)
@click.pass_context
def iot_maintain(ctx: click.Context, retain_months: int | None) -> None:
    """Make the partitions of this Vietnamese month and the next two; with --retain-months N, drop the
    readings of months before the last N (whole partitions; the hourly and daily rollups stay). Run it
    daily from cron."""
    from gis_ioc.iot.store import maintain

    settings = settings_of(ctx)
    with translate_errors(), connect(settings, autocommit=True) as conn:
        done = maintain(conn, retain_months)
    console.print(
        f"Phân vùng mới: {', '.join(done.made) or 'không'}; đã xoá: {', '.join(done.dropped) or 'không'} "
        f"({vn_number(done.rows_dropped, 0)} số đo)"
    )


@iot_group.command("simulate")
@click.option("--devices", type=click.IntRange(1, 10000), default=10, show_default=True)
@click.option("--interval", type=click.FloatRange(0.01), default=60.0, show_default=True, help="Seconds.")
@click.option("--duration", type=click.FloatRange(0), default=None, help="Seconds (default: until Ctrl-C).")
@click.option(
    "--tls", is_flag=True, help="Publish to the broker's TLS listener (GIS_IOC_MQTT_TLS_PORT), as field devices do."
)
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --tls: the certificate authority to trust (default: the trial one under GIS_IOC_MQTT_HOME/tls, "
    "or the system's).",
)
@click.option("--host", default=None, help="With --tls: the name to connect to, as in the certificate.")
@click.pass_context
def iot_simulate(
    ctx: click.Context,
    devices: int,
    interval: float,
    duration: float | None,
    tls: bool,
    cafile: Path | None,
    host: str | None,
) -> None:
    """Publish realistic readings of N devices every S seconds through the broker, with their credentials."""
    from gis_ioc.iot import simulate

    if (cafile is not None or host is not None) and not tls:
        raise click.UsageError("--cafile và --host chỉ dùng cùng --tls (--cafile and --host go with --tls)")
    settings = settings_of(ctx)
    broker = Broker.of(settings)
    endpoint = simulate.Endpoint.over_tls(broker, host, cafile) if tls else simulate.Endpoint.plain(broker)
    with translate_errors(), connect(settings) as conn:
        sims = simulate.prepare(conn, broker, devices, max(1, round(interval)))
    how = f" qua TLS tới {endpoint.host}:{endpoint.port}" if tls else ""
    console.print(f"Mô phỏng {len(sims)} thiết bị, mỗi {vn_number(interval, 2)} giây{how}")
    last = [time.monotonic()]

    def report(p: simulate.Published) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            console.print(f"đã gửi {p.messages} tin ({p.readings} số đo), broker xác nhận {p.acknowledged}")

    try:
        done = simulate.run(broker, sims, interval, duration, report=report, endpoint=endpoint)
    except KeyboardInterrupt:
        return
    console.print(f"Xong: {done.messages} tin ({done.readings} số đo), broker xác nhận {done.acknowledged}")


# the sensor alerts' commands (gis_ioc/iot/alerts_cli.py): gis-ioc iot judge, gis-ioc iot alerts list|ack
iot_group.add_command(judge_command)
iot_group.add_command(alerts_group)
