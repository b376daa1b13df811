"""HTTP Basic with a user name and an API key: the login QGIS desktop can use (issue 18).

Each test asks from its own loopback address (inside the government network), so that its failures do
not count against the other tests' per-address rate limits.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import accounts
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import SUITE_REQUEST, key_account, scalar

OUTSIDE = ("203.0.113.7", 40000)


def basic(username: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


@pytest.fixture(scope="module")
def app(settings: Settings, loaded: DemoResult) -> Any:
    return create_app(settings)


def client_at(app: Any, address: str, *, https: bool = False) -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(app, client=(address, 50000), base_url=base)


@pytest.fixture(scope="module")
def started(app: Any) -> Iterator[None]:
    with TestClient(app):  # runs the lifespan once (pool, listeners) for every client of this module
        yield


def parcels(c: TestClient, headers: dict[str, str]) -> Any:
    return c.get("/ogc/collections/land_parcels/items", params={"limit": 3, "f": "json"}, headers=headers)


def test_basic_with_an_api_key_reads_an_internal_layer(app: Any, started: None, db: psycopg.Connection[Any]) -> None:
    key = key_account(db, "basic.officer", ["gis_officer"])
    c = client_at(app, "127.0.0.11")
    assert parcels(c, {}).status_code == 404  # anonymous: the internal layer does not exist for them
    answer = parcels(c, basic("basic.officer", key))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["features"]) == 3
    collections = c.get("/ogc/collections", params={"f": "json"}, headers=basic("basic.officer", key)).json()
    assert "land_parcels" in {col["id"] for col in collections["collections"]}
    who = c.get("/api/auth/me", headers=basic("basic.officer", key)).json()
    assert who["username"] == "basic.officer" and who["via"] == "basic"
    used = scalar(db, "SELECT last_used_at IS NOT NULL FROM gis_ioc.api_keys WHERE prefix = %s", (key.split("_")[1],))
    assert used


def test_the_account_password_is_not_a_basic_password(app: Any, started: None, db: psycopg.Connection[Any]) -> None:
    _, password = accounts.create_account(
        db,
        username="basic.pw",
        full_name="Lê Thị B",
        agency="Sở Xây dựng",
        roles=["gis_officer"],
        ref=SUITE_REQUEST,
        actor="cli:test",
    )
    c = client_at(app, "127.0.0.12")
    answer = parcels(c, basic("basic.pw", password))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic realm=")
    assert "API key" in answer.json()["detail"]


def test_a_key_of_another_account_is_refused_and_counted(app: Any, started: None, db: psycopg.Connection[Any]) -> None:
    own = key_account(db, "basic.victim", ["gis_officer"])
    other = key_account(db, "basic.other", ["leader"])
    c = client_at(app, "127.0.0.13")
    assert parcels(c, basic("basic.victim", other)).status_code == 401
    assert scalar(db, "SELECT failed_logins FROM gis_ioc.accounts WHERE username = 'basic.victim'") == 1
    assert parcels(c, basic("basic.victim", own)).status_code == 200  # a success resets the count
    assert scalar(db, "SELECT failed_logins FROM gis_ioc.accounts WHERE username = 'basic.victim'") == 0
    reasons = db.execute(
        "SELECT detail->>'reason' FROM gis_ioc.audit WHERE action = 'auth.basic' AND actor = 'basic.victim'"
    ).fetchall()
    assert [r[0] for r in reasons] == ["wrong API key"]


def test_lockout_then_rate_limit(app: Any, started: None, db: psycopg.Connection[Any]) -> None:
    key = key_account(db, "basic.locked", ["gis_officer"])
    c = client_at(app, "127.0.0.14")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for _ in range(5):
        assert parcels(c, basic("basic.locked", wrong)).status_code == 401
    assert scalar(db, "SELECT locked_until > now() FROM gis_ioc.accounts WHERE username = 'basic.locked'")
    assert scalar(db, "SELECT count(*) FROM gis_ioc.audit WHERE action = 'auth.lockout' AND actor = 'basic.locked'")
    assert parcels(c, basic("basic.locked", key)).status_code == 401  # locked: even the right key waits
    statuses = [parcels(c, basic("basic.locked", wrong)).status_code for _ in range(6)]
    assert statuses[-1] == 429, statuses  # past the login limit (10 a minute for this address and name)
    refused = parcels(c, basic("basic.locked", wrong))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_revoked_or_expired_keys_are_refused_without_locking(
    app: Any, started: None, db: psycopg.Connection[Any]
) -> None:
    key = key_account(db, "basic.revoked", ["gis_officer"])
    fresh = accounts.issue_key(db, "basic.revoked", SUITE_REQUEST, "cli:test", label="second")
    db.execute("UPDATE gis_ioc.api_keys SET revoked_at = now() WHERE prefix = %s", (key.split("_")[1],))
    c = client_at(app, "127.0.0.15")
    for _ in range(6):
        assert parcels(c, basic("basic.revoked", key)).status_code == 401
    assert scalar(db, "SELECT failed_logins FROM gis_ioc.accounts WHERE username = 'basic.revoked'") == 0
    assert parcels(c, basic("basic.revoked", fresh)).status_code == 200


def test_outside_the_government_network_only_over_https(app: Any, started: None, db: psycopg.Connection[Any]) -> None:
    key = key_account(db, "basic.remote", ["gis_officer"])
    plain = TestClient(app, client=OUTSIDE)
    answer = parcels(plain, basic("basic.remote", key))
    assert answer.status_code == 401
    assert "HTTPS" in answer.json()["detail"]
    secure = TestClient(app, client=OUTSIDE, base_url="https://testserver")
    assert parcels(secure, basic("basic.remote", key)).status_code == 200


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("Basic !!!not-base64", "base64"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "user name"),
        ("Basic " + base64.b64encode(b"someone:").decode(), "user name"),
        ("Basic " + base64.b64encode(("x" * 300 + ":gis_ab_cd").encode()).decode(), "user name"),
        ("Basic " + base64.b64encode(b"\xff\xfe:key").decode(), "base64"),
    ],
)
def test_malformed_basic_is_a_401_naming_the_problem(app: Any, started: None, header: str, named: str) -> None:
    c = client_at(app, "127.0.0.16")
    answer = parcels(c, {"Authorization": header})
    assert answer.status_code == 401, answer.text
    assert named in answer.json()["detail"]
