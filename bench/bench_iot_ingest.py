"""Sustained ingestion through mosquitto: readings published at a target rate (QoS 1, one SenML reading
per message, the devices' own credentials) → gis-ioc's broker → ``gis-ioc ingest`` → PostGIS. Prints the
rate published and stored, the loss (readings published and acknowledged by the broker but not stored),
and the reading-to-visible latency (from the reading's time, which is its publishing instant, to the moment
a poller sees it as the datastream's committed latest value; poll every 20 ms, so up to 20 ms too high).
Then, side by side, the same readings stored without the broker: through the same storage path
(``store_messages``, batches of 500) and by a plain COPY into the observations table.

    .venv/bin/python bench/bench_iot_ingest.py [--rate 2000] [--seconds 600] [--devices 20]

Runs on a throwaway cluster and broker of its own; prints figures and never fails on a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import bench_database, free_port

from gis_ioc.database.connection import connect
from gis_ioc.iot import model, senml
from gis_ioc.iot.broker import Broker
from gis_ioc.iot.store import Message, store_messages


def _vn(value: float, digits: int = 0) -> str:
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup_devices(conn: Any, count: int) -> dict[str, str]:
    secrets: dict[str, str] = {}
    for i in range(count):
        code = f"BENCH-AQ-{i:03d}"
        conn.execute(
            "INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, geom) VALUES "
            "(%s, '11953', 'air_quality', 'online', ST_SetSRID(ST_MakePoint(106.0 + %s * 0.001, 20.6), 4326))",
            (code, i),
        )
        model.register(conn, code, "pm25", 1)
        secrets[code] = model.issue_credentials(conn, code)
    return secrets


class Poller(threading.Thread):
    """Samples the latest values: each new one seen gives a reading-to-visible latency."""

    def __init__(self, settings: Any, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.settings, self.every = settings, every
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        seen: dict[int, datetime] = {}
        with connect(self.settings, autocommit=True) as conn:
            while not self.stopping.is_set():
                rows = conn.execute("SELECT datastream_id, phenomenon_time FROM gis_ioc.iot_latest").fetchall()
                at = datetime.now(UTC)
                for ds, t in rows:
                    if seen.get(ds) != t:
                        if ds in seen:
                            self.latencies.append((at - t).total_seconds())
                        seen[ds] = t
                time.sleep(self.every)


def publish(broker: Broker, secrets: dict[str, str], rate: float, seconds: float) -> tuple[int, int, list[Any]]:
    """Publish ``rate`` readings a second for ``seconds``; returns (published, acknowledged, readings)."""
    clients = []
    acked = [0]
    lock = threading.Lock()

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
        with lock:
            acked[0] += 1

    for code, secret in secrets.items():
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{code}", protocol=mqtt.MQTTv311)
        client.username_pw_set(code, secret)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients.append((code, client))
    readings: list[tuple[str, float, datetime]] = []
    started = time.monotonic()
    sent = 0
    last_report = started
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            code, client = clients[sent % len(clients)]
            at = datetime.now(UTC)
            value = round(20 + (sent % 97) * 0.5, 1)
            payload = senml.dumps(code, [("pm25", value, at)])
            while client.publish(model.topic_of(code), payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                time.sleep(0.05)
            readings.append((code, value, at))
            sent += 1
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(f"  {elapsed:5.0f} s: đã gửi {_vn(sent)} số đo, broker xác nhận {_vn(acked[0])}", flush=True)
        time.sleep(0.005)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and acked[0] < sent:
        time.sleep(0.05)
    for _, client in clients:
        client.disconnect()
        client.loop_stop()
    return sent, acked[0], readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000.0, help="readings a second (default 2000)")
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to publish (default 600)")
    parser.add_argument("--devices", type=int, default=20, help="publishing devices (default 20)")
    args = parser.parse_args()

    with bench_database() as (settings, _cluster, _catalog):
        settings = settings.model_copy(update={"mqtt_port": free_port(), "mqtt_home": settings.home / "mosquitto"})
        broker = Broker.of(settings)
        with connect(settings, autocommit=True) as conn:
            secrets = setup_devices(conn, args.devices)
            broker.start(model.credential_hashes(conn))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
        env.update(
            GIS_IOC_HOME=str(settings.home),
            GIS_IOC_DB_PORT=str(settings.db_port),
            GIS_IOC_MQTT_PORT=str(settings.mqtt_port),
            GIS_IOC_MQTT_HOME=str(settings.mqtt_home),
            GIS_IOC_LOG_LEVEL="info",
        )
        log = settings.home / "ingest.log"
        with log.open("wb") as out:
            ingester = subprocess.Popen(
                [str(Path(sys.executable).parent / "gis-ioc"), "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 60  # until the ingester has subscribed (its persistent session)
            while "Đã đăng ký nhận chủ đề" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            poller = Poller(settings)
            poller.start()
            print(
                f"Gửi {_vn(args.rate)} số đo/giây trong {_vn(args.seconds)} giây "
                f"từ {args.devices} thiết bị qua mosquitto (QoS 1)",
                flush=True,
            )
            started = time.monotonic()
            sent, acked, readings = publish(broker, secrets, args.rate, args.seconds)
            published_s = time.monotonic() - started
            with connect(settings, autocommit=True) as conn:
                deadline = time.monotonic() + 120
                stored = 0
                while time.monotonic() < deadline:
                    row = conn.execute("SELECT count(*) FROM gis_ioc.iot_observations").fetchone()
                    stored = int(row[0]) if row else 0
                    if stored >= sent:
                        break
                    time.sleep(0.2)
                drained_s = time.monotonic() - started
            poller.stopping.set()
            poller.join()
        finally:
            ingester.terminate()
            ingester.wait(timeout=30)
            broker.stop()
        lat = poller.latencies
        print()
        print("| đo qua mosquitto | giá trị |")
        print("|---|---|")
        print(f"| số đo gửi / broker xác nhận / lưu | {_vn(sent)} / {_vn(acked)} / {_vn(stored)} |")
        print(f"| mất | {_vn(sent - stored)} |")
        print(f"| tốc độ gửi | {_vn(sent / published_s)} số đo/giây |")
        print(f"| tốc độ lưu (đến khi lưu hết) | {_vn(stored / drained_s)} số đo/giây |")
        print(
            f"| độ trễ từ số đo đến khi thấy được (p50 / p99 / max, {_vn(len(lat))} mẫu) | "
            f"{_vn(statistics.median(lat) * 1000 if lat else float('nan'))} / "
            f"{_vn(_percentile(lat, 0.99) * 1000)} / {_vn(max(lat, default=float('nan')) * 1000)} ms |"
        )

        # the reference: the same readings without the broker
        with connect(settings, autocommit=True) as conn:
            conn.execute("TRUNCATE gis_ioc.iot_observations, gis_ioc.iot_latest, gis_ioc.iot_hourly, gis_ioc.iot_daily")
            now = datetime.now(UTC)
            messages = [Message(code, senml.dumps(code, [("pm25", v, t)]), "mqtt", now) for code, v, t in readings]
            began = time.monotonic()
            for i in range(0, len(messages), 500):
                store_messages(conn, messages[i : i + 500])
            direct_s = time.monotonic() - began
            conn.execute("TRUNCATE gis_ioc.iot_observations, gis_ioc.iot_latest, gis_ioc.iot_hourly, gis_ioc.iot_daily")
            ids = dict(conn.execute("SELECT device_code, id FROM gis_ioc.iot_datastreams").fetchall())
            began = time.monotonic()
            with (
                conn.cursor() as cur,
                cur.copy("COPY gis_ioc.iot_observations (datastream_id, phenomenon_time, result) FROM STDIN") as copy,
            ):
                for code, v, t in readings:
                    copy.write_row((ids[code], t, v))
            copy_s = time.monotonic() - began
        print(f"| tham chiếu: cùng đường lưu, không qua broker (lô 500) | {_vn(len(readings) / direct_s)} số đo/giây |")
        print(f"| tham chiếu: COPY thẳng vào bảng số đo (không rollup) | {_vn(len(readings) / copy_s)} số đo/giây |")


if __name__ == "__main__":
    main()
