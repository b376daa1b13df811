"""``create_app()``: one ASGI application — the OGC API under one base path, gis_ioc's own JSON API
(``/api``), health probes, and the middleware in front of them all."""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool

from gis_ioc import __version__
from gis_ioc.api import admin as admin_api
from gis_ioc.api import auth as auth_api
from gis_ioc.api import exports as exports_api
from gis_ioc.api import feedback as feedback_api
from gis_ioc.api import guard
from gis_ioc.api import iot as iot_api
from gis_ioc.api import iot_live as iot_live_api
from gis_ioc.api import loads as loads_api
from gis_ioc.api import maps as maps_api
from gis_ioc.api import plans as plans_api
from gis_ioc.api import reports as reports_api
from gis_ioc.api import scenarios as scenarios_api
from gis_ioc.api import web as web_api
from gis_ioc.api.front import FrontDoor
from gis_ioc.auth import audit
from gis_ioc.auth.cache import PrincipalCache
from gis_ioc.auth.oidc import OidcConfig, OidcVerifier
from gis_ioc.auth.sessions import Policy
from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.database import migrations
from gis_ioc.database.connection import create_pool, describe, server_conninfo, translate_errors
from gis_ioc.database.versions import DataVersions
from gis_ioc.errors import DatabaseUnavailable, GisIocError
from gis_ioc.http import problem
from gis_ioc.loaders.vector import LoaderConfig
from gis_ioc.publish.config import render_config
from gis_ioc.publish.ogc import create_ogc_app
from gis_ioc.publish.provider import close_pools
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.models import load_emergency, load_scenarios
from gis_ioc.settings import Settings
from gis_ioc.web import STATIC_DIR

log = logging.getLogger("gis_ioc")


def database_state(pool: Any, catalog: Catalog, *, counts: bool = False) -> dict[str, Any]:
    """What the health endpoints report about PostGIS. Exact row counts (one count(*) per layer) only
    when asked for: administrators' detail, never for the probes anyone may call."""
    with translate_errors(), pool.connection(timeout=5) as conn, conn.transaction():
        scope.bind(conn, Viewer.console("health"), catalog, "aggregate")
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        server = conn.execute("SHOW server_version").fetchone()[0]
        pending = [f"{m.version}_{m.name}" for m in migrations.pending(conn)]
        missing = sorted(layer.id for layer in catalog if migrations.existing_columns(conn, layer.table) is None)
        layers = migrations.table_counts(conn, catalog) if counts else None
    state: dict[str, Any] = {
        "reachable": True,
        "server_version": server,
        "postgis_version": postgis,
        "migrations_pending": pending,
        "layers_missing": missing,
    }
    if layers is not None:
        state["layers"] = layers
    from gis_ioc.database.replicas import replicas_of

    if (primary := replicas_of(pool)) is not None:
        state["replicas"] = primary.replica_states()  # host:port, reachable, lag, replay LSN (no credentials)
    return state


