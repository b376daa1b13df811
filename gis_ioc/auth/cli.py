"""``gis-ioc account …``, ``gis-ioc audit …``, ``gis-ioc backup`` and ``gis-ioc restore``.

Account commands act for the operator at the server's console (recorded as ``cli:<system user>``) and
refuse to act without the written request: ``--request 123/VP-TTHN --request-date 2026-11-20
--agency "Văn phòng UBND tỉnh"``.

The keys kept outside the database (``GIS_IOC_HOME/secrets/audit_key`` and ``totp_key``) and the audit's
head file (``GIS_IOC_HOME/audit/``) are those of ``GIS_IOC_HOME``; a backup holds neither: keep a copy of
``secrets/`` apart, and copy it into a new ``GIS_IOC_HOME`` before restoring there.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gis_ioc.auth import accounts, audit, sessions
from gis_ioc.auth.accounts import RequestRef
from gis_ioc.clikit import console, settings_of
from gis_ioc.database import backup as backups
from gis_ioc.database.connection import connect
from gis_ioc.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    """The invocation's settings, with the audit's keys and head file taken from its GIS_IOC_HOME."""
    settings = settings_of(ctx)
    audit.configure(settings.home)
    return settings


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _request_options[C: Callable[..., Any]](func: C) -> C:
    func = click.option("--agency", required=True, help="The requesting agency, e.g. 'Văn phòng UBND tỉnh'.")(func)
    func = click.option("--request-date", required=True, help="Date of the written request (YYYY-MM-DD).")(func)
    func = click.option(
        "--request", "request_number", required=True, help="Number of the written request, e.g. 123/VP-TTHN."
    )(func)
    return func


def _ref(request_number: str, request_date: str, agency: str) -> RequestRef:
    return RequestRef.parse(request_number, request_date, agency)


def _show(account: accounts.Account) -> None:
    console.print(
        f"{account.username}: {account.full_name} ({account.agency}); roles {', '.join(account.roles)}"
        + (f"; communes {', '.join(account.communes)}" if account.communes else "")
        + (f"; layers {', '.join(account.grants)}" if account.grants else "")
        + f"; {account.state}"
    )


@click.group()
def account() -> None:
    """Accounts, on written request only (create, lock, unlock, delete, grant, revoke, key, list)."""


@account.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name.")
@click.option("--unit", "unit", required=True, help="The agency the person works for.")
@click.option("--role", "roles", multiple=True, required=True, help="A role (repeat for several).")
@click.option("--commune", "communes", multiple=True, help="A commune officer's commune code (repeat).")
@click.option("--layer", "layers", multiple=True, help="A layer granted beyond the roles (repeat).")
@click.option("--email", help="E-mail address.")
@click.option("--no-password", "api_only", is_flag=True, help="A client system's account: no password, API keys only.")
@_request_options
@click.pass_context
def account_create(
    ctx: click.Context,
    username: str,
    full_name: str,
    unit: str,
    roles: tuple[str, ...],
    communes: tuple[str, ...],
    layers: tuple[str, ...],
    email: str | None,
    api_only: bool,
    request_number: str,
    request_date: str,
    agency: str,
) -> None:
    """Create USERNAME; prints its one-time password once (it must be changed at first login, and before
    the account's API keys work), unless --no-password."""
    ref = _ref(request_number, request_date, agency)
    with connect(_settings(ctx), autocommit=True) as conn:
        created, password = accounts.create_account(
            conn,
            username=username,
            full_name=full_name,
            agency=unit,
            roles=list(roles),
            communes=list(communes),
            grants=list(layers),
            email=email,
            ref=ref,
            actor=_actor(),
            with_password=not api_only,
        )
    _show(created)
    if api_only:
        click.echo("no password: the account uses API keys only (gis-ioc account key)")
    else:
        click.echo(f"one-time password (shown once, to be changed at first login): {password}")


def _simple(name: str, action: Callable[..., accounts.Account], doc: str) -> None:
    @account.command(name, help=doc)
    @click.argument("username")
    @_request_options
    @click.pass_context
    def command(ctx: click.Context, username: str, request_number: str, request_date: str, agency: str) -> None:
        ref = _ref(request_number, request_date, agency)
        with connect(_settings(ctx), autocommit=True) as conn:
            _show(action(conn, username, ref, _actor()))


_simple("lock", accounts.lock, "Lock USERNAME: no logins, keys refused, until unlocked.")
_simple("unlock", accounts.unlock, "Unlock USERNAME (also after failed logins or 45 idle days).")
_simple("delete", accounts.delete, "Delete USERNAME: no access, personal fields cleared; its history stays.")


def _rights(name: str, action: Callable[..., accounts.Account], doc: str) -> None:
    @account.command(name, help=doc)
    @click.argument("username")
    @click.option("--role", "roles", multiple=True, help="A role (repeat).")
    @click.option("--layer", "layers", multiple=True, help="A layer (repeat).")
    @click.option("--commune", "communes", multiple=True, help="A commune code (repeat).")
    @_request_options
    @click.pass_context
    def command(
        ctx: click.Context,
        username: str,
        roles: tuple[str, ...],
        layers: tuple[str, ...],
        communes: tuple[str, ...],
        request_number: str,
        request_date: str,
        agency: str,
    ) -> None:
        if not (roles or layers or communes):
            raise click.UsageError("give at least one --role, --layer or --commune")
        ref = _ref(request_number, request_date, agency)
        with connect(_settings(ctx), autocommit=True) as conn:
            _show(
                action(conn, username, ref, _actor(), roles=list(roles), layers=list(layers), communes=list(communes))
            )


_rights("grant", accounts.grant, "Give USERNAME roles, layers or communes.")
_rights("revoke", accounts.revoke, "Take roles, layers or communes from USERNAME.")


@account.command("key")
@click.argument("username")
@click.option("--label", default="", help="What the key is for (e.g. the client system).")
@click.option("--days", default=365, show_default=True, help="Days the key is valid.")
@_request_options
@click.pass_context
def account_key(
    ctx: click.Context, username: str, label: str, days: int, request_number: str, request_date: str, agency: str
) -> None:
    """Issue an API key for USERNAME (shown once; send it in the X-API-Key header)."""
    ref = _ref(request_number, request_date, agency)
    with connect(_settings(ctx), autocommit=True) as conn:
        key = accounts.issue_key(conn, username, ref, _actor(), label=label, valid_days=days)
    click.echo(key)


@account.command("encrypt-totp")
@click.pass_context
def account_encrypt_totp(ctx: click.Context) -> None:
    """Encrypt the second-factor secrets stored in clear before migration 0012 (each is also encrypted at
    its account's next login)."""
    with connect(_settings(ctx), autocommit=True) as conn:
        count = sessions.encrypt_clear_totp(conn)
    console.print(f"encrypted {count} second-factor secret(s) with GIS_IOC_HOME/secrets/totp_key")


@account.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted accounts.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def account_list(ctx: click.Context, include_deleted: bool, as_json: bool) -> None:
    """The accounts with their roles, state and last activity."""
    with connect(_settings(ctx), autocommit=True) as conn:
        found = accounts.list_accounts(conn, include_deleted=include_deleted)
    if as_json:
        click.echo(json.dumps([a.__dict__ for a in found], ensure_ascii=False, indent=2))
        return
    table = Table("user", "name", "agency", "roles", "state", "2FA", "last seen")
    for a in found:
        table.add_row(
            a.username,
            a.full_name,
            a.agency,
            ", ".join(a.roles),
            a.state,
            "yes" if a.second_factor else "no",
            a.last_seen_at or "never",
        )
    Console().print(table)


@click.group(invoke_without_command=True)
@click.option("--actor", help="Only this user.")
@click.option("--action", help="Only this action (a trailing * matches a prefix, e.g. account.*).")
@click.option("--since", type=click.DateTime(), help="From this time (UTC).")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_group(
    ctx: click.Context, actor: str | None, action: str | None, since: datetime | None, limit: int, as_json: bool
) -> None:
    """The audit trail, newest first; `gis-ioc audit verify` checks its hash chain."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(_settings(ctx), autocommit=True) as conn:
        found = audit.query(
            conn, actor=actor, action=action, since=since.replace(tzinfo=UTC) if since else None, limit=limit
        )
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=str))
        return
    table = Table("id", "at (UTC)", "who", "from", "action", "target", "result", "detail")
    for r in found:
        table.add_row(
            str(r["id"]),
            r["at"][:19],
            r["actor"],
            r["address"] or "",
            r["action"],
            r["target"] or "",
            r["result"],
            json.dumps(r["detail"], ensure_ascii=False)[:60],
        )
    Console().print(table)


@audit_group.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the keyed chain, its anchor and the head file; name every tamper found and exit 2.

    Kinds: altered, recomputed (without the key), removed (from the middle), newest_removed (the head
    file is ahead of the table), oldest_removed and anchor_moved (outside a recorded prune), legacy_moved
    (the boundary of the records from before the key, recorded in the head file and the anchor's HMAC),
    head_file, key_missing. Records from before the key have their SHA-256 links recomputed here."""
    with connect(_settings(ctx), autocommit=True) as conn:
        result = audit.verify(conn)
    if not result.ok:
        console.print(f"[bold red]audit trail broken[/] ({result.records:,} records read):")
        for finding in result.findings:
            console.print(f"  [red]{finding.kind}[/]: {finding.message}")
        raise SystemExit(2)
    console.print(f"audit trail intact: {result.records:,} records, keyed chain, anchor and head file agree")


@audit_group.command("prune")
@click.option("--days", type=int, help="Keep this many days (default GIS_IOC_AUDIT_RETENTION_DAYS).")
@click.pass_context
def audit_prune(ctx: click.Context, days: int | None) -> None:
    """Remove records older than the retention period (as the database's owner); the anchor records
    where the chain now starts, with the key's HMAC, so the rest stays verifiable."""
    settings = _settings(ctx)
    with connect(settings, autocommit=True) as conn:
        removed = audit.prune(conn, older_than_days=days or settings.audit_retention_days, actor=_actor())
    console.print(f"removed {removed:,} records older than {days or settings.audit_retention_days} days")


@click.command("backup")
@click.option(
    "--to", "target", type=click.Path(file_okay=False, path_type=Path), help="Folder (default GIS_IOC_HOME/backups)."
)
@click.pass_context
def backup_command(ctx: click.Context, target: Path | None) -> None:
    """pg_dump (custom format) and the stored files, with a checksum manifest."""
    settings = _settings(ctx)
    result = backups.backup(settings, target or settings.home / "backups")
    with connect(settings, autocommit=True) as conn:
        audit.record(conn, actor=_actor(), action="backup", target=str(result.folder), detail={"rows": result.rows})
    console.print(
        f"backup {result.folder}: {result.tables} tables, {result.rows:,} rows, {result.files} files, "
        f"{result.bytes / 1e6:.1f} MB"
    )


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def restore_command(ctx: click.Context, folder: Path) -> None:
    """Restore a backup into an empty database, then compare row counts and checksums."""
    settings = _settings(ctx)
    counts = backups.restore(settings, folder)
    with connect(settings, autocommit=True) as conn:
        audit.mark_restored(conn)  # the head file continues from the restored chain
        audit.record(conn, actor=_actor(), action="restore", target=str(folder), detail={"rows": sum(counts.values())})
    console.print(f"restored {len(counts)} tables, {sum(counts.values()):,} rows; counts and checksums match")
