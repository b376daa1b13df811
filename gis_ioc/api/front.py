"""The front door: one pure ASGI middleware in front of every door of the application.

In order, for every HTTP request:

1. the ``Host`` header must be one of ``GIS_IOC_ALLOWED_HOSTS`` (400 otherwise), so that no link, cached
   page or OpenAPI document is ever built from a forged host;
2. headers are bounded (431 when one is longer than :data:`MAX_HEADER` or all together than
   :data:`MAX_HEADERS`), and so is the body: a declared ``Content-Length`` above the limit is refused at
   once, and a body sent without one (chunked) is counted as it arrives and cut off with 413 at the limit;
3. who is asking is resolved once (API key, session or single sign-on token) into a
   :class:`~gis_ioc.query.viewer.Viewer` at ``request.state.viewer``, which every door passes down; an
   account whose one-time first password is still unchanged reaches only the login pages (the web map's
   own reads, with its cookie alone, go on as an anonymous caller's behind the page's password dialog);
4. every answer carries the security headers; authentication answers are never cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gis_ioc.api.auth import CREDENTIAL_PARAMETERS, SESSION_COOKIE
from gis_ioc.auth import audit
from gis_ioc.auth.cache import PrincipalCache
from gis_ioc.auth.context import CURRENT
from gis_ioc.auth.sessions import Principal
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import Forbidden, GisIocError, Unauthorized
from gis_ioc.http import problem
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Longest single header value, and all headers together (bytes).
MAX_HEADER = 8 * 1024
MAX_HEADERS = 32 * 1024

#: Sent with every answer (TCVN 11930 / OWASP): no MIME sniffing, no framing by other sites, no referrer.
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"SAMEORIGIN",
    b"referrer-policy": b"no-referrer",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
}
#: Routes that take large bodies, and the permission they need: refused before the body is read.
BODY_PERMISSIONS = {"/api/loads": "load"}
#: Paths an account with an unchanged first password may still reach.
FIRST_PASSWORD_PATHS = ("/api/auth/", "/static/", "/healthz", "/readyz")


#: Methods that change nothing, and the doors whose changes may change what a credential gives.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
CREDENTIAL_PATHS = ("/api/admin", "/api/auth")
#: The web map's session cookie, as it appears in a Cookie header.
SESSION_MARK = SESSION_COOKIE.encode() + b"="


def _credential_in_query(query: bytes) -> bool:
    """Might the address carry a credential (``?api_key=`` …)? Such a request takes the full lookup,
    which refuses it with 400 naming the parameter."""
    if not query:
        return False
    names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    return any(name in names for name in CREDENTIAL_PARAMETERS)


def _cookie_only(scope: Scope) -> bool:
    """Does the request carry the web map's session cookie and no other credential?"""
    headers = dict(scope["headers"])
    other = b"authorization" in headers or b"x-api-key" in headers
    return not other and SESSION_MARK in headers.get(b"cookie", b"")


