"""The broker's door for field devices over TLS: a device publishes over TLS with the trial certificate and
the ingester stores the reading; a wrong password or an untrusted certificate gets nowhere; the written
configuration keeps TLS 1.2 at least and the plain listener on loopback; a plain listener open to the
network is refused; the status prints the certificate's fingerprint; an operator's certificate is checked
and copied mode 0600; the simulator publishes over TLS."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner, Result
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.cli import main
from gis_ioc.iot import model
from gis_ioc.iot.broker import Broker, BrokerError
from tests.conftest import free_port, temp_home
from tests.iot.conftest import Sensors, now, pack


@dataclass
class Tls:
    """A second broker of the sensor tests' database, with a TLS listener and a trial certificate."""

    broker: Broker
    extra: dict[str, str]  # the settings that point gis-ioc at it

    def env(self, sensors: Sensors, **more: str) -> dict[str, str]:
        return sensors.env(**self.extra, **more)


@pytest.fixture(scope="module")
def tls(sensors: Sensors) -> Iterator[Tls]:
    home = temp_home("gis-ioc-mqtt-tls-")
    settings = sensors.settings.model_copy(
        update={
            "mqtt_port": free_port(),
            "mqtt_home": home / "broker",
            "mqtt_tls_port": free_port(),
            "mqtt_tls_host": "127.0.0.1",
        }
    )
    broker = Broker.of(settings)
    with sensors.conn() as conn:
        broker.start(model.credential_hashes(conn))
    extra = {
        "mqtt_port": str(broker.port),
        "mqtt_home": str(broker.home),
        "mqtt_tls_port": str(broker.tls_port),
        "mqtt_tls_host": broker.tls_host,
    }
    try:
        yield Tls(broker, extra)
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def _device(code: str, secret: str, cafile: Path | None) -> mqtt.Client:
    """A field device: TLS, trusting ``cafile`` (None: the system's authorities)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-tls-{code}", protocol=mqtt.MQTTv311)
    client.username_pw_set(code, secret)
    client.tls_set(ca_certs=str(cafile) if cafile else None)
    return client


def _more_than(items: list[Any], count: int) -> bool:
    return len(items) > count


def _has(text: str, path: Path) -> bool:
    return text in path.read_text(errors="replace")


def _cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _handshake(port: int, cafile: Path, version: ssl.TLSVersion) -> tuple[str | None, bytes | None]:
    """The TLS version agreed and the server's certificate (DER) when offering only ``version``."""
    context = ssl.create_default_context(cafile=str(cafile))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is offered on purpose
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as wrapped,
    ):
        return wrapped.version(), wrapped.getpeercert(binary_form=True)


def _reading(sensors: Sensors, code: str, prop: str, at: datetime) -> float | None:
    with sensors.conn() as conn:
        row = conn.execute(
            "SELECT o.result FROM gis_ioc.iot_observations o JOIN gis_ioc.iot_datastreams d "
            "ON d.id = o.datastream_id WHERE d.device_code = %s AND d.property_id = %s AND o.phenomenon_time = %s",
            (code, prop, at),
        ).fetchone()
    return None if row is None else float(row[0])


