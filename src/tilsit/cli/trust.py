"""``tilsit keys init|show|rotate|resign|rebin`` and ``tilsit tuf refresh|export-static``:
the server's TUF keys and its signed tree."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from tilsit.cli.options import fail, instance_options, open_instance_for_command
from tilsit.config import Settings
from tilsit.freshness import Indexes, freshness_pass, largest_index, recut
from tilsit.instance import require_data_dir
from tilsit.trust.bincount import MAX_BITS, ideal_bits
from tilsit.trust.expiry import expiry_report
from tilsit.trust.keyring import load_keys
from tilsit.trust.keys import (
    KeyError_,
    KeySet,
    init_keys,
    keys_dir,
    trust_dir,
)
from tilsit.trust.rotation import resign, rotate_online_key, rotate_root_keys
from tilsit.trust.settings import trust_settings, utcnow

__all__ = ["keys", "tuf"]


def _describe(keys: KeySet, tree: Path) -> None:
    root = keys.root.signed
    click.echo(f"root version {root.version}, expires {root.expires.isoformat()}")
    role = root.roles["root"]
    click.echo(f"root keys ({role.threshold} of {len(role.keyids)} sign a new root):")
    for keyid in role.keyids:
        click.echo(f"  {keyid}")
    click.echo(f"targets key: {root.roles['targets'].keyids[0]}")
    click.echo(f"online key (timestamp, snapshot, bins): {root.roles['timestamp'].keyids[0]}")
    click.echo(f"hashed bins: {1 << keys.bins.bit_length} (tilsit keys rebin changes them)")
    report = expiry_report(keys, tree, utcnow())
    for name in ("root", "targets"):
        shown = report[name]
        click.echo(f"{name} version {shown['version']} expires {shown['expires']}")
    for index, roles in report["indexes"].items():
        for role, shown in roles.items():
            if isinstance(shown, dict):
                click.echo(
                    f"  index {index}: {role} version {shown['version']} expires {shown['expires']}"
                )
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")
    first = hashlib.sha256(keys.roots[0]).hexdigest()
    click.echo(f"1.root.json sha256 (what clients pin): {first}")
    for path in sorted(tree.glob("*/tuf/1.root.json")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        click.echo(f"  index {path.parent.parent.name}: {digest}  /{path.parent.parent.name}/tuf/")


@click.group()
def keys() -> None:
    """The server's TUF signing keys (one set for every index)."""


@keys.command("init")
@click.option("--root-keys", type=int, default=None, help="Root keys to make (tuf_root_keys).")
@click.option(
    "--root-threshold",
    type=int,
    default=None,
    help="Root keys needed to sign a new root (tuf_root_threshold).",
)
@click.option(
    "--offline",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write the root and targets keys here instead of <data>/keys (keep DIR offline).",
)
@instance_options
def keys_init(
    settings: Settings, root_keys: int | None, root_threshold: int | None, offline: Path | None
) -> None:
    """Make root, targets and online keys and sign root version 1; never overwrites."""
    try:
        made = init_keys(
            settings.data,
            trust_settings(settings),
            utcnow(),
            root_keys=settings.tuf_root_keys if root_keys is None else root_keys,
            root_threshold=settings.tuf_root_threshold
            if root_threshold is None
            else root_threshold,
            offline=offline,
        )
    except (KeyError_, ValueError) as exc:
        fail(str(exc))
        return
    where = offline if offline is not None else keys_dir(settings.data)
    click.echo(f"root and targets keys in {where}; online key in {keys_dir(settings.data)}")
    _describe(made, settings.tree_dir)


@keys.command("show")
@instance_options
def keys_show(settings: Settings) -> None:
    """Root keyids and the sha256 of each index's 1.root.json (what clients pin)."""
    require_data_dir(settings)  # loading takes a lock file there: never make the directory
    try:
        _describe(load_keys(settings.data), settings.tree_dir)
    except KeyError_ as exc:
        fail(str(exc))


_KEYS_OPTION = click.option(
    "--keys",
    "secret",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Directory holding the root and targets keys (default <data>/keys).",
)


