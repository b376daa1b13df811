"""Open311 GeoReport v2: services, intake (form and JSON), routing to the commune by its polygon, GET
filters with the 90-day default, errors in Open311's form, and no personal data in any public answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.feedback.calendar import add_working_hours
from gis_ioc.feedback.config import load_config
from gis_ioc.settings import PROJECT_ROOT
from tests.feedback.conftest import Place, one, report

CONFIG_DIR = PROJECT_ROOT / "config"

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_services_are_the_categories_in_vietnamese_utf8(fb: TestClient) -> None:
    answer = fb.get("/open311/v2/services.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    services = {s["service_code"]: s for s in answer.json()}
    assert services["duong_hu_hong"]["service_name"] == "Hư hỏng đường, cầu, vỉa hè"
    assert "Hư hỏng đường".encode() in answer.content  # UTF-8, not \u escapes
    assert services["duong_hu_hong"]["group"] == "Hạ tầng giao thông"
    assert services["su_co_dien"]["metadata"] is False and services["su_co_dien"]["type"] == "realtime"
    english = fb.get("/open311/v2/services.json", headers={"Accept-Language": "en-GB,en;q=0.9"}).json()
    assert {s["service_code"]: s["service_name"] for s in english}["su_co_dien"] == "Power failure"


def test_a_report_is_routed_to_the_commune_whose_polygon_holds_it(
    fb: TestClient, places: list[Place], db: psycopg.Connection[Any]
) -> None:
    for place in places:
        got = report(fb, place)
        rid = int(got["service_request_id"])
        assert got["reporter_token"] and "Đã tiếp nhận" in got["service_notice"]
        assert place.name in got["service_notice"]  # "UBND <commune> xử lý trước …"
        code, unit = db.execute(
            "SELECT commune_code, unit FROM gis_ioc.feedback_reports WHERE id = %s", (rid,)
        ).fetchone() or (None, None)
        assert code == place.code and unit == f"xa:{place.code}"
        # the same answer from the polygons themselves
        inside = one(
            db,
            """SELECT code FROM layers.communes WHERE valid_to IS NULL
               AND ST_Contains(geom, (SELECT geom FROM gis_ioc.feedback_reports WHERE id = %s))""",
            (rid,),
        )
        assert inside == place.code
        public = fb.get(f"/open311/v2/requests/{rid}.json").json()[0]
        assert public["commune_code"] == place.code and public["agency_responsible"] == f"UBND {place.name}"
        assert public["status"] == "open" and public["detailed_status"] == "received"


def test_a_category_handled_by_a_department_goes_there(fb: TestClient, places: list[Place]) -> None:
    got = report(fb, places[0], "su_co_dien", json=True, urgent=True)
    public = fb.get(f"/open311/v2/requests/{got['service_request_id']}.json").json()[0]
    assert public["agency_responsible"] == "Công ty Điện lực Hưng Yên"
    received = datetime.fromisoformat(public["requested_datetime"])
    due = datetime.fromisoformat(public["expected_datetime"])
    # 2 working hours of the calendar from the moment it was received (the answer is to the second)
    expected = add_working_hours(load_config(CONFIG_DIR).calendar, received, 2)
    assert abs((due - expected).total_seconds()) <= 1, (received, due, expected)


def test_a_point_outside_the_province_is_a_clear_400(fb: TestClient, db: psycopg.Connection[Any]) -> None:
    before = one(db, "SELECT count(*) FROM gis_ioc.feedback_reports")
    answer = fb.post(
        "/open311/v2/requests.json",
        data={"service_code": "rac_thai", "lat": "21.0285", "long": "105.8542", "description": "Rác ở Hà Nội"},
    )
    assert answer.status_code == 400
    error = answer.json()[0]
    assert error["code"] == 400 and "ngoài tỉnh Hưng Yên" in error["description"]
    english = fb.post(
        "/open311/v2/requests.json",
        data={"service_code": "rac_thai", "lat": "21.0285", "long": "105.8542", "description": "x"},
        headers={"Accept-Language": "en"},
    )
    assert "outside Hưng Yên province" in english.json()[0]["description"]
    assert one(db, "SELECT count(*) FROM gis_ioc.feedback_reports") == before  # nothing half-written


def test_bad_input_names_the_problem(fb: TestClient, places: list[Place]) -> None:
    p = places[0]
    cases = [
        ({"service_code": "nope", "lat": p.lat, "long": p.lon, "description": "x"}, "service_code"),
        ({"service_code": "rac_thai", "lat": "abc", "long": p.lon, "description": "x"}, "lat"),
        ({"service_code": "rac_thai", "lat": p.lat, "long": p.lon, "description": "  "}, "description"),
        ({"service_code": "rac_thai", "lat": p.lat, "long": p.lon, "description": "x", "phone": "12"}, "điện thoại"),
        ({"service_code": "rac_thai", "lat": p.lat, "long": p.lon, "description": "x", "email": "a@"}, "thư điện tử"),
    ]
    for body, word in cases:
        answer = fb.post("/open311/v2/requests.json", data=body)
        assert answer.status_code == 400, (body, answer.text)
        assert word in answer.json()[0]["description"], answer.text
    assert fb.get("/open311/v2/requests/abc.json").status_code == 404
    missing = fb.get("/open311/v2/requests/999999999.json")
    assert missing.status_code == 404 and missing.json()[0]["description"] == "không có phản ánh số 999999999"


def test_get_requests_filters_by_status_and_date_with_a_90_day_default(
    fb: TestClient, places: list[Place], db: psycopg.Connection[Any]
) -> None:
    old = int(report(fb, places[2], "cay_xanh")["service_request_id"])
    new = int(report(fb, places[2], "cay_xanh", description="Cây đổ chắn ngang đường")["service_request_id"])
    db.execute("UPDATE gis_ioc.feedback_reports SET received_at = now() - interval '120 days' WHERE id = %s", (old,))
    db.execute("UPDATE gis_ioc.feedback_reports SET state = 'rejected' WHERE id = %s", (new,))

    def ids(query: str) -> set[int]:
        answer = fb.get(f"/open311/v2/requests.json?{query}")
        assert answer.status_code == 200, answer.text
        return {int(r["service_request_id"]) for r in answer.json()}

    default = ids("service_code=cay_xanh")
    assert new in default and old not in default  # the last 90 days by default
    assert new in ids("service_code=cay_xanh&status=closed")
    assert new not in ids("service_code=cay_xanh&status=open")
    assert new in ids("service_code=cay_xanh&status=rejected")
    start = (datetime.now(VN) - timedelta(days=130)).isoformat(timespec="seconds")
    end = (datetime.now(VN) - timedelta(days=50)).isoformat(timespec="seconds")
    window = ids(f"service_code=cay_xanh&start_date={start.replace('+', '%2B')}&end_date={end.replace('+', '%2B')}")
    assert old in window and new not in window
    assert ids(f"service_request_id={old},{new}") == {old, new}  # ids regardless of dates
    too_long = fb.get("/open311/v2/requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z")
    assert too_long.status_code == 400
    assert "dài quá 90 ngày" in too_long.json()[0]["description"]
    reversed_ = fb.get("/open311/v2/requests.json?start_date=2026-06-01&end_date=2026-05-01")
    assert reversed_.status_code == 400 and "end_date" in reversed_.json()[0]["description"]
    assert fb.get("/open311/v2/requests.json?status=lost").status_code == 400
    assert fb.get("/open311/v2/requests.json?colour=red").status_code == 400


def test_no_name_phone_or_email_in_any_public_answer(fb: TestClient, places: list[Place]) -> None:
    got = report(
        fb, places[1], "rac_thai", first_name="Trần", last_name="Văn Bình", phone="0987654321", email="binh@x.vn"
    )
    rid = got["service_request_id"]
    answers = [
        fb.get("/open311/v2/requests.json").text,
        fb.get(f"/open311/v2/requests/{rid}.json").text,
        fb.get("/api/feedback/map").text,
    ]
    assert rid in answers[0] and rid in answers[1] and f'"id":{rid}' in answers[2].replace(" ", "")
    for text in answers:
        for personal in ("0987654321", "binh@x.vn", "Văn Bình", "hoa.nguyen@example.vn", "Thị Hoa"):
            assert personal not in text
        assert "token" not in text
    geo = fb.get("/api/feedback/map")
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = next(f for f in geo.json()["features"] if str(f["id"]) == rid)
    assert set(feature["properties"]) >= {"category_name", "state_name", "commune_name", "received", "due"}
    assert feature["properties"]["state_name"] == "Đã tiếp nhận"
