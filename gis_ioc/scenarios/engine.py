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
        row = conn.execute(
            "INSERT INTO gis_ioc.scenario_runs (scenario, period, selection, data_version, result, duration_ms) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                scenario.id,
                period,
                json.dumps(run.selection),
                json.dumps(run.data_version),
                json.dumps({k: body[k] for k in ("communes", "indicators", "flags", "suppressed")}),
                run.duration_ms,
            ),
        ).fetchone()
        assert row is not None
        run.id = int(row[0])
    return run


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