def test_a_device_publishes_over_tls_and_the_reading_is_stored(clean: Sensors, tls: Tls) -> None:
    at = now() - timedelta(minutes=1)
    with clean.ingester("tls", **tls.extra):
        device = _device("HY-AQ-T01", clean.devices["HY-AQ-T01"], tls.broker.ca_file)
        device.connect("localhost", tls.broker.tls_port)
        device.loop_start()
        try:
            info = device.publish(model.topic_of("HY-AQ-T01"), pack([("pm25", 41.5, at)], "ug/m3"), qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
            clean.wait_for(
                lambda: _reading(clean, "HY-AQ-T01", "pm25", at) is not None, what="the reading sent over TLS"
            )
        finally:
            device.disconnect()
            device.loop_stop()
    assert _reading(clean, "HY-AQ-T01", "pm25", at) == 41.5
    log = tls.broker.log_file.read_text(errors="replace")
    assert f"on port {tls.broker.tls_port}" in log and "as test-tls-HY-AQ-T01" in log


def test_a_wrong_password_over_tls_is_refused(sensors: Sensors, tls: Tls) -> None:
    answers: list[Any] = []
    device = _device("HY-AQ-T02", "not-the-secret", tls.broker.ca_file)
    device.on_connect = lambda c, u, f, reason, p: answers.append(reason)
    device.connect("localhost", tls.broker.tls_port)  # the handshake succeeds: the broker answers
    device.loop_start()
    try:
        sensors.wait_for(partial(_more_than, answers, 0), timeout=10, what="the broker's answer")
    finally:
        device.disconnect()
        device.loop_stop()
    assert answers[0].is_failure
    assert str(answers[0]) == "Not authorized"


def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake(sensors: Sensors, tls: Tls) -> None:
    device = _device("HY-AQ-T02", sensors.devices["HY-AQ-T02"], None)  # the system's authorities only
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        device.connect("localhost", tls.broker.tls_port)
    other = temp_home("gis-ioc-other-ca-")
    try:  # another trial authority (another installation's) is no better
        stranger = Broker(
            home=other, host="127.0.0.1", port=1, program=tls.broker.program, secrets_dir=other, tls_port=1
        )
        stranger.install_tls()
        device = _device("HY-AQ-T02", sensors.devices["HY-AQ-T02"], stranger.ca_file)
        with pytest.raises(ssl.SSLCertVerificationError):
            device.connect("localhost", tls.broker.tls_port)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_the_configuration_keeps_tls_12_at_least_and_the_plain_listener_on_loopback(tls: Tls) -> None:
    broker = tls.broker
    lines = broker.config_file.read_text().splitlines()
    assert f"listener {broker.port} 127.0.0.1" in lines
    tls_at = lines.index(f"listener {broker.tls_port} 127.0.0.1")
    assert lines[tls_at + 1 :] == [
        f"certfile {broker.tls_cert_file}",
        f"keyfile {broker.tls_key_file}",
        "tls_version tlsv1.2",
    ]
    for path in (broker.tls_cert_file, broker.tls_key_file, broker.ca_key_file, broker.password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(broker.tls_dir.stat().st_mode) == 0o700
    assert _handshake(broker.tls_port, broker.ca_file, ssl.TLSVersion.TLSv1_2)[0] == "TLSv1.2"
    assert _handshake(broker.tls_port, broker.ca_file, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|protocol version"):
        _handshake(broker.tls_port, broker.ca_file, ssl.TLSVersion.TLSv1_1)


def test_start_refuses_a_plain_listener_open_to_the_network(sensors: Sensors) -> None:
    home = temp_home("gis-ioc-mqtt-open-")
    try:
        port = free_port()
        env = sensors.env(mqtt_host="0.0.0.0", mqtt_port=str(port), mqtt_home=str(home / "broker"))
        refused = _cli(env, "broker", "start")
        assert refused.exit_code == 1
        text = " ".join(refused.output.split())
        assert "GIS_IOC_MQTT_HOST=0.0.0.0 không phải địa chỉ loopback" in text
        assert "mật khẩu thiết bị sẽ đi qua mạng ở dạng rõ" in text
        assert "đặt GIS_IOC_MQTT_TLS_PORT=8883 cho thiết bị" in text and "GIS_IOC_MQTT_ALLOW_PLAIN=true" in text
        assert not (home / "broker" / "mosquitto.conf").exists()  # nothing written, nothing started
        # TLS on does not make an open plain listener safe: its passwords still cross in clear
        with_tls = _cli({**env, "GIS_IOC_MQTT_TLS_PORT": str(free_port())}, "broker", "start")
        assert with_tls.exit_code == 1 and "thiết bị kết nối qua TLS ở cổng" in " ".join(with_tls.output.split())
        # allowed on purpose: a warning in the status (not started here)
        allowed = _cli({**env, "GIS_IOC_MQTT_ALLOW_PLAIN": "true"}, "broker", "status", "--json")
        assert allowed.exit_code == 3  # not running
        state = json.loads(allowed.output)
        assert state["plain_exposed"] is True
        assert any("mật khẩu thiết bị đi qua mạng ở dạng rõ" in w for w in state["warnings"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    with pytest.raises(BrokerError, match="GIS_IOC_MQTT_ALLOW_PLAIN"):
        Broker(home=home, host="192.0.2.1", port=port, program=Path("/usr/sbin/mosquitto"), secrets_dir=home).start()


def test_the_status_prints_the_certificate_fingerprint_and_expiry(sensors: Sensors, tls: Tls) -> None:
    served = _handshake(tls.broker.tls_port, tls.broker.ca_file, ssl.TLSVersion.TLSv1_2)[1]
    assert served is not None
    fingerprint = hashlib.sha256(served).hexdigest().upper()
    state = json.loads(_cli(tls.env(sensors), "broker", "status", "--json").output)
    assert state["running"] and state["tls_accepting"] and state["tls_port"] == tls.broker.tls_port
    assert state["tls_sha256"].replace(":", "") == fingerprint  # what the devices are served
    assert state["tls_trial"] is True and state["tls_ca_file"] == str(tls.broker.ca_file)
    expires = datetime.fromisoformat(state["tls_expires"])
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=365)
    assert "localhost" in state["tls_names"] and "127.0.0.1" in state["tls_names"]
    assert any("chỉ để thử nghiệm" in w for w in state["warnings"])
    human = _cli(tls.env(sensors), "broker", "status").output
    assert f"tls_sha256: {state['tls_sha256']}" in human
    assert f"tls_expires: {(expires + timedelta(hours=7)).strftime('%d/%m/%Y %H:%M')} (giờ Việt Nam)" in human
    assert "Cảnh báo: Chứng chỉ TLS tự ký" in human


def test_an_operator_certificate_is_checked_and_copied_readable_by_the_broker_only(tls: Tls) -> None:
    home = temp_home("gis-ioc-mqtt-own-")
    try:
        cert, key = home / "mqtt.example.crt", home / "mqtt.example.key"
        shutil.copy(tls.broker.tls_cert_file, cert)
        shutil.copy(tls.broker.tls_key_file, key)
        key.chmod(0o640)

        def broker(cert_file: Path | None, key_file: Path | None) -> Broker:
            return Broker(
                home=home / "broker",
                host="127.0.0.1",
                port=1,
                program=tls.broker.program,
                secrets_dir=home,
                tls_port=1,
                tls_cert=cert_file,
                tls_key=key_file,
            )

        with pytest.raises(BrokerError, match="GIS_IOC_MQTT_TLS_CERT") as missing:
            broker(home / "missing.crt", key).install_tls()
        assert missing.value.text("vi").startswith(f"không đọc được {home / 'missing.crt'} (GIS_IOC_MQTT_TLS_CERT)")
        with pytest.raises(BrokerError) as alone:
            broker(cert, None).install_tls()
        assert alone.value.text("vi").startswith("chưa đặt GIS_IOC_MQTT_TLS_KEY")
        with pytest.raises(BrokerError) as foreign:
            broker(cert, tls.broker.ca_key_file).install_tls()
        assert "không thuộc chứng chỉ" in foreign.value.text("vi")
        with pytest.raises(BrokerError) as not_a_cert:
            broker(key, key).install_tls()
        assert "không chứa chứng chỉ PEM nào" in not_a_cert.value.text("vi")

        own = broker(cert, key)
        installed, trial = own.install_tls(), tls.broker.certificate()
        assert installed is not None and trial is not None
        assert not installed.trial and installed.sha256 == trial.sha256
        assert own.tls_key_file.read_bytes() == key.read_bytes()
        for path in (own.tls_cert_file, own.tls_key_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not own.ca_file.exists() and own.warnings() == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_simulator_publishes_over_tls(clean: Sensors, tls: Tls) -> None:
    env = tls.env(clean)
    plain_only = CliRunner().invoke(main, ["iot", "simulate", "--cafile", str(tls.broker.ca_file)], env=env)
    assert plain_only.exit_code == 2 and "--cafile và --host chỉ dùng cùng --tls" in plain_only.output
    before = tls.broker.certificate()
    with clean.ingester("tls-simulate", **tls.extra):
        out = _cli(env, "iot", "simulate", "--devices", "1", "--interval", "0.5", "--duration", "2", "--tls")
        assert out.exit_code == 0, out.output
        assert f"Mô phỏng 1 thiết bị, mỗi 0,5 giây qua TLS tới 127.0.0.1:{tls.broker.tls_port}" in out.output
        clean.wait_for(lambda: clean.count() >= 4, what="the readings simulated over TLS")
    assert _has(f"on port {tls.broker.tls_port}", tls.broker.log_file)
    with clean.conn() as conn:  # the simulator gave HY-AQ-T01 a secret only it knew
        clean.devices["HY-AQ-T01"] = model.issue_credentials(conn, "HY-AQ-T01")
        clean.broker.sync(conn)
        tls.broker.sync(conn)
    after = tls.broker.certificate()  # writing the files again keeps a valid trial certificate
    assert before is not None and after == before
