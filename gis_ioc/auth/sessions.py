"""Logging in and who is asking: built-in accounts (password, then a TOTP code where enrolled), session
tokens with idle and absolute expiry, and API keys.

Failed logins answer one uniform message whatever went wrong (no such user, wrong password, locked,
wrong code), count against the account, and lock it for a while after ``max_failed`` in a row. Every
login, failed login and lockout is in the audit trail (refusals bounded: :func:`gis_ioc.auth.audit.refused`).

The second factor: the TOTP secret is stored encrypted (AES-256-GCM with ``GIS_IOC_HOME/secrets/totp_key``,
bound to the account's id, so a sealed secret cannot be moved to another account); each code is accepted
once (the step of the last accepted code is kept); enrolling needs the current password, and the current
code when a second factor is already enrolled; the secret waits in the database, sealed, until the
authenticator's first code confirms it. A password change ends all the account's other sessions. An API
key is refused while its account still has its one-time first password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.rows import namedtuple_row

from gis_ioc.auth import audit
from gis_ioc.auth.accounts import KEY_PREFIX, check_username
from gis_ioc.auth.passwords import check_length, check_policy, hash_password, needs_rehash, verify_password
from gis_ioc.auth.roles import ADMIN_ROLES
from gis_ioc.errors import Forbidden, GisIocError, InvalidInput, Unauthorized

#: How often a session's "last seen" is written; the idle timeout is exact to within this.
SEEN_EVERY = timedelta(seconds=30)
LOGIN_FAILED = "the user name, password or code is wrong, or the account cannot log in now"
REAUTH_FAILED = "the password or code is wrong"
ISSUER = "gis_ioc Hưng Yên"
#: TOTP: 30-second steps; a code of the step before or after the current one is accepted (clock drift).
STEP_S = 30
CODE_MAX = 10
#: How long an enrolment waits for the authenticator's first code.
ENROL_WITHIN = timedelta(minutes=10)
SEALED = "v1:"
WRONG_CODE = "wrong or missing second-factor code"
CODE_USED = "second-factor code already used"
#: Refusals that count towards the lockout.
COUNTED = ("wrong password", WRONG_CODE, CODE_USED)


class AuthenticationFailed(Unauthorized):
    """The credentials given are not valid."""

    #: The WWW-Authenticate challenge sent with the 401.
    challenge = 'Bearer realm="gis_ioc"'
    code = "auth.failed"


class BasicFailed(AuthenticationFailed):
    """HTTP Basic credentials (user name and API key) that are not valid: the 401 asks for Basic again."""

    challenge = 'Basic realm="gis_ioc", charset="UTF-8"'
    code = "auth.basic_failed"


class SecretUnreadable(GisIocError):
    """A sealed second-factor secret cannot be opened with this server's totp_key."""


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
    via: str = "session"  # session | api_key | basic | oidc
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return bool(self.roles & ADMIN_ROLES)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """The first row as a named tuple (None if there is none)."""
    with conn.cursor(row_factory=namedtuple_row) as cur:
        return cur.execute(query, params).fetchone()


def _now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


# -- second-factor secrets -----------------------------------------------------------------------------


def _aes() -> AESGCM:
    return AESGCM(audit.keys().totp_key())


def _bound_to(account_id: int) -> bytes:
    return f"gis_ioc totp {account_id}".encode()


def seal_totp(secret: str, account_id: int) -> str:
    """The secret encrypted for the database: ``v1:`` + base64(nonce + AES-256-GCM ciphertext)."""
    nonce = secrets.token_bytes(12)
    sealed = _aes().encrypt(nonce, secret.encode(), _bound_to(account_id))
    return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_totp(stored: str, account_id: int) -> str:
    """The clear secret. A secret stored in clear before migration 0012 is returned as it is."""
    if not stored.startswith(SEALED):
        return stored
    try:
        raw = base64.urlsafe_b64decode(stored[len(SEALED) :])
        return _aes().decrypt(raw[:12], raw[12:], _bound_to(account_id)).decode()
    except (InvalidTag, ValueError, binascii.Error):
        raise SecretUnreadable(f"the second-factor secret of account {account_id} cannot be opened") from None