class BodyTooLarge(GisIocError):
    """A body without Content-Length went past the limit (every door's error handler answers 413)."""

    status = 413
    title = "Request too large"


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        resolve: Callable[[Request], Principal | None],
        error: Callable[[GisIocError], Response],
        principals: PrincipalCache | None = None,
    ) -> None:
        self.app = app
        self.principals = principals
        self.settings = settings
        self.hosts = settings.hosts
        self.resolve = resolve
        self.error = error

    async def who(self, scope: Scope, request: Request) -> Principal | None:
        """Who asks. Without any credential: nobody, at once. With an API key (in ``X-API-Key`` or HTTP
        Basic) this process checked under the credentials' current version: its principal, at once
        (:mod:`gis_ioc.auth.cache`).
        Otherwise the lookup, in a worker thread."""
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key")
        plain = not _credential_in_query(scope.get("query_string", b""))
        if (
            plain
            and key is None
            and b"authorization" not in headers
            and SESSION_MARK not in headers.get(b"cookie", b"")
        ):
            return None
        authorization = headers.get(b"authorization", b"")
        basic = authorization[:6].lower() == b"basic "
        if plain and (key is not None or basic) and self.principals is not None:
            if key is not None:
                credential = key.decode("latin-1")
            else:  # Basic is accepted over HTTPS or from the government network: both are in the entry's key
                client = scope.get("client") or ("", 0)
                credential = f"\0{scope.get('scheme')}\0{client[0]}\0{authorization.decode('latin-1')}"
            cached = self.principals.get(credential)
            if cached is not None:
                scope.setdefault("state", {})["principal"] = cached  # as the lookup leaves it
                return cached
            version = self.principals.version()  # before the lookup: a change meanwhile voids the entry
            found = await run_in_threadpool(self.resolve, request)
            if found is not None:
                self.principals.put(credential, found, version)
            return found
        return await run_in_threadpool(self.resolve, request)

    def _forgetting(self, send: Send) -> Send:
        """An account or key changed here: this process forgets the principals it holds before the caller
        hears the answer (other processes are told by PostgreSQL within milliseconds)."""
        principals = self.principals
        assert principals is not None

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                principals.clear()
            await send(message)

        return wrapped

    def limit(self, path: str) -> int:
        mb = self.settings.load_max_upload_mb if path.startswith("/api/loads") else self.settings.max_request_mb
        return mb * 1024 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.settings.ogc_path:  # the landing page as published (`/ogc`, `/ogc?f=json`): no redirect
            path = path + "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        send = _with_headers(send, no_store=path.startswith("/api/auth"))
        refusal = self.check(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            who = await self.who(scope, request)
        except GisIocError as exc:
            await self.error(exc)(scope, receive, send)
            return
        first_password = who is not None and who.via == "session" and who.must_change_password
        if first_password and not path.startswith(FIRST_PASSWORD_PATHS) and path != "/":
            if scope["method"] in SAFE and _cookie_only(scope):
                # the web map behind its first-password dialog: what anyone may see, nothing more
                who = None
            else:
                first = Forbidden("change the first password (POST /api/auth/password)", code="auth.first_password")
                await self.error(first)(scope, receive, send)
                return
        viewer = Viewer.of(who)
        needed = BODY_PERMISSIONS.get(path) if scope["method"] == "POST" else None
        if needed is not None and not viewer.may(needed):  # refused before a large upload is read
            refusal_error: GisIocError = Unauthorized(f"log in (or send an API key) to {needed}")
            if not viewer.anonymous:
                refusal_error = Forbidden(f"needs the {needed!r} permission")
                try:
                    await run_in_threadpool(self.audit_refusal, scope, viewer, str(refusal_error))
                except GisIocError as exc:
                    refusal_error = exc
            await self.error(refusal_error)(scope, receive, send)
            return
        scope.setdefault("state", {})["viewer"] = viewer
        token = CURRENT.set(who)
        try:
            if self.principals is not None and scope["method"] not in SAFE and path.startswith(CREDENTIAL_PATHS):
                send = self._forgetting(send)
            await self.bounded(scope, receive, send, self.limit(path))
        finally:
            CURRENT.reset(token)

    async def bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the application on a body cut off past ``limit`` bytes. A body without Content-Length
        (chunked) is counted as it arrives; past the limit the application sees the client gone, and
        whatever it answers (frameworks answer 400 to a body they could not read) is replaced by 413."""
        seen = 0
        over = False
        answered = False
        too_large = BodyTooLarge(f"the body is larger than {limit // 2**20} MB")

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await self.error(too_large)(scope, receive, send)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            over = True
        except Exception:
            if not over:
                raise
        if over and not answered:
            answered = True
            await self.error(too_large)(scope, receive, send)

    @staticmethod
    def audit_refusal(scope: Scope, viewer: Viewer, reason: str) -> None:
        """A refusal made here is audited like one made at a door (bounded per caller and address)."""
        client = scope.get("client")
        with translate_errors(), scope["app"].state.pool.connection(timeout=10) as conn:
            audit.refused(
                conn,
                actor=viewer.name,
                action="denied",
                target=f"{scope['method']} {scope['path']}",
                address=client[0] if client else None,
                detail={"reason": reason},
            )

    def check(self, scope: Scope) -> Response | None:
        """Refusals that need no database: host, header sizes, declared body size."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        total = 0
        host = b""
        length = None
        for name, value in headers:
            total += len(name) + len(value)
            if len(value) > MAX_HEADER or total > MAX_HEADERS:
                return problem(
                    431,
                    "Request headers too large",
                    f"a header is longer than {MAX_HEADER} bytes, or all headers together longer than {MAX_HEADERS}",
                )
            if name == b"host":
                host = value
            elif name == b"content-length":
                length = value
        if host.decode("latin-1").lower() not in self.hosts:
            return problem(
                400,
                "Unknown host",
                "this server is not reached by that name (Host header); "
                "its administrator lists the names in GIS_IOC_ALLOWED_HOSTS",
            )
        limit = self.limit(scope["path"])
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problem(413, "Request too large", f"the body is larger than {limit // 2**20} MB")
        return None


def _with_headers(send: Send, *, no_store: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend((k, v) for k, v in SECURITY_HEADERS.items() if k not in present)
            if no_store:
                headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers
        await send(message)

    return wrapped
