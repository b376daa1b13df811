"""The embedded cluster: made by initdb, run by pg_ctl as an unprivileged user, private socket, TCP with password."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

import psycopg
import pytest

from gis_ioc.database.cluster import SUPERUSER, Cluster
from gis_ioc.database.connection import connect, conninfo
from gis_ioc.errors import ClusterError
from gis_ioc.settings import Settings
from tests.conftest import free_port, scalar, temp_home


def test_suite_cluster_is_running_with_postgis(settings: Settings, cluster: Cluster, db: psycopg.Connection) -> None:
    status = cluster.status()
    assert status["running"] and status["port"] == settings.db_port
    for conn in (db,):
        assert scalar(conn, "SELECT postgis_lib_version()").startswith("3.")
        assert scalar(conn, "SHOW listen_addresses") == "127.0.0.1"
        assert scalar(conn, "SHOW unix_socket_directories") == str(cluster.socket_dir)


def test_server_runs_as_unprivileged_user_when_root(cluster: Cluster) -> None:
    pid = cluster.status()["pid"]
    owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
    if os.geteuid() == 0:
        assert owner == cluster.system_user
    else:
        assert owner == pwd.getpwuid(os.geteuid()).pw_name
    assert owner != "root"


def test_socket_dir_and_secrets_are_private(cluster: Cluster) -> None:
    assert stat.S_IMODE(cluster.socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cluster.password_file.stat().st_mode) == 0o600


def test_tcp_needs_the_generated_password(settings: Settings, cluster: Cluster) -> None:
    password = cluster.password_file.read_text().strip()
    base = f"host=127.0.0.1 port={settings.db_port} dbname={settings.db_name} user={SUPERUSER}"
    with psycopg.connect(f"{base} password={password}") as conn:
        assert scalar(conn, "SELECT 1") == 1
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"{base} password=wrong")


def test_database_url_uses_that_postgis_instead(settings: Settings, cluster: Cluster) -> None:
    password = cluster.password_file.read_text().strip()
    url = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{settings.db_port}/{settings.db_name}"
    external = Settings(home=Path("/nonexistent"), database_url=url, _env_file=None)  # type: ignore[call-arg]
    assert not external.embedded
    assert "127.0.0.1" in conninfo(external)
    with connect(external) as conn:
        assert scalar(conn, "SELECT current_database()") == settings.db_name


def test_lifecycle_init_start_stop_status_is_idempotent() -> None:
    home = temp_home("gis-ioc-lifecycle-")
    cluster = Cluster(home=home, port=free_port())
    try:
        assert cluster.status()["initialised"] is False
        with pytest.raises(ClusterError, match="gis-ioc db init"):
            cluster.start()
        assert cluster.init() is True
        assert cluster.init() is False  # second time: nothing changes
        assert cluster.start() is True
        assert cluster.start() is False
        assert cluster.is_running()
        assert cluster.stop() is True
        assert cluster.stop() is False
        assert cluster.status()["running"] is False
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def test_port_in_use_gives_a_clear_error(settings: Settings) -> None:
    home = temp_home("gis-ioc-port-")
    cluster = Cluster(home=home, port=settings.db_port)  # the suite's cluster holds this port
    try:
        cluster.init()
        with pytest.raises(ClusterError, match="GIS_IOC_DB_PORT"):
            cluster.start()
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def test_socket_path_too_long_is_refused() -> None:
    cluster = Cluster(home=Path("/tmp") / ("x" * 120), port=5432)
    with pytest.raises(ClusterError, match="GIS_IOC_HOME"):
        cluster.init()
