"""The province at a glance (GET /api/overview): every sector's figures are the scenario engine's over the
whole province, counted; per-commune detail only for those who may see it; personal figures suppressed
without access to personal data; a bad period named in a 400."""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog
from gis_ioc.database.connection import connect
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios.models import load_scenarios
from gis_ioc.scenarios.overview import bucket, overview, trend_periods
from gis_ioc.settings import Settings
from tests.conftest import key_account


def counts(statuses: list[str]) -> dict[str, int]:
    counted = Counter(bucket(s) for s in statuses)
    return {k: counted.get(k, 0) for k in ("met", "not_met", "stale", "other")}


def kept_value(o: dict[str, Any], indicator: str) -> Any:
    return next(i["value"] for s in o["sectors"] for i in s["indicators"] if i["id"] == indicator)


def test_trend_periods_end_with_the_chosen_one() -> None:
    assert trend_periods("2026-Q3") == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    assert trend_periods("2026-Q1") == ["2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1"]
    assert trend_periods("2026") == ["2023", "2024", "2025", "2026"]


def test_the_overview_counts_what_each_sector_run_over_the_province_says(client: TestClient, catalog: Catalog) -> None:
    answer = client.get("/api/overview", params={"period": "2026-Q3"})
    assert answer.status_code == 200, answer.text
    o = answer.json()
    assert o["period"] == "2026-Q3" and o["periods"][0] == "2026-Q3" and "2026-Q2" in o["periods"]
    sectors = {s["id"]: s for s in o["sectors"]}
    assert set(sectors) == {s["id"] for s in client.get("/api/scenarios").json()}
    missed: dict[str, set[str]] = {}
    statuses: dict[str, str] = {}
    for sector_id, sector in sectors.items():
        run = client.post(f"/api/scenarios/{sector_id}/run", json={"period": "2026-Q3", "province": True}).json()
        assert [i["id"] for i in sector["indicators"]] == [i["id"] for i in run["indicators"]]
        assert sector["counts"] == counts([i["total"]["status"] for i in run["indicators"]]), sector_id
        flagged: dict[str, set[str]] = {}
        for flag in run["flags"]:
            if flag["where"] != "total":
                flagged.setdefault(flag["indicator"], set()).add(flag["where"])
                missed.setdefault(flag["where"], set()).add(flag["indicator"])
        for ind, ran in zip(sector["indicators"], run["indicators"], strict=True):
            assert ind["status"] == ran["total"]["status"] and ind["value"] == ran["total"]["value"], ind["id"]
            assert {c["code"] for c in ind["communes_not_met"]} == flagged.get(ind["id"], set()), ind["id"]
            statuses[ind["id"]] = ran["total"]["status"]
    assert o["totals"] == counts(list(statuses.values()))
    assert o["totals"]["not_met"] > 0 and o["totals"]["met"] > 0
    # the communes most behind: most indicators not met first
    behind = o["most_behind"]
    assert behind and len(behind) <= 10
    assert [c["not_met"] for c in behind] == sorted((c["not_met"] for c in behind), reverse=True)
    assert behind[0]["not_met"] == max(len(ids) for ids in missed.values())
    for c in behind:
        assert set(c["indicators"]) == missed[c["code"]]
    # the trend: the last four quarters, the chosen one last, of the indicators reported per period (those
    # measured on today's layers have no past quarters)
    assert [t["period"] for t in o["trend"]] == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3"]
    only = set(o["trend_indicators"])
    kinds = {i: catalog.indicators.get(i).aggregation.kind for i in statuses}
    assert only == {i for i, kind in kinds.items() if kind not in ("layer", "reach")} and only != set(statuses)
    last = o["trend"][-1]
    assert {k: last[k] for k in ("met", "not_met", "stale", "other")} == counts([statuses[i] for i in only])
    assert last["sectors"] == {
        k: counts([i["status"] for i in s["indicators"] if i["id"] in only])
        for k, s in sectors.items()
        if any(i["id"] in only for i in s["indicators"])
    }
    q2 = client.post("/api/scenarios/health/run", json={"period": "2026-Q2", "province": True}).json()
    assert o["trend"][2]["sectors"]["health"] == counts(
        [i["total"]["status"] for i in q2["indicators"] if i["id"] in only]
    )
    assert "detail_limited_to" not in o and o["duration_ms"] > 0


def test_detail_only_for_those_who_may_see_it_and_nothing_without_an_account(
    anonymous: TestClient, client: TestClient, settings: Settings
) -> None:
    refused = anonymous.get("/api/overview", params={"period": "2026-Q3"})
    assert refused.status_code == 401 and refused.json()["code"] == "auth.login_needed"
    assert refused.json()["detail"] == "Hãy đăng nhập để xem tổng quan toàn tỉnh."
    with connect(settings, autocommit=True) as conn:
        key = key_account(conn, "overview.external", ["external"])
    o = anonymous.get("/api/overview", params={"period": "2026-Q3"}, headers={"X-API-Key": key}).json()
    assert o["detail_limited_to"] == [] and o["most_behind"] == []
    assert all(not i["communes_not_met"] for s in o["sectors"] for i in s["indicators"])
    leader = client.get("/api/overview", params={"period": "2026-Q3"}).json()
    assert [s["counts"] for s in o["sectors"]] == [s["counts"] for s in leader["sectors"]]


def test_the_newest_period_is_the_default_and_bad_periods_are_named(client: TestClient) -> None:
    o = client.get("/api/overview").json()
    assert o["period"] == o["periods"][0] == "2026-Q3"
    bad = client.get("/api/overview", params={"period": "2026-Q5"})
    assert bad.status_code == 400 and "2026-Q5" in bad.json()["detail"] and "YYYY-Qn" in bad.json()["detail"]
    long = client.get("/api/overview", params={"period": "2026-Q3; drop"})
    assert long.status_code == 422 and "period" in long.json()["detail"]


def test_personal_indicators_are_suppressed_without_access_to_personal_data(
    settings: Settings, catalog: Catalog, loaded: Any
) -> None:
    scenarios = load_scenarios(settings.config_dir / "scenarios", catalog)

    def transaction() -> AbstractContextManager[psycopg.Connection[Any]]:
        return connect(settings)

    personal = {i.id for i in catalog.indicators.indicators if i.personal}
    # a threshold above every count: each personal figure rests on too few to show
    kept = overview(
        transaction, catalog, scenarios, "2026-Q3", viewer=Viewer.console(personal=True), privacy_threshold=10**9
    )
    hidden = overview(transaction, catalog, scenarios, "2026-Q3", viewer=Viewer.console(), privacy_threshold=10**9)
    shown = {i["id"]: i["status"] for s in kept["sectors"] for i in s["indicators"]}
    masked = {i["id"]: i["status"] for s in hidden["sectors"] for i in s["indicators"]}
    assert kept["suppressed"] == 0 and hidden["suppressed"] > 0
    suppressed = {k for k, v in masked.items() if v == "suppressed"}
    assert suppressed and suppressed <= personal
    assert suppressed == {k for k in personal & set(shown) if kept_value(kept, k) is not None}
    assert all(shown[k] != "suppressed" for k in shown)
    others = set(shown) - personal
    assert {k: masked[k] for k in others} == {k: shown[k] for k in others}
    assert hidden["totals"]["other"] > kept["totals"]["other"]
