"""The audit trail: who did what, when, from where, to what, and with what result.

A keyed chain
    Each record carries ``hash`` = HMAC-SHA256(audit key; its id, the previous record's ``hash`` and its
    content) and ``prev_hash``, the previous record's ``hash``. The key is in
    ``GIS_IOC_HOME/secrets/audit_key`` (mode 0600, made on first use): outside the database and outside
    its dumps, so the database's owner can neither alter a record nor recompute the chain unnoticed.
    The MAC is computed here, in the application (the key never reaches PostgreSQL).
Records from before the key
    Records written before migration 0012 (ids up to ``audit_anchor.legacy_through``, 0 on a database
    made since) keep their unkeyed SHA-256 links, recomputed here (never by a database function: the
    owner could replace it). That boundary is pinned outside the owner's reach: the head file records it
    (``legacy <id>``) when the chain becomes keyed, and the anchor's HMAC covers it.
A head file outside the database
    Every record also appends ``<id> <hmac> <transaction id>`` to ``GIS_IOC_HOME/audit/head-<database>.log``
    (opened ``O_APPEND``, written while the chain lock is held, so lines are in chain order). A record the
    head file names, whose transaction committed (``pg_xact_status``), and that the table lacks was
    removed: this is how removing the *newest* records is caught. A rolled-back record is told apart by
    its aborted transaction. ``gis-ioc restore`` appends ``restore <id> <hmac>``: the chain restored from
    a backup continues from there (the segment after it has a ``legacy <id>`` line of its own).
The anchor
    ``audit_anchor``: where the chain starts (the last record a prune removed and its ``hash``), the
    legacy boundary, and ``mac`` = ``v2:`` + HMAC of the three. :func:`prune` (the console, as the
    database's owner) removes the oldest records, moves the anchor with a new HMAC and records the prune
    in the same transaction; an anchor moved any other way does not verify. The owner's first record
    seals an anchor without a ``v2`` HMAC (the server's role may not); older anchor HMACs still verify.
Writing
    :func:`record` appends inside the caller's transaction (it stands or falls with the change), serialised
    by a transaction-level advisory lock so that two writers never fork the chain (a unique index on
    ``prev_hash`` refuses a fork in any case). Write from READ COMMITTED transactions. :func:`refused`
    records a refusal, at most :data:`REFUSALS_PER_MINUTE` per caller and address (and
    :data:`REFUSALS_PER_ADDRESS` per address) a minute, counted in the audit table itself; past that one
    ``audit.refusals_capped`` note is written and the rest of the minute's refusals are not.
Configuration
    The process says once where its home is: ``audit.configure(settings.home)`` (``create_app`` and the
    console commands do). :class:`KeyFiles` loads each key file once per path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mmap
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row

from gis_ioc.errors import GisIocError, InvalidInput

ZERO = "0" * 64
CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gis_ioc.audit'))"
#: Results that count as refusals for the bound on refusal records.
REFUSALS = ("denied", "failed", "refused", "capped")
REFUSALS_PER_MINUTE = 30
REFUSALS_PER_ADDRESS = 300
#: Longest actor, address and target kept (longer values are cut, saying by how much).
FIELD_MAX = {"actor": 128, "address": 64, "action": 64, "target": 512}


class AuditError(GisIocError):
    """The audit trail cannot be written or checked (a key file missing, damaged or not configured)."""

    title = "Audit trail"


# -- keys kept outside the database --------------------------------------------------------------------

_KEYS_LOCK = threading.Lock()
_KEYS: dict[Path, bytes] = {}


def secret_key(path: Path, *, create: bool = True) -> bytes:
    """The 256-bit key in ``path`` (64 hex digits), made with mode 0600 when missing and ``create``.

    Loaded once per path. A key file others may read is refused."""
    with _KEYS_LOCK:
        if (cached := _KEYS.get(path)) is not None:
            return cached
        if not path.exists():
            if not create:
                raise AuditError(f"the key file {path} is missing")
            _make_key_file(path)
        mode = path.stat().st_mode
        if mode & 0o077:
            raise AuditError(f"the key file {path} may be read by others (mode {oct(mode & 0o777)}): chmod 600 it")
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (ValueError, UnicodeDecodeError):
            key = b""
        if len(key) != 32:
            raise AuditError(f"the key file {path} is damaged (it must hold 64 hexadecimal digits)")
        _KEYS[path] = key
        return key


def _make_key_file(path: Path) -> None:
    """Write a new key atomically: a private temporary file linked into place (another process that won
    the race keeps its key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


@dataclass(frozen=True)
class KeyFiles:
    """Where the secrets kept outside the database live: ``GIS_IOC_HOME/secrets`` and ``GIS_IOC_HOME/audit``."""

    home: Path

    def audit_key(self, *, create: bool = True) -> bytes:
        return secret_key(self.home / "secrets" / "audit_key", create=create)

    def totp_key(self, *, create: bool = True) -> bytes:
        return secret_key(self.home / "secrets" / "totp_key", create=create)

    def head_file(self, database: str) -> Path:
        return self.home / "audit" / f"head-{database}.log"


_CURRENT: KeyFiles | None = None


def configure(home: Path) -> KeyFiles:
    """Say where this process's keys and head files are (``settings.home``); returns them."""
    global _CURRENT
    _CURRENT = KeyFiles(Path(home))
    return _CURRENT


def configured() -> KeyFiles | None:
    """The key files set by :func:`configure`, or None."""
    return _CURRENT


def keys() -> KeyFiles:
    """The key files set by :func:`configure`."""
    if _CURRENT is None:
        raise AuditError(
            "the audit trail's keys are not configured: call gis_ioc.auth.audit.configure(settings.home) first"
        )
    return _CURRENT


# -- writing ---------------------------------------------------------------------------------------------


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mac(key: bytes, record_id: int, prev: str, at: datetime, fields: tuple[Any, ...], detail: str) -> str:
    """HMAC-SHA256 of one record: JSON of its id, link, time, actor, address, action, target, result, detail."""
    message = json.dumps([1, record_id, prev, _stamp(at), *fields, detail], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _anchor_mac(key: bytes, through_id: int, prev: str, legacy_through: int) -> str:
    """The anchor's HMAC: where the chain starts and the legacy boundary."""
    message = json.dumps(["anchor", 2, through_id, prev, legacy_through], separators=(",", ":"))
    return "v2:" + hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _legacy_digest(prev: str, at: datetime, fields: tuple[Any, ...], detail: str) -> str:
    """The unkeyed SHA-256 link of a record written before migration 0012 (what migration 0010's
    ``audit_digest`` computed): prev, time, actor, address, action, target, result, detail joined by 0x1f."""
    actor, address, action, target, result = fields
    parts = (prev, _stamp(at)[:-1], actor, address or "", action, target or "", result, detail)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _bounded(name: str, value: str | None) -> str | None:
    limit = FIELD_MAX[name]
    if value is None or len(value) <= limit:
        return value
    return f"{value[: limit - 24]}…(+{len(value) - limit + 24} chars)"


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


def _append(
    conn: psycopg.Connection[Any],
    files: KeyFiles,
    *,
    actor: str,
    action: str,
    result: str,
    target: str | None,
    address: str | None,
    detail: dict[str, Any] | None,
) -> int:
    """Append one record; the chain lock must be held (by this transaction)."""
    key = files.audit_key()
    fields = (
        _bounded("actor", actor),
        _bounded("address", address),
        _bounded("action", action),
        _bounded("target", target),
        result,
    )
    row = conn.execute(
        "SELECT nextval(pg_get_serial_sequence('gis_ioc.audit', 'id')), clock_timestamp(), %s::jsonb::text, "
        "(SELECT hash FROM gis_ioc.audit ORDER BY id DESC LIMIT 1), a.prev_hash, a.through_id, a.legacy_through, "
        "a.mac FROM (SELECT) one LEFT JOIN gis_ioc.audit_anchor a ON true",
        (json.dumps(detail or {}, ensure_ascii=False, default=str),),
    ).fetchone()
    assert row is not None
    record_id, at, text = int(row[0]), row[1], row[2]
    anchor = _Anchor(row[4] or ZERO, int(row[5] or 0), int(row[6] or 0), row[7])
    _seal_once(conn, files, key, anchor, record_id)
    prev = row[3] or anchor.prev
    mac = _mac(key, record_id, prev, at, fields, text)
    written = conn.execute(
        "INSERT INTO gis_ioc.audit (id, at, actor, address, action, target, result, detail, prev_hash, hash) "
        "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
        "RETURNING xmin::text::bigint, pg_current_xact_id()::text::bigint",
        (record_id, at, *fields, text, prev, mac),
    ).fetchone()
    assert written is not None
    _append_line(files.head_file(conn.info.dbname), f"{record_id} {mac} {_full_xid(*written)}\n")
    return record_id


_SEALED: set[Path] = set()  # head files this process has seen record the legacy boundary


def _seal_once(conn: psycopg.Connection[Any], files: KeyFiles, key: bytes, anchor: _Anchor, record_id: int) -> None:
    """Once per process and head file: record the legacy boundary there when its segment lacks it (and the
    boundary is below every keyed record, this one included), and seal the anchor when the connection may."""
    path = files.head_file(conn.info.dbname)
    if path in _SEALED:
        return
    recorded, first = _segment(path)
    if recorded is None and anchor.legacy_through < (record_id if first is None else first):
        _append_line(path, f"legacy {anchor.legacy_through}\n")
        recorded = anchor.legacy_through
    if recorded == anchor.legacy_through:
        _seal_anchor(conn, key, anchor)
    _SEALED.add(path)


def _seal_anchor(conn: psycopg.Connection[Any], key: bytes, anchor: _Anchor) -> None:
    """Give an anchor that verifies but has no ``v2`` HMAC one (as the owner: the server's role may not)."""
    if anchor.mac is not None and anchor.mac.startswith("v2:"):
        return
    allowed = conn.execute("SELECT has_table_privilege('gis_ioc.audit_anchor', 'UPDATE')").fetchone()
    probe = _Walk()
    if allowed and allowed[0]:  # checked first: the server's role never may
        _check_anchor(conn, key, anchor, probe)
    if probe.findings or not allowed or not allowed[0]:
        return
    conn.execute(
        "UPDATE gis_ioc.audit_anchor SET mac = %s",
        (_anchor_mac(key, anchor.through_id, anchor.prev, anchor.legacy_through),),
    )


def _segment(path: Path) -> tuple[int | None, int | None]:
    """In the head file's segment after its last restore marker: the legacy boundary its first ``legacy``
    line records (-1: damaged) and the first record it names (found with a byte search, not a parse)."""
    if not path.exists() or path.stat().st_size == 0:
        return None, None
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = data.rfind(b"\nrestore ") + 1
        at = start if data[start : start + 7] == b"legacy " else data.find(b"\nlegacy ", start) + 1 or -1
        recorded = None
        if at >= 0:
            words = _line(data, at).split()
            recorded = int(words[1]) if len(words) == 2 and words[1].isdigit() else -1
        first, position = None, start
        while first is None and position < len(data):
            line = _line(data, position)
            first = int(line.split()[0]) if line[:1].isdigit() and line.split()[0].isdigit() else None
            position += len(line) + 1
    return recorded, first


def _line(data: mmap.mmap, at: int) -> bytes:
    end = data.find(b"\n", at)
    return data[at : end if end >= 0 else len(data)]


def _full_xid(xmin: int, top: int) -> int:
    """The 64-bit id of the (sub)transaction that inserted the row: its ``xmin`` (32 bits) in the epoch
    of the top-level transaction (a subtransaction's id is never older than its top-level one's)."""
    full = (top & ~0xFFFF_FFFF) | xmin
    return full + (1 << 32) if full < top else full


def record(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    result: str = "ok",
    target: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one record (inside the caller's transaction, so it stands or falls with the change)."""
    files = keys()
    with conn.transaction():
        conn.execute(CHAIN_LOCK)
        return _append(
            conn, files, actor=actor, action=action, result=result, target=target, address=address, detail=detail
        )


def _recent_refusals(conn: psycopg.Connection[Any], actor: str, address: str | None) -> int:
    """How far past its bound this caller is (negative: below it), over the last minute."""
    where = "address = %s" if address is not None else "address IS NULL AND %s::text IS NULL"
    recent = f"{where} AND result = ANY(%s) AND at > clock_timestamp() - interval '1 minute'"
    both = (address, list(REFUSALS))
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM gis_ioc.audit WHERE {recent} AND actor = %s LIMIT %s) p), "  # noqa: S608
        f"(SELECT count(*) FROM (SELECT 1 FROM gis_ioc.audit WHERE {recent} LIMIT %s) a)",
        (*both, _bounded("actor", actor), REFUSALS_PER_MINUTE + 1, *both, REFUSALS_PER_ADDRESS + 1),
    ).fetchone()
    assert row is not None
    return max(int(row[0]) - REFUSALS_PER_MINUTE, int(row[1]) - REFUSALS_PER_ADDRESS)


def refused(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    result: str = "denied",
    target: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int | None:
    """Record a refusal, bounded per caller and address (see the module's text); None when not written."""
    if result not in REFUSALS:
        raise ValueError(f"a refusal's result is one of {REFUSALS}")
    files = keys()
    with conn.transaction():
        if _recent_refusals(conn, actor, address) > 0:  # a flood: no lock taken, nothing written
            return None
        conn.execute(CHAIN_LOCK)
        over = _recent_refusals(conn, actor, address)
        if over > 0:
            return None
        if over == 0:
            detail = {"action": action, "per_minute": REFUSALS_PER_MINUTE, "per_address": REFUSALS_PER_ADDRESS}
            action, result, target = "audit.refusals_capped", "capped", None
        return _append(
            conn, files, actor=actor, action=action, result=result, target=target, address=address, detail=detail
        )


def mark_restored(conn: psycopg.Connection[Any], files: KeyFiles | None = None) -> None:
    """After a restore from backup: the head file continues from the restored chain's newest record."""
    files = files or keys()
    row = conn.execute(
        "SELECT coalesce((SELECT id FROM gis_ioc.audit ORDER BY id DESC LIMIT 1), 0), "
        "coalesce((SELECT hash FROM gis_ioc.audit ORDER BY id DESC LIMIT 1), "
        "(SELECT prev_hash FROM gis_ioc.audit_anchor)), (SELECT legacy_through FROM gis_ioc.audit_anchor)"
    ).fetchone()
    assert row is not None
    path = files.head_file(conn.info.dbname)
    _append_line(path, f"restore {int(row[0])} {row[1]}\nlegacy {int(row[2] or 0)}\n")
    _SEALED.discard(path)  # the next record seals the restored anchor if it has no v2 HMAC


# -- reading ---------------------------------------------------------------------------------------------


def query(
    conn: psycopg.Connection[Any],
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Records matching every filter given, newest first. ``action`` may end with ``*`` (a prefix)."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10,000")
    for name, value in (("actor", actor), ("action", action), ("target", target)):
        if value is not None and len(value) > FIELD_MAX[name]:
            raise InvalidInput(f"{name} has at most {FIELD_MAX[name]} characters")
    prefix = action[:-1].replace("%", r"\%").replace("_", r"\_") + "%" if action and action.endswith("*") else None
    filters = (
        ("actor = %s", actor),
        ("action LIKE %s", prefix),
        ("action = %s", None if prefix else action),
        ("target = %s", target),
        ("at >= %s", since),
        ("at < %s", until),
    )
    where = ["true", *(condition for condition, value in filters if value)]
    params = [value for _, value in filters if value]
    rows = conn.execute(
        "SELECT id, at, actor, address, action, target, result, detail FROM gis_ioc.audit "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}",
        params,
    ).fetchall()
    keys_ = ("id", "at", "actor", "address", "action", "target", "result", "detail")
    return [dict(zip(keys_, (r[0], r[1].isoformat(), *r[2:]), strict=True)) for r in rows]


# -- verifying -------------------------------------------------------------------------------------------

#: The kinds of tamper :func:`verify` names.
KINDS = {
    "altered": "a record was altered after it was written",
    "recomputed": "records do not carry the audit key's HMAC: the chain was recomputed without the key",
    "removed": "records were removed from the middle of the chain",
    "newest_removed": "the newest records were removed (the head file is ahead of the table)",
    "oldest_removed": "the oldest records were removed outside a recorded prune",
    "anchor_moved": "the anchor was moved without a recorded prune",
    "legacy_moved": "the boundary of the records from before the audit key (audit_anchor.legacy_through) was moved",
    "head_file": "the head file outside the database is missing or damaged",
    "key_missing": "the audit key is missing",
}


@dataclass
class Finding:
    kind: str
    record: int | None
    message: str


@dataclass
class Verification:
    ok: bool
    records: int
    first_broken: int | None = None
    problem: str | None = None
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Anchor:
    prev: str
    through_id: int
    legacy_through: int
    mac: str | None


@dataclass
class _HeadEntry:
    id: int
    mac: str
    xid: str | None  # None: a restore marker (the restored chain's newest record)


@dataclass
class _Walk:
    """What the walk along the chain found."""

    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    first_id: int | None = None
    last_id: int | None = None
    missing: list[_HeadEntry] = field(default_factory=list)  # named by the head file, not in the table
    recorded: list[int] = field(default_factory=list)  # legacy boundaries the head file records
    bad_run: list[tuple[int, str]] = field(default_factory=list)  # consecutive records whose MAC fails

    def add(self, kind: str, record: int | None, message: str) -> None:
        if len(self.findings) < 100:
            self.findings.append(Finding(kind, record, message))


def _same(stored: str, computed: str) -> bool:
    """A constant-time comparison that also takes what an intruder may have stored (any text)."""
    return hmac.compare_digest(stored.encode("utf-8", "surrogateescape"), computed.encode())


def _anchor(conn: psycopg.Connection[Any]) -> _Anchor:
    row = conn.execute("SELECT prev_hash, through_id, legacy_through, mac FROM gis_ioc.audit_anchor").fetchone()
    if row is None:
        return _Anchor(ZERO, 0, 0, None)
    return _Anchor(row[0] or ZERO, int(row[1] or 0), int(row[2] or 0), row[3])


def _check_anchor(conn: psycopg.Connection[Any], key: bytes | None, anchor: _Anchor, walk: _Walk) -> None:
    """The anchor's HMAC holds (over the legacy boundary too, or over one the head file records: then
    :func:`_check_legacy` names the move), and an anchor moved is named by a prune record."""
    moved = anchor.through_id != 0 or anchor.prev != ZERO
    named = moved and _prune_names(conn, anchor.through_id)
    if anchor.mac is None:  # never sealed: not moved, or by a prune from before the keyed chain (0012)
        if moved and not (anchor.through_id <= anchor.legacy_through and named):
            walk.add("anchor_moved", anchor.through_id, f"{KINDS['anchor_moved']}: it carries no HMAC")
        return
    if key is not None and not _anchor_holds(key, anchor, walk.recorded):
        walk.add(
            "anchor_moved",
            anchor.through_id,
            f"{KINDS['anchor_moved']}: its HMAC (over record {anchor.through_id}, its hash and the legacy "
            f"boundary {anchor.legacy_through}) does not hold",
        )
    elif moved and not named:
        walk.add(
            "anchor_moved",
            anchor.through_id,
            f"{KINDS['anchor_moved']}: no prune record names record {anchor.through_id}",
        )


def _prune_names(conn: psycopg.Connection[Any], through_id: int) -> bool:
    query = "SELECT 1 FROM gis_ioc.audit WHERE action = 'audit.prune' AND detail->>'through_id' = %s"
    return conn.execute(query, (str(through_id),)).fetchone() is not None


def _anchor_holds(key: bytes, anchor: _Anchor, recorded: list[int]) -> bool:
    assert anchor.mac is not None
    if not anchor.mac.startswith("v2:"):  # written by a prune before the HMAC covered the legacy boundary
        message = json.dumps(["anchor", anchor.through_id, anchor.prev], separators=(",", ":"))
        return _same(anchor.mac, hmac.new(key, message.encode(), hashlib.sha256).hexdigest())
    return any(
        _same(anchor.mac, _anchor_mac(key, anchor.through_id, anchor.prev, boundary))
        for boundary in {anchor.legacy_through, *recorded}
    )


def _check_legacy(anchor: _Anchor, walk: _Walk) -> None:
    """The legacy boundary is the one the head file recorded when the chain became keyed."""
    for boundary in sorted(set(walk.recorded) - {anchor.legacy_through}):
        walk.add(
            "legacy_moved",
            min(boundary, anchor.legacy_through) + 1,
            f"{KINDS['legacy_moved']}: it is {anchor.legacy_through}, the head file recorded {boundary}",
        )


def _head_entries(path: Path, walk: _Walk, legacy_through: int) -> Iterator[_HeadEntry]:
    """The head file's entries after its last restore marker (which is yielded first), in id order; the
    legacy boundaries it records go to ``walk.recorded``. A keyed record at or below ``legacy_through``
    is a finding."""
    if not path.exists():
        return
    start = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            if line.startswith(b"restore "):
                start = number
    previous = -1
    with path.open("rb") as lines:
        for number, raw in enumerate(lines):
            if number < start:
                continue
            parts = raw.decode("ascii", "replace").split()
            if parts[:1] == ["legacy"] and len(parts) == 2 and parts[1].isdigit():
                walk.recorded.append(int(parts[1]))
                continue
            try:
                entry = (
                    _HeadEntry(int(parts[1]), parts[2], None)
                    if parts[0] == "restore"
                    else _HeadEntry(int(parts[0]), parts[1], parts[2])
                )
            except (IndexError, ValueError):
                walk.add("head_file", None, f"line {number + 1} of {path} is damaged")
                continue
            if entry.id <= previous and entry.xid is not None:
                walk.add("head_file", entry.id, f"line {number + 1} of {path} is out of order")
                continue
            previous = entry.id
            if entry.xid is not None and entry.id <= legacy_through:  # named once
                keyed = f"record {entry.id}, written with the key (the head file names it), is below it"
                walk.add("legacy_moved", entry.id, f"{KINDS['legacy_moved']}: {keyed}")
                legacy_through = -1
            yield entry


def _close_run(walk: _Walk) -> None:
    """Name a run of records whose MAC fails: altered in place, or a chain recomputed without the key."""
    if not walk.bad_run:
        return
    ids = [i for i, _ in walk.bad_run]
    rewritten = any(why == "rewritten" for _, why in walk.bad_run)
    kept = all(why == "kept" for _, why in walk.bad_run)
    span = f"record {ids[0]}" if len(ids) == 1 else f"records {ids[0]} to {ids[-1]}"
    if rewritten or (len(ids) > 1 and not kept):
        walk.add("recomputed", ids[0], f"{span}: {KINDS['recomputed']}")
    elif kept:
        walk.add(
            "altered", ids[0], f"{span}: {KINDS['altered']} (its HMAC, as the head file has it, no longer matches)"
        )
    else:
        walk.add("altered", ids[0], f"{span}: {KINDS['altered']}, or written without the key (its HMAC does not match)")
    walk.bad_run.clear()


def _walk(
    conn: psycopg.Connection[Any], key: bytes | None, anchor: _Anchor, head: Iterator[_HeadEntry], walk: _Walk
) -> None:
    """Recompute the chain from the anchor, beside the head file's entries (both in id order)."""
    expected, previous_id = anchor.prev, None
    entry = next(head, None)
    with conn.transaction(), conn.cursor(name="audit_verify", row_factory=namedtuple_row) as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT id, prev_hash, hash, at, actor, address, action, target, result, detail::text AS detail "
            "FROM gis_ioc.audit ORDER BY id"
        )
        row: Any
        for row in cur:
            while entry is not None and entry.id < row.id:
                walk.missing.append(entry)
                entry = next(head, None)
            noted = entry if entry is not None and entry.id == row.id else None
            if noted is not None:
                entry = next(head, None)
            walk.records += 1
            walk.first_id = walk.first_id or row.id
            walk.last_id = row.id
            if row.prev_hash != expected:
                _close_run(walk)
                after = "the anchor" if previous_id is None else f"record {previous_id}"
                kind = "oldest_removed" if previous_id is None else "removed"
                extra = "" if previous_id is None else " (or a record was inserted)"
                walk.add(kind, row.id, f"record {row.id} does not follow {after}: {KINDS[kind]}{extra}")
            legacy = row.id <= anchor.legacy_through and (noted is None or noted.xid is None)
            _check_mac(None if legacy else key, row, noted.mac if noted else None, walk, legacy)
            expected, previous_id = row.hash, row.id
    _close_run(walk)
    while entry is not None:
        walk.missing.append(entry)
        entry = next(head, None)


