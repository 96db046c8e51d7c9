"""``tilsit audit export``, ``tilsit switch …`` and ``tilsit token list|revoke``.

Registered on the main command group when :mod:`tilsit.cli` imports this module.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime

import click
from sqlalchemy import select

from tilsit.auth import switches
from tilsit.auth.audit import record_event
from tilsit.auth.audit_query import (
    EXPORT_FIELDS,
    EventFilter,
    UnknownFilterValue,
    export_rows,
    spreadsheet_cell,
)
from tilsit.auth.token_admin import UnknownToken, revoke_token, token_by_reference, tokens_of
from tilsit.cli import _open, instance_options, main, token
from tilsit.config import Settings
from tilsit.db.models import IndexRow, UserRow

__all__ = ["audit", "switch"]


def parse_since(text: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC if no zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not an ISO date (2026-01-31) or date and time (2026-01-31T12:00)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group()
def audit() -> None:
    """Read the audit log."""


@audit.command("export")
@click.option("--user", "user_name", default=None, help="Events about or by this user.")
@click.option("--project", default=None, help="Events about this project.")
@click.option("--index", "index_name", default=None, help="Events in this index.")
@click.option("--action", default=None, help="Only this action (e.g. token.refused).")
@click.option("--since", default=None, help="From this ISO date or date-time (UTC).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
)
@instance_options
def audit_export(
    user_name: str | None,
    project: str | None,
    index_name: str | None,
    action: str | None,
    since: str | None,
    output_format: str,
    settings: Settings,
) -> None:
    """Write audit events to stdout, oldest first: JSON lines or CSV."""
    wanted = EventFilter(
        user=user_name,
        project=project,
        index=index_name,
        action=action,
        since=parse_since(since) if since else None,
    )
    instance = _open(settings)
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if output_format == "csv" else None
    if writer is not None:
        writer.writerow([*EXPORT_FIELDS, "detail"])
    with instance.db.read() as session:
        try:
            for event in export_rows(session, wanted):
                record = event.as_dict()
                if writer is None:
                    out.write(json.dumps(record, sort_keys=True) + "\n")
                else:
                    # Every cell can carry text an outsider chose (a user name typed
                    # at the login form, a forwarded address), and the file is meant
                    # for spreadsheets.
                    writer.writerow(
                        [
                            *(spreadsheet_cell(record[f]) for f in EXPORT_FIELDS),
                            spreadsheet_cell(json.dumps(record["detail"], sort_keys=True)),
                        ]
                    )
        except UnknownFilterValue as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group()
def switch() -> None:
    """Admin switches: read-only, no-new-users, no-new-projects, no-uploads."""


@switch.command("list")
@instance_options
def switch_list(settings: Settings) -> None:
    """Show each switch, on or off, and what it does."""
    instance = _open(settings)
    with instance.db.read() as session:
        states = switches.states(session)
    for name, meaning in switches.SWITCHES.items():
        click.echo(f"{name}\t{'on' if states[name] else 'off'}\t{meaning}")


def _set(name: str, on: bool, settings: Settings) -> None:
    if name not in switches.SWITCHES:
        raise click.BadParameter(
            f"unknown switch {name!r}: expected one of {', '.join(switches.SWITCHES)}",
            param_hint="NAME",
        )
    instance = _open(settings)
    with instance.db.write() as session:
        changed = switches.set_switch(session, name, on, actor="cli")
        if changed:
            record_event(
                session, "switch.changed", actor_name="cli", detail={"switch": name, "on": on}
            )
    state = "on" if on else "off"
    click.echo(f"{name} is {state}" if changed else f"{name} was already {state}")


@switch.command("on")
@click.argument("name")
@instance_options
def switch_on(name: str, settings: Settings) -> None:
    """Turn a switch on."""
    _set(name, True, settings)


@switch.command("off")
@click.argument("name")
@instance_options
def switch_off(name: str, settings: Settings) -> None:
    """Turn a switch off."""
    _set(name, False, settings)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _one_cell(text: str) -> str:
    """``text`` as one cell of a tab-separated line: a user's own tab or newline (a token
    description typed on the web) must not start a column or a row of its own."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


@token.command("list")
@click.option("--user", "user_name", required=True, help="Whose tokens.")
@instance_options
def token_list(user_name: str, settings: Settings) -> None:
    """List a user's API tokens (never their secrets)."""
    instance = _open(settings)
    with instance.db.read() as session:
        owner = session.scalars(select(UserRow).where(UserRow.name == user_name)).one_or_none()
        if owner is None:
            click.echo(f"error: There is no user named {user_name!r}", err=True)
            sys.exit(1)
        names = {row.id: row.name for row in session.execute(select(IndexRow.id, IndexRow.name))}
        rows = tokens_of(session, owner)
    click.echo("id\tprefix\tscope\tbulk\tcreated\texpires\tlast used\trevoked\tdescription")
    for row in rows:
        scope = (
            f"index={names.get(row.index_id, '?') if row.index_id else '*'}"
            f" projects={','.join(row.projects) if row.projects is not None else '*'}"
        )
        click.echo(
            "\t".join(
                [
                    str(row.id),
                    row.display_prefix,
                    scope,
                    "bulk" if row.bulk else "-",
                    _when(row.created_at),
                    _when(row.expires_at) if row.expires_at else "never",
                    _when(row.last_used_at) if row.last_used_at else "never",
                    _when(row.revoked_at),
                    _one_cell(row.description),
                ]
            )
        )


@token.command("revoke")
@click.argument("reference")
@instance_options
def token_revoke(reference: str, settings: Settings) -> None:
    """Revoke the token with this id or prefix (tilsit-XXXXXX, as `token list` shows)."""
    instance = _open(settings)
    with instance.db.write() as session:
        try:
            row = token_by_reference(session, reference)
        except UnknownToken as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        changed = revoke_token(session, row, actor_name="cli")
        prefix = row.display_prefix
    click.echo(f"revoked {prefix}" if changed else f"{prefix} was already revoked")


main.add_command(audit)
main.add_command(switch)
