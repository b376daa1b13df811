"""Who may read which layer, and which rows: the rule every door (OGC API, tiles, exports, scenarios,
maps, reports) asks.

- ``public`` layers: everyone, also without an account;
- ``internal`` layers: administrators, GIS officers, approvers, leaders and analysts; commune officers
  see only their own communes' features; external clients only layers granted to them;
- ``restricted`` layers (personal data): only accounts the layer is granted to, whatever their role.

Personal aggregates (population, households) below the privacy threshold are shown only to accounts
holding the ``personal_data`` grant.
"""

from __future__ import annotations

from typing import Any

from gis_ioc.auth.sessions import Principal
from gis_ioc.catalog.models import Layer
from gis_ioc.query.viewer import PERSONAL_DATA, Viewer

__all__ = ["PERSONAL_DATA", "can_read", "detail_communes", "may", "personal_access", "readable", "row_communes", "trim"]

Who = Principal | Viewer | None


def _viewer(who: Who) -> Viewer:
    return who if isinstance(who, Viewer) else Viewer.of(who)


def can_read(principal: Who, layer: Layer) -> bool:
    """May this principal (None: anonymous) read the layer at all?"""
    return _viewer(principal).can_read(layer)


def row_communes(principal: Who, layer: Layer) -> frozenset[str] | None:
    """The communes whose rows the principal may read in the layer (None: every row)."""
    return _viewer(principal).row_communes(layer)


def readable(principal: Who, layers: list[Layer]) -> list[Layer]:
    return _viewer(principal).readable(layers)


def may(principal: Who, permission: str) -> bool:
    """May the principal load, approve, export, run scenarios, manage accounts or read the audit?"""
    return _viewer(principal).may(permission)


def personal_access(principal: Who) -> bool:
    return _viewer(principal).personal


def detail_communes(principal: Who) -> frozenset[str] | None:
    """The communes whose detail a principal sees in aggregates (None: all; empty: totals only)."""
    return _viewer(principal).detail_communes()


def trim(principal: Who, result: dict[str, Any]) -> dict[str, Any]:
    """A scenario or emergency result as the principal may see it (:func:`gis_ioc.scenarios.view.trim`)."""
    from gis_ioc.scenarios.view import trim as view_trim

    return view_trim(_viewer(principal), result)
