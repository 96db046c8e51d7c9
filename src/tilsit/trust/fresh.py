"""Keeping an index's TUF metadata fresh, and sweeping what no client can still need.

Re-signing: a role is due when less than half of its lifetime is left, so an origin
that sees no uploads never serves an expired timestamp (the loop runs every few
minutes; half a day of slack covers a stopped server being restarted).

Sweeping (PEP 458's mark and sweep from the latest timestamp): the current
snapshot and the newest ``keep`` snapshots superseded less than ``grace`` seconds
ago are marked, with the bin versions they list and the ``<sha256>.<name>`` links
those bins list. Older snapshot and bin versions, and links only they listed, are
deleted. A snapshot's superseding time is the mtime of the next snapshot version,
so no extra state is kept (and a ``cp -a`` copy keeps it). Root and targets
versions are never deleted. The same sweep serves an index this server signs
(:class:`IndexRepository`) and a mirror carrying its origin's metadata
(:class:`~tilsit.trust.mirror.CarriedMetadata`), through :class:`Sweepable`.

Both run beside uploads. Only what must not interleave with a signing round is
done under ``hold`` (the renderer's lock), in small steps that each release it:
re-signing ``STEP_BINS`` bins per round, and removing one bin role's links. Reading
bin expiries, snapshots and superseded bin versions needs no lock: a version a
snapshot lists is never rewritten, and a round only adds versions above it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tuf.api.metadata import Metadata, Timestamp

from tilsit.store.tree import Tree
from tilsit.trust.compressed import remove_metadata
from tilsit.trust.peek import bin_head
from tilsit.trust.repository import IndexRepository, versioned

__all__ = [
    "PAUSE_EVERY",
    "STEP_BINS",
    "STEP_BYTES",
    "STEP_LINKS",
    "Hold",
    "Pause",
    "Refreshed",
    "Sweepable",
    "Swept",
    "current_bins",
    "due_bins",
    "refresh",
    "sweep",
]

# What one hold of the lock re-signs: up to STEP_BINS bins (each a write and two
# fsyncs) or STEP_BYTES of bins (each parsed, signed and written whole), whichever
# comes first; at 100,000 projects a bin is ~76 kB, so 3-4 bins: about what one
# upload's round holds the lock for (an upload touches up to six bins). Each step is a round of its own (a snapshot and
# a timestamp). Figures: bench/tuf_sweep.py.
STEP_BINS = 4
STEP_BYTES = 256 << 10
# Links removed per hold of the lock by the sweep (each an unlink and a path check).
STEP_LINKS = 128

# Reads without the lock call ``pause()`` every PAUSE_EVERY files: serve passes a
# wait for the uploads in flight (tilsit.render.writes_first), so a pass over
# thousands of bins shares the interpreter with no upload.
PAUSE_EVERY = 64

Hold = Callable[[], AbstractContextManager[object]]
Pause = Callable[[], object]


def _no_pause() -> None:
    return None


def _no_hold() -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class Sweepable(Protocol):
    """An index's TUF metadata directory, as the sweep reads it (no cached state)."""

    tree: Tree
    dir: str  # tree-relative, e.g. "main/tuf"

    def is_bin(self, role: str) -> bool: ...
    def role_for(self, path: str) -> str: ...
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


def _read_timestamp(repo: Sweepable) -> Metadata[Timestamp] | None:
    raw = repo.tree.read(f"{repo.dir}/timestamp.json")
    return None if raw is None else Metadata[Timestamp].from_bytes(raw)


def _snapshot_versions(repo: Sweepable, version: int) -> dict[str, int] | None:
    """``{role: version}`` that a snapshot version lists, from plain JSON.

    Not through ``Metadata.from_bytes``: at 100,000 projects a snapshot lists 4,096
    bins, and building a ``MetaFile`` (with its dates parsed) for each entry of each of
    the ``keep`` + 1 snapshots a sweep reads made the sweep the largest CPU cost beside
    uploads. These are this server's own files, read as the round wrote them.
    """
    raw = repo.tree.read(f"{repo.dir}/{version}.snapshot.json")
    if raw is None:
        return None
    meta = json.loads(raw)["signed"]["meta"]
    return {name.removesuffix(".json"): int(entry["version"]) for name, entry in meta.items()}


