"""Logging in and who is asking: built-in accounts (password, then a TOTP code where enrolled), session
tokens with idle and absolute expiry, and API keys.

Failed logins answer one uniform message whatever went wrong (no such user, wrong password, locked,
wrong code), count against the account, and lock it for a while after ``max_failed`` in a row. Every
login, failed login and lockout is in the audit trail.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyotp

from gis_ioc.auth import audit
from gis_ioc.auth.accounts import KEY_PREFIX
from gis_ioc.auth.passwords import check_policy, hash_password, needs_rehash, verify_password
from gis_ioc.auth.roles import ADMIN_ROLES
from gis_ioc.errors import InvalidInput, Unauthorized

#: How often a session's "last seen" is written; the idle timeout is exact to within this.
SEEN_EVERY = timedelta(seconds=30)
LOGIN_FAILED = "the user name, password or code is wrong, or the account cannot log in now"


class AuthenticationFailed(Unauthorized):
    """The credentials given are not valid."""


@dataclass(frozen=True)
class Policy:
    """The timings of TCVN 11930:2017 / TCVN 14423 level 3 (settings GIS_IOC_AUTH_*)."""

    max_failed: int = 5
    lockout: timedelta = timedelta(minutes=30)
    idle: timedelta = timedelta(minutes=15)
    admin_idle: timedelta = timedelta(minutes=5)
    lifetime: timedelta = timedelta(hours=12)
    inactive: timedelta = timedelta(days=45)
    #: The government network: from elsewhere, only accounts with a second factor may log in.
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )

    def inside(self, address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


@dataclass
class Principal:
    """Who is asking, as the access rules need it."""

    username: str
    roles: frozenset[str]
    communes: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    second_factor: bool = False
    must_change_password: bool = False
    via: str = "session"  # session | api_key | oidc
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return bool(self.roles & ADMIN_ROLES)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def login(
    conn: psycopg.Connection[Any],
    username: str,
    password: str,
    *,
    code: str | None = None,
    address: str | None = None,
    policy: Policy = Policy(),
) -> tuple[str, Principal]:
    """Check the password (and the TOTP code when enrolled); returns a new session token and who it is."""
    with conn.transaction():
        row = conn.execute(
            "SELECT id, password_hash, totp_secret, state, failed_logins, locked_until, roles, communes, grants, "
            "must_change_password, coalesce(last_seen_at, last_login_at, created_at) FROM gis_ioc.accounts "
            "WHERE username = %s FOR UPDATE",
            (username,),
        ).fetchone()
        now = _now(conn)
        password_ok = verify_password(row[1] if row else None, password)
        reason = None
        if row is None:
            reason = "no such account"
        elif row[3] != "active":
            reason = f"account {row[3]}"
        elif row[5] is not None and row[5] > now:
            reason = "locked after failed logins"
        elif now - row[10] > policy.inactive:
            reason = f"idle for more than {policy.inactive.days} days"
        elif not password_ok:
            reason = "wrong password"
        elif row[2] is None and not policy.inside(address):
            reason = "second factor required outside the government network"
        elif row[2] is not None and not (code and pyotp.TOTP(row[2]).verify(code, valid_window=1)):
            reason = "wrong or missing second-factor code"
        if reason is not None:
            locked = False
            if row is not None and reason in ("wrong password", "wrong or missing second-factor code"):
                failed = row[4] + 1
                locked = failed >= policy.max_failed
                conn.execute(
                    "UPDATE gis_ioc.accounts SET failed_logins = %s, locked_until = %s WHERE id = %s",
                    (0 if locked else failed, now + policy.lockout if locked else None, row[0]),
                )
            if row is not None and reason.startswith("idle for"):
                conn.execute(
                    "UPDATE gis_ioc.accounts SET state = 'locked', state_reason = %s WHERE id = %s", (reason, row[0])
                )
            audit.record(
                conn, actor=username, action="auth.login", result="failed", address=address, detail={"reason": reason}
            )
            if locked:
                audit.record(
                    conn,
                    actor=username,
                    action="auth.lockout",
                    result="locked",
                    address=address,
                    detail={"minutes": policy.lockout.total_seconds() / 60},
                )
        else:
            assert row is not None
            token = secrets.token_urlsafe(32)
            roles = frozenset(row[6])
            ttl = policy.admin_idle if roles & ADMIN_ROLES else policy.idle
            conn.execute(
                "INSERT INTO gis_ioc.sessions (token_sha256, account_id, expires_at, address, second_factor) "
                "VALUES (%s, %s, %s, %s, %s)",
                (_sha256(token), row[0], now + policy.lifetime, address, row[2] is not None),
            )
            new_hash = hash_password(password) if needs_rehash(row[1]) else row[1]
            conn.execute(
                "UPDATE gis_ioc.accounts SET failed_logins = 0, locked_until = NULL, last_login_at = %s, "
                "last_seen_at = %s, password_hash = %s WHERE id = %s",
                (now, now, new_hash, row[0]),
            )
            audit.record(
                conn,
                actor=username,
                action="auth.login",
                address=address,
                detail={"idle_minutes": ttl.total_seconds() / 60, "second_factor": row[2] is not None},
            )
            return token, Principal(
                username,
                roles,
                frozenset(row[7]),
                frozenset(row[8]),
                second_factor=row[2] is not None,
                must_change_password=row[9],
            )
    raise AuthenticationFailed(LOGIN_FAILED)


def _now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def from_token(conn: psycopg.Connection[Any], token: str, *, policy: Policy = Policy()) -> Principal:
    """The principal of a session token, refreshing its idle timer; expired or idle sessions end."""
    with conn.transaction():
        row = conn.execute(
            "SELECT s.token_sha256, s.last_seen_at, s.expires_at, s.second_factor, a.username, a.roles, a.communes, "
            "a.grants, a.state, a.must_change_password, a.id FROM gis_ioc.sessions s "
            "JOIN gis_ioc.accounts a ON a.id = s.account_id WHERE s.token_sha256 = %s FOR UPDATE OF s",
            (_sha256(token),),
        ).fetchone()
        if row is None:
            raise AuthenticationFailed("the session is unknown or has ended: log in again")
        now = _now(conn)
        roles = frozenset(row[5])
        idle = policy.admin_idle if roles & ADMIN_ROLES else policy.idle
        if row[8] != "active" or now > row[2] or now - row[1] > idle:
            conn.execute("DELETE FROM gis_ioc.sessions WHERE token_sha256 = %s", (row[0],))
            why = "idle too long" if now - row[1] > idle else ("expired" if now > row[2] else f"account {row[8]}")
            audit.record(conn, actor=row[4], action="auth.session_end", result="ended", detail={"reason": why})
            raise AuthenticationFailed("the session has ended: log in again")
        if now - row[1] > SEEN_EVERY:  # a map asks for dozens of tiles a second: one write, not one per tile
            conn.execute("UPDATE gis_ioc.sessions SET last_seen_at = %s WHERE token_sha256 = %s", (now, row[0]))
            conn.execute("UPDATE gis_ioc.accounts SET last_seen_at = %s WHERE id = %s", (now, row[10]))
    return Principal(
        row[4], roles, frozenset(row[6]), frozenset(row[7]), second_factor=row[3], must_change_password=row[9]
    )


def logout(conn: psycopg.Connection[Any], token: str) -> None:
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM gis_ioc.sessions s USING gis_ioc.accounts a WHERE a.id = s.account_id "
            "AND s.token_sha256 = %s RETURNING a.username",
            (_sha256(token),),
        ).fetchone()
        if row is not None:
            audit.record(conn, actor=row[0], action="auth.logout")


def from_api_key(conn: psycopg.Connection[Any], key: str) -> Principal:
    """The principal of an API key (``gis_<prefix>_<secret>``)."""
    parts = key.split("_")
    if not key.startswith(KEY_PREFIX) or len(parts) < 3:
        raise AuthenticationFailed("the API key is not valid")
    prefix = parts[1]
    with conn.transaction():
        row = conn.execute(
            "SELECT k.id, k.key_sha256, k.expires_at < now(), k.revoked_at IS NOT NULL, a.username, a.roles, "
            "a.communes, a.grants, a.state, k.last_used_at IS NULL OR k.last_used_at < now() - %s "
            "FROM gis_ioc.api_keys k JOIN gis_ioc.accounts a ON a.id = k.account_id WHERE k.prefix = %s",
            (SEEN_EVERY, prefix),
        ).fetchone()
        if row is None or not secrets.compare_digest(row[1], _sha256(key)) or row[2] or row[3] or row[8] != "active":
            raise AuthenticationFailed("the API key is not valid")
        if row[9]:  # written at most every SEEN_EVERY: a client paging tiles does not write per request
            conn.execute("UPDATE gis_ioc.api_keys SET last_used_at = now() WHERE id = %s", (row[0],))
    return Principal(row[4], frozenset(row[5]), frozenset(row[6]), frozenset(row[7]), via="api_key")


def change_password(
    conn: psycopg.Connection[Any], username: str, old: str, new: str, *, address: str | None = None
) -> None:
    """The owner changes their password (required at first login); all their other sessions end."""
    with conn.transaction():
        row = conn.execute(
            "SELECT id, password_hash, totp_secret FROM gis_ioc.accounts WHERE username = %s AND state = 'active' "
            "FOR UPDATE",
            (username,),
        ).fetchone()
        if row is None or not verify_password(row[1], old):
            audit.record(conn, actor=username, action="auth.password_change", result="failed", address=address)
            raise AuthenticationFailed(LOGIN_FAILED)
        if verify_password(row[1], new):
            raise InvalidInput("the new password must differ from the old one")
        check_policy(new, second_factor=row[2] is not None, username=username)
        conn.execute(
            "UPDATE gis_ioc.accounts SET password_hash = %s, password_changed_at = now(), must_change_password = false "
            "WHERE id = %s",
            (hash_password(new), row[0]),
        )
        audit.record(conn, actor=username, action="auth.password_change", address=address)


def enrol_totp(username: str, issuer: str = "gis_ioc Hưng Yên") -> tuple[str, str]:
    """Start enrolling a second factor: a new secret and its otpauth:// address (for the QR code)."""
    secret = pyotp.random_base32()
    return secret, pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def confirm_totp(
    conn: psycopg.Connection[Any], username: str, secret: str, code: str, *, address: str | None = None
) -> None:
    """Keep the secret once the authenticator app shows a matching code."""
    if not pyotp.TOTP(secret).verify(code, valid_window=1):
        raise InvalidInput("the code does not match: check the authenticator's clock and try again")
    with conn.transaction():
        conn.execute("UPDATE gis_ioc.accounts SET totp_secret = %s WHERE username = %s", (secret, username))
        audit.record(conn, actor=username, action="auth.totp_enrolled", address=address)
