"""Who is asking, for code that has no request at hand (pygeoapi's providers and processors): the
middleware sets it for the request's context, and each request runs in its own copy of the context."""

from __future__ import annotations

from contextvars import ContextVar

from gis_ioc.auth.sessions import Principal

#: The principal of the request being served (None: anonymous).
CURRENT: ContextVar[Principal | None] = ContextVar("gis_ioc_principal", default=None)
