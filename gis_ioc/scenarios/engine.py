"""Run a scenario over a selection for a period; store the run; read runs back."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.errors import InvalidInput, NotFound
from gis_ioc.scenarios import selectors
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
    store: bool = True,
    personal_access: bool = False,
    privacy_threshold: int = 5,
    now: datetime | None = None,
) -> ScenarioRun:
    """Run a scenario. Without ``personal_access`` (the default), figures that could single people out
    are suppressed (see :func:`gis_ioc.scenarios.aggregate.suppress`) and the result counts them.
    ``now`` (default: the clock) decides which figures are stale."""
    if not PERIOD_RE.match(period):
        raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
    started = time.perf_counter()
    shares = apportion(conn, selection)
    indicators = [catalog.indicators.get(i) for i in scenario.indicators]
    results = evaluate(conn, indicators, shares, period, now, selection=selection, catalog=catalog)
    hidden = 0
    if not personal_access:
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
            scenario.id,
            period,
            run.selection,
            run.data_version,
            {**{k: body[k] for k in ("communes", "indicators", "flags", "suppressed")}, "personal": personal_access},
            run.duration_ms,
        )
    return run


def store_run(
    conn: psycopg.Connection[Any],
    scenario: str,
    period: str,
    selection: dict[str, Any],
    version: dict[str, Any],
    result: dict[str, Any],
    duration_ms: float,
) -> int:
    """Keep a run with what it was asked and the data version it saw; returns its id."""
    row = conn.execute(
        "INSERT INTO gis_ioc.scenario_runs (scenario, period, selection, data_version, result, duration_ms) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (scenario, period, json.dumps(selection), json.dumps(version), json.dumps(result, default=str), duration_ms),
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_run(conn: psycopg.Connection[Any], run_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, scenario, period, selection, data_version, result, run_by, run_at, duration_ms "
        "FROM gis_ioc.scenario_runs WHERE id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no scenario run {run_id}")
    return {
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


def selection_of(conn: psycopg.Connection[Any], described: dict[str, Any], catalog: Catalog) -> Selection:
    """The selection a stored run was made over, rebuilt from its description."""
    kind = described.get("kind")
    crs = described.get("crs")
    if kind == "point":
        return selectors.point(conn, described["x"], described["y"], crs)
    if kind == "radius":
        return selectors.radius(conn, described["x"], described["y"], described["radius_m"], crs)
    if kind == "zone":
        if "feature" in described:
            return selectors.zone(conn, feature=described["feature"], catalog=catalog)
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
    **options: Any,
) -> dict[str, Any]:
    """Run a stored run again over the same selection: for its own period (to reproduce a figure quoted
    in a meeting) or another one (to compare with the next period). Returns the new run and, per
    indicator, the stored and the new total side by side."""
    before = get_run(conn, run_id)
    if before["scenario"] not in scenarios:
        raise InvalidInput(f"run {run_id} is not a sector scenario run ({before['scenario']})")
    selection = selection_of(conn, before["selection"], catalog)
    after = run_scenario(conn, catalog, scenarios[before["scenario"]], selection, period or before["period"], **options)
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
