"""gis_ioc's feature provider for pygeoapi: the same SQL as the JSON endpoints, GeoJSON built in PostGIS.

pygeoapi answers the HTML, CSV and JSON-LD pages through this provider. It reads rows as the JSON
endpoints do: through the one read path (:mod:`gis_ioc.query.rows`), in a transaction bound to the viewer
(:func:`gis_ioc.query.scope.transaction`), against the layer as the viewer sees it (a personal field is
not among the fields of those not granted it, so pygeoapi refuses it in ``properties`` and ``sortby``).

pygeoapi gives a provider no request. gis_ioc's OGC application sets :data:`BACKEND` (the application's
pool and catalog, and the request's viewer and language) around every call into pygeoapi; used outside it
(pygeoapi run on the rendered configuration alone), the provider reads the caller from
``gis_ioc.auth.context.CURRENT``, connects with a small pool of its own and speaks Vietnamese. The messages
it hands pygeoapi (``user_msg``, shown as the error's description) are in the request's language.
pygeoapi creates a provider per request, so construction is cheap and never touches the database.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, Layer, load_catalog
from gis_ioc.crs import lookup
from gis_ioc.database.replicas import PrimaryPool, Replica
from gis_ioc.errors import DatabaseUnavailable, InvalidInput
from gis_ioc.publish.features import ItemsQuery, fetch_feature, fetch_page
from gis_ioc.publish.params import coerce_query_value, parse_datetime
from gis_ioc.publish.queryables import json_schema_type
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Backend:
    """What the OGC application hands its providers for one request."""

    pool: ConnectionPool
    catalog: Catalog
    viewer: Viewer
    #: The request's language (``vi`` or ``en``): the provider's messages.
    lang: str = "vi"


#: Set by gis_ioc's OGC application around each call into pygeoapi (see :mod:`gis_ioc.publish.ogc`).
BACKEND: ContextVar[Backend | None] = ContextVar("gis_ioc_provider_backend", default=None)


class ProviderUnavailable(ProviderConnectionError):  # type: ignore[misc]
    """PostGIS cannot be reached: pygeoapi answers 503 (and gis_ioc adds Retry-After)."""

    ogc_exception_code = "ServiceUnavailable"
    http_status_code = HTTPStatus.SERVICE_UNAVAILABLE
    default_msg = "PostGIS is unreachable"


def say(lang: str, en: str, vi: str) -> str:
    """A message handed to pygeoapi (which shows it as written) in the request's language."""
    return en if lang == "en" else vi


def current_lang() -> str:
    """The language of the request being answered through pygeoapi (``vi`` outside gis_ioc's application)."""
    backend = BACKEND.get()
    return backend.lang if backend is not None else "vi"


@cache
def _catalog(layers: str, styles: str, config: str) -> Catalog:
    return load_catalog(Path(layers), Path(styles), Path(config))


_KWARGS: dict[str, Any] = {"options": "-c statement_timeout=30000 -c timezone=UTC", "connect_timeout": 5}


def _replicas() -> tuple[list[Replica], float]:
    """The read replicas of ``GIS_IOC_DATABASE_REPLICA_URLS`` (the environment pygeoapi runs in), if any."""
    if not os.environ.get("GIS_IOC_DATABASE_REPLICA_URLS"):
        return [], 30.0
    from gis_ioc.database.connection import replica_conninfos
    from gis_ioc.settings import Settings

    settings = Settings()
    found = [
        Replica(info, ConnectionPool(info, min_size=0, max_size=4, open=False, name="gis_ioc-pygeoapi", kwargs=_KWARGS))
        for info in replica_conninfos(settings)
    ]
    return found, settings.replica_max_lag_seconds


def _pool(conninfo: str) -> ConnectionPool:
    """The provider's own pool, used outside gis_ioc's application; reads go to the replicas as there
    (:mod:`gis_ioc.database.replicas`) when ``GIS_IOC_DATABASE_REPLICA_URLS`` is set."""
    with _lock:
        pool = _pools.get(conninfo)
        if pool is None:
            replicas, max_lag = _replicas()
            pool = PrimaryPool(
                conninfo,
                replicas=replicas,
                max_lag=max_lag,
                min_size=0,
                max_size=4,
                open=False,
                name="gis_ioc-pygeoapi",
                kwargs=_KWARGS,
            )
            pool.open()
            _pools[conninfo] = pool
        return pool


