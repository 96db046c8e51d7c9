"""CLI for accounts: ``tilsit user list|disable|enable|admin``.

Imported last by :mod:`tilsit.cli`, whose ``user`` group it extends. The
changes go through :func:`tilsit.auth.user_admin.change_account`, as the web
admin's do, and are audited with actor "cli".
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from tilsit.auth.user_admin import LastAdministrator, change_account
from tilsit.cli import _fail, _open, instance_options, user
from tilsit.config import Settings
from tilsit.db.models import UserRow, WebAuthnCredentialRow
from tilsit.index import errors
from tilsit.index.manage import get_user

__all__ = ["user_list"]

_ACTOR = "cli"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


@user.command("list")
@instance_options
def user_list(settings: Settings) -> None:
    """List every user: name, email, verified, admin, active, 2FA, created."""
    instance = _open(settings)
    with instance.db.read() as session:
        # One query for every key holder, not one per user.
        keyed = set(session.scalars(select(WebAuthnCredentialRow.user_id).distinct()))
        rows = [
            (
                row.name,
                row.email or "-",
                _yes_no(row.email_verified_at is not None),
                _yes_no(row.is_admin),
                _yes_no(row.is_active),
                _yes_no(bool(row.totp_secret) or row.id in keyed),
                row.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for row in session.scalars(select(UserRow).order_by(UserRow.name))
        ]
    click.echo("name\temail\tverified\tadmin\tactive\t2fa\tcreated")
    for line in rows:
        click.echo("\t".join(line))


def _change(name: str, action: str, settings: Settings) -> bool:
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            row = get_user(session, name)
            return change_account(session, row, action, actor_name=_ACTOR)
    except errors.IndexError_ as exc:
        _fail(exc)
    except LastAdministrator as exc:
        click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@user.command("disable")
@click.argument("name")
@instance_options
def user_disable(name: str, settings: Settings) -> None:
    """Disable an account: no login, its web sessions end, its tokens stop working.

    Its tokens are not revoked: `tilsit user enable` gives them back.
    """
    changed = _change(name, "disable", settings)
    click.echo(
        f"disabled {name!r}: its web sessions ended and its tokens stop working"
        if changed
        else f"{name!r} was already disabled: nothing changed"
    )


@user.command("enable")
@click.argument("name")
@instance_options
def user_enable(name: str, settings: Settings) -> None:
    """Enable a disabled account again (its unrevoked tokens work again)."""
    changed = _change(name, "enable", settings)
    click.echo(f"enabled {name!r}" if changed else f"{name!r} was already enabled: nothing changed")


@user.command("admin")
@click.argument("name")
@click.option("--on/--off", "grant", required=True, help="Grant or remove administrator rights.")
@instance_options
def user_admin(name: str, grant: bool, settings: Settings) -> None:
    """Make a user an administrator (--on) or no longer one (--off)."""
    changed = _change(name, "make-admin" if grant else "remove-admin", settings)
    state = "an administrator" if grant else "not an administrator"
    click.echo(
        f"{name!r} is now {state}" if changed else f"{name!r} was already {state}: nothing changed"
    )