def _check_mac(key: bytes | None, row: Any, noted: str | None, walk: _Walk, legacy: bool) -> None:
    """A record from before the key has its SHA-256 link recomputed here; the others their HMAC."""
    fields = (row.actor, row.address, row.action, row.target, row.result)
    if legacy:
        valid = _same(row.hash, _legacy_digest(row.prev_hash, row.at, fields, row.detail))
    elif key is None:
        return
    else:
        valid = _same(row.hash, _mac(key, row.id, row.prev_hash, row.at, fields, row.detail))
    if noted is not None and noted != row.hash:
        walk.bad_run.append((row.id, "rewritten"))
    elif not valid:
        walk.bad_run.append((row.id, "kept" if noted is not None else "unknown"))
    else:
        _close_run(walk)


def _committed(conn: psycopg.Connection[Any], entries: list[_HeadEntry]) -> list[_HeadEntry]:
    """Those entries whose transaction committed (or is unknown to this database) and whose record is
    still not in the table (asked again now, for records committed while the chain was walked)."""
    found = [e for e in entries if e.xid is None]
    ask = [e for e in entries if e.xid is not None]
    for start in range(0, len(ask), 1000):
        batch = ask[start : start + 1000]
        try:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT pg_xact_status(x::xid8) FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n",
                    ([e.xid for e in batch],),
                ).fetchall()
            statuses = [r[0] for r in rows]
        except psycopg.Error:  # an id this database never had (a head file of another database): one by one
            statuses = [_status(conn, e.xid) for e in batch]
        found += [e for e, status in zip(batch, statuses, strict=True) if status in (None, "committed")]
    if not found:
        return found
    present = {
        r[0]
        for r in conn.execute("SELECT id FROM gis_ioc.audit WHERE id = ANY(%s)", ([e.id for e in found],)).fetchall()
    }
    return [e for e in found if e.id not in present]


