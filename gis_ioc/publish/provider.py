"""gis_ioc's feature provider for pygeoapi: the same SQL as the JSON endpoints, GeoJSON built in PostGIS.

pygeoapi creates a provider per request, so construction is cheap: the layer comes from the cached
catalog and connections from a small pool shared per connection string.
"""

from __future__ import annotations

import json
import threading
from functools import cache
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

from gis_ioc.auth.access import row_communes
from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, Layer, load_catalog
from gis_ioc.crs import lookup
from gis_ioc.errors import DatabaseUnavailable, InvalidInput
from gis_ioc.publish.features import ItemsQuery, fetch_feature, fetch_page
from gis_ioc.publish.params import coerce_query_value, parse_datetime
from gis_ioc.publish.queryables import json_schema_type

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


@cache
def _catalog(layers: str, styles: str, config: str) -> Catalog:
    return load_catalog(Path(layers), Path(styles), Path(config))


def _pool(conninfo: str) -> ConnectionPool:
    with _lock:
        pool = _pools.get(conninfo)
        if pool is None:
            pool = ConnectionPool(
                conninfo,
                min_size=0,
                max_size=4,
                open=True,
                name="gis_ioc-pygeoapi",
                kwargs={"options": "-c statement_timeout=30000 -c timezone=UTC"},
            )
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
        dirs = provider_def["catalog"]
        self.layer: Layer = _catalog(dirs["layers"], dirs["styles"], dirs["config"]).layer(provider_def["layer"])
        self.conninfo: str = provider_def["data"]
        self.get_fields()

    def get_fields(self) -> dict[str, dict[str, str]]:
        fields: dict[str, dict[str, str]] = {f.name: json_schema_type(f.type) for f in self.layer.fields}
        self._fields = fields
        return fields

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
                layer=self.layer, limit=limit, offset=offset, hits=resulttype == "hits", skip_geometry=skip_geometry
            )
            if bbox:
                query.bbox = (bbox[0], bbox[1], bbox[2], bbox[3])
            if datetime_:
                query.interval = parse_datetime(datetime_)
            query.equals = {k: coerce_query_value(self.layer, k, str(v)) for k, v in properties or []}
            query.sortby = [(s["property"], s["order"] == "-") for s in sortby or []]
            query.properties = list(select_properties) if select_properties else None
            if crs_transform_spec is not None:
                query.crs = lookup(crs_transform_spec.target_crs_uri)
            if filterq is not None:
                from pygeofilter.backends.cql2_json import to_cql2

                query.filter = json.loads(to_cql2(filterq))
            query.communes = row_communes(CURRENT.get(), self.layer)
            with _pool(self.conninfo).connection() as conn:
                page = fetch_page(conn, query)
        except InvalidInput as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        except (psycopg.ProgrammingError, psycopg.DataError, psycopg.errors.InternalError) as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc).strip().splitlines()[0]) from exc
        except (ValueError, TypeError, KeyError) as exc:  # pygeofilter's output that gis_ioc cannot read
            raise ProviderInvalidQueryError(user_msg=f"filter not understood: {exc}") from exc
        except (DatabaseUnavailable, OSError) as exc:
            raise ProviderConnectionError(user_msg="PostGIS is unreachable") from exc
        result: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": json.loads(page.features_json),
            "numberReturned": page.returned,
        }
        if page.matched is not None:
            result["numberMatched"] = page.matched
        return result

    def get(self, identifier: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            fid = int(identifier)
        except (TypeError, ValueError):
            raise ProviderItemNotFoundError(user_msg=f"no feature {identifier!r}") from None
        spec = kwargs.get("crs_transform_spec")
        crs = lookup(spec.target_crs_uri) if spec is not None else lookup("CRS84")
        with _pool(self.conninfo).connection() as conn:
            text = fetch_feature(conn, self.layer, fid, crs, row_communes(CURRENT.get(), self.layer))
        if text is None:
            raise ProviderItemNotFoundError(user_msg=f"no feature {fid} in {self.layer.id}")
        return json.loads(text)  # type: ignore[no-any-return]
