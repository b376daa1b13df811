"""The admin API: the account lifecycle on written request over HTTP, for administrators with a second
factor only; refusals and changes in the audit trail."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pyotp
import pytest
from fastapi.testclient import TestClient

from gis_ioc.auth import audit, sessions
from gis_ioc.settings import Settings
from tests.auth.conftest import create

REQUEST = {"number": "123/VP-TTHN", "date": "2026-11-20", "agency": "Văn phòng UBND tỉnh"}


@pytest.fixture(scope="session", autouse=True)
def _keys(settings: Settings) -> None:
    audit.configure(settings.home)  # as create_app and the console do


def _login(anonymous: TestClient, username: str, password: str, code: str | None = None) -> dict[str, str]:
    body = {"username": username, "password": password} | ({"code": code} if code else {})
    response = anonymous.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    anonymous.cookies.clear()  # the session goes in the header below; the shared client stays anonymous
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture(scope="module")
def admin(conn: psycopg.Connection[Any]) -> tuple[str, str, str]:
    first = create(conn, "root.admin", ["administrator"], full_name="Quản trị", agency="TTGSĐH")
    password = "quản trị hệ thống IOC 2026"
    sessions.change_password(conn, "root.admin", first, password)
    secret, _ = sessions.enrol_totp(conn, "root.admin", password)
    sessions.confirm_totp(conn, "root.admin", pyotp.TOTP(secret).now())
    return "root.admin", password, secret


def test_administrator_creates_an_analyst_on_request(anonymous: TestClient, admin: tuple[str, str, str]) -> None:
    username, password, secret = admin
    headers = _login(anonymous, username, password, pyotp.TOTP(secret).at(time.time() + 30))  # the next code
    missing = anonymous.post(
        "/api/admin/accounts", headers=headers, json={"username": "ng.analyst", "full_name": "N", "unit": "Sở KH"}
    )
    assert missing.status_code == 400 and "request" in missing.json()["detail"]
    created = anonymous.post(
        "/api/admin/accounts",
        headers=headers,
        json={
            "username": "ng.analyst",
            "full_name": "Ngô Văn Phúc",
            "unit": "Sở Tài chính",
            "roles": ["analyst"],
            "request": REQUEST,
        },
    )
    assert created.status_code == 201, created.text
    one_time = created.json()["one_time_password"]
    assert created.json()["account"]["roles"] == ["analyst"]
    analyst = _login(anonymous, "ng.analyst", one_time)
    first = anonymous.get("/api/admin/accounts", headers=analyst)  # nothing before the first password is changed
    assert first.status_code == 403 and "first password" in first.json()["detail"]
    changed = anonymous.post(
        "/api/auth/password", headers=analyst, json={"old_password": one_time, "new_password": "phân tích số liệu 2026"}
    )
    assert changed.status_code == 200
    analyst = _login(anonymous, "ng.analyst", "phân tích số liệu 2026")
    refused = anonymous.get("/api/admin/accounts", headers=analyst)
    assert refused.status_code == 403 and "accounts" in refused.json()["detail"]
    # the analyst cannot see the restricted layer, and exports parcels; the audit shows both steps
    listed = {c["id"] for c in anonymous.get("/ogc/collections?f=json", headers=analyst).json()["collections"]}
    assert "land_parcels" in listed and "police_posts" not in listed
    assert anonymous.get("/api/exports/layers/police_posts?format=csv", headers=analyst).status_code == 404
    parcels = anonymous.get("/api/exports/layers/land_parcels?format=csv&filter=land_use%3D'ODT'", headers=analyst)
    assert parcels.status_code == 200 and int(parcels.headers["x-feature-count"]) > 0
    audit_url = "/api/admin/audit"
    created = anonymous.get(audit_url, headers=headers, params={"action": "account.create", "target": "ng.analyst"})
    exported = anonymous.get(audit_url, headers=headers, params={"action": "export", "actor": "ng.analyst"})
    created, exported = created.json()[0], exported.json()[0]
    assert created["detail"]["request"] == "123/VP-TTHN" and exported["target"] == "layer land_parcels"
    key = anonymous.post("/api/admin/accounts/ng.analyst/key", headers=headers, json={"request": REQUEST, "days": 30})
    assert key.status_code == 200 and key.json()["api_key"].startswith("gis_")
    assert (
        anonymous.get("/api/auth/me", headers={"X-API-Key": key.json()["api_key"]}).json()["username"] == "ng.analyst"
    )
    locked = anonymous.post(
        "/api/admin/accounts/ng.analyst/lock", headers=headers, json={"request": REQUEST, "reason": "nghỉ việc"}
    )
    assert locked.status_code == 200 and locked.json()["account"]["state"] == "locked"
    assert anonymous.get("/api/auth/me", headers={"X-API-Key": key.json()["api_key"]}).status_code == 401
    self_lock = anonymous.post("/api/admin/accounts/root.admin/lock", headers=headers, json={"request": REQUEST})
    assert self_lock.status_code == 400
    trail = anonymous.get("/api/admin/audit", headers=headers, params={"target": "ng.analyst"}).json()
    assert [r["action"] for r in reversed(trail)] == ["account.create", "account.issue_key", "account.lock"]
    assert trail[-1]["detail"]["request"] == "123/VP-TTHN" and trail[-1]["actor"] == "root.admin"
    denied = anonymous.get(
        "/api/admin/audit", headers=headers, params={"action": "denied", "actor": "ng.analyst"}
    ).json()
    assert {r["target"] for r in denied} == {"GET /api/admin/accounts", "layer police_posts"}
    assert anonymous.get("/api/admin/audit/verify", headers=headers).json()["ok"] is True


def test_administrators_need_a_second_factor(anonymous: TestClient, conn: psycopg.Connection[Any]) -> None:
    first = create(conn, "weak.admin", ["administrator"], full_name="Quản trị 2", agency="TTGSĐH")
    sessions.change_password(conn, "weak.admin", first, "một mật khẩu rất dài 2026")
    headers = _login(anonymous, "weak.admin", "một mật khẩu rất dài 2026")
    response = anonymous.get("/api/admin/accounts", headers=headers)
    assert response.status_code == 403 and "second factor" in response.json()["detail"]
    assert anonymous.get("/api/admin/accounts").status_code == 401
