"""Connections to PostGIS: the connection string, single connections, the bounded pool.

Driver exceptions become gis_ioc errors here (:func:`translate_errors`), in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from gis_ioc.database.cluster import Cluster
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


def create_pool(settings: Settings) -> ConnectionPool:
    """The application's one bounded pool; open it in the lifespan, close it on shutdown."""
    options = (
        f"-c statement_timeout={settings.db_statement_timeout_ms} -c application_name=gis_ioc -c timezone=UTC "
        + PLANNING
    )
    return ConnectionPool(
        server_conninfo(settings),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        max_lifetime=settings.db_pool_max_lifetime,
        kwargs={"options": options, "connect_timeout": 5},
        open=False,
        name="gis_ioc",
        # After PostGIS restarts: connections are checked when taken (dead ones replaced), and a failing
        # reconnection gives up after 10 s so that the next request starts a fresh attempt, instead of the
        # pool's backoff growing to minutes; service comes back within seconds of the database.
        check=ConnectionPool.check_connection,
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
