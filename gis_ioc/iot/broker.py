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
- The plain listener (``GIS_IOC_MQTT_HOST``:``GIS_IOC_MQTT_PORT``) is for the ingester and the simulator on
  this machine: on any address but loopback device passwords would cross the network in clear, so
  :meth:`Broker.start` refuses it unless ``GIS_IOC_MQTT_ALLOW_PLAIN`` says otherwise. Field devices connect
  to the TLS listener (``GIS_IOC_MQTT_TLS_PORT``, TLS 1.2 at least) with the operator's certificate
  (``GIS_IOC_MQTT_TLS_CERT``/``_KEY``) or, for trials, one made here: a small certificate authority and a
  server certificate for this machine's names under ``GIS_IOC_MQTT_HOME/tls``, made with the
  ``cryptography`` package (already a dependency; in process, no ``openssl`` command to parse). The broker
  reads copies of the certificate and key kept mode 0600 like the password file; a renewed certificate is
  taken at the next ``gis-ioc broker start`` (a running broker reloads it on SIGHUP).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gis_ioc.errors import GisIocError
from gis_ioc.iot.model import TOPIC_PREFIX, credential_hashes, hash_secret
from gis_ioc.settings import Settings

INGESTER = "_gis_ioc_ingester"
SYSTEM_USER = "mosquitto"
#: A trial certificate is made again when it has fewer days left than this.
RENEW_DAYS = 30
WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (the addresses meaning "every interface")


class BrokerError(GisIocError):
    title = "MQTT broker"


