"""The auth API over HTTP: login, who am I, rate limits, credentials only in headers, security headers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.auth.sessions import LOGIN_FAILED
from tests.auth.conftest import create


@pytest.fixture(scope="module")
def analyst(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    return "api.analyst", create(conn, "api.analyst", ["analyst"], full_name="Bùi Thị Lan", agency="Sở Xây dựng")


def test_login_me_password_and_logout(anonymous: TestClient, analyst: tuple[str, str]) -> None:
    username, password = analyst
    response = anonymous.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["must_change_password"] and body["idle_timeout_s"] == 15 * 60 and body["roles"] == ["analyst"]
    assert response.headers["cache-control"] == "no-store"
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert anonymous.get("/api/auth/me", headers=auth).json()["username"] == username
    short = anonymous.post("/api/auth/password", headers=auth, json={"old_password": password, "new_password": "abc"})
    assert short.status_code == 400 and "14" in short.json()["detail"]
    changed = anonymous.post(
        "/api/auth/password", headers=auth, json={"old_password": password, "new_password": "đổi mật khẩu ngay 2026!"}
    )
    assert changed.status_code == 200
    assert anonymous.post("/api/auth/logout", headers=auth).status_code == 200
    after = anonymous.get("/api/auth/me", headers=auth)
    assert after.status_code == 401 and after.headers["www-authenticate"].startswith("Bearer")


def test_failures_are_uniform_and_rate_limited(anonymous: TestClient) -> None:
    answers = [
        anonymous.post("/api/auth/login", json={"username": "who.ever", "password": f"guess {i}"}) for i in range(12)
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert {a.json()["detail"] for a in answers[:10]} == {LOGIN_FAILED}
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 61


def test_credentials_only_in_headers_and_security_headers(anonymous: TestClient) -> None:
    response = anonymous.get("/api/auth/me?api_key=gis_abc_def")
    assert response.status_code == 400 and "header" in response.json()["detail"]
    assert anonymous.get("/api/auth/me", headers={"X-API-Key": "gis_0000_nope"}).status_code == 401
    assert anonymous.get("/api/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert anonymous.get("/api/auth/me").status_code == 401
    for path in ("/healthz", "/ogc/collections?f=json", "/api/scenarios"):
        headers = anonymous.get(path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer", path
    # no CORS unless origins are configured
    preflight = anonymous.options(
        "/api/scenarios", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    bad = anonymous.post("/api/auth/login", json={"username": 5})
    assert bad.status_code == 400 and "username" in bad.json()["detail"]
