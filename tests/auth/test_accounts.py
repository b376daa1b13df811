"""Accounts on written request, logins with lockout and a second factor, sessions with idle timeouts,
API keys, single sign-on tokens, the hash-chained audit trail, and backup → restore."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import psycopg
import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gis_ioc.auth import accounts, audit, sessions
from gis_ioc.auth.accounts import RequestRef
from gis_ioc.auth.oidc import OidcConfig, OidcVerifier
from gis_ioc.auth.sessions import LOGIN_FAILED, AuthenticationFailed
from gis_ioc.database import backup as backups
from gis_ioc.database.connection import connect
from gis_ioc.errors import InvalidInput
from gis_ioc.settings import Settings
from tests.auth.conftest import REF, create
from tests.conftest import free_port, fresh_cluster, scalar, temp_home

ADMIN = "cli:test"
INSIDE = "127.0.0.1"  # the government network (see test_auth_api for logins from outside)


@pytest.fixture(scope="session", autouse=True)
def _keys(settings: Settings) -> None:
    audit.configure(settings.home)  # as create_app and the console do


def _new(db: psycopg.Connection[Any], username: str, roles: list[str], **extra: Any) -> str:
    return create(db, username, roles, **extra)


def test_no_change_without_a_written_request(db: psycopg.Connection[Any]) -> None:
    for number, day, agency in [("", "2026-11-20", "VP"), ("12/VP", None, "VP"), ("12/VP", "2026-11-20", " ")]:
        with pytest.raises(InvalidInput, match=r"request|agency"):
            RequestRef.parse(number, day, agency)
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        RequestRef.parse("12/VP", "20/11/2026", "VP")
    with pytest.raises(InvalidInput, match="future"):
        RequestRef("12/VP", date.today() + timedelta(days=10), "VP")
    before = scalar(db, "SELECT count(*) FROM gis_ioc.accounts")
    with pytest.raises(InvalidInput, match="commune officer"):
        _new(db, "officer.nocode", ["commune_officer"])
    with pytest.raises(InvalidInput, match="unknown roles"):
        _new(db, "someone", ["superuser"])
    assert scalar(db, "SELECT count(*) FROM gis_ioc.accounts") == before


def test_lifecycle_is_recorded_with_its_request(db: psycopg.Connection[Any]) -> None:
    _new(db, "tran.binh", ["analyst"])
    accounts.grant(db, "tran.binh", REF, ADMIN, layers=["police_posts"], roles=["leader"])
    accounts.lock(db, "tran.binh", RequestRef("130/VP-TTHN", date(2026, 11, 21), "Công an tỉnh"), ADMIN, "transfer")
    accounts.unlock(db, "tran.binh", REF, ADMIN)
    accounts.revoke(db, "tran.binh", REF, ADMIN, roles=["leader"])
    deleted = accounts.delete(db, "tran.binh", REF, ADMIN)
    assert deleted.state == "deleted" and deleted.full_name == "(deleted)" and deleted.grants == []
    requests = db.execute(
        "SELECT r.action, r.document_number, r.requesting_agency FROM gis_ioc.account_requests r "
        "JOIN gis_ioc.accounts a ON a.id = r.account_id WHERE a.username = 'tran.binh' ORDER BY r.id"
    ).fetchall()
    assert [r[0] for r in requests] == ["create", "grant", "lock", "unlock", "revoke", "delete"]
    assert requests[2][1:] == ("130/VP-TTHN", "Công an tỉnh")
    trail = audit.query(db, target="tran.binh", limit=20)
    assert [r["action"] for r in reversed(trail)] == [
        "account.create",
        "account.grant",
        "account.lock",
        "account.unlock",
        "account.revoke",
        "account.delete",
    ]
    assert all(r["actor"] == ADMIN and r["detail"]["request"] for r in trail)
    with pytest.raises(InvalidInput, match="taken"):
        _new(db, "tran.binh", ["analyst"])  # a deleted account keeps its name and history
    with pytest.raises(AuthenticationFailed):
        sessions.login(db, "tran.binh", "anything at all", address=INSIDE)


def test_login_lockout_uniform_errors_and_first_password_change(db: psycopg.Connection[Any]) -> None:
    password = _new(db, "le.cuong", ["gis_officer"])
    token, who = sessions.login(db, "le.cuong", password, address=INSIDE)
    assert (
        who.must_change_password
        and who.roles == {"gis_officer"}
        and sessions.from_token(db, token).username == "le.cuong"
    )
    with pytest.raises(InvalidInput, match="at least 14"):
        sessions.change_password(db, "le.cuong", password, "short-pass1")
    sessions.change_password(db, "le.cuong", password, "một mật khẩu đủ dài 2026")
    messages = set()
    for _ in range(5):
        with pytest.raises(AuthenticationFailed) as failed:
            sessions.login(db, "le.cuong", "wrong password!", address=INSIDE)
        messages.add(str(failed.value))
    with pytest.raises(AuthenticationFailed) as locked:  # the right password, but locked now
        sessions.login(db, "le.cuong", "một mật khẩu đủ dài 2026", address=INSIDE)
    with pytest.raises(AuthenticationFailed) as unknown:
        sessions.login(db, "nobody.here", "whatever", address=INSIDE)
    messages |= {str(locked.value), str(unknown.value)}
    assert messages == {LOGIN_FAILED}
    assert [r["action"] for r in audit.query(db, actor="le.cuong", action="auth.lockout")] == ["auth.lockout"]
    failures = audit.query(db, actor="le.cuong", action="auth.login")
    assert [r["detail"].get("reason") for r in failures][:2] == ["locked after failed logins", "wrong password"]
    db.execute("UPDATE gis_ioc.accounts SET locked_until = now() - interval '1 minute' WHERE username = 'le.cuong'")
    assert sessions.login(db, "le.cuong", "một mật khẩu đủ dài 2026", address=INSIDE)[1].must_change_password is False


def test_sessions_end_when_idle_and_admins_sooner(db: psycopg.Connection[Any]) -> None:
    for name, roles, idle_minutes in [("pham.dung", ["leader"], 15), ("hoang.em", ["administrator"], 5)]:
        token, _ = sessions.login(db, name, _new(db, name, roles), address=INSIDE)
        sessions.from_token(db, token)
        db.execute(
            "UPDATE gis_ioc.sessions SET last_seen_at = now() - %s WHERE account_id = "
            "(SELECT id FROM gis_ioc.accounts WHERE username = %s)",
            (timedelta(minutes=idle_minutes - 1), name),
        )
        sessions.from_token(db, token)  # still alive, and the timer starts again
        db.execute(
            "UPDATE gis_ioc.sessions SET last_seen_at = now() - %s WHERE account_id = "
            "(SELECT id FROM gis_ioc.accounts WHERE username = %s)",
            (timedelta(minutes=idle_minutes + 1), name),
        )
        with pytest.raises(AuthenticationFailed, match="ended"):
            sessions.from_token(db, token)
        with pytest.raises(AuthenticationFailed):
            sessions.from_token(db, token)  # and it is gone
    # accounts idle for more than 45 days cannot log in and are locked
    password = _new(db, "vu.giang", ["analyst"])
    db.execute("UPDATE gis_ioc.accounts SET created_at = now() - interval '46 days' WHERE username = 'vu.giang'")
    with pytest.raises(AuthenticationFailed):
        sessions.login(db, "vu.giang", password, address=INSIDE)
    assert accounts.get_account(db, "vu.giang").state == "locked"


def test_second_factor(db: psycopg.Connection[Any]) -> None:
    password = _new(db, "do.hanh", ["administrator"])
    with pytest.raises(InvalidInput, match="no enrolment is waiting"):
        sessions.confirm_totp(db, "do.hanh", "123456")
    secret, uri = sessions.enrol_totp(db, "do.hanh", password)
    assert uri.startswith("otpauth://totp/") and "do.hanh" in uri
    totp = pyotp.TOTP(secret)
    window = {totp.at(time.time() + 30 * step) for step in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in window)
    with pytest.raises(InvalidInput, match="does not match"):
        sessions.confirm_totp(db, "do.hanh", wrong)
    sessions.confirm_totp(db, "do.hanh", totp.now())
    with pytest.raises(AuthenticationFailed):
        sessions.login(db, "do.hanh", password, address=INSIDE)  # the code is missing
    token, who = sessions.login(db, "do.hanh", password, code=totp.at(time.time() + 30), address=INSIDE)
    assert who.second_factor and who.is_admin and token
    # a secret stored in clear before migration 0012 still works, and is sealed at the next login
    db.execute(
        "UPDATE gis_ioc.accounts SET totp_secret = %s, totp_last_step = NULL WHERE username = 'do.hanh'", (secret,)
    )
    sessions.login(db, "do.hanh", password, code=totp.now(), address=INSIDE)
    stored = scalar(db, "SELECT totp_secret FROM gis_ioc.accounts WHERE username = 'do.hanh'")
    assert stored.startswith("v1:") and secret not in stored


def test_api_keys_are_shown_once_and_stored_hashed(db: psycopg.Connection[Any]) -> None:
    _new(db, "qgis.partner", ["external"], grants=["schools"], with_password=False)  # a client system: keys only
    key = accounts.issue_key(db, "qgis.partner", REF, ADMIN, label="Sở Xây dựng QGIS", valid_days=90)
    assert key.startswith("gis_") and len(key) > 40
    stored = db.execute("SELECT key_sha256 FROM gis_ioc.api_keys WHERE label = 'Sở Xây dựng QGIS'").fetchone()
    assert stored is not None and key not in stored[0]
    who = sessions.from_api_key(db, key)
    assert who.username == "qgis.partner" and who.grants == {"schools"} and who.via == "api_key"
    for forged in (key[:-1] + ("A" if key[-1] != "A" else "B"), "gis_deadbeef_x", "not a key"):
        with pytest.raises(AuthenticationFailed):
            sessions.from_api_key(db, forged)
    accounts.lock(db, "qgis.partner", REF, ADMIN)
    with pytest.raises(AuthenticationFailed):
        sessions.from_api_key(db, key)


# -- single sign-on ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer() -> Iterator[tuple[str, Any]]:
    """A real JWKS endpoint on localhost serving one RSA public key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks", private
    server.shutdown()


