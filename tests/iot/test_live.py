"""Serving the sensors: /api/iot/stations, the server-sent event stream, alerts over HTTP, SensorThings reads.

Asked through the application with real accounts: the devices are an internal layer, so what each caller
sees comes from the access core (anonymous callers see no station; a commune officer only their communes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.iot import judge, model
from gis_ioc.settings import Settings
from tests.conftest import INSIDE, key_account, push_readings, scalar


@pytest.fixture(scope="module")
def keys(settings: Settings, loaded: DemoResult) -> dict[str, str]:
    with connect(settings, autocommit=True) as conn:
        return {
            "leader": key_account(conn, "live.leader", ["leader"]),
            "officer": key_account(conn, "live.officer", ["commune_officer"], communes=["11953"]),
            "external": key_account(conn, "live.external", ["external"]),
        }


@pytest.fixture(scope="module")
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app, client=INSIDE) as c:
        yield c


@pytest.fixture(scope="module")
def station(settings: Settings, loaded: DemoResult) -> dict[str, Any]:
    """An air-quality station of Phố Hiến (11953) with hourly PM2.5 and PM10, and the Hưng Yên gauge."""
    with connect(settings, autocommit=True) as conn:
        device = str(
            scalar(
                conn,
                "SELECT min(device_code) FROM layers.iot_devices WHERE kind = 'air_quality' AND commune_code = '11953'",
            )
        )
        pm25 = model.register(conn, device, "pm25", 3600)
        pm10 = model.register(conn, device, "pm10", 3600)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        readings = [("pm25", 47.0, end - timedelta(hours=k)) for k in range(12)]
        readings += [("pm10", 160.0, end - timedelta(hours=k)) for k in range(12)]
        push_readings(conn, device, readings)
        gauge = judge.load_rules(settings.config_dir).stations[0].device
        level = model.register(conn, gauge, "water_level", 900)
        push_readings(conn, gauge, [("water_level", 5.50, datetime.now(UTC) - timedelta(minutes=1))])
        judge.after_commit(conn, [pm25.id, pm10.id, level.id], settings.config_dir)
    return {"device": device, "pm25": pm25.id, "pm10": pm10.id, "gauge": gauge, "level": level.id, "end": end}


def _feature(answer: dict[str, Any], device: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in answer["features"] if f["id"] == device]
    assert len(found) == 1, device
    return found[0]


def test_stations_with_latest_values_aqi_alarm_and_staleness(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    answer = web.get("/api/iot/stations", headers={"X-API-Key": keys["leader"]})
    assert answer.status_code == 200, answer.text
    props = _feature(answer.json(), station["device"])["properties"]
    assert {r["property"]: r["value"] for r in props["readings"]} == {"pm10": 160.0, "pm25": 47.0}
    assert [r["name"] for r in props["readings"]] == ["Bụi PM10", "Bụi PM2.5"]
    # hourly NowCast of steady readings is the reading: PM2.5 47 → 94, PM10 160 → 105 (Kém) decides
    assert props["aqi"] | {"at": None} == {
        "value": 105,
        "dominant": "pm10",
        "basis": "hour",
        "at": None,
        "band": "poor",
        "label": "Kém",
        "colour": "#ff7e00",
    }
    assert props["stale"] is False and props["alerts"] >= 1  # AQI Kém opened an alert
    gauge = _feature(answer.json(), station["gauge"])["properties"]
    assert gauge["water"] | {"thresholds": None} == {
        "station": "hung_yen",
        "name": "Trạm thủy văn Hưng Yên",
        "river": "Sông Hồng",
        "level": 1,
        "label": "Báo động cấp I",
        "thresholds": None,
    }
    english = web.get("/api/iot/stations?lang=en", headers={"X-API-Key": keys["leader"]}).json()
    assert _feature(english, station["gauge"])["properties"]["water"]["label"] == "Alarm level I"
    assert _feature(english, station["device"])["properties"]["aqi"]["label"] == "Poor"


def test_stations_are_read_through_the_access_core(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    assert web.get("/api/iot/stations").json()["features"] == []  # anonymous: an internal layer
    assert web.get("/api/iot/stations", headers={"X-API-Key": keys["external"]}).json()["features"] == []
    own = web.get("/api/iot/stations", headers={"X-API-Key": keys["officer"]}).json()["features"]
    assert station["device"] in {f["id"] for f in own}
    assert {f["properties"]["commune_code"] for f in own} == {"11953"}  # the gauge of Tân Hưng is not theirs


def test_alerts_over_http(web: TestClient, keys: dict[str, str], station: dict[str, Any]) -> None:
    leader = {"X-API-Key": keys["leader"]}
    live = web.get("/api/iot/alerts?state=live", headers=leader).json()["alerts"]
    [aqi] = [a for a in live if a["device_code"] == station["device"] and a["condition"] == "aqi"]
    assert web.get("/api/iot/alerts").json()["alerts"] == []
    assert web.post(f"/api/iot/alerts/{aqi['id']}/acknowledge").status_code == 401
    refused = web.post(f"/api/iot/alerts/{aqi['id']}/acknowledge", headers={"X-API-Key": keys["external"]})
    assert refused.status_code == 403
    done = web.post(f"/api/iot/alerts/{aqi['id']}/acknowledge", headers=leader, json={"note": "Đã báo Sở"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["acknowledged_by"]) == ("acknowledged", "live.leader")
    again = web.post(f"/api/iot/alerts/{aqi['id']}/acknowledge", headers={**leader, "Accept-Language": "vi"})
    assert again.status_code == 409
    assert web.post("/api/iot/alerts/999999999/acknowledge", headers=leader).status_code == 404


def test_sensorthings_datastreams_and_observations(
    web: TestClient, keys: dict[str, str], station: dict[str, Any]
) -> None:
    leader = {"X-API-Key": keys["leader"]}
    listing = web.get("/api/iot/v1.1/Datastreams?$top=1000&$count=true", headers=leader).json()
    ids = {d["@iot.id"] for d in listing["value"]}
    assert {station["pm25"], station["pm10"]} <= ids and listing["@iot.count"] >= len(ids)
    one = web.get(f"/api/iot/v1.1/Datastreams({station['pm25']})", headers=leader).json()
    assert one["unitOfMeasurement"]["symbol"] == "µg/m³" and one["ObservedProperty"]["@iot.id"] == "pm25"
    end: datetime = station["end"]
    since = (end - timedelta(hours=3)).isoformat()
    url = f"/api/iot/v1.1/Datastreams({station['pm25']})/Observations"
    page = web.get(url, params={"$filter": f"phenomenonTime gt {since}", "$top": 2, "$count": "true"}, headers=leader)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["@iot.count"] == 3  # end − 2 h, end − 1 h, end
    assert [o["phenomenonTime"] for o in body["value"]] == [end.isoformat(), (end - timedelta(hours=1)).isoformat()]
    assert body["value"][0]["result"] == 47.0 and "%24skip=2" in body["@iot.nextLink"]
    bad = web.get(url, params={"$filter": "result gt 5"}, headers=leader)
    assert bad.status_code == 400 and "phenomenonTime" in bad.text
    assert web.get(url, params={"$filter": "phenomenonTime gt 2026-01-01"}, headers=leader).status_code == 400
    assert web.get(url, params={"$top": 5000}, headers=leader).status_code == 400
    assert web.get(url).status_code == 404  # anonymous: the device is not readable
    assert web.get("/api/iot/v1.1/Datastreams(999999999)/Observations", headers=leader).status_code == 404


def _events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_the_stream_pushes_new_readings_and_alerts(
    web: TestClient, keys: dict[str, str], station: dict[str, Any], settings: Settings
) -> None:
    def later() -> None:
        time.sleep(1.0)
        with connect(settings, autocommit=True) as conn:
            push_readings(conn, station["gauge"], [("water_level", 6.70, datetime.now(UTC) - timedelta(seconds=5))])
            judge.after_commit(conn, [station["level"]], settings.config_dir)

    pusher = threading.Thread(target=later)
    pusher.start()
    started = time.monotonic()
    answer = web.get("/api/iot/stream?seconds=3", headers={"X-API-Key": keys["leader"]})
    pusher.join()
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert time.monotonic() - started < 10
    events = _events(answer.text)
    first_name, first = events[0]
    assert first_name == "stations" and station["device"] in {f["id"] for f in first["features"]}
    pushed = [d for name, d in events[1:] if name == "stations"]
    assert pushed, events
    gauge = _feature(pushed[-1], station["gauge"])["properties"]
    assert gauge["water"]["level"] == 2 and gauge["water"]["label"] == "Báo động cấp II"
    assert [f["id"] for f in pushed[-1]["features"]] == [station["gauge"]]  # only what changed
    moved = [d for name, d in events if name == "alert" and d["device_code"] == station["gauge"]]
    assert moved and moved[-1]["severity"] == 2 and moved[-1]["condition"] == "water"
    anonymous = _events(web.get("/api/iot/stream?seconds=0").text)
    assert anonymous == [("stations", anonymous[0][1])] and anonymous[0][1]["features"] == []
