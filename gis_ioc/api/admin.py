"""``/api/admin``: the account lifecycle and the audit trail over HTTP, for administrators.

The same functions as ``gis-ioc account …`` and ``gis-ioc audit``: every change needs the written request
(``"request": {"number": "123/VP-TTHN", "date": "2026-11-20", "agency": "Văn phòng UBND tỉnh"}``).
Administrators must have changed their first password and enrolled a second factor; refusals are audited.
Every text and list is bounded before use (:data:`gis_ioc.auth.accounts.LIMITS`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.auth import accounts, audit
from gis_ioc.auth.accounts import RequestRef
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import InvalidInput
from gis_ioc.query.viewer import Viewer

router = APIRouter(prefix="/api/admin", tags=["admin"])


def require(request: Request, permission: str) -> Viewer:
    """The principal, if it may administer (see :func:`gis_ioc.api.guard.require`)."""
    return guard.require(request, permission)


def _address(request: Request) -> str | None:
    return guard.address(request)


def _ref(body: dict[str, Any]) -> RequestRef:
    request = body.get("request")
    if not isinstance(request, dict):
        raise InvalidInput(
            'every account change needs "request": {"number": "123/VP-TTHN", "date": "2026-11-20", "agency": "…"}'
        )
    parts = [request.get(k) for k in ("number", "date", "agency")]
    if not all(p is None or isinstance(p, str) for p in parts):
        raise InvalidInput('the request\'s "number", "date" and "agency" are strings')
    return RequestRef.parse(*parts)


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} must be a list of strings")
    if len(value) > accounts.MAX_ITEMS or any(len(v) > accounts.USERNAME_MAX for v in value):
        raise InvalidInput(
            f"{name} has at most {accounts.MAX_ITEMS} items of at most {accounts.USERNAME_MAX} characters"
        )
    return value


def _optional(body: dict[str, Any], name: str, limit_name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return accounts.bounded(limit_name, value)


def _actor(who: Viewer) -> str:
    return who.name


@router.get("/accounts", summary="The accounts")
async def list_accounts(request: Request, include_deleted: bool = False) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        require(request, "accounts")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return [a.__dict__ for a in accounts.list_accounts(conn, include_deleted=include_deleted)]

    return await run_in_threadpool(work)


@router.post("/accounts", summary="Create an account on a written request", status_code=201)
async def create_account(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        who = require(request, "accounts")
        ref = _ref(body)
        for name in ("username", "full_name", "unit"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise InvalidInput(f"{name} is required")
        username = accounts.check_username(body["username"])
        api_only = body.get("api_only", False)
        if not isinstance(api_only, bool):
            raise InvalidInput("api_only is true (an account for a client system: API keys only) or false")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            created, password = accounts.create_account(
                conn,
                username=username,
                full_name=body["full_name"],
                agency=body["unit"],
                roles=_strings(body, "roles"),
                communes=_strings(body, "communes"),
                grants=_strings(body, "layers"),
                email=_optional(body, "email", "email"),
                ref=ref,
                actor=_actor(who),
                address=_address(request),
                with_password=not api_only,
            )
        if api_only:
            return {"account": created.__dict__}
        return {"account": created.__dict__, "one_time_password": password}

    return await run_in_threadpool(work)


@router.post("/accounts/{username}/{action}", summary="lock, unlock, delete, grant, revoke or key, on a request")
async def change_account(
    request: Request, username: str, action: str, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    if action not in ("lock", "unlock", "delete", "grant", "revoke", "key"):
        raise InvalidInput(f"unknown action {action[:20]!r}: lock, unlock, delete, grant, revoke or key")
    accounts.check_username(username)

    def work() -> dict[str, Any]:
        who = require(request, "accounts")
        ref = _ref(body)
        actor, address = _actor(who), _address(request)
        if action in ("lock", "delete") and username == who.username:
            raise InvalidInput(f"administrators cannot {action} their own account")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            if action == "key":
                days = body.get("days", 365)
                if not isinstance(days, int):
                    raise InvalidInput("days must be a whole number")
                label = _optional(body, "label", "label") or ""
                key = accounts.issue_key(conn, username, ref, actor, label=label, valid_days=days, address=address)
                return {"api_key": key, "shown": "once"}
            if action in ("grant", "revoke"):
                change = accounts.grant if action == "grant" else accounts.revoke
                rights = {k: _strings(body, k) for k in ("roles", "layers", "communes")}
                if not any(rights.values()):
                    raise InvalidInput("give roles, layers or communes")
                account = change(conn, username, ref, actor, address=address, **rights)
            elif action == "lock":
                reason = _optional(body, "reason", "reason") or ""
                account = accounts.lock(conn, username, ref, actor, reason, address=address)
            elif action == "unlock":
                account = accounts.unlock(conn, username, ref, actor, address=address)
            else:
                account = accounts.delete(conn, username, ref, actor, address=address)
        return {"account": account.__dict__}

    return await run_in_threadpool(work)


@router.get("/audit", summary="The audit trail, newest first")
async def audit_trail(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    def work() -> list[dict[str, Any]]:
        require(request, "audit")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return audit.query(conn, actor=actor, action=action, target=target, since=since, limit=limit)

    return await run_in_threadpool(work)


@router.get("/audit/verify", summary="Check the audit trail: its keyed chain, its anchor and its head file")
async def audit_verify(request: Request) -> dict[str, Any]:
    """``ok``, the records checked, and every tamper found (``findings``: kind, record, message)."""

    def work() -> dict[str, Any]:
        require(request, "audit")
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            return audit.verify(conn).as_dict()

    return await run_in_threadpool(work)