def _code_step(secret: str, code: str | None) -> int | None:
    """The 30-second step whose code ``code`` is (the current step or one either side), else None."""
    if not code or len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // STEP_S
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(str(totp.generate_otp(step)).encode(), code.encode()):
            return step
    return None


def _second_factor(row: Any, code: str | None) -> tuple[str | None, int | None]:
    """(why refused, None) or (None, the step of the accepted code)."""
    try:
        secret = open_totp(row.totp_secret, row.id)
    except SecretUnreadable:
        return "second-factor secret unreadable (is totp_key the key it was sealed with?)", None
    step = _code_step(secret, code)
    if step is None:
        return WRONG_CODE, None
    if row.totp_last_step is not None and step <= row.totp_last_step:
        return CODE_USED, None
    return None, step


def encrypt_clear_totp(conn: psycopg.Connection[Any]) -> int:
    """Seal the second-factor secrets still stored in clear (from before migration 0012); returns how many."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, totp_secret FROM gis_ioc.accounts WHERE totp_secret NOT LIKE %s FOR UPDATE", (SEALED + "%",)
        ).fetchall()
        for account_id, secret in rows:
            conn.execute(
                "UPDATE gis_ioc.accounts SET totp_secret = %s WHERE id = %s",
                (seal_totp(secret, account_id), account_id),
            )
        if rows:
            audit.record(conn, actor="system", action="auth.totp_encrypted", detail={"accounts": len(rows)})
    return len(rows)


# -- logging in ----------------------------------------------------------------------------------------


def _check_bounds(username: str, *passwords: str | None, code: str | None = None) -> None:
    check_username(username)
    for password in passwords:
        if password:
            check_length(password)
    if code is not None and len(code) > CODE_MAX:
        raise InvalidInput("second-factor codes have 6 digits", code="auth.code_format")


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
    _check_bounds(username, password, code=code)
    with conn.transaction():
        row = _one(
            conn,
            "SELECT id, password_hash, totp_secret, totp_last_step, state, failed_logins, locked_until, roles, "
            "communes, grants, must_change_password, coalesce(last_seen_at, last_login_at, created_at) AS active_at "
            "FROM gis_ioc.accounts WHERE username = %s FOR UPDATE",
            (username,),
        )
        now = _now(conn)
        reason, step = _check_login(row, password, code, address, now, policy)
        if reason is None:
            return _start_session(conn, row, username, password, step, address, now, policy)
        _refuse_login(conn, row, username, reason, address, now, policy)
    raise AuthenticationFailed(LOGIN_FAILED, code="auth.login_failed")


def _check_login(
    row: Any, password: str, code: str | None, address: str | None, now: datetime, policy: Policy
) -> tuple[str | None, int | None]:
    """(why the login is refused, None) or (None, the step of the code accepted, if any)."""
    password_ok = verify_password(row.password_hash if row else None, password)
    if row is None:
        return "no such account", None
    if row.state != "active":
        return f"account {row.state}", None
    if row.locked_until is not None and row.locked_until > now:
        return "locked after failed logins", None
    if now - row.active_at > policy.inactive:
        return f"idle for more than {policy.inactive.days} days", None
    if not password_ok:
        return "wrong password", None
    if row.totp_secret is None:
        return (
            (None, None) if policy.inside(address) else ("second factor required outside the government network", None)
        )
    return _second_factor(row, code)


def _count_failure(
    conn: psycopg.Connection[Any], row: Any, now: datetime, policy: Policy, *, end_sessions: bool = False
) -> bool:
    """One more failure in a row; True when it locks the account (and, with ``end_sessions``, ends its
    sessions: a session guessing its own account's password is not its owner's)."""
    failed = row.failed_logins + 1
    locked: bool = failed >= policy.max_failed
    conn.execute(
        "UPDATE gis_ioc.accounts SET failed_logins = %s, locked_until = %s WHERE id = %s",
        (0 if locked else failed, now + policy.lockout if locked else None, row.id),
    )
    if locked and end_sessions:
        conn.execute("DELETE FROM gis_ioc.sessions WHERE account_id = %s", (row.id,))
    return locked


def _refuse_login(
    conn: psycopg.Connection[Any],
    row: Any,
    username: str,
    reason: str,
    address: str | None,
    now: datetime,
    policy: Policy,
) -> None:
    locked = row is not None and reason in COUNTED and _count_failure(conn, row, now, policy)
    if row is not None and reason.startswith("idle for"):
        conn.execute("UPDATE gis_ioc.accounts SET state = 'locked', state_reason = %s WHERE id = %s", (reason, row.id))
    audit.refused(
        conn, actor=username, action="auth.login", result="failed", address=address, detail={"reason": reason}
    )
    if locked:
        _record_lockout(conn, username, address, policy)


def _record_lockout(conn: psycopg.Connection[Any], username: str, address: str | None, policy: Policy) -> None:
    audit.record(
        conn,
        actor=username,
        action="auth.lockout",
        result="locked",
        address=address,
        detail={"minutes": policy.lockout.total_seconds() / 60},
    )


def _start_session(
    conn: psycopg.Connection[Any],
    row: Any,
    username: str,
    password: str,
    step: int | None,
    address: str | None,
    now: datetime,
    policy: Policy,
) -> tuple[str, Principal]:
    token = secrets.token_urlsafe(32)
    roles = frozenset(row.roles)
    second_factor = row.totp_secret is not None
    ttl = policy.admin_idle if roles & ADMIN_ROLES else policy.idle
    conn.execute(
        "INSERT INTO gis_ioc.sessions (token_sha256, account_id, expires_at, address, second_factor) "
        "VALUES (%s, %s, %s, %s, %s)",
        (_sha256(token), row.id, now + policy.lifetime, address, second_factor),
    )
    secret = row.totp_secret
    if secret is not None and not secret.startswith(SEALED):  # stored in clear before migration 0012
        secret = seal_totp(secret, row.id)
    conn.execute(
        "UPDATE gis_ioc.accounts SET failed_logins = 0, locked_until = NULL, last_login_at = %s, last_seen_at = %s, "
        "password_hash = %s, totp_secret = %s, totp_last_step = coalesce(%s, totp_last_step) WHERE id = %s",
        (
            now,
            now,
            hash_password(password) if needs_rehash(row.password_hash) else row.password_hash,
            secret,
            step,
            row.id,
        ),
    )
    audit.record(
        conn,
        actor=username,
        action="auth.login",
        address=address,
        detail={"idle_minutes": ttl.total_seconds() / 60, "second_factor": second_factor},
    )
    who = Principal(
        username,
        roles,
        frozenset(row.communes),
        frozenset(row.grants),
        second_factor=second_factor,
        must_change_password=row.must_change_password,
    )
    return token, who


# -- sessions and keys ---------------------------------------------------------------------------------


#: A session and its account, with the account's last write position (:mod:`gis_ioc.database.replicas`).
_SESSION_READ = (
    "SELECT s.token_sha256, s.last_seen_at, s.expires_at, s.second_factor, a.username, a.roles, a.communes, "
    "a.grants, a.state, a.must_change_password, a.id, "
    "(SELECT w.lsn::text FROM gis_ioc.write_positions w WHERE w.account = a.username) "
    "FROM gis_ioc.sessions s JOIN gis_ioc.accounts a ON a.id = s.account_id WHERE s.token_sha256 = %s"
)


def from_token(
    conn: psycopg.Connection[Any], token: str, *, policy: Policy = Policy(), read_only: bool = False
) -> Principal:
    """The principal of a session token, refreshing its idle timer; expired or idle sessions end.
    ``read_only`` (on a replica, the primary being unreachable): the same checks, nothing written."""
    with conn.transaction():
        row = conn.execute(
            _SESSION_READ if read_only else _SESSION_READ + " FOR UPDATE OF s",
            (_sha256(token),),
        ).fetchone()
        if row is None:
            raise AuthenticationFailed("the session is unknown or has ended: log in again", code="auth.session_ended")
        now = _now(conn)
        roles = frozenset(row[5])
        idle = policy.admin_idle if roles & ADMIN_ROLES else policy.idle
        ended = row[8] != "active" or now > row[2] or now - row[1] > idle
        if ended and read_only:
            raise AuthenticationFailed("the session has ended: log in again", code="auth.session_ended")
        if ended:
            conn.execute("DELETE FROM gis_ioc.sessions WHERE token_sha256 = %s", (row[0],))
            why = "idle too long" if now - row[1] > idle else ("expired" if now > row[2] else f"account {row[8]}")
            audit.record(conn, actor=row[4], action="auth.session_end", result="ended", detail={"reason": why})
            raise AuthenticationFailed("the session has ended: log in again", code="auth.session_ended")
        if now - row[1] > SEEN_EVERY and not read_only:  # a map asks for dozens of tiles a second: one write
            conn.execute("UPDATE gis_ioc.sessions SET last_seen_at = %s WHERE token_sha256 = %s", (now, row[0]))
            conn.execute("UPDATE gis_ioc.accounts SET last_seen_at = %s WHERE id = %s", (now, row[10]))
    return Principal(
        row[4],
        roles,
        frozenset(row[6]),
        frozenset(row[7]),
        second_factor=row[3],
        must_change_password=row[9],
        extra={"write_lsn": row[11]},
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


#: Why an API key is refused although it is the account's, valid and unexpired.
KEYS_WAIT_FOR_FIRST_CHANGE = (
    "the account still has its one-time first password: log in and change it (POST /api/auth/password) "
    "before its API keys can be used"
)


def _key_refusal(row: Any, key: str) -> str | None:
    """Why this API key is refused, if it is."""
    if row is None or not secrets.compare_digest(row.key_sha256, _sha256(key)):
        return "unknown key"
    if row.revoked or row.expired:
        return "key revoked" if row.revoked else "key expired"
    if row.state != "active":
        return f"account {row.state}"
    return "first password not changed" if row.pending else None


def from_api_key(
    conn: psycopg.Connection[Any], key: str, *, address: str | None = None, read_only: bool = False
) -> Principal:
    """The principal of an API key (``gis_<prefix>_<secret>``). Refused (403) while the account still has
    its one-time first password. Refusals are recorded (bounded). ``read_only`` (on a replica, the primary
    being unreachable): the same checks, nothing written."""
    parts = key.split("_")
    if not key.startswith(KEY_PREFIX) or len(parts) < 3 or len(key) > 200:
        raise AuthenticationFailed("the API key is not valid", code="auth.key_invalid")
    with conn.transaction():
        row = _one(
            conn,
            "SELECT k.id, k.key_sha256, k.expires_at < now() AS expired, k.revoked_at IS NOT NULL AS revoked, "
            "a.username, a.roles, a.communes, a.grants, a.state, "
            "k.last_used_at IS NULL OR k.last_used_at < now() - %s AS stale, "
            "a.must_change_password AND a.password_hash IS NOT NULL AS pending, "
            "(SELECT w.lsn::text FROM gis_ioc.write_positions w WHERE w.account = a.username) AS written "
            "FROM gis_ioc.api_keys k JOIN gis_ioc.accounts a ON a.id = k.account_id WHERE k.prefix = %s",
            (SEEN_EVERY, parts[1][:16]),
        )
        reason = _key_refusal(row, key)
        if read_only:
            pass
        elif reason is not None:
            audit.refused(
                conn,
                actor=row.username if reason != "unknown key" else "anonymous",
                action="auth.api_key",
                result="refused" if reason == "first password not changed" else "failed",
                address=address,
                detail={"reason": reason, "prefix": parts[1][:16]},
            )
        elif row.stale:  # written at most every SEEN_EVERY: a client paging tiles does not write per request
            conn.execute("UPDATE gis_ioc.api_keys SET last_used_at = now() WHERE id = %s", (row.id,))
    if reason == "first password not changed":
        raise Forbidden(KEYS_WAIT_FOR_FIRST_CHANGE, code="auth.first_password")
    if reason is not None:
        raise AuthenticationFailed("the API key is not valid", code="auth.key_invalid")
    return _key_principal(row, "api_key")


def _key_principal(row: Any, via: str) -> Principal:
    """Who an accepted API key (in ``X-API-Key`` or HTTP Basic) stands for, with its writer's position."""
    return Principal(
        row.username,
        frozenset(row.roles),
        frozenset(row.communes),
        frozenset(row.grants),
        via=via,
        extra={"write_lsn": row.written},
    )