def _token(private: Any, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://sso.hungyen.gov.vn",
        "aud": "gis-ioc",
        "sub": "u-42",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "ng.thao",
        "roles": ["leader", "superuser"],
        **claims,
    }
    return jwt.encode(payload, private, algorithm="RS256", headers={"kid": "k1"})


def test_single_sign_on_tokens(issuer: tuple[str, Any]) -> None:
    url, private = issuer
    verifier = OidcVerifier(OidcConfig("https://sso.hungyen.gov.vn", "gis-ioc", url))
    who = verifier.principal(_token(private))
    assert who.username == "ng.thao" and who.roles == {"leader"} and who.via == "oidc"  # unknown roles dropped
    for bad, reason in [
        (_token(private, exp=int(time.time()) - 600), "expired"),
        (_token(private, aud="other-system"), "not valid"),
        (_token(private, iss="https://evil.example"), "not valid"),
    ]:
        with pytest.raises(AuthenticationFailed, match=reason):
            verifier.principal(bad)
    unsigned = jwt.encode({"sub": "x", "aud": "gis-ioc"}, None, algorithm="none")
    with pytest.raises(AuthenticationFailed, match="not accepted"):
        verifier.principal(unsigned)
    # key confusion: an HMAC token signed with the issuer's public key as the secret
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "x", "aud": "gis-ioc", "iss": "https://sso.hungyen.gov.vn", "iat": 0, "exp": 2**31}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims)
    )
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(AuthenticationFailed, match="not accepted"):
        verifier.principal((signing_input + b"." + signature).decode())
    with pytest.raises(ValueError, match="not allowed"):
        OidcConfig("https://sso.hungyen.gov.vn", "gis-ioc", url, algorithms=("HS256",))


