"""``tilsit user create|set-password|list|disable|enable|admin``.

The account changes go through :func:`tilsit.auth.user_admin.change_account`, as the web
admin's do, and are audited with actor "cli".
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from sqlalchemy import select

from tilsit.auth.accounts import AccountError, normalise_email
from tilsit.auth.audit import record_event
from tilsit.auth.passwords import WeakPassword, check_new_password, hash_password
from tilsit.auth.sessions import end_user_sessions
from tilsit.auth.user_admin import LastAdministrator, change_account
from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.models import UserRow, WebAuthnCredentialRow
from tilsit.index import errors
from tilsit.index.manage import create_user, get_user

__all__ = ["user"]

_ACTOR = "cli"


@click.group()
def user() -> None:
    """Manage users."""


def _new_password(ask: bool, from_stdin: bool, name: str, email: str) -> str | None:
    """A checked argon2 hash of a password typed (hidden, twice) or read from stdin."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif ask:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        return None
    try:
        check_new_password(password, name=name, email=email)
    except WeakPassword as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    return hash_password(password)


_password_options = [
    click.option("--password", "ask_password", is_flag=True, help="Prompt for a password."),
    click.option("--password-stdin", is_flag=True, help="Read the password from stdin."),
]


@user.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May upload to and manage every project.")
@click.option("--email", default=None, help="The user's email address (taken as verified).")
@_password_options[0]
@_password_options[1]
@instance_options
def user_create(
    name: str,
    admin: bool,
    email: str | None,
    ask_password: bool,
    password_stdin: bool,
    settings: Settings,
) -> None:
    """Create a user (who can then be given tokens, or log in with a password)."""
    try:
        address = normalise_email(email) if email else None
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    hashed = _new_password(ask_password, password_stdin, name, address or "")
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            row = create_user(session, name, admin=admin)
            if address:
                taken = session.scalars(select(UserRow.id).where(UserRow.email == address))
                if taken.first() is not None:
                    raise errors.IndexError_(f"The address {address} belongs to another user")
                # An administrator vouches for the address; no link is mailed.
                row.email, row.email_verified_at = address, datetime.now(UTC)
            if hashed:
                row.password_hash, row.password_changed_at = hashed, datetime.now(UTC)
    except errors.IndexError_ as exc:
        fail(exc)
    click.echo(f"created user {name!r}; next: tilsit token create --user {name}")


@user.command("set-password")
@click.argument("name")
@_password_options[1]
@instance_options
def user_set_password(name: str, password_stdin: bool, settings: Settings) -> None:
    """Set a user's password (prompted twice, hidden) and end their web sessions."""
    instance = open_instance_for_command(settings)
    with instance.db.read() as session:
        found = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if found is None:
        fail(errors.IndexError_(f"There is no user {name!r}"))
        return
    hashed = _new_password(True, password_stdin, name, found.email or "")
    with instance.db.write() as session:
        row = session.get(UserRow, found.id)
        assert row is not None and hashed is not None
        row.password_hash, row.password_changed_at = hashed, datetime.now(UTC)
        end_user_sessions(session, row)
        record_event(session, "password.changed", actor_name="cli", user=row)
    click.echo(f"password of {name!r} set; their web sessions were ended")


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


@user.command("list")
@instance_options
def user_list(settings: Settings) -> None:
    """List every user: name, email, verified, admin, active, 2FA, created."""
    instance = open_instance_for_command(settings)
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
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            row = get_user(session, name)
            return change_account(session, row, action, actor_name=_ACTOR)
    except errors.IndexError_ as exc:
        fail(exc)
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
