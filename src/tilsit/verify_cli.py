"""``tilsit verify`` and ``tilsit tuf export-static``: the client side of the signed tree."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from tilsit.cli import instance_options, main
from tilsit.config import Settings

__all__ = ["export_static", "tuf", "verify_command"]


@main.command("verify")
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
    from tilsit.trust.verify import default_state_dir, verify

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


def _tuf_group() -> click.Group:
    """The ``tuf`` group, shared with trust_cli (whichever module loads first makes it)."""
    existing = main.commands.get("tuf")
    if isinstance(existing, click.Group):
        return existing

    @main.group("tuf")
    def tuf() -> None:
        """The signed (TUF) side of the tree."""

    return tuf


tuf = _tuf_group()


@tuf.command("export-static")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--index", "index", required=True, help="Index to export.")
@click.option(
    "--targetpath",
    default=None,
    help="Target the static test downloads (default: a file of the index, else its project list).",
)
@instance_options
def export_static(directory: Path, index: str, targetpath: str | None, settings: Settings) -> None:
    """Write an index in tuf-conformance's static_data form into DIRECTORY.

    metadata/ (served as the metadata URL), targets/ (the target base URL),
    initial_root.json, targetpath and faketime (a moment when the metadata is
    valid), servable as is by ``python -m http.server``.
    """
    from tuf.api.metadata import Metadata, Timestamp

    source = settings.tree_dir / index
    metadata = source / "tuf"
    if not (metadata / "timestamp.json").is_file():
        raise click.UsageError(f"index {index!r} has no signed tree under {source}")
    if directory.exists() and any(directory.iterdir()):
        raise click.UsageError(f"{directory} is not empty")
    shutil.copytree(metadata, directory / "metadata", dirs_exist_ok=True)
    for part in ("simple", "packages"):
        if (source / part).is_dir():
            shutil.copytree(source / part, directory / "targets" / part, dirs_exist_ok=True)
    shutil.copyfile(metadata / "1.root.json", directory / "initial_root.json")
    if targetpath is None:
        targetpath = _a_target(directory / "targets")
    (directory / "targetpath").write_text(targetpath + "\n")
    # The suite runs refresh under `faketime "<this>"`: the moment of export,
    # when every role is valid, so the exported data never goes stale.
    ts = Metadata[Timestamp].from_file(str(metadata / "timestamp.json")).signed
    moment = min(datetime.now(UTC), ts.expires)
    (directory / "faketime").write_text(moment.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    click.echo(f"exported index {index} to {directory} (target {targetpath})")


def _a_target(targets: Path) -> str:
    """A distribution of the export (from its hashed name), else the project list."""
    for path in sorted(targets.glob("packages/**/*")):
        head, _, name = path.name.partition(".")
        if path.is_file() and _is_hash(head) and not name.endswith(".metadata"):
            return f"{path.parent.relative_to(targets).as_posix()}/{name}"
    return "simple/index.html"


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
