"""The keyed audit chain against its own database's owner: each kind of tamper, done as the superuser
behind the trigger's back, is named by `gis-ioc audit verify`; a legitimate prune still verifies; two
writers never fork the chain. Each test has a database of its own (the suite's is left intact)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from gis_ioc.auth import audit
from gis_ioc.catalog import Catalog
from gis_ioc.cli import main
from gis_ioc.database import migrations
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.settings import Settings
from tests.conftest import scalar


@pytest.fixture(scope="session", autouse=True)
def _keys(settings: Settings) -> None:
    audit.configure(settings.home)  # as create_app and the console do


@pytest.fixture
def chain(empty_db: Settings, catalog: Catalog) -> Iterator[tuple[Settings, psycopg.Connection[Any]]]:
    """A database of its own, migrated, with twelve audit records (written as the application writes them)."""
    with connect(empty_db, autocommit=True) as conn:
        upgrade(conn, catalog)
        for i in range(12):
            audit.record(conn, actor=f"user.{i % 3}", action="export", target=f"layer {i}", detail={"rows": i})
        yield empty_db, conn


def _ids(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM gis_ioc.audit ORDER BY id").fetchall()]


def _recompute_with_sha256(conn: psycopg.Connection[Any]) -> None:
    """What an owner without the key can do: rewrite every link with a plain SHA-256 chain."""
    previous = conn.execute("SELECT prev_hash FROM gis_ioc.audit_anchor").fetchone()[0]  # type: ignore[index]
    rows = conn.execute("SELECT id, at, actor, action, target, result, detail::text FROM gis_ioc.audit ORDER BY id")
    for row in rows.fetchall():
        digest = hashlib.sha256("|".join(map(str, (previous, *row))).encode()).hexdigest()
        conn.execute("UPDATE gis_ioc.audit SET prev_hash = %s, hash = %s WHERE id = %s", (previous, digest, row[0]))
        previous = digest


def _tamper(conn: psycopg.Connection[Any], kind: str) -> None:
    ids = _ids(conn)
    if kind == "altered":
        conn.execute("UPDATE gis_ioc.audit SET detail = '{\"rows\": 0}' WHERE id = %s", (ids[5],))
    elif kind == "removed":
        conn.execute("DELETE FROM gis_ioc.audit WHERE id = %s", (ids[5],))
    elif kind == "newest_removed":
        conn.execute("DELETE FROM gis_ioc.audit WHERE id >= %s", (ids[-2],))
    elif kind == "oldest_removed":
        conn.execute("DELETE FROM gis_ioc.audit WHERE id <= %s", (ids[1],))
    elif kind == "anchor_moved":  # the oldest removed, and the anchor moved to where the rest follows
        last = conn.execute("SELECT id, hash FROM gis_ioc.audit WHERE id = %s", (ids[1],)).fetchone()
        assert last is not None
        conn.execute("DELETE FROM gis_ioc.audit WHERE id <= %s", (ids[1],))
        conn.execute("UPDATE gis_ioc.audit_anchor SET prev_hash = %s, through_id = %s", (last[1], last[0]))
    elif kind == "recomputed":
        _recompute_with_sha256(conn)


TAMPERS = ["altered", "removed", "newest_removed", "oldest_removed", "anchor_moved", "recomputed"]


@pytest.mark.parametrize("kind", TAMPERS)
def test_each_tamper_is_named(chain: tuple[Settings, psycopg.Connection[Any]], kind: str) -> None:
    _, conn = chain
    clean = audit.verify(conn)
    assert clean.ok and clean.records == 12, clean.findings
    with conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE gis_ioc.audit DISABLE TRIGGER USER")  # as the owner can
        _tamper(conn, kind)
        result = audit.verify(conn)
        assert not result.ok
        kinds = {f.kind for f in result.findings}
        assert kind in kinds, result.findings
        assert any(audit.KINDS[kind] in f.message for f in result.findings if f.kind == kind)
        if kind == "altered":  # one record, named precisely, and nothing else
            assert kinds == {"altered"} and result.first_broken == _ids(conn)[5]
    assert audit.verify(conn).ok


def test_the_console_names_a_committed_tamper(chain: tuple[Settings, psycopg.Connection[Any]]) -> None:
    settings, conn = chain
    runner = CliRunner()
    intact = runner.invoke(main, ["audit", "verify"], obj={"settings": settings})
    assert intact.exit_code == 0 and "audit trail intact: 12 records" in intact.output
    newest = _ids(conn)[-1]
    with conn.transaction():
        conn.execute("ALTER TABLE gis_ioc.audit DISABLE TRIGGER USER")
        conn.execute("DELETE FROM gis_ioc.audit WHERE id = %s", (newest,))
        conn.execute("ALTER TABLE gis_ioc.audit ENABLE TRIGGER USER")
    broken = runner.invoke(main, ["audit", "verify"], obj={"settings": settings})
    assert broken.exit_code == 2, broken.output
    assert "newest_removed" in broken.output and str(newest) in broken.output


def test_a_rolled_back_record_is_not_a_removal(chain: tuple[Settings, psycopg.Connection[Any]]) -> None:
    _, conn = chain
    with conn.transaction(force_rollback=True):
        audit.record(conn, actor="user.x", action="load", target="roads")
    with conn.transaction(), conn.transaction():  # rolled back in a savepoint of a committed transaction
        conn.execute("SAVEPOINT inner_work")
        audit.record(conn, actor="user.x", action="load", target="roads")
        conn.execute("ROLLBACK TO SAVEPOINT inner_work")
        audit.record(conn, actor="user.x", action="load", target="roads", result="failed")
    result = audit.verify(conn)
    assert result.ok and result.records == 13, result.findings


def test_a_legitimate_prune_verifies_and_a_forged_one_does_not(chain: tuple[Settings, psycopg.Connection[Any]]) -> None:
    _, conn = chain
    later = scalar(conn, "SELECT now()") + timedelta(days=400)
    removed = audit.prune(conn, older_than_days=365, actor="cli:test", as_of=later)
    assert removed == 11  # all but the newest; the prune's own record follows it
    anchor = conn.execute("SELECT through_id, mac IS NOT NULL FROM gis_ioc.audit_anchor").fetchone()
    last = audit.query(conn, limit=1)[0]
    assert last["action"] == "audit.prune" and last["detail"]["through_id"] == anchor[0] and anchor[1]
    result = audit.verify(conn)
    assert result.ok and result.records == 2, result.findings
    with conn.transaction(force_rollback=True):  # the owner deletes one more and moves the anchor himself
        conn.execute("ALTER TABLE gis_ioc.audit DISABLE TRIGGER USER")
        first = conn.execute("SELECT id, hash FROM gis_ioc.audit ORDER BY id LIMIT 1").fetchone()
        conn.execute("DELETE FROM gis_ioc.audit WHERE id = %s", (first[0],))
        conn.execute("UPDATE gis_ioc.audit_anchor SET prev_hash = %s, through_id = %s", (first[1], first[0]))
        assert "anchor_moved" in {f.kind for f in audit.verify(conn).findings}
    # retention is the owner's: a role that merely sets the prune flag is refused by the trigger
    with conn.transaction(force_rollback=True):
        conn.execute("CREATE ROLE audit_intruder")
        conn.execute("GRANT USAGE ON SCHEMA gis_ioc TO audit_intruder")
        conn.execute("GRANT SELECT, DELETE ON gis_ioc.audit TO audit_intruder")
        conn.execute("SET LOCAL ROLE audit_intruder")
        conn.execute("SET LOCAL gis_ioc.audit_prune = 'on'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM gis_ioc.audit")


def test_two_writers_do_not_fork_the_chain(chain: tuple[Settings, psycopg.Connection[Any]]) -> None:
    settings, conn = chain
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with connect(settings) as own:  # not autocommit: each record in a transaction of several
                for i in range(15):
                    with own.transaction():
                        audit.record(own, actor=f"writer.{n}", action="export", target=f"layer {i}")
                        audit.record(own, actor=f"writer.{n}", action="export", target=f"layer {i}", result="done")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = audit.verify(conn)
    assert result.ok and result.records == 12 + 4 * 15 * 2, result.findings
    assert scalar(conn, "SELECT count(DISTINCT prev_hash) FROM gis_ioc.audit") == result.records


def test_keys_and_head_file_are_outside_the_database(chain: tuple[Settings, psycopg.Connection[Any]]) -> None:
    settings, conn = chain
    key_file = settings.home / "secrets" / "audit_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    head = settings.home / "audit" / f"head-{settings.db_name}.log"
    lines = head.read_text().splitlines()
    newest = conn.execute("SELECT id, hash FROM gis_ioc.audit ORDER BY id DESC LIMIT 1").fetchone()
    assert lines[-1].split()[:2] == [str(newest[0]), newest[1]]
    dumped = " ".join(str(v) for r in conn.execute("SELECT * FROM gis_ioc.audit").fetchall() for v in r)
    assert key not in dumped
    # the server's role writes records too, and cannot update or delete them
    with connect(settings, server=True, autocommit=True) as server:
        audit.record(server, actor="server", action="export", target="layer x")
        for statement in ("UPDATE gis_ioc.audit SET result = 'x'", "DELETE FROM gis_ioc.audit"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                server.execute(statement)
    assert audit.verify(conn).ok


# -- the records from before the key, and their boundary (external security test, finding 1) ------------


def _anchor(conn: psycopg.Connection[Any]) -> tuple[int, str | None]:
    row = conn.execute("SELECT legacy_through, mac FROM gis_ioc.audit_anchor").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def _kinds(conn: psycopg.Connection[Any]) -> set[str]:
    return {f.kind for f in audit.verify(conn).findings}


def _owner_rewrites(conn: psycopg.Connection[Any], record: int, legacy_through: int = 1_000_000_000) -> None:
    """The external test's reproduction, as the database's owner in one transaction: (a) move the legacy
    boundary above every record, (b) make gis_ioc.audit_digest() return each row's stored hash (looked up in
    a copy keyed on prev_hash), (c) behind the trigger's back, change a record's actor, address and result."""
    conn.execute("UPDATE gis_ioc.audit_anchor SET legacy_through = %s", (legacy_through,))
    conn.execute("CREATE TABLE public.audit_copy AS SELECT prev_hash, hash FROM gis_ioc.audit")
    conn.execute(
        "CREATE OR REPLACE FUNCTION gis_ioc.audit_digest(prev_hash text, at timestamptz, actor text, address text, "
        "action text, target text, result text, detail jsonb) RETURNS text LANGUAGE sql AS "
        "$$ SELECT c.hash FROM public.audit_copy c WHERE c.prev_hash = $1 $$"
    )
    conn.execute("ALTER TABLE gis_ioc.audit DISABLE TRIGGER audit_no_update")
    conn.execute(
        "UPDATE gis_ioc.audit SET actor = 'someone.else', address = '10.9.9.9', result = 'ok' WHERE id = %s", (record,)
    )
    conn.execute("ALTER TABLE gis_ioc.audit ENABLE TRIGGER audit_no_update")


def test_a_fresh_database_has_no_legacy_records_and_its_boundary_is_pinned(
    chain: tuple[Settings, psycopg.Connection[Any]],
) -> None:
    settings, conn = chain
    legacy_through, mac = _anchor(conn)
    assert legacy_through == 0 and mac is not None and mac.startswith("v2:")  # sealed by the owner's first record
    head = (settings.home / "audit" / f"head-{settings.db_name}.log").read_text().splitlines()
    assert head[0] == "legacy 0" and head.count("legacy 0") == 1
    assert scalar(conn, "SELECT to_regproc('gis_ioc.audit_digest') IS NULL")  # migration 0015
    for _ in range(90 - _ids(conn)[-1]):
        audit.record(conn, actor="user.9", action="export", target="layer 9")
    assert 85 in _ids(conn) and audit.verify(conn).ok
    with conn.transaction():  # committed, as in the report
        _owner_rewrites(conn, 85)
    result = audit.verify(conn)
    kinds = {f.kind for f in result.findings}
    assert not result.ok and {"legacy_moved", "altered"} <= kinds, result.findings
    assert [f.record for f in result.findings if f.kind == "altered"] == [85]
    assert any("the head file recorded 0" in f.message for f in result.findings if f.kind == "legacy_moved")
    broken = CliRunner().invoke(main, ["audit", "verify"], obj={"settings": settings})
    assert broken.exit_code == 2, broken.output
    said = " ".join(broken.output.split())
    assert "legacy_moved" in said and "altered: record 85" in said


@pytest.mark.parametrize("mac", ["kept", "removed"])
def test_moving_the_boundary_alone_is_named(chain: tuple[Settings, psycopg.Connection[Any]], mac: str) -> None:
    _, conn = chain
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE gis_ioc.audit_anchor SET legacy_through = %s", (_ids(conn)[-1],))
        if mac == "removed":  # the owner also drops the anchor's HMAC: the head file still knows
            conn.execute("UPDATE gis_ioc.audit_anchor SET mac = NULL")
        assert "legacy_moved" in _kinds(conn)
    assert audit.verify(conn).ok


@pytest.fixture
def upgraded(empty_db: Settings, catalog: Catalog) -> Iterator[tuple[Settings, psycopg.Connection[Any]]]:
    """A database that had ten audit records before migration 0012 (written by 0010's gis_ioc.audit_append),
    upgraded by this version, then five records written with the key."""
    with connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA gis_ioc")
        conn.execute(
            "CREATE TABLE gis_ioc.schema_migrations (version text PRIMARY KEY, name text NOT NULL, "
            "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in [m for m in migrations.available() if m.version < "0012"]:
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO gis_ioc.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        for i in range(10):
            conn.execute(
                "SELECT gis_ioc.audit_append(%s, %s, 'export', %s, 'ok', %s::jsonb)",
                (f"old.{i % 2}", "10.0.0.1" if i % 3 else None, f"layer {i}" if i % 4 else None, f'{{"rows": {i}}}'),
            )
        upgrade(conn, catalog)
        for i in range(5):
            audit.record(conn, actor=f"new.{i}", action="export", target=f"layer {i}")
        yield empty_db, conn


def test_records_from_before_the_key_are_checked_here(upgraded: tuple[Settings, psycopg.Connection[Any]]) -> None:
    settings, conn = upgraded
    assert _anchor(conn)[0] == 10 and _anchor(conn)[1].startswith("v2:")  # type: ignore[union-attr]
    head = settings.home / "audit" / f"head-{settings.db_name}.log"
    assert head.read_text().splitlines()[0] == "legacy 10"
    result = audit.verify(conn)
    assert result.ok and result.records == 15, result.findings
    with conn.transaction(force_rollback=True):  # a record from before the key, altered: no database function vouches
        conn.execute(
            "CREATE FUNCTION gis_ioc.audit_digest(prev_hash text, at timestamptz, actor text, address text, "
            "action text, target text, result text, detail jsonb) RETURNS text LANGUAGE sql AS "
            "$$ SELECT hash FROM gis_ioc.audit WHERE prev_hash = $1 $$"
        )
        conn.execute("ALTER TABLE gis_ioc.audit DISABLE TRIGGER USER")
        conn.execute("UPDATE gis_ioc.audit SET actor = 'someone.else' WHERE id = 4")
        result = audit.verify(conn)
        assert {f.kind for f in result.findings} == {"altered"} and result.first_broken == 4, result.findings
    with conn.transaction(force_rollback=True):  # the reproduction, on a database with legacy records
        _owner_rewrites(conn, 13)
        result = audit.verify(conn)
        assert {"legacy_moved", "altered"} <= {f.kind for f in result.findings}, result.findings
        assert 13 in {f.record for f in result.findings if f.kind == "altered"}
    with conn.transaction(force_rollback=True):  # lowered: keyed and unkeyed records are told apart by the key
        conn.execute("UPDATE gis_ioc.audit_anchor SET legacy_through = 5")
        assert "legacy_moved" in _kinds(conn)
    later = scalar(conn, "SELECT now()") + timedelta(days=400)  # a prune across the boundary still verifies
    assert audit.prune(conn, older_than_days=365, actor="cli:test", as_of=later) == 14
    legacy_through, mac = _anchor(conn)
    assert legacy_through == 10 and mac is not None and mac.startswith("v2:")
    assert audit.verify(conn).ok


@pytest.mark.parametrize("sealed", ["never", "without the boundary"])
def test_a_trail_kept_by_the_previous_version_verifies_and_is_sealed(
    upgraded: tuple[Settings, psycopg.Connection[Any]], sealed: str
) -> None:
    """Written before the boundary was pinned: no `legacy` line in the head file, and an anchor without an
    HMAC or with the one the previous version's prune wrote (over where the chain starts only)."""
    settings, conn = upgraded
    head = settings.home / "audit" / f"head-{settings.db_name}.log"
    head.write_text("".join(line for line in head.read_text().splitlines(True) if not line.startswith("legacy")))
    message = json.dumps(["anchor", 0, audit.ZERO], separators=(",", ":")).encode()
    old = hmac.new(audit.keys().audit_key(), message, "sha256").hexdigest() if sealed != "never" else None
    conn.execute("UPDATE gis_ioc.audit_anchor SET mac = %s", (old,))
    audit._SEALED.discard(head)  # as in a process started after the upgrade
    assert audit.verify(conn).ok
    with conn.transaction(force_rollback=True):  # raised above records the head file names as keyed
        conn.execute("UPDATE gis_ioc.audit_anchor SET legacy_through = 1000000000")
        assert "legacy_moved" in _kinds(conn)
    audit.record(conn, actor="new.5", action="export", target="layer 5")  # the owner's next record seals it
    assert _anchor(conn)[1].startswith("v2:") and "legacy 10" in head.read_text().splitlines()  # type: ignore[union-attr]
    assert audit.verify(conn).ok
