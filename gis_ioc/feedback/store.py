"""Reports in PostgreSQL: intake, the public (Open311) view, the handling unit's view, transitions, answers,
ratings, escalation and photos. Every function takes a connection already bound to its viewer
(:func:`gis_ioc.query.scope.transaction`) and the viewer itself; nothing here reads request context."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gis_ioc.feedback import access, workflow
from gis_ioc.feedback.calendar import add_working_hours
from gis_ioc.feedback.config import Category, FeedbackConfig
from gis_ioc.feedback.errors import FeedbackError, IllegalTransition, NotFoundReport
from gis_ioc.feedback.photos import MAX_PHOTOS, Photo
from gis_ioc.query.viewer import Viewer

#: The longest period GET requests answers (Open311's default range; a longer one is refused).
MAX_RANGE = timedelta(days=90)
#: Duplicates proposed for merging: same category, this close on the ground, this recent.
DUPLICATE_METRES = 50
DUPLICATE_WINDOW = timedelta(hours=48)
MAX_LIST = 1000
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass
class Intake:
    """A report as sent (Open311 fields or the public page's form)."""

    category: str
    description: str
    lon: float
    lat: float
    address: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    urgent: bool = False
    source: str = "open311"
    photos: list[Photo] = field(default_factory=list)


@dataclass(frozen=True)
class Received:
    id: int
    token: str
    due_at: datetime
    unit: str
    commune_code: str
    duplicate_of: int | None


def normalize_phone(phone: str | None) -> str | None:
    """Digits of a Vietnamese phone number (+84 → 0), or None; a 400 when it is not one."""
    if phone is None or not phone.strip():
        return None
    digits = re.sub(r"[\s.\-()]", "", phone.strip())
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    if not re.fullmatch(r"0\d{9,10}", digits):
        raise FeedbackError(
            f"số điện thoại {phone!r} không hợp lệ (ví dụ 0912345678)",
            f"phone {phone!r} is not valid (e.g. 0912345678)",
        )
    return digits


def check(intake: Intake, cfg: FeedbackConfig) -> Category:
    """The intake's category, or a 400 naming the first thing wrong with the intake."""
    category = cfg.category(intake.category)
    if category is None:
        raise FeedbackError(
            f"loại phản ánh (service_code) {intake.category!r} không có; xem services.json",
            f"service_code {intake.category!r} does not exist; see services.json",
        )
    if not intake.description.strip() or len(intake.description) > 4000:
        raise FeedbackError(
            "nội dung phản ánh (description) cần từ 1 đến 4.000 ký tự", "description must be 1 to 4,000 characters"
        )
    if not (math.isfinite(intake.lon) and math.isfinite(intake.lat)) or abs(intake.lat) > 90 or abs(intake.lon) > 180:
        raise FeedbackError("tọa độ (lat, long) không hợp lệ", "lat/long are not valid coordinates")
    if intake.email is not None and (len(intake.email) > 254 or not EMAIL_RE.match(intake.email)):
        raise FeedbackError(
            f"địa chỉ thư điện tử {intake.email!r} không hợp lệ", f"e-mail {intake.email!r} is not valid"
        )
    if intake.name is not None and len(intake.name) > 200:
        raise FeedbackError("họ tên dài quá 200 ký tự", "name is longer than 200 characters")
    if intake.address is not None and len(intake.address) > 500:
        raise FeedbackError("địa chỉ dài quá 500 ký tự", "address is longer than 500 characters")
    if len(intake.photos) > MAX_PHOTOS:
        raise FeedbackError(f"gửi tối đa {MAX_PHOTOS} ảnh", f"at most {MAX_PHOTOS} photos")
    return category


def locate(conn: psycopg.Connection[Any], lon: float, lat: float) -> tuple[str, str]:
    """The commune (code, name) the point lies in, or a 400 when it is outside Hưng Yên province."""
    row = conn.execute(
        """SELECT code, name FROM layers.communes
           WHERE valid_to IS NULL AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
           ORDER BY code LIMIT 1""",
        (lon, lat),
    ).fetchone()
    if row is None:
        raise FeedbackError(
            f"vị trí ({lat:.6f}, {lon:.6f}) nằm ngoài tỉnh Hưng Yên: chọn một điểm trong tỉnh",
            f"the point ({lat:.6f}, {lon:.6f}) is outside Hưng Yên province: pick a point inside it",
        )
    return str(row[0]), str(row[1])


def commune_names(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return {str(c): str(n) for c, n in conn.execute("SELECT code, name FROM layers.communes WHERE valid_to IS NULL")}


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def due(cfg: FeedbackConfig, category: Category, urgent: bool, start: datetime) -> datetime:
    return add_working_hours(cfg.calendar, start, category.urgent_hours if urgent else category.hours)


def receive(
    conn: psycopg.Connection[Any], cfg: FeedbackConfig, viewer: Viewer, intake: Intake, *, client: str | None = None
) -> Received:
    """Store a report (its reporter apart, its photos, its first event) in the caller's transaction."""
    category = check(intake, cfg)
    commune, _ = locate(conn, intake.lon, intake.lat)
    unit = cfg.chain(category, commune)[0]
    now: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    due_at = due(cfg, category, intake.urgent, now)
    duplicate = conn.execute(
        """WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g)
           SELECT r.id FROM gis_ioc.feedback_reports r, p
           WHERE r.category = %(category)s AND r.received_at >= %(since)s AND r.merged_into IS NULL
             AND r.state NOT IN ('closed', 'rejected')
             AND r.geom && ST_Expand(p.g, 0.001)
             AND ST_DWithin(r.geom::geography, p.g::geography, %(metres)s)
           ORDER BY r.received_at, r.id LIMIT 1""",
        {
            "lon": intake.lon,
            "lat": intake.lat,
            "category": category.code,
            "since": now - DUPLICATE_WINDOW,
            "metres": DUPLICATE_METRES,
        },
    ).fetchone()
    token = secrets.token_urlsafe(24)
    row = conn.execute(
        """INSERT INTO gis_ioc.feedback_reports
               (category, description, address, geom, commune_code, unit, urgent, received_at, due_at, updated_at,
                source, client, token_sha256, duplicate_of)
           VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           RETURNING id""",
        (
            category.code,
            intake.description.strip(),
            (intake.address or "").strip() or None,
            intake.lon,
            intake.lat,
            commune,
            unit,
            intake.urgent,
            now,
            due_at,
            now,
            intake.source,
            client,
            token_digest(token),
            duplicate[0] if duplicate else None,
        ),
    ).fetchone()
    assert row is not None
    report_id = int(row[0])
    if intake.name or intake.phone or intake.email:
        conn.execute(
            "INSERT INTO gis_ioc.feedback_reporters (report_id, name, phone, email) VALUES (%s, %s, %s, %s)",
            (report_id, (intake.name or "").strip() or None, normalize_phone(intake.phone), intake.email),
        )
    for position, photo in enumerate(intake.photos, start=1):
        conn.execute(
            """INSERT INTO gis_ioc.feedback_photos (report_id, position, jpeg, width, height)
               VALUES (%s, %s, %s, %s, %s)""",
            (report_id, position, photo.jpeg, photo.width, photo.height),
        )
    _event(conn, report_id, viewer.name, "received", None, "received", unit, None)
    return Received(report_id, token, due_at, unit, commune, duplicate[0] if duplicate else None)


def _event(
    conn: psycopg.Connection[Any],
    report_id: int,
    actor: str,
    kind: str,
    from_state: str | None,
    to_state: str | None,
    unit: str | None,
    note: str | None,
) -> None:
    conn.execute(
        """INSERT INTO gis_ioc.feedback_events (report_id, actor, kind, from_state, to_state, unit, note)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (report_id, actor, kind, from_state, to_state, unit, note),
    )


# ----------------------------------------------------------------------------------------- public view
PUBLIC_COLUMNS = """r.id, r.category, r.description, r.address, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,
    r.commune_code, r.unit, r.state, r.urgent, r.merged_into, r.received_at, r.updated_at, r.due_at, r.resolved_at,
    (SELECT a.body FROM gis_ioc.feedback_answers a WHERE a.report_id = r.id ORDER BY a.at DESC, a.id DESC LIMIT 1)
        AS answer,
    ARRAY(SELECT p.id FROM gis_ioc.feedback_photos p WHERE p.report_id = r.id ORDER BY p.position) AS photos"""


@dataclass(frozen=True)
class Query:
    """GET requests' filters."""

    ids: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None


def period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The period asked (default: the last 90 days), or a 400 when it is longer than 90 days or reversed."""
    if end is None:
        end = now if start is None or start + MAX_RANGE > now else start + MAX_RANGE
    if start is None:
        start = end - MAX_RANGE
    if end < start:
        raise FeedbackError("end_date phải sau start_date", "end_date must be after start_date")
    if end - start > MAX_RANGE:
        raise FeedbackError(
            f"khoảng thời gian dài quá 90 ngày ({(end - start).days} ngày): thu hẹp start_date và end_date",
            f"the period is longer than 90 days ({(end - start).days} days): narrow start_date and end_date",
        )
    return start, end


def public_reports(conn: psycopg.Connection[Any], query: Query, *, limit: int = MAX_LIST) -> list[dict[str, Any]]:
    """Reports as anyone may see them (no reporter, no token), newest first."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if query.ids:
        where.append("r.id = ANY(%(ids)s)")
        params["ids"] = list(query.ids)
    else:
        now: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        params["start"], params["end"] = period(query.start, query.end, now)
        where.append("r.received_at >= %(start)s AND r.received_at <= %(end)s")
    if query.categories:
        where.append("r.category = ANY(%(categories)s)")
        params["categories"] = list(query.categories)
    if query.states:
        where.append("r.state = ANY(%(states)s)")
        params["states"] = list(query.states)
    text = f"SELECT {PUBLIC_COLUMNS} FROM gis_ioc.feedback_reports r WHERE {' AND '.join(where)} "  # noqa: S608
    text += "ORDER BY r.received_at DESC, r.id DESC LIMIT %(limit)s"
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(text.encode(), params).fetchall())


# ----------------------------------------------------------------------------------------- staff view
def _staff_row(conn: psycopg.Connection[Any], viewer: Viewer, report_id: int, *, lock: bool = False) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {PUBLIC_COLUMNS}, r.level, r.duplicate_of, r.source, r.token_sha256 "  # noqa: S608
            f"FROM gis_ioc.feedback_reports r WHERE r.id = %s{' FOR UPDATE' if lock else ''}".encode(),
            (report_id,),
        ).fetchone()
    if row is None or not access.handles(viewer, row["unit"]):
        raise NotFoundReport(report_id)
    return row


def queue(
    conn: psycopg.Connection[Any], viewer: Viewer, *, states: tuple[str, ...] = (), overdue: bool = False
) -> list[dict[str, Any]]:
    """The reports of the units the viewer handles (all for those who oversee), oldest deadline first, each
    with the earlier report it may duplicate (proposed for merging)."""
    units = access.units_of(viewer)
    where: list[str] = ["r.merged_into IS NULL"]
    params: dict[str, Any] = {}
    if units is not None:
        where.append("r.unit = ANY(%(units)s)")
        params["units"] = sorted(units)
    if states:
        where.append("r.state = ANY(%(states)s)")
        params["states"] = list(states)
    else:
        where.append("r.state = ANY(%(states)s)")
        params["states"] = sorted(workflow.OPEN_STATES)
    if overdue:
        where.append("r.due_at < now()")
    text = (
        f"SELECT {PUBLIC_COLUMNS}, r.level, r.duplicate_of, r.due_at < now() AS overdue "  # noqa: S608
        f"FROM gis_ioc.feedback_reports r WHERE {' AND '.join(where)} ORDER BY r.due_at, r.id LIMIT {MAX_LIST}"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(text.encode(), params).fetchall())


def staff_report(conn: psycopg.Connection[Any], viewer: Viewer, report_id: int) -> dict[str, Any]:
    """One report for its handling unit: history, answers, ratings, the proposed duplicate, and the
    reporter (only for a viewer with personal data; PostgreSQL's row security gives nothing otherwise)."""
    row = _staff_row(conn, viewer, report_id)
    row.pop("token_sha256")
    with conn.cursor(row_factory=dict_row) as cur:
        row["history"] = cur.execute(
            """SELECT at, actor, kind, from_state, to_state, unit, note FROM gis_ioc.feedback_events
               WHERE report_id = %s ORDER BY at, id""",
            (report_id,),
        ).fetchall()
        row["answers"] = cur.execute(
            "SELECT at, unit, author, body FROM gis_ioc.feedback_answers WHERE report_id = %s ORDER BY at, id",
            (report_id,),
        ).fetchall()
        row["ratings"] = cur.execute(
            "SELECT at, score, comment FROM gis_ioc.feedback_ratings WHERE report_id = %s ORDER BY at, id",
            (report_id,),
        ).fetchall()
        reporter = None
        if viewer.personal:
            access.bind_reporters(conn, viewer)
            reporter = cur.execute(
                "SELECT name, phone, email FROM gis_ioc.feedback_reporters WHERE report_id = %s", (report_id,)
            ).fetchone()
        row["reporter"] = reporter
    return row


def transition(
    conn: psycopg.Connection[Any],
    cfg: FeedbackConfig,
    viewer: Viewer,
    report_id: int,
    target: str,
    *,
    note: str | None = None,
    answer: str | None = None,
) -> dict[str, Any]:
    """Move a report to ``target`` (409 when the workflow does not allow it). Resolving needs an answer
    (given here or before)."""
    row = _staff_row(conn, viewer, report_id, lock=True)  # first: a report not the viewer's is a 404
    if target not in workflow.STATES:
        raise FeedbackError(
            f"trạng thái {target!r} không có; chọn một trong: {', '.join(workflow.STATES)}",
            f"no state {target!r}; one of: {', '.join(workflow.STATES)}",
        )
    current = row["state"]
    if not workflow.allowed(current, target):
        nexts = ", ".join(sorted(workflow.TRANSITIONS[current])) or "không còn trạng thái nào"
        raise IllegalTransition(
            f"phản ánh số {report_id} đang ở trạng thái “{workflow.state_name(current, 'vi')}”, không chuyển sang "
            f"“{workflow.state_name(target, 'vi')}” được (được chuyển sang: {nexts})",
            f"report {report_id} is {current}: it cannot move to {target} "
            f"(allowed: {', '.join(sorted(workflow.TRANSITIONS[current])) or 'none'})",
        )
    if answer is not None:
        add_answer(conn, viewer, report_id, answer, row=row)
    elif target == "resolved" and row["answer"] is None:
        raise FeedbackError(
            "trả lời người phản ánh (answer) trước khi chuyển sang “Đã xử lý”",
            "give the reporter an answer (answer) before resolving",
        )
    if target == "reopening":
        category = cfg.categories[row["category"]]
        now: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "UPDATE gis_ioc.feedback_reports SET due_at = %s WHERE id = %s",
            (due(cfg, category, row["urgent"], now), report_id),
        )
    conn.execute(
        """UPDATE gis_ioc.feedback_reports SET state = %s, updated_at = now(),
               resolved_at = CASE WHEN %s = 'resolved' THEN now() ELSE resolved_at END
           WHERE id = %s""",
        (target, target, report_id),
    )
    _event(conn, report_id, viewer.name, "transition", current, target, row["unit"], note)
    return staff_report(conn, viewer, report_id)


