"""``tilsit verify``: the client side of the signed tree, checked end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tilsit.trust.verify import default_state_dir, verify

__all__ = ["verify_command"]


@click.command("verify")
@click.argument("source")
@click.option(
    "--root",
    "root_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The trusted root metadata to pin (e.g. <tree>/<index>/tuf/1.root.json).",
)
@click.option("--index", default=None, help="Index name (under a URL, or inside a directory).")
@click.option("--project", "projects", multiple=True, help="Check only this project (repeatable).")
@click.option("--sample", type=click.IntRange(min=1), default=None, help="Check N random projects.")
@click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep verified metadata here between runs, so a rollback is caught "
    "(default: ~/.cache/tilsit/verify/<source+root>).",
)
@click.option("--fresh", is_flag=True, help="Trust nothing from earlier runs (no state).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA certificates (PEM) to trust for an https SOURCE instead of the system's.",
)
@click.option(
    "--token",
    envvar="TILSIT_TOKEN",
    default=None,
    show_envvar=True,
    help="API token with read access, for a private index (better from the environment,"
    " or put the host in ~/.netrc).",
)
def verify_command(
    source: str,
    root_file: Path,
    index: str | None,
    projects: tuple[str, ...],
    sample: int | None,
    state_dir: Path | None,
    fresh: bool,
    as_json: bool,
    cafile: str | None,
    token: str | None,
) -> None:
    """Verify the index at SOURCE (a URL or a tree directory) end to end.

    Exit 0 when clean, 1 when targets are wrong (tampered, missing or unlisted
    files), 2 when the metadata cannot be trusted (expired, rollback,
    mix-and-match, broken root chain, oversized).
    """
    if projects and sample is not None:
        raise click.UsageError("--project and --sample exclude each other")
    root = root_file.read_bytes()
    if fresh:
        state_dir = None
    elif state_dir is None:
        state_dir = default_state_dir(f"{source}#{index or ''}", root)
    try:
        report = verify(
            source,
            root,
            index=index,
            projects=projects,
            sample=sample,
            state_dir=state_dir,
            cafile=cafile,
            token=token or None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        click.echo(report.summary())
    sys.exit(report.exit_code)