BASIC_FAILED = "the user name or API key is wrong, or the account cannot use it now"
#: Basic refusals that count towards the account's lockout: a key that is not one of the account's own is
#: a guess; a revoked or expired key of its own is not (its owner's client may still hold it).
BASIC_COUNTED = ("wrong API key",)
_BASIC_READ = (
    "SELECT a.id, a.username, a.roles, a.communes, a.grants, a.state, a.failed_logins, a.locked_until, "
    "a.must_change_password AND a.password_hash IS NOT NULL AS pending, "
    "k.id AS key_id, k.key_sha256, k.expires_at < now() AS expired, k.revoked_at IS NOT NULL AS revoked, "
    "k.last_used_at IS NULL OR k.last_used_at < now() - %s AS stale, "
    "(SELECT w.lsn::text FROM gis_ioc.write_positions w WHERE w.account = a.username) AS written "
    "FROM gis_ioc.accounts a LEFT JOIN gis_ioc.api_keys k ON k.account_id = a.id AND k.prefix = %s "
    "WHERE a.username = %s"
)


def _basic_refusal(row: Any, key: str, now: datetime) -> str | None:
    """Why this user name and key are refused, if they are."""
    if row is None:
        return "no such account"
    if row.state != "active":
        return f"account {row.state}"
    if row.locked_until is not None and row.locked_until > now:
        return "locked after failed logins"
    if row.key_id is None or not secrets.compare_digest(row.key_sha256, _sha256(key)):
        return "wrong API key"
    if row.revoked or row.expired:
        return "key revoked" if row.revoked else "key expired"
    return "first password not changed" if row.pending else None


