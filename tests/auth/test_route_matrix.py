"""The authorization matrix, generated from the application's own route table: every route must have an
access rule (gis_ioc/api/rules.py), and every route is asked by every kind of caller, the answer checked
against its rule. A route added without a rule fails :func:`test_every_route_has_an_access_rule`."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.routing import BaseRoute, Mount

from gis_ioc.api.rules import RULES, Rule, rule_for
from gis_ioc.auth import accounts, sessions
from gis_ioc.iot import judge as iot_judge
from gis_ioc.query.viewer import Viewer
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import scalar

PRINCIPALS: dict[str, dict[str, Any]] = {
    "anonymous": {},
    "leader": {"roles": ["leader"]},
    "analyst": {"roles": ["analyst"]},
    "gis_officer": {"roles": ["gis_officer"]},
    "approver": {"roles": ["approver"]},
    "administrator": {"roles": ["administrator"]},  # by API key: no second factor
    "commune_officer": {"roles": ["commune_officer"], "communes": ["11953"]},
    "external": {"roles": ["external"]},
    "external_granted": {"roles": ["external"], "grants": ["buildings", "police_posts"]},
}
LAYERS = ("schools", "buildings", "police_posts")  # public, internal, restricted
TILE = (12, 1807, 3254)  # covers Phố Hiến


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through mounted applications and included routers."""
    for route in routes:
        if isinstance(route, Mount):
            if not route.routes:  # a mounted application without routes (static files)
                yield "GET", prefix + route.path
            yield from walk(list(route.routes or []), prefix + route.path)
        elif (context := getattr(route, "include_context", None)) is not None:
            yield from walk(list(context.included_router.routes), prefix + context.prefix)
        else:
            for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
                yield method, prefix + getattr(route, "path", "")


def test_every_route_has_an_access_rule(anonymous: TestClient, settings: Settings) -> None:
    routes = list(walk(list(anonymous.app.routes)))  # type: ignore[attr-defined]
    assert len(routes) > 60
    missing = [f"{m} {p}" for m, p in routes if rule_for(m, p, settings.ogc_path) is None]
    assert not missing, f"routes without an access rule in gis_ioc/api/rules.py: {missing}"
    stale = set(RULES) - {(m, p.replace(settings.ogc_path, "{ogc}", 1)) for m, p in routes}
    assert not stale, f"rules for routes that no longer exist: {stale}"


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    viewer: Viewer


@pytest.fixture(scope="module")
def callers(conn: psycopg.Connection[Any]) -> dict[str, Caller]:
    found = {"anonymous": Caller("anonymous", {}, Viewer.ANONYMOUS)}
    for name, spec in PRINCIPALS.items():
        if name == "anonymous":
            continue
        username = f"routes.{name.replace('_', '-')}"
        first = create(conn, username, spec["roles"], communes=spec.get("communes"), grants=spec.get("grants"))
        sessions.change_password(conn, username, first, f"Rất-khó-đoán {name} 2026!")
        key = accounts.issue_key(conn, username, REF, "cli:test")
        viewer = Viewer(
            username,
            frozenset(spec["roles"]),
            frozenset(spec.get("communes") or ()),
            frozenset(spec.get("grants") or ()),
            via="api_key",
        )
        found[name] = Caller(name, {"X-API-Key": key}, viewer)
    return found


@pytest.fixture(scope="module")
def samples(
    anonymous: TestClient, callers: dict[str, Caller], conn: psycopg.Connection[Any], settings: Settings
) -> dict[str, Any]:
    """Things to ask for: features of each layer, and a run and jobs made by the leader."""
    leader = callers["leader"].headers
    run = anonymous.post("/api/scenarios/health/run", headers=leader, json={"period": "2026-Q3", "communes": ["11953"]})
    assert run.status_code == 200, run.text
    export = anonymous.post("/api/exports", headers=leader, json={"layer": "schools", "format": "csv"})
    assert export.status_code in (200, 201, 202), export.text
    job = anonymous.post(
        "/ogc/processes/scenario-health/execution",
        headers={**leader, "Prefer": "respond-async"},
        json={"inputs": {"period": "2026-Q3", "communes": ["11953"]}},
    )
    assert job.status_code == 201, job.text
    ogc_job = job.headers["location"].rsplit("/", 1)[-1]
    for _ in range(100):
        if anonymous.get(f"/ogc/jobs/{ogc_job}?f=json", headers=leader).json().get("status") != "running":
            break
        time.sleep(0.1)
    fids = {layer: scalar(conn, f"SELECT min(fid) FROM layers.{layer} WHERE approval = 'approved'") for layer in LAYERS}
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    feedback = anonymous.post(  # a citizen's report in Xã Tân Hưng (11977: not the commune officer's)
        "/open311/v2/requests.json",
        data={"service_code": "khac", "lat": "20.6430605", "long": "106.0944800", "description": "Mẫu kiểm thử"},
        files=[("media", ("a.png", png.getvalue(), "image/png"))],
    )
    assert feedback.status_code == 201, feedback.text
    report = int(feedback.json()[0]["service_request_id"])
    iot_judge.judge_all(conn, settings.config_dir)  # stale alerts on the demo datastreams
    return {
        "alert": scalar(conn, "SELECT min(id) FROM gis_ioc.iot_alerts WHERE state = 'open'"),
        "datastream": scalar(conn, "SELECT min(id) FROM gis_ioc.iot_datastreams"),
        "report": report,
        "photo": scalar(conn, "SELECT min(id) FROM gis_ioc.feedback_photos WHERE report_id = %s", (report,)),
        "fid": fids,
        "run": run.json()["id"],
        "export_job": export.json().get("id") or export.json().get("job"),
        "ogc_job": ogc_job,
        "load": scalar(conn, "SELECT max(id) FROM gis_ioc.loads"),
        "indicator": "poor_household_rate",
    }


