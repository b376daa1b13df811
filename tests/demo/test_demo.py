"""Demo data: the counts asked for, every feature inside its commune, consistent, deterministic, atomic."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import psycopg
import pytest
import shapely
from psycopg import sql

from gis_ioc.catalog import Catalog
from gis_ioc.demo import DemoOptions, DemoResult, facilities, generate_demo, land
from gis_ioc.demo.geometry import prepare_commune
from gis_ioc.demo.indicators import CARRIED_FORWARD, CARRIED_SHARE, LATE, LATE_COMMUNES, last_quarters
from tests.conftest import AS_OF, SEED, scalar

DEMO_LAYERS = [
    "land_parcels",
    "buildings",
    "roads",
    "power_lines",
    "power_substations",
    "water_pipes",
    "drainage",
    "schools",
    "health_facilities",
    "police_posts",
    "fire_stations",
    "trees",
    "green_spaces",
    "shelters",
    "planning_zones",
    "iot_devices",
]


def test_counts(loaded: DemoResult, db: psycopg.Connection[Any]) -> None:
    assert loaded.generated
    counts = {
        layer: scalar(db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("layers", layer)))
        for layer in DEMO_LAYERS
    }
    assert counts == {k: v for k, v in loaded.counts.items() if k in counts}
    assert counts["land_parcels"] == 200_000
    assert counts["buildings"] == 100_000
    assert counts["planning_zones"] >= 5
    for layer in DEMO_LAYERS:
        assert counts[layer] > 0, layer
    # schools and health facilities in every commune; roads in every commune
    for layer in ("schools", "health_facilities", "roads", "police_posts", "shelters"):
        assert (
            scalar(db, sql.SQL("SELECT count(DISTINCT commune_code) FROM {}").format(sql.Identifier("layers", layer)))
            == 104
        ), layer
    assert {r[0] for r in db.execute("SELECT DISTINCT kind FROM layers.iot_devices").fetchall()} == {
        "camera",
        "air_quality",
        "water_level",
        "rain_gauge",
    }


@pytest.mark.parametrize("layer", DEMO_LAYERS)
def test_every_demo_feature_is_inside_its_commune(db: psycopg.Connection[Any], layer: str) -> None:
    outside = scalar(
        db,
        sql.SQL(
            "SELECT count(*) FROM {} f JOIN layers.communes c ON c.code = f.commune_code AND c.valid_to IS NULL "
            "WHERE NOT ST_CoveredBy(f.geom, c.geom)"
        ).format(sql.Identifier("layers", layer)),
    )
    orphans = scalar(
        db,
        sql.SQL(
            "SELECT count(*) FROM {} f WHERE NOT EXISTS (SELECT 1 FROM layers.communes c WHERE c.code = f.commune_code)"
        ).format(sql.Identifier("layers", layer)),
    )
    assert (outside, orphans) == (0, 0)
    assert scalar(
        db,
        sql.SQL("SELECT bool_and(is_demo AND load_id IS NOT NULL AND ST_IsValid(geom)) FROM {}").format(
            sql.Identifier("layers", layer)
        ),
    )


def test_parcels_do_not_overlap_and_buildings_stand_in_their_parcel(db: psycopg.Connection[Any]) -> None:
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.land_parcels a JOIN layers.land_parcels b "
            "ON a.fid < b.fid AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)",
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.buildings b JOIN layers.land_parcels p "
            "ON p.parcel_code = b.parcel_code WHERE ST_CoveredBy(b.geom, p.geom)",
        )
        == 100_000
    )
    # stored areas match the geometry on the ellipsoid (within 0.2 %)
    assert scalar(db, "SELECT max(abs(area_m2 - ST_Area(geom::geography)) / area_m2) FROM layers.land_parcels") < 0.002
    # parcel codes: commune code, map sheet, parcel number
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.land_parcels WHERE parcel_code <> "
            "commune_code || '-' || lpad(map_sheet::text, 3, '0') || '-' || lpad(parcel_number::text, 4, '0')",
        )
        == 0
    )
    # residential land is in the wards' urban (ODT) and the communes' rural (ONT) form
    assert (
        scalar(
            db,
            "SELECT count(*) FROM layers.land_parcels p JOIN layers.communes c ON c.code = p.commune_code "
            "WHERE (p.land_use = 'ODT' AND c.level = 'xã') OR (p.land_use = 'ONT' AND c.level = 'phường')",
        )
        == 0
    )


def test_indicator_values_for_the_last_four_quarters(db: psycopg.Connection[Any], catalog: Catalog) -> None:
    periods = last_quarters(AS_OF)
    assert periods == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    assert [r[0] for r in db.execute("SELECT DISTINCT period FROM gis_ioc.indicator_values ORDER BY 1")] == periods
    table_indicators = [i for i in catalog.indicators.indicators if i.aggregation.kind in ("sum", "rate", "mean")]
    assert scalar(db, "SELECT count(*) FROM gis_ioc.indicator_values") == 104 * 4 * len(table_indicators)
    # rates are their numerator over their denominator, never stored inconsistently
    assert (
        scalar(
            db,
            "SELECT count(*) FROM gis_ioc.indicator_values v JOIN gis_ioc.indicators i ON i.id = v.indicator_id "
            "WHERE i.definition->'aggregation'->>'kind' = 'rate' AND v.denominator > 0 AND abs(v.value - "
            "v.numerator / v.denominator * (i.definition->'aggregation'->>'scale')::float) > 1e-3",
        )
        == 0
    )
    population = scalar(
        db, "SELECT sum(value) FROM gis_ioc.indicator_values WHERE indicator_id = 'population' AND period = '2025-Q4'"
    )
    assert 3.3e6 < population < 3.8e6
    # hospital beds come from the demo health facilities layer
    assert scalar(
        db,
        "SELECT sum(numerator) FROM gis_ioc.indicator_values "
        "WHERE indicator_id = 'hospital_beds_per_10k' AND period = '2026-Q3'",
    ) == scalar(db, "SELECT sum(beds) FROM layers.health_facilities")


def test_some_targets_met_and_some_not(db: psycopg.Connection[Any], catalog: Catalog) -> None:
    """Province-wide rates (recomputed from numerators and denominators) against the 2026-Q3 targets."""
    statuses = {}
    for ind in catalog.indicators.indicators:
        if ind.aggregation.kind != "rate" or ind.target_for("2026-Q3") is None:
            continue
        value = scalar(
            db,
            "SELECT sum(numerator) / sum(denominator) * %s FROM gis_ioc.indicator_values "
            "WHERE indicator_id = %s AND period = '2026-Q3'",
            (ind.aggregation.scale, ind.id),
        )
        target = ind.target_for("2026-Q3")
        statuses[ind.id] = value >= target if ind.direction == "higher" else value <= target
    assert any(statuses.values()) and not all(statuses.values()), statuses
    # and within one indicator some communes meet the target while others miss it
    met = db.execute(
        "SELECT count(*) FILTER (WHERE value >= 95), count(*) FILTER (WHERE value < 95) "
        "FROM gis_ioc.indicator_values WHERE indicator_id = 'health_insurance_coverage' "
        "AND period = '2026-Q3'"
    ).fetchone()
    assert met is not None and met[0] > 0 and met[1] > 0


def test_sensor_readings_cover_the_year_before_the_reference_day(db: psycopg.Connection[Any]) -> None:
    first, last, devices = db.execute(
        "SELECT min(observed_at)::date, max(observed_at)::date, count(DISTINCT device_code) FROM gis_ioc.observations"
    ).fetchone()  # type: ignore[misc]
    assert (last - first).days == 364 and last.isoformat() == "2026-11-26"
    sensors = scalar(db, "SELECT count(*) FROM layers.iot_devices WHERE kind <> 'camera'")
    assert devices == sensors
    assert (
        scalar(
            db,
            "SELECT count(*) FROM gis_ioc.observations o LEFT JOIN layers.iot_devices d "
            "ON d.device_code = o.device_code WHERE d.fid IS NULL",
        )
        == 0
    )


def test_same_seed_same_data_other_seed_other_data(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT code, name, short_name, level, ST_AsBinary(geom) FROM layers.communes ORDER BY code LIMIT 3"
    ).fetchall()
    communes = [prepare_commune(c, n, s, lv, shapely.from_wkb(g)) for c, n, s, lv, g in rows]

    def parcels(seed: int) -> land.Parcels:
        return land.make_parcels(np.random.default_rng([seed, 1]), communes, 3000)

    a, b, c = parcels(SEED), parcels(SEED), parcels(SEED + 1)
    assert list(a.code) == list(b.code) and np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    # and the stored data is what the seed gives: the first commune's schools are regenerated identically
    schools = list(facilities.school_rows(np.random.default_rng([SEED, 10]), communes[:1]))
    stored = db.execute(
        "SELECT school_code, name, pupils FROM layers.schools WHERE commune_code = %s ORDER BY school_code",
        (communes[0].code,),
    ).fetchall()
    assert stored == [(s[0], s[2], s[5]) for s in schools]


def test_second_run_reuses_what_exists(db: psycopg.Connection[Any], catalog: Catalog) -> None:
    again = generate_demo(db, catalog, DemoOptions(seed=SEED, as_of=AS_OF))
    assert not again.generated and "already present" in again.message


def test_a_failing_regeneration_changes_nothing(
    db: psycopg.Connection[Any], catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree_rows = facilities.tree_rows

    def broken_trees(*args: Any, **kwargs: Any) -> Any:
        yield from tree_rows(*args, **kwargs)
        raise RuntimeError("generator failed half-way")

    monkeypatch.setattr(facilities, "tree_rows", broken_trees)
    before = {
        layer: scalar(
            db, sql.SQL("SELECT count(*) || '/' || max(load_id) FROM {}").format(sql.Identifier("layers", layer))
        )
        for layer in DEMO_LAYERS
    }
    with pytest.raises(RuntimeError, match="half-way"):
        generate_demo(db, catalog, DemoOptions(seed=SEED + 5, as_of=AS_OF, parcels=5000, buildings=1000), force=True)
    after = {
        layer: scalar(
            db, sql.SQL("SELECT count(*) || '/' || max(load_id) FROM {}").format(sql.Identifier("layers", layer))
        )
        for layer in DEMO_LAYERS
    }
    assert after == before
    assert scalar(db, "SELECT count(*) FROM gis_ioc.loads WHERE kind = 'demo'") == 1


def test_reports_arrive_after_their_period_and_some_are_late(db: psycopg.Connection[Any]) -> None:
    """Each figure is dated when it reached the IOC: after its period ended, never after AS_OF; chip-ID
    coverage is carried forward from the first quarter in most communes, clean water in a few (stale)."""
    rows = db.execute(
        "SELECT indicator_id, commune_code, period, updated_at, value FROM gis_ioc.indicator_values"
    ).fetchall()
    ends = {"2025-Q4": date(2026, 1, 1), "2026-Q1": date(2026, 4, 1), "2026-Q2": date(2026, 7, 1)}
    ends["2026-Q3"] = date(2026, 10, 1)
    carried = {(r[0], r[1]) for r in rows if r[3].date() < ends[r[2]]}
    assert all(r[3].date() <= AS_OF for r in rows)
    assert {i for i, _ in carried} == {CARRIED_FORWARD, LATE}
    assert len({c for i, c in carried if i == CARRIED_FORWARD}) == round(CARRIED_SHARE * 104)
    assert len({c for i, c in carried if i == LATE}) == LATE_COMMUNES
    by_key = {(r[0], r[1], r[2]): r for r in rows}
    for indicator_id, code in carried:  # a carried row repeats the figure and date of the last report
        q3 = by_key[(indicator_id, code, "2026-Q3")]
        source = by_key[(indicator_id, code, "2026-Q1" if indicator_id == CARRIED_FORWARD else "2025-Q4")]
        assert (q3[3], q3[4]) == (source[3], source[4])


def test_every_commune_has_its_leaders_contacts(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT commune_code, count(*), bool_and(is_demo), bool_and(email LIKE '%@hungyen.gov.vn') "
        "FROM gis_ioc.commune_contacts GROUP BY 1"
    ).fetchall()
    assert len(rows) == 104
    assert all(n == 4 and demo and mail for _, n, demo, mail in rows)