def _current_snapshot(repo: Sweepable) -> dict[str, int] | None:
    """The versions the snapshot the timestamp names lists, read from the tree (never a
    cached copy)."""
    for _ in range(3):
        timestamp = _read_timestamp(repo)
        if timestamp is None:
            return None
        snapshot = _snapshot_versions(repo, timestamp.signed.snapshot_meta.version)
        if snapshot is not None:
            return snapshot
        # Superseded and swept between the two reads: the timestamp has moved on.
    return None


def current_bins(repo: Sweepable) -> dict[str, int]:
    """``{bin: version}`` of the current cut, as the current snapshot lists them (read
    from the tree; names of an older cut it still lists are left out)."""
    snapshot = _current_snapshot(repo)
    if snapshot is None:
        return {}
    return {role: version for role, version in snapshot.items() if repo.is_bin(role)}


def due_bins(
    repo: IndexRepository, now: datetime, pause: Pause = _no_pause
) -> list[tuple[str, int]]:
    """The current bins with less than half their lifetime left, with their sizes.

    Read without the lock and without parsing a bin: each current bin's head holds
    its expiry (:func:`~tilsit.trust.peek.bin_head`). A bin a round re-signed
    meanwhile may be re-signed once more, which costs a version and nothing else.
    """
    snapshot = _current_snapshot(repo)
    if snapshot is None:
        return []
    due = []
    for i, (role, version) in enumerate(sorted(snapshot.items())):
        if not repo.is_bin(role):
            continue
        if i % PAUSE_EVERY == 0:
            pause()
        try:
            head = bin_head(repo.tree.path(f"{repo.dir}/{version}.{role}.json"))
        except FileNotFoundError:  # superseded (and swept) since: signed moments ago
            continue
        if _due(head.expires, repo.settings.bins_expiry, now):
            due.append((role, head.size))
    return due


def _steps(due: list[tuple[str, int]], bins: int, size: int) -> list[list[str]]:
    steps: list[list[str]] = []
    room = 0
    for role, length in due:
        # A bin bigger than a whole step goes alone.
        if not steps or len(steps[-1]) >= bins or length > room:
            steps.append([])
            room = size
        steps[-1].append(role)
        room -= length
    return steps


def refresh(
    repo: IndexRepository,
    now: datetime,
    hold: Hold = _no_hold,
    *,
    latest: Callable[[], IndexRepository] | None = None,
    step_bins: int = STEP_BINS,
    step_bytes: int = STEP_BYTES,
    pause: Pause = _no_pause,
) -> Refreshed:
    """Re-sign every role of ``repo`` with less than half its lifetime left.

    Due bins are re-signed a step at a time (``step_bins`` bins or ``step_bytes``
    of them), each step a round under its own ``hold``, so a render waits for one
    step, never for the whole pass. ``latest()``, called under each hold, gives the
    repository to sign with then: a key rotation between two steps switches it.
    """
    settings = repo.settings

    def now_signing() -> IndexRepository:
        return repo if latest is None else latest()

    done = Refreshed()
    with hold():
        signing = now_signing()
        if not signing.exists():
            signing.round(now)
            return Refreshed(snapshot=True, timestamp=True)
    for step in _steps(due_bins(repo, now, pause), step_bins, step_bytes):
        with hold():
            signing = now_signing()
            before = signing.timestamp().signed.version
            done.bins += signing.round(now, resign=step)
            if signing.timestamp().signed.version != before:
                done.snapshot = done.timestamp = True
    with hold():
        signing = now_signing()
        # Versions, not the objects: a round re-signs the cached ones in place.
        timestamp, snapshot = signing.timestamp().signed, signing.snapshot().signed
        versions = (timestamp.version, snapshot.version)
        signing.round(
            now,
            snapshot_due=_due(snapshot.expires, settings.snapshot_expiry, now),
            timestamp_due=_due(timestamp.expires, settings.timestamp_expiry, now),
        )
        done.timestamp |= signing.timestamp().signed.version != versions[0]
        done.snapshot |= signing.snapshot().signed.version != versions[1]
    return done