def path_for(path: str, s: dict[str, Any], layer: str = "schools") -> str:
    z, row, col = TILE
    values = {
        "collection_id": layer,
        "item_id": s["fid"][layer],
        "tms": "WebMercatorQuad",
        "z": z,
        "row": row,
        "col": col,
        "x": col,
        "y": row,
        "run_id": s["run"],
        "job_id": s["ogc_job"] if path.startswith("/ogc/jobs") else s["export_job"],
        "load_id": s["load"],
        "plan_id": 1,
        "doc_id": 1,
        "indicator": s["indicator"],
        "scenario_id": "health",
        "process_id": "scenario-health",
        "username": "routes.leader",
        "action": "lock",
        "code": "11953",
        "layer_id": "schools",
        "style_id": "default",
        "report_id": s["report"],
        "service_request_id": s["report"],
        "photo_id": s["photo"],
        "alert_id": s["alert"],
        "device_code": "HY-AQ-0001",
        "datastream_id": s["datastream"],
        "location_id": "11953-AIR01",  # EDR: a station's device code
    }
    return path.format(**values)


#: Bodies and query strings that make each request valid (so a refusal can only be the access rule's).
QUERY: dict[str, str] = {
    "/api/identify": "lon=106.05&lat=20.65",
    "/api/overview": "period=2026-Q3",
    "/api/communes": "q=pho",
    "/api/iot/stream": "seconds=0",
    "/api/exports/layers/{layer_id}": "format=csv&bbox=106.05,20.65,106.06,20.66",
    "/api/exports/runs/{run_id}": "format=csv",
    "/api/maps/{indicator}": "period=2026-Q3&format=json",
    "/api/reports": "period=2026-Q3&sector=health&commune=11953&format=json&maps=false",
    "/ogc/collections/{collection_id}/items": "limit=2",
}
BODY: dict[str, Any] = {
    "/api/scenarios/{scenario_id}/run": {"period": "2026-Q3", "communes": ["11953"]},
    "/api/emergency/run": {"incident": "flood", "at": [106.05, 20.65], "rings": [500]},
    "/api/exports": {"layer": "schools", "format": "csv"},
    "/ogc/processes/{process_id}/execution": {"inputs": {"period": "2026-Q3", "communes": ["11953"]}},
    "/ogc/collections/{collection_id}/items": {"op": "=", "args": [{"property": "commune_code"}, "11953"]},
    "/api/auth/login": {"username": "nobody", "password": "wrong password 123"},
    "/api/scenarios/runs/{run_id}/rerun": {},
    "/api/scenarios/runs/{run_id}/shared_with": {"accounts": []},
    "/open311/v2/requests.json": {"service_code": "khac", "lat": 20.64306, "long": 106.09448, "description": "Mẫu"},
    "/api/feedback/reports/{report_id}/rating": {"token": "not-the-reporters-token", "score": 5},
    "/api/feedback/reports/{report_id}/transition": {"to": "assigned"},
    "/api/feedback/reports/{report_id}/answers": {"body": "Đã tiếp nhận, đang kiểm tra."},
    "/api/feedback/reports/{report_id}/merge": {"into": 0},  # the report's handlers: 400; everyone else: 404
}


def ask(client: TestClient, method: str, path: str, caller: Caller, s: dict[str, Any], layer: str) -> httpx.Response:
    url = path_for(path, s, layer)
    if path in QUERY:
        url += "?" + QUERY[path]
    headers = dict(caller.headers)
    if method == "POST" and path == "/api/loads":
        files = {"file": ("x.geojson", json.dumps({"type": "FeatureCollection", "features": []}), "application/json")}
        return client.post(url, headers=headers, files=files, data={"layer": "schools", "dry_run": "true"})
    if path.endswith("/items") and method == "POST":
        headers["Content-Type"] = "application/query-cql-json"
        return client.post(url, headers=headers, content=json.dumps(BODY[path]))
    if method in ("POST", "PUT"):
        return client.request(method, url, headers=headers, json=BODY.get(path, {}))
    return client.request(method, url, headers=headers)


Check = Callable[[httpx.Response], bool]


