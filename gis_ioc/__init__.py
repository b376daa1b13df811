"""gis_ioc: the geospatial analytics server of the Hưng Yên Intelligent Operations Center."""

__version__ = "0.1.0"
