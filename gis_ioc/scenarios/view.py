"""What a viewer sees of a scenario or emergency result, and of the runs and jobs that hold one.

Scenario figures are computed over every row (the ``aggregate`` purpose of :mod:`gis_ioc.query.scope`);
before a result leaves the server, every door (the HTTP routes, the OGC API processes and their jobs,
stored runs, reruns, maps, reports, exports) passes it through :func:`trim`, the one function that
applies :class:`~gis_ioc.query.viewer.Viewer`'s rules to results:

- per-commune detail only for the communes ``viewer.detail_communes()`` names (None: all of them; a
  commune officer's own; none for anonymous and external callers), totals always;
- officials' contacts (emergency call lists) only when ``viewer.sees_contacts`` (leaders, administrators).

Figures about a few people are suppressed when the run is made (``viewer.personal``), not here; a run
made with personal data is kept whole from those without that access (:func:`may_see`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gis_ioc.query.viewer import Viewer


def may_see(viewer: Viewer, owner: str | None, shared_with: Iterable[str] | None, personal: bool) -> bool:
    """May the viewer see a stored run or job made by ``owner``, shared with ``shared_with``, made with
    (``personal``) or without access to personal data?"""
    if personal and not viewer.personal:
        return False
    return viewer.may_see_owned(owner, frozenset(shared_with or ()))


def trim(viewer: Viewer, result: dict[str, Any]) -> dict[str, Any]:
    """A sector scenario run, an emergency run or a rerun comparison as the viewer may see it."""
    if isinstance(result.get("after"), dict) and "before" in result:  # a rerun: the new run inside
        return {**result, "after": trim(viewer, result["after"])}
    own = viewer.detail_communes()
    out = dict(result)
    if own is not None:
        if isinstance(result.get("indicators"), list):
            out["indicators"] = [_own_indicator(ind, own) for ind in result["indicators"]]
        if isinstance(result.get("flags"), list):
            out["flags"] = [f for f in result["flags"] if _flag_shown(f, own)]
        if isinstance(result.get("communes"), list):
            out["communes"] = [c for c in result["communes"] if isinstance(c, dict) and c.get("code") in own]
        out["detail_limited_to"] = sorted(own)
    if not viewer.sees_contacts and isinstance(out.get("communes"), list):
        out["communes"] = [_without_contacts(c) for c in out["communes"]]
    return out


def _own_indicator(indicator: Any, own: frozenset[str]) -> Any:
    if not isinstance(indicator, dict) or not isinstance(indicator.get("communes"), dict):
        return indicator
    return {**indicator, "communes": {c: f for c, f in indicator["communes"].items() if c in own}}


def _flag_shown(flag: Any, own: frozenset[str]) -> bool:
    """Sector flags name a commune or the total; emergency flags name the total or a (public) shelter."""
    if not isinstance(flag, dict):
        return False
    return "indicator" not in flag or flag.get("where") == "total" or flag.get("where") in own


def _without_contacts(commune: Any) -> Any:
    if not isinstance(commune, dict) or "contacts" not in commune:
        return commune
    return {k: v for k, v in commune.items() if k != "contacts"}
