"""HTTP push of SenML batches: per-device credential (X-Device-Key), the same storage path as MQTT,
counts in the answer, 4xx naming the problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from gis_ioc.api import iot as iot_api
from gis_ioc.app import create_app
from tests.conftest import INSIDE
from tests.iot.conftest import Sensors, now, pack

AQ, OTHER = "HY-AQ-T01", "HY-AQ-T02"
DOOR = f"/api/iot/devices/{AQ}/senml"


@pytest.fixture(scope="module")
def http(sensors: Sensors) -> Iterator[TestClient]:
    app = create_app(sensors.settings)
    if not any(getattr(r, "path", "") == DOOR.replace(AQ, "{device_code}") for r in app.routes):
        app.include_router(iot_api.router)  # until gis_ioc/app.py includes it
    with TestClient(app, client=INSIDE) as client:
        yield client


def _key(sensors: Sensors, device: str = AQ) -> dict[str, str]:
    return {"X-Device-Key": f"{device}:{sensors.devices[device]}"}


def test_a_batch_is_stored_and_counted(clean: Sensors, http: TestClient) -> None:
    t = now() - timedelta(minutes=10)
    body = json.dumps(
        [
            {"bn": f"{AQ}:", "bt": t.timestamp(), "bu": "ug/m3", "n": "pm25", "v": 21.5},
            {"n": "pm10", "v": 40.0, "t": 60},
            {"n": "pm25", "v": 3000.0, "t": 120},  # out of range: stored, flagged
            {"n": "so2", "v": 1.0, "t": 180},  # no datastream: dead letter
        ]
    )
    answer = http.post(DOOR, content=body, headers={**_key(clean), "Content-Type": "application/senml+json"})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert (got["accepted"], got["duplicates"], got["flagged"], got["dead_lettered"]) == (3, 0, 1, 1)
    assert got["problems"] == [
        {
            "record": 3,
            "code": "no_datastream",
            "reason": "thiết bị HY-AQ-T01 chưa đăng ký luồng dữ liệu 'so2' (gis-ioc iot register)",
        }
    ]
    again = http.post(f"{DOOR}?lang=en", content=body, headers=_key(clean)).json()
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert again["problems"][0]["reason"] == "device HY-AQ-T01 has no datastream 'so2' (gis-ioc iot register)"
    assert clean.count() == 3


def test_no_or_a_wrong_credential_is_401(clean: Sensors, http: TestClient) -> None:
    body = pack([("pm25", 10.0, now())])
    missing = http.post(DOOR, content=body)
    assert missing.status_code == 401
    assert "X-Device-Key" in missing.json()["detail"] and "mã thiết bị" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("X-Device-Key")
    wrong = http.post(DOOR, content=body, headers={"X-Device-Key": f"{AQ}:not-the-secret"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "khoá của thiết bị 'HY-AQ-T01' không đúng"
    assert clean.count() == 0
    refusals = "SELECT count(*) FROM gis_ioc.audit WHERE actor = %s AND action = 'iot.push' AND result = 'denied'"
    assert clean.count(refusals, (f"device:{AQ}",)) >= 1


def test_another_devices_stream_is_403(clean: Sensors, http: TestClient) -> None:
    body = pack([("pm25", 10.0, now())])
    door = http.post(f"/api/iot/devices/{OTHER}/senml", content=body, headers=_key(clean))
    assert door.status_code == 403
    assert door.json()["detail"] == f"thiết bị {AQ} không được gửi số đo của thiết bị {OTHER}"
    named = json.dumps([{"n": f"{OTHER}:pm25", "v": 10.0}])
    record = http.post(f"{DOOR}?lang=en", content=named, headers=_key(clean))
    assert record.status_code == 403
    assert record.json()["detail"] == f"record 0 names '{OTHER}:pm25', a stream of another device than {AQ}"
    assert clean.count() == 0


def test_a_malformed_pack_is_400_naming_the_problem(clean: Sensors, http: TestClient) -> None:
    answer = http.post(DOOR, content=b'{"n": "pm25", "v": 1}', headers=_key(clean))
    assert answer.status_code == 400
    assert answer.json()["detail"] == "gói SenML phải là một mảng JSON các bản ghi"
    assert answer.json()["code"] == "iot.not_array"
    english = http.post(DOOR, content=b"[{", headers={**_key(clean), "Accept-Language": "en"})
    assert english.status_code == 400 and english.json()["detail"].startswith("the payload is not valid JSON")
    nothing = http.post(DOOR, content=json.dumps([{"n": "pm3", "v": 1}]), headers=_key(clean))
    assert nothing.status_code == 422
    assert nothing.json()["detail"].startswith("không lưu được số đo nào: đại lượng 'pm3' không có")
    assert clean.count() == 0
    assert clean.count("SELECT count(*) FROM gis_ioc.iot_dead_letters WHERE source = 'http'") == 3
