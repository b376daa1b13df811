"""``/api/auth``: log in and out, change the password, enrol a second factor, and who am I.

Credentials travel in headers only: ``Authorization: Bearer <session token or SSO JWT>``,
``X-API-Key``, or ``Authorization: Basic`` with a user name and one of its API keys (for QGIS desktop,
which cannot send a custom header; over HTTPS or from the government network only). A credential in
the address (``?api_key=``, ``?access_token=``, ``?token=``) is refused with 400,
because addresses end up in logs and browser histories.

Every field is bounded before it is used (user names 64 characters, passwords 1,024, codes 10). Login
attempts are rate-limited per address and user name, and per address, in PostgreSQL
(:mod:`gis_ioc.auth.ratelimit`: the same count whichever worker answers; 16-byte digests, not the values).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from gis_ioc.auth import sessions
from gis_ioc.auth.accounts import USERNAME_MAX
from gis_ioc.auth.oidc import TOKEN_MAX
from gis_ioc.auth.passwords import MAX_LENGTH as PASSWORD_MAX
from gis_ioc.auth.ratelimit import RateLimiter as RateLimiter  # re-exported: app.py makes the limiters
from gis_ioc.auth.ratelimit import TooManyRequests as TooManyRequests  # re-exported: app.py answers it
from gis_ioc.auth.sessions import CODE_MAX, AuthenticationFailed, Principal
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import InvalidInput

router = APIRouter(prefix="/api/auth", tags=["auth"])

#: The web map's session cookie: HttpOnly (scripts cannot read it) and SameSite=Strict (other sites
#: cannot make the browser send it, so it cannot be used for cross-site requests).
SESSION_COOKIE = "gis_ioc_session"
CREDENTIAL_PARAMETERS = ("api_key", "apikey", "access_token", "token", "key", "password")


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
    # on the primary; on a replica (read-only lookups) while the primary is unreachable
    from gis_ioc.database.replicas import lookup

    found: Principal
    if key:
        found = lookup(
            app.state.pool, lambda c, ro: sessions.from_api_key(c, key, address=_address(request), read_only=ro)
        )
    elif not authorization and cookie:  # the web map's session (HttpOnly, SameSite=Strict)
        try:
            found = lookup(
                app.state.pool, lambda c, ro: sessions.from_token(c, cookie, policy=app.state.auth_policy, read_only=ro)
            )
        except AuthenticationFailed:
            return None  # an ended session: the page goes on as anonymous and offers to log in again
    elif authorization[:6].lower() == "basic ":
        found = _basic(request, authorization[6:].strip())
    else:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("use Authorization: Bearer <token> or Basic <user name:API key>")
        if len(token) > TOKEN_MAX:
            raise AuthenticationFailed(f"the token is larger than {TOKEN_MAX // 1024} KB")
        token = token.strip()
        verifier = getattr(app.state, "oidc", None)
        if token.count(".") == 2 and verifier is not None:
            found = verifier.principal(token)
        else:
            found = lookup(
                app.state.pool, lambda c, ro: sessions.from_token(c, token, policy=app.state.auth_policy, read_only=ro)
            )
    request.state.principal = found
    return found


def _basic(request: Request, encoded: str) -> Principal:
    """HTTP Basic for clients that cannot send a custom header (QGIS desktop): the user name and an API
    key of that account as the password. Only over HTTPS, or from the government network
    (``GIS_IOC_AUTH_TRUSTED_NETWORKS``), where a password in the clear is not exposed. Failures are counted
    by the same rate limits as logins (per address and user name, and per address), and a client past
    them is refused (429) before its credential is tried."""
    app = request.app
    address = _address(request)
    if request.url.scheme != "https" and not app.state.auth_policy.inside(address):
        raise sessions.BasicFailed("HTTP Basic is accepted only over HTTPS, or from the government network")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise sessions.BasicFailed("Authorization: Basic takes base64 of <user name>:<API key>") from None
    username, colon, key = decoded.partition(":")
    if not colon or not username or not key:
        raise sessions.BasicFailed("Authorization: Basic takes base64 of <user name>:<API key>")
    pair = f"{address}|{username}"
    app.state.login_limiter.refuse_if_over(pair)
    app.state.address_limiter.refuse_if_over(str(address))
    from gis_ioc.database.replicas import lookup

    try:
        return lookup(
            app.state.pool,
            lambda c, ro: sessions.from_basic(
                c, username, key, address=address, policy=app.state.auth_policy, read_only=ro
            ),
        )
    except AuthenticationFailed:
        app.state.login_limiter.check(pair)  # a failure counts like a failed login (429 past the limit)
        app.state.address_limiter.check(str(address))
        raise


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


#: The longest value of each field the auth API takes (checked before any other use).
FIELD_MAX = {
    "username": USERNAME_MAX,
    "password": PASSWORD_MAX,
    "old_password": PASSWORD_MAX,
    "new_password": PASSWORD_MAX,
    "code": CODE_MAX,
    "secret": 64,
}


def _text(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"{name} is required (a string)")
    if len(value) > FIELD_MAX[name]:
        raise InvalidInput(f"{name} has at most {FIELD_MAX[name]:,} characters")
    return value


def _session_token(request: Request) -> str | None:
    """The session token this request came with (as :func:`principal` found it)."""
    authorization = request.headers.get("authorization", "")
    if authorization:
        return authorization.partition(" ")[2].strip() or None
    return request.cookies.get(SESSION_COOKIE)


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

    def work() -> dict[str, Any]:
        # counted in PostgreSQL, each in its own committed transaction (a refused login cannot undo it);
        # the address is counted only once the address and user name pair was let through
        app.state.login_limiter.check(f"{address}|{username}")
        app.state.address_limiter.check(str(address))  # many user names from one address
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
async def change_password(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Every other session of the account ends; this one goes on."""
    found = await _own_session(request)
    old, new = _text(body, "old_password"), _text(body, "new_password")
    app = request.app

    def work() -> int:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            return sessions.change_password(
                conn,
                found.username,
                old,
                new,
                address=_address(request),
                keep=_session_token(request),
                policy=app.state.auth_policy,
            )

    ended = await run_in_threadpool(work)
    return {"status": "password changed", "other_sessions_ended": ended}