def from_basic(
    conn: psycopg.Connection[Any],
    username: str,
    key: str,
    *,
    address: str | None = None,
    policy: Policy = Policy(),
    read_only: bool = False,
) -> Principal:
    """HTTP Basic as QGIS desktop sends it: the account's user name, and one of that account's API keys as
    the password (never the account's password, which stays behind its second factor). The key's checks
    (revoked, expired, first password), plus the account's: a key that is not the account's own counts
    as a failed login, the account locks after ``policy.max_failed`` in a row, and a locked account's
    keys are refused until the lockout ends. Refusals are audited (``auth.basic``, bounded) with the same
    uniform message whatever went wrong. ``read_only`` (on a replica): the same checks, nothing written."""
    try:
        check_username(username)
    except InvalidInput:
        raise BasicFailed(BASIC_FAILED) from None
    parts = key.split("_")
    prefix = parts[1][:16] if key.startswith(KEY_PREFIX) and len(parts) >= 3 and len(key) <= 200 else ""
    with conn.transaction():
        lock = "" if read_only else " FOR UPDATE OF a"  # failures in a row counted one at a time
        row = _one(conn, _BASIC_READ + lock, (SEEN_EVERY, prefix, username))
        now = _now(conn)
        reason = _basic_refusal(row, key, now)
        if read_only:
            pass
        elif reason is not None:
            locked = reason in BASIC_COUNTED and _count_failure(conn, row, now, policy)
            audit.refused(
                conn,
                actor=username,
                action="auth.basic",
                result="refused" if reason == "first password not changed" else "failed",
                address=address,
                detail={"reason": reason, "prefix": prefix},
            )
            if locked:
                _record_lockout(conn, username, address, policy)
        else:
            if row.failed_logins:
                conn.execute("UPDATE gis_ioc.accounts SET failed_logins = 0 WHERE id = %s", (row.id,))
            if row.stale:
                conn.execute("UPDATE gis_ioc.api_keys SET last_used_at = now() WHERE id = %s", (row.key_id,))
    if reason == "first password not changed":
        raise Forbidden(KEYS_WAIT_FOR_FIRST_CHANGE, code="auth.first_password")
    if reason is not None:
        raise BasicFailed(BASIC_FAILED)
    return _key_principal(row, "basic")


