"""What the project's own HTTP doors ask before they act: who is asking, may they, and the audit record
of what they did or were refused. (The OGC API asks :mod:`gis_ioc.auth.access` directly.)"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from gis_ioc.auth import audit
from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog.models import Layer
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import Forbidden, NotFound, Unauthorized
from gis_ioc.query.viewer import Viewer


def address(request: Request) -> str | None:
    return request.client.host if request.client else None


def viewer(request: Request) -> Viewer:
    """Who asks, resolved once per request by the front door (anonymous when nobody logged in)."""
    found: Viewer | None = getattr(request.state, "viewer", None)
    return found if found is not None else Viewer.of(CURRENT.get())


def record(request: Request, action: str, target: str | None = None, result: str = "ok", **detail: Any) -> None:
    """One audit record for what this request did (its own transaction); refusals are bounded per caller
    and address (:func:`gis_ioc.auth.audit.refused`), so a flood of refused requests cannot flood the trail."""
    write = audit.refused if result in audit.REFUSALS else audit.record
    with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
        write(
            conn,
            actor=viewer(request).name,
            action=action,
            target=target,
            result=result,
            address=address(request),
            detail=detail,
        )


def require(request: Request, permission: str) -> Viewer:
    """The viewer, if it is an account that may do ``permission`` (401 without credentials, 403
    otherwise; refusals audited)."""
    found = viewer(request)
    if found.anonymous:
        raise Unauthorized(f"log in (or send an API key) to {permission.replace('_', ' ')}")
    reason = None
    if not found.may(permission):
        reason = f"needs the {permission!r} permission"
    elif found.must_change_password:
        reason = "change the first password first (POST /api/auth/password)"
    elif found.is_admin and not found.second_factor and permission in ("accounts", "audit"):
        reason = "administrators work with a second factor: enrol one at POST /api/auth/totp"
    if reason is not None:
        record(request, "denied", f"{request.method} {request.url.path}", "denied", reason=reason)
        raise Forbidden(reason)
    return found


def readable_layer(request: Request, layer_id: str) -> Layer:
    """The layer, if the viewer may read it; otherwise 404, as if it did not exist (refusal audited)."""
    layer: Layer | None = request.app.state.catalog.layers.get(layer_id)
    if layer is None:
        raise NotFound(f"no layer {layer_id!r}")
    if not viewer(request).can_read(layer):
        record(request, "denied", f"layer {layer_id}", "denied", reason="layer not readable")
        raise NotFound(f"no layer {layer_id!r}")
    return layer