def _resign_indexes(settings: Settings, change: Callable[[KeySet], KeySet]) -> KeySet | None:
    """Apply a root/targets change under the render lock, then re-sign every index."""
    instance = open_instance_for_command(settings)
    signing = instance.signing
    with instance.renderer.locked():
        try:
            changed = change(signing.keys)
        except (KeyError_, ValueError) as exc:
            fail(str(exc))
            return None
        signing.use_keys(changed)
        for index in signing.indexes():
            # A new online key re-signs every bin (the round sees the old key on the
            # timestamp); new root/targets versions are copied in and a snapshot cut.
            signing.repo(index).round(utcnow())
            click.echo(f"re-signed index {index}")
    click.echo(f"root version {changed.root.signed.version} written to {trust_dir(settings.data)}")
    _describe(changed, settings.tree_dir)
    return changed


@keys.command("rotate")
@_KEYS_OPTION
@click.option(
    "--root",
    "root",
    is_flag=True,
    help="Replace the root keys (not the online key): the new root is signed by the"
    " old root threshold and every new key.",
)
@click.option("--root-keys", type=click.IntRange(min=1), default=None, help="New root keys.")
@click.option(
    "--root-threshold", type=click.IntRange(min=1), default=None, help="New root threshold."
)
@instance_options
def keys_rotate(
    settings: Settings,
    secret: Path | None,
    root: bool,
    root_keys: int | None,
    root_threshold: int | None,
) -> None:
    """Replace the online key (or, with --root, the root keys): a new root version."""
    trust = trust_settings(settings)
    if not root:
        if root_keys is not None or root_threshold is not None:
            raise click.UsageError("--root-keys and --root-threshold go with --root")
        _resign_indexes(settings, lambda k: rotate_online_key(k, trust, utcnow(), secret))
        return
    count = settings.tuf_root_keys if root_keys is None else root_keys
    threshold = settings.tuf_root_threshold if root_threshold is None else root_threshold
    rotated = _resign_indexes(
        settings, lambda k: rotate_root_keys(k, trust, utcnow(), secret, count, threshold)
    )
    if rotated is not None:
        where = secret if secret is not None else keys_dir(settings.data)
        click.echo(f"new root keys in {where} (the old ones there are deleted)")


@keys.command("resign")
@_KEYS_OPTION
@instance_options
def keys_resign(settings: Settings, secret: Path | None) -> None:
    """Re-sign root and targets as new versions with fresh expiries (same keys)."""
    trust = trust_settings(settings)
    _resign_indexes(settings, lambda k: resign(k, trust, utcnow(), secret))


@keys.command("rebin")
@_KEYS_OPTION
@click.option(
    "--bits",
    type=click.IntRange(min=1, max=MAX_BITS),
    default=None,
    help="Bins = 2^BITS (default: the best count for the largest index, about 8*sqrt(targets)).",
)
@instance_options
def keys_rebin(settings: Settings, secret: Path | None, bits: int | None) -> None:
    """Re-cut every index's hashed bins: a new targets.json (signed with the targets key),
    then each index's bins re-signed. Clients follow it on their next refresh."""
    instance = open_instance_for_command(settings)
    indexes = Indexes(instance, instance.renderer.locked)
    largest = largest_index(instance, indexes)
    wanted = ideal_bits(largest) if bits is None else bits
    current = instance.signing.latest_keys().bins.bit_length
    click.echo(f"largest index: {largest} targets; bins now {1 << current}")
    if wanted == current:
        click.echo(f"already {1 << current} bins: nothing to do")
        return
    try:
        lines = recut(instance, indexes, wanted, secret)
    except (KeyError_, ValueError) as exc:
        fail(str(exc))
        return
    for line in lines:
        click.echo(line)


def refresh_all(settings: Settings) -> list[str]:
    """Re-sign due metadata and sweep every index now; one line per index that changed."""
    return freshness_pass(open_instance_for_command(settings))


@click.group("tuf")
def tuf() -> None:
    """The signed (TUF) side of the tree."""


@tuf.command("refresh")
@instance_options
def tuf_refresh(settings: Settings) -> None:
    """Re-sign metadata near expiry and sweep superseded versions now (for cron)."""
    for line in refresh_all(settings):
        click.echo(line)


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
