"""The ingester through a real mosquitto: QoS 1, persistent session, acknowledged only after commit.
1,000 messages with forced redelivery (duplicates published, the ingester killed between receiving and
committing) give exactly 1,000 rows; restarting the broker or PostGIS during ingestion loses nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.iot import model
from tests.iot.conftest import Sensors, now, pack

DEVICES = ("HY-AQ-T01", "HY-AQ-T02")


START = now() - timedelta(hours=3)


def _publish(sensors: Sensors, count: int, *, pause_every: int = 0, pause: float = 0.0, offset: int = 0) -> int:
    """``count`` messages of one reading each (pm25, one a second apart), spread over the devices, QoS 1,
    as a device does it: a message the client could not hand to the broker is sent again (at least
    once). Returns how many the broker acknowledged."""
    clients = {d: sensors.publisher(d) for d in DEVICES}
    sent: list[tuple[str, bytes, mqtt.MQTTMessageInfo]] = []

    def send(device: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        while True:
            info = clients[device].publish(model.topic_of(device), payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                return info
            time.sleep(0.2)  # not connected: the client reconnects by itself

    try:
        for i in range(count):
            device = DEVICES[i % len(DEVICES)]
            payload = pack([("pm25", 10.0 + i % 40, START + timedelta(seconds=offset + i))])
            sent.append((device, payload, send(device, payload)))
            if pause_every and i % pause_every == pause_every - 1:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(info.is_published() for _, _, info in sent):
            time.sleep(0.1)
        return sum(info.is_published() for _, _, info in sent)
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()


def test_1000_messages_with_redelivery_give_exactly_1000_rows(clean: Sensors) -> None:
    with clean.conn() as lock:
        with clean.ingester("redelivery-1") as first:  # subscribed: the persistent session exists from here on
            with lock.transaction():
                # the ingester can receive but not commit: its batch waits on this lock
                lock.execute("LOCK TABLE gis_ioc.iot_latest IN ACCESS EXCLUSIVE MODE")
                assert _publish(clean, 600) == 600
                clean.wait_for(
                    lambda: (
                        clean.count(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gis-ioc ingest' "
                            "AND wait_event_type = 'Lock'"
                        )
                        == 1
                    ),
                    what="the ingester blocked before its commit",
                )
                first.kill()  # between receive and commit
            assert clean.count() == 0
        # the same 600 again (duplicates) and 400 more while no ingester runs: the broker keeps them
        assert _publish(clean, 600) == 600
        assert _publish(clean, 400, offset=600) == 400
        with clean.ingester("redelivery-2"):
            clean.wait_for(lambda: clean.count() >= 1000, what="1,000 rows")
            time.sleep(2.0)  # anything more would be a double
            assert clean.count() == 1000
            assert clean.count("SELECT sum(n) FROM gis_ioc.iot_hourly") == 1000
            assert clean.count("SELECT count(*) FROM gis_ioc.iot_dead_letters") == 0


def _ingest_during(clean: Sensors, name: str, outage: threading.Thread) -> None:
    with clean.ingester(name):
        publisher = threading.Thread(target=lambda: results.append(_publish(clean, 1000, pause_every=50, pause=0.1)))
        results: list[int] = []
        publisher.start()
        clean.wait_for(lambda: clean.count() >= 100, what="the first readings")
        outage.start()
        outage.join()
        publisher.join()
        assert results == [1000]
        clean.wait_for(lambda: clean.count() >= 1000, timeout=90, what="1,000 rows after the outage")
        time.sleep(1.0)
        assert clean.count() == 1000
        assert clean.count("SELECT sum(n) FROM gis_ioc.iot_hourly") == 1000


def test_restarting_the_broker_during_ingestion_loses_nothing(clean: Sensors) -> None:
    def restart() -> None:
        clean.broker.stop()
        time.sleep(1.0)
        clean.broker.start()

    _ingest_during(clean, "broker-restart", threading.Thread(target=restart))


def test_restarting_postgis_during_ingestion_loses_nothing(clean: Sensors) -> None:
    def restart() -> None:
        clean.cluster.stop()
        time.sleep(2.0)
        clean.cluster.start()

    _ingest_during(clean, "postgis-restart", threading.Thread(target=restart))


def test_a_device_may_publish_only_to_its_own_topic(clean: Sensors) -> None:
    with clean.ingester("acl"):
        client = clean.publisher("HY-AQ-T01")
        try:
            other = model.topic_of("HY-AQ-T02")
            info = client.publish(other, pack([("pm25", 1.0, now() - timedelta(minutes=1))]), qos=1)
            info.wait_for_publish(5)
            own = client.publish(
                model.topic_of("HY-AQ-T01"), pack([("pm25", 2.0, now() - timedelta(minutes=1))]), qos=1
            )
            own.wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        clean.wait_for(lambda: clean.count() >= 1, what="the device's own reading")
        time.sleep(1.0)
        assert clean.count("SELECT count(*) FROM gis_ioc.iot_observations WHERE result = 2") == 1
        assert clean.count() == 1  # the broker dropped the other topic (ACL)
    refused = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-wrong-secret")
    refused.username_pw_set("HY-AQ-T01", "not the secret")
    outcome: list[object] = []
    refused.on_connect = lambda c, u, f, reason, p: outcome.append(reason)
    refused.connect(clean.broker.host, clean.broker.port)
    refused.loop_start()
    clean.wait_for(lambda: bool(outcome), timeout=10, what="the broker's answer")
    refused.loop_stop()
    assert getattr(outcome[0], "is_failure", False), outcome
