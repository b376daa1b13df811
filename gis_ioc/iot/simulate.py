"""The simulator (``gis-ioc iot simulate``): realistic readings published through the broker with the
devices' own credentials, for demonstrations and benchmarks.

- Air-quality stations: PM2.5 with a daily cycle (peaks around 7–8 h and 19–20 h, lowest in the
  afternoon), PM10 about 1,6 times PM2.5, with noise.
- Water-level gauges: a river rising through the run (a flood wave: a few centimetres an hour) with a
  small ripple. Rain gauges: showers now and then.

The simulated devices are approved features of the ``iot_devices`` layer (demo ones first). Each gets
its datastreams (registered if missing, interval ``--interval``) and a fresh secret, which only this run
knows: the broker's password file is written again and reloaded before publishing.

It publishes to the plain listener on this machine, or, with ``--tls``, to the TLS listener as a field
device does (TLS 1.2 at least, the server's certificate checked against ``--cafile``: by default the trial
authority of ``GIS_IOC_MQTT_HOME/tls``, or the system's authorities for an operator's certificate).
"""

from __future__ import annotations

import math
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.iot import model, senml
from gis_ioc.iot.broker import WILDCARDS, Broker, BrokerError

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
#: What each kind of device observes.
PROPERTIES = {"air_quality": ("pm25", "pm10"), "water_level": ("water_level",), "rain_gauge": ("rain",)}


@dataclass
class SimDevice:
    code: str
    kind: str
    secret: str
    seed: float
    level: float = 3.0


@dataclass(frozen=True)
class Endpoint:
    """Where the simulated devices connect: the plain listener, or the TLS one trusting ``cafile``
    (None: the system's certificate authorities)."""

    host: str
    port: int
    tls: bool = False
    cafile: Path | None = None

    @classmethod
    def plain(cls, broker: Broker) -> Endpoint:
        return cls(broker.host, broker.port)

    @classmethod
    def over_tls(cls, broker: Broker, host: str | None = None, cafile: Path | None = None) -> Endpoint:
        """The broker's TLS listener, reached by ``host`` (default: its address, or ``localhost`` when it
        listens on every interface), trusting ``cafile`` (default: the trial authority when one is in use)."""
        if not broker.tls_port:
            raise BrokerError(
                "the broker has no TLS listener: set GIS_IOC_MQTT_TLS_PORT (e.g. 8883) and run gis-ioc broker start",
                vi="broker không có cổng TLS: đặt GIS_IOC_MQTT_TLS_PORT (ví dụ 8883) rồi chạy gis-ioc broker start",
            )
        if cafile is None and broker.tls_cert is None and broker.ca_file.exists():
            cafile = broker.ca_file
        return cls(
            host or ("localhost" if broker.tls_host in WILDCARDS else broker.tls_host), broker.tls_port, True, cafile
        )

    def context(self) -> ssl.SSLContext:
        """TLS 1.2 at least, the server's certificate and name checked."""
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass
class Published:
    messages: int = 0
    readings: int = 0
    acknowledged: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def pm25(at: datetime, seed: float, rng: random.Random) -> float:
    """PM2.5 (µg/m³) at ``at``: a daily cycle with morning and evening peaks, plus noise."""
    hour = at.astimezone(VIETNAM).hour + at.astimezone(VIETNAM).minute / 60
    cycle = 14 * math.exp(-(((hour - 7.5) / 2.0) ** 2)) + 18 * math.exp(-(((hour - 19.5) / 2.5) ** 2))
    afternoon = -8 * math.exp(-(((hour - 14.5) / 2.5) ** 2))
    base = 28 + 8 * math.sin(seed)
    return round(max(2.0, base + cycle + afternoon + rng.gauss(0, 3)), 1)


def readings_of(device: SimDevice, at: datetime, elapsed_h: float, rng: random.Random) -> list[tuple[str, float]]:
    if device.kind == "air_quality":
        p = pm25(at, device.seed, rng)
        return [("pm25", p), ("pm10", round(p * 1.6 + rng.gauss(0, 4), 1))]
    if device.kind == "water_level":
        rise = 0.04 * elapsed_h + 0.01 * math.sin(elapsed_h * 2 + device.seed)
        return [("water_level", round(device.level + rise + rng.gauss(0, 0.005), 3))]
    shower = rng.random() < 0.1
    return [("rain", round(rng.expovariate(1 / 3) if shower else 0.0, 1))]


