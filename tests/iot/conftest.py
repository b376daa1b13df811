"""Fixtures of the sensor tests: a broker of their own (Debian's mosquitto, a free port, a temporary
folder), a PostGIS cluster of their own for the tests that stop and restart it, and the ingester run
as users run it (``gis-ioc ingest``, a separate process that a test may kill)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.api import iot_live
from gis_ioc.app import create_app
from gis_ioc.catalog import load_catalog
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.demo import DemoResult
from gis_ioc.iot import model
from gis_ioc.iot.broker import Broker
from gis_ioc.settings import Settings
from tests.conftest import free_port, fresh_cluster, temp_home

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SUBSCRIBED = "Đã đăng ký nhận chủ đề"


def pack(readings: list[tuple[str, float, datetime]], unit: str | None = None) -> bytes:
    """A SenML pack of (property, value, time) readings, absolute times."""
    out: list[dict[str, Any]] = [{"n": p, "v": v, "t": t.timestamp()} for p, v, t in readings]
    if unit:
        out[0]["bu"] = unit
    return json.dumps(out).encode()


@dataclass
class Sensors:
    """A cluster with the schema and a few approved devices, and a broker that knows them."""

    settings: Settings
    cluster: Cluster
    broker: Broker
    devices: dict[str, str]  # device code → secret

    def conn(self) -> psycopg.Connection[Any]:
        return connect(self.settings, autocommit=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
        env.update(
            {
                "GIS_IOC_HOME": str(self.settings.home),
                "GIS_IOC_DB_PORT": str(self.settings.db_port),
                "GIS_IOC_DB_NAME": self.settings.db_name,
                "GIS_IOC_MQTT_PORT": str(self.broker.port),
                "GIS_IOC_MQTT_HOME": str(self.broker.home),
                "GIS_IOC_INGEST_RETRY_MAX_SECONDS": "2",
                "GIS_IOC_LOG_LEVEL": "info",
                **{f"GIS_IOC_{k.upper()}": v for k, v in extra.items()},
            }
        )
        return env

    @contextmanager
    def ingester(self, log_name: str, **extra: str) -> Iterator[Ingest]:
        ARTIFACTS.mkdir(exist_ok=True)
        log = ARTIFACTS / f"iot-{log_name}.log"
        ingest = Ingest(self, log, extra)
        ingest.start()
        try:
            yield ingest
        finally:
            ingest.stop()

    def publisher(self, device: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{device}", protocol=mqtt.MQTTv311)
        client.username_pw_set(device, self.devices[device])
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 2)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        return client

    def count(self, query: str = "SELECT count(*) FROM gis_ioc.iot_observations", params: Any = None) -> int:
        with self.conn() as conn:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return int(row[0])

    def wait_for(self, check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.1)


class Ingest:
    """``gis-ioc ingest`` in a process of its own."""

    def __init__(self, sensors: Sensors, log: Path, extra: dict[str, str]) -> None:
        self.sensors, self.log, self.extra = sensors, log, extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        """Start it; with ``wait``, until it has subscribed (its log says so)."""
        seen = self.log.read_text().count(SUBSCRIBED) if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "gis-ioc"), "ingest"],
                env=self.sensors.env(**self.extra),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while wait and self.log.read_text().count(SUBSCRIBED) <= seen:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the ingester did not subscribe within 60 s"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed, nothing acknowledged that was not committed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _device_row(conn: psycopg.Connection[Any], code: str, kind: str) -> None:
    conn.execute(
        "INSERT INTO layers.iot_devices (device_code, commune_code, kind, status, geom) "
        "VALUES (%s, '11953', %s, 'online', ST_SetSRID(ST_MakePoint(106.05, 20.65), 4326))",
        (code, kind),
    )


@pytest.fixture(scope="package")
def sensors() -> Iterator[Sensors]:
    """A cluster of the sensor tests' own (they stop and restart PostGIS) and a broker on a free port."""
    with fresh_cluster("gis-ioc-iot-") as (settings, cluster):
        catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
        mqtt_home = temp_home("gis-ioc-mqtt-")
        settings = settings.model_copy(update={"mqtt_port": free_port(), "mqtt_home": mqtt_home / "broker"})
        devices: dict[str, str] = {}
        with connect(settings, autocommit=True) as conn:
            upgrade(conn, catalog)
            for code, kind in (
                ("HY-AQ-T01", "air_quality"),
                ("HY-AQ-T02", "air_quality"),
                ("HY-WL-T01", "water_level"),
            ):
                _device_row(conn, code, kind)
                for prop in ("pm25", "pm10") if kind == "air_quality" else ("water_level",):
                    model.register(conn, code, prop, 60)
                devices[code] = model.issue_credentials(conn, code)
            broker = Broker.of(settings)
            broker.start(model.credential_hashes(conn))
        try:
            yield Sensors(settings, cluster, broker, devices)
        finally:
            broker.stop()
            ARTIFACTS.mkdir(exist_ok=True)
            if broker.log_file.exists():
                shutil.copy(broker.log_file, ARTIFACTS / "iot-mosquitto.log")
            shutil.rmtree(mqtt_home, ignore_errors=True)


@pytest.fixture
def clean(sensors: Sensors) -> Sensors:
    """The sensor tables emptied (not the datastreams and credentials) before a test."""
    with sensors.conn() as conn:
        conn.execute(
            "TRUNCATE gis_ioc.iot_observations, gis_ioc.iot_latest, gis_ioc.iot_hourly, gis_ioc.iot_daily, "
            "gis_ioc.iot_dead_letters"
        )
    return sensors


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def app(settings: Settings, loaded: DemoResult) -> Any:
    """The application with the live sensors' routes, on the suite's shared database (demo data)."""
    application = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/iot/stations" for r in application.routes):
        application.include_router(iot_live.router)
    return application
