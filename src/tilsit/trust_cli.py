"""``tilsit keys init|rotate|show`` and ``tilsit tuf refresh``: the server's TUF keys.

Registered on the main command group when :mod:`tilsit.cli` imports this module.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import click

from tilsit.cli import _open, instance_options, main
from tilsit.config import Settings
from tilsit.instance import require_data_dir
from tilsit.trust.expiry import expiry_report
from tilsit.trust.keys import (
    KeyError_,
    KeySet,
    init_keys,
    keys_dir,
    load_keys,
    trust_dir,
)
from tilsit.trust.loop import freshness_pass
from tilsit.trust.rotation import resign, rotate_online_key, rotate_root_keys
from tilsit.trust.settings import trust_settings, utcnow

__all__ = ["keys"]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _describe(keys: KeySet, tree: Path) -> None:
    root = keys.root.signed
    click.echo(f"root version {root.version}, expires {root.expires.isoformat()}")
    role = root.roles["root"]
    click.echo(f"root keys ({role.threshold} of {len(role.keyids)} sign a new root):")
    for keyid in role.keyids:
        click.echo(f"  {keyid}")
    click.echo(f"targets key: {root.roles['targets'].keyids[0]}")
    click.echo(f"online key (timestamp, snapshot, bins): {root.roles['timestamp'].keyids[0]}")
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
        _fail(str(exc))
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
        _fail(str(exc))


_KEYS_OPTION = click.option(
    "--keys",
    "secret",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Directory holding the root and targets keys (default <data>/keys).",
)


def _resign_indexes(settings: Settings, change: Callable[[KeySet], KeySet]) -> KeySet | None:
    """Apply a root/targets change under the render lock, then re-sign every index."""
    instance = _open(settings)
    signing = instance.signing
    with instance.renderer.locked():
        try:
            changed = change(signing.keys)
        except (KeyError_, ValueError) as exc:
            _fail(str(exc))
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


def refresh_all(settings: Settings) -> list[str]:
    """Re-sign due metadata and sweep every index now; one line per index that changed."""
    return freshness_pass(_open(settings))


def _tuf_group() -> click.Group:
    existing = main.commands.get("tuf")
    if isinstance(existing, click.Group):
        return existing

    @main.group("tuf")
    def tuf() -> None:
        """The signed (TUF) side of the tree."""

    return tuf


@_tuf_group().command("refresh")
@instance_options
def tuf_refresh(settings: Settings) -> None:
    """Re-sign metadata near expiry and sweep superseded versions now (for cron)."""
    for line in refresh_all(settings):
        click.echo(line)


main.add_command(keys)
