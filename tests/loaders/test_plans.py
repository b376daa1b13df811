"""Planning drawings: a VN-2000 GeoTIFF and a PNG with a world file become COGs, footprints and tiles."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import rasterio
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from gis_ioc.app import create_app
from gis_ioc.catalog import Catalog
from gis_ioc.errors import LoadError
from gis_ioc.loaders import history
from gis_ioc.loaders.plans import PlanMeta, load_plan
from gis_ioc.settings import Settings
from tests.loaders.conftest import TO_TM3, VN2000_TM3_10530, digest

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WIDTH, HEIGHT, PIXEL = 400, 320, 2.5  # 1,000 m × 800 m


def _drawing(communes: list[dict[str, Any]], folder: Path, kind: str) -> tuple[Path, float, float]:
    """A drawing over a commune: (path, easting, northing of its top-left corner) in EPSG:9209."""
    centre = communes[80]
    e, n = TO_TM3.transform(centre["lon"], centre["lat"])
    left, top = round(e) - 500, round(n) + 400
    rgb = np.zeros((3, HEIGHT, WIDTH), dtype="uint8")
    rgb[0] = 200
    rgb[1] = np.linspace(0, 255, WIDTH, dtype="uint8")[np.newaxis, :]
    rgb[2, :, :20] = 255
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "geotiff":
        path = folder / "qh_chi_tiet.tif"
        with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=3, dtype="uint8",
                           crs="EPSG:9209", transform=from_origin(left, top, PIXEL, PIXEL)) as dst:  # fmt: skip
            dst.write(rgb)
    else:  # a scanned sheet with a world file and no CRS
        path = folder / "qh_scan.png"
        with rasterio.open(path, "w", driver="PNG", width=WIDTH, height=HEIGHT, count=3, dtype="uint8") as dst:
            dst.write(rgb)
        path.with_suffix(".pgw").write_text(
            f"{PIXEL}\n0\n0\n{-PIXEL}\n{left + PIXEL / 2}\n{top - PIXEL / 2}\n", encoding="ascii"
        )
        for extra in folder.glob("qh_scan.png.aux.xml"):
            extra.unlink()
    return path, left, top


def _meta(code: str) -> PlanMeta:
    return PlanMeta(code, "Quy hoạch chi tiết khu dân cư mới", "detailed", "1234/QĐ-UBND", date(2026, 3, 15),
                    "UBND tỉnh Hưng Yên", "1/500", "residential")  # fmt: skip


@pytest.fixture(scope="module")
def client(settings: Settings, loaded: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.mark.parametrize("kind", ["geotiff", "png-worldfile"])
def test_plan_to_cog_footprint_tiles_documents(
    kind: str, settings: Settings, catalog: Catalog, db: psycopg.Connection[Any], communes: list[dict[str, Any]],
    tmp_path: Path, client: TestClient,
) -> None:  # fmt: skip
    path, left, top = _drawing(communes, tmp_path / kind, kind)
    note, decision = tmp_path / "thuyet_minh.pdf", tmp_path / "quyet_dinh.pdf"
    note.write_bytes(PDF)
    decision.write_bytes(PDF + b"%decision\n")
    result = load_plan(
        db, path, _meta(f"QH-{kind}"), settings.home / "plans", crs=None if kind == "geotiff" else "EPSG:9209",
        documents=[("explanatory_note", note), ("decision", decision)], loaded_by="test",
    )  # fmt: skip
    with rasterio.open(result.cog) as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert cog.crs.to_epsg() == 3857 and cog.block_shapes[0] == (256, 256) and cog.overviews(1)
    # footprint: 1 km × 800 m on the ground, computed independently (hand-written EPSG:6960 string, geodesic area)
    to_wgs = Transformer.from_crs(VN2000_TM3_10530, "EPSG:4326", always_xy=True)
    xs = [left, left + WIDTH * PIXEL, left + WIDTH * PIXEL, left]
    ys = [top, top, top - HEIGHT * PIXEL, top - HEIGHT * PIXEL]
    lon, lat = to_wgs.transform(xs, ys)
    expected = abs(Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)[0]) / 1e6
    assert result.footprint_km2 == pytest.approx(expected, rel=0.002)
    zone = db.execute(
        "SELECT plan_name, plan_level, decision_number, approval, scale FROM layers.planning_zones WHERE load_id = %s",
        (result.load_id,),
    ).fetchone()
    assert zone == ("Quy hoạch chi tiết khu dân cư mới", "detailed", "1234/QĐ-UBND", "draft", "1/500")

    assert client.get(f"/api/plans/{result.plan_id}").status_code == 404  # a draft is not served
    history.approve(db, catalog, result.load_id, by="test")
    info = client.get(f"/api/plans/{result.plan_id}").json()
    assert [d["kind"] for d in info["documents"]] == ["explanatory_note", "decision"]
    assert client.get(info["documents"][1]["href"]).content == PDF + b"%decision\n"
    centre_lon, centre_lat = sum(lon) / 4, sum(lat) / 4
    x, y = _tile_of(centre_lon, centre_lat, 16)
    answer = client.get(f"/api/plans/{result.plan_id}/tiles/16/{x}/{y}.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    with MemoryFile(answer.content) as mem, mem.open() as png:
        red, alpha = png.read(1), png.read(4)
    assert alpha.mean() > 200 and abs(int(np.median(red[alpha > 0])) - 200) <= 2
    assert client.get(f"/api/plans/{result.plan_id}/tiles/16/{x + 40}/{y}.png").status_code == 204
    assert client.get(f"/api/plans/{result.plan_id}/tiles/3/99/0.png").status_code == 400
    # low zooms read only the covered part, through the overviews (a whole-tile read took minutes at z 0)
    for z in (0, 4, 8):
        low = client.get(f"/api/plans/{result.plan_id}/tiles/{z}/{_tile_of(centre_lon, centre_lat, z)[0]}/"
                         f"{_tile_of(centre_lon, centre_lat, z)[1]}.png")  # fmt: skip
        assert low.status_code in (200, 204), (z, low.text)
    # and where it lands is right: at z 13 the drawing covers its own size in pixels, wherever tiles cut it
    opaque = 0
    cx, cy = _tile_of(centre_lon, centre_lat, 13)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            answer = client.get(f"/api/plans/{result.plan_id}/tiles/13/{cx + dx}/{cy + dy}.png")
            if answer.status_code == 200:
                with MemoryFile(answer.content) as mem, mem.open() as png:
                    opaque += int((png.read(4) > 0).sum())
    metres_per_pixel = 40075016.686 / 2**13 / 256 * math.cos(math.radians(centre_lat))
    expected_pixels = (WIDTH * PIXEL / metres_per_pixel) * (HEIGHT * PIXEL / metres_per_pixel)
    assert opaque == pytest.approx(expected_pixels, rel=0.15)
    assert any(p["id"] == result.plan_id for p in client.get("/api/plans").json())
    history.rollback(db, catalog, result.load_id, by="test")
    assert client.get(f"/api/plans/{result.plan_id}").status_code == 404


def test_bad_drawings_change_nothing(
    settings: Settings, db: psycopg.Connection[Any], communes: list[dict[str, Any]], tmp_path: Path
) -> None:
    path, _, _ = _drawing(communes, tmp_path / "scan", "png-worldfile")
    before = digest(db, "layers.planning_zones", "gis_ioc.plans", "gis_ioc.plan_documents")
    with pytest.raises(LoadError, match="without a coordinate system"):
        load_plan(db, path, _meta("QH-X"), settings.home / "plans")
    path.with_suffix(".pgw").unlink()
    with pytest.raises(LoadError, match="not georeferenced"):
        load_plan(db, path, _meta("QH-X"), settings.home / "plans", crs="EPSG:9209")
    tif, _, _ = _drawing(communes, tmp_path / "tif", "geotiff")
    fake = tmp_path / "quyet_dinh.pdf"
    fake.write_bytes(b"<html>not a pdf</html>")
    with pytest.raises(LoadError, match="not a PDF"):
        load_plan(db, tif, _meta("QH-X"), settings.home / "plans", documents=[("decision", fake)])
    with pytest.raises(LoadError, match="outside Hưng Yên"):
        load_plan(db, tif, _meta("QH-X"), settings.home / "plans", crs="EPSG:3405")  # TM-3 read as UTM: far off
    assert digest(db, "layers.planning_zones", "gis_ioc.plans", "gis_ioc.plan_documents") == before
