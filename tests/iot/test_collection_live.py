"""The ``iot_devices`` OGC collection carries each station's live state (issue 14, item 5): the latest value of
each observed property, the VN_AQI and its band, the flood alarm level, staleness and the alerts not closed,
as read-only fields of its layer file's ``live`` block (view ``gis_ioc.iot_station_live``, state written by
the judge). Asked through the application with real accounts; readings go in through the product's storage
path and the judge, as the ingester stores and judges them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from pydantic import ValidationError

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.iot import aqi, judge, model
from gis_ioc.settings import Settings
from tests.conftest import INSIDE, key_account, push_readings

ITEMS = "/ogc/collections/iot_devices/items"


@pytest.fixture(scope="module")
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app, client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def keys(settings: Settings, station: dict[str, Any]) -> dict[str, str]:
    with connect(settings, autocommit=True) as conn:
        return {
            "leader": key_account(conn, "collive.leader", ["leader"]),
            "officer": key_account(conn, "collive.officer", ["commune_officer"], communes=[station["commune"]]),
            "loader": key_account(conn, "collive.loader", ["gis_officer"]),
        }


@pytest.fixture(scope="module")
def station(settings: Settings, loaded: DemoResult) -> Iterator[dict[str, Any]]:
    """An air-quality station away from test_live.py's (Phố Hiến, 11953), its demo PM datastreams now read
    hourly: 12 hours of steady PM2.5 70 and PM10 60 (hourly NowCast: AQI 133, Kém, decided by PM2.5), and a
    temperature to be read every minute, last read 4 minutes ago (stale); the Hưng Yên gauge at 5,49 m (below
    alarm level I)."""
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT device_code, commune_code FROM layers.iot_devices t WHERE kind = 'air_quality' "
            "AND commune_code NOT IN ('11953', '11977') AND approval = 'approved' ORDER BY 1 LIMIT 1"
        ).fetchone()
        assert row is not None
        device, commune = str(row[0]), str(row[1])
        ids = [model.register(conn, device, p, 3600).id for p in ("pm25", "pm10")]
        ids.append(model.register(conn, device, "temperature", 60).id)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        readings = [("pm25", 70.0, end - timedelta(hours=k)) for k in range(12)]
        readings += [("pm10", 60.0, end - timedelta(hours=k)) for k in range(12)]
        silent_since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)  # 3 intervals are 3 min
        readings.append(("temperature", 24.5, silent_since))
        push_readings(conn, device, readings)
        gauge = judge.load_rules(settings.config_dir).stations[0].device
        level = model.register(conn, gauge, "water_level", 900)
        push_readings(conn, gauge, [("water_level", 5.49, datetime.now(UTC) - timedelta(minutes=3))])
        judge.after_commit(conn, [*ids, level.id], settings.config_dir)
    yield {
        "device": device,
        "commune": commune,
        "gauge": gauge,
        "level": level.id,
        "temperature": ids[2],
        "end": end,
        "since": silent_since,
    }
    with connect(settings, autocommit=True) as conn:  # the gauge's readings of now would outlive the module
        for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
            statement = sql.SQL("DELETE FROM {} WHERE datastream_id = %s").format(sql.Identifier("gis_ioc", table))
            conn.execute(statement, (level.id,))
        conn.execute("DELETE FROM gis_ioc.iot_alerts WHERE device_code = %s", (gauge,))
        conn.execute("DELETE FROM gis_ioc.iot_station_state WHERE device_code = %s", (gauge,))


def _one(web: TestClient, key: str, device: str, **params: str) -> dict[str, Any]:
    answer = web.get(ITEMS, params={"device_code": device, **params}, headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    [feature] = answer.json()["features"]
    return dict(feature["properties"])


def _stations(web: TestClient, key: str) -> dict[str, dict[str, Any]]:
    answer = web.get("/api/iot/stations", headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    return {f["id"]: f["properties"] for f in answer.json()["features"]}


def test_items_carry_the_live_state_as_the_stations_answer_it(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    props = _one(web, keys["leader"], station["device"])
    live = _stations(web, keys["leader"])[station["device"]]
    readings = {r["property"]: r["value"] for r in live["readings"]}
    assert (props["pm25"], props["pm10"], props["temperature"]) == (readings["pm25"], readings["pm10"], 24.5)
    assert (props["pm25"], props["pm10"]) == (70.0, 60.0)
    assert props["water_level"] is None and props["flood_level"] is None  # not a gauge
    assert live["aqi"]["value"] == props["aqi"] == 133
    assert live["aqi"]["band"] == props["aqi_band"] == "poor"
    assert live["aqi"]["dominant"] == props["aqi_dominant"] == "pm25"
    assert live["aqi"]["basis"] == props["aqi_basis"] == "hour"
    assert datetime.fromisoformat(props["aqi_at"]) == datetime.fromisoformat(live["aqi"]["at"]) == station["end"]
    assert props["stale"] is True and live["stale"] is True  # the temperature, silent for 4 minutes
    assert props["open_alerts"] == live["alerts"] >= 2  # AQI Kém and the silent temperature opened alerts
    assert datetime.fromisoformat(props["observed_at"]) == max(station["end"], station["since"])
    # the stored fields are there as before
    assert (props["device_code"], props["commune_code"], props["kind"]) == (
        station["device"],
        station["commune"],
        "air_quality",
    )


def test_the_flood_level_follows_the_gauge(
    web: TestClient, keys: dict[str, str], station: dict[str, Any], settings: Settings
) -> None:
    props = _one(web, keys["leader"], station["gauge"])
    assert (props["water_level"], props["flood_level"]) == (5.49, 0)
    assert _stations(web, keys["leader"])[station["gauge"]]["water"]["level"] == 0
    with connect(settings, autocommit=True) as conn:
        push_readings(conn, station["gauge"], [("water_level", 5.50, datetime.now(UTC) - timedelta(minutes=2))])
        judge.after_commit(conn, [station["level"]], settings.config_dir)
    props = _one(web, keys["leader"], station["gauge"])
    assert (props["water_level"], props["flood_level"]) == (5.5, 1)
    assert _stations(web, keys["leader"])[station["gauge"]]["water"]["level"] == props["flood_level"]
    assert props["aqi"] is None and props["aqi_band"] is None


def test_staleness_turns_with_the_clock_and_clears_with_a_reading(
    web: TestClient, keys: dict[str, str], station: dict[str, Any], settings: Settings
) -> None:
    """A datastream read every minute and silent for 4 minutes is stale (computed when read); a new reading
    clears it. Two reads around the reading differ: nothing was kept."""
    leader = keys["leader"]
    before = web.get(ITEMS, params={"device_code": station["device"]}, headers={"X-API-Key": leader})
    assert before.headers["cache-control"] == "private, no-cache"
    assert before.json()["features"][0]["properties"]["stale"] is True
    assert _stations(web, leader)[station["device"]]["stale"] is True
    with connect(settings, autocommit=True) as conn:
        push_readings(conn, station["device"], [("temperature", 25.0, datetime.now(UTC) - timedelta(seconds=5))])
        judge.after_commit(conn, [station["temperature"]], settings.config_dir)
    after = web.get(ITEMS, params={"device_code": station["device"]}, headers={"X-API-Key": leader})
    assert after.content != before.content
    props = after.json()["features"][0]["properties"]
    assert (props["stale"], props["temperature"]) == (False, 25.0)


def test_filter_sortby_properties_and_queryables_know_the_live_fields(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    leader = {"X-API-Key": keys["leader"]}
    poor = web.get(ITEMS, params={"filter": "aqi_band='poor'", "limit": 1000}, headers=leader)
    assert poor.status_code == 200, poor.text
    bands = {f["properties"]["device_code"]: f["properties"]["aqi_band"] for f in poor.json()["features"]}
    assert station["device"] in bands and set(bands.values()) == {"poor"}
    assert station["gauge"] not in bands
    ranked = web.get(ITEMS, params={"sortby": "-aqi", "limit": 1000, "properties": "device_code,aqi"}, headers=leader)
    assert ranked.status_code == 200, ranked.text
    values = [f["properties"]["aqi"] for f in ranked.json()["features"]]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True) and values[: len(known)] == known  # nulls last
    assert set(ranked.json()["features"][0]["properties"]) == {"device_code", "aqi"}
    assert 133 in known
    same = web.get(ITEMS, params={"aqi_band": "poor", "limit": 1000}, headers=leader).json()["features"]
    assert {f["properties"]["device_code"] for f in same} == set(bands)
    queryables = web.get("/ogc/collections/iot_devices/queryables", headers=leader).json()["properties"]
    assert queryables["aqi_band"]["enum"] == ["good", "moderate", "poor", "bad", "very_bad", "hazardous"]
    labels = [queryables["aqi_band"]["x-enum-labels"][c]["vi"] for c in queryables["aqi_band"]["enum"]]
    assert labels == ["Tốt", "Trung bình", "Kém", "Xấu", "Rất xấu", "Nguy hại"]
    assert queryables["aqi"]["readOnly"] is True and queryables["pm25"]["x-ogc-unit"] == "µg/m³"
    assert "readOnly" not in queryables["device_code"]
    wrong = web.get(ITEMS, params={"sortby": "-aqi_value"}, headers=leader)
    assert wrong.status_code == 400 and "aqi" in wrong.text


def test_a_commune_officer_sees_their_stations_and_anonymous_callers_none(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    own = web.get(ITEMS, params={"limit": 1000, "filter": "aqi IS NOT NULL OR flood_level IS NOT NULL"},
                  headers={"X-API-Key": keys["officer"]})  # fmt: skip
    assert own.status_code == 200, own.text
    codes = {f["properties"]["device_code"] for f in own.json()["features"]}
    assert station["device"] in codes and station["gauge"] not in codes  # the gauge is in Tân Hưng (11977)
    assert {f["properties"]["commune_code"] for f in own.json()["features"]} == {station["commune"]}
    assert web.get(ITEMS).status_code == 404  # an internal layer
    assert web.get(ITEMS, params={"filter": "aqi > 0"}).status_code == 404


def test_a_single_feature_shows_the_live_state_and_keeps_its_row_version(
    web: TestClient, keys: dict[str, str], station: dict[str, Any], settings: Settings
) -> None:
    leader = {"X-API-Key": keys["leader"]}
    listed = web.get(ITEMS, params={"device_code": station["device"]}, headers=leader).json()["features"][0]
    first = web.get(f"{ITEMS}/{listed['id']}", headers=leader)
    assert first.status_code == 200, first.text
    assert first.json()["properties"]["aqi"] == 133 and first.headers["cache-control"] == "private, no-cache"
    tag = first.headers["etag"]
    with connect(settings, autocommit=True) as conn:
        push_readings(conn, station["device"], [("temperature", 26.5, datetime.now(UTC) - timedelta(seconds=2))])
        judge.after_commit(conn, [station["temperature"]], settings.config_dir)
    again = web.get(f"{ITEMS}/{listed['id']}", headers={**leader, "If-None-Match": tag})
    assert again.status_code == 200  # never 304: the live state moved though the row did not
    assert again.headers["etag"] == tag  # the row's version, for If-Match
    assert again.json()["properties"]["temperature"] == 26.5


def test_live_fields_are_read_only(web: TestClient, keys: dict[str, str], station: dict[str, Any]) -> None:
    loader = {"X-API-Key": keys["loader"]}
    listed = web.get(ITEMS, params={"device_code": station["device"]}, headers=loader).json()["features"][0]
    tag = web.get(f"{ITEMS}/{listed['id']}", headers=loader).headers["etag"]
    refused = web.patch(
        f"{ITEMS}/{listed['id']}", json={"properties": {"aqi": 10}}, headers={**loader, "If-Match": tag}
    )
    assert refused.status_code == 400, refused.text
    assert "aqi" in refused.json()["detail"] and "chỉ đọc" in refused.json()["detail"]
    english = web.patch(
        f"{ITEMS}/{listed['id']}?lang=en",
        json={"properties": {"stale": False, "status": "online"}},
        headers={**loader, "If-Match": tag},
    )
    assert english.status_code == 400 and "read-only" in english.json()["detail"]
    feature = {"type": "Feature", "geometry": listed["geometry"], "properties": {**listed["properties"]}}
    created = web.post(ITEMS, json=feature, headers={**loader, "Content-Type": "application/geo+json"})
    assert created.status_code == 400 and "chỉ đọc" in created.json()["detail"]


def test_csv_html_and_history_pages_carry_the_live_columns(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    leader = {"X-API-Key": keys["leader"]}
    answer = web.get(ITEMS, params={"f": "csv", "device_code": station["device"]}, headers=leader)
    assert answer.status_code == 200, answer.text
    [row] = list(csv.DictReader(io.StringIO(answer.text)))
    assert (row["aqi"], row["aqi_band"], row["pm25"]) == ("133", "poor", "70.0")  # a number field, whole or not
    assert "no-cache" in answer.headers["cache-control"]
    page = web.get(ITEMS, params={"f": "html", "device_code": station["device"]}, headers=leader)
    assert page.status_code == 200 and "aqi_band" in page.text and "poor" in page.text
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    then = web.get(ITEMS, params={"datetime": now, "device_code": station["device"]}, headers=leader)
    assert then.status_code == 200, then.text
    assert then.json()["features"][0]["properties"]["aqi_band"] == "poor"


def test_the_layer_file_declares_the_live_fields(catalog: Catalog, settings: Settings) -> None:
    layer = catalog.layer("iot_devices")
    assert layer.live is not None and layer.live.source == "iot_station_live"
    assert [f.name for f in layer.fields] == [f.name for f in layer.stored_fields()]  # the table's columns
    assert len(layer.published().fields) == len(layer.fields) + len(layer.live.fields)
    band = layer.published().field("aqi_band")
    table = aqi.load_table(settings.config_dir)
    assert band is not None and list(band.codes) == [b.code for b in table.bands]
    assert [v.label.vi for v in band.values or ()] == [b.vi for b in table.bands]
    raw = layer.model_dump()
    optional = next(f for f in raw["fields"] if not f["required"])
    clash = {**raw, "live": {"source": "iot_station_live", "fields": [optional]}}
    with pytest.raises(ValidationError, match="clash with stored fields"):
        Layer.model_validate(clash)
    bad_source = {**raw, "live": {**raw["live"], "source": "gis_ioc.iot_station_live; DROP TABLE x"}}
    with pytest.raises(ValidationError, match="source"):
        Layer.model_validate(bad_source)
