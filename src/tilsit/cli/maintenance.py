"""``tilsit rebuild|fsck|nginx-config|settings``: the tree, the blobs, the front server."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import select

from tilsit.cli.options import instance_options, open_instance_for_command
from tilsit.config import SETTINGS, Settings
from tilsit.db.models import IndexRow
from tilsit.index.blobcheck import check_blobs
from tilsit.index.owners import leaf_indexes
from tilsit.nginx import render_nginx_config, render_standalone
from tilsit.render.base_url import record_base_url
from tilsit.store.leftovers import reap_leftovers

__all__ = ["fsck", "nginx_config", "rebuild", "settings_doc"]


@click.command()
@instance_options
def rebuild(settings: Settings) -> None:
    """Re-render the whole static tree from the database."""
    instance = open_instance_for_command(settings, owner=True)
    serial = instance.renderer.rebuild()
    # Only now does every page carry this base_url (see tilsit.render.base_url).
    record_base_url(settings.data, instance.renderer.base_url)
    click.echo(f"rebuilt the tree at serial {serial}")


@click.command()
@click.option(
    "--grace",
    type=int,
    default=3600,
    show_default=True,
    help="Only reap orphan blobs and temp files older than this many seconds (a mirror"
    " sync stores its blobs before its rows; 0 only when nothing else writes).",
)
@click.option("--dry-run", is_flag=True, help="Report orphans without deleting them.")
@click.option("--verify", is_flag=True, help="Also re-hash every blob.")
@instance_options
def fsck(grace: int, dry_run: bool, verify: bool, settings: Settings) -> None:
    """Check blobs against rows: report missing blobs, reap orphans and temp leftovers."""
    instance = open_instance_for_command(settings)
    # Taken before the rows are read: a blob put (or reused) after it is never reaped.
    cutoff = (datetime.now(UTC) - timedelta(seconds=grace)).timestamp()
    checked = check_blobs(
        instance.db, instance.blobs, cutoff, dry_run=dry_run, verify=verify, echo=click.echo
    )
    problems, reaped = checked.problems, checked.reaped
    leftovers = reap_leftovers(settings.tmp_dir, grace, dry_run=dry_run)
    for name in leftovers:
        click.echo(
            f"temp file {settings.tmp_dir / name} left by a killed process"
            f" {'(would reap)' if dry_run else 'reaped'}"
        )
    click.echo(
        f"fsck: {checked.referenced} blobs referenced, {checked.stored} stored, "
        f"{reaped} orphan(s) {'found' if dry_run else 'reaped'}, "
        f"{len(leftovers)} temp file(s) {'found' if dry_run else 'reaped'}, {problems} problem(s)"
    )
    if problems:
        sys.exit(1)


@click.command("nginx-config")
@click.option("--listen", default="80", show_default=True, help="nginx listen address.")
@click.option(
    "--upstream",
    default=None,
    help="tilsit's own server, for uploads and /_/ (default: host:port from settings).",
)
@click.option("--no-upstream", is_flag=True, help="Serve the tree only; uploads get 405.")
@click.option(
    "--standalone",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Print a whole nginx.conf with its pid and temp files under RUN_DIR.",
)
@click.option(
    "--downloads-log",
    type=click.Path(path_type=Path),
    default=None,
    help="Where nginx logs file downloads for `tilsit downloads import-log`"
    " (default: <data>/logs/downloads.log; 'off': no such log).",
)
@click.option(
    "--user",
    "worker_user",
    default=None,
    help="With --standalone: the user nginx's workers run as when started as root.",
)
@instance_options
def nginx_config(
    listen: str,
    upstream: str | None,
    no_upstream: bool,
    run_dir: Path | None,
    downloads_log: Path | None,
    worker_user: str | None,
    settings: Settings,
) -> None:
    """Print an nginx configuration that serves this data directory's tree directly."""
    target = None if no_upstream else (upstream or f"{settings.host}:{settings.port}")
    tree = settings.tree_dir.resolve()
    instance = open_instance_for_command(settings)
    if downloads_log is None:
        downloads_log = settings.data / "logs" / "downloads.log"
        # nginx creates the file, not its directory.
        downloads_log.parent.mkdir(parents=True, exist_ok=True)
    log = None if str(downloads_log) == "off" else downloads_log.resolve()
    with instance.db.read() as session:
        # Proxy indexes are answered by tilsit, not from the tree (TTLs, first fetches),
        # and so are virtual indexes with a proxy member (a name only the proxy has
        # comes on its first request). Other virtual indexes are served from the tree.
        proxies = list(
            session.scalars(
                select(IndexRow.name).where(IndexRow.kind == "proxy").order_by(IndexRow.name)
            )
        )
        for virtual in session.scalars(
            select(IndexRow).where(IndexRow.kind == "virtual").order_by(IndexRow.name)
        ):
            if any(leaf.kind == "proxy" for leaf in leaf_indexes(session, virtual)):
                proxies.append(virtual.name)
    try:
        if run_dir is not None:
            text = render_standalone(
                tree,
                listen,
                settings.default_index,
                target,
                run_dir=run_dir.resolve(),
                user=worker_user,
                page_max_age=settings.page_max_age,
                cache_control=settings.cache_control,
                max_upload_size=settings.max_upload_size,
                proxy_indexes=proxies,
                downloads_log=log,
                files_from_tilsit=settings.blob_store != "fs",
            )
        else:
            text = render_nginx_config(
                tree,
                listen,
                settings.default_index,
                target,
                page_max_age=settings.page_max_age,
                cache_control=settings.cache_control,
                max_upload_size=settings.max_upload_size,
                proxy_indexes=proxies,
                downloads_log=log,
                files_from_tilsit=settings.blob_store != "fs",
            )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(text, nl=False)


@click.command("settings")
def settings_doc() -> None:
    """List every setting with its environment variable, default and meaning."""
    for s in SETTINGS:
        click.echo(f"{s.name}  (TILSIT_{s.name.upper()}, default {s.default!s})\n    {s.help}")