# -- audit trail ------------------------------------------------------------------------------------


def test_audit_is_append_only(db: psycopg.Connection[Any]) -> None:
    """(Each kind of tamper by the database's owner is in test_audit_chain.)"""
    audit.record(db, actor="tester", action="export", target="land_parcels", detail={"rows": 10})
    assert audit.verify(db).ok
    for statement in ("UPDATE gis_ioc.audit SET result = 'x'", "DELETE FROM gis_ioc.audit", "TRUNCATE gis_ioc.audit"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement)
    assert audit.verify(db).ok


# -- backup and restore -----------------------------------------------------------------------------


def test_backup_restores_into_an_empty_cluster(settings: Settings, db: psycopg.Connection[Any]) -> None:
    (settings.home / "plans").mkdir(exist_ok=True)
    (settings.home / "plans" / "backup-test.tif").write_bytes(b"drawing" * 1000)
    audit.record(db, actor="tester", action="export", target="schools")
    target = temp_home("gis-ioc-backup-")
    result = backups.backup(settings, target)
    assert result.rows == sum(backups.row_counts(db).values()) and result.files >= 1
    try:
        with fresh_cluster("gis-ioc-restore-") as (other, _):
            counts = backups.restore(other, result.folder)
            assert counts == backups.row_counts(db)
            assert (other.home / "plans" / "backup-test.tif").read_bytes() == b"drawing" * 1000
            # the backup holds no key: the operator copies GIS_IOC_HOME/secrets into the new home
            assert not any("secrets" in p.parts for p in result.folder.rglob("*"))
            other_keys = audit.KeyFiles(other.home)
            with connect(other, autocommit=True) as restored:
                assert "key_missing" in {f.kind for f in audit.verify(restored, other_keys).findings}
                (other.home / "secrets").mkdir(exist_ok=True, mode=0o700)
                shutil.copy2(settings.home / "secrets" / "audit_key", other.home / "secrets" / "audit_key")
                audit.mark_restored(restored, other_keys)  # what `gis-ioc restore` does
                assert audit.verify(restored, other_keys).ok
                assert scalar(restored, "SELECT count(*) FROM layers.communes") == 104
                with pytest.raises(InvalidInput, match="not empty"):
                    backups.restore(other, result.folder)
        (result.folder / "files" / "plans" / "backup-test.tif").write_bytes(b"changed")
        with pytest.raises(InvalidInput, match="damaged"):
            backups.check(result.folder)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_last_seen_is_written_at_most_every_half_minute(db: psycopg.Connection[Any]) -> None:
    token, _ = sessions.login(db, "map.user", _new(db, "map.user", ["leader"]), address=INSIDE)
    query = "SELECT s.last_seen_at FROM gis_ioc.sessions s JOIN gis_ioc.accounts a ON a.id = s.account_id "
    query += "WHERE a.username = 'map.user'"
    first = scalar(db, query)
    for _ in range(5):  # tiles of one map view
        sessions.from_token(db, token)
    assert scalar(db, query) == first
    db.execute(
        "UPDATE gis_ioc.sessions SET last_seen_at = now() - interval '31 seconds' WHERE account_id = "
        "(SELECT id FROM gis_ioc.accounts WHERE username = 'map.user')"
    )
    sessions.from_token(db, token)
    assert scalar(db, query) > first
