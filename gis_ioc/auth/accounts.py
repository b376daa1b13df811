"""Account lifecycle on written request: create, lock, unlock, delete, grant, revoke, keys.

Every change needs a :class:`RequestRef` (the document number, its date and the requesting agency), is
stored in ``gis_ioc.account_requests`` and in the audit trail, and happens in one transaction with them.
There are no default accounts: the first administrator is created with ``gis-ioc account create``.
Accounts for client systems can be made without a password (``with_password=False``): they use API keys
only. An account with a password can use API keys only once its one-time first password was changed.

Every text is bounded before it is used (:data:`LIMITS`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from gis_ioc.auth import audit
from gis_ioc.auth.passwords import generate_password, hash_password
from gis_ioc.auth.roles import ROLES
from gis_ioc.errors import InvalidInput, NotFound

USERNAME_MAX = 64
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{2,63}$")
KEY_PREFIX = "gis_"
#: The longest value of each text an account change takes, and the most items of each list.
LIMITS = {
    "full_name": 200,
    "agency": 200,
    "email": 254,
    "label": 200,
    "reason": 500,
    "request number": 100,
    "request agency": 200,
}
MAX_ITEMS = 100


def check_username(username: str) -> str:
    """The user name, if it is no longer than any account's (else 400, before any other use)."""
    if len(username) > USERNAME_MAX:
        raise InvalidInput(f"user names have at most {USERNAME_MAX} characters")
    return username


def bounded(name: str, value: str | None) -> str | None:
    """``value`` if it is within the bound of ``name`` (:data:`LIMITS`)."""
    if value is not None and len(value) > LIMITS[name]:
        raise InvalidInput(f"{name} has at most {LIMITS[name]} characters")
    return value


@dataclass(frozen=True)
class RequestRef:
    """The written request behind a change: e.g. 123/VP-TTHN of 2026-11-20 from Văn phòng UBND tỉnh."""

    number: str
    issued: date
    agency: str

    def __post_init__(self) -> None:
        bounded("request number", self.number)
        bounded("request agency", self.agency)
        if not self.number or not self.number.strip():
            raise InvalidInput("a request reference (document number) is required for every account change")
        if not self.agency or not self.agency.strip():
            raise InvalidInput("the requesting agency is required for every account change")
        if self.issued > datetime.now(UTC).date() + timedelta(days=1):
            raise InvalidInput(f"the request is dated {self.issued}, in the future")

    @classmethod
    def parse(cls, number: str | None, issued: str | date | None, agency: str | None) -> RequestRef:
        if not number or not issued or not agency:
            raise InvalidInput(
                "every account change needs the written request: its number (e.g. 123/VP-TTHN), date and agency"
            )
        try:
            day = issued if isinstance(issued, date) else date.fromisoformat(issued)
        except ValueError:
            raise InvalidInput(f"request date {issued!r} is not YYYY-MM-DD") from None
        return cls(number.strip(), day, agency.strip())

    def as_detail(self) -> dict[str, str]:
        return {"request": self.number, "request_date": self.issued.isoformat(), "agency": self.agency}


@dataclass
class Account:
    id: int
    username: str
    full_name: str
    agency: str
    email: str | None
    roles: list[str]
    communes: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    state: str = "active"
    must_change_password: bool = True
    second_factor: bool = False
    last_login_at: str | None = None
    last_seen_at: str | None = None


_COLUMNS = (
    "id, username, full_name, agency, email, roles, communes, grants, state, must_change_password, "
    "totp_secret IS NOT NULL, last_login_at, last_seen_at"
)


def _account(row: tuple[Any, ...]) -> Account:
    return Account(
        id=row[0],
        username=row[1],
        full_name=row[2],
        agency=row[3],
        email=row[4],
        roles=list(row[5]),
        communes=list(row[6]),
        grants=list(row[7]),
        state=row[8],
        must_change_password=row[9],
        second_factor=row[10],
        last_login_at=row[11].isoformat() if row[11] else None,
        last_seen_at=row[12].isoformat() if row[12] else None,
    )


def get_account(conn: psycopg.Connection[Any], username: str) -> Account:
    check_username(username)
    row = conn.execute(f"SELECT {_COLUMNS} FROM gis_ioc.accounts WHERE username = %s", (username,)).fetchone()  # noqa: S608
    if row is None:
        raise NotFound(f"no account {username!r}")
    return _account(row)


def list_accounts(conn: psycopg.Connection[Any], *, include_deleted: bool = False) -> list[Account]:
    where = "" if include_deleted else "WHERE state <> 'deleted'"
    rows = conn.execute(f"SELECT {_COLUMNS} FROM gis_ioc.accounts {where} ORDER BY username").fetchall()  # noqa: S608
    return [_account(r) for r in rows]