def _status(conn: psycopg.Connection[Any], xid: str | None) -> str | None:
    try:
        with conn.transaction():
            row = conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def _name_missing(conn: psycopg.Connection[Any], anchor: _Anchor, walk: _Walk) -> None:
    candidates = [e for e in walk.missing if e.id > anchor.through_id][:100_000]
    gone = _committed(conn, candidates)
    groups: dict[str, list[int]] = {}
    for entry in gone:
        if walk.last_id is None or entry.id > walk.last_id:
            kind = "newest_removed"
        elif walk.first_id is not None and entry.id < walk.first_id:
            kind = "oldest_removed"
        else:
            kind = "removed"
        groups.setdefault(kind, []).append(entry.id)
    for kind, ids in groups.items():
        span = f"record {ids[0]}" if len(ids) == 1 else f"{len(ids)} records ({ids[0]} to {ids[-1]})"
        ends = f"; the table ends at record {walk.last_id}" if kind == "newest_removed" else ""
        walk.add(kind, ids[0], f"the head file names {span}, committed, that the table lacks{ends}: {KINDS[kind]}")


def verify(conn: psycopg.Connection[Any], files: KeyFiles | None = None) -> Verification:
    """Check the chain from its anchor, its HMACs, the anchor and the head file; every tamper found is named
    (:data:`KINDS`). Never writes, and never makes a key."""
    files = files or keys()
    walk = _Walk()
    anchor = _anchor(conn)
    try:
        key: bytes | None = files.audit_key(create=False)
    except AuditError as exc:
        key = None
        if conn.execute("SELECT 1 FROM gis_ioc.audit WHERE id > %s LIMIT 1", (anchor.legacy_through,)).fetchone():
            walk.add("key_missing", None, f"{KINDS['key_missing']}: {exc}; HMACs were not checked")
    head_path = files.head_file(conn.info.dbname)
    _walk(conn, key, anchor, _head_entries(head_path, walk, anchor.legacy_through), walk)
    _check_legacy(anchor, walk)
    _check_anchor(conn, key, anchor, walk)
    if walk.last_id is not None and walk.last_id > anchor.legacy_through and not head_path.exists():
        walk.add("head_file", None, f"{KINDS['head_file']}: {head_path} does not exist")
    _name_missing(conn, anchor, walk)
    walk.findings.sort(key=lambda f: (f.record is None, f.record or 0))
    first = walk.findings[0] if walk.findings else None
    return Verification(
        ok=not walk.findings,
        records=walk.records,
        first_broken=first.record if first else None,
        problem=first.message if first else None,
        findings=walk.findings,
    )


