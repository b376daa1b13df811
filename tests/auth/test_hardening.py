"""Regression tests for the account findings of issue 11, through HTTP: the second factor's secret
encrypted at rest, codes used once, re-authentication to enrol, a password change ending the other
sessions, API keys refused until the first password is changed, common passwords refused, bounded
input and rate-limiter memory, and bounded refusal records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pyotp
import pytest
from fastapi.testclient import TestClient

from gis_ioc.api.auth import RateLimiter
from gis_ioc.app import create_app
from gis_ioc.auth import accounts, audit, sessions
from gis_ioc.auth.passwords import check_policy, user_inputs
from gis_ioc.auth.sessions import CODE_USED
from gis_ioc.demo import DemoResult
from gis_ioc.errors import InvalidInput
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import scalar

STRONG = "bảo mật hai lớp cho IOC 2026"


@pytest.fixture(scope="session", autouse=True)
def _keys(settings: Settings) -> None:
    audit.configure(settings.home)  # as create_app and the console do


@pytest.fixture(scope="module")
def web(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=("127.0.0.1", 50100)) as c:
        yield c


def _login(web: TestClient, username: str, password: str, code: str | None = None) -> dict[str, str]:
    body = {"username": username, "password": password} | ({"code": code} if code else {})
    response = web.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    web.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _ready(conn: psycopg.Connection[Any], web: TestClient, username: str, roles: list[str]) -> dict[str, str]:
    """A new account whose first password was changed (to STRONG), logged in."""
    first = create(conn, username, roles)
    headers = _login(web, username, first)
    changed = web.post("/api/auth/password", headers=headers, json={"old_password": first, "new_password": STRONG})
    assert changed.status_code == 200, changed.text
    return headers


def _reasons(conn: psycopg.Connection[Any], actor: str, action: str) -> list[str]:
    rows = conn.execute(
        "SELECT detail->>'reason' FROM gis_ioc.audit WHERE actor = %s AND action = %s ORDER BY id", (actor, action)
    ).fetchall()
    return [r[0] for r in rows]


def test_enrolment_needs_reauthentication_and_the_secret_is_sealed(
    web: TestClient, conn: psycopg.Connection[Any], settings: Settings
) -> None:
    headers = _ready(conn, web, "sec.officer", ["gis_officer"])
    bare = web.post("/api/auth/totp", headers=headers)
    assert bare.status_code == 403 and "re-authentication" in bare.json()["detail"]
    wrong = web.post("/api/auth/totp", headers=headers, json={"password": "not the password at all"})
    assert wrong.status_code == 401
    assert _reasons(conn, "sec.officer", "auth.totp_enrol") == ["password missing", "wrong password"]
    started = web.post("/api/auth/totp", headers=headers, json={"password": STRONG})
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    # the client cannot substitute a secret of its own, and the secret waits sealed in the database
    other = web.post("/api/auth/totp/confirm", headers=headers, json={"secret": pyotp.random_base32(), "code": "1"})
    assert other.status_code == 400
    now = pyotp.TOTP(secret).now()
    assert web.post("/api/auth/totp/confirm", headers=headers, json={"code": now}).status_code == 200
    stored = conn.execute(
        "SELECT totp_secret, totp_pending FROM gis_ioc.accounts WHERE username = 'sec.officer'"
    ).fetchone()
    assert stored[0].startswith("v1:") and secret not in stored[0] and stored[1] is None
    key_file = settings.home / "secrets" / "totp_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # sealed for this account only: moved to another account's row it does not open
    own_id = scalar(conn, "SELECT id FROM gis_ioc.accounts WHERE username = 'sec.officer'")
    assert sessions.open_totp(stored[0], own_id) == secret
    with pytest.raises(sessions.SecretUnreadable):
        sessions.open_totp(stored[0], own_id + 1)
    # re-enrolment needs the current code as well
    again = web.post("/api/auth/totp", headers=headers, json={"password": STRONG})
    assert again.status_code == 403 and '"code"' in again.json()["detail"]


def test_a_code_is_used_once(web: TestClient, conn: psycopg.Connection[Any]) -> None:
    headers = _ready(conn, web, "once.leader", ["leader"])
    secret = web.post("/api/auth/totp", headers=headers, json={"password": STRONG}).json()["secret"]
    totp = pyotp.TOTP(secret)
    confirmed_with = totp.now()
    assert web.post("/api/auth/totp/confirm", headers=headers, json={"code": confirmed_with}).status_code == 200
    body = {"username": "once.leader", "password": STRONG}
    assert web.post("/api/auth/login", json=body | {"code": confirmed_with}).status_code == 401
    later = totp.at(time.time() + 30)  # the next step's code: accepted once
    assert web.post("/api/auth/login", json=body | {"code": later}).status_code == 200
    assert web.post("/api/auth/login", json=body | {"code": later}).status_code == 401
    web.cookies.clear()
    assert _reasons(conn, "once.leader", "auth.login")[-3:] == [CODE_USED, None, CODE_USED]
    # nor can a used code re-authenticate an enrolment
    reused = web.post("/api/auth/totp", headers=headers, json={"password": STRONG, "code": later})
    assert reused.status_code == 401
    conn.execute("UPDATE gis_ioc.accounts SET totp_last_step = totp_last_step - 3 WHERE username = 'once.leader'")
    fresh = web.post("/api/auth/totp", headers=headers, json={"password": STRONG, "code": totp.now()})
    assert fresh.status_code == 200 and fresh.json()["secret"] != secret


def test_a_password_change_ends_the_other_sessions(web: TestClient, conn: psycopg.Connection[Any]) -> None:
    first = create(conn, "two.desks", ["analyst"])
    office, laptop = _login(web, "two.desks", first), _login(web, "two.desks", first)
    changed = web.post("/api/auth/password", headers=office, json={"old_password": first, "new_password": STRONG})
    assert changed.status_code == 200 and changed.json()["other_sessions_ended"] == 1
    assert web.get("/api/auth/me", headers=laptop).status_code == 401
    assert web.get("/api/auth/me", headers=office).json()["must_change_password"] is False
    record = audit.query(conn, actor="two.desks", action="auth.password_change", limit=1)[0]
    assert record["detail"] == {"sessions_ended": 1}


def test_api_keys_wait_for_the_first_password_change(web: TestClient, conn: psycopg.Connection[Any]) -> None:
    first = create(conn, "key.holder", ["analyst"])
    key = {"X-API-Key": accounts.issue_key(conn, "key.holder", REF, "cli:test", label="QGIS")}
    refused = web.get("/api/auth/me", headers=key)
    assert refused.status_code == 403 and "first password" in refused.json()["detail"]
    assert web.get("/ogc/collections?f=json", headers=key).status_code == 403
    assert _reasons(conn, "key.holder", "auth.api_key")[-1] == "first password not changed"
    headers = _login(web, "key.holder", first)
    web.post("/api/auth/password", headers=headers, json={"old_password": first, "new_password": STRONG})
    assert web.get("/api/auth/me", headers=key).json()["username"] == "key.holder"
    # a client system's account has no password to change: its keys work at once
    assert create(conn, "feed.system", ["external"], with_password=False) == ""
    feed = {"X-API-Key": accounts.issue_key(conn, "feed.system", REF, "cli:test")}
    assert web.get("/api/auth/me", headers=feed).json()["username"] == "feed.system"
    assert web.post("/api/auth/login", json={"username": "feed.system", "password": "x" * 20}).status_code == 401


#: Accepted by the previous policy (zxcvbn's score 3) in the external security test, and refused since.
WEAK = ("Password123456!!", "Admin@123456789", "Welcome@123456", "Matkhau@123456", "password12345678")


def test_common_passwords_are_refused(web: TestClient, conn: psycopg.Connection[Any]) -> None:
    first = create(conn, "weak.choice", ["analyst"])
    headers = _login(web, "weak.choice", first)
    others = ("qwertyuiop123456", "hungyen123456789", "Mật khẩu 123456!", "Hưng Yên 2026!!!!", "quantri@hungyen")
    for weak in (*WEAK, *others):
        refused = web.post("/api/auth/password", headers=headers, json={"old_password": first, "new_password": weak})
        assert refused.status_code == 400, weak
        assert "too common or too easy to guess" in refused.json()["detail"], weak
    assert (
        web.post(
            "/api/auth/password", headers=headers, json={"old_password": first, "new_password": "x" * 1025}
        ).json()["detail"]
        == "new_password has at most 1,024 characters"
    )
    # nothing changed, and a phrase of unrelated words still is accepted
    assert web.get("/api/auth/me", headers=headers).json()["must_change_password"] is True
    assert not audit.query(conn, actor="weak.choice", action="auth.password_change")
    changed = web.post("/api/auth/password", headers=headers, json={"old_password": first, "new_password": STRONG})
    assert changed.status_code == 200, changed.text
    assert web.post("/api/auth/login", json={"username": "weak.choice", "password": STRONG}).status_code == 200
    web.cookies.clear()


def test_the_policy_weighs_the_words_tried_first_here() -> None:
    """The person's name and local words count as guessable; long phrases pass; a second factor lowers the
    bar to zxcvbn's top score (10^10 guesses), not to the weak passwords above."""
    for weak in WEAK:
        with pytest.raises(InvalidInput, match="too common"):
            check_policy(weak, second_factor=True, username="weak.choice")
    with pytest.raises(InvalidInput, match="too common"):
        check_policy("Nguyen Van Binh 2026!", second_factor=False, username="binh.nv", full_name="Nguyễn Văn Bình")
    check_policy("Nguyen Van Binh 2026!", second_factor=False, username="binh.nv")
    for good in (STRONG, "bản đồ điều hành 2026!", "correct horse battery staple", "x7#Kq9!mZ2vL4p"):
        check_policy(good, second_factor=False, username="some.one", full_name="Nguyễn Văn Bình")
    check_policy("x7#Kq9!mZ2", second_factor=True)  # ten random characters: enough with a second factor
    with pytest.raises(InvalidInput, match="too common"):
        check_policy("x7#Kq9!mZ", second_factor=True)  # nine are not (zxcvbn: 10 guesses a character)
    assert "matkhau" in user_inputs() and {"nguyen", "nguyễn văn bình", "nguyenvanbinh"} <= set(
        user_inputs("", "Nguyễn Văn Bình")
    )


