"""One exception hierarchy for gis_ioc; HTTP statuses are mapped in one place (``app.py``)."""

from __future__ import annotations


class GisIocError(Exception):
    """Base of every error gis_ioc raises on purpose. ``code``: a stable name of the message (``auth.…``)
    that clients translate (the web map shows it in Vietnamese or English); sent as the problem's ``code``."""

    status = 500
    title = "Internal error"
    code: str | None = None
    #: The message in Vietnamese, where one is written: shown first to Vietnamese readers (``text``).
    vi: str | None = None

    def __init__(self, *args: object, code: str | None = None, vi: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        if vi is not None:
            self.vi = vi

    def text(self, lang: str = "en") -> str:
        """The message in ``lang`` (``vi``: the Vietnamese one where written, else the English one)."""
        return self.vi if lang == "vi" and self.vi else str(self)


class ConfigError(GisIocError):
    """The catalog, the settings or a configuration file is wrong."""

    title = "Configuration error"


class CatalogError(ConfigError):
    """A layer file or style does not validate."""

    title = "Invalid layer catalog"


class ClusterError(GisIocError):
    """The embedded PostgreSQL cluster cannot be created, started or stopped."""

    title = "Embedded database error"


class DatabaseUnavailable(GisIocError):
    """PostGIS cannot be reached."""

    status = 503
    title = "Database unavailable"


class MigrationError(GisIocError):
    """A schema migration failed or the database schema disagrees with the catalog."""

    title = "Migration error"


class InvalidInput(GisIocError):
    """The caller sent something malformed; the message names it."""

    status = 400
    title = "Invalid input"


class NotFound(GisIocError):
    status = 404
    title = "Not found"


class LoadError(GisIocError):
    """A data load was refused; nothing was written."""

    status = 422
    title = "Load refused"


class Unauthorized(GisIocError):
    """No valid credentials (the answer carries WWW-Authenticate)."""

    status = 401
    title = "Unauthorized"


class Forbidden(GisIocError):
    """Valid credentials, but not allowed to do this."""

    status = 403
    title = "Forbidden"