# -- retention -------------------------------------------------------------------------------------------


def prune(
    conn: psycopg.Connection[Any],
    *,
    older_than_days: int,
    actor: str,
    as_of: datetime | None = None,
    files: KeyFiles | None = None,
) -> int:
    """Remove records older than the retention period (never the newest) as the database's owner; the
    anchor moves to the last removed record, with the key's HMAC, and the prune is recorded in the same
    transaction. ``as_of`` replaces the database's clock (for tests)."""
    if older_than_days < 1:
        raise InvalidInput("retention must be at least one day")
    files = files or keys()
    key = files.audit_key()
    with conn.transaction():
        conn.execute(CHAIN_LOCK)
        cutoff = conn.execute("SELECT coalesce(%s, now()) - %s", (as_of, timedelta(days=older_than_days))).fetchone()
        assert cutoff is not None
        last = conn.execute(
            "SELECT id, hash FROM gis_ioc.audit WHERE at < %s AND id < (SELECT max(id) FROM gis_ioc.audit) "
            "ORDER BY id DESC LIMIT 1",
            (cutoff[0],),
        ).fetchone()
        if last is None:
            return 0
        conn.execute("SET LOCAL gis_ioc.audit_prune = 'on'")
        deleted = conn.execute("DELETE FROM gis_ioc.audit WHERE id <= %s", (last[0],)).rowcount
        conn.execute("SET LOCAL gis_ioc.audit_prune = 'off'")
        legacy = _anchor(conn).legacy_through
        conn.execute(
            "UPDATE gis_ioc.audit_anchor SET prev_hash = %s, through_id = %s, mac = %s, pruned_to = %s, "
            "updated_at = now()",
            (last[1], last[0], _anchor_mac(key, int(last[0]), last[1], legacy), cutoff[0]),
        )
        detail = {"removed": deleted, "older_than_days": older_than_days, "through_id": last[0], "anchor": last[1]}
        _append(conn, files, actor=actor, action="audit.prune", result="ok", target=None, address=None, detail=detail)
    return deleted
