"""``tilsit downloads import-log``: downloads that nginx served, added to the counts."""

from __future__ import annotations

from pathlib import Path

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.index.download_log import ConcurrentImport, import_log

__all__ = ["downloads"]


@click.group()
def downloads() -> None:
    """Download statistics."""


@downloads.command("import-log")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@instance_options
def import_log_command(files: tuple[Path, ...], settings: Settings) -> None:
    """Count the downloads in nginx's downloads log (see `tilsit nginx-config`).

    Reads each FILE from where the last run stopped (a log is known by its device,
    inode and first line; a rotated or truncated one is read from its start), so
    running it again counts nothing twice. Give a rotated log before the live one
    (access.log.1 access.log) to read the lines written before it was rotated.
    Lines that are not in the format are counted and reported, never fatal.
    """
    for file in files:
        if not file.is_file():
            fail(f"{file}: no such file (give the path that nginx-config's downloads log names)")
    instance = open_instance_for_command(settings)
    for file in files:
        try:
            report = import_log(
                instance.db,
                file,
                critical_percent=settings.critical_percent,
                critical_keep_days=settings.critical_keep_days,
            )
        except PermissionError:
            fail(f"{file}: permission denied (run as a user that may read nginx's logs)")
        except OSError as exc:
            fail(f"{file}: {exc.strerror or exc}")
        except ConcurrentImport as exc:
            fail(str(exc))
        click.echo(report.summary())
