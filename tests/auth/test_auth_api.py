"""The auth API over HTTP: login, who am I, rate limits, credentials only in headers, security headers."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pyotp
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import audit, sessions
from gis_ioc.auth.sessions import LOGIN_FAILED
from gis_ioc.settings import Settings
from tests.auth.conftest import create


@pytest.fixture(scope="session", autouse=True)
def _keys(settings: Settings) -> None:
    audit.configure(settings.home)  # as create_app and the console do


@pytest.fixture(scope="module")
def analyst(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    return "api.analyst", create(conn, "api.analyst", ["analyst"], full_name="Bùi Thị Lan", agency="Sở Xây dựng")


def test_login_me_password_and_logout(anonymous: TestClient, analyst: tuple[str, str]) -> None:
    username, password = analyst
    response = anonymous.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    assert "gis_ioc_session" in response.cookies and "httponly" in response.headers["set-cookie"].lower()
    anonymous.cookies.clear()
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
    # a sliding-window estimate (gis_ioc.auth.ratelimit): at most the window and the fading of its hits
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 66


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


def test_outside_the_government_network_a_second_factor_is_needed(settings: Any, conn: Any) -> None:
    password = create(conn, "far.away", ["leader"])
    with TestClient(create_app(settings), client=("203.0.113.7", 40000)) as outside:
        refused = outside.post("/api/auth/login", json={"username": "far.away", "password": password})
        assert refused.status_code == 401
        secret, _ = sessions.enrol_totp(conn, "far.away", password)
        sessions.confirm_totp(conn, "far.away", pyotp.TOTP(secret).now())
        body = {"username": "far.away", "password": password, "code": pyotp.TOTP(secret).at(time.time() + 30)}
        assert outside.post("/api/auth/login", json=body).status_code == 200
    reason = conn.execute(
        "SELECT detail->>'reason' FROM gis_ioc.audit WHERE actor = 'far.away' AND result = 'failed'"
    ).fetchone()[0]
    assert reason == "second factor required outside the government network"


def test_first_password_must_be_changed_before_anything_else(anonymous: TestClient, conn: Any) -> None:
    password = create(conn, "new.leader", ["leader"])
    token = anonymous.post("/api/auth/login", json={"username": "new.leader", "password": password}).json()["token"]
    anonymous.cookies.clear()
    auth = {"Authorization": f"Bearer {token}"}
    blocked = anonymous.post("/api/scenarios/health/run", headers=auth, json={"period": "2026-Q3", "province": True})
    assert blocked.status_code == 403 and "first password" in blocked.json()["detail"]
    assert anonymous.get("/api/auth/me", headers=auth).status_code == 200


def test_request_bodies_are_bounded(anonymous: TestClient) -> None:
    huge = anonymous.post(
        "/api/scenarios/health/run",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(10**9)},
    )
    assert huge.status_code == 413 and "MB" in huge.json()["detail"]


def test_messages_carry_codes_the_page_translates(anonymous: TestClient, conn: Any) -> None:
    refused = anonymous.post("/api/auth/login", json={"username": "nobody.at.all", "password": "x" * 16})
    assert refused.status_code == 401 and refused.json()["code"] == "auth.login_failed"
    password = create(conn, "coded.leader", ["leader"])
    login = anonymous.post("/api/auth/login", json={"username": "coded.leader", "password": password})
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    anonymous.cookies.clear()
    weak = anonymous.post("/api/auth/password", headers=auth, json={"old_password": password, "new_password": "ngắn"})
    assert weak.status_code == 400 and weak.json()["code"] == "auth.password_min_14"
    blocked = anonymous.post("/api/scenarios/health/run", headers=auth, json={"period": "2026-Q3", "province": True})
    assert blocked.status_code == 403 and blocked.json()["code"] == "auth.first_password"


def test_the_first_password_page_reads_as_anonymous_and_writes_nothing(anonymous: TestClient, conn: Any) -> None:
    """The web map's cookie alone, before the first password is changed: the public map, nothing more."""
    password = create(conn, "cookie.leader", ["leader"])
    login = anonymous.post("/api/auth/login", json={"username": "cookie.leader", "password": password})
    assert login.status_code == 200
    try:
        config = anonymous.get("/api/map/config")
        assert config.status_code == 200
        layers = {layer["id"] for layer in config.json()["layers"]}
        assert "schools" in layers and "land_parcels" not in layers  # a leader's internal layers wait
        assert anonymous.get("/ogc/collections/land_parcels/items").status_code == 404
        run = anonymous.post("/api/scenarios/health/run", json={"period": "2026-Q3", "province": True})
        assert run.status_code == 403 and run.json()["code"] == "auth.first_password"
        assert anonymous.get("/api/auth/session").json()["must_change_password"] is True
    finally:
        anonymous.cookies.clear()


def test_second_factor_enrolment_answers_a_qr_code(anonymous: TestClient, conn: Any) -> None:
    password = create(conn, "qr.leader", ["leader"])
    strong = "đồng lúa Khoái Châu mùa gặt 2026"
    login = anonymous.post("/api/auth/login", json={"username": "qr.leader", "password": password}).json()
    anonymous.cookies.clear()
    auth = {"Authorization": f"Bearer {login['token']}"}
    assert (
        anonymous.post(
            "/api/auth/password", headers=auth, json={"old_password": password, "new_password": strong}
        ).status_code
        == 200
    )
    enrol = anonymous.post("/api/auth/totp", headers=auth, json={"password": strong})
    assert enrol.status_code == 200, enrol.text
    body = enrol.json()
    assert body["qr_svg"].startswith("<svg") and "<path" in body["qr_svg"]
    assert body["otpauth_uri"].startswith("otpauth://totp/") and body["secret"] in body["otpauth_uri"]
    wrong = anonymous.post("/api/auth/totp/confirm", headers=auth, json={"code": "12345"})
    assert wrong.status_code == 400
