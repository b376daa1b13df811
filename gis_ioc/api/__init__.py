"""gis_ioc's own JSON API (``/api``): thin HTTP shells over the domain code."""