# -- changing the password and the second factor -------------------------------------------------------


def change_password(
    conn: psycopg.Connection[Any],
    username: str,
    old: str,
    new: str,
    *,
    address: str | None = None,
    keep: str | None = None,
    policy: Policy = Policy(),
) -> int:
    """The owner changes their password (required at first login). Every other session of the account
    ends (all but ``keep``, the session token the change came from); returns how many ended."""
    _check_bounds(username, old, new)
    with conn.transaction():
        row = _one(
            conn,
            "SELECT id, password_hash, totp_secret, failed_logins, locked_until, full_name FROM gis_ioc.accounts "
            "WHERE username = %s AND state = 'active' FOR UPDATE",
            (username,),
        )
        now = _now(conn)
        locked_out = row is not None and row.locked_until is not None and row.locked_until > now
        if row is not None and not locked_out and verify_password(row.password_hash, old):
            if verify_password(row.password_hash, new):
                raise InvalidInput("the new password must differ from the old one", code="auth.same_password")
            check_policy(
                new, second_factor=row.totp_secret is not None, username=username, full_name=row.full_name or ""
            )
            conn.execute(
                "UPDATE gis_ioc.accounts SET password_hash = %s, password_changed_at = now(), "
                "must_change_password = false WHERE id = %s",
                (hash_password(new), row.id),
            )
            ended = conn.execute(
                "DELETE FROM gis_ioc.sessions WHERE account_id = %s AND token_sha256 IS DISTINCT FROM %s",
                (row.id, _sha256(keep) if keep else None),
            ).rowcount
            audit.record(
                conn, actor=username, action="auth.password_change", address=address, detail={"sessions_ended": ended}
            )
            return ended
        reason = "locked after failed logins" if locked_out else "wrong password"
        if row is not None and not locked_out and _count_failure(conn, row, now, policy, end_sessions=True):
            _record_lockout(conn, username, address, policy)
        audit.refused(
            conn,
            actor=username,
            action="auth.password_change",
            result="failed",
            address=address,
            detail={"reason": reason},
        )
    raise AuthenticationFailed(LOGIN_FAILED, code="auth.login_failed")


