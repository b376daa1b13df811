"""Render pygeoapi's configuration from the layer catalog (never edited by hand).

Every layer becomes a collection; who sees which is decided per request by the
:class:`~gis_ioc.query.viewer.Viewer` (a restricted layer only by the accounts it is granted to, see
:mod:`gis_ioc.publish.ogc`). Extents come from the database when it is reachable. The providers connect
as the server's least-privileged role; the OGC application hands them its own pool instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

from gis_ioc import __version__
from gis_ioc.catalog import Catalog, Layer
from gis_ioc.catalog.ddl import SCHEMA
from gis_ioc.crs import CRS84_URI, PUBLISHED_URIS
from gis_ioc.database.connection import connection_params, server_conninfo
from gis_ioc.publish import edr, processes
from gis_ioc.publish.extents import PROVINCE_BBOX as PROVINCE_BBOX  # re-exported: maps and the web map use it
from gis_ioc.publish.extents import read_extent
from gis_ioc.publish.html import BLANK_TILE, compile_locales
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings

CRS84 = CRS84_URI
LICENCES = {"CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/"}


def published_layers(catalog: Catalog) -> list[Layer]:
    """The layers the web map offers (restricted layers are not drawn there)."""
    return [layer for layer in catalog if layer.access != "restricted"]


def collection_layers(catalog: Catalog) -> list[Layer]:
    """The layers published as OGC API collections: every one, each shown only to those who may read it."""
    return list(catalog)


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host header values links may be built from (``GIS_IOC_ALLOWED_HOSTS``; by default the public
    URL's host, HOST:PORT, 127.0.0.1:PORT and localhost:PORT): the OGC application reads them here."""
    return sorted(settings.hosts)


def _i18n(text: Any) -> dict[str, str]:
    return {"vi": text.vi, "en": text.en}


def _resource(settings: Settings, layer: Layer, extents: dict[str, Any], db: str) -> dict[str, Any]:
    owner = layer.owner_unit
    description = {
        "vi": f"{layer.description.vi} Đơn vị chủ quản: {owner.vi}.",
        "en": f"{layer.description.en} Owner: {owner.en}.",
    }
    provider: dict[str, Any] = {
        "type": "feature",
        "name": "gis_ioc.publish.provider.GisIocProvider",
        "data": db,
        "layer": layer.id,
        "catalog": {
            "layers": str(settings.layers_dir),
            "styles": str(settings.styles_dir),
            "config": str(settings.config_dir),
        },
        "id_field": "fid",
        "table": f"{SCHEMA}.{layer.table}",
        "geom_field": "geom",
        "storage_crs": CRS84,
        "crs": list(PUBLISHED_URIS),
    }
    if layer.temporal:
        provider["time_field"] = layer.temporal
    links = [
        {
            "type": "text/html",
            "rel": "license",
            "title": layer.license,
            "href": LICENCES.get(layer.license, f"{settings.base_url}/licence/{layer.license}"),
        }
    ]
    return {
        "type": "collection",
        "title": _i18n(layer.title),
        "description": description,
        "keywords": {"vi": [*layer.keywords, owner.vi], "en": [*layer.keywords, owner.en]},
        "links": links,
        "extents": extents,
        "limits": {"default_items": layer.paging.default_limit, "max_items": layer.paging.max_limit},
        "providers": [provider, *_edr_provider(layer, provider)],
    }


def _edr_provider(layer: Layer, features: dict[str, Any]) -> list[dict[str, Any]]:
    """The sensor devices' second provider: OGC API EDR over their observations (:mod:`.edr`)."""
    if layer.id != edr.LAYER:
        return []
    return [
        {
            "type": "edr",
            "name": "gis_ioc.publish.edr.SensorEdrProvider",
            "data": features["data"],
            "layer": layer.id,
            "catalog": features["catalog"],
            "storage_crs": CRS84,
            "crs": [CRS84],
        }
    ]


def all_extents(conn: psycopg.Connection[Any] | None, catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Every collection's extents when the server starts (of its published rows: read as the console);
    the province's without a database. The server keeps them true afterwards (:mod:`.extents`)."""
    layers = collection_layers(catalog)
    if conn is None:
        return {layer.id: {"spatial": {"bbox": PROVINCE_BBOX, "crs": CRS84}} for layer in layers}
    with conn.transaction():
        scope.bind(conn, Viewer.console("publish"), catalog, "read")
        return {layer.id: read_extent(conn, layer).as_config() for layer in layers}


def render_config(settings: Settings, catalog: Catalog, conn: psycopg.Connection[Any] | None = None) -> dict[str, Any]:
    """The whole pygeoapi configuration as a dict."""
    db = server_conninfo(settings)  # for pygeoapi run on this configuration alone (gis_ioc hands its own pool)
    extents = all_extents(conn, catalog)
    resources = {layer.id: _resource(settings, layer, extents[layer.id], db) for layer in collection_layers(catalog)}
    key = processes.register(settings)
    for process_id, process in processes.process_resources(settings, catalog).items():
        process["processor"]["settings"] = key
        resources[process_id] = process
    return {
        "server": {
            "bind": {"host": settings.host, "port": settings.port},
            "url": settings.base_url + settings.ogc_path,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "gzip": False,
            "languages": ["vi", "en"],  # the first is the default: Vietnamese unless lang=en / Accept-Language
            "locale_dir": str(compile_locales(settings.home / "locale")),  # its HTML templates' words
            "pretty_print": False,
            "limits": {"default_items": 10, "max_items": 1000},
            "manager": processes.process_manager(settings, connection_params(settings)),
            # the HTML pages' Leaflet maps: no tile server (offline); the features are drawn on a blank tile
            "map": {"url": BLANK_TILE, "attribution": ""},
        },
        "logging": {"level": settings.log_level.upper() if settings.log_level != "info" else "WARNING"},
        "metadata": {
            "identification": {
                "title": {
                    "vi": "Trung tâm Giám sát, điều hành thông minh tỉnh Hưng Yên — dữ liệu không gian",
                    "en": "Hưng Yên Intelligent Operations Center — geospatial data",
                },
                "description": {
                    "vi": "Các lớp bản đồ số của tỉnh Hưng Yên (ranh giới hành chính, đất đai, nhà ở, hạ tầng kỹ thuật "
                    "đô thị, quy hoạch, thiết bị IoT) theo chuẩn OGC API.",
                    "en": "The digital map layers of Hưng Yên province (administrative boundaries, land, housing, "
                    "urban infrastructure, planning, IoT devices) as OGC API.",
                },
                "keywords": {"vi": ["Hưng Yên", "IOC", "bản đồ số"], "en": ["Hưng Yên", "IOC", "digital map"]},
                "keywords_type": "theme",
                "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                "url": settings.base_url,
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "Trung tâm Giám sát, điều hành thông minh tỉnh Hưng Yên", "url": settings.base_url},
            "contact": {
                "name": "Trung tâm Giám sát, điều hành thông minh tỉnh Hưng Yên",
                "position": "Bộ phận vận hành",
                "address": "Tỉnh Hưng Yên",
                "city": "Hưng Yên",
                "country": "Việt Nam",
                "url": settings.base_url,
                "role": "pointOfContact",
            },
        },
        "resources": resources,
        "x-gis_ioc": {
            "version": __version__,
            "rendered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "allowed_hosts": allowed_hosts(settings),
        },
    }


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write the configuration (mode 0600: it holds the database connection)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
