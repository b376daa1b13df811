"""The sensors' command line: register, list, credentials (the broker takes the new secret at once),
maintain, broker status, and the simulator publishing through the broker."""

from __future__ import annotations

import json
import time
from functools import partial

import paho.mqtt.client as mqtt
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.cli import main
from gis_ioc.iot import model
from tests.iot.conftest import Sensors


def _more_than(items: list[object], count: int) -> bool:
    return len(items) > count


def _run(sensors: Sensors, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=sensors.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_register_list_and_refusals(clean: Sensors) -> None:
    out = _run(clean, "iot", "register", "HY-WL-T01", "--property", "rain", "--interval", "900")
    assert "HY-WL-T01 × rain (mm), chu kỳ 900 giây" in out
    listed = json.loads(_run(clean, "iot", "list", "--device", "HY-WL-T01", "--json"))
    assert {(r["property"], r["interval_s"]) for r in listed} == {("water_level", 60), ("rain", 900)}
    unknown = CliRunner().invoke(
        main, ["iot", "register", "HY-NONE", "--property", "pm25", "--interval", "60"], env=clean.env()
    )
    assert unknown.exit_code == 1
    assert "không có thiết bị HY-NONE đã phê duyệt trong lớp iot_devices" in unknown.output
    wrong = CliRunner().invoke(
        main, ["iot", "register", "HY-WL-T01", "--property", "pm3", "--interval", "60"], env=clean.env()
    )
    assert wrong.exit_code == 1 and "đại lượng 'pm3' không có" in wrong.output


def test_new_credentials_take_effect_in_the_broker(clean: Sensors) -> None:
    secret = _run(clean, "iot", "credentials", "HY-WL-T01").splitlines()[0].strip()
    time.sleep(0.5)  # the broker reloads its password file (SIGHUP)
    answers: list[object] = []
    for i, password in enumerate((secret, clean.devices["HY-WL-T01"])):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-cli-credentials")
        client.username_pw_set("HY-WL-T01", password)
        client.on_connect = lambda c, u, f, reason, p: answers.append(reason)
        client.connect(clean.broker.host, clean.broker.port)
        client.loop_start()
        clean.wait_for(partial(_more_than, answers, i), timeout=10, what="the broker's answer")
        client.disconnect()
        client.loop_stop()
    assert [getattr(a, "is_failure", None) for a in answers] == [False, True]  # the old secret no longer works
    clean.devices["HY-WL-T01"] = secret
    status = json.loads(
        CliRunner().invoke(main, ["broker", "status", "--json"], env=clean.env(), catch_exceptions=False).output
    )
    assert status["running"] and status["port"] == clean.broker.port and status["devices"] == 3


def test_maintain_and_simulate(clean: Sensors) -> None:
    assert "Phân vùng mới" in _run(clean, "iot", "maintain", "--retain-months", "24")
    with clean.ingester("simulate"):
        out = _run(clean, "iot", "simulate", "--devices", "2", "--interval", "0.5", "--duration", "2")
        assert "Mô phỏng 2 thiết bị, mỗi 0,5 giây" in out
        clean.wait_for(lambda: clean.count() >= 8, what="the simulated readings")
    with clean.conn() as conn:
        values = conn.execute(
            "SELECT p.property_id, min(o.result), max(o.result) FROM gis_ioc.iot_observations o "
            "JOIN gis_ioc.iot_datastreams p ON p.id = o.datastream_id GROUP BY 1"
        ).fetchall()
        for device in ("HY-AQ-T01", "HY-AQ-T02"):  # the simulator gave them secrets only it knew
            clean.devices[device] = model.issue_credentials(conn, device)
        clean.broker.sync(conn)
    ranges = {prop: (low, high) for prop, low, high in values}
    assert set(ranges) >= {"pm25", "pm10"}
    assert 2 <= ranges["pm25"][0] <= ranges["pm25"][1] < 150
    time.sleep(0.5)  # the broker reloads its password file
