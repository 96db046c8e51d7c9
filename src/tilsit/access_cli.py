"""CLI for access and lifecycle: ``tilsit index set|delete|grant|revoke|permissions``
and ``tilsit role …``.

Imported last by :mod:`tilsit.cli`, whose ``index`` group and ``main`` it extends.
The CLI acts as the server's operator: it records its changes as actor "cli".
"""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.orm import Session

from tilsit.cli import _fail, _open, index, instance_options, main
from tilsit.config import Settings
from tilsit.db.models import IndexRow, ProjectRow
from tilsit.index import errors
from tilsit.index.access import INDEX_PERMISSIONS
from tilsit.index.manage import (
    change_index,
    check_deletable,
    delete_index,
    get_index,
    get_project,
    get_user,
)
from tilsit.index.permissions import (
    CREATE_POLICIES,
    grant_permission,
    list_permissions,
    revoke_permission,
    set_visibility,
)
from tilsit.index.roles import ROLES, add_role, project_roles, remove_role
from tilsit.index.upstream_options import public_url
from tilsit.upstream.cli_options import read_password_stdin, upstream_changes, upstream_options

__all__ = ["role"]

_ACTOR = "cli"


def _index_or_default(session: Session, settings: Settings, name: str | None) -> IndexRow:
    return get_index(session, name or settings.default_index)


@index.command("set")
@click.argument("name")
@click.option("--private/--public", default=None, help="Who may read the index.")
@click.option(
    "--create-policy",
    type=click.Choice(CREATE_POLICIES),
    default=None,
    help="anyone: every user may create projects; listed: only users granted 'create'.",
)
@click.option(
    "--upstream",
    "upstream_url",
    default=None,
    metavar="URL",
    help="Mirror or proxy: a new upstream simple index URL. A mirror's next sync then"
    " compares every project with the new upstream; a proxy revalidates every page.",
)
@upstream_options
@click.option("--no-upstream-auth", is_flag=True, help="Forget the upstream credentials.")
@instance_options
def index_set(
    name: str,
    private: bool | None,
    create_policy: str | None,
    upstream_url: str | None,
    no_upstream_auth: bool,
    settings: Settings,
    **values: Any,
) -> None:
    """Change an index: who may read it and create projects; a mirror's or proxy's
    upstream URL, credentials, CA bundle, sync interval or TTL.

    The running server picks the change up at its next sync or fetch.
    """
    upstream_given = upstream_url is not None or no_upstream_auth
    upstream_given = upstream_given or any(v not in (None, False) for v in values.values())
    if private is None and create_policy is None and not upstream_given:
        raise click.UsageError(
            "nothing to set: give --private/--public, --create-policy, or an upstream"
            " setting (--upstream, --upstream-username, --upstream-password[-stdin],"
            " --no-upstream-auth, --ca-bundle, --interval, --ttl)"
        )
    if no_upstream_auth and (
        values["upstream_username"] is not None
        or values["upstream_password"] is not None
        or values["upstream_password_stdin"]
    ):
        raise click.UsageError("--no-upstream-auth excludes new upstream credentials")
    try:
        read_password_stdin(values)
    except errors.IndexError_ as exc:
        _fail(exc)
    instance = _open(settings)
    changed: list[str] = []
    try:
        with instance.db.write() as session:
            row = get_index(session, name)
            if upstream_given:
                changes = upstream_changes((row.options or {}).get("auth"), **values)
                if upstream_url is not None:
                    changes["upstream"] = upstream_url
                if no_upstream_auth:
                    changes["auth"] = None
                changed = change_index(session, row, changes, actor=_ACTOR)
            visibility = False
            if private is not None or create_policy is not None:
                visibility = set_visibility(
                    session, row, private=private, create_policy=create_policy, actor_name=_ACTOR
                )
            state = f"{'private' if row.private else 'public'}, create policy {row.create_policy}"
            upstream = (row.options or {}).get("upstream")
    except errors.IndexError_ as exc:
        _fail(exc)
        return
    instance.renderer.catch_up()
    unchanged = not changed and not visibility
    where = f", upstream {public_url(str(upstream))}" if upstream else ""
    settings_changed = f"; changed: {', '.join(changed)}" if changed else ""
    click.echo(
        f"index {name!r} is {state}{where}{settings_changed}"
        + (" (unchanged)" if unchanged else "")
    )
    if "upstream" in changed and row.kind == "mirror":
        click.echo(
            f"the next sync of {name!r} compares every project with the new upstream", err=True
        )
    if state == "private, create policy anyone":
        # Kept as asked: changing who may create is a decision of its own. Reads stay
        # closed (a new project opens only itself), but names can be probed by uploading.
        click.echo(
            f"warning: any user may still create projects in private index {name!r}, and so"
            " learn whether a name is taken by trying it; use --create-policy listed to"
            " allow only users granted 'create'",
            err=True,
        )


