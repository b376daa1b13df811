"""Roles and what they may do. A layer's ``access`` in the catalog (public, internal, restricted) decides
who reads it; grants on an account add layers (an external client's contract, a restricted layer)."""

from __future__ import annotations

from typing import Literal

Role = Literal["administrator", "gis_officer", "approver", "leader", "analyst", "commune_officer", "external"]
ROLES: tuple[Role, ...] = (
    "administrator",
    "gis_officer",
    "approver",
    "leader",
    "analyst",
    "commune_officer",
    "external",
)

#: Roles that read every internal layer (commune officers read their own communes' detail only).
READS_INTERNAL: frozenset[str] = frozenset({"administrator", "gis_officer", "approver", "leader", "analyst"})

#: What else a role may do.
PERMISSIONS: dict[str, frozenset[str]] = {
    "administrator": frozenset({"accounts", "audit", "load", "approve", "export", "scenario"}),
    "gis_officer": frozenset({"load", "export", "scenario"}),
    "approver": frozenset({"approve", "scenario"}),
    "leader": frozenset({"scenario", "export"}),
    "analyst": frozenset({"scenario", "export"}),
    "commune_officer": frozenset({"scenario", "export"}),
    "external": frozenset(),
}

#: Administrators work with a shorter idle timeout and always with a second factor.
ADMIN_ROLES: frozenset[str] = frozenset({"administrator"})
