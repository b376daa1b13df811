"""QGIS desktop, the GIS officers' own tool, against a running `gis-ioc serve` (issue 18).

Debian's QGIS (python3-qgis, installed by bootstrap.sh) is driven offscreen by tests/qgis/pyqgis_driver.py,
run by the system's Python (QGIS's bindings are built for it, not for the suite's virtual environment).
What QGIS asked the server is read from the server's access log.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import ARTIFACTS, key_account, serve

DRIVER = Path(__file__).resolve().parent / "pyqgis_driver.py"
SYSTEM_PYTHON = "/usr/bin/python3"
OFFICER = "qgis.officer"
#: A small box in Phố Hiến (lon/lat).
BOX = [106.04, 20.64, 106.06, 20.66]


def pyqgis(request: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(
        [SYSTEM_PYTHON, str(DRIVER), json.dumps(request)], capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"PyQGIS failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


@pytest.fixture(scope="module")
def log() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / "qgis-server.log"


@pytest.fixture(scope="module")
def server(settings: Settings, loaded: DemoResult, log: Path) -> Iterator[str]:
    with serve(settings, log) as base:
        yield base


@pytest.fixture(scope="module")
def officer_key(settings: Settings, loaded: DemoResult) -> str:
    with connect(settings, autocommit=True) as conn:
        return key_account(conn, OFFICER, ["gis_officer"])


def all_items(base: str, layer: str, headers: dict[str, str] | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every feature of a collection as the server answers it, following its next links."""
    url: str | None = f"{base}/ogc/collections/{layer}/items"
    query: dict[str, Any] | None = {"limit": 1000, "f": "json", **params}
    found: list[dict[str, Any]] = []
    while url is not None:
        page = httpx.get(url, params=query, headers=headers or {}, timeout=60).json()
        found += page["features"]
        url = next((li["href"] for li in page.get("links", []) if li["rel"] == "next"), None)
        query = None
    return found


def comparable(value: Any) -> Any:
    if isinstance(value, float):  # 26.0 from QGIS is 26 in the server's JSON
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}(T| |$)", value):
        return value[:10]  # QGIS answers dates as dates
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        # QGIS types a field by its first features: one null in all of them (a live reading not every station
        # takes, e.g. rain) becomes text, "0" for 0; numbers compared as numbers on both sides
        return comparable(float(value))
    return value


def asked(log: Path, layer: str) -> list[str]:
    return re.findall(rf'"GET (/ogc/collections/{layer}/items[^ ]*) HTTP', log.read_text())


def same_features(got: dict[str, Any], expected: list[dict[str, Any]], layer: str) -> int:
    """Does QGIS hold the same features, with the same values, as the server answered? (values compared)"""
    assert got["valid"], layer
    assert got["count"] == len(expected), layer
    mine = sorted(json.dumps({k: comparable(v) for k, v in f.items()}, sort_keys=True) for f in got["features"])
    theirs = sorted(
        json.dumps({k: comparable(f["properties"].get(k)) for k in got["fields"]}, sort_keys=True) for f in expected
    )
    differ = next(((a, b) for a, b in zip(mine, theirs, strict=True) if a != b), None)
    assert differ is None, f"{layer}: QGIS {differ[0]} != server {differ[1]}; QGIS types {got.get('types')}"
    return len(expected) * len(got["fields"])


def test_public_collections_load_with_every_value(server: str, catalog: Catalog) -> None:
    public = [layer for layer in catalog if layer.access == "public"]
    answer = pyqgis({"do": "features", "url": f"{server}/ogc", "layers": [{"typename": la.id} for la in public]})
    compared = sum(same_features(answer["layers"][la.id], all_items(server, la.id), la.id) for la in public)
    assert compared > 10_000


def test_internal_layers_through_basic(server: str, officer_key: str, catalog: Catalog, log: Path) -> None:
    internal = [la.id for la in catalog if la.access == "internal" and catalog.style_of(la).min_zoom == 0]
    layers = [{"typename": name} for name in internal] + [{"typename": "land_parcels", "bbox": BOX}]
    request = {"do": "features", "url": f"{server}/ogc", "layers": layers}
    anonymous = pyqgis(request)
    assert not any(got["valid"] for got in anonymous["layers"].values())  # no such layers for anonymous callers
    answer = pyqgis({**request, "user": OFFICER, "key": officer_key, "authcfg": "gisioc1"})
    key = {"X-API-Key": officer_key}
    for name in internal:
        same_features(answer["layers"][name], all_items(server, name, key), name)
    bbox = ",".join(str(v) for v in BOX)
    parcels = answer["layers"]["land_parcels"]
    expected = all_items(server, "land_parcels", key, bbox=bbox)
    assert parcels["valid"] and 0 < parcels["count"] == len(expected)
    assert {f["parcel_number"] for f in parcels["features"]} == {f["properties"]["parcel_number"] for f in expected}
    assert any("bbox=" in line for line in asked(log, "land_parcels"))  # the box went to the server


def test_a_date_range_is_pushed_to_the_server(server: str, log: Path) -> None:
    subset = "\"approval_date\" <= '2022-12-31'"
    answer = pyqgis(
        {"do": "features", "url": f"{server}/ogc", "layers": [{"typename": "planning_zones", "subset": subset}]}
    )
    got = answer["layers"]["planning_zones"]
    expected = [f for f in all_items(server, "planning_zones") if f["properties"]["approval_date"] <= "2022-12-31"]
    assert got["subset_set"] and got["count"] == len(expected) > 0
    assert any("datetime=0000-01-01" in line for line in asked(log, "planning_zones"))