def test_huge_inputs_are_refused_before_use_and_the_limiter_stays_bounded(
    web: TestClient, conn: psycopg.Connection[Any]
) -> None:
    limiter: RateLimiter = web.app.state.login_limiter
    before = scalar(conn, "SELECT coalesce(sum(hits), 0) FROM gis_ioc.rate_hits")
    huge = "a" * (8 * 1024 * 1024)
    for _ in range(3):
        started = time.monotonic()
        answer = web.post("/api/auth/login", json={"username": huge, "password": "whatever"})
        assert answer.status_code == 400 and "at most 64 characters" in answer.json()["detail"]
        assert time.monotonic() - started < 5
    assert scalar(conn, "SELECT coalesce(sum(hits), 0) FROM gis_ioc.rate_hits") == before  # refused before counted
    for field, value in (("password", "p" * 1025), ("code", "1" * 11)):
        body = {"username": "some.one", "password": "whatever"} | {field: value}
        assert web.post("/api/auth/login", json=body).status_code == 400
    # keys are stored as fixed-size digests (expired rows pruned: tests/auth/test_rate_limits.py)
    small = RateLimiter(limiter.pool, "test-hardening", limit=3)
    keys = [f"10.0.0.{i % 250}|{i}-{'x' * 1000}" for i in range(50)]
    digests = [small.digest(k) for k in keys]
    try:
        for key in keys:
            small.check(key)
        sizes = conn.execute(
            "SELECT DISTINCT octet_length(key) FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (digests,)
        ).fetchall()
        assert sizes == [(16,)]
        for _ in range(2):
            small.check(keys[0])
        with pytest.raises(Exception, match="too many login attempts"):
            small.check(keys[0])
    finally:
        conn.execute("DELETE FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (digests,))


def test_refusals_are_recorded_but_bounded(settings: Settings, conn: psycopg.Connection[Any]) -> None:
    create(conn, "flood.key", ["analyst"])
    key = {"X-API-Key": accounts.issue_key(conn, "flood.key", REF, "cli:test")}
    with TestClient(create_app(settings), client=("198.51.100.23", 40000)) as flood:
        answers = [flood.get("/api/auth/me", headers=key).status_code for _ in range(60)]
    assert set(answers) == {403}
    rows = conn.execute(
        "SELECT result, count(*) FROM gis_ioc.audit WHERE address = '198.51.100.23' GROUP BY result"
    ).fetchall()
    assert dict(rows) == {"refused": audit.REFUSALS_PER_MINUTE, "capped": 1}
    assert audit.verify(conn).ok
