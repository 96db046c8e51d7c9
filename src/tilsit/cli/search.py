"""``tilsit search rebuild``: the search index made again from the database."""

from __future__ import annotations

import time

import click

from tilsit.cli.options import instance_options, open_instance_for_command
from tilsit.config import Settings

__all__ = ["search"]


@click.group()
def search() -> None:
    """The search index behind /_/search."""


@search.command("rebuild")
@instance_options
def rebuild(settings: Settings) -> None:
    """Make every search document again from the database.

    Writes keep the index current by themselves (it follows the journal); a rebuild
    is for after a restore, or to index an existing instance at once rather than at
    its next catch-up.
    """
    instance = open_instance_for_command(settings)
    started = time.monotonic()
    before = instance.search.documents_built
    serial = instance.search.rebuild()
    instance.search.catch_up()  # what was written while it ran
    click.echo(
        f"search index rebuilt: {instance.search.documents_built - before} projects"
        f" in {time.monotonic() - started:.1f} s, current to serial {serial}"
    )
