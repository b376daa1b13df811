"""Distance, sensor and staleness indicators, and the emergency scenario, checked against figures
computed independently in Python (geopandas, shapely, pyproj, pandas) from the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod
from shapely.strtree import STRtree

from gis_ioc.catalog import Catalog
from gis_ioc.errors import InvalidInput
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import get_run, rerun, run_scenario
from gis_ioc.scenarios.models import EmergencyScenario, load_emergency, load_scenarios
from gis_ioc.settings import Settings
from tests.conftest import AS_OF

GEOD = Geod(ellps="WGS84")
CONSOLE = Viewer.console("test")  # the console operator: every row, no personal data
PERSONAL = Viewer.console("test", personal=True)
NOW = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC)
QUARTER_END = datetime(2026, 9, 30, 17, tzinfo=UTC)  # 2026-Q3 ends at midnight in Vietnam (UTC+7)
UTM = "EPSG:32648"  # metres for the independent distance checks
SLACK = 0.003  # UTM vs the ellipsoid: features this close to a limit are counted either way


@pytest.fixture(scope="module")
def scenarios(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    return load_scenarios(settings.config_dir / "scenarios", catalog)


@pytest.fixture(scope="module")
def emergency(settings: Settings, catalog: Catalog) -> EmergencyScenario:
    return load_emergency(settings.config_dir / "scenarios", catalog)


@pytest.fixture(scope="module")
def dsn(settings: Settings) -> str:
    return f"postgresql://gis_ioc@/{settings.db_name}?host={settings.home / 'run'}&port={settings.db_port}"


def _indicator(run: Any, indicator: str) -> dict[str, Any]:
    return next(i for i in run.indicators if i["id"] == indicator)


# -- households within reach of a primary school ---------------------------------------------------


def test_reach_counts_households_near_a_school_like_geopandas(
    db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any], dsn: str
) -> None:
    code = "11953"
    run = run_scenario(
        db, catalog, scenarios["education"], selectors.communes(db, [code]), "2026-Q3", store=False, viewer=CONSOLE
    )
    reach = _indicator(run, "primary_school_reach")["total"]
    commune = gpd.read_postgis("SELECT geom FROM layers.communes WHERE code = %(c)s", dsn, params={"c": code})
    buildings = gpd.read_postgis("SELECT households, geom FROM layers.buildings WHERE households > 0", dsn)
    buildings = buildings[buildings.intersects(commune.geometry.iloc[0])].to_crs(UTM)
    schools = gpd.read_postgis("SELECT geom FROM layers.schools WHERE level = 'primary'", dsn).to_crs(UTM)
    tree = STRtree(schools.geometry.values)
    nearest = [float(g.distance(schools.geometry.iloc[tree.nearest(g)])) for g in buildings.geometry]
    buildings["d"] = nearest
    surely = buildings[buildings.d <= 1000 * (1 - SLACK)].households.sum()
    maybe = buildings[buildings.d <= 1000 * (1 + SLACK)].households.sum()
    total = buildings.households.sum()
    assert reach["basis"] == total
    assert surely / total * 100 <= reach["value"] <= maybe / total * 100
    assert reach["target"] == 90 and reach["status"] == ("met" if reach["value"] >= 90 else "not met")


# -- PM2.5 from the sensors -------------------------------------------------------------------------


def _readings(db: psycopg.Connection[Any], period_start: datetime, period_end: datetime) -> pd.DataFrame:
    """The raw PM2.5 readings (the figures come from the rollups: this checks them against the readings)."""
    rows = db.execute(
        "SELECT d.commune_code, d.geom, o.phenomenon_time, o.result FROM gis_ioc.iot_observations o "
        "JOIN gis_ioc.iot_datastreams s ON s.id = o.datastream_id "
        "JOIN layers.iot_devices d USING (device_code) WHERE s.property_id = 'pm25'"
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["commune", "geom", "ts", "value"])
    return frame[(frame.ts >= period_start) & (frame.ts < period_end)]


def test_pm25_statistics_match_pandas(db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any]) -> None:
    vn = timedelta(hours=7)
    start, end = datetime(2026, 1, 1, tzinfo=UTC) - vn, datetime(2026, 4, 1, tzinfo=UTC) - vn  # 2026-Q1, UTC+7
    readings = _readings(db, start, end)
    run = run_scenario(
        db, catalog, scenarios["environment"], selectors.province(db), "2026-Q1", store=False, now=NOW, viewer=CONSOLE
    )
    mean = _indicator(run, "pm25_mean")
    assert mean["total"]["value"] == pytest.approx(readings.value.mean())
    assert mean["total"]["target"] == 25
    per_commune = readings.groupby("commune").value.mean()
    for code, value in per_commune.items():
        assert mean["communes"][code]["value"] == pytest.approx(value)
    no_station = set(mean["communes"]) - set(per_commune.index)
    assert no_station and all(mean["communes"][c]["status"] == "no data" for c in no_station)
    # days whose mean over the selection's stations exceeds the 24-hour limit in force that (local) day:
    # 45 µg/m³ from 1 January 2026 (QCVN 05:2023/BTNMT), 50 µg/m³ before
    days = readings.assign(day=(readings.ts + vn).dt.date).groupby("day").value.mean()
    over = _indicator(run, "pm25_days_over_limit")
    assert (days > 45).sum() > (days > 50).sum()  # the data tells the two limits apart
    assert over["total"]["value"] == (days > 45).sum()
    assert over["total"]["status"] == ("met" if (days > 45).sum() <= 5 else "not met")
    # the change is against the previous quarter, computed the same way (2025: the limit was 50 µg/m³)
    before = _readings(db, datetime(2025, 10, 1, tzinfo=UTC) - vn, start)
    assert mean["total"]["previous"] == pytest.approx(before.value.mean())
    days_before = before.assign(day=(before.ts + vn).dt.date).groupby("day").value.mean()
    assert over["total"]["previous"] == (days_before > 50).sum()


def test_sensor_figures_go_stale_when_the_readings_stop(
    db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any]
) -> None:
    """Readings end the day before AS_OF: fresh now, stale when asked two weeks later for this quarter."""
    selection = selectors.province(db)
    fresh = run_scenario(
        db, catalog, scenarios["environment"], selection, "2026-Q4", store=False, now=NOW, viewer=CONSOLE
    )
    later = run_scenario(
        db,
        catalog,
        scenarios["environment"],
        selection,
        "2026-Q4",
        store=False,
        now=NOW + timedelta(days=14),
        viewer=CONSOLE,
    )
    assert _indicator(fresh, "pm25_mean")["total"]["status"] in ("met", "not met")
    assert _indicator(later, "pm25_mean")["total"]["status"] == "stale"


# -- stale table figures ----------------------------------------------------------------------------


def test_stale_figures_per_commune_and_in_total(
    db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any]
) -> None:
    run = run_scenario(
        db, catalog, scenarios["socio_economic"], selectors.province(db), "2026-Q3", now=NOW, viewer=CONSOLE
    )
    for indicator_id in ("chip_id_coverage", "clean_water_access_rate"):
        fresh_days = catalog.indicators.get(indicator_id).freshness_days
        old = {
            r[0]
            for r in db.execute(
                "SELECT commune_code FROM gis_ioc.indicator_values WHERE indicator_id = %s AND period = '2026-Q3' "
                "AND updated_at < %s",
                (indicator_id, min(QUARTER_END, NOW) - timedelta(days=fresh_days)),
            )
        }
        figures = _indicator(run, indicator_id)
        assert {c for c, f in figures["communes"].items() if f["status"] == "stale"} == old
        # the total is stale when most of the communes it rests on are
        assert (figures["total"]["status"] == "stale") == (2 * len(old) > 104)
        assert figures["total"]["updated_at"] == min(f["updated_at"] for f in figures["communes"].values())
    chip = _indicator(run, "chip_id_coverage")
    assert chip["total"]["status"] == "stale"  # 62 of 104 communes last reported in the first quarter
    assert _indicator(run, "clean_water_access_rate")["total"]["status"] != "stale"  # only 8 late
    assert not any(f["indicator"] == "chip_id_coverage" and f["where"] == "total" for f in run.flags)


# -- the emergency scenario -------------------------------------------------------------------------


def _run(db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario, body: dict[str, Any]) -> Any:
    incident = incident_from_request(db, body, emergency, catalog, CONSOLE)
    return run_emergency(db, catalog, emergency, incident, store=False, viewer=PERSONAL)


def test_rings_count_households_and_facilities_like_geopandas(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario, dsn: str
) -> None:
    lon, lat, rings = 106.05, 20.65, [500.0, 1000.0, 2000.0]
    run = _run(db, catalog, emergency, {"incident": "flood", "at": [lon, lat], "rings": rings})
    centre = gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326).to_crs(UTM).iloc[0]
    buildings = gpd.read_postgis(
        "SELECT commune_code, households, geom FROM layers.buildings WHERE households > 0", dsn
    ).to_crs(UTM)
    buildings["d"] = buildings.distance(centre)
    reached = buildings[buildings.d <= 2000 * (1 + SLACK)]
    # mapped households per ring: between the counts made with the limits pulled in and pushed out
    for i, ring in enumerate(run.rings):
        low, high = (0.0 if i == 0 else rings[i - 1]), rings[i]
        inner = reached[(reached.d > low * (1 + SLACK)) & (reached.d <= high * (1 - SLACK))].households.sum()
        outer = reached[(reached.d > low * (1 - SLACK)) & (reached.d <= high * (1 + SLACK))].households.sum()
        mapped = ring["mapped_households"]
        assert mapped is not None and inner <= mapped <= outer, (ring, inner, outer)
    # people: each commune's mapped households inside, scaled to its registered population
    population = dict(
        db.execute(
            "SELECT commune_code, value FROM gis_ioc.indicator_values WHERE indicator_id = 'population' "
            "AND period = %s",
            (run.period,),
        ).fetchall()
    )
    totals = buildings.groupby("commune_code").households.sum()
    within = reached[reached.d <= 2000 * (1 - SLACK)].groupby("commune_code").households.sum()
    expected = sum(hh / totals[c] * population[c] for c, hh in within.items())
    assert run.period == "2026-Q3"
    assert run.rings[-1]["people_within"] == pytest.approx(expected, rel=0.01)
    assert sum(c["people"] for c in run.communes) == pytest.approx(
        run.rings[-1]["people_within"], abs=len(run.communes)
    )
    # schools inside the outer ring
    schools = gpd.read_postgis("SELECT school_code, geom FROM layers.schools", dsn).to_crs(UTM)
    inside = set(schools[schools.distance(centre) <= 2000].school_code)
    assert {s["school_code"] for s in run.inside["schools"]} == inside
    assert all(s["ring"] in {r["label"] for r in run.rings} for s in run.inside["schools"])


def test_nearest_hospitals_and_fire_stations_by_geodesic_distance(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario
) -> None:
    lon, lat = 106.3, 20.45
    run = _run(db, catalog, emergency, {"incident": "fire", "at": [lon, lat], "rings": [1000]})
    for key, query in [
        (
            "hospitals",
            "SELECT facility_code, ST_X(geom), ST_Y(geom) FROM layers.health_facilities "
            "WHERE kind IN ('provincial_hospital', 'regional_hospital', 'health_centre')",
        ),
        ("fire_stations", "SELECT station_code, ST_X(geom), ST_Y(geom) FROM layers.fire_stations"),
    ]:
        rows = db.execute(query).fetchall()
        distances = sorted((GEOD.inv(lon, lat, x, y)[2], code) for code, x, y in rows)[:3]
        got = run.nearest[key]
        assert [next(iter(i.values())) for i in got] == [code for _, code in distances]
        for item, (metres, _) in zip(got, distances, strict=True):
            assert item["distance_m"] == pytest.approx(metres, abs=0.5)


def test_shelters_against_the_people_to_evacuate(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario
) -> None:
    lon, lat = 106.05, 20.65
    for kind in ("flood", "fire"):
        run = _run(db, catalog, emergency, {"incident": kind, "at": [lon, lat], "rings": [500, 1000, 2000]})
        rows = db.execute(
            "SELECT shelter_code, capacity, flood_safe, ST_X(geom), ST_Y(geom) FROM layers.shelters"
        ).fetchall()
        usable = set()
        for code, _, safe, x, y in rows:
            d = GEOD.inv(lon, lat, x, y)[2]
            if d <= 2000 + 10000 and (d > 2000 or (kind == "flood" and safe)):
                usable.add(code)
        assert {s["shelter_code"] for s in run.shelters["usable"]} == usable
        capacity = sum(c for code, c, *_ in rows if code in usable)
        assert run.shelters["capacity"] == capacity
        people = run.rings[-1]["people_within"]
        assert run.shelters["people_to_evacuate"] == people
        assert sum(s["assigned_people"] for s in run.shelters["usable"]) == pytest.approx(people, abs=len(usable))
        total_flag = [f for f in run.flags if f["where"] == "total"]
        assert bool(total_flag) == (capacity < people)
        over = {s["shelter_code"] for s in run.shelters["usable"] if s["assigned_people"] > s["capacity"]}
        assert {f["where"] for f in run.flags if f["kind"] == "shelter over capacity"} == over
        severities = [f["severity"] for f in run.flags if f["where"] != "total"]
        assert severities == sorted(severities, reverse=True)


def test_flooded_zone_and_commune_contacts(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario, dsn: str
) -> None:
    zone = shapely.box(106.03, 20.63, 106.07, 20.67)
    run = _run(db, catalog, emergency, {"incident": "flood", "zone": shapely.geometry.mapping(zone)})
    assert [r["label"] for r in run.rings] == ["zone"]
    buildings = gpd.read_postgis("SELECT households, geom FROM layers.buildings WHERE households > 0", dsn)
    assert run.rings[0]["mapped_households"] == buildings[buildings.intersects(zone)].households.sum()
    codes = {
        r[0]
        for r in db.execute(
            "SELECT code FROM layers.communes WHERE valid_to IS NULL "
            "AND ST_Intersects(geom, ST_MakeEnvelope(106.03, 20.63, 106.07, 20.67, 4326))"
        )
    }
    assert {c["code"] for c in run.communes} == codes
    for commune in run.communes:
        roles = [c["role"] for c in commune["contacts"]]
        assert roles == ["chairman", "vice_chairman", "police_chief", "military_commander"]
        assert commune["contacts"][0]["title"].endswith(commune["name"])
    # a shelter inside a flooded zone is used only when it is safe in floods
    for shelter in run.shelters["usable"]:
        assert not shelter["inside_zone"] or shelter["flood_safe"] is True


def test_small_exposures_are_suppressed(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario
) -> None:
    lon, lat = db.execute(
        "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM layers.buildings "
        "WHERE households = 1 ORDER BY fid LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    incident = incident_from_request(
        db, {"incident": "fire", "at": [lon, lat], "rings": [5]}, emergency, catalog, CONSOLE
    )
    hidden = run_emergency(db, catalog, emergency, incident, store=False, privacy_threshold=50, viewer=CONSOLE)
    assert hidden.rings[0]["mapped_households"] is None and hidden.suppressed >= 1
    shown = run_emergency(db, catalog, emergency, incident, store=False, viewer=PERSONAL, privacy_threshold=50)
    assert shown.rings[0]["mapped_households"] == 1 and shown.suppressed == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"incident": "meteor", "at": [106.05, 20.65]}, "incident must be one of"),
        ({"incident": "flood"}, "either at"),
        ({"incident": "flood", "at": [106.05, 20.65], "zone": {"type": "Polygon"}}, "either at"),
        ({"incident": "flood", "at": [106.05, 20.65], "rings": [1000, 500]}, "rings must ascend"),
        ({"incident": "flood", "at": [106.05, 20.65], "rings": [0, 500]}, "rings must ascend"),
        ({"incident": "flood", "at": [106.05, 20.65], "rings": [25000]}, "at most 20,000"),
        ({"incident": "flood", "at": [104.0, 20.65], "rings": [20000]}, "does not reach the province"),
        ({"incident": "flood", "at": [106.05, "x"]}, "finite number"),
        ({"incident": "flood", "at": [106.05, 20.65], "radius": 3}, "unknown fields"),
        ({"incident": "flood", "zone": {"type": "Point", "coordinates": [1, 2]}}, "Polygon"),
    ],
)
def test_bad_incidents_say_what_is_wrong(
    db: psycopg.Connection[Any], catalog: Catalog, emergency: EmergencyScenario, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        incident_from_request(db, body, emergency, catalog, CONSOLE)


def test_emergency_over_http_in_vn2000_and_stored(client: TestClient, db: psycopg.Connection[Any]) -> None:
    config = client.get("/api/emergency").json()
    assert config["rings"] == [500.0, 1000.0, 2000.0] and "flood" in config["incidents"]
    wgs = client.post("/api/emergency/run", json={"incident": "flood", "at": [106.05, 20.65]}).json()
    # the same point in VN-2000 / TM-3 105°30' (EPSG:9209; easting, northing as the registry publishes it)
    x, y = db.execute(
        "SELECT ST_X(p), ST_Y(p) FROM ST_Transform(ST_SetSRID(ST_MakePoint(106.05, 20.65), 4326), 989209) p"
    ).fetchone()  # type: ignore[misc]
    vn = client.post("/api/emergency/run", json={"incident": "flood", "at": [x, y], "crs": "EPSG:9209"}).json()
    # a leader without personal data: cumulative rings only, rounded (gis_ioc.scenarios.disclosure)
    assert [r["people_within"] for r in vn["rings"]] == [r["people_within"] for r in wgs["rings"]]
    assert all(r["people"] is None and r["people_within"] % 10 == 0 for r in wgs["rings"] if r["people_within"])
    stored = get_run(db, wgs["id"], CONSOLE)
    assert stored["scenario"] == "emergency" and stored["rings"] == wgs["rings"]
    assert stored["incident"] == {"incident": "flood", "at": [106.05, 20.65], "crs": None, "rings": [500, 1000, 2000]}
    bad = client.post("/api/emergency/run", json={"incident": "flood", "at": [106.05, 20.65], "rings": [-1]})
    assert bad.status_code == 400 and "rings" in bad.json()["detail"]
    assert client.post("/api/emergency/run", json=[1, 2]).status_code in (400, 422)


def test_a_past_quarter_reported_on_time_is_not_stale(
    db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any]
) -> None:
    run = run_scenario(
        db, catalog, scenarios["health"], selectors.province(db), "2026-Q2", store=False, now=NOW, viewer=CONSOLE
    )
    assert {i["total"]["status"] for i in run.indicators} <= {"met", "not met", "no target"}


def test_rerun_reproduces_and_compares(
    db: psycopg.Connection[Any], catalog: Catalog, scenarios: dict[str, Any]
) -> None:
    first = run_scenario(
        db, catalog, scenarios["health"], selectors.radius(db, 106.05, 20.65, 2000), "2026-Q3", viewer=CONSOLE
    )
    same = rerun(db, catalog, scenarios, first.id, viewer=CONSOLE)
    assert same["after"]["id"] != first.id and not same["data_changed"]
    assert all(row["same"] for row in same["indicators"] if row["before"]["value"] is not None)
    later = rerun(db, catalog, scenarios, first.id, "2026-Q2", viewer=CONSOLE)
    direct = run_scenario(
        db,
        catalog,
        scenarios["health"],
        selectors.radius(db, 106.05, 20.65, 2000),
        "2026-Q2",
        store=False,
        viewer=CONSOLE,
    )
    for row in later["indicators"]:
        expected = _indicator(direct, row["indicator"])["total"]["value"]
        before = row["before"]["value"]
        assert row["after"]["value"] == pytest.approx(expected)
        if expected is not None and before is not None:
            assert row["change"] == pytest.approx(expected - before)