def _reauthenticate(row: Any, password: str | None, code: str | None, now: datetime) -> tuple[str | None, int | None]:
    """Re-authentication before enrolling: (why refused, None) or (None, the step of the code accepted)."""
    if row is None:
        return "no active account", None
    if not password:
        return "password missing", None
    if row.locked_until is not None and row.locked_until > now:
        return "locked after failed logins", None
    if not verify_password(row.password_hash, password):
        return "wrong password", None
    if row.totp_secret is None:
        return None, None
    if not code:
        return "code missing", None
    return _second_factor(row, code)


def enrol_totp(
    conn: psycopg.Connection[Any],
    username: str,
    password: str | None,
    *,
    code: str | None = None,
    address: str | None = None,
    policy: Policy = Policy(),
    issuer: str = ISSUER,
) -> tuple[str, str]:
    """Start enrolling a second factor, after re-authentication (the current password, and a current code
    when one is enrolled): a new secret and its otpauth:// address (for the QR code). The secret waits,
    sealed, for :func:`confirm_totp`. Refusals are audited; wrong passwords or codes count to the lockout."""
    _check_bounds(username, password, code=code)
    with conn.transaction():
        row = _one(
            conn,
            "SELECT id, password_hash, totp_secret, totp_last_step, failed_logins, locked_until "
            "FROM gis_ioc.accounts WHERE username = %s AND state = 'active' FOR UPDATE",
            (username,),
        )
        now = _now(conn)
        enrolled = row is not None and row.totp_secret is not None
        reason, step = _reauthenticate(row, password, code, now)
        if reason is None:
            secret = pyotp.random_base32()
            conn.execute(
                "UPDATE gis_ioc.accounts SET totp_pending = %s, totp_pending_until = %s, "
                "totp_last_step = coalesce(%s, totp_last_step) WHERE id = %s",
                (seal_totp(secret, row.id), now + ENROL_WITHIN, step, row.id),
            )
            audit.record(conn, actor=username, action="auth.totp_enrol", address=address, detail={"again": enrolled})
            return secret, pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)
        if reason in COUNTED and _count_failure(conn, row, now, policy, end_sessions=True):
            _record_lockout(conn, username, address, policy)
        audit.refused(
            conn,
            actor=username,
            action="auth.totp_enrol",
            address=address,
            detail={"reason": reason, "again": enrolled},
        )
    if reason in ("password missing", "code missing"):
        need = 'the current password ("password")' + (' and a current code ("code")' if enrolled else "")
        raise Forbidden(f"enrolling a second factor needs re-authentication: send {need}", code="auth.reauth_needed")
    raise AuthenticationFailed(REAUTH_FAILED, code="auth.reauth_failed")


