"""One cluster of its own for the operations tests, which stop and restart PostGIS."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from gis_ioc.catalog import load_catalog
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import cluster_for, connect, ensure_database
from gis_ioc.database.migrations import upgrade
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.settings import Settings
from tests.conftest import free_port, temp_home


@pytest.fixture(scope="package")
def own() -> Iterator[tuple[Settings, Cluster]]:
    home = temp_home("gis-ioc-outage-")
    settings = Settings(home=home, db_port=free_port(), database_url=None, _env_file=None)  # type: ignore[call-arg]
    cluster = cluster_for(settings)
    cluster.init()
    cluster.start()
    ensure_database(settings)
    catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
    with connect(settings, autocommit=True) as conn:
        upgrade(conn, catalog)
        load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
    yield settings, cluster
    cluster.destroy()
    shutil.rmtree(home, ignore_errors=True)
