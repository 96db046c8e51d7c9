"""``tilsit token create|list|revoke``: API tokens from the command line."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from sqlalchemy import select

from tilsit.auth.token_admin import (
    UnknownToken,
    issue_token,
    revoke_token,
    token_by_reference,
    tokens_of,
)
from tilsit.auth.tokens import parse_expiry
from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.models import IndexRow, UserRow
from tilsit.index import errors
from tilsit.index.manage import get_index, get_user
from tilsit.spec.names import normalize

__all__ = ["token"]


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="Owner of the token.")
@click.option("--project", "projects", multiple=True, help="Limit to this project (repeatable).")
@click.option("--index", "index_name", default=None, help="Limit to this index.")
@click.option("--expires", default=None, help="30d, 12h, 90m or an ISO date; default: never.")
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--bulk",
    is_flag=True,
    help="Its uploads skip the upload rate limits (project_create_rate), to load a whole"
    " dependency closure; see docs/accounts.md.",
)
@instance_options
def token_create(
    user_name: str,
    projects: tuple[str, ...],
    index_name: str | None,
    expires: str | None,
    description: str,
    bulk: bool,
    settings: Settings,
) -> None:
    """Create an API token and print its secret (shown only this once)."""
    instance = open_instance_for_command(settings)
    try:
        expires_at = parse_expiry(expires) if expires else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        with instance.db.write() as session:
            owner = get_user(session, user_name)
            scope_index = get_index(session, index_name) if index_name else None
            new = issue_token(
                session,
                owner,
                index=scope_index,
                projects=[normalize(p) for p in projects] or None,
                expires_at=expires_at,
                description=description,
                actor_name="cli",
                bulk=bulk,
            )
    except errors.IndexError_ as exc:
        fail(exc)
    click.echo(new.secret)


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
    instance = open_instance_for_command(settings)
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
    instance = open_instance_for_command(settings)
    with instance.db.write() as session:
        try:
            row = token_by_reference(session, reference)
        except UnknownToken as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        changed = revoke_token(session, row, actor_name="cli")
        prefix = row.display_prefix
    click.echo(f"revoked {prefix}" if changed else f"{prefix} was already revoked")
