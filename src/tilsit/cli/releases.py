"""``tilsit yank|unyank|delete``: releases, files and projects of an index."""

from __future__ import annotations

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.index import errors
from tilsit.index.manage import (
    delete_file,
    delete_project,
    delete_release,
    get_index,
    set_yanked,
)

__all__ = ["delete", "unyank", "yank"]


def _yank(
    project: str,
    version: str,
    index_name: str | None,
    reason: str,
    yanked: bool,
    settings: Settings,
) -> None:
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            idx = get_index(session, index_name or settings.default_index)
            set_yanked(session, idx, project, version, yanked=yanked, reason=reason, actor="cli")
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(f"{'yanked' if yanked else 'unyanked'} {project} {version}")


@click.command()
@click.argument("project")
@click.argument("version")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@click.option("--reason", default="", help="Why, shown to installers (PEP 592).")
@instance_options
def yank(
    project: str, version: str, index_name: str | None, reason: str, settings: Settings
) -> None:
    """Yank a release: installers skip it unless it is pinned exactly."""
    _yank(project, version, index_name, reason, True, settings)


@click.command()
@click.argument("project")
@click.argument("version")
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@instance_options
def unyank(project: str, version: str, index_name: str | None, settings: Settings) -> None:
    """Undo a yank."""
    _yank(project, version, index_name, "", False, settings)


@click.command()
@click.argument("what", type=click.Choice(["file", "release", "project"]))
@click.argument("args", nargs=-1, required=True)
@click.option("--index", "index_name", default=None, help="Index (default: the default index).")
@instance_options
def delete(what: str, args: tuple[str, ...], index_name: str | None, settings: Settings) -> None:
    """Delete a file (FILENAME), a release (PROJECT VERSION) or a project (PROJECT).

    Deleted filenames can never be uploaded again; blobs are kept.
    """
    wanted = {"file": 1, "release": 2, "project": 1}[what]
    if len(args) != wanted:
        raise click.UsageError(f"delete {what} takes {wanted} argument(s)")
    instance = open_instance_for_command(settings)
    try:
        with instance.db.write() as session:
            idx = get_index(session, index_name or settings.default_index)
            if what == "file":
                delete_file(session, idx, args[0], actor="cli")
            elif what == "release":
                delete_release(session, idx, args[0], args[1], actor="cli")
            else:
                delete_project(session, idx, args[0], actor="cli")
    except errors.IndexError_ as exc:
        fail(exc)
    instance.renderer.catch_up()
    click.echo(f"deleted {what} {' '.join(args)}")