class _RedactCredentials(logging.Filter):
    """Access-log lines never carry credentials, even ones a client wrongly put in the address."""

    PATTERN = re.compile(r"(?i)([?&](?:api_?key|access_token|token|key|password)=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


def auth_policy(settings: Settings) -> Policy:
    return Policy(
        max_failed=settings.auth_max_failed_logins,
        lockout=timedelta(minutes=settings.auth_lockout_minutes),
        idle=timedelta(minutes=settings.auth_idle_minutes),
        admin_idle=timedelta(minutes=settings.auth_admin_idle_minutes),
        lifetime=timedelta(hours=settings.auth_session_hours),
        inactive=timedelta(days=settings.auth_inactive_days),
        trusted=tuple(
            ipaddress.ip_network(n.strip(), strict=False)
            for n in settings.auth_trusted_networks.split(",")
            if n.strip()
        ),
    )


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    if not (settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url):
        return None
    algorithms = tuple(a.strip() for a in settings.oidc_algorithms.split(",") if a.strip())
    return OidcVerifier(OidcConfig(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url, algorithms))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # the audit chain's key and head file, and the key sealing second-factor secrets: an unreadable or
    # too widely readable key stops the server here rather than at its first request
    audit.configure(settings.home).audit_key()
    audit.keys().totp_key()
    scope.ANONYMOUS_TIMEOUT_MS = settings.anonymous_statement_timeout_ms
    catalog = load_catalog(settings.layers_dir, settings.styles_dir, settings.config_dir)
    pool = create_pool(settings)
    try:
        pool.open(wait=True, timeout=10)
        with pool.connection(timeout=10) as conn:
            config = render_config(settings, catalog, conn)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        # the server still starts; the health endpoint says what is wrong, extents use the province's
        log.warning("PostGIS at %s is not reachable yet: %s", describe(settings), exc)
        config = render_config(settings, catalog, None)

    # each process listens for data changes: its caches follow the data's version (gis_ioc.database.versions)
    versions = DataVersions(lambda: server_conninfo(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        versions.start()
        exports_api.job_manager_of(app)  # every process sweeps expired and stalled jobs from the start
        yield
        versions.close()
        if (hub := getattr(app.state, "iot_hub", None)) is not None:
            hub.task.cancel()
        if (jobs := getattr(app.state, "export_jobs", None)) is not None:
            jobs.close()
        pool.close()
        close_pools()

    app = FastAPI(
        title="gis_ioc",
        version=__version__,
        description="Geospatial analytics server of the Hưng Yên Intelligent Operations Center.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.pool = pool
    app.state.pygeoapi_config = config
    app.state.versions = versions
    app.state.scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)
    app.state.emergency = load_emergency(settings.config_dir / "scenarios", catalog)
    app.state.auth_policy = auth_policy(settings)
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactCredentials) for f in access_log.filters):
        access_log.addFilter(_RedactCredentials())
    app.state.login_limiter = auth_api.RateLimiter(pool, "login", settings.auth_login_attempts_per_minute)
    app.state.address_limiter = auth_api.RateLimiter(pool, "login-address", 5 * settings.auth_login_attempts_per_minute)
    app.state.oidc = oidc_verifier(settings)
    app.include_router(auth_api.router)
    app.include_router(admin_api.router)
    app.include_router(scenarios_api.router)
    app.include_router(loads_api.router)
    app.include_router(plans_api.router)
    app.include_router(scenarios_api.emergency_router)
    app.include_router(web_api.router)
    app.include_router(exports_api.router)
    app.include_router(maps_api.router)
    app.include_router(reports_api.router)
    app.include_router(feedback_api.open311_router)
    app.include_router(feedback_api.router)
    app.include_router(feedback_api.page_router)
    app.include_router(iot_api.router)
    app.include_router(iot_live_api.router)

    @app.exception_handler(GisIocError)
    async def gis_ioc_error(request: Request, exc: GisIocError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        # Vietnamese first where the message is written in Vietnamese; English when the caller asks
        return error_response(exc, loads_api.language(request))

    if origins := [o.strip() for o in settings.cors_origins.split(",") if o.strip()]:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Prefer"],
        )

    def error_response(exc: GisIocError, lang: str = "en") -> JSONResponse:
        if exc.status >= 500:
            log.error("%s", exc)
        response = problem(exc.status, exc.title, exc.text(lang), **({"code": exc.code} if exc.code else {}))
        if isinstance(exc, auth_api.TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = getattr(exc, "challenge", 'Bearer realm="gis_ioc"')
        return response

    # outermost of the application's own middleware: Host, sizes, who asks, security headers
    app.state.principals = PrincipalCache(versions)
    app.add_middleware(
        FrontDoor,
        settings=settings,
        resolve=auth_api.principal,
        error=error_response,
        principals=app.state.principals,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks (query and body types, ranges) answer problem+json naming the parameter
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return problem(422, "Invalid request", "; ".join(parts), errors=jsonable_encoder(exc.errors()))

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="PostGIS reachable and schema current", response_model=None)
    async def readyz() -> dict[str, Any] | JSONResponse:
        from gis_ioc.database.replicas import replicas_of

        try:
            state = await run_in_threadpool(database_state, pool, catalog)
        except DatabaseUnavailable as exc:
            primary = replicas_of(pool)
            if primary is None or primary.pick() is None:
                return problem(503, exc.title, str(exc))
            # the replicas still serve reads: stay in the load balancer, say that writes answer 503
            return {
                "status": "read-only",
                "detail": "the primary database is unreachable: reads are served by the replicas, changes answer 503",
                "replicas": primary.replica_states(),
            }
        if state["migrations_pending"] or state["layers_missing"]:
            return problem(503, "Schema not current", "run `gis-ioc db upgrade`")
        if "replicas" in state:
            return {"status": "ready", "replicas": state["replicas"]}
        return {"status": "ready"}

    @app.get(
        "/api/health", tags=["health"], summary="Health (the database's detail for administrators)", response_model=None
    )
    async def health(request: Request) -> dict[str, Any] | JSONResponse:
        """The database state in detail only for administrators: layer names and counts tell others what
        they may not read. Everyone else gets the status."""
        body: dict[str, Any] = {"version": __version__, "database": {"reachable": False}}
        admin = guard.viewer(request).is_admin
        try:
            body["database"] = await run_in_threadpool(lambda: database_state(pool, catalog, counts=admin))
        except DatabaseUnavailable as exc:
            body["status"] = "unavailable"
            if admin:
                body["database"]["error"] = str(exc)
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        current = not body["database"]["migrations_pending"] and not body["database"]["layers_missing"]
        body["status"] = "ok" if current else "degraded"
        if not admin:
            return {"version": __version__, "status": body["status"], "database": {"reachable": True}}
        body["collections"] = sorted(k for k, v in config["resources"].items() if v.get("type") == "collection")
        return body

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    ogc = create_ogc_app(
        config,
        catalog,
        pool,
        settings.public_url,
        settings.ogc_path,
        versions=versions,
        tile_cache_bytes=settings.tile_cache_mb * 1024 * 1024,
        answer_cache_bytes=settings.feature_cache_mb * 1024 * 1024,
    )
    ogc.state.features.loader = LoaderConfig.from_settings(settings)  # edits pass the file loads' gates
    app.state.tile_cache = ogc.state.features.tiles
    app.state.answer_cache = ogc.state.features.answers
    app.mount(settings.ogc_path, ogc)
    return app