def test_styles_load_in_qgis(server: str, tmp_path: Path) -> None:
    layers = []
    for layer in ("schools", "roads", "communes"):
        qml = httpx.get(f"{server}/ogc/collections/{layer}/styles/default", params={"f": "qml"}).text
        path = tmp_path / f"{layer}.qml"
        path.write_text(qml, encoding="utf-8")
        layers.append({"typename": layer, "qml": str(path)})
    answer = pyqgis({"do": "features", "url": f"{server}/ogc", "layers": layers})
    schools = answer["layers"]["schools"]["style"]
    assert schools["loaded"] and schools["renderer"] == "categorizedSymbol"
    assert schools["categories"][:4] == ["Mầm non", "Tiểu học", "Trung học cơ sở", "Trung học phổ thông"]
    assert answer["layers"]["roads"]["style"]["renderer"] == "categorizedSymbol"
    communes = answer["layers"]["communes"]["style"]
    assert communes["renderer"] == "singleSymbol" and communes["labels"]


def test_the_project_opens_and_renders(server: str, officer_key: str, catalog: Catalog) -> None:
    download = httpx.get(f"{server}/api/qgis-project", headers={"X-API-Key": officer_key}, timeout=60)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    path = ARTIFACTS / "gis_ioc_hung_yen.qgz"
    path.write_bytes(download.content)
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        document = archive.read(archive.namelist()[0]).decode()
    assert officer_key not in document  # the credential stays in the user's QGIS, never in the file
    png = ARTIFACTS / "qgis-project.png"
    answer = pyqgis(
        {
            "do": "project",
            "path": str(path),
            "user": OFFICER,
            "key": officer_key,
            "png": str(png),
            "extent": [105.98, 20.60, 106.10, 20.70],
            "point": [106.05, 20.65],
        }
    )
    assert answer["read"] and answer["crs"] == "EPSG:9209"
    readable = [layer for layer in catalog if layer.access != "restricted"]  # a GIS officer reads these
    assert {entry["id"] for entry in answer["layers"]} == {f"gis_ioc_{layer.id}" for layer in readable}
    invalid = [entry["name"] for entry in answer["layers"] if not entry["valid"]]
    assert not invalid
    providers = {entry["id"]: entry["provider"] for entry in answer["layers"]}
    assert providers["gis_ioc_land_parcels"] == "vectortile" and providers["gis_ioc_schools"] == "OAPIF"
    assert answer["groups"][-1] == "Hành chính"
    assert {entry["group"] for entry in answer["layers"] if entry["id"] == "gis_ioc_schools"} == {"Hạ tầng kỹ thuật"}
    assert "+x=-191.90441429" in answer["operation"]  # EPSG:6960, pinned
    # QGIS's VN-2000 coordinates agree with the server's EPSG:9209 output within a centimetre
    feature = httpx.get(
        f"{server}/ogc/collections/schools/items",
        params={"limit": 1, "crs": "http://www.opengis.net/def/crs/EPSG/0/9209", "f": "json"},
    ).json()["features"][0]
    lonlat = httpx.get(f"{server}/ogc/collections/schools/items/{feature['id']}", params={"f": "json"}).json()
    qgis = pyqgis({"do": "project", "path": str(path), "point": lonlat["geometry"]["coordinates"][:2]}, timeout=300)[
        "point"
    ]
    east, north = feature["geometry"]["coordinates"][:2]
    assert abs(qgis[0] - east) < 0.01 and abs(qgis[1] - north) < 0.01
    assert not answer["errors"] and answer["drawn_share"] > 0.05
    assert png.stat().st_size > 10_000


def test_the_project_needs_a_login(server: str, officer_key: str) -> None:
    assert httpx.get(f"{server}/api/qgis-project").status_code == 401
    key = {"X-API-Key": officer_key}
    bad = httpx.get(f"{server}/api/qgis-project", params={"authcfg": "../x"}, headers=key)
    assert bad.status_code == 400 and "authcfg" in bad.json()["detail"]
    bad = httpx.get(f"{server}/api/qgis-project", params={"lang": "fr"}, headers=key)
    assert bad.status_code == 400 and "lang" in bad.json()["detail"]


def test_the_command_line_project(settings: Settings, officer_key: str, tmp_path: Path) -> None:
    from tests.test_cli import _run

    public = _run(settings, "qgis-project", str(tmp_path / "public.qgz"), "--url", "https://gis.hungyen.gov.vn")
    assert public.returncode == 0, public.stderr
    with zipfile.ZipFile(tmp_path / "public.qgz") as archive:
        document = archive.read(archive.namelist()[0]).decode()
    assert "land_parcels" not in document and "url='https://gis.hungyen.gov.vn/ogc' typename='schools'" in document
    assert "authcfg" not in document  # public layers need no login
    officer = _run(settings, "qgis-project", str(tmp_path / "officer.qgz"), "--account", OFFICER, "--lang", "en")
    assert officer.returncode == 0, officer.stderr
    with zipfile.ZipFile(tmp_path / "officer.qgz") as archive:
        document = archive.read(archive.namelist()[0]).decode()
    assert "typename='land_parcels'" not in document and "/collections/land_parcels/tiles/" in document
    assert "authcfg=gisioc1" in document and "<layername>Land parcels</layername>" in document
    unknown = _run(settings, "qgis-project", str(tmp_path / "x.qgz"), "--account", "nobody.here")
    assert unknown.returncode == 1 and "nobody.here" in unknown.stdout + unknown.stderr
    assert "Traceback" not in unknown.stdout + unknown.stderr
    assert not (tmp_path / "x.qgz").exists()