def add_answer(
    conn: psycopg.Connection[Any], viewer: Viewer, report_id: int, body: str, *, row: dict[str, Any] | None = None
) -> None:
    row = row or _staff_row(conn, viewer, report_id)
    if not body.strip() or len(body) > 4000:
        raise FeedbackError("câu trả lời cần từ 1 đến 4.000 ký tự", "an answer must be 1 to 4,000 characters")
    conn.execute(
        "INSERT INTO gis_ioc.feedback_answers (report_id, unit, author, body) VALUES (%s, %s, %s, %s)",
        (report_id, row["unit"], viewer.name, body.strip()),
    )
    conn.execute("UPDATE gis_ioc.feedback_reports SET updated_at = now() WHERE id = %s", (report_id,))
    _event(conn, report_id, viewer.name, "answer", None, None, row["unit"], None)


def rate(
    conn: psycopg.Connection[Any],
    report_id: int,
    token: str,
    score: int,
    comment: str | None = None,
    *,
    reopen: bool = False,
) -> str:
    """The reporter's rating (1–5) of a resolved report, proven by the token given at intake; the report is
    then closed (or reopened when the reporter asks). Returns the new state."""
    row = conn.execute(
        "SELECT state, token_sha256, resolved_at, unit FROM gis_ioc.feedback_reports WHERE id = %s FOR UPDATE",
        (report_id,),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[1]), token_digest(token)):
        raise FeedbackError(
            f"không có phản ánh số {report_id} với mã xác nhận này",
            f"no report {report_id} with this token",
            404,
        )
    state, _, resolved_at, unit = row
    if not (isinstance(score, int) and 1 <= score <= 5):
        raise FeedbackError("điểm đánh giá (score) là số nguyên từ 1 đến 5", "score is a whole number from 1 to 5")
    if comment is not None and len(comment) > 2000:
        raise FeedbackError("nhận xét dài quá 2.000 ký tự", "comment is longer than 2,000 characters")
    if state != "resolved":
        raise IllegalTransition(
            f"chỉ đánh giá được khi phản ánh đã xử lý (hiện: “{workflow.state_name(state, 'vi')}”)",
            f"a report can be rated only once it is resolved (it is {state})",
        )
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO gis_ioc.feedback_ratings (report_id, score, comment, resolved_at) VALUES (%s, %s, %s, %s)",
                (report_id, score, comment, resolved_at),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise IllegalTransition("phản ánh này đã được đánh giá", "this report has been rated already") from exc
    target = "reopening" if reopen else "closed"
    conn.execute(
        "UPDATE gis_ioc.feedback_reports SET state = %s, updated_at = now() WHERE id = %s", (target, report_id)
    )
    _event(conn, report_id, "reporter", "rating", state, target, unit, f"{score}/5")
    return target


