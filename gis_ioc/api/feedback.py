"""Citizen reports over HTTP: Open311 GeoReport v2 under ``/open311/v2`` (public), the handling units'
doors under ``/api/feedback`` (accounts, through :mod:`gis_ioc.feedback.access`), the reporter's rating
(proven by the token given at intake), photos and the public map (no personal data).

Open311 answers its errors as Open311 does (``[{"code": 400, "description": "…"}]``); the other doors as
problem+json. Messages are Vietnamese, English with ``Accept-Language: en``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from gis_ioc import __version__
from gis_ioc.api import guard
from gis_ioc.auth.ratelimit import RateLimiter, TooManyRequests
from gis_ioc.errors import GisIocError, Unauthorized
from gis_ioc.feedback import access, indicators, open311, photos, store, texts, workflow
from gis_ioc.feedback.config import FeedbackConfig, load_config
from gis_ioc.feedback.errors import FeedbackError
from gis_ioc.http import problem
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.web import TEMPLATES_DIR

open311_router = APIRouter(prefix="/open311/v2", tags=["open311"])
router = APIRouter(prefix="/api/feedback", tags=["feedback"])

#: Reports one address may send per hour, and one phone number per day (counted in PostgreSQL).


@dataclass
class Limits:
    address: RateLimiter
    phone: RateLimiter


def limits(request: Request) -> Limits:
    found: Limits | None = getattr(request.app.state, "feedback_limits", None)
    if found is None:
        pool, settings = request.app.state.pool, request.app.state.settings
        found = Limits(
            RateLimiter(
                pool, "feedback-address", settings.feedback_per_address_per_hour, 3600, message="feedback per address"
            ),
            RateLimiter(
                pool, "feedback-phone", settings.feedback_per_phone_per_day, 86400, message="feedback per phone"
            ),
        )
        request.app.state.feedback_limits = found
    return found


def lang_of(request: Request) -> str:
    """``en`` when the caller's first language is English, else ``vi``."""
    first = request.headers.get("accept-language", "").split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "vi"


def config(request: Request) -> FeedbackConfig:
    return load_config(request.app.state.settings.config_dir)


def _message(exc: GisIocError, lang: str) -> str:
    if isinstance(exc, FeedbackError):
        return exc.message(lang)
    if isinstance(exc, TooManyRequests):
        minutes = -(-exc.retry_after // 60)
        if lang == "en":
            return f"too many reports from this address or phone: try again in {minutes} min"
        return f"gửi quá nhiều phản ánh từ địa chỉ hoặc số điện thoại này: thử lại sau {minutes} phút"
    if isinstance(exc, Unauthorized):
        return "log in to handle reports" if lang == "en" else "cần đăng nhập để xử lý phản ánh"
    return str(exc)


def _error(exc: GisIocError, lang: str, *, open311_form: bool) -> JSONResponse:
    message = _message(exc, lang)
    if open311_form:
        response = JSONResponse([{"code": exc.status, "description": message}], status_code=exc.status)
    else:
        response = problem(exc.status, exc.title, message)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gis_ioc"'
    return response


async def _answer[T](
    request: Request, work: Callable[[], T], shape: Callable[[T], Response], *, open311_form: bool = False
) -> Response:
    try:
        result = await run_in_threadpool(work)
    except GisIocError as exc:
        return _error(exc, lang_of(request), open311_form=open311_form)
    return shape(result)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _names(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return store.commune_names(conn)


# ----------------------------------------------------------------------------------------- Open311
@open311_router.get("/services.json", summary="Categories of reports (Open311 GeoReport v2)")
async def services(request: Request) -> Response:
    lang = lang_of(request)
    body = open311.services(config(request), lang)
    return _json(body, headers={"Content-Language": lang, "Cache-Control": "public, max-age=3600"})


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, UploadFile):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any, name: str) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        raise FeedbackError(
            f"thiếu hoặc sai tọa độ {name} (số thập phân, ví dụ 20.6500)",
            f"{name} is missing or not a number (e.g. 20.6500)",
        ) from None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on", "có")


