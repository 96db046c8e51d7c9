"""``tilsit mirror …``: sync a mirror index, set its filters, show its freshness."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.cli.upstream_options import filter_options, filters_document
from tilsit.config import Settings
from tilsit.db.models import UpstreamStateRow
from tilsit.index import errors
from tilsit.index.manage import get_index
from tilsit.instance import Instance
from tilsit.upstream.filters import Filters, InvalidFilter
from tilsit.upstream.status import status_document
from tilsit.upstream.sync import NotAMirror, SyncBusy, sync_mirror

__all__ = ["mirror"]


class _Lines:
    """Progress as plain log lines (not a terminal: cron, CI, a pipe)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def begin(self, total: int) -> None:
        self.total = total
        click.echo(f"{total} project(s) to sync", err=True)

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None:
        self.done += 1
        click.echo(f"[{self.done}/{self.total}] {name}: {outcome}", err=True)

    def note(self, message: str) -> None:
        click.echo(f"note: {message}", err=True)

    def end(self) -> None:
        pass


class _Bar:
    """A rich progress bar on a terminal; failures and retries printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]sync[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task("", total=None)

    def begin(self, total: int) -> None:
        self.progress.update(self.task, total=total)
        self.progress.start()

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None:
        if failed:
            self.progress.console.print(f"[red]FAILED[/] {name}: {outcome}", markup=True)
        self.progress.update(self.task, advance=1, description=name)

    def note(self, message: str) -> None:
        self.progress.console.print(f"note: {message}", markup=False, highlight=False)

    def end(self) -> None:
        self.progress.stop()


mirror: click.Group = click.Group(
    "mirror", help="Mirror indexes: sync from the upstream, filters, freshness."
)


@mirror.command("sync")
@click.argument("name")
@click.option(
    "--workers", type=click.IntRange(1, 256), default=8, show_default=True, help="Parallel fetches."
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Retries of a failing project or root page, with exponential backoff.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    help="Seconds before the first retry; doubled for each next one.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar (default: when stderr is a terminal), else log lines.",
)
@instance_options
def sync(
    name: str,
    workers: int,
    retries: int,
    backoff: float,
    progress: bool | None,
    settings: Settings,
) -> None:
    """Bring mirror index NAME up to date with its upstream; exit 1 if anything failed."""
    instance = open_instance_for_command(settings)
    bar = sys.stderr.isatty() if progress is None else progress
    reporter = _Bar() if bar else _Lines()
    try:
        report = asyncio.run(
            sync_mirror(
                instance,
                name,
                workers=workers,
                attempts=retries + 1,
                backoff=backoff,
                reporter=reporter,
            )
        )
    except (SyncBusy, NotAMirror, InvalidFilter) as exc:
        fail(str(exc))
        return
    except errors.IndexError_ as exc:
        fail(exc.message)
        return
    for project, reason in sorted(report.failed.items()):
        click.echo(f"FAILED {project}: {reason}", err=True)
    if report.failures > len(report.failed):
        unnamed = report.failures - len(report.failed)
        click.echo(f"FAILED {unnamed} more project(s): each is named above, as it failed", err=True)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def _filters_of(instance: Instance, name: str) -> tuple[dict[str, Any], Filters]:
    with instance.db.read() as session:
        index = get_index(session, name)
        if index.kind not in ("mirror", "proxy"):
            raise NotAMirror(f"index {name!r} is a {index.kind} index")
        return dict(index.options), Filters.from_options(index.options.get("filters"))


@mirror.command("configure")
@click.argument("name")
@filter_options
@click.option("--clear", is_flag=True, help="Drop every filter first.")
@instance_options
def configure(name: str, clear: bool, settings: Settings, **values: Any) -> None:
    """Set the filters of mirror NAME: each option given replaces that setting.

    An empty value clears a list (--allow ""), 0 clears a number (--latest 0).

    The next sync applies them before fetching anything: it removes what they
    now exclude and fetches what they now let in.
    """
    instance = open_instance_for_command(settings)
    timeout = values.pop("timeout")
    try:
        options, current = _filters_of(instance, name)
        filters = filters_document(None if clear else current, **values)
    except (InvalidFilter, NotAMirror) as exc:
        fail(str(exc))
        return
    except errors.IndexError_ as exc:
        fail(exc.message)
        return
    with instance.db.write() as session:
        index = get_index(session, name)
        options = dict(index.options)
        options["filters"] = filters.to_options()
        if timeout is not None:
            options["timeout"] = timeout
        index.options = options
    click.echo(json.dumps({"filters": filters.to_options(), "timeout": options.get("timeout")}))


@mirror.command("status")
@click.argument("name")
@instance_options
def status(name: str, settings: Settings) -> None:
    """Print the freshness of mirror NAME (what mirror-status.json publishes)."""
    instance = open_instance_for_command(settings)
    try:
        with instance.db.read() as session:
            index = get_index(session, name)
            doc = status_document(index, session.get(UpstreamStateRow, index.id))
    except errors.IndexError_ as exc:
        fail(exc.message)
        return
    click.echo(json.dumps(doc, indent=2))
