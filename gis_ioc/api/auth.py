"""``/api/auth``: log in and out, change the password, enrol a second factor, and who am I.

Credentials travel in headers only: ``Authorization: Bearer <session token or SSO JWT>`` or
``X-API-Key``. A credential in the address (``?api_key=``, ``?access_token=``, ``?token=``) is refused
with 400, because addresses end up in logs and browser histories.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.auth import sessions
from gis_ioc.auth.sessions import AuthenticationFailed, Principal
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import GisIocError, InvalidInput

router = APIRouter(prefix="/api/auth", tags=["auth"])

#: The web map's session cookie: HttpOnly (scripts cannot read it) and SameSite=Strict (other sites
#: cannot make the browser send it, so it cannot be used for cross-site requests).
SESSION_COOKIE = "gis_ioc_session"
CREDENTIAL_PARAMETERS = ("api_key", "apikey", "access_token", "token", "key", "password")


class TooManyRequests(GisIocError):
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """At most ``limit`` attempts per ``window`` seconds for one key (address, user name)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                raise TooManyRequests(
                    "too many login attempts: wait a minute", retry_after=int(self.window - (now - hits[0])) + 1
                )
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle keys
                for stale in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window]:
                    del self._hits[stale]


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def credential_in_address(request: Request) -> str | None:
    for name in CREDENTIAL_PARAMETERS:
        if name in request.query_params:
            return name
    return None


def principal(request: Request) -> Principal | None:
    """Who is asking (None: anonymous). Raises AuthenticationFailed for a credential that is not valid."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if (name := credential_in_address(request)) is not None:
        raise InvalidInput(f"credentials go in the Authorization or X-API-Key header, never in the address ({name}=)")
    app = request.app
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not key and not authorization and not cookie:
        return None
    found: Principal
    if key:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            found = sessions.from_api_key(conn, key)
    elif not authorization and cookie:  # the web map's session (HttpOnly, SameSite=Strict)
        try:
            with translate_errors(), app.state.pool.connection(timeout=10) as conn:
                found = sessions.from_token(conn, cookie, policy=app.state.auth_policy)
        except AuthenticationFailed:
            return None  # an ended session: the page goes on as anonymous and offers to log in again
    else:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("use Authorization: Bearer <token>")
        token = token.strip()
        verifier = getattr(app.state, "oidc", None)
        if token.count(".") == 2 and verifier is not None:
            found = verifier.principal(token)
        else:
            with translate_errors(), app.state.pool.connection(timeout=10) as conn:
                found = sessions.from_token(conn, token, policy=app.state.auth_policy)
    request.state.principal = found
    return found


def _who(p: Principal) -> dict[str, Any]:
    return {
        "username": p.username,
        "roles": sorted(p.roles),
        "communes": sorted(p.communes),
        "grants": sorted(p.grants),
        "second_factor": p.second_factor,
        "must_change_password": p.must_change_password,
        "via": p.via,
    }


def _text(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"{name} is required (a string)")
    return value


@router.post("/login", summary="Log in with a user name and password (and the second-factor code)")
async def login(
    request: Request,
    response: Response,
    body: Annotated[dict[str, Any], Body(examples=[{"username": "phan.anh", "password": "…", "code": "123456"}])],
) -> dict[str, Any]:
    """Answers the session token (send it as ``Authorization: Bearer``) and sets it as the web map's cookie."""
    username, password = _text(body, "username"), _text(body, "password")
    code = _text(body, "code", required=False) or None
    address = _address(request)
    app = request.app
    app.state.login_limiter.check(f"{address}|{username}")
    app.state.address_limiter.check(str(address))  # many user names from one address

    def work() -> dict[str, Any]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            token, who = sessions.login(
                conn, username, password, code=code, address=address, policy=app.state.auth_policy
            )
        policy = app.state.auth_policy
        idle = policy.admin_idle if who.is_admin else policy.idle
        return {"token": token, "token_type": "Bearer", "idle_timeout_s": int(idle.total_seconds()), **_who(who)}

    answer = await run_in_threadpool(work)
    response.set_cookie(
        SESSION_COOKIE,
        answer["token"],
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.base_url.startswith("https://"),
        path="/",
    )
    return answer


@router.post("/logout", summary="End this session")
async def logout(request: Request, response: Response) -> dict[str, str]:
    authorization = request.headers.get("authorization", "")
    token = authorization.partition(" ")[2].strip() or request.cookies.get(SESSION_COOKIE, "")
    response.delete_cookie(SESSION_COOKIE, path="/")
    if token:

        def work() -> None:
            with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
                sessions.logout(conn, token)

        await run_in_threadpool(work)
    return {"status": "logged out"}


@router.get("/session", summary="Who is logged in, if anyone (200 either way, for the web map)")
async def session(request: Request) -> dict[str, Any]:
    found = await run_in_threadpool(principal, request)
    return {"authenticated": found is not None, **(_who(found) if found is not None else {})}


@router.get("/me", summary="Who the credentials belong to")
async def me(request: Request) -> dict[str, Any]:
    found = await run_in_threadpool(principal, request)
    if found is None:
        raise AuthenticationFailed("no credentials: log in, or send an API key in X-API-Key")
    return _who(found)


async def _own_session(request: Request) -> Principal:
    """The principal of a built-in account's session (not an API key or an SSO token)."""
    found = await run_in_threadpool(principal, request)
    if found is None or found.via != "session":
        raise AuthenticationFailed("log in with the account's password first")
    return found


@router.post("/password", summary="Change my password (required at first login)")
async def change_password(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    found = await _own_session(request)
    old, new = _text(body, "old_password"), _text(body, "new_password")

    def work() -> None:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            sessions.change_password(conn, found.username, old, new, address=_address(request))

    await run_in_threadpool(work)
    return {"status": "password changed"}


@router.post("/totp", summary="Start enrolling a second factor: a secret and its otpauth:// address")
async def totp_enrol(request: Request) -> dict[str, str]:
    found = await _own_session(request)
    secret, uri = sessions.enrol_totp(found.username)
    return {"secret": secret, "otpauth_uri": uri}


@router.post("/totp/confirm", summary="Keep the second factor once the authenticator shows a matching code")
async def totp_confirm(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    found = await _own_session(request)
    secret, code = _text(body, "secret"), _text(body, "code")

    def work() -> None:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            sessions.confirm_totp(conn, found.username, secret, code, address=_address(request))

    await run_in_threadpool(work)
    return {"status": "second factor enrolled"}