async def _intake_of(request: Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The fields and the uploaded photos of a POST, form-encoded (as Open311 clients send), multipart (with
    photos, field ``media``) or JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise FeedbackError("nội dung gửi không phải JSON hợp lệ", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise FeedbackError("nội dung JSON phải là một đối tượng", "the JSON body must be an object")
        return body, []
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise FeedbackError(
            "gửi phản ánh dạng form (application/x-www-form-urlencoded, multipart/form-data) hoặc JSON",
            "send the report form-encoded (application/x-www-form-urlencoded, multipart/form-data) or as JSON",
            415,
        )
    form = await request.form(max_files=photos.MAX_PHOTOS + 1, max_fields=100)
    fields: dict[str, Any] = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
    files = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) and key in ("media", "media[]", "photo"):
            data = await value.read(photos.MAX_BYTES + 1)
            if data or value.filename:  # a browser sends an empty part for a file input left empty
                files.append((value.filename or key, data))
    return fields, files


def _intake(fields: dict[str, Any], files: list[tuple[str, bytes]], source: str) -> store.Intake:
    name = " ".join(p for p in (_text(fields.get("first_name")), _text(fields.get("last_name"))) if p)
    urgent = fields.get("urgent", fields.get("attribute[urgent]", False))
    if len(files) > photos.MAX_PHOTOS:
        raise FeedbackError(f"gửi tối đa {photos.MAX_PHOTOS} ảnh", f"at most {photos.MAX_PHOTOS} photos")
    return store.Intake(
        category=_text(fields.get("service_code")) or "",
        description=_text(fields.get("description")) or "",
        lon=_number(fields.get("long"), "long"),
        lat=_number(fields.get("lat"), "lat"),
        address=_text(fields.get("address_string")),
        name=name or _text(fields.get("name")),
        phone=_text(fields.get("phone")),
        email=_text(fields.get("email")),
        urgent=urgent is True or _flag(urgent),
        source=source,
        photos=[photos.clean(data, f"{i} ({file})") for i, (file, data) in enumerate(files, start=1)],
    )


async def receive(request: Request, source: str) -> Response:
    lang = lang_of(request)
    viewer = guard.viewer(request)
    cfg = config(request)
    try:
        limit = limits(request)
        await run_in_threadpool(limit.address.check, guard.address(request) or "?")
        fields, files = await _intake_of(request)
        phone = store.normalize_phone(_text(fields.get("phone")))
        if phone is not None:
            await run_in_threadpool(limit.phone.check, phone)
        intake = await run_in_threadpool(_intake, fields, files, source)

        def work() -> tuple[store.Received, dict[str, str]]:
            pool, catalog = request.app.state.pool, request.app.state.catalog
            with scope.transaction(pool, viewer, catalog, "read", writes=True) as conn:
                got = store.receive(conn, cfg, viewer, intake, client=viewer.username)
                return got, _names(conn)

        received, names = await run_in_threadpool(work)
    except GisIocError as exc:
        return _error(exc, lang, open311_form=True)
    unit = cfg.unit_name(received.unit, lang, names)
    when = open311.vn_datetime(received.due_at, cfg)
    notice = (
        f"Received; {unit} will handle it by {when}. Keep the token to follow it and rate the answer."
        if lang == "en"
        else f"Đã tiếp nhận; {unit} xử lý trước {when}. Giữ mã xác nhận để theo dõi và đánh giá kết quả."
    )
    body = [
        {
            "service_request_id": str(received.id),
            "service_notice": notice,
            "account_id": None,
            "expected_datetime": open311.iso(received.due_at, cfg),
            "reporter_token": received.token,
        }
    ]
    return _json(body, 201, headers={"Cache-Control": "no-store", "Content-Language": lang})


@open311_router.post("/requests.json", summary="Send a report (Open311: form-encoded, multipart or JSON)")
async def post_request(request: Request) -> Response:
    return await receive(request, "open311")


def _dates(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FeedbackError(
            f"{name} {value!r} không phải ngày giờ W3C (ví dụ 2026-12-02T00:00:00+07:00)",
            f"{name} {value!r} is not a W3C date-time (e.g. 2026-12-02T00:00:00+07:00)",
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    return at


def _query(request: Request) -> store.Query:
    q = request.query_params
    known = {"service_request_id", "service_code", "start_date", "end_date", "status", "jurisdiction_id"}
    unknown = sorted(set(q) - known)
    if unknown:
        raise FeedbackError(
            f"tham số không nhận: {', '.join(unknown)} (nhận: {', '.join(sorted(known))})",
            f"unknown parameter(s): {', '.join(unknown)} (accepted: {', '.join(sorted(known))})",
        )
    ids: list[int] = []
    for part in (q.get("service_request_id") or "").split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise FeedbackError(f"mã phản ánh {part!r} không hợp lệ", f"service_request_id {part!r} is not valid")
            ids.append(int(part))
    states: set[str] = set()
    for part in (q.get("status") or "").split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in ("open", "closed"):
            states |= {s for s, o in workflow.OPEN311_STATUS.items() if o == part}
        elif part in workflow.STATES:
            states.add(part)
        else:
            raise FeedbackError(
                f"trạng thái {part!r} không có (open, closed hoặc {', '.join(workflow.STATES)})",
                f"status {part!r} does not exist (open, closed or {', '.join(workflow.STATES)})",
            )
    codes = tuple(c.strip() for c in (q.get("service_code") or "").split(",") if c.strip())
    return store.Query(
        ids=tuple(ids[: store.MAX_LIST]),
        categories=codes,
        states=tuple(sorted(states)),
        start=_dates(q.get("start_date"), "start_date"),
        end=_dates(q.get("end_date"), "end_date"),
    )


def _public(request: Request, query: store.Query, lang: str) -> list[dict[str, Any]]:
    viewer = guard.viewer(request)
    with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
        rows = store.public_reports(conn, query)
        names = _names(conn)
    cfg = config(request)
    return [open311.request(r, cfg, names, lang, _base(request)) for r in rows]


@open311_router.get("/requests.json", summary="Reports (status, service_code, start_date/end_date: at most 90 days)")
async def get_requests(request: Request) -> Response:
    lang = lang_of(request)
    return await _answer(
        request,
        lambda: _public(request, _query(request), lang),
        lambda body: _json(body, headers={"Cache-Control": "no-cache", "Content-Language": lang}),
        open311_form=True,
    )


@open311_router.get("/requests/{service_request_id}.json", summary="One report")
async def get_request(request: Request, service_request_id: str) -> Response:
    lang = lang_of(request)

    def work() -> list[dict[str, Any]]:
        if not service_request_id.isdigit():
            raise FeedbackError(
                f"không có phản ánh số {service_request_id}", f"no report {service_request_id}", status=404
            )
        found = _public(request, store.Query(ids=(int(service_request_id),)), lang)
        if not found:
            raise FeedbackError(
                f"không có phản ánh số {service_request_id}", f"no report {service_request_id}", status=404
            )
        return found

    return await _answer(
        request, work, lambda body: _json(body, headers={"Cache-Control": "no-cache"}), open311_form=True
    )


# ----------------------------------------------------------------------------------------- public doors
@router.get("/photos/{photo_id}.jpg", summary="A report's photo (re-encoded JPEG, no EXIF)")
async def get_photo(request: Request, photo_id: int) -> Response:
    viewer = guard.viewer(request)

    def work() -> bytes:
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
            return store.photo(conn, photo_id)

    return await _answer(
        request,
        work,
        lambda jpeg: Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}),
    )


@router.get("/map", summary="Reports of the last 90 days as GeoJSON, without personal data (the public layer)")
async def public_map(request: Request) -> Response:
    lang = lang_of(request)
    viewer = guard.viewer(request)

    def work() -> dict[str, Any]:
        query = _query(request)
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
            rows = store.public_reports(conn, query)
            names = _names(conn)
        cfg = config(request)
        return {"type": "FeatureCollection", "features": [open311.feature(r, cfg, names, lang) for r in rows]}

    return await _answer(
        request,
        work,
        lambda body: JSONResponse(body, media_type="application/geo+json", headers={"Cache-Control": "no-cache"}),
    )


@router.post("/reports/{report_id}/rating", summary="The reporter rates a resolved report (with the intake token)")
async def rating(request: Request, report_id: int) -> Response:
    viewer = guard.viewer(request)

    async def body() -> dict[str, Any]:
        try:
            found = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            found = None
        if not isinstance(found, dict):
            raise FeedbackError(
                'gửi JSON: {"token": "…", "score": 1–5, "comment": "…", "reopen": false}',
                'send JSON: {"token": "…", "score": 1–5, "comment": "…", "reopen": false}',
            )
        return found

    try:
        data = await body()
    except FeedbackError as exc:
        return _error(exc, lang_of(request), open311_form=False)

    def work() -> str:
        token, score = data.get("token"), data.get("score")
        if not isinstance(token, str) or not token:
            raise FeedbackError("thiếu mã xác nhận (token) nhận được khi gửi phản ánh", "token is missing")
        comment = data.get("comment")
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog, writes=True) as conn:
            return store.rate(
                conn,
                report_id,
                token,
                score if isinstance(score, int) and not isinstance(score, bool) else -1,
                comment if isinstance(comment, str) else None,
                reopen=data.get("reopen") is True,
            )

    return await _answer(request, work, lambda state: _json({"id": report_id, "state": state}))


