"""The workflow end to end through HTTP: the handling unit's queue, transitions (409 when illegal), the
answer, the reporter's rating with the intake token, escalation of overdue reports, duplicates proposed
for merging, the reporter's personal data only for the handling unit with personal data (and PostgreSQL
refusing it to the server's role otherwise), and the rate limits."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.api.feedback import Limits
from gis_ioc.auth.ratelimit import RateLimiter
from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings
from tests.feedback.conftest import Place, Staff, one, report


def move(fb: TestClient, who: dict[str, str], rid: int, to: str, **extra: Any) -> Any:
    return fb.post(f"/api/feedback/reports/{rid}/transition", headers=who, json={"to": to, **extra})


def test_the_workflow_end_to_end(
    fb: TestClient, places: list[Place], staff: Staff, db: psycopg.Connection[Any]
) -> None:
    got = report(fb, places[0], "chieu_sang", description="Đèn đường tắt cả tuần", phone="0912 345 678")
    rid, token = int(got["service_request_id"]), got["reporter_token"]

    # the commune's officer sees it in the queue, with the reporter (personal data granted)
    queue = fb.get("/api/feedback/queue", headers=staff.officer)
    assert queue.status_code == 200, queue.text
    assert rid in {r["id"] for r in queue.json()}
    seen = fb.get(f"/api/feedback/reports/{rid}", headers=staff.officer).json()
    assert seen["reporter"] == {"name": "Nguyễn Thị Hoa", "phone": "0912345678", "email": "hoa.nguyen@example.vn"}
    assert seen["unit_name"] == f"UBND {places[0].name}" and seen["state_name"] == "Đã tiếp nhận"
    assert (
        one(
            db, "SELECT actor FROM gis_ioc.audit WHERE action = 'feedback.reporter' AND target = %s", (f"report {rid}",)
        )
        == "fb.officer"
    )
    # the same unit without personal data, and the leader who oversees it: the report, not the reporter
    assert fb.get(f"/api/feedback/reports/{rid}", headers=staff.officer_plain).json()["reporter"] is None
    assert fb.get(f"/api/feedback/reports/{rid}", headers=staff.leader).json()["reporter"] is None
    assert fb.get(f"/api/feedback/reports/{rid}", headers=staff.leader_personal).json()["reporter"] is None
    # another commune's officer, an analyst, nobody: not theirs
    assert fb.get(f"/api/feedback/reports/{rid}", headers=staff.other_officer).status_code == 404
    assert rid not in {r["id"] for r in fb.get("/api/feedback/queue", headers=staff.other_officer).json()}
    assert fb.get("/api/feedback/queue", headers=staff.analyst).status_code == 403
    assert fb.get("/api/feedback/queue").status_code == 401
    assert move(fb, staff.other_officer, rid, "assigned").status_code == 404

    # rating before resolution: refused
    early = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": token, "score": 5})
    assert early.status_code == 409 and "đã xử lý" in early.json()["detail"]

    assert move(fb, staff.officer, rid, "assigned", note="Giao tổ điện").status_code == 200
    illegal = move(fb, staff.officer, rid, "closed")
    assert illegal.status_code == 409
    assert "không chuyển sang “Đã đóng” được" in illegal.json()["detail"]
    assert move(fb, staff.officer, rid, "in_progress").status_code == 200
    unanswered = move(fb, staff.officer, rid, "resolved")
    assert unanswered.status_code == 400 and "answer" in unanswered.json()["detail"]
    done = move(fb, staff.officer, rid, "resolved", answer="Đã thay bóng đèn ngày 02/12/2026.")
    assert done.status_code == 200 and done.json()["state"] == "resolved"
    assert [h["to_state"] for h in done.json()["history"] if h["kind"] in ("received", "transition")] == [
        "received",
        "assigned",
        "in_progress",
        "resolved",
    ]
    public = fb.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert public["status"] == "closed" and public["status_notes"] == "Đã thay bóng đèn ngày 02/12/2026."

    # the reporter rates with the token; a wrong token is nobody's
    wrong = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": "x" * 32, "score": 5})
    assert wrong.status_code == 404
    bad = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": token, "score": 9})
    assert bad.status_code == 400 and "1 đến 5" in bad.json()["detail"]
    rated = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": token, "score": 4, "comment": "Nhanh"})
    assert rated.status_code == 200 and rated.json()["state"] == "closed"
    again = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": token, "score": 1})
    assert again.status_code == 409
    final = fb.get(f"/api/feedback/reports/{rid}", headers=staff.officer).json()
    assert final["ratings"][0]["score"] == 4 and final["state"] == "closed"
    assert move(fb, staff.officer, rid, "reopening").status_code == 409  # closed is final


def test_a_resolved_report_can_be_reopened_by_its_reporter(fb: TestClient, places: list[Place], staff: Staff) -> None:
    got = report(fb, places[0], "rac_thai", description="Rác tồn đọng ở chợ")
    rid, token = int(got["service_request_id"]), got["reporter_token"]
    assert move(fb, staff.officer, rid, "in_progress").status_code == 200
    assert move(fb, staff.officer, rid, "resolved", answer="Đã thu gom.").status_code == 200
    back = fb.post(f"/api/feedback/reports/{rid}/rating", json={"token": token, "score": 1, "reopen": True})
    assert back.status_code == 200 and back.json()["state"] == "reopening"
    assert move(fb, staff.officer, rid, "in_progress").status_code == 200


def test_overdue_reports_are_escalated_to_the_level_above(
    fb: TestClient, places: list[Place], staff: Staff, db: psycopg.Connection[Any]
) -> None:
    rid = int(report(fb, places[0], "duong_hu_hong", description="Sụt lún", phone="0912345679")["service_request_id"])
    db.execute("UPDATE gis_ioc.feedback_reports SET due_at = now() - interval '1 hour' WHERE id = %s", (rid,))
    overdue = fb.get("/api/feedback/queue?overdue=true", headers=staff.officer).json()
    assert rid in {r["id"] for r in overdue} and all(r["overdue"] for r in overdue)
    assert fb.post("/api/feedback/escalate", headers=staff.officer).status_code == 403
    moved = fb.post("/api/feedback/escalate", headers=staff.leader)
    assert moved.status_code == 200, moved.text
    assert {"id": rid, "from": f"xa:{places[0].code}", "to": "so_xay_dung"} in [
        {k: m[k] for k in ("id", "from", "to")} for m in moved.json()["escalated"]
    ]
    assert one(db, "SELECT unit FROM gis_ioc.feedback_reports WHERE id = %s", (rid,)) == "so_xay_dung"
    assert one(db, "SELECT due_at > now() FROM gis_ioc.feedback_reports WHERE id = %s", (rid,))
    # now the department's staff handle it (and see the reporter); the commune no longer does
    mine = fb.get(f"/api/feedback/reports/{rid}", headers=staff.department)
    assert mine.status_code == 200 and mine.json()["reporter"]["phone"] == "0912345679"
    assert mine.json()["unit_name"] == "Sở Xây dựng" and mine.json()["level"] == 1
    assert fb.get(f"/api/feedback/reports/{rid}", headers=staff.officer).status_code == 404
    public = fb.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert public["agency_responsible"] == "Sở Xây dựng"


def test_duplicates_are_proposed_and_merged(
    fb: TestClient, places: list[Place], staff: Staff, db: psycopg.Connection[Any]
) -> None:
    p = places[0]
    first = int(report(fb, p, "ngap_ung", description="Ngập sâu sau mưa")["service_request_id"])
    near = Place(p.code, p.name, p.lon + 0.0002, p.lat)  # about 21 m east
    second = int(report(fb, near, "ngap_ung", description="Đường ngập nước")["service_request_id"])
    other_kind = int(report(fb, near, "trat_tu_do_thi")["service_request_id"])
    assert one(db, "SELECT duplicate_of FROM gis_ioc.feedback_reports WHERE id = %s", (second,)) == first
    assert one(db, "SELECT duplicate_of FROM gis_ioc.feedback_reports WHERE id = %s", (other_kind,)) is None
    queue = {r["id"]: r for r in fb.get("/api/feedback/queue", headers=staff.officer).json()}
    assert queue[second]["duplicate_of"] == first
    merged = fb.post(f"/api/feedback/reports/{second}/merge", headers=staff.officer, json={"into": first})
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged_into"] == first and merged.json()["state"] == "closed"
    assert second not in {r["id"] for r in fb.get("/api/feedback/queue", headers=staff.officer).json()}
    public = fb.get(f"/open311/v2/requests/{second}.json").json()[0]
    assert public["merged_into"] == str(first)


def test_postgresql_keeps_reporters_from_the_server_role(
    settings: Settings, fb: TestClient, places: list[Place]
) -> None:
    rid = int(report(fb, places[0], "o_nhiem", phone="0912345670")["service_request_id"])
    with connect(settings, server=True) as conn, conn.transaction():
        assert conn.execute("SELECT current_user").fetchone() == ("gis_ioc_server",)
        # unbound (or bound to a viewer without the unit): no reporter row at all
        assert conn.execute("SELECT count(*) FROM gis_ioc.feedback_reporters").fetchone() == (0,)
        conn.execute("SELECT set_config('gis_ioc.feedback_reporters', %s, true)", ("xa:00000",))
        assert conn.execute(
            "SELECT count(*) FROM gis_ioc.feedback_reporters WHERE report_id = %s", (rid,)
        ).fetchone() == (0,)
        conn.execute("SELECT set_config('gis_ioc.feedback_reporters', %s, true)", (f"xa:{places[0].code}",))
        assert conn.execute("SELECT phone FROM gis_ioc.feedback_reporters WHERE report_id = %s", (rid,)).fetchone() == (
            "0912345670",
        )
    with connect(settings, server=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE gis_ioc.feedback_reporters SET phone = NULL")
    with connect(settings, server=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM gis_ioc.feedback_events")
    with connect(settings, server=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE gis_ioc.feedback_reports SET token_sha256 = token_sha256")  # nor a token


def test_rate_limits_per_address_and_per_phone(fb: TestClient, places: list[Place], settings: Settings) -> None:
    app: Any = fb.app
    saved = getattr(app.state, "feedback_limits", None)
    pool = app.state.pool
    app.state.feedback_limits = Limits(
        RateLimiter(pool, "feedback-address-test", 4, 3600), RateLimiter(pool, "feedback-phone-test", 2, 86400)
    )
    try:
        report(fb, places[1], "khac", phone="0900000001")
        report(fb, places[1], "khac", phone="0900000001")
        third = fb.post(
            "/open311/v2/requests.json",
            data={
                "service_code": "khac",
                "lat": places[1].lat,
                "long": places[1].lon,
                "description": "x",
                "phone": "+84 900 000 001",
            },
        )
        assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
        assert "quá nhiều phản ánh" in third.json()[0]["description"]
        report(fb, places[1], "khac", phone="0900000002")  # another phone: the address still has room
        fourth = fb.post(
            "/open311/v2/requests.json",
            data={"service_code": "khac", "lat": places[1].lat, "long": places[1].lon, "description": "x"},
        )
        assert fourth.status_code == 429  # the address's 4 per hour are used
    finally:
        app.state.feedback_limits = saved