def _check_roles(roles: list[str], communes: list[str]) -> None:
    if len(roles) > MAX_ITEMS or len(communes) > MAX_ITEMS:
        raise InvalidInput(f"give at most {MAX_ITEMS} roles and {MAX_ITEMS} communes")
    if not roles:
        raise InvalidInput("give at least one role")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InvalidInput(f"unknown roles {unknown}; roles are {', '.join(ROLES)}")
    if "commune_officer" in roles and not communes:
        raise InvalidInput("a commune officer needs the code of their commune(s)")
    bad = [c for c in communes if not re.fullmatch(r"\d{5}", c)]
    if bad:
        raise InvalidInput(f"commune codes have five digits: {bad}")


def _request(
    conn: psycopg.Connection[Any], account_id: int, action: str, ref: RequestRef, actor: str, detail: dict[str, Any]
) -> None:
    conn.execute(
        "INSERT INTO gis_ioc.account_requests (account_id, action, document_number, document_date, "
        "requesting_agency, detail, done_by) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
        (account_id, action, ref.number, ref.issued, ref.agency, _json(detail), actor),
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


def create_account(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    full_name: str,
    agency: str,
    roles: list[str],
    ref: RequestRef,
    actor: str,
    email: str | None = None,
    communes: list[str] | None = None,
    grants: list[str] | None = None,
    address: str | None = None,
    with_password: bool = True,
) -> tuple[Account, str]:
    """Create an account; returns it with its one-time password (shown once; changed at first login), or
    with "" when made ``with_password=False`` (a client system's account: API keys only)."""
    if not USERNAME_RE.match(check_username(username)):
        raise InvalidInput("user names are 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'")
    for name, value in (("full_name", full_name), ("agency", agency), ("email", email)):
        bounded(name, value)
    communes = sorted(set(communes or []))
    _check_roles(roles, communes)
    if len(grants or []) > MAX_ITEMS or any(len(g) > USERNAME_MAX for g in grants or []):
        raise InvalidInput(f"give at most {MAX_ITEMS} layers, each a layer id")
    password = generate_password() if with_password else ""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM gis_ioc.accounts WHERE username = %s", (username,)).fetchone():
            raise InvalidInput(f"the user name {username!r} is taken (deleted accounts keep theirs)")
        row = conn.execute(
            "INSERT INTO gis_ioc.accounts (username, full_name, agency, email, roles, communes, grants, "
            "password_hash, password_changed_at, must_change_password) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s) RETURNING id",
            (
                username,
                full_name,
                agency,
                email,
                roles,
                communes,
                sorted(set(grants or [])),
                hash_password(password) if with_password else None,
                with_password,
            ),
        ).fetchone()
        assert row is not None
        detail: dict[str, Any] = {"roles": roles, "communes": communes, "grants": sorted(set(grants or []))}
        if not with_password:
            detail["credentials"] = "API keys only (no password)"
        _request(conn, int(row[0]), "create", ref, actor, detail)
        audit.record(
            conn,
            actor=actor,
            action="account.create",
            target=username,
            address=address,
            detail={**ref.as_detail(), **detail},
        )
    return get_account(conn, username), password


def _change(
    conn: psycopg.Connection[Any],
    username: str,
    action: str,
    ref: RequestRef,
    actor: str,
    statement: str,
    params: tuple[Any, ...],
    detail: dict[str, Any],
    address: str | None,
) -> Account:
    check_username(username)
    with conn.transaction():
        row = conn.execute(
            "SELECT id, state FROM gis_ioc.accounts WHERE username = %s FOR UPDATE", (username,)
        ).fetchone()
        if row is None or (row[1] == "deleted" and action != "delete"):
            raise NotFound(f"no account {username!r}")
        if row[1] == "deleted":
            raise InvalidInput(f"account {username!r} is already deleted")
        conn.execute(statement, (*params, row[0]))
        _request(conn, int(row[0]), action, ref, actor, detail)
        audit.record(
            conn,
            actor=actor,
            action=f"account.{action}",
            target=username,
            address=address,
            detail={**ref.as_detail(), **detail},
        )
    return get_account(conn, username)


def lock(
    conn: psycopg.Connection[Any],
    username: str,
    ref: RequestRef,
    actor: str,
    reason: str = "",
    address: str | None = None,
) -> Account:
    bounded("reason", reason)
    return _change(
        conn,
        username,
        "lock",
        ref,
        actor,
        "UPDATE gis_ioc.accounts SET state = 'locked', state_reason = %s WHERE id = %s",
        (reason or f"request {ref.number}",),
        {"reason": reason},
        address,
    )


def unlock(
    conn: psycopg.Connection[Any], username: str, ref: RequestRef, actor: str, address: str | None = None
) -> Account:
    account = _change(
        conn,
        username,
        "unlock",
        ref,
        actor,
        "UPDATE gis_ioc.accounts SET state = 'active', state_reason = NULL, failed_logins = 0, "
        "last_seen_at = now() WHERE id = %s",
        (),
        {},
        address,
    )
    return account


def delete(
    conn: psycopg.Connection[Any], username: str, ref: RequestRef, actor: str, address: str | None = None
) -> Account:
    """Delete: no login, no keys, no sessions, personal fields cleared; the row and its history stay."""
    account = _change(
        conn,
        username,
        "delete",
        ref,
        actor,
        "UPDATE gis_ioc.accounts SET state = 'deleted', state_reason = 'deleted', password_hash = NULL, "
        "totp_secret = NULL, totp_pending = NULL, totp_pending_until = NULL, email = NULL, full_name = '(deleted)', "
        "grants = '{}' WHERE id = %s",
        (),
        {},
        address,
    )
    conn.execute("DELETE FROM gis_ioc.sessions WHERE account_id = %s", (account.id,))
    conn.execute(
        "UPDATE gis_ioc.api_keys SET revoked_at = now() WHERE account_id = %s AND revoked_at IS NULL", (account.id,)
    )
    return account


def _rights(
    conn: psycopg.Connection[Any],
    action: str,
    username: str,
    ref: RequestRef,
    actor: str,
    roles: list[str] | None,
    layers: list[str] | None,
    communes: list[str] | None,
    address: str | None,
) -> Account:
    """Add (grant) or take away (revoke) roles, layer grants or communes."""
    current = get_account(conn, username)

    def apply(have: list[str], change: list[str] | None) -> list[str]:
        given = set(change or [])
        return sorted(set(have) | given) if action == "grant" else [x for x in have if x not in given]

    new_roles, new_communes = apply(current.roles, roles), apply(current.communes, communes)
    _check_roles(new_roles, new_communes)
    return _change(
        conn,
        username,
        action,
        ref,
        actor,
        "UPDATE gis_ioc.accounts SET roles = %s, grants = %s, communes = %s WHERE id = %s",
        (new_roles, apply(current.grants, layers), new_communes),
        {"roles": roles or [], "layers": layers or [], "communes": communes or []},
        address,
    )


def grant(
    conn: psycopg.Connection[Any],
    username: str,
    ref: RequestRef,
    actor: str,
    *,
    roles: list[str] | None = None,
    layers: list[str] | None = None,
    communes: list[str] | None = None,
    address: str | None = None,
) -> Account:
    """Give roles, layers or communes."""
    if len(layers or []) > MAX_ITEMS:
        raise InvalidInput(f"give at most {MAX_ITEMS} layers")
    return _rights(conn, "grant", username, ref, actor, roles, layers, communes, address)


def revoke(
    conn: psycopg.Connection[Any],
    username: str,
    ref: RequestRef,
    actor: str,
    *,
    roles: list[str] | None = None,
    layers: list[str] | None = None,
    communes: list[str] | None = None,
    address: str | None = None,
) -> Account:
    """Take roles, layers or communes away."""
    return _rights(conn, "revoke", username, ref, actor, roles, layers, communes, address)


def issue_key(
    conn: psycopg.Connection[Any],
    username: str,
    ref: RequestRef,
    actor: str,
    *,
    label: str = "",
    valid_days: int = 365,
    address: str | None = None,
) -> str:
    """A new API key for the account: returned once, stored as its SHA-256."""
    if not 1 <= valid_days <= 3 * 365:
        raise InvalidInput("API keys are valid for 1 to 1,095 days")
    bounded("label", label)
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    account = get_account(conn, username)
    if account.state != "active":
        raise InvalidInput(f"account {username!r} is {account.state}")
    with conn.transaction():
        conn.execute(
            "INSERT INTO gis_ioc.api_keys (account_id, prefix, key_sha256, label, expires_at) "
            "VALUES (%s, %s, %s, %s, now() + %s)",
            (account.id, prefix, hashlib.sha256(key.encode()).hexdigest(), label, timedelta(days=valid_days)),
        )
        detail = {"prefix": prefix, "label": label, "valid_days": valid_days}
        _request(conn, account.id, "issue_key", ref, actor, detail)
        audit.record(
            conn,
            actor=actor,
            action="account.issue_key",
            target=username,
            address=address,
            detail={**ref.as_detail(), **detail},
        )
    return key
