"""Keeping an index's TUF metadata fresh, and sweeping what no client can still need.

Re-signing: a role is due when less than half of its lifetime is left, so an origin
that sees no uploads never serves an expired timestamp (the loop runs every few
minutes; half a day of slack covers a stopped server being restarted).

Sweeping (PEP 458's mark and sweep from the latest timestamp): the current
snapshot and every snapshot superseded less than ``grace`` seconds ago are marked,
with the bin versions they list and the ``<sha256>.<name>`` links those bins list.
Older snapshot and bin versions, and links only they listed, are deleted. A
snapshot's superseding time is the mtime of the next snapshot version, so no extra
state is kept (and a ``cp -a`` copy keeps it). Root and targets versions are never
deleted. The same sweep serves an index this server signs (:class:`IndexRepository`)
and a mirror carrying its origin's metadata (:class:`~tilsit.trust.mirror.CarriedMetadata`),
through :class:`Sweepable`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tuf.api.metadata import Metadata, Snapshot, Targets, Timestamp

from tilsit.store.tree import Tree
from tilsit.trust.repository import IndexRepository, versioned

__all__ = ["Refreshed", "Sweepable", "Swept", "refresh", "sweep"]


class Sweepable(Protocol):
    """An index's TUF metadata directory, as the sweep reads it."""

    tree: Tree
    dir: str  # tree-relative, e.g. "main/tuf"

    def exists(self) -> bool: ...
    def timestamp(self) -> Metadata[Timestamp]: ...
    def is_bin(self, role: str) -> bool: ...
    def load_bin(self, name: str, version: int | None = None) -> Metadata[Targets]: ...
    def hashed_path(self, target: str, sha256: str) -> str: ...


@dataclass
class Refreshed:
    bins: list[str] = field(default_factory=list)
    snapshot: bool = False
    timestamp: bool = False

    def __bool__(self) -> bool:
        return bool(self.bins or self.snapshot or self.timestamp)


def _due(expires: datetime, lifetime: int, now: datetime) -> bool:
    return expires - now < timedelta(seconds=lifetime / 2)


def refresh(repo: IndexRepository, now: datetime) -> Refreshed:
    """Re-sign every role of ``repo`` with less than half its lifetime left."""
    settings = repo.settings
    if not repo.exists():
        repo.round(now)
        return Refreshed(snapshot=True, timestamp=True)
    due_bins = [
        name
        for name, expires in repo.bin_expiries().items()
        if _due(expires, settings.bins_expiry, now)
    ]
    before_ts = repo.timestamp().signed.version
    before_snap = repo.snapshot().signed.version
    written = repo.round(
        now,
        resign=due_bins,
        snapshot_due=_due(repo.snapshot().signed.expires, settings.snapshot_expiry, now),
        timestamp_due=_due(repo.timestamp().signed.expires, settings.timestamp_expiry, now),
    )
    return Refreshed(
        bins=written,
        snapshot=repo.snapshot().signed.version != before_snap,
        timestamp=repo.timestamp().signed.version != before_ts,
    )


@dataclass
class Swept:
    snapshots: list[int] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)  # "N.bins-x.json"
    links: list[str] = field(default_factory=list)  # tree-relative paths


def sweep(repo: Sweepable, now: datetime, grace: int) -> Swept:
    """Delete superseded snapshot and bin versions (and their hashed links) older than grace."""
    swept = Swept()
    if not repo.exists():
        return swept
    directory = repo.tree.path(repo.dir)
    current = repo.timestamp().signed.snapshot_meta.version
    snapshots: dict[int, float] = {}
    bin_files: dict[str, list[int]] = {}
    for entry in directory.iterdir():
        parsed = versioned(entry.name)
        if parsed is None:
            continue
        version, role = parsed
        if role == "snapshot":
            snapshots[version] = entry.stat().st_mtime
        elif repo.is_bin(role):
            bin_files.setdefault(role, []).append(version)
    cutoff = (now - timedelta(seconds=grace)).timestamp()
    ordered = sorted(v for v in snapshots if v <= current)
    marked = [current]
    for older, newer in itertools.pairwise(ordered):
        # ``older`` stopped being current when ``newer`` was written.
        if older != current and snapshots[newer] > cutoff:
            marked.append(older)
    keep_from = min(marked)
    # Bin versions the marked snapshots list: the oldest one kept per bin.
    marked_bins: dict[str, set[int]] = {}
    for version in marked:
        raw = repo.tree.read(f"{repo.dir}/{version}.snapshot.json")
        if raw is None:
            continue
        snap = Metadata[Snapshot].from_bytes(raw)
        for name, meta in snap.signed.meta.items():
            role = name.removesuffix(".json")
            if repo.is_bin(role):
                marked_bins.setdefault(role, set()).add(meta.version)
    for role, versions in sorted(bin_files.items()):
        kept = marked_bins.get(role)
        if not kept:
            continue
        old = [v for v in versions if v < min(kept)]
        if not old:
            continue
        still_listed: set[tuple[str, str]] = set()
        for version in kept:
            for path, target in repo.load_bin(role, version).signed.targets.items():
                still_listed.add((path, target.hashes["sha256"]))
        for version in sorted(old):
            for path, target in repo.load_bin(role, version).signed.targets.items():
                sha = target.hashes["sha256"]
                if (path, sha) not in still_listed:
                    link = repo.hashed_path(path, sha)
                    if repo.tree.path(link).exists():
                        repo.tree.remove(link)
                        swept.links.append(link)
                    still_listed.add((path, sha))  # removed once
            (directory / f"{version}.{role}.json").unlink(missing_ok=True)
            swept.bins.append(f"{version}.{role}.json")
    for version in sorted(snapshots):
        if version < keep_from:
            (directory / f"{version}.snapshot.json").unlink(missing_ok=True)
            swept.snapshots.append(version)
    return swept