@dataclass(frozen=True)
class Certificate:
    """The TLS listener's certificate as devices see it."""

    path: Path
    sha256: str  # fingerprint of the DER form, AA:BB:…, what a device pins
    not_after: datetime
    subject: str
    names: tuple[str, ...]  # subject alternative names
    trial: bool  # made by gis-ioc (self-signed authority under GIS_IOC_MQTT_HOME/tls)


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
    tls_port: int = 0
    tls_host: str = "0.0.0.0"  # noqa: S104 (devices reach the TLS listener from the network)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain: bool = False

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
            tls_port=settings.mqtt_tls_port,
            tls_host=settings.mqtt_tls_host,
            tls_cert=settings.mqtt_tls_cert,
            tls_key=settings.mqtt_tls_key,
            allow_plain=settings.mqtt_allow_plain,
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
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def tls_cert_file(self) -> Path:
        """The certificate (chain) the TLS listener presents: a copy of GIS_IOC_MQTT_TLS_CERT or a trial one."""
        return self.tls_dir / "server.crt"

    @property
    def tls_key_file(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def ca_file(self) -> Path:
        """The trial certificate authority's certificate: what devices trust (``cafile``) during trials."""
        return self.tls_dir / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        return self.tls_dir / "ca.key"

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
        if self.tls_port:
            lines += [
                f"listener {self.tls_port} {self.tls_host}",
                f"certfile {self.tls_cert_file}",
                f"keyfile {self.tls_key_file}",
                "tls_version tlsv1.2",
            ]
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        self.install_tls()
        self._write(self.config_file, self._config(), 0o644)

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
        self._write_config()
        self._hand_over()

    def _write(self, path: Path, text: str | bytes, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode() if isinstance(text, str) else text)
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
        tls = [self.tls_dir, *self.tls_dir.iterdir()] if self.tls_dir.is_dir() else []
        for path in [self.home, self.data_dir, *self.data_dir.iterdir(), *self.home.iterdir(), *tls]:
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

    # -- TLS and exposure ---------------------------------------------------------------------------

    def install_tls(self) -> Certificate | None:
        """The TLS listener's certificate and key in place (mode 0600): copies of the operator's files,
        checked, or a trial certificate made (again when it nears its end). None when TLS is off."""
        if not self.tls_port:
            return None
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self.tls_dir.chmod(0o700)
        if self.tls_cert is None and self.tls_key is None:
            self._install_trial()
        elif self.tls_cert is None or self.tls_key is None:
            missing = "GIS_IOC_MQTT_TLS_CERT" if self.tls_cert is None else "GIS_IOC_MQTT_TLS_KEY"
            raise BrokerError(
                f"{missing} is not set: GIS_IOC_MQTT_TLS_CERT and GIS_IOC_MQTT_TLS_KEY go together (set both, "
                "or neither for a trial certificate)",
                vi=f"chưa đặt {missing}: GIS_IOC_MQTT_TLS_CERT và GIS_IOC_MQTT_TLS_KEY đi cùng nhau (đặt cả hai, "
                "hoặc không đặt cả hai để dùng chứng chỉ thử nghiệm)",
            )
        else:
            self._install_operator(self.tls_cert, self.tls_key)
        return self.certificate()

    def _install_operator(self, cert_path: Path, key_path: Path) -> None:
        cert_pem = _read_pem(cert_path, "GIS_IOC_MQTT_TLS_CERT")
        key_pem = _read_pem(key_path, "GIS_IOC_MQTT_TLS_KEY")
        try:
            leaf = x509.load_pem_x509_certificates(cert_pem)[0]
        except ValueError as exc:
            raise BrokerError(
                f"{cert_path} (GIS_IOC_MQTT_TLS_CERT) holds no PEM certificate",
                vi=f"{cert_path} (GIS_IOC_MQTT_TLS_CERT) không chứa chứng chỉ PEM nào",
            ) from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (TypeError, ValueError) as exc:
            raise BrokerError(
                f"{key_path} (GIS_IOC_MQTT_TLS_KEY) is not an unencrypted PEM private key",
                vi=f"{key_path} (GIS_IOC_MQTT_TLS_KEY) không phải khóa riêng PEM không mã hóa",
            ) from exc
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*raw) != leaf.public_key().public_bytes(*raw):
            raise BrokerError(
                f"the key {key_path} (GIS_IOC_MQTT_TLS_KEY) does not belong to the certificate {cert_path} "
                "(GIS_IOC_MQTT_TLS_CERT)",
                vi=f"khóa {key_path} (GIS_IOC_MQTT_TLS_KEY) không thuộc chứng chỉ {cert_path} (GIS_IOC_MQTT_TLS_CERT)",
            )
        if leaf.not_valid_after_utc <= datetime.now(UTC):
            day = leaf.not_valid_after_utc.strftime("%d/%m/%Y")
            raise BrokerError(
                f"the certificate {cert_path} (GIS_IOC_MQTT_TLS_CERT) expired on {day}",
                vi=f"chứng chỉ {cert_path} (GIS_IOC_MQTT_TLS_CERT) đã hết hạn ngày {day}",
            )
        self._write(self.tls_cert_file, cert_pem, 0o600)
        self._write(self.tls_key_file, key_pem, 0o600)
        self.ca_file.unlink(missing_ok=True)  # devices trust the operator's authority, not a trial one
        self.ca_key_file.unlink(missing_ok=True)

    def _install_trial(self) -> None:
        """A certificate authority (10 years) and a server certificate (1 year) for this machine's names;
        kept while valid for more than RENEW_DAYS and naming them all (devices keep trusting ca.crt)."""
        names = self._names()
        now = datetime.now(UTC)
        current = self.certificate()
        if (
            current is not None
            and current.trial
            and current.not_after > now + timedelta(days=RENEW_DAYS)
            and set(names) <= set(current.names)
            and self.tls_key_file.exists()
        ):
            return
        ca_cert, ca_key = self._trial_authority(now)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self._write(self.tls_key_file, _pem_key(key), 0o600)
        self._write(self.tls_cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o600)
        notice = (
            f"Đã tạo chứng chỉ TLS tự ký cho {', '.join(names)} ({self.tls_cert_file}; thiết bị tin "
            f"{self.ca_file}): CHỈ ĐỂ THỬ NGHIỆM; khi vận hành đặt GIS_IOC_MQTT_TLS_CERT và GIS_IOC_MQTT_TLS_KEY"
        )
        self._note(notice)

    def _trial_authority(self, now: datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """The trial authority of this folder, made when missing or near its end."""
        try:
            ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            ca_key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), password=None)
            if isinstance(ca_key, rsa.RSAPrivateKey) and ca_cert.not_valid_after_utc > now + timedelta(days=400):
                return ca_cert, ca_key
        except (OSError, ValueError, TypeError):
            pass
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gis_ioc"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"gis-ioc MQTT trial CA ({socket.gethostname()})"),
            ]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self._write(self.ca_key_file, _pem_key(ca_key), 0o600)
        self._write(self.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return ca_cert, ca_key

    def _names(self) -> list[str]:
        """The names a trial certificate carries: this machine's, loopback's, and the TLS address."""
        names = [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1", *_own_addresses()]
        if self.tls_host not in WILDCARDS:
            names.append(self.tls_host)
        return list(dict.fromkeys(n for n in names if n))

    def certificate(self) -> Certificate | None:
        """The certificate in place for the TLS listener, or None."""
        try:
            cert = x509.load_pem_x509_certificates(self.tls_cert_file.read_bytes())[0]
        except (OSError, ValueError):
            return None
        try:
            alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = tuple(str(n.value) for n in alt)
        except x509.ExtensionNotFound:
            names = ()
        trial = False
        with contextlib.suppress(OSError, ValueError):
            trial = cert.issuer == x509.load_pem_x509_certificate(self.ca_file.read_bytes()).subject
        return Certificate(
            path=self.tls_cert_file,
            sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
            not_after=cert.not_valid_after_utc,
            subject=cert.subject.rfc4514_string(),
            names=names,
            trial=trial,
        )

    def plain_exposed(self) -> bool:
        """True when the plain listener listens on an address other than loopback."""
        return not _loopback(self.host)

    def check_exposure(self) -> None:
        """Refuse a plain listener open to the network, unless GIS_IOC_MQTT_ALLOW_PLAIN allows it."""
        if not self.plain_exposed() or self.allow_plain:
            return
        tls_en = (
            f"devices connect over TLS on port {self.tls_port}"
            if self.tls_port
            else "set GIS_IOC_MQTT_TLS_PORT=8883 for devices"
        )
        tls_vi = (
            f"thiết bị kết nối qua TLS ở cổng {self.tls_port}"
            if self.tls_port
            else "đặt GIS_IOC_MQTT_TLS_PORT=8883 cho thiết bị"
        )
        raise BrokerError(
            f"the plain (unencrypted) MQTT listener GIS_IOC_MQTT_HOST={self.host} is not a loopback address: "
            f"device passwords would cross the network in clear. Keep GIS_IOC_MQTT_HOST=127.0.0.1 and {tls_en}; "
            "or, accepting the risk, set GIS_IOC_MQTT_ALLOW_PLAIN=true",
            vi=f"cổng MQTT thường (không mã hóa) GIS_IOC_MQTT_HOST={self.host} không phải địa chỉ loopback: mật "
            f"khẩu thiết bị sẽ đi qua mạng ở dạng rõ. Giữ GIS_IOC_MQTT_HOST=127.0.0.1 và {tls_vi}; hoặc, nếu "
            "chấp nhận rủi ro, đặt GIS_IOC_MQTT_ALLOW_PLAIN=true",
        )

    def warnings(self) -> list[str]:
        """What an operator should know about the broker's exposure and certificate (Vietnamese)."""
        out = []
        if self.plain_exposed() and self.allow_plain:
            out.append(
                f"Cổng MQTT thường {self.host}:{self.port} mở ra mạng (GIS_IOC_MQTT_ALLOW_PLAIN=true): mật khẩu "
                "thiết bị đi qua mạng ở dạng rõ, không đạt yêu cầu an toàn thông tin cấp độ 3"
            )
        cert = self.certificate() if self.tls_port else None
        if cert is not None and cert.trial:
            out.append(
                f"Chứng chỉ TLS tự ký {cert.path}: chỉ để thử nghiệm; khi vận hành đặt GIS_IOC_MQTT_TLS_CERT "
                "và GIS_IOC_MQTT_TLS_KEY"
            )
        if cert is not None and cert.not_after <= datetime.now(UTC) + timedelta(days=RENEW_DAYS):
            out.append(f"Chứng chỉ TLS {cert.path} hết hạn ngày {cert.not_after.strftime('%d/%m/%Y')}")
        return out

    def _note(self, text: str) -> None:
        """A line of gis-ioc's own in the broker's log, beside mosquitto's."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as out:
            out.write(f"{datetime.now().strftime('%Y-%m-%dT%H:%M:%S')}: gis-ioc: {text}\n")

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
        """True when the plain listener accepts TCP connections."""
        return _accepts(self.host, self.port)

    def tls_accepts(self) -> bool:
        """True when the TLS listener accepts TCP connections (False when there is none)."""
        return bool(self.tls_port) and _accepts(self.tls_host, self.tls_port)

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
        self.check_exposure()
        if devices is not None or not self.password_file.exists():
            self.write_files(devices or [])
        else:
            self._write_config()
            self._hand_over()
        for warning in self.warnings():
            self._note(warning)
        for host, port, setting, taken in (
            (self.host, self.port, "GIS_IOC_MQTT_PORT", self.accepts()),
            (self.tls_host, self.tls_port, "GIS_IOC_MQTT_TLS_PORT", self.tls_accepts()),
        ):
            if taken:
                raise BrokerError(
                    f"port {host}:{port} is taken by another program; set {setting}",
                    vi=f"cổng {host}:{port} đang bị chương trình khác dùng; đặt {setting}",
                )
        self.pid_file.unlink(missing_ok=True)
        result = subprocess.run(
            [str(self.program), "-c", str(self.config_file), "-d"], capture_output=True, text=True, check=False
        )
        deadline = time.monotonic() + timeout
        while result.returncode == 0 and time.monotonic() < deadline:
            if self.is_running() and self.accepts() and (self.tls_accepts() or not self.tls_port):
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
        cert = self.certificate() if self.tls_port else None
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
            "plain_exposed": self.plain_exposed(),
            "tls_port": self.tls_port or None,
            "tls_host": self.tls_host if self.tls_port else None,
            "tls_accepting": pid is not None and self.tls_accepts(),
            "tls_certificate": str(cert.path) if cert else None,
            "tls_sha256": cert.sha256 if cert else None,
            "tls_expires": cert.not_after.isoformat() if cert else None,
            "tls_names": list(cert.names) if cert else None,
            "tls_trial": cert.trial if cert else None,
            "tls_ca_file": str(self.ca_file) if cert and cert.trial else None,
            "warnings": self.warnings(),
        }

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _accepts(host: str, port: int) -> bool:
    """True when ``host:port`` accepts TCP connections (a wildcard address: tried on loopback)."""
    if host in WILDCARDS:
        host = "::1" if host == "::" else "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _own_addresses() -> list[str]:
    """This machine's addresses on the network, as devices reach it: those of its host name, and the
    one it sends from by default (a UDP socket's local address; nothing is sent)."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        found += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): only the route is looked up
        found.append(str(probe.getsockname()[0]))
    return [a for a in dict.fromkeys(found) if not ipaddress.ip_address(a).is_loopback]


def _loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) means this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in found)


def _read_pem(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BrokerError(
            f"cannot read {path} ({setting}): {reason}",
            vi=f"không đọc được {path} ({setting}): {reason}",
        ) from exc


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    """A server's key usage (``signing``: TLS handshakes) or an authority's (certificates only)."""
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=signing,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0
