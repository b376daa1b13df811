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

from gis_ioc.auth.roles import PERMISSIONS, READS_INTERNAL
from gis_ioc.auth.sessions import Principal
from gis_ioc.catalog.models import Layer

PERSONAL_DATA = "personal_data"


def can_read(principal: Principal | None, layer: Layer) -> bool:
    """May this principal (None: anonymous) read the layer at all?"""
    if layer.access == "public":
        return True
    if principal is None:
        return False
    if layer.id in principal.grants:
        return True
    if layer.access == "restricted":
        return False
    if principal.roles & READS_INTERNAL:
        return True
    return "commune_officer" in principal.roles and row_communes(principal, layer) is not None


def row_communes(principal: Principal | None, layer: Layer) -> frozenset[str] | None:
    """The communes whose rows a commune officer may read in an internal layer (None: no restriction or
    no access). Layers without a commune code are not readable row by row for them."""
    if principal is None or principal.roles & READS_INTERNAL or layer.id in principal.grants:
        return None
    if "commune_officer" in principal.roles and layer.field("commune_code") is not None:
        return principal.communes
    return None


def readable(principal: Principal | None, layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if can_read(principal, layer)]


def may(principal: Principal | None, permission: str) -> bool:
    """May the principal load, approve, export, run scenarios, manage accounts or read the audit?"""
    if principal is None:
        return permission == "scenario"  # public scenarios over public data; personal figures suppressed
    return any(permission in PERMISSIONS.get(role, frozenset()) for role in principal.roles)


def personal_access(principal: Principal | None) -> bool:
    return principal is not None and PERSONAL_DATA in principal.grants


def detail_communes(principal: Principal | None) -> frozenset[str] | None:
    """The communes whose detail a principal sees in aggregates (None: all). Commune officers see their
    own communes in detail and everything else only in total."""
    if principal is None or principal.roles & READS_INTERNAL or "commune_officer" not in principal.roles:
        return None
    return principal.communes


def trim(principal: Principal | None, result: dict[str, Any]) -> dict[str, Any]:
    """A scenario or emergency result as the principal may see it: per-commune detail of other communes
    removed for commune officers (totals stay)."""
    own = detail_communes(principal)
    if own is None:
        return result
    trimmed = dict(result)
    if "indicators" in result:  # a sector scenario
        trimmed["indicators"] = [
            {**ind, "communes": {c: f for c, f in ind["communes"].items() if c in own}} for ind in result["indicators"]
        ]
        trimmed["flags"] = [f for f in result["flags"] if f["where"] == "total" or f["where"] in own]
    trimmed["communes"] = [c for c in result.get("communes", []) if c.get("code") in own]
    trimmed["detail_limited_to"] = sorted(own)
    return trimmed
