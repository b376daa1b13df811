"""Run a scenario over a selection for a period; store the run (it belongs to the viewer who made it);
read runs back as the viewer may see them (:func:`get_run`)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.errors import Forbidden, InvalidInput, NotFound
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors, view
from gis_ioc.scenarios.aggregate import apportion, as_dict, evaluate, flags, suppress
from gis_ioc.scenarios.models import Scenario
from gis_ioc.scenarios.selectors import Selection


@dataclass
class ScenarioRun:
    id: int
    scenario: str
    period: str
    selection: dict[str, Any]
    communes: list[dict[str, Any]]
    indicators: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    suppressed: int
    data_version: dict[str, Any]
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_version(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(
        "SELECT (SELECT max(id) FROM gis_ioc.loads WHERE status = 'done'), "
        "(SELECT max(updated_at) FROM gis_ioc.indicator_values)"
    ).fetchone()
    assert row is not None
    return {"last_load": row[0], "values_updated_at": row[1].isoformat() if row[1] else None}


def run_scenario(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenario: Scenario,
    selection: Selection,
    period: str,
    *,
    viewer: Viewer,
    store: bool = True,
    privacy_threshold: int = 5,
    now: datetime | None = None,
) -> ScenarioRun:
    """Run a scenario for ``viewer`` (its figures cover every row: run it in an ``aggregate`` transaction,
    and show it through :func:`gis_ioc.scenarios.view.trim`). Unless the viewer has access to personal
    data, figures that could single people out are suppressed (see
    :func:`gis_ioc.scenarios.aggregate.suppress`) and the result counts them. The stored run belongs to
    the viewer. ``now`` (default: the clock) decides which figures are stale."""
    if not PERIOD_RE.match(period):
        raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
    started = time.perf_counter()
    shares = apportion(conn, selection)
    indicators = [catalog.indicators.get(i) for i in scenario.indicators]
    results = evaluate(conn, indicators, shares, period, now, selection=selection, catalog=catalog)
    hidden = 0
    if not viewer.personal:
        personal = {i.id for i in catalog.indicators.indicators if i.personal}
        hidden = suppress(results, personal, privacy_threshold)
    run = ScenarioRun(
        id=0,
        scenario=scenario.id,
        period=period,
        selection=selection.describe(),
        communes=[asdict(s) for s in shares],
        indicators=as_dict(results),
        flags=flags(results, shares),
        suppressed=hidden,
        data_version=data_version(conn),
        duration_ms=0.0,
    )
    run.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if store:
        body = run.as_dict()
        run.id = store_run(
            conn,
            viewer,
            scenario.id,
            period,
            run.selection,
            run.data_version,
            {**{k: body[k] for k in ("communes", "indicators", "flags", "suppressed")}, "personal": viewer.personal},
            run.duration_ms,
        )
    return run


def store_run(
    conn: psycopg.Connection[Any],
    viewer: Viewer,
    scenario: str,
    period: str,
    selection: dict[str, Any],
    version: dict[str, Any],
    result: dict[str, Any],
    duration_ms: float,
) -> int:
    """Keep a run with what it was asked, the data version it saw and its owner (the viewer; None
    without an account); returns its id."""
    row = conn.execute(
        "INSERT INTO gis_ioc.scenario_runs "
        "(scenario, period, selection, data_version, result, duration_ms, owner, run_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            scenario,
            period,
            json.dumps(selection),
            json.dumps(version),
            json.dumps(result, default=str),
            duration_ms,
            viewer.username,
            viewer.name,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


class RunHidden(NotFound):
    """A run that exists but is not the viewer's to see: answered exactly as a run that does not exist."""


def _stored(conn: psycopg.Connection[Any], run_id: int, viewer: Viewer) -> tuple[dict[str, Any], str | None]:
    """The stored run, untrimmed, and its owner; 404 unless the viewer may see it."""
    row = conn.execute(
        "SELECT id, scenario, period, selection, data_version, result, run_by, run_at, duration_ms, owner, "
        "shared_with FROM gis_ioc.scenario_runs WHERE id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no scenario run {run_id}")
    if not view.may_see(viewer, row[9], row[10], bool(row[5].get("personal"))):
        raise RunHidden(f"no scenario run {run_id}")
    run = {
        "id": row[0],
        "scenario": row[1],
        "period": row[2],
        "selection": row[3],
        "data_version": row[4],
        **row[5],
        "run_by": row[6],
        "run_at": row[7].isoformat(),
        "duration_ms": row[8],
    }
    return run, row[9]


