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

# What each role may do, and which roles read internal layers: gis_ioc.query.viewer, with the rest of
# the policy.

#: Administrators work with a shorter idle timeout and always with a second factor.
ADMIN_ROLES: frozenset[str] = frozenset({"administrator"})
