"""What every benchmark needs: a throwaway PostGIS cluster with the schema and the boundaries loaded."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import connect, ensure_database
from gis_ioc.database.migrations import upgrade
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bench_database() -> tuple[Settings, Cluster, Catalog]:
    """A new cluster in a temporary folder, migrated, with the 104 communes loaded (no demo data yet)."""
    home = Path(tempfile.mkdtemp(prefix="gis-ioc-bench-"))
    home.chmod(0o755)  # the cluster's unprivileged user must reach it
    settings = Settings(home=home, db_port=free_port(), database_url=None, _env_file=None)  # type: ignore[call-arg]
    cluster = Cluster(home=home, port=settings.db_port)
    cluster.init()
    cluster.start()
    ensure_database(settings)
    catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
    with connect(settings, autocommit=True) as conn:
        upgrade(conn, catalog)
        load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
    return settings, cluster, catalog


def remove_bench_database(cluster: Cluster) -> None:
    cluster.destroy()
    shutil.rmtree(cluster.home, ignore_errors=True)


@contextmanager
def bench_database() -> Iterator[tuple[Settings, Cluster, Catalog]]:
    settings, cluster, catalog = start_bench_database()
    try:
        yield settings, cluster, catalog
    finally:
        remove_bench_database(cluster)