@router.post(
    "/totp", summary="Start enrolling a second factor (re-authenticate): a secret, its otpauth:// address and QR code"
)
async def totp_enrol(
    request: Request,
    body: Annotated[dict[str, Any] | None, Body(examples=[{"password": "…", "code": "123456"}])] = None,
) -> dict[str, str]:
    """Needs the current ``password``, and a current ``code`` when a second factor is already enrolled;
    the secret then waits (10 minutes) for ``POST /api/auth/totp/confirm`` with the authenticator's code."""
    found = await _own_session(request)
    body = body or {}
    password = _text(body, "password", required=False) or None
    code = _text(body, "code", required=False) or None
    app = request.app

    def work() -> tuple[str, str]:
        with translate_errors(), app.state.pool.connection(timeout=10) as conn:
            return sessions.enrol_totp(
                conn, found.username, password, code=code, address=_address(request), policy=app.state.auth_policy
            )

    secret, uri = await run_in_threadpool(work)
    # the QR code is drawn here: the secret never goes to a QR service, and the page works offline
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", title="Mã QR bảo mật hai lớp")
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_svg}


@router.post("/totp/confirm", summary="Keep the second factor once the authenticator shows a matching code")
async def totp_confirm(request: Request, body: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    found = await _own_session(request)
    code = _text(body, "code")
    secret = _text(body, "secret", required=False) or None

    def work() -> None:
        with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
            sessions.confirm_totp(conn, found.username, code, secret=secret, address=_address(request))

    await run_in_threadpool(work)
    return {"status": "second factor enrolled"}
