"""gis-ioc's own MQTT broker: Debian's mosquitto with its configuration, password and ACL files and
persistence under ``GIS_IOC_MQTT_HOME`` (default ``GIS_IOC_HOME/mosquitto``), started, stopped and checked
like the embedded PostGIS (no systemd).

- Only known accounts connect (``allow_anonymous false``): each device with a secret (``gis-ioc iot
  credentials``), which may only publish to its own topic ``hy/iot/<device_code>``, and the ingester
  (``_gis_ioc_ingester``, its secret generated into ``GIS_IOC_HOME/secrets/mqtt_ingester``), which may only
  read ``hy/iot/#``. Both files are written from the database by :meth:`Broker.sync`; a running broker
  reloads them on SIGHUP.
- Persistence is on, sessions never expire, and the queue kept for a disconnected persistent session is
  ``GIS_IOC_MQTT_MAX_QUEUED_MESSAGES`` long, so that readings wait for the ingester instead of being dropped.
- When gis-ioc runs as root, mosquitto drops to Debian's ``mosquitto`` user, which owns the folder.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from gis_ioc.errors import GisIocError
from gis_ioc.iot.model import TOPIC_PREFIX, credential_hashes, hash_secret
from gis_ioc.settings import Settings

INGESTER = "_gis_ioc_ingester"
SYSTEM_USER = "mosquitto"


class BrokerError(GisIocError):
    title = "MQTT broker"


@dataclass(frozen=True)
class Broker:
    """The broker of one gis-ioc installation (or of a test, in its own folder and port)."""

    home: Path
    host: str
    port: int
    program: Path
    secrets_dir: Path
    max_queued: int = 1_000_000
    max_inflight: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> Broker:
        return cls(
            home=settings.mqtt_home or settings.home / "mosquitto",
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            program=settings.mosquitto,
            secrets_dir=settings.home / "secrets",
            max_queued=settings.mqtt_max_queued_messages,
            max_inflight=max(1000, 2 * settings.ingest_batch_size),
        )

    # -- files --------------------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.home / "mosquitto.conf"

    @property
    def password_file(self) -> Path:
        return self.home / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.home / "acl"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "mosquitto.pid"

    @property
    def ingester_secret_file(self) -> Path:
        return self.secrets_dir / "mqtt_ingester"

    def ingester_secret(self) -> str:
        """The ingester's MQTT secret, generated on first use (mode 0600)."""
        path = self.ingester_secret_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
        return path.read_text().strip()

    def _config(self) -> str:
        as_root = os.geteuid() == 0
        lines = [
            "# Written by gis-ioc (gis_ioc/iot/broker.py); changes are overwritten at `gis-ioc broker start`.",
            f"pid_file {self.pid_file}",
            f"user {SYSTEM_USER if as_root else pwd.getpwuid(os.geteuid()).pw_name}",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 2",
            f"max_inflight_messages {self.max_inflight}",
            f"max_queued_messages {self.max_queued}",
            "max_queued_bytes 0",
            "max_packet_size 1048576",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"listener {self.port} {self.host}",
        ]
        return "\n".join(lines) + "\n"

    def write_files(self, devices: list[tuple[str, str]]) -> None:
        """Configuration, password and ACL files for these (device code, secret hash) and the ingester."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ingester = hash_secret(self.ingester_secret())
        passwd = [f"{INGESTER}:{ingester}", *(f"{code}:{digest}" for code, digest in devices)]
        acl = [f"user {INGESTER}", f"topic read {TOPIC_PREFIX}/#", ""]
        for code, _ in devices:
            acl += [f"user {code}", f"topic write {TOPIC_PREFIX}/{code}", ""]
        self._write(self.password_file, "\n".join(passwd) + "\n", 0o600)
        self._write(self.acl_file, "\n".join(acl), 0o600)
        self._write(self.config_file, self._config(), 0o644)
        self._hand_over()

    def _write(self, path: Path, text: str, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        tmp.replace(path)

    def _hand_over(self) -> None:
        """When root: the broker's folder and files belong to the mosquitto user it drops to."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError as exc:
            raise BrokerError(
                f"no system user {SYSTEM_USER}: install Debian's mosquitto (apt-get install mosquitto)",
                vi=f"không có người dùng hệ thống {SYSTEM_USER}: cài mosquitto của Debian (apt-get install mosquitto)",
            ) from exc
        for path in [self.home, self.data_dir, *self.data_dir.iterdir(), *self.home.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)

    def sync(self, conn: psycopg.Connection[Any]) -> int:
        """Write the files from the database's credentials; a running broker reloads them. Returns the
        number of device accounts."""
        devices = credential_hashes(conn)
        self.write_files(devices)
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
        return len(devices)

    # -- process ------------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The running broker's process id, or None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"mosquitto" in cmdline and str(self.config_file).encode() in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def accepts(self) -> bool:
        """True when the listener accepts TCP connections."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, devices: list[tuple[str, str]] | None = None, timeout: float = 15.0) -> bool:
        """Start the broker (files written first when ``devices`` are given, or missing). Returns False when
        it was already running."""
        if self.is_running():
            return False
        if not self.program.exists():
            raise BrokerError(
                f"{self.program} is missing: install Debian's mosquitto (apt-get install mosquitto) or set "
                "GIS_IOC_MOSQUITTO",
                vi=f"không có {self.program}: cài mosquitto của Debian (apt-get install mosquitto) hoặc đặt "
                "GIS_IOC_MOSQUITTO",
            )
        if devices is not None or not self.password_file.exists():
            self.write_files(devices or [])
        else:
            self._write(self.config_file, self._config(), 0o644)
            self._hand_over()
        if self.accepts():
            raise BrokerError(
                f"port {self.host}:{self.port} is taken by another program; set GIS_IOC_MQTT_PORT",
                vi=f"cổng {self.host}:{self.port} đang bị chương trình khác dùng; đặt GIS_IOC_MQTT_PORT",
            )
        self.pid_file.unlink(missing_ok=True)
        result = subprocess.run(
            [str(self.program), "-c", str(self.config_file), "-d"], capture_output=True, text=True, check=False
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result.returncode == 0 and self.is_running() and self.accepts():
                return True
            time.sleep(0.05)
        raise BrokerError(
            f"mosquitto did not start on {self.host}:{self.port} ({result.stderr.strip()}). "
            f"Last lines of {self.log_file}:\n{self.log_tail()}",
            vi=f"mosquitto không khởi động được trên {self.host}:{self.port} ({result.stderr.strip()}). "
            f"Các dòng cuối của {self.log_file}:\n{self.log_tail()}",
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM: it saves its persistence file first). Returns False when not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self.pid_file.unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        raise BrokerError(
            f"mosquitto (pid {pid}) did not stop within {timeout:.0f} s",
            vi=f"mosquitto (pid {pid}) không dừng trong {timeout:.0f} giây",
        )

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None,
            "accepting": pid is not None and self.accepts(),
            "pid": pid,
            "host": self.host,
            "port": self.port,
            "home": str(self.home),
            "config_file": str(self.config_file),
            "log_file": str(self.log_file),
            "devices": max(0, _lines(self.password_file) - 1),
        }

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0