@dataclass
class Swept:
    snapshots: list[int] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)  # "N.bins-x.json"
    links: list[str] = field(default_factory=list)  # tree-relative paths
    steps: int = 0  # holds of the lock


@dataclass
class _Plan:
    """What one sweep may delete, decided from the tree as it was when planned."""

    old_snapshots: list[int]
    floors: dict[str, int]  # per bin: the oldest version a marked snapshot lists
    listed: dict[str, int]  # per bin: the version the current snapshot lists
    bin_files: dict[str, list[int]]
    committed: tuple[int, int] | None  # timestamp.json's (inode, mtime) when planned


def _commit_mark(repo: Sweepable) -> tuple[int, int] | None:
    """What changes when a round commits: timestamp.json is replaced by a rename."""
    try:
        st = os.stat(repo.tree.path(f"{repo.dir}/timestamp.json"))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _plan(
    repo: Sweepable, now: datetime, grace: int, keep: int, pause: Pause = _no_pause
) -> _Plan | None:
    committed = _commit_mark(repo)
    timestamp = _read_timestamp(repo)
    if timestamp is None:
        return None
    directory = repo.tree.path(repo.dir)
    current = timestamp.signed.snapshot_meta.version
    snapshots: dict[int, float] = {}
    bin_files: dict[str, list[int]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            parsed = versioned(entry.name)
            if parsed is None:
                continue
            version, role = parsed
            if role == "snapshot":
                with contextlib.suppress(FileNotFoundError):
                    snapshots[version] = entry.stat().st_mtime
            elif repo.is_bin(role):
                bin_files.setdefault(role, []).append(version)
    cutoff = (now - timedelta(seconds=grace)).timestamp()
    ordered = sorted(v for v in snapshots if v <= current)
    # ``older`` stopped being current when ``newer`` was written: kept while that was
    # less than ``grace`` ago, and only the newest ``keep`` of them.
    recent = [
        older
        for older, newer in itertools.pairwise(ordered)
        if older != current and snapshots[newer] > cutoff
    ]
    marked = [current, *recent[-keep:]] if keep > 0 else [current]
    floors: dict[str, int] = {}
    listed: dict[str, int] = {}
    for version in marked:
        pause()
        snap = _snapshot_versions(repo, version)
        if snap is None:
            if version == current:
                return None  # the repository is not whole: delete nothing
            continue
        for role, bin_version in snap.items():
            if repo.is_bin(role):
                floors[role] = min(floors.get(role, bin_version), bin_version)
                if version == current:
                    listed[role] = bin_version
    keep_from = min(marked)
    old = sorted(v for v in snapshots if v < keep_from)
    return _Plan(old, floors, listed, bin_files, committed)


def _listed(repo: Sweepable, role: str, version: int) -> set[tuple[str, str]]:
    """The (path, sha256) pairs a bin version lists: plain JSON, no TargetFile objects
    (a third of the cost; the sweep trusts its own tree, as the signing round does)."""
    raw = repo.tree.read(f"{repo.dir}/{version}.{role}.json")
    if raw is None:  # swept by another pass: it lists nothing any more
        return set()
    targets = json.loads(raw)["signed"]["targets"]
    return {(path, target["hashes"]["sha256"]) for path, target in targets.items()}


def _versions_on_disk(repo: Sweepable, role: str) -> Iterable[int]:
    suffix = f".{role}.json"
    for name in os.listdir(repo.tree.path(repo.dir)):
        if name.endswith(suffix):
            parsed = versioned(name)
            if parsed is not None and parsed[1] == role:
                yield parsed[0]


def _sweep_bin(
    repo: Sweepable,
    role: str,
    old: list[int],
    kept_from: int,
    committed: Iterable[int],
    plan: _Plan,
    hold: Hold,
    swept: Swept,
) -> None:
    """Delete the ``old`` versions of one bin and the links only they list."""
    # Without the lock: old versions, and kept ones a snapshot lists, never change.
    gone = {version: _listed(repo, role, version) for version in old}
    still: set[tuple[str, str]] = set()
    read: dict[str, set[int]] = {}
    floors = {role: kept_from}

    def take(owner: str, versions: Iterable[int]) -> None:
        for version in versions:
            if version not in read.setdefault(owner, set()):
                still.update(_listed(repo, owner, version))
                read[owner].add(version)

    take(role, committed)
    unsure = set().union(*gone.values()) - still
    # After a re-cut of the bins (tilsit.trust.bincount), an old version of this bin
    # lists paths that now live in other bins: a link is live if the bin that holds
    # its path now lists it. Paths of a bin no marked snapshot names are left alone.
    for owner in sorted({repo.role_for(path) for path, _ in unsure} - {role}):
        floor = plan.floors.get(owner)
        if floor is None:
            still.update(pair for pair in unsure if repo.role_for(pair[0]) == owner)
            continue
        floors[owner] = floor
        listed = plan.listed.get(owner, floor)
        take(owner, [v for v in plan.bin_files.get(owner, []) if floor <= v <= listed])
    candidates = sorted(unsure - still)
    mark = plan.committed
    # At most STEP_LINKS removals per hold (a bin that changed with every upload for
    # an hour lists hundreds of superseded page copies); each hold looks again. No
    # candidate, no hold: deleting the old versions themselves needs no lock.
    for start in range(0, len(candidates), STEP_LINKS):
        with hold():
            swept.steps += 1
            # A round committed since the last look may list again a link an old
            # version listed: its versions are read under the lock, so no round can
            # list a link between this look and its removal. (A version no timestamp
            # committed, from a crashed round, is rewritten by the next round, which
            # places its own links.)
            now_mark = _commit_mark(repo)
            if now_mark != mark:
                mark = now_mark
                for owner, floor in floors.items():
                    take(owner, [v for v in _versions_on_disk(repo, owner) if v >= floor])
            for path, sha in candidates[start : start + STEP_LINKS]:
                if (path, sha) in still:
                    continue
                link = repo.hashed_path(path, sha)
                if repo.tree.path(link).exists():
                    repo.tree.remove(link)
                    swept.links.append(link)
    # Links first, then the bin: a crash in between leaves a bin the next sweep finds
    # again (below the floor), never a link nothing lists.
    for version in sorted(old):
        remove_metadata(repo.tree, f"{repo.dir}/{version}.{role}.json")
        swept.bins.append(f"{version}.{role}.json")


def sweep(
    repo: Sweepable,
    now: datetime,
    grace: int,
    keep: int = 16,
    hold: Hold = _no_hold,
    pause: Pause = _no_pause,
) -> Swept:
    """Delete superseded snapshot and bin versions (and their hashed links) that are
    older than ``grace`` or beyond the newest ``keep``; one bin per hold of the lock."""
    swept = Swept()
    plan = _plan(repo, now, grace, keep, pause)
    if plan is None:
        return swept
    # Snapshots first: once gone, no client reaches the old bins through them, and a
    # crash after this leaves bins below the floor, which the next plan finds again.
    # Unlocked: a round only ever adds snapshots above the current one.
    for version in plan.old_snapshots:
        remove_metadata(repo.tree, f"{repo.dir}/{version}.snapshot.json")
        swept.snapshots.append(version)
    for role, versions in sorted(plan.bin_files.items()):
        floor = plan.floors.get(role)
        if floor is None:
            continue  # no marked snapshot lists it: keep all (not a bin of this index)
        old = sorted(v for v in versions if v < floor)
        if not old:
            continue
        listed = plan.listed.get(role, floor)
        committed = sorted(v for v in versions if floor <= v <= listed)
        pause()  # each bin's old versions are read and parsed
        _sweep_bin(repo, role, old, floor, committed, plan, hold, swept)
    return swept


def snapshot_version(repo: Sweepable) -> int | None:
    """The version of the snapshot the timestamp names, from the tree (None if none)."""
    timestamp = _read_timestamp(repo)
    return None if timestamp is None else timestamp.signed.snapshot_meta.version
