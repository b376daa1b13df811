"""One cluster of its own for the operations tests, which stop and restart PostGIS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gis_ioc.catalog import load_catalog
from gis_ioc.database.cluster import Cluster
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.loaders.boundaries import BoundarySet, load_boundaries
from gis_ioc.settings import Settings
from tests.conftest import fresh_cluster


@pytest.fixture(scope="package")
def own() -> Iterator[tuple[Settings, Cluster]]:
    with fresh_cluster("gis-ioc-outage-") as (settings, cluster):
        catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
        with connect(settings, autocommit=True) as conn:
            upgrade(conn, catalog)
            load_boundaries(conn, BoundarySet.hung_yen_2025(settings.boundaries_dir))
        yield settings, cluster
