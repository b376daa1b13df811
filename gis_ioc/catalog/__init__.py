"""The layer catalog: ``layers/*.yaml`` and ``styles/*.yaml``, validated; indicators from ``config/``."""

from gis_ioc.catalog.models import Field, Layer, Style, Text
from gis_ioc.catalog.store import Catalog, load_catalog

__all__ = ["Catalog", "Field", "Layer", "Style", "Text", "load_catalog"]
