"""The province at a glance (the leaders' first screen): for a period, every sector scenario run over the
whole province, its indicators counted met / not met / stale, the communes most behind, and the same
counts over the last four periods for the indicators reported per period.

Nothing is judged here: each figure is a run of the scenario engine
(:func:`gis_ioc.scenarios.engine.run_scenario`, not stored) for the viewer, each in a transaction bound to
it, with personal indicators suppressed for viewers without personal data, shown through
:func:`gis_ioc.scenarios.view.trim` (per-commune detail only for the communes the viewer may see). This
module only counts what the runs say.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.errors import InvalidInput
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors, view
from gis_ioc.scenarios.aggregate import previous_period
from gis_ioc.scenarios.engine import run_scenario
from gis_ioc.scenarios.models import Scenario

#: Periods in the trend, the chosen one last.
TREND_PERIODS = 4
#: Communes listed as most behind.
MOST_BEHIND = 10
#: Aggregation kinds measured on the layers as they are now, not reported per period: left out of the trend
#: (it would show today's roads and schools as every past quarter's, and they cost the most to measure).
NOW_ONLY = frozenset({"layer", "reach"})
#: Scenario runs made at once (each in its own transaction: the database works on them side by side).
WORKERS = 2

Transaction = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


def bucket(status: str) -> str:
    """The overview's three counts (met, not met, stale) and the rest (no data, no target, suppressed)."""
    return {"met": "met", "not met": "not_met", "stale": "stale"}.get(status, "other")


def trend_periods(period: str) -> list[str]:
    """The chosen period and the ones before it, oldest first: 2026-Q3 → 2025-Q4 … 2026-Q3."""
    out = [period]
    while len(out) < TREND_PERIODS:
        out.append(previous_period(out[-1]))
    return out[::-1]


def _counts(statuses: list[str]) -> dict[str, int]:
    counted = Counter(bucket(s) for s in statuses)
    return {k: counted.get(k, 0) for k in ("met", "not_met", "stale", "other")}


def _run(
    transaction: Transaction,
    catalog: Catalog,
    scenario: Scenario,
    period: str,
    viewer: Viewer,
    privacy_threshold: int,
    now: datetime | None,
) -> dict[str, Any]:
    """One sector scenario over the province for the period, as the viewer may see it."""
    with transaction() as conn:
        run = run_scenario(
            conn,
            catalog,
            scenario,
            selectors.province(conn),
            period,
            viewer=viewer,
            store=False,
            privacy_threshold=privacy_threshold,
            now=now,
        )
    return view.trim(viewer, run.as_dict())


def _sector(scenario: Scenario, run: dict[str, Any]) -> dict[str, Any]:
    names = {c["code"]: c["name"] for c in run["communes"]}
    behind: dict[str, list[str]] = {}
    for flag in run["flags"]:
        if flag["where"] != "total":
            behind.setdefault(flag["indicator"], []).append(flag["where"])
    indicators = [
        {
            "id": ind["id"],
            "name": ind["name"],
            "unit": ind["unit"],
            "direction": ind["direction"],
            "status": ind["total"]["status"],
            "value": ind["total"]["value"],
            "target": ind["total"]["target"],
            "communes_not_met": [
                {"code": code, "name": names.get(code, code)} for code in sorted(behind.get(ind["id"], []))
            ],
        }
        for ind in run["indicators"]
    ]
    return {
        "id": scenario.id,
        "title": scenario.title.model_dump(),
        "counts": _counts([i["status"] for i in indicators]),
        "indicators": indicators,
    }


def _most_behind(runs: list[tuple[Scenario, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Communes by how many indicators they miss (an indicator in two sectors counts once)."""
    missed: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for _scenario, run in runs:
        names.update({c["code"]: c["name"] for c in run["communes"]})
        for flag in run["flags"]:
            if flag["where"] != "total":
                missed.setdefault(flag["where"], set()).add(flag["indicator"])
    ranked = sorted(missed.items(), key=lambda item: (-len(item[1]), names.get(item[0], item[0])))
    return [
        {"code": code, "name": names.get(code, code), "not_met": len(ids), "indicators": sorted(ids)}
        for code, ids in ranked[:MOST_BEHIND]
    ]


def _totals(runs: list[tuple[Scenario, dict[str, Any]]], only: frozenset[str] | None = None) -> dict[str, int]:
    """The province's counts over every sector, each indicator once (``only``: of these indicators)."""
    statuses = {
        ind["id"]: ind["total"]["status"]
        for _s, run in runs
        for ind in run["indicators"]
        if only is None or ind["id"] in only
    }
    return _counts(list(statuses.values()))


def periodic(catalog: Catalog, scenario: Scenario) -> Scenario | None:
    """The scenario with its indicators reported per period only (None: it has none)."""
    ids = tuple(i for i in scenario.indicators if catalog.indicators.get(i).aggregation.kind not in NOW_ONLY)
    if not ids:
        return None
    return scenario if ids == scenario.indicators else scenario.model_copy(update={"indicators": ids})


def _trend_point(period: str, runs: list[tuple[Scenario, dict[str, Any]]], only: frozenset[str]) -> dict[str, Any]:
    sectors = {
        s.id: _counts([i["total"]["status"] for i in run["indicators"] if i["id"] in only])
        for s, run in runs
        if any(i["id"] in only for i in run["indicators"])
    }
    return {"period": period, **_totals(runs, only), "sectors": sectors}


def overview(
    transaction: Transaction,
    catalog: Catalog,
    scenarios: dict[str, Scenario],
    period: str,
    *,
    viewer: Viewer,
    privacy_threshold: int = 5,
    periods: list[str] | None = None,
    now: datetime | None = None,
    workers: int = WORKERS,
) -> dict[str, Any]:
    """The province at a glance for ``period`` as ``viewer`` may see it. ``transaction`` opens a transaction
    bound to the viewer for scenario figures (the ``aggregate`` purpose); the runs go ``workers`` at a time,
    each in its own. ``periods``: those the selector offers (newest first)."""
    if not PERIOD_RE.match(period):
        raise InvalidInput(f"period {period!r} must be YYYY or YYYY-Qn (e.g. 2026-Q3)")
    started = time.perf_counter()
    now = now or datetime.now(UTC)  # one clock for every run: stale means the same in each
    earlier = trend_periods(period)[:-1]
    reported = {s.id: p for s in scenarios.values() if (p := periodic(catalog, s)) is not None}
    wanted = [(period, scenario) for scenario in scenarios.values()]
    wanted += [(each, scenario) for each in earlier for scenario in reported.values()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(
            pool.map(lambda job: _run(transaction, catalog, job[1], job[0], viewer, privacy_threshold, now), wanted)
        )
    by_period: dict[str, list[tuple[Scenario, dict[str, Any]]]] = {each: [] for each in [*earlier, period]}
    for (each, scenario), run in zip(wanted, done, strict=True):
        by_period[each].append((scenario, run))
    only = frozenset(i for s in reported.values() for i in s.indicators)
    trend = [_trend_point(each, runs, only) for each, runs in by_period.items()]
    current = by_period[period]
    answer: dict[str, Any] = {
        "period": period,
        "periods": periods if periods is not None else [],
        "totals": _totals(current),
        "sectors": [_sector(scenario, run) for scenario, run in current],
        "most_behind": _most_behind(current),
        "trend": trend,
        "trend_indicators": sorted(only),
        "suppressed": sum(run["suppressed"] for _s, run in current),
    }
    limited = next((run.get("detail_limited_to") for _s, run in current if "detail_limited_to" in run), None)
    if limited is not None:
        answer["detail_limited_to"] = limited
    answer["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return answer
