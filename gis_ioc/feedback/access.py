"""Who handles which reports: the feedback doors' access rules, from the :class:`Viewer`.

- leaders and administrators (roles that direct work) oversee every handling unit;
- a commune officer handles the reports of the People's Committees of their communes (``xa:<code>``);
- any other account handles the units it is granted as ``feedback:<unit>`` (a department's staff, e.g.
  ``feedback:so_xay_dung``);
- the reporter's name, phone and e-mail: only for the staff of the report's unit (not those who only
  oversee it) holding the ``personal_data`` grant (the Viewer's personal-data rule); PostgreSQL enforces the
  same through
  row-level security on ``gis_ioc.feedback_reporters`` (setting ``gis_ioc.feedback_reporters``).
"""

from __future__ import annotations

from typing import Any

import psycopg

from gis_ioc.query.viewer import Viewer

GRANT_PREFIX = "feedback:"


def own_units(viewer: Viewer) -> frozenset[str]:
    """The units this viewer belongs to: a commune officer's communes' committees, and granted units."""
    if viewer.anonymous:
        return frozenset()
    units = {f"xa:{c}" for c in viewer.communes} if "commune_officer" in viewer.roles else set()
    units |= {g[len(GRANT_PREFIX) :] for g in viewer.grants if g.startswith(GRANT_PREFIX)}
    return frozenset(units)


def units_of(viewer: Viewer) -> frozenset[str] | None:
    """The units whose reports this viewer handles or oversees (None: every unit; empty: none)."""
    if viewer.anonymous:
        return frozenset()
    if viewer.sees_contacts:
        return None
    return own_units(viewer)


def handles(viewer: Viewer, unit: str) -> bool:
    units = units_of(viewer)
    return units is None or unit in units


def is_staff(viewer: Viewer) -> bool:
    units = units_of(viewer)
    return units is None or bool(units)


def reporter_setting(viewer: Viewer) -> str:
    """The value of ``gis_ioc.feedback_reporters`` for this viewer: the units whose reporters it may read —
    its own units (not those it only oversees), and only with personal data."""
    return ",".join(sorted(own_units(viewer))) if viewer.personal else ""


def bind_reporters(conn: psycopg.Connection[Any], viewer: Viewer) -> None:
    """Tell PostgreSQL which reporters this transaction's viewer may read (``SET LOCAL``)."""
    conn.execute("SELECT set_config('gis_ioc.feedback_reporters', %s, true)", (reporter_setting(viewer),))