def prepare(
    conn: psycopg.Connection[Any], broker: Broker, count: int, interval_s: int, kinds: tuple[str, ...] | None = None
) -> list[SimDevice]:
    """Pick ``count`` approved devices (demo first), register their datastreams, issue secrets and write
    the broker's files (a running broker reloads them)."""
    kinds = kinds or tuple(PROPERTIES)
    rows = conn.execute(
        "SELECT device_code, kind FROM layers.iot_devices WHERE approval = 'approved' AND kind = ANY(%s) "
        "ORDER BY is_demo DESC, device_code LIMIT %s",
        (list(kinds), count),
    ).fetchall()
    devices = []
    with conn.transaction():
        for i, (code, kind) in enumerate(rows):
            for prop in PROPERTIES[kind]:
                model.register(conn, code, prop, interval_s)
            secret = model.issue_credentials(conn, code)
            devices.append(SimDevice(code, kind, secret, seed=i * 0.7, level=2.5 + (i % 7) * 0.3))
    broker.sync(conn)
    time.sleep(0.5)  # the broker reloads its password file on SIGHUP
    return devices


def connect_all(endpoint: Endpoint, devices: list[SimDevice], published: Published) -> dict[str, mqtt.Client]:
    """One MQTT client per device (its own credentials), connected and looping; an error when none
    connects within 15 s."""
    clients: dict[str, mqtt.Client] = {}
    for device in devices:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{device.code}", clean_session=True, protocol=mqtt.MQTTv311
        )
        client.username_pw_set(device.code, device.secret)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 10)

        def acked(c: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            with published.lock:
                published.acknowledged += 1

        client.on_publish = acked
        if endpoint.tls:
            client.tls_set_context(endpoint.context())
        client.connect_async(endpoint.host, endpoint.port, keepalive=30)
        client.loop_start()
        clients[device.code] = client
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(c.is_connected() for c in clients.values()):
        time.sleep(0.05)
    if clients and not any(c.is_connected() for c in clients.values()):
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
        how = " (TLS)" if endpoint.tls else ""
        raise BrokerError(
            f"no simulated device could connect to the broker {endpoint.host}:{endpoint.port}{how} within 15 s; "
            "see the broker's log (gis-ioc broker status)",
            vi=f"không thiết bị mô phỏng nào kết nối được broker {endpoint.host}:{endpoint.port}{how} trong 15 "
            "giây; xem nhật ký của broker (gis-ioc broker status)",
        )
    return clients


def run(
    broker: Broker,
    devices: list[SimDevice],
    interval_s: float,
    duration_s: float | None,
    *,
    seed: int = 20250701,
    stop: threading.Event | None = None,
    report: Callable[[Published], None] | None = None,
    endpoint: Endpoint | None = None,
) -> Published:
    """Publish each device's readings every ``interval_s`` seconds (QoS 1) for ``duration_s`` (None:
    until ``stop``) to ``endpoint`` (default: the broker's plain listener). Each message is a SenML pack
    of one device's readings at one moment."""
    rng = random.Random(seed)  # noqa: S311 (simulated readings, not secrets)
    stop = stop or threading.Event()
    published = Published()
    clients = connect_all(endpoint or Endpoint.plain(broker), devices, published)
    units = {"pm25": "µg/m³", "pm10": "µg/m³", "water_level": "m", "rain": "mm"}
    started = time.monotonic()
    tick = 0
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            now = datetime.now(UTC)
            for device in devices:
                values = readings_of(device, now, elapsed / 3600, rng)
                payload = senml.dumps(device.code, [(p, v, now) for p, v in values], units)
                info = clients[device.code].publish(model.topic_of(device.code), payload, qos=1)
                with published.lock:
                    if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
                        published.messages += 1
                        published.readings += len(values)
                    else:
                        published.failed += 1
            tick += 1
            if report is not None:
                report(published)
            wait = started + tick * interval_s - time.monotonic()
            if wait > 0:
                stop.wait(wait)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and published.acknowledged < published.messages:
            time.sleep(0.05)
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
    return published
