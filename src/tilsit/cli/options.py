"""What every ``tilsit`` command shares: the instance options, opening the
instance, one-line failures, and the root group's handling of operator mistakes.

Command modules import from here (and from the domain packages), never from one
another nor from :mod:`tilsit.cli`, which only assembles them.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tilsit.config import Settings, load_settings
from tilsit.index import errors
from tilsit.instance import Instance, open_instance
from tilsit.operator import OperatorError, unwritable_message

__all__ = [
    "SAME_FILESYSTEM",
    "OperatorGroup",
    "fail",
    "how_to_run_tilsit",
    "instance_options",
    "open_instance_for_command",
]


F = TypeVar("F", bound=Callable[..., Any])


def instance_options(func: F) -> F:
    """--data and --config, accepted by every command that opens an instance."""

    @click.option(
        "--data",
        "data",
        type=click.Path(path_type=Path),
        default=None,
        help="Data directory (setting: data).",
    )
    @click.option(
        "--config",
        "config",
        # Not exists=True: a missing file is named in one line by load_settings.
        type=click.Path(path_type=Path),
        default=None,
        help="TOML settings file (or TILSIT_CONFIG).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, data: Path | None, config: Path | None, **kwargs: Any) -> Any:
        # A bad settings file or variable is an OperatorError: the root group prints it in one line.
        settings = load_settings(config, {"data": data})
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


class _OneLineLog(logging.Handler):
    """``error: message`` on stderr: what tilsit logs while a command runs, without
    tracebacks (the server's log keeps them; an operator at a prompt needs the line)."""

    def emit(self, record: logging.LogRecord) -> None:
        # click.echo finds the stderr of the moment (a test runner swaps it).
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def _log_in_one_line() -> None:
    logger = logging.getLogger("tilsit")
    if not any(isinstance(h, _OneLineLog) for h in logger.handlers):
        logger.addHandler(_OneLineLog(logging.WARNING))


def open_instance_for_command(settings: Settings, *, owner: bool = False) -> Instance:
    """The instance every command but serve and init works on: it must exist already.

    With ``owner`` (``rebuild``), the command's base_url becomes the tree's; it
    then renders the whole tree itself.
    """
    _log_in_one_line()
    instance = open_instance(settings, create=False, owner=owner, rerender=not owner)
    # Release database connections when the command ends, however it ends.
    context = click.get_current_context()
    context.call_on_close(instance.close)
    # Run first (last registered): a render this command's change could not make is
    # said here too, not only in /_/health, so the operator sees it at once.
    context.call_on_close(lambda: _warn_render_failures(instance))
    return instance


def _warn_render_failures(instance: Instance) -> None:
    failures = instance.renderer.render_failures()
    if not failures:
        return
    first = failures[0]
    more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    click.echo(
        f"warning: {first.key.rstrip('/')} could not be rendered ({first.error}){more};"
        " tilsit serve retries every few minutes (tilsit rebuild now), /_/health lists them",
        err=True,
    )


def fail(problem: errors.IndexError_ | str) -> None:
    """``error: <problem>`` on stderr, exit status 1."""
    message = problem.message if isinstance(problem, errors.IndexError_) else problem
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class OperatorGroup(click.Group):
    """The top command: an operator's mistake, raised anywhere below, ends in one line.

    Commands raise :class:`OperatorError` (a bad setting, no data directory, a
    port in use, ...) and do not catch it themselves; a PermissionError that
    no check foresaw still names its file and whose it is, never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperatorError as exc:
            raise _OneLine(str(exc)) from None
        except OSError as exc:
            # What no check foresaw: a file made unwritable, or a disk that filled, while
            # the command ran. Named with its file; any other OSError is a bug: traceback.
            if exc.filename is None or exc.errno not in _OPERATOR_ERRNOS:
                raise
            path = Path(os.fsdecode(exc.filename))
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _OneLine(f"{path}: {exc.strerror}; free space there") from None
            if exc.errno == errno.EXDEV:  # name the target: the source is in tmp
                target = Path(os.fsdecode(exc.filename2 or exc.filename))
                raise _OneLine(SAME_FILESYSTEM.format(path=target)) from None
            raise _OneLine(unwritable_message(path, "cannot be written")) from None


_OPERATOR_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EXDEV,
}
SAME_FILESYSTEM = (
    "{path} is on another filesystem than the data directory's tmp; tilsit renames files"
    " from tmp into the tree and blobs (and hard-links blobs into the tree), so data/tmp,"
    " data/tree and data/blobs must be on one filesystem"
)


class _OneLine(click.ClickException):
    """Printed as ``error: <message>`` on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def how_to_run_tilsit() -> str:
    """The command to print in hints: plain ``tilsit`` only when PATH finds this very one."""
    import shutil

    me = Path(sys.argv[0]).resolve()
    found = shutil.which("tilsit")
    if found and Path(found).resolve() == me:
        return "tilsit"
    if me.name == "tilsit" and me.is_file():
        return str(me)
    return f"{sys.executable} -m tilsit"
