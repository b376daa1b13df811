"""Publishing: the pygeoapi configuration rendered from the catalog, and the OGC API routes."""
