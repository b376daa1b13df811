"""Real clients against a real server: GDAL's OAPIF driver, OWSLib, and a schemathesis run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from owslib.ogcapi.features import Features

from gis_ioc.catalog import Catalog
from gis_ioc.demo import DemoResult
from gis_ioc.publish.config import published_layers
from gis_ioc.settings import Settings
from tests.conftest import scalar, serve

BIN = Path(sys.executable).parent
KEY: dict[str, str] = {}  # the reader's API key, set by the server fixture


@pytest.fixture(scope="module")
def server(
    settings: Settings, loaded: DemoResult, tmp_path_factory: pytest.TempPathFactory, reader_key: str
) -> Iterator[tuple[str, Path]]:
    """`gis-ioc serve` on a free port; yields its address and its access log. The clients below send a
    leader's API key (as QGIS or GDAL would be configured to), except where they check anonymous access."""
    log = tmp_path_factory.mktemp("server") / "access.log"
    KEY["reader"] = reader_key
    with serve(settings, log) as base:
        yield base, log


def _gdal(*argv: str, anonymous: bool = False) -> str:
    env = {**os.environ, "CPL_DEBUG": "OFF"}
    if not anonymous:
        env["GDAL_HTTP_HEADERS"] = f"X-API-Key: {KEY['reader']}"
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gdal_lists_every_collection(server: tuple[str, Path], catalog: Catalog) -> None:
    base, _ = server
    listing = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{base}/ogc")
    for layer in published_layers(catalog):
        assert f": {layer.id} (title: {layer.title.vi})" in listing
    public = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{base}/ogc", anonymous=True)
    for layer in published_layers(catalog):
        assert (f": {layer.id} (title: {layer.title.vi})" in public) is (layer.access == "public"), layer.id


def test_gdal_reads_every_collection_whole(
    server: tuple[str, Path], catalog: Catalog, db: psycopg.Connection[Any]
) -> None:
    """Each collection, paged through to the end by GDAL, has as many features as its table."""
    base, _ = server
    for layer in published_layers(catalog):
        summary = _gdal(
            "ogrinfo", "-ro", "-so", "-al", "-oo", "PAGE_SIZE=1000", f"OAPIF:{base}/ogc/collections/{layer.id}"
        )
        expected = scalar(
            db,
            f"SELECT count(*) FROM layers.{layer.table} WHERE approval = 'approved'"
            + (" AND valid_to IS NULL" if layer.versioned else ""),
        )
        assert f"Feature Count: {expected}" in summary, layer.id
    communes = _gdal("ogrinfo", "-ro", "-so", "-al", f"OAPIF:{base}/ogc/collections/communes")
    assert "code: String" in communes and "area_km2: Real" in communes


def test_gdal_pushes_spatial_and_attribute_filters_to_the_server(
    server: tuple[str, Path], db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    base, log = server
    target = tmp_path / "schools.gpkg"
    _gdal(
        "ogr2ogr",
        "-f",
        "GPKG",
        str(target),
        f"OAPIF:{base}/ogc/collections/schools",
        "-spat",
        "106.0",
        "20.6",
        "106.1",
        "20.7",
        "-where",
        "level = 'primary'",
    )
    expected = scalar(
        db,
        "SELECT count(*) FROM layers.schools WHERE level = 'primary' AND "
        "ST_Intersects(geom, ST_MakeEnvelope(106, 20.6, 106.1, 20.7, 4326))",
    )
    assert f"Feature Count: {expected}" in _gdal("ogrinfo", "-so", "-al", str(target))
    requests = [line for line in log.read_text().splitlines() if "/collections/schools/items?" in line]
    assert any("bbox=106" in line and "level=primary" in line for line in requests), requests[-3:]


def test_owslib_reads_collections_queryables_filtered_items_and_vn2000(
    server: tuple[str, Path], db: psycopg.Connection[Any]
) -> None:
    base, _ = server
    api = Features(f"{base}/ogc", headers={"X-API-Key": KEY["reader"]})
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"communes", "land_parcels", "schools"} <= ids
    queryables = api.collection_queryables("land_parcels")
    assert "land_use" in queryables["properties"]
    items = api.collection_items(
        "land_parcels", filter="land_use = 'ODT' AND area_m2 > 3000", limit=1000, skipGeometry="true"
    )
    expected = scalar(db, "SELECT count(*) FROM layers.land_parcels WHERE land_use = 'ODT' AND area_m2 > 3000")
    assert items["numberReturned"] == min(expected, 1000) and expected > 0
    vn2000 = api.collection_items("schools", limit=1, crs="http://www.opengis.net/def/crs/EPSG/0/9209")
    easting, northing = vn2000["features"][0]["geometry"]["coordinates"]
    assert 500_000 < easting < 650_000 and 2_200_000 < northing < 2_350_000