# ----------------------------------------------------------------------------------------- staff doors
def _staff(request: Request) -> Viewer:
    """The viewer, if it handles or oversees some unit's reports (401 anonymous, 403 otherwise)."""
    viewer = guard.viewer(request)
    if viewer.anonymous:
        raise Unauthorized("log in to handle reports")
    if not access.is_staff(viewer):
        guard.record(request, "denied", f"{request.method} {request.url.path}", "denied", reason="no handling unit")
        raise FeedbackError(
            "tài khoản không thuộc đơn vị xử lý phản ánh nào",
            "this account belongs to no unit that handles reports",
            403,
        )
    return viewer


def _plain(row: dict[str, Any], cfg: FeedbackConfig, names: dict[str, str], lang: str) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "token_sha256"}
    out["unit_name"] = cfg.unit_name(row["unit"], lang, names)
    out["state_name"] = workflow.state_name(row["state"], lang)
    category = cfg.categories.get(row["category"])
    out["category_name"] = category.name.get(lang) if category else row["category"]
    out["commune_name"] = names.get(row["commune_code"], row["commune_code"])
    plain: dict[str, Any] = json.loads(
        json.dumps(out, default=lambda v: open311.iso(v, cfg) if isinstance(v, datetime) else str(v))
    )
    return plain


