"""THE read path: who asks (:class:`Viewer`), which rows they may read (:mod:`.rows`), and what
PostgreSQL is told about them in every transaction (:mod:`.scope`)."""

from gis_ioc.query.viewer import PERSONAL_DATA, Viewer

__all__ = ["PERSONAL_DATA", "Viewer"]