def get_run(conn: psycopg.Connection[Any], run_id: int, viewer: Viewer) -> dict[str, Any]:
    """A stored run as the viewer may see it (:func:`gis_ioc.scenarios.view.trim`); 404 for a run that
    does not exist and, alike, for one that is not the viewer's, not shared with the viewer, or made
    with personal data the viewer has no access to. Every door that reads a stored run calls this."""
    return view.trim(viewer, _stored(conn, run_id, viewer)[0])


#: Most accounts a run is shared with.
MAX_SHARES = 100


def share_run(conn: psycopg.Connection[Any], run_id: int, viewer: Viewer, accounts: list[str]) -> list[str]:
    """Share a run with these accounts (``*``: every account, ``public``: everyone, also without an
    account), replacing its shares; only its owner (or an administrator) may. Returns the shares."""
    _run, owner = _stored(conn, run_id, viewer)
    if not viewer.owns(owner):
        raise Forbidden(f"only the account that made run {run_id} shares it")
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts) or len(accounts) > MAX_SHARES:
        raise InvalidInput(f"share with a list of at most {MAX_SHARES} account names, '*' or 'public'")
    names = sorted({a.strip() for a in accounts if a.strip()})
    wanted = [n for n in names if n not in ("*", "public")]
    known = {r[0] for r in conn.execute("SELECT username FROM gis_ioc.accounts WHERE username = ANY(%s)", (wanted,))}
    if unknown := [n for n in wanted if n not in known]:
        raise InvalidInput(f"no accounts named {', '.join(n[:64] for n in unknown[:10])}")
    conn.execute("UPDATE gis_ioc.scenario_runs SET shared_with = %s WHERE id = %s", (names, run_id))
    return names


def selection_of(
    conn: psycopg.Connection[Any], described: dict[str, Any], catalog: Catalog, viewer: Viewer
) -> Selection:
    """The selection a stored run was made over, rebuilt from its description (a zone ``layer:fid`` read
    as the viewer may read it)."""
    kind = described.get("kind")
    crs = described.get("crs")
    if kind == "point":
        return selectors.point(conn, described["x"], described["y"], crs)
    if kind == "radius":
        return selectors.radius(conn, described["x"], described["y"], described["radius_m"], crs)
    if kind == "zone":
        if "feature" in described:
            return selectors.zone_feature(conn, described["feature"], catalog, viewer)
        return selectors.zone(conn, described["geometry"], crs)
    if kind == "communes":
        return selectors.communes(conn, list(described["codes"]))
    if kind == "province":
        return selectors.province(conn)
    raise InvalidInput(f"stored selection of kind {kind!r} cannot be rebuilt")


def rerun(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    scenarios: dict[str, Scenario],
    run_id: int,
    period: str | None = None,
    *,
    viewer: Viewer,
    privacy_threshold: int = 5,
) -> dict[str, Any]:
    """Run a stored run (one the viewer may see) again over the same selection: for its own period (to
    reproduce a figure quoted in a meeting) or another one (to compare with the next period). Returns the
    new run (the viewer's, untrimmed: show it through :func:`gis_ioc.scenarios.view.trim`) and, per
    indicator, the stored and the new total side by side."""
    before = get_run(conn, run_id, viewer)
    if before["scenario"] not in scenarios:
        raise InvalidInput(f"run {run_id} is not a sector scenario run ({before['scenario']})")
    selection = selection_of(conn, before["selection"], catalog, viewer)
    after = run_scenario(
        conn,
        catalog,
        scenarios[before["scenario"]],
        selection,
        period or before["period"],
        viewer=viewer,
        privacy_threshold=privacy_threshold,
    )
    old = {i["id"]: i["total"] for i in before["indicators"]}
    rows = []
    for indicator in after.indicators:
        total, previous = indicator["total"], old.get(indicator["id"], {})
        change = None if total["value"] is None or previous.get("value") is None else total["value"] - previous["value"]
        rows.append(
            {
                "indicator": indicator["id"],
                "name": indicator["name"],
                "unit": indicator["unit"],
                "before": {k: previous.get(k) for k in ("value", "target", "status")},
                "after": {k: total[k] for k in ("value", "target", "status")},
                "change": change,
                "same": change is not None and abs(change) < 1e-9 and previous.get("status") == total["status"],
            }
        )
    return {
        "before": {k: before[k] for k in ("id", "period", "run_at", "data_version")},
        "after": after.as_dict(),
        "data_changed": before["data_version"] != after.data_version,
        "indicators": rows,
    }