def _staff_work(
    request: Request, fn: Callable[[psycopg.Connection[Any], Viewer], Any], *, writes: bool
) -> tuple[Any, dict[str, str]]:
    viewer = _staff(request)
    with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog, writes=writes) as conn:
        return fn(conn, viewer), _names(conn)


def _staff_answer(
    request: Request, fn: Callable[[psycopg.Connection[Any], Viewer], Any], *, writes: bool = False
) -> Awaitable[Response]:
    lang, cfg = lang_of(request), config(request)

    def shape(result: tuple[Any, dict[str, str]]) -> Response:
        found, names = result
        if isinstance(found, list):
            return _json([_plain(r, cfg, names, lang) for r in found], headers={"Cache-Control": "private, no-store"})
        if isinstance(found, dict) and "category" in found:
            return _json(_plain(found, cfg, names, lang), headers={"Cache-Control": "private, no-store"})
        return _json(json.loads(json.dumps(found, default=str)), headers={"Cache-Control": "private, no-store"})

    return _answer(request, lambda: _staff_work(request, fn, writes=writes), shape)


@router.get("/queue", summary="The reports of the units the caller handles (open ones, oldest deadline first)")
async def get_queue(request: Request) -> Response:
    params = request.query_params
    states = tuple(s for s in (params.get("state") or "").split(",") if s)
    overdue = _flag(params.get("overdue", ""))
    for state in states:
        if state not in workflow.STATES:
            return _error(
                FeedbackError(f"trạng thái {state!r} không có", f"no state {state!r}"),
                lang_of(request),
                open311_form=False,
            )
    return await _staff_answer(request, lambda conn, v: store.queue(conn, v, states=states, overdue=overdue))


@router.get("/reports/{report_id}", summary="One report for its handling unit (history, answers, reporter)")
async def get_report(request: Request, report_id: int) -> Response:

    def work(conn: psycopg.Connection[Any], viewer: Viewer) -> dict[str, Any]:
        found = store.staff_report(conn, viewer, report_id)
        if found["reporter"] is not None:  # personal data read: in the audit trail
            guard.record(request, "feedback.reporter", f"report {report_id}")
        return found

    return await _staff_answer(request, work)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        found = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        found = None
    if not isinstance(found, dict):
        raise FeedbackError("nội dung gửi phải là một đối tượng JSON", "the body must be a JSON object")
    return dict(found)


