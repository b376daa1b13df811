"""Alerts from the judged readings, through the ingester's store: open → acknowledged → closed, audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from gis_ioc.errors import NotFound
from gis_ioc.iot import alerts, alerts_cli, judge, model
from gis_ioc.settings import Settings
from tests.conftest import push_readings, scalar


def _device(conn: psycopg.Connection[Any], kind: str, index: int) -> str:
    return str(
        scalar(
            conn,
            "SELECT device_code FROM layers.iot_devices WHERE kind = %s AND approval = 'approved' "
            "ORDER BY device_code DESC OFFSET %s LIMIT 1",
            (kind, index),
        )
    )


def _live(conn: psycopg.Connection[Any], device: str) -> dict[str, tuple[str, int, float | None]]:
    return {a.condition: (a.state, a.severity, a.value) for a in alerts.listing(conn, state="live", device_code=device)}


def _trail(conn: psycopg.Connection[Any], alert_id: int) -> list[str]:
    rows = conn.execute("SELECT action FROM gis_ioc.audit WHERE target = %s ORDER BY id", (f"iot_alert {alert_id}",))
    return [r[0] for r in rows]


def test_stale_after_16_minutes_then_a_reading_clears_it(db: psycopg.Connection[Any], settings: Settings) -> None:
    device = _device(db, "air_quality", 0)
    ds = model.register(db, device, "pm25", 300)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    push_readings(db, device, [("pm25", 20.0, t0)])
    judge.after_commit(db, [ds.id], settings.config_dir, now=t0 + timedelta(minutes=15))
    assert "stale:pm25" not in _live(db, device)
    judge.judge_all(db, settings.config_dir, now=t0 + timedelta(minutes=16))  # cron: no reading needed
    assert _live(db, device)["stale:pm25"][0] == "open"
    [stale] = [a for a in alerts.listing(db, state="live", device_code=device) if a.condition == "stale:pm25"]
    push_readings(db, device, [("pm25", 21.0, t0 + timedelta(minutes=16))])
    judge.after_commit(db, [ds.id], settings.config_dir, now=t0 + timedelta(minutes=16))
    assert "stale:pm25" not in _live(db, device)
    closed = alerts.get(db, stale.id)
    assert closed.state == "closed" and closed.closed_by == alerts.SYSTEM
    assert _trail(db, stale.id) == ["iot.alert.open", "iot.alert.close"]


def test_hung_yen_gauge_alarm_levels(db: psycopg.Connection[Any], settings: Settings) -> None:
    rules = judge.load_rules(settings.config_dir)
    station = rules.stations[0]
    assert scalar(db, "SELECT kind FROM layers.iot_devices WHERE device_code = %s", (station.device,)) == "water_level"
    model.register(db, station.device, "water_level", 900)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def reading(minutes: int, metres: float) -> dict[str, tuple[str, int, float | None]]:
        when = t0 + timedelta(minutes=minutes)
        push_readings(db, station.device, [("water_level", metres, when)])
        judge.after_store(db, [station.device], settings.config_dir, now=when)  # the ingester's call, by device
        return _live(db, station.device)

    assert "water" not in reading(0, 5.49)
    assert reading(15, 5.50)["water"] == ("open", 1, 5.50)
    [alert] = [a for a in alerts.listing(db, state="live", device_code=station.device) if a.condition == "water"]
    alerts.acknowledge(db, alert.id, "suite.operator")
    assert reading(20, 5.60)["water"] == ("acknowledged", 1, 5.60)  # still level I: stays acknowledged
    assert reading(30, 6.60)["water"] == ("open", 2, 6.60)  # the same alert, level II: open again
    assert "water" not in reading(45, 5.20)
    closed = alerts.get(db, alert.id)
    assert closed.state == "closed" and closed.detail == {"station": "hung_yen", "level": 2}
    assert _trail(db, alert.id) == ["iot.alert.open", "iot.alert.acknowledge", "iot.alert.reopen", "iot.alert.close"]


def test_pm25_daily_limit_by_date_and_aqi_band(db: psycopg.Connection[Any], settings: Settings) -> None:
    # devices without the demo's daily PM2.5 (its newer readings would make these old ones late)
    before, after = _device(db, "camera", 1), _device(db, "camera", 2)
    rows = {}
    for device, end in (
        (before, datetime(2025, 12, 31, 16, tzinfo=UTC)),
        (after, datetime(2026, 1, 2, 16, tzinfo=UTC)),
    ):
        ds = model.register(db, device, "pm25", 3600)
        push_readings(db, device, [("pm25", 47.0, end - timedelta(hours=k)) for k in range(24)])
        judge.after_commit(db, [ds.id], settings.config_dir, now=end + timedelta(minutes=30))
        rows[device] = _live(db, device)
    assert "limit:pm25:24h" not in rows[before]  # 47 ≤ 50 on 31/12/2025 (Vietnam's day)
    assert rows[after]["limit:pm25:24h"] == ("open", 1, 47.0)  # 47 > 45 on 02/01/2026
    assert "aqi" not in rows[after]  # NowCast 47 → AQI 94, Trung bình: no alert

    smoky = _device(db, "air_quality", 3)
    ds = model.register(db, smoky, "pm25", 3600)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    push_readings(db, smoky, [("pm25", 100.0, end - timedelta(hours=k)) for k in range(12)])
    judge.after_commit(db, [ds.id], settings.config_dir, now=end)
    [aqi] = [a for a in alerts.listing(db, state="live", device_code=smoky) if a.condition == "aqi"]
    # NowCast 100 → 50/70 × 20 + 150 = 164.3 → 164, Xấu (the fourth band)
    assert (aqi.value, aqi.severity, aqi.detail["band"], aqi.detail["dominant"]) == (164.0, 4, "bad", "pm25")


def test_acknowledge_then_close(db: psycopg.Connection[Any], settings: Settings) -> None:
    device = _device(db, "air_quality", 4)
    ds = model.register(db, device, "pm25", 3600)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    push_readings(db, device, [("pm25", 200.0, end - timedelta(hours=k)) for k in range(3)])
    judge.after_commit(db, [ds.id], settings.config_dir, now=end)
    [alert] = [a for a in alerts.listing(db, state="open", device_code=device) if a.condition == "aqi"]
    acked = alerts.acknowledge(db, alert.id, "suite.operator", address="127.0.0.1", note="đã báo Sở")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "suite.operator")
    with pytest.raises(alerts.AlertConflict) as refused:
        alerts.acknowledge(db, alert.id, "suite.operator")
    assert refused.value.status == 409 and "đã xác nhận" in refused.value.text("vi")
    with pytest.raises(NotFound):
        alerts.acknowledge(db, 10**12, "suite.operator")
    push_readings(db, device, [("pm25", 5.0, end + timedelta(hours=k)) for k in range(1, 4)])  # the air clears
    judge.after_commit(db, [ds.id], settings.config_dir, now=end + timedelta(hours=3))
    assert alerts.get(db, alert.id).state == "closed"
    assert _trail(db, alert.id) == ["iot.alert.open", "iot.alert.acknowledge", "iot.alert.close"]
    actor = scalar(
        db,
        "SELECT actor FROM gis_ioc.audit WHERE action = 'iot.alert.acknowledge' AND target = %s",
        (f"iot_alert {alert.id}",),
    )
    assert actor == "suite.operator"


def test_cron_judge_and_console_acknowledgement(db: psycopg.Connection[Any], settings: Settings) -> None:
    """``gis-ioc iot judge`` (cron) turns the demo's datastreams, silent since the day before AS_OF, stale;
    ``gis-ioc iot alerts ack`` acknowledges one as the console's user."""
    runner = CliRunner()
    judged = runner.invoke(alerts_cli.judge_command, [], obj={"settings": settings})
    assert judged.exit_code == 0, judged.output
    demo_streams = scalar(
        db,
        "SELECT count(*) FROM gis_ioc.iot_datastreams d JOIN layers.iot_devices t USING (device_code) "
        "WHERE t.is_demo AND d.interval_s = 86400",
    )
    stale = scalar(db, "SELECT count(*) FROM gis_ioc.iot_alerts WHERE kind = 'stale' AND state <> 'closed'")
    assert demo_streams > 100 and stale >= demo_streams
    alert_id = scalar(db, "SELECT min(id) FROM gis_ioc.iot_alerts WHERE state = 'open' AND kind = 'stale'")
    acked = runner.invoke(
        alerts_cli.alerts_group, ["ack", str(alert_id), "--note", "Đã gọi đơn vị vận hành"], obj={"settings": settings}
    )
    assert acked.exit_code == 0 and "đã xác nhận" in acked.output, acked.output
    assert (alerts.get(db, alert_id).acknowledged_by or "").startswith("cli:")
    again = runner.invoke(alerts_cli.alerts_group, ["ack", str(alert_id)], obj={"settings": settings})
    assert again.exit_code == 1
    listed = runner.invoke(
        alerts_cli.alerts_group, ["list", "--json", "--state", "acknowledged"], obj={"settings": settings}
    )
    assert listed.exit_code == 0 and alert_id in {a["id"] for a in json.loads(listed.output)}