def close_pools() -> None:
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class GisIocProvider(BaseProvider):  # type: ignore[misc]
    """``name: gis_ioc.publish.provider.GisIocProvider`` in a pygeoapi resource."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.conninfo: str = provider_def["data"]
        self.backend = BACKEND.get()
        dirs = provider_def["catalog"]
        self.catalog = (
            self.backend.catalog if self.backend else _catalog(dirs["layers"], dirs["styles"], dirs["config"])
        )
        self.viewer = self.backend.viewer if self.backend else Viewer.of(CURRENT.get())
        self.lang = self.backend.lang if self.backend else "vi"
        self.whole: Layer = self.catalog.layer(provider_def["layer"])
        # what this viewer may see of it, with its live fields (read-only, computed when read)
        self.layer: Layer = self.viewer.sees(self.whole.published())
        self.get_fields()

    def get_fields(self) -> dict[str, dict[str, str]]:
        fields: dict[str, dict[str, str]] = {f.name: json_schema_type(f.type) for f in self.layer.fields}
        self._fields = fields
        return fields

    def _read[T](self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(conn)`` in a transaction bound to the viewer; gis_ioc's errors as pygeoapi's."""
        if not self.viewer.can_read(self.whole):
            raise ProviderItemNotFoundError(
                user_msg=say(self.lang, f"no collection {self.whole.id!r}", f"không có lớp dữ liệu {self.whole.id!r}")
            )
        pool = self.backend.pool if self.backend else _pool(self.conninfo)
        try:
            with scope.transaction(pool, self.viewer, self.catalog, "read") as conn:
                return work(conn)
        except InvalidInput as exc:
            raise ProviderInvalidQueryError(user_msg=exc.text(self.lang)) from exc
        except (psycopg.ProgrammingError, psycopg.DataError, psycopg.errors.InternalError) as exc:
            refusal = str(exc).strip().splitlines()[0]  # PostgreSQL's own message, in English
            raise ProviderInvalidQueryError(
                user_msg=say(self.lang, refusal, f"cơ sở dữ liệu từ chối truy vấn: {refusal}")
            ) from exc
        except (DatabaseUnavailable, psycopg.OperationalError, OSError) as exc:
            raise ProviderUnavailable(
                user_msg=say(
                    self.lang,
                    "PostGIS is unreachable or busy; try again shortly",
                    "không kết nối được PostGIS hoặc PostGIS đang bận; hãy thử lại sau giây lát",
                )
            ) from exc

    def query(
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, str]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq: Any = None,
        crs_transform_spec: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        try:
            query = ItemsQuery(
                layer=self.layer,
                viewer=self.viewer,
                limit=limit,
                offset=offset,
                hits=resulttype == "hits",
                skip_geometry=skip_geometry,
            )
            if bbox:  # pygeoapi checked 4 or 6 numbers; with heights (6) the 2D layers use x and y only
                query.bbox = (
                    (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else (bbox[0], bbox[1], bbox[2], bbox[3])
                )
            if datetime_ and (interval := parse_datetime(datetime_)) != (None, None):
                query.interval = interval
            query.equals = {k: coerce_query_value(self.layer, k, str(v)) for k, v in properties or []}
            query.sortby = [(s["property"], s["order"] == "-") for s in sortby or []]
            query.properties = list(select_properties) if select_properties else None
            if crs_transform_spec is not None:
                query.crs = lookup(crs_transform_spec.target_crs_uri)
            if filterq is not None:
                from pygeofilter.backends.cql2_json import to_cql2

                query.filter = json.loads(to_cql2(filterq))
        except InvalidInput as exc:
            raise ProviderInvalidQueryError(user_msg=exc.text(self.lang)) from exc
        except (ValueError, TypeError, KeyError, AssertionError) as exc:  # what gis_ioc cannot read
            raise ProviderInvalidQueryError(
                user_msg=say(self.lang, f"query not understood: {exc}", f"không hiểu truy vấn: {exc}")
            ) from exc
        page = self._read(lambda conn: fetch_page(conn, query))
        result: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": json.loads(page.features_json),
            "numberReturned": page.returned,
        }
        if page.matched is not None:
            result["numberMatched"] = page.matched
        return result

    def get(self, identifier: Any, **kwargs: Any) -> dict[str, Any]:
        raw = str(identifier)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise ProviderItemNotFoundError(
                user_msg=say(self.lang, f"no feature {identifier!r}", f"không có đối tượng {identifier!r}")
            )
        fid = int(raw)
        spec = kwargs.get("crs_transform_spec")
        crs = lookup(spec.target_crs_uri) if spec is not None else lookup("CRS84")
        text: str | None = self._read(lambda conn: fetch_feature(conn, self.viewer, self.layer, fid, crs))
        if text is None:
            raise ProviderItemNotFoundError(
                user_msg=say(
                    self.lang,
                    f"no feature {fid} in {self.layer.id}",
                    f"không có đối tượng {fid} trong lớp {self.layer.id}",
                )
            )
        return json.loads(text)  # type: ignore[no-any-return]