def confirm_totp(
    conn: psycopg.Connection[Any],
    username: str,
    code: str,
    *,
    secret: str | None = None,
    address: str | None = None,
) -> None:
    """Keep the enrolment's secret once the authenticator app shows a matching code (which is then used).
    ``secret``, if given, must be the enrolment's."""
    _check_bounds(username, code=code)
    with conn.transaction():
        row = _one(
            conn,
            "SELECT id, totp_pending, totp_pending_until > now() AS waiting FROM gis_ioc.accounts "
            "WHERE username = %s AND state = 'active' FOR UPDATE",
            (username,),
        )
        if row is None or row.totp_pending is None or not row.waiting:
            raise InvalidInput(
                "no enrolment is waiting for its code: start one with POST /api/auth/totp (it lasts 10 minutes)",
                code="auth.totp_not_started",
            )
        pending = open_totp(row.totp_pending, row.id)
        if secret is not None and not hmac.compare_digest(secret.encode(), pending.encode()):
            raise InvalidInput("this is not the secret the enrolment started with: start again (POST /api/auth/totp)")
        step = _code_step(pending, code)
        if step is not None:
            conn.execute(
                "UPDATE gis_ioc.accounts SET totp_secret = totp_pending, totp_pending = NULL, "
                "totp_pending_until = NULL, totp_last_step = %s WHERE id = %s",
                (step, row.id),
            )
            audit.record(conn, actor=username, action="auth.totp_enrolled", address=address)
            return
        audit.refused(
            conn,
            actor=username,
            action="auth.totp_enrolled",
            result="failed",
            address=address,
            detail={"reason": "code does not match"},
        )
    raise InvalidInput(
        "the code does not match: check the authenticator's clock and try again", code="auth.totp_mismatch"
    )
