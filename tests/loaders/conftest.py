"""Helpers of the loader tests: real files made here, in every format, and table digests."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
import shapely
from pyproj import Transformer

from gis_ioc.catalog import Catalog
from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, LoadReport, load_vector
from gis_ioc.settings import Settings

#: EPSG:6960 written out by hand (position-vector +towgs84), independent of gis_ioc.crs and of PROJ's choice.
VN2000_TM3_10530 = (
    "+proj=tmerc +lat_0=0 +lon_0=105.5 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 "
    "+towgs84=-191.90441429,-39.30318279,-111.45032835,0.00928836,-0.01975479,0.00427372,0.252906278 +units=m +no_defs"
)
VN2000_TM3_10500 = VN2000_TM3_10530.replace("+lon_0=105.5", "+lon_0=105")
TO_TM3 = Transformer.from_crs("EPSG:4326", VN2000_TM3_10530, always_xy=True)
TO_TM3_105 = Transformer.from_crs("EPSG:4326", VN2000_TM3_10500, always_xy=True)


def digest(conn: psycopg.Connection[Any], *tables: str) -> dict[str, Any]:
    """Every row of these tables and of the load bookkeeping, as one fingerprint per table."""
    out = {}
    for table in (*tables, "gis_ioc.loads", "gis_ioc.load_superseded"):
        row = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
        ).fetchone()
        out[table] = row
    return out


@pytest.fixture(scope="session")
def communes(db_session: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    rows = db_session.execute(
        """SELECT code, name, ST_X(p), ST_Y(p) FROM (
               SELECT code, name, ST_PointOnSurface(geom) AS p FROM layers.communes WHERE valid_to IS NULL) c
           ORDER BY code"""
    ).fetchall()
    return [{"code": r[0], "name": r[1], "lon": r[2], "lat": r[3]} for r in rows]


@pytest.fixture(scope="session")
def db_session(settings: Settings, loaded: Any) -> Iterator[psycopg.Connection[Any]]:
    from gis_ioc.database.connection import connect

    with connect(settings, autocommit=True) as conn:
        yield conn


@pytest.fixture
def loader(settings: Settings, catalog: Catalog, db: psycopg.Connection[Any]) -> Any:
    """load(path, layer, **options) with the suite's database and settings."""

    def run(path: Path, layer: str, **kw: Any) -> LoadReport:
        kw.setdefault("loaded_by", "test")
        return load_vector(db, catalog, path, LoadOptions(layer_id=layer, **kw), LoaderConfig.from_settings(settings))

    return run


def stations_frame(communes: list[dict[str, Any]], n: int = 5, prefix: str = "T") -> gpd.GeoDataFrame:
    rows = communes[:n]
    return gpd.GeoDataFrame(
        {
            "station_code": [f"{prefix}{i:03d}" for i in range(len(rows))],
            "commune_code": [r["code"] for r in rows],
            "name": [f"Đội PCCC {r['name']}" for r in rows],
            "engines": [i + 1 for i in range(len(rows))],
        },
        geometry=[shapely.Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )


def write_csv(path: Path, header: list[str], rows: list[list[Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def empty_spot(db_session: psycopg.Connection[Any]) -> dict[str, Any]:
    """A point of the province with no parcel within about 45 m (the demo data leaves gaps)."""
    row = db_session.execute(
        """SELECT c.code, ST_X(p), ST_Y(p) FROM layers.communes c,
                  generate_series(106.0, 106.4, 0.0007) x, generate_series(20.5, 20.9, 0.0007) y,
                  LATERAL (SELECT ST_SetSRID(ST_MakePoint(x, y), 4326) AS p) pt
            WHERE c.valid_to IS NULL AND ST_Contains(c.geom, p)
              AND NOT EXISTS (SELECT 1 FROM layers.land_parcels l WHERE ST_DWithin(l.geom, p, 0.0004))
            LIMIT 1"""
    ).fetchone()
    assert row is not None, "no free spot for test parcels"
    return {"code": row[0], "lon": row[1], "lat": row[2]}
