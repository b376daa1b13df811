"""Connections to PostGIS: the connection string, single connections, the bounded pool.

Driver exceptions become gis_ioc errors here (:func:`translate_errors`), in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from gis_ioc.database.cluster import Cluster
from gis_ioc.database.replicas import PrimaryPool, Replica
from gis_ioc.errors import DatabaseUnavailable, GisIocError, InvalidInput
from gis_ioc.settings import Settings


def cluster_for(settings: Settings) -> Cluster:
    return Cluster(
        home=settings.home, port=settings.db_port, system_user=settings.db_system_user, bindir=settings.pg_bindir
    )


def conninfo(settings: Settings, dbname: str | None = None) -> str:
    """The libpq connection string gis_ioc uses: ``GIS_IOC_DATABASE_URL`` or the embedded cluster."""
    if settings.database_url is not None:
        params = conninfo_to_dict(settings.database_url.get_secret_value())
        if dbname:
            params["dbname"] = dbname
        return make_conninfo("", **params)
    return cluster_for(settings).conninfo(dbname or settings.db_name)


def server_conninfo(settings: Settings) -> str:
    """How the server connects: its least-privileged login role (``gis_ioc_server``, see
    :mod:`gis_ioc.database.roles`), through ``GIS_IOC_SERVER_DATABASE_URL`` or, by default, the same
    database as the owner's connection with that role (the embedded cluster's socket, or the external
    database with the password ``db upgrade`` wrote to ``GIS_IOC_HOME/secrets/db_server_password``)."""
    from gis_ioc.database import roles

    if settings.server_database_url is not None:
        return settings.server_database_url.get_secret_value()
    params = conninfo_to_dict(conninfo(settings))
    params["user"] = roles.SERVER
    if settings.embedded:
        params.pop("password", None)  # the private socket is trusted
    else:
        params["password"] = roles.server_password(settings.home)
    return make_conninfo("", **params)


def connection_params(settings: Settings) -> dict[str, Any]:
    """host, port, dbname, user, password of the server's role as separate values (pygeoapi's job manager)."""
    params = conninfo_to_dict(server_conninfo(settings))
    return {key: params[key] for key in ("host", "port", "dbname", "user", "password") if params.get(key)}


def describe(settings: Settings) -> str:
    """Where the database is, without credentials (for logs and messages)."""
    params = connection_params(settings)
    return f"{params.get('user', '?')}@{params.get('host', '?')}:{params.get('port', 5432)}/{params.get('dbname', '?')}"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into gis_ioc errors."""
    try:
        yield
    except GisIocError:
        raise
    except psycopg.errors.QueryCanceled as exc:  # statement_timeout: the database is there, the work too long
        raise DatabaseUnavailable(
            "the request took longer than the database allows; narrow it (a smaller area, a filter, a limit)"
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"PostGIS is unreachable: {str(exc).strip().splitlines()[0]}") from exc
    except (psycopg.errors.DataError, psycopg.errors.SyntaxErrorOrAccessRuleViolation) as exc:
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            raise
        raise InvalidInput(str(exc).strip().splitlines()[0]) from exc


#: Spatial queries bind their geometries as parameters; a generic plan cannot see them and may walk whole
#: tables (a province-wide reach query went from 1.4 s to minutes once psycopg prepared it), so every
#: execution is planned with its values.
PLANNING = "-c plan_cache_mode=force_custom_plan"


def connect(
    settings: Settings, *, autocommit: bool = False, dbname: str | None = None, server: bool = False
) -> psycopg.Connection[Any]:
    """A connection as the owner (the console, migrations) or, with ``server``, as the server's role."""
    info = server_conninfo(settings) if server else conninfo(settings, dbname)
    with translate_errors():
        return psycopg.connect(info, autocommit=autocommit, connect_timeout=10, options=PLANNING)


def replica_conninfos(settings: Settings) -> list[str]:
    """The read replicas of ``GIS_IOC_DATABASE_REPLICA_URLS``, each as the server's role connects to it.

    The same rules as :func:`server_conninfo`: a replica is a copy of the primary, so the role
    ``gis_ioc_server`` and its password are there too. An address that names no user connects as that
    role; one with no password uses, over TCP, the password ``db upgrade`` wrote to
    ``GIS_IOC_HOME/secrets/db_server_password`` (a unix socket directory, as the embedded cluster's, is
    trusted and takes none)."""
    from gis_ioc.database import roles

    found = []
    for url in (u.strip() for u in settings.database_replica_urls.split(",")):
        if not url:
            continue
        params = conninfo_to_dict(url)
        params.setdefault("dbname", conninfo_to_dict(server_conninfo(settings)).get("dbname", settings.db_name))
        params.setdefault("user", roles.SERVER)
        host = str(params.get("host") or "")
        if "password" not in params and params["user"] == roles.SERVER and host and not host.startswith("/"):
            params["password"] = roles.server_password(settings.home)
        found.append(make_conninfo("", **params))
    return found


def create_pool(settings: Settings) -> PrimaryPool:
    """The application's one bounded pool (the primary; with ``GIS_IOC_DATABASE_REPLICA_URLS``, one per
    replica beside it, see :mod:`gis_ioc.database.replicas`); open it in the lifespan, close it on shutdown.

    Connections are not checked when lent (that would be a round trip per request): a transaction whose
    first statement finds its connection broken starts again once on a fresh one
    (:func:`gis_ioc.query.scope.transaction`), and a broken connection returned has the pool check the
    others. A failing reconnection gives up after 10 s, so that the next request starts a fresh attempt
    instead of the pool's backoff growing to minutes: service comes back within seconds of the database."""

    # application_name: which pool, which process (pg_stat_activity); jit=off: the server's queries are
    # short, and compiling one (an identify planned at a high cost) once took 0.4 s of a 0.45 s answer
    def options(name: str) -> str:
        return (
            f"-c statement_timeout={settings.db_statement_timeout_ms} -c application_name={name}/{os.getpid()} "
            f"-c timezone=UTC -c jit=off {PLANNING}"
        )

    replicas = [
        Replica(
            info,
            ConnectionPool(
                info,
                min_size=min(settings.db_pool_min, 1),
                max_size=settings.db_pool_max,
                max_lifetime=settings.db_pool_max_lifetime,
                kwargs={"options": options("gis_ioc-replica"), "connect_timeout": 3},
                open=False,
                name=f"gis_ioc-replica-{n}",
                reconnect_timeout=10,
            ),
        )
        for n, info in enumerate(replica_conninfos(settings), 1)
    ]
    return PrimaryPool(
        server_conninfo(settings),
        replicas=replicas,
        max_lag=settings.replica_max_lag_seconds,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        max_lifetime=settings.db_pool_max_lifetime,
        kwargs={"options": options("gis_ioc"), "connect_timeout": 5},
        open=False,
        name="gis_ioc",
        reconnect_timeout=10,
    )


def ensure_database(settings: Settings) -> bool:
    """Create the embedded cluster's database if it is missing. Returns True when created."""
    with connect(settings, autocommit=True, dbname="postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.db_name,)).fetchone()
        if exists:
            return False
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(settings.db_name))
        )
        return True