def _str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise FeedbackError(f"{name} phải là chuỗi ký tự", f"{name} must be a string")
    return value


@router.post("/reports/{report_id}/transition", summary='Move a report to another state ({"to": "assigned"})')
async def post_transition(request: Request, report_id: int) -> Response:
    try:
        data = await _json_body(request)
        target = _str(data, "to") or ""
        note, answer = _str(data, "note"), _str(data, "answer")
    except FeedbackError as exc:
        return _error(exc, lang_of(request), open311_form=False)
    cfg = config(request)
    return await _staff_answer(
        request,
        lambda conn, v: store.transition(conn, cfg, v, report_id, target, note=note, answer=answer),
        writes=True,
    )


@router.post("/reports/{report_id}/answers", summary='Answer the reporter ({"body": "…"})')
async def post_answer(request: Request, report_id: int) -> Response:
    try:
        body = _str(await _json_body(request), "body") or ""
    except FeedbackError as exc:
        return _error(exc, lang_of(request), open311_form=False)

    def work(conn: psycopg.Connection[Any], viewer: Viewer) -> dict[str, Any]:
        store.add_answer(conn, viewer, report_id, body)
        return store.staff_report(conn, viewer, report_id)

    return await _staff_answer(request, work, writes=True)


@router.post("/reports/{report_id}/merge", summary='Merge a duplicate into the report it repeats ({"into": id})')
async def post_merge(request: Request, report_id: int) -> Response:
    try:
        into = (await _json_body(request)).get("into")
    except FeedbackError as exc:
        return _error(exc, lang_of(request), open311_form=False)

    def work(conn: psycopg.Connection[Any], viewer: Viewer) -> dict[str, Any]:
        target = into if isinstance(into, int) and not isinstance(into, bool) else 0
        store.merge(conn, viewer, report_id, target)
        return store.staff_report(conn, viewer, report_id)

    return await _staff_answer(request, work, writes=True)


@router.post("/escalate", summary="Send every overdue report to the level above (leaders, administrators)")
async def post_escalate(request: Request) -> Response:
    cfg = config(request)

    def work(conn: psycopg.Connection[Any], viewer: Viewer) -> dict[str, Any]:
        if access.units_of(viewer) is not None:
            raise FeedbackError(
                "chỉ lãnh đạo và quản trị viên chuyển phản ánh quá hạn lên cấp trên",
                "only leaders and administrators escalate overdue reports",
                403,
            )
        return {"escalated": store.escalate_overdue(conn, cfg, viewer.name)}

    return await _staff_answer(request, work, writes=True)


# ----------------------------------------------------------------------------------------- the public page
page_router = APIRouter(tags=["feedback"])
_pages = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))


@page_router.get("/phan-anh", summary="The citizens' report page (phone-sized; Vietnamese, ?lang=en)")
async def page(request: Request, lang: str = "vi") -> HTMLResponse:
    lang = "en" if lang == "en" else "vi"
    words = texts.PAGE[lang]
    html = _pages.get_template("feedback.html").render(version=__version__, lang=lang, t=words)
    # the page may ask for the phone's position and camera (every other page may not)
    policy = "camera=(self), microphone=(), geolocation=(self)"
    return HTMLResponse(html, headers={"Cache-Control": "no-cache", "Permissions-Policy": policy})


@router.get("/indicators", summary="Per-commune indicators of a quarter (?period=2026-Q4; no personal data)")
async def get_indicators(request: Request) -> Response:
    viewer = guard.viewer(request)
    cfg = config(request)
    period = request.query_params.get("period") or _this_quarter(cfg)

    def work() -> dict[str, Any]:
        with scope.transaction(request.app.state.pool, viewer, request.app.state.catalog) as conn:
            return indicators.by_commune(conn, cfg, period)

    return await _answer(request, work, lambda body: _json(body, headers={"Cache-Control": "no-cache"}))


def _this_quarter(cfg: FeedbackConfig) -> str:
    today = datetime.now(cfg.calendar.zone).date()
    return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
