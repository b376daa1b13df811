"""The embedded PostgreSQL + PostGIS cluster that gis_ioc creates and runs itself.

It lives under ``GIS_IOC_HOME`` (``postgres/`` for the data, ``run/`` for the socket, ``log/``),
listens on 127.0.0.1 and on a unix socket, and is driven with ``initdb`` and ``pg_ctl`` (no systemd).
``initdb`` refuses to run as root, so when gis-ioc runs as root the cluster's processes run as an
unprivileged system user (``GIS_IOC_DB_SYSTEM_USER``), created on first use.

Authentication: the socket directory is private to the cluster's user (mode 0700), and local
connections through it are trusted; TCP connections on 127.0.0.1 need the password that ``init``
generates into ``GIS_IOC_HOME/secrets/db_password`` (mode 0600).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gis_ioc.errors import ClusterError

SUPERUSER = "gis_ioc"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with the terminating NUL


def find_bindir(explicit: Path | None = None) -> Path:
    """The newest PostgreSQL server ``bin`` folder that has PostGIS installed beside it."""
    if explicit is not None:
        if not (explicit / "pg_ctl").exists():
            raise ClusterError(f"GIS_IOC_PG_BINDIR={explicit} holds no pg_ctl")
        return explicit
    candidates = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if (bindir / "pg_ctl").exists() and re.fullmatch(r"\d+", version):
            has_postgis = any(Path(f"/usr/share/postgresql/{version}/extension").glob("postgis.control"))
            candidates.append((has_postgis, int(version), bindir))
    if not candidates:
        raise ClusterError(
            "No PostgreSQL server found under /usr/lib/postgresql. Install it with: "
            "apt-get install -y postgresql-15-postgis-3 (or run ./bootstrap.sh, which does)."
        )
    has_postgis, _, bindir = max(candidates)
    if not has_postgis:
        raise ClusterError(
            f"PostgreSQL in {bindir} has no PostGIS. Install it with: "
            f"apt-get install -y postgresql-{bindir.parent.name}-postgis-3"
        )
    return bindir


@dataclass
class Cluster:
    """A private PostgreSQL cluster under ``home``."""

    home: Path
    port: int
    system_user: str = "gisioc"
    bindir: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgresql.log"

    @property
    def password_file(self) -> Path:
        return self.home / "secrets" / "db_password"

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    # -- public operations -------------------------------------------------------------

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster. Returns False when it already existed (nothing is changed)."""
        if self.is_initialised():
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(
                f"{self.data_dir} exists and is not empty but holds no cluster; move it away or set GIS_IOC_HOME"
            )
        self._check_socket_path()
        for folder in (self.home, self.data_dir, self.socket_dir, self.log_file.parent, self.password_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.password_file.parent.chmod(0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.password_file.chmod(0o600)
        self._hand_over([self.data_dir, self.socket_dir, self.log_file.parent])
        self.data_dir.chmod(0o700)
        self.socket_dir.chmod(0o700)
        self._check_reachable()
        # initdb reads the password from a file the cluster's user can read; it is removed at once.
        pwfile = self.data_dir.parent / f".initdb-pw-{secrets.token_hex(4)}"
        try:
            pwfile.write_text(self.password_file.read_text().strip() + "\n")
            pwfile.chmod(0o600)
            self._hand_over([pwfile])
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        return True

    def init_standby(self, primary: Cluster) -> bool:
        """Make this cluster a streaming standby of ``primary`` (running, on this machine): ``pg_basebackup
        -R`` through the primary's private socket, as the cluster's user (local replication connections are
        trusted like the others). Start it with :meth:`start`; it follows the primary, read-only, until
        promoted. Returns False when this cluster already exists (nothing is changed)."""
        if self.is_initialised():
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(f"{self.data_dir} exists and is not empty but holds no cluster")
        if not primary.is_running():
            raise ClusterError(f"the primary in {primary.data_dir} is not running")
        self._check_socket_path()
        for folder in (self.home, self.data_dir, self.socket_dir, self.log_file.parent, self.password_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.password_file.parent.chmod(0o700)
        if primary.password_file.exists() and not self.password_file.exists():
            self.password_file.write_text(primary.password_file.read_text())  # the same superuser, copied
            self.password_file.chmod(0o600)
        self._hand_over([self.data_dir, self.socket_dir, self.log_file.parent])
        self.data_dir.chmod(0o700)
        self.socket_dir.chmod(0o700)
        self._check_reachable()
        self._run(
            [
                "pg_basebackup",
                "-D",
                str(self.data_dir),
                "-h",
                str(primary.socket_dir),
                "-p",
                str(primary.port),
                "-U",
                SUPERUSER,
                "-R",  # standby.signal and primary_conninfo: a streaming standby once started
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-password",
            ],
            what="pg_basebackup",
        )
        return True

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.data_dir)], what="pg_ctl status", check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the cluster. Returns False when it was already running."""
        if not self.is_initialised():
            raise ClusterError(f"No cluster in {self.data_dir}: run `gis-ioc db init` first")
        if self.is_running():
            return False
        self._check_socket_path()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over([self.socket_dir])
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories='{self.socket_dir}' -c unix_socket_permissions=0700"
        )
        result = self._run(
            ["pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "-o", options],
            what="pg_ctl start",
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"PostgreSQL did not start on port {self.port} ({result.stderr.strip() or result.stdout.strip()}). "
                f"Last lines of {self.log_file}:\n{self.log_tail()}\n"
                "If the port is taken, set GIS_IOC_DB_PORT."
            )
        return True

    def stop(self) -> bool:
        """Stop the cluster (fast shutdown). Returns False when it was not running."""
        if not self.is_running():
            return False
        self._run(["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"], what="pg_ctl stop")
        return True

    def status(self) -> dict[str, object]:
        running = self.is_running()
        pid = None
        pidfile = self.data_dir / "postmaster.pid"
        if running and pidfile.exists():
            pid = int(pidfile.read_text().splitlines()[0])
        return {
            "initialised": self.is_initialised(),
            "running": running,
            "pid": pid,
            "port": self.port,
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "log_file": str(self.log_file),
            "system_user": self._owner(),
        }

    def destroy(self) -> None:
        """Stop the cluster and remove its folders (used by the tests' throwaway clusters)."""
        if self.is_initialised():
            self.stop()
        for folder in (self.data_dir, self.socket_dir, self.log_file.parent, self.password_file.parent):
            shutil.rmtree(folder, ignore_errors=True)

    def conninfo(self, dbname: str) -> str:
        """libpq connection string through the private socket."""
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={SUPERUSER}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- helpers ------------------------------------------------------------------------

    def _owner(self) -> str:
        return self.system_user if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    def _check_socket_path(self) -> None:
        path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(path)) > _SOCKET_PATH_MAX:
            raise ClusterError(
                f"The socket path {path} is longer than {_SOCKET_PATH_MAX} bytes; set GIS_IOC_HOME to a shorter folder"
            )

    def _ensure_system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(self.system_user)
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                self.system_user,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"Could not create the system user {self.system_user}: {result.stderr.strip()}")
        return pwd.getpwnam(self.system_user)

    def _hand_over(self, paths: Sequence[Path]) -> None:
        """Give the paths to the cluster's user when running as root."""
        if not self.as_root:
            return
        user = self._ensure_system_user()
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _check_reachable(self) -> None:
        """The cluster's user must be able to reach the data folder through every parent."""
        if not self.as_root:
            return
        result = self._run(["test", "-w", str(self.data_dir)], what="access check", check=False, tool=False)
        if result.returncode != 0:
            raise ClusterError(
                f"The system user {self.system_user} cannot reach {self.data_dir} (a parent folder is private). "
                "Set GIS_IOC_HOME to a folder it can reach, for example /var/lib/gis_ioc."
            )

    def _run(
        self, argv: list[str], *, what: str, check: bool = True, tool: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if tool:
            bindir = self.bindir or find_bindir()
            argv = [str(bindir / argv[0]), *argv[1:]]
        kwargs: dict[str, object] = {}
        if self.as_root:
            user = self._ensure_system_user()
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                env=env,
                cwd="/",
                **kwargs,  # type: ignore[call-overload]
            )
        except OSError as exc:
            raise ClusterError(f"{what} could not run: {exc}") from exc
        if check and result.returncode != 0:
            raise ClusterError(f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result  # type: ignore[no-any-return]