def test_owslib_sends_datetime_and_a_bbox_with_heights_anywhere(
    server: tuple[str, Path], db: psycopg.Connection[Any]
) -> None:
    """datetime reaching the present selects every current feature (a layer's history, issue 17); a bbox
    with heights the 2D box it holds;
    a single feature links to its HTML page (issue 17: OGC API Features conformance)."""
    base, _ = server
    api = Features(f"{base}/ogc", headers={"X-API-Key": KEY["reader"]})
    every = api.collection_items("schools", limit=1000, skipGeometry="true")
    dated = api.collection_items("schools", limit=1000, skipGeometry="true", datetime_="2026-01-01/..")
    assert (
        dated["numberMatched"]
        == every["numberMatched"]
        == scalar(db, "SELECT count(*) FROM layers.schools WHERE approval = 'approved'")
        > 0
    )
    box = api.collection_items("schools", limit=1000, skipGeometry="true", bbox=[106.0, 20.6, -10, 106.1, 20.7, 100])
    expected = scalar(
        db,
        "SELECT count(*) FROM layers.schools WHERE approval = 'approved' AND "
        "ST_Intersects(geom, ST_MakeEnvelope(106, 20.6, 106.1, 20.7, 4326))",
    )
    assert box["numberReturned"] == expected > 0
    fid = box["features"][0]["id"]
    feature = api.collection_item("schools", str(fid))
    html = [link["href"] for link in feature["links"] if link["rel"] == "alternate" and link["type"] == "text/html"]
    assert html == [f"{base}/ogc/collections/schools/items/{fid}?f=html"]


def schemathesis(base: str, *options: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """schemathesis run over the OGC API's own definition, as the leader (two workers, two examples per
    operation); the answer and the last 25 lines of its report."""
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{base}/ogc/openapi?f=json",
            *options,
            "--max-examples",
            "2",
            "--workers",
            "2",
            "--no-color",
            "--request-timeout",  # a loaded CI machine: a slow answer is not a network error
            "60",
            "--header",
            f"X-API-Key: {KEY['reader']}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    tail = "\n".join(result.stdout.splitlines()[-25:])
    assert result.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail.split("Test cases:", 1)[-1]
    return result, tail


def test_schemathesis_finds_no_server_error(server: tuple[str, Path]) -> None:
    base, _ = server
    schemathesis(base, "--checks", "not_a_server_error", "--include-method", "GET")


def test_schemathesis_finds_the_feature_doors_answer_as_documented(server: tuple[str, Path]) -> None:
    """Items (GET and POST), single features (read, and the leader's refused edits: Part 4), their history
    and queryables of every collection: no server error, and every
    status code and media type answered is one the API definition declares (issue 17: a strict run)."""
    base, _ = server
    result, tail = schemathesis(
        base,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance",
        "--include-path-regex",
        "^/collections/[a-z_]+/(items|queryables)",
    )
    # 17 collections x (items GET and POST, feature GET, PUT, PATCH and DELETE, its history, queryables)
    assert "Tested: 136" in result.stdout, tail
