"""Deterministic, plausible synthetic data for every layer beyond the boundaries (``gis-ioc demo``).

Every row is marked ``is_demo`` and belongs to one load of kind ``demo``. The same seed gives the
same data; ``as_of`` sets the last four quarters of indicators and the year of sensor readings.
The whole run is one transaction: it replaces earlier demo data completely or changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np
import psycopg
import shapely
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.database.loads import copy_rows, finish_load, start_load
from gis_ioc.demo import contacts, land, network, readings
from gis_ioc.demo import facilities as fac
from gis_ioc.demo.geometry import Commune, prepare_commune
from gis_ioc.demo.indicators import indicator_rows, last_quarters
from gis_ioc.errors import LoadError

GENERATOR_VERSION = 2
SOURCE_UNIT = "gis_ioc demo generator (synthetic data, not real)"


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, label: str, rows: int) -> None: ...


class _Silent:
    def start(self, total: int) -> None:
        pass

    def advance(self, label: str, rows: int) -> None:
        pass


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 20250701
    as_of: date = field(default_factory=date.today)
    parcels: int = 200_000
    buildings: int = 100_000


@dataclass
class DemoResult:
    generated: bool
    load_id: int | None
    counts: dict[str, int]
    seconds: float
    message: str


def _communes(conn: psycopg.Connection[Any]) -> list[Commune]:
    rows = conn.execute(
        "SELECT code, name, short_name, level, ST_AsBinary(geom) FROM layers.communes "
        "WHERE valid_to IS NULL ORDER BY code"
    ).fetchall()
    if not rows:
        raise LoadError("no communes in the database: load the boundaries first (gis-ioc boundaries load)")
    return [prepare_commune(code, name, short, level, shapely.from_wkb(wkb)) for code, name, short, level, wkb in rows]


def existing_demo(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute(
        "SELECT id, params FROM gis_ioc.loads WHERE kind = 'demo' AND status = 'done' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return (int(row[0]), dict(row[1])) if row else None


def _tag(rows: Iterable[Sequence[Any]], load_id: int) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        yield (*row, True, load_id)


def generate_demo(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    options: DemoOptions,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> DemoResult:
    """Fill every non-administrative layer, the indicators and the sensor readings with demo data."""
    progress = progress or _Silent()
    params = {
        "seed": options.seed,
        "parcels": options.parcels,
        "buildings": options.buildings,
        "generator": GENERATOR_VERSION,
        "as_of": options.as_of.isoformat(),
    }
    same = {k: v for k, v in params.items() if k != "as_of"}
    previous = existing_demo(conn)
    if previous and not force and all(previous[1].get(k) == v for k, v in same.items()):
        return DemoResult(
            False,
            previous[0],
            {},
            0.0,
            f"demo data already present (load {previous[0]}, seed {options.seed}); --force regenerates it",
        )
    started = time.perf_counter()
    communes = _communes(conn)
    wards = {c.code for c in communes if c.is_ward}

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([options.seed, stream])

    schools = list(fac.school_rows(rng(10), communes))
    health = list(fac.health_rows(rng(11), communes))
    devices = list(fac.device_rows(rng(20), communes))
    totals: dict[str, dict[str, float]] = {}
    for h in health:
        t = totals.setdefault(h[1], {})
        t["beds"] = t.get("beds", 0.0) + h[4]
        t["doctors"] = t.get("doctors", 0.0) + h[5]
    for s in schools:
        t = totals.setdefault(s[1], {})
        t["schools"] = t.get("schools", 0.0) + 1
        t["standard_schools"] = t.get("standard_schools", 0.0) + (1 if s[8] else 0)

    parcels_cache: list[land.Parcels] = []

    def parcels() -> land.Parcels:
        if not parcels_cache:
            parcels_cache.append(land.make_parcels(rng(1), communes, options.parcels))
        return parcels_cache[0]

    layers: list[tuple[str, list[str], Callable[[], Iterable[Sequence[Any]]]]] = [
        ("land_parcels", land.PARCEL_COLUMNS, lambda: land.parcel_rows(rng(2), parcels(), wards)),
        ("buildings", land.BUILDING_COLUMNS, lambda: land.building_rows(rng(3), parcels(), options.buildings)),
        ("roads", network.ROAD_COLUMNS, lambda: network.road_rows(rng(4), communes)),
        ("power_lines", network.POWER_LINE_COLUMNS, lambda: network.power_line_rows(rng(5), communes)),
        ("power_substations", fac.SUBSTATION_COLUMNS, lambda: fac.substation_rows(rng(6), communes)),
        ("water_pipes", network.WATER_PIPE_COLUMNS, lambda: network.water_pipe_rows(rng(7), communes)),
        ("drainage", network.DRAIN_COLUMNS, lambda: network.drain_rows(rng(8), communes)),
        ("schools", fac.SCHOOL_COLUMNS, lambda: schools),
        ("health_facilities", fac.HEALTH_COLUMNS, lambda: health),
        ("police_posts", fac.POLICE_COLUMNS, lambda: fac.police_rows(rng(12), communes)),
        ("fire_stations", fac.FIRE_COLUMNS, lambda: fac.fire_rows(rng(13), communes)),
        ("trees", fac.TREE_COLUMNS, lambda: fac.tree_rows(rng(14), communes)),
        ("green_spaces", fac.GREEN_COLUMNS, lambda: fac.green_space_rows(rng(15), communes)),
        ("shelters", fac.SHELTER_COLUMNS, lambda: fac.shelter_rows(rng(16), communes)),
        ("planning_zones", fac.PLANNING_COLUMNS, lambda: fac.planning_rows(rng(17), communes)),
        ("iot_devices", fac.DEVICE_COLUMNS, lambda: devices),
    ]
    missing = [layer_id for layer_id, _, _ in layers if layer_id not in catalog.layers]
    if missing:
        raise LoadError(f"the catalog lacks layers the demo fills: {missing}")
    periods = last_quarters(options.as_of)
    progress.start(len(layers) + 3)
    counts: dict[str, int] = {}
    with conn.transaction():
        _clear(conn, catalog)
        load_id = start_load(conn, kind="demo", source_unit=SOURCE_UNIT, approval="approved", params=params)
        for layer_id, columns, make in layers:
            n = copy_rows(
                conn, sql.Identifier(SCHEMA, layer_id), [*columns, "is_demo", "load_id"], _tag(make(), load_id)
            )
            counts[layer_id] = n
            progress.advance(layer_id, n)
        counts["indicator_values"] = copy_rows(
            conn,
            sql.Identifier("gis_ioc", "indicator_values"),
            [
                "indicator_id",
                "commune_code",
                "period",
                "value",
                "numerator",
                "denominator",
                "updated_at",
                "is_demo",
                "load_id",
            ],
            _tag(indicator_rows(rng(30), catalog.indicators, communes, periods, totals, options.as_of), load_id),
        )
        progress.advance("indicator_values", counts["indicator_values"])
        counts["commune_contacts"] = copy_rows(
            conn,
            sql.Identifier("gis_ioc", "commune_contacts"),
            [*contacts.CONTACT_COLUMNS, "is_demo", "load_id"],
            _tag(contacts.contact_rows(rng(40), communes), load_id),
        )
        progress.advance("commune_contacts", counts["commune_contacts"])
        sensors = [(d[0], d[2]) for d in devices]
        observations = list(fac.observation_rows(rng(31), sensors, options.as_of))
        counts["observations"] = copy_rows(
            conn,
            sql.Identifier("gis_ioc", "observations"),
            ["device_code", "quantity", "observed_at", "value", "unit", "is_demo", "load_id"],
            _tag(observations, load_id),
        )
        counts.update(readings.write(conn, observations))  # the live sensor tables (datastreams, rollups)
        progress.advance("observations", counts["observations"])
        finish_load(conn, load_id, sum(counts.values()))
    for layer_id, *_ in layers:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCHEMA, layer_id)))
    seconds = time.perf_counter() - started
    return DemoResult(
        True,
        load_id,
        counts,
        seconds,
        f"demo data loaded in {seconds:.1f} s ({sum(counts.values()):,} rows, load {load_id})",
    )


def _clear(conn: psycopg.Connection[Any], catalog: Catalog) -> None:
    """Remove earlier demo rows (never real ones) and their load records."""
    readings.clear(conn)  # before the demo devices it finds them by
    for layer in catalog:
        conn.execute(sql.SQL("DELETE FROM {} WHERE is_demo").format(sql.Identifier(SCHEMA, layer.table)))
    conn.execute("DELETE FROM gis_ioc.indicator_values WHERE is_demo")
    conn.execute("DELETE FROM gis_ioc.observations WHERE is_demo")
    conn.execute("DELETE FROM gis_ioc.commune_contacts WHERE is_demo")
    conn.execute("DELETE FROM gis_ioc.loads WHERE kind = 'demo'")
