"""``tilsit role add|remove|list``: project roles from the command line.

The CLI acts as the server's operator: it records its changes as actor "cli".
"""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.db.models import IndexRow, ProjectRow
from tilsit.index import errors
from tilsit.index.manage import get_index, get_project, get_user
from tilsit.index.roles import ROLES, add_role, project_roles, remove_role

__all__ = ["role"]

_ACTOR = "cli"


def _index_or_default(session: Session, settings: Settings, name: str | None) -> IndexRow:
    return get_index(session, name or settings.default_index)


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
    instance = open_instance_for_command(settings)
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
        fail(exc)


@role.command("remove")
@click.argument("project")
@click.argument("user_name", metavar="USER")
@_INDEX_OPTION
@instance_options
def role_remove(project: str, user_name: str, index_name: str | None, settings: Settings) -> None:
    """Remove USER's role on PROJECT (never the last Owner's)."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            remove_role(
                session,
                _project(session, settings, index_name, project),
                get_user(session, user_name),
                actor_name=_ACTOR,
            )
    except errors.IndexError_ as exc:
        fail(exc)
        return
    click.echo(f"{user_name!r} has no role on {project!r} any more")


@role.command("list")
@click.argument("project")
@_INDEX_OPTION
@instance_options
def role_list(project: str, index_name: str | None, settings: Settings) -> None:
    """List the users with a role on PROJECT."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            for user, name in project_roles(
                session, _project(session, settings, index_name, project)
            ):
                click.echo(f"{user.name}\t{name}")
    except errors.IndexError_ as exc:
        fail(exc)