def escalate_overdue(conn: psycopg.Connection[Any], cfg: FeedbackConfig, actor: str) -> list[dict[str, Any]]:
    """Send every overdue open report to the level above its handling unit, with a new deadline counted
    from now. Reports already at the top stay where they are. Returns what moved."""
    rows = conn.execute(
        """SELECT id, category, commune_code, unit, level, urgent FROM gis_ioc.feedback_reports
           WHERE state = ANY(%s) AND due_at < now() AND merged_into IS NULL
           ORDER BY due_at, id FOR UPDATE SKIP LOCKED""",
        (sorted(workflow.OPEN_STATES),),
    ).fetchall()
    now: datetime = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    moved = []
    for report_id, code, commune, unit, level, urgent in rows:
        category = cfg.categories.get(code)
        if category is None:
            continue
        chain = cfg.chain(category, commune)
        at = chain.index(unit) if unit in chain else level
        if at + 1 >= len(chain):
            continue
        above = chain[at + 1]
        due_at = due(cfg, category, urgent, now)
        conn.execute(
            """UPDATE gis_ioc.feedback_reports SET unit = %s, level = level + 1, due_at = %s, updated_at = now()
               WHERE id = %s""",
            (above, due_at, report_id),
        )
        _event(conn, report_id, actor, "escalated", None, None, above, f"{unit} → {above}")
        moved.append({"id": report_id, "from": unit, "to": above, "due_at": due_at})
    return moved


