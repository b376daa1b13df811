from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings


@pytest.fixture(scope="package")
def client(settings: Settings, loaded: DemoResult, reader_key: str) -> Iterator[TestClient]:
    """The application, asked by a leader (who reads internal layers and may export)."""
    with TestClient(create_app(settings), headers={"X-API-Key": reader_key}) as c:
        yield c