def expected(rule: Rule, caller: Caller, layer: str, catalog: Any) -> tuple[str, Check]:
    v = caller.viewer
    ok: Check = lambda r: r.status_code not in (401, 403, 404) and r.status_code < 500  # noqa: E731
    if rule.kind == "public":
        return "answered", lambda r: (r.status_code not in (401, 403) or _login_refused(r)) and r.status_code < 500
    if rule.kind == "session":
        if v.anonymous or v.via != "session":
            return "401", lambda r: r.status_code == 401
        return "answered", ok
    if rule.kind == "login":
        return ("401", lambda r: r.status_code == 401) if v.anonymous else ("answered", ok)
    if rule.kind in ("permission", "admin"):
        names = (rule.permission or "").split("|")
        allowed = any(v.may(n) for n in names) and (rule.kind != "admin" or v.second_factor)
        if allowed:
            return "answered", ok
        return ("401", lambda r: r.status_code == 401) if v.anonymous else ("403", lambda r: r.status_code == 403)
    if rule.kind == "layer":
        if v.can_read(catalog.layers[layer]):
            return "answered", lambda r: r.status_code not in (401, 403, 404) and r.status_code < 500
        return "404", lambda r: r.status_code == 404
    assert rule.kind == "owned"
    if rule.permission is not None and not v.may(rule.permission):
        return ("401", lambda r: r.status_code == 401) if v.anonymous else ("403", lambda r: r.status_code == 403)
    if v.username == "routes.leader" or v.is_admin:
        return "answered", ok
    return "refused", lambda r: r.status_code in (401, 403, 404) or (r.status_code == 200 and _not_listed(r))


def _login_refused(response: httpx.Response) -> bool:
    """The login door's one answer to wrong credentials (its sample body has no real account), and the
    device door's (no device credential: accounts are not devices)."""
    return response.status_code == 401 and (
        "user name, password or code is wrong" in response.text or '"code":"iot.device_key"' in response.text
    )


def _not_listed(response: httpx.Response) -> bool:
    """A list answered to someone else must not name the leader's things."""
    return "routes.leader" not in response.text


def cases() -> list[tuple[str, str, str]]:
    out = []
    for (method, path), rule in RULES.items():
        if path.startswith("{ogc}"):
            path = "/ogc" + path[5:]
        if path.endswith("/static"):
            continue  # files; their mount has no rule of its own to ask
        if rule.kind == "layer":
            out.extend((method, path, layer) for layer in LAYERS)
        elif not (method == "DELETE" or path.endswith("/{action}")):
            out.append((method, path, "schools"))
    return out


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_every_route_answers_each_caller_by_its_rule(
    anonymous: TestClient, callers: dict[str, Caller], samples: dict[str, Any], catalog: Any, who: str
) -> None:
    caller = callers[who]
    wrong = []
    for method, path, layer in cases():
        rule = rule_for(method, path.replace("/ogc", "{ogc}", 1) if path.startswith("/ogc") else path, "\0")
        assert rule is not None, path
        what, check = expected(rule, caller, layer, catalog)
        response = ask(anonymous, method, path, caller, samples, layer)
        if not check(response):
            wrong.append(
                f"{method} {path_for(path, samples, layer)} [{rule}] wanted {what}, "
                f"got {response.status_code}: {response.text[:160]}"
            )
    assert not wrong, f"{who}:\n" + "\n".join(wrong)


def test_others_cannot_dismiss_a_job(
    anonymous: TestClient, callers: dict[str, Caller], samples: dict[str, Any]
) -> None:
    job = samples["ogc_job"]
    for who in ("anonymous", "analyst", "commune_officer", "external"):
        assert anonymous.delete(f"/ogc/jobs/{job}", headers=callers[who].headers).status_code in (401, 403, 404), who
    assert anonymous.get(f"/ogc/jobs/{job}?f=json", headers=callers["leader"].headers).status_code == 200


def test_others_cannot_dismiss_an_export_job(
    anonymous: TestClient, callers: dict[str, Caller], samples: dict[str, Any]
) -> None:
    """DELETE routes are not in the matrix (a first answer would change what the others are asked)."""
    job = samples["export_job"]
    for who in ("anonymous", "analyst", "gis_officer", "commune_officer", "external", "external_granted"):
        answer = anonymous.delete(f"/api/exports/jobs/{job}", headers=callers[who].headers)
        assert answer.status_code == 404, (who, answer.status_code, answer.text)
    assert anonymous.get(f"/api/exports/jobs/{job}", headers=callers["leader"].headers).status_code == 200
    # pygeoapi's job routes answer only process jobs: an export job is not one of them, even to its owner
    assert anonymous.get(f"/ogc/jobs/{job}?f=json", headers=callers["leader"].headers).status_code == 404
    listed = anonymous.get("/ogc/jobs?f=json", headers=callers["administrator"].headers)
    assert listed.status_code == 200 and job not in listed.text
    assert {j.get("type") for j in listed.json()["jobs"]} <= {"process"}