def merge(conn: psycopg.Connection[Any], viewer: Viewer, report_id: int, into: int) -> None:
    """Merge a duplicate into the report it repeats (both handled by the viewer): it is closed, its reporter
    follows the other report's answers through the merged report's status."""
    row = _staff_row(conn, viewer, report_id, lock=True)  # first: a report not the viewer's is a 404
    if report_id == into or into < 1:
        raise FeedbackError(
            "into là số của một phản ánh khác (phản ánh gốc)", "into must be the id of another report (the original)"
        )
    other = _staff_row(conn, viewer, into)
    if other["merged_into"] is not None:
        raise IllegalTransition(
            f"phản ánh số {into} đã được gộp vào số {other['merged_into']}",
            f"report {into} was merged into {other['merged_into']}",
        )
    if row["state"] not in workflow.OPEN_STATES:
        raise IllegalTransition(
            f"phản ánh số {report_id} đã kết thúc, không gộp được",
            f"report {report_id} is finished: it cannot be merged",
        )
    conn.execute(
        "UPDATE gis_ioc.feedback_reports SET merged_into = %s, state = 'closed', updated_at = now() WHERE id = %s",
        (into, report_id),
    )
    _event(conn, report_id, viewer.name, "merged", row["state"], "closed", row["unit"], f"→ {into}")


def photo(conn: psycopg.Connection[Any], photo_id: int) -> bytes:
    row = conn.execute("SELECT jpeg FROM gis_ioc.feedback_photos WHERE id = %s", (photo_id,)).fetchone()
    if row is None:
        raise FeedbackError(f"không có ảnh số {photo_id}", f"no photo {photo_id}", 404)
    return bytes(row[0])