@index.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask: delete NAME.")
@instance_options
def index_delete(name: str, yes: bool, settings: Settings) -> None:
    """Delete index NAME: its URLs answer 404, its syncs stop, its name stays taken.

    Its rows (projects, files, journal, audit) are kept; blobs no index uses are
    left to `tilsit fsck`. Asks you to type NAME unless --yes is given.
    """
    instance = _open(settings)
    try:
        check_deletable(name, settings.default_index)  # before asking
        with instance.db.read() as session:
            row = get_index(session, name)
            kind = row.kind
    except errors.IndexError_ as exc:
        _fail(exc)
        return
    if not yes:
        typed = click.prompt(
            f"This deletes {kind} index {name!r}: its pages and files stop being served."
            " Type its name to confirm",
            default="",
            show_default=False,
        )
        if typed != name:
            click.echo(f"error: {typed!r} is not {name!r}: nothing deleted", err=True)
            sys.exit(1)
    try:
        with instance.db.write() as session:
            delete_index(session, name, default_index=settings.default_index, actor=_ACTOR)
    except errors.IndexError_ as exc:
        _fail(exc)
        return
    instance.renderer.catch_up()
    click.echo(f"deleted {kind} index {name!r}; its name stays taken while its rows exist")


def _permission_command(grant: bool) -> click.Command:
    verb = "grant" if grant else "revoke"

    @click.argument("name")
    @click.argument("user_name", metavar="USER")
    @click.argument("permission", type=click.Choice(INDEX_PERMISSIONS))
    @instance_options
    def command(name: str, user_name: str, permission: str, settings: Settings) -> None:
        instance = _open(settings)
        try:
            with instance.db.write() as session:
                row = get_index(session, name)
                user = get_user(session, user_name)
                change = grant_permission if grant else revoke_permission
                changed = change(session, row, user, permission, actor_name=_ACTOR)
        except errors.IndexError_ as exc:
            _fail(exc)
            return
        if not changed:
            had = "already has" if grant else "does not have"
            click.echo(f"{user.name!r} {had} {permission!r} on {name!r}: nothing changed")
            return
        done = "granted" if grant else "revoked"
        click.echo(f"{done} {permission!r} on {name!r} for {user.name!r}")

    command.__doc__ = (
        "Give USER a permission on index NAME: read, upload (any project) or create."
        if grant
        else "Take a permission on index NAME from USER."
        " Token decisions are cached: the read path notices within 30 s."
    )
    return click.command(verb)(command)


index.add_command(_permission_command(True))
index.add_command(_permission_command(False))


@index.command("permissions")
@click.argument("name")
@instance_options
def index_permissions_list(name: str, settings: Settings) -> None:
    """Show whether an index is private, its create policy and every grant on it."""
    instance = _open(settings)
    try:
        with instance.db.read() as session:
            row = get_index(session, name)
            click.echo(
                f"index {row.name}: {'private' if row.private else 'public'},"
                f" create policy {row.create_policy}"
            )
            for grant in list_permissions(session, row):
                click.echo(f"{grant.user}\t{grant.permission}\t{grant.created_at:%Y-%m-%d}")
    except errors.IndexError_ as exc:
        _fail(exc)


@click.group()
def role() -> None:
    """Project roles: Owner and Maintainer (the web UI sends invitations instead)."""


def _project(session: Session, settings: Settings, index_name: str | None, name: str) -> ProjectRow:
    return get_project(session, _index_or_default(session, settings, index_name), name)


_INDEX_OPTION = click.option(
    "--index", "index_name", default=None, help="Index (default: the default index)."
)


@role.command("add")
@click.argument("project")
@click.argument("user_name", metavar="USER")
@click.argument("role_name", metavar="ROLE", type=click.Choice(ROLES, case_sensitive=False))
@_INDEX_OPTION
@instance_options
def role_add(
    project: str, user_name: str, role_name: str, index_name: str | None, settings: Settings
) -> None:
    """Give USER the role ROLE (Owner or Maintainer) on PROJECT, without an invitation."""
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            row = add_role(
                session,
                _project(session, settings, index_name, project),
                get_user(session, user_name),
                role_name,
                actor_name=_ACTOR,
            )
            click.echo(f"{row.user.name!r} is now {row.role} of {project!r}")
    except errors.IndexError_ as exc:
        _fail(exc)


@role.command("remove")
@click.argument("project")
@click.argument("user_name", metavar="USER")
@_INDEX_OPTION
@instance_options
def role_remove(project: str, user_name: str, index_name: str | None, settings: Settings) -> None:
    """Remove USER's role on PROJECT (never the last Owner's)."""
    instance = _open(settings)
    try:
        with instance.db.write() as session:
            remove_role(
                session,
                _project(session, settings, index_name, project),
                get_user(session, user_name),
                actor_name=_ACTOR,
            )
    except errors.IndexError_ as exc:
        _fail(exc)
        return
    click.echo(f"{user_name!r} has no role on {project!r} any more")


@role.command("list")
@click.argument("project")
@_INDEX_OPTION
@instance_options
def role_list(project: str, index_name: str | None, settings: Settings) -> None:
    """List the users with a role on PROJECT."""
    instance = _open(settings)
    try:
        with instance.db.read() as session:
            for user, name in project_roles(
                session, _project(session, settings, index_name, project)
            ):
                click.echo(f"{user.name}\t{name}")
    except errors.IndexError_ as exc:
        _fail(exc)


main.add_command(role)
