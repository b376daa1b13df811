"""Per-commune indicators of a quarter: received, overdue, resolved on time, satisfaction, flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.feedback.indicators import quarter, vn_number
from tests.feedback.conftest import Place, Staff, report


def test_quarters_and_numbers_read_the_vietnamese_way() -> None:
    start, end, name = quarter("2026-Q3")
    assert name == "Quý III/2026"
    assert start.isoformat() == "2026-07-01T00:00:00+07:00" and end.isoformat() == "2026-10-01T00:00:00+07:00"
    assert quarter("2026-Q4")[1].isoformat() == "2027-01-01T00:00:00+07:00"
    assert vn_number(1234.5) == "1.234,5"


def test_indicators_per_commune(fb: TestClient, staff: Staff, db: psycopg.Connection[Any]) -> None:
    code, name, lon, lat = db.execute(
        """SELECT code, name, ST_X(p), ST_Y(p) FROM (SELECT code, name, ST_PointOnSurface(geom) AS p
           FROM layers.communes WHERE valid_to IS NULL ORDER BY code OFFSET 5 LIMIT 1) s"""
    ).fetchone() or (None, None, None, None)
    here = Place(str(code), str(name), float(lon), float(lat))
    done = report(fb, here, "chieu_sang")
    late = report(fb, here, "chieu_sang", lat=f"{here.lat + 0.003:.7f}")  # 330 m away: not a duplicate
    rid = int(done["service_request_id"])
    for to, extra in (("in_progress", {}), ("resolved", {"answer": "Đã sửa xong."})):
        moved = fb.post(f"/api/feedback/reports/{rid}/transition", headers=staff.leader, json={"to": to, **extra})
        assert moved.status_code == 200, moved.text
    rated = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": done["reporter_token"], "score": 3})
    assert rated.status_code == 200
    late_id = int(late["service_request_id"])
    db.execute("UPDATE gis_ioc.feedback_reports SET due_at = now() - interval '1 minute' WHERE id = %s", (late_id,))

    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    period = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    answer = fb.get(f"/api/feedback/indicators?period={period}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["period_name"].startswith("Quý ") and body["targets"]["resolved_on_time_pct"] == 90
    row = next(c for c in body["communes"] if c["commune_code"] == here.code)
    assert row["received"] == 2 and row["resolved"] == 1 and row["overdue"] == 1
    assert row["resolved_on_time_pct"] == 100.0 and row["resolved_on_time_text"] == "100,0 %"
    assert row["satisfaction"] == 3.0 and row["satisfaction_text"] == "3,0"
    assert row["flags"] == ["satisfaction"]  # below the 4.0 target; on time above 90 %
    assert fb.get("/api/feedback/indicators").status_code == 200  # the current quarter by default
    wrong = fb.get("/api/feedback/indicators?period=2026-5")
    assert wrong.status_code == 400 and "2026-Q3" in wrong.json()["detail"]


def test_the_socio_economic_overview_counts_citizen_reports(
    fb: TestClient, staff: Staff, db: psycopg.Connection[Any]
) -> None:
    """The overview scenario's report indicators, over one commune, against their targets (issue 15, item 4)."""
    code, name, lon, lat = db.execute(
        """SELECT code, name, ST_X(p), ST_Y(p) FROM (SELECT code, name, ST_PointOnSurface(geom) AS p
           FROM layers.communes WHERE valid_to IS NULL ORDER BY code OFFSET 9 LIMIT 1) s"""
    ).fetchone() or (None, None, None, None)
    here = Place(str(code), str(name), float(lon), float(lat))
    done = report(fb, here, "chieu_sang")
    late = report(fb, here, "chieu_sang", lat=f"{here.lat + 0.003:.7f}")
    rid = int(done["service_request_id"])
    for to, extra in (("in_progress", {}), ("resolved", {"answer": "Đã thay bóng đèn."})):
        assert fb.post(
            f"/api/feedback/reports/{rid}/transition", headers=staff.leader, json={"to": to, **extra}
        ).is_success
    assert fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": done["reporter_token"], "score": 3}).is_success
    db.execute(
        "UPDATE gis_ioc.feedback_reports SET due_at = now() - interval '1 minute' WHERE id = %s",
        (int(late["service_request_id"]),),
    )
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    period = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    run = fb.post(
        "/api/scenarios/socio_economic/run", headers=staff.leader, json={"period": period, "communes": [here.code]}
    )
    assert run.status_code == 200, run.text
    figures = {i["id"]: i for i in run.json()["indicators"]}
    assert figures["feedback_received"]["total"]["value"] == 2
    assert figures["feedback_overdue"]["total"]["value"] == 1
    assert figures["feedback_overdue"]["total"]["status"] == "not met"  # the target is none overdue
    assert figures["feedback_on_time_rate"]["total"]["value"] == 100
    assert figures["feedback_on_time_rate"]["total"]["status"] == "met"
    assert figures["feedback_satisfaction"]["total"]["value"] == 3
    assert figures["feedback_satisfaction"]["total"]["status"] == "not met"
    flagged = {f["indicator"] for f in run.json()["flags"]}
    assert {"feedback_overdue", "feedback_satisfaction"} <= flagged
