"""One index's TUF repository in the tree: bins, snapshot and timestamp, signed on write.

Layout under ``<tree>/<index>/tuf/`` (consistent snapshots): every ``N.root.json``
(never deleted) and ``root.json`` (the latest), ``N.targets.json``,
``N.bins-xxx.json``, ``N.snapshot.json`` and ``timestamp.json``. A round writes the
touched bins, then a snapshot, then the timestamp by atomic rename: that rename is
the commit point, so a reader sees the old consistent snapshot or the new one.

The snapshot and timestamp stay parsed in memory between rounds (re-read only
when another process replaced ``timestamp.json``); a bin is parsed when touched.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

from tilsit.store.fs import fsync_dir
from tilsit.store.tree import Tree
from tilsit.trust.compressed import UnsyncedWrites, write_metadata
from tilsit.trust.keyring import load_keys
from tilsit.trust.keys import SERIALIZER, KeySet, TrustSettings, trust_dir
from tilsit.trust.layout import hashed_path, signable, tuf_dir
from tilsit.trust.published import Published, load_published, save_published

__all__ = ["Batch", "IndexRepository", "SharedSigning", "Signing", "Undo"]

_VERSIONED = re.compile(r"(\d+)\.(.+)\.json")


_ABSENT = object()
Undo = list[tuple[str, object]]  # (path, what it was before: a value, or _ABSENT)


@dataclass
class Batch:
    """What one render changed in an index: target path -> its file, or None if removed.

    Every change is logged with what it replaced, so a render can take back one
    project's part (:meth:`undo_to` a :meth:`mark`, or :meth:`undo` what
    :meth:`since` returned) in what that part changed. Copying the whole batch per
    project instead made a render of 100,000 projects (a rebuild, a first load)
    quadratic: 400,000 targets copied and compared for each project.
    """

    changes: dict[str, TargetFile | None] = field(default_factory=dict)
    _log: Undo = field(default_factory=list)

    def _set(self, path: str, value: TargetFile | None) -> None:
        self._log.append((path, self.changes.get(path, _ABSENT)))
        self.changes[path] = value

    def upsert(self, path: str, sha256: str, length: int) -> bool:
        """Record a target; False (and nothing recorded) if the path cannot be signed."""
        if not signable(path):
            return False
        self._set(path, TargetFile(length, {"sha256": sha256}, path))
        return True

    def remove(self, path: str) -> None:
        if signable(path):
            self._set(path, None)

    def mark(self) -> int:
        """A point to take changes back to."""
        return len(self._log)

    def since(self, mark: int) -> Undo:
        """The changes made after ``mark``, to :meth:`undo` later."""
        return self._log[mark:]

    def undo_to(self, mark: int) -> None:
        """Take back every change made after ``mark``."""
        while len(self._log) > mark:
            path, was = self._log.pop()
            self._restore(path, was)

    def undo(self, changes: Undo) -> None:
        """Take back ``changes`` (from :meth:`since`), newest first; logged in turn."""
        for path, was in reversed(changes):
            self._log.append((path, self.changes.get(path, _ABSENT)))
            self._restore(path, was)

    def settle(self) -> None:
        """Keep every change so far for good: no earlier mark is used again (the log
        of a render of 100,000 projects would otherwise hold 400,000 entries)."""
        self._log.clear()

    def _restore(self, path: str, was: object) -> None:
        if was is _ABSENT:
            self.changes.pop(path, None)
        else:
            assert was is None or isinstance(was, TargetFile)
            self.changes[path] = was


def _sign(md: Metadata[Targets] | Metadata[Snapshot] | Metadata[Timestamp], keys: KeySet) -> bytes:
    md.signatures.clear()
    md.sign(keys.online, append=True)
    return md.to_bytes(SERIALIZER)


class SharedSigning(Protocol):
    """Where hosts sharing a database sign one at a time (tilsit.trust.shared)."""

    def signing(self, index: str) -> AbstractContextManager[object]: ...

    def pull(self, repo: IndexRepository) -> None: ...

    def push(self, repo: IndexRepository) -> None: ...


class IndexRepository:
    def __init__(
        self,
        tree: Tree,
        index: str,
        keys: KeySet,
        settings: TrustSettings,
        shared: SharedSigning | None = None,
    ) -> None:
        self.tree = tree
        self.index = index
        self.keys = keys
        self.settings = settings
        # Several hosts on one database: each round under the index's cluster lock,
        # from the newest signed state and published for the others (trust.shared).
        self.shared = shared
        self.dir = tuf_dir(index)
        self._stat: tuple[int, int] | None = None
        self._timestamp: Metadata[Timestamp] | None = None
        self._snapshot: Metadata[Snapshot] | None = None
        # The highest versions ever published (kept outside the tree): nothing
        # signed here goes at or below them, even after the tree was lost.
        self._published = load_published(keys.data, index)

    # -- reading the current state -------------------------------------------------

    def _path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def exists(self) -> bool:
        return self.tree.path(self._path("timestamp.json")).exists()

    def _current(self) -> tuple[Metadata[Timestamp], Metadata[Snapshot]]:
        st = os.stat(self.tree.path(self._path("timestamp.json")))
        key = (st.st_ino, st.st_mtime_ns)
        if self._stat != key or self._timestamp is None or self._snapshot is None:
            raw = self.tree.read(self._path("timestamp.json"))
            assert raw is not None
            self._timestamp = Metadata[Timestamp].from_bytes(raw)
            version = self._timestamp.signed.snapshot_meta.version
            snap = self.tree.read(self._path(f"{version}.snapshot.json"))
            if snap is None:
                raise FileNotFoundError(f"{self.dir}/{version}.snapshot.json is missing")
            self._snapshot = Metadata[Snapshot].from_bytes(snap)
            self._stat = key
        return self._timestamp, self._snapshot

    def timestamp(self) -> Metadata[Timestamp]:
        return self._current()[0]

    def snapshot(self) -> Metadata[Snapshot]:
        return self._current()[1]

    def load_bin(self, name: str, version: int | None = None) -> Metadata[Targets]:
        if version is None:
            version = self.snapshot().signed.meta[f"{name}.json"].version
        raw = self.tree.read(self._path(f"{version}.{name}.json"))
        if raw is None:
            raise FileNotFoundError(f"{self.dir}/{version}.{name}.json is missing")
        return Metadata[Targets].from_bytes(raw)

    def targets(self) -> dict[str, TargetFile]:
        """Every target the current snapshot lists (parses every bin: for tests and tools)."""
        found: dict[str, TargetFile] = {}
        for name in self.keys.bins.get_roles():
            found.update(self.load_bin(name).signed.targets)
        return found

    # -- writing -------------------------------------------------------------------

    def _write(self, name: str, data: bytes) -> None:
        self.tree.write(self._path(name), data)

    def _write_versioned(self, name: str, data: bytes) -> None:
        """An immutable ``N.<role>.json``, with its gzip copy (trust.compressed)."""
        write_metadata(self.tree, self._path(name), data)

    def _sync_trusted(self) -> bool:
        """Copy root versions and targets.json the index lacks; True if targets changed."""
        for number, raw in enumerate(self.keys.roots, 1):
            if self.tree.read(self._path(f"{number}.root.json")) is None:
                self._write(f"{number}.root.json", raw)
        if self.tree.read(self._path("root.json")) != self.keys.roots[-1]:
            self._write("root.json", self.keys.roots[-1])
        version = self.keys.targets.signed.version
        if self.tree.read(self._path(f"{version}.targets.json")) != self.keys.targets_bytes:
            self._write_versioned(f"{version}.targets.json", self.keys.targets_bytes)
            return True
        return False

    def create(self, now: datetime) -> None:
        """Root chain, targets, every bin empty, one snapshot and a timestamp.

        At version 1 for a new index; above every version ever published for an index
        whose tree was emptied or lost (so cached clients see no rollback).
        """
        self._sync_trusted()
        floor = self._published
        start = floor.bins + 1
        empty = Metadata(
            Targets(version=start, expires=now + timedelta(seconds=self.settings.bins_expiry))
        )
        # An empty bin's signed bytes do not name the bin: sign once, link the rest.
        data = _sign(empty, self.keys)
        names = list(self.keys.bins.get_roles())
        first = self.tree.path(self._path(f"{start}.{names[0]}.json"))
        self._write_versioned(first.name, data)
        for name in names[1:]:
            target = first.with_name(f"{start}.{name}.json")
            target.unlink(missing_ok=True)
            os.link(first, target)
            if first.with_name(f"{first.name}.gz").exists():
                copy = target.with_name(f"{target.name}.gz")
                copy.unlink(missing_ok=True)
                os.link(first.with_name(f"{first.name}.gz"), copy)
        fsync_dir(first.parent)
        snapshot = Metadata(Snapshot())
        snapshot.signed.meta = {f"{n}.json": MetaFile(start) for n in names}
        snapshot.signed.meta["targets.json"] = MetaFile(self.keys.targets.signed.version)
        timestamp = Metadata(Timestamp())
        # _commit bumps both above what was published (to 1 for a new index).
        snapshot.signed.version = floor.snapshot
        timestamp.signed.version = floor.timestamp
        self._published = floor.at_least(Published(bins=start))
        self._commit(snapshot, timestamp, now)

    def _commit(
        self, snapshot: Metadata[Snapshot], timestamp: Metadata[Timestamp], now: datetime
    ) -> None:
        snapshot.signed.version = max(snapshot.signed.version, self._published.snapshot) + 1
        snapshot.signed.expires = now + timedelta(seconds=self.settings.snapshot_expiry)
        snap_bytes = _sign(snapshot, self.keys)
        self._write_versioned(f"{snapshot.signed.version}.snapshot.json", snap_bytes)
        self._commit_timestamp(snapshot, snap_bytes, timestamp, now)

    def _commit_timestamp(
        self,
        snapshot: Metadata[Snapshot],
        snap_bytes: bytes | None,
        timestamp: Metadata[Timestamp],
        now: datetime,
    ) -> None:
        if snap_bytes is not None:
            timestamp.signed.snapshot_meta = MetaFile(
                snapshot.signed.version,
                len(snap_bytes),
                {"sha256": hashlib.sha256(snap_bytes).hexdigest()},
            )
        timestamp.signed.version = max(timestamp.signed.version, self._published.timestamp) + 1
        timestamp.signed.expires = now + timedelta(seconds=self.settings.timestamp_expiry)
        ts_bytes = _sign(timestamp, self.keys)
        # Recorded durably before the commit point, so no published version is ever lost.
        self._published = self._published.at_least(
            Published(timestamp.signed.version, snapshot.signed.version)
        )
        save_published(self.keys.data, self.index, self._published)
        self._write("timestamp.json", ts_bytes)
        st = os.stat(self.tree.path(self._path("timestamp.json")))
        self._stat = (st.st_ino, st.st_mtime_ns)
        self._timestamp = timestamp
        self._snapshot = snapshot

    def round(
        self,
        now: datetime,
        changes: Mapping[str, TargetFile | None] | None = None,
        *,
        resign: Iterable[str] = (),
        replace: bool = False,
        snapshot_due: bool = False,
        timestamp_due: bool = False,
    ) -> list[str]:
        """Sign one round and return the bins it wrote (see :meth:`_round`).

        With hosts sharing a database, one host at a time signs an index: under its
        cluster lock, this tree first takes the newest metadata any host signed (so
        every version goes above it), and the round's result is stored for the others.
        """
        shared = self.shared
        with nullcontext() if shared is None else shared.signing(self.index):
            if shared is not None:
                shared.pull(self)
            written = self._round(
                now,
                changes,
                resign=resign,
                replace=replace,
                snapshot_due=snapshot_due,
                timestamp_due=timestamp_due,
            )
            if shared is not None:
                shared.push(self)
        return written

    def install(self, name: str, data: bytes) -> None:
        """Place metadata another host signed: ``N.<role>.json`` (with its gzip copy) or
        ``timestamp.json``, which goes last (the commit point, as in a round)."""
        if name == "timestamp.json":
            self._write(name, data)
        else:
            self._write_versioned(name, data)

    def _round(
        self,
        now: datetime,
        changes: Mapping[str, TargetFile | None] | None = None,
        *,
        resign: Iterable[str] = (),
        replace: bool = False,
        snapshot_due: bool = False,
        timestamp_due: bool = False,
    ) -> list[str]:
        """Sign one round and return the bins it wrote.

        ``changes`` are applied to the bins they hash to (a bin whose targets end up
        unchanged is left alone); ``resign`` bins get a new version even if unchanged;
        ``replace`` makes ``changes`` the whole target set and re-signs every bin.
        Then a snapshot (if any bin or targets.json changed, or ``snapshot_due``) and a
        timestamp (if the snapshot changed or ``timestamp_due``).
        """
        # Another process (a `tilsit rebuild`) may have published since this one last
        # looked: re-read the record so it never goes down.
        self._published = self._published.at_least(load_published(self.keys.data, self.index))
        if not self.exists():
            self.create(now)
        new_targets = self._sync_trusted()
        timestamp, snapshot = self._current()
        bins = self.keys.bins
        old_cut = self._cut_of(snapshot)
        if old_cut is not None:
            return self._recut(now, changes or {}, old_cut, snapshot, timestamp)
        grouped: dict[str, dict[str, TargetFile | None]] = {}
        for path, target in (changes or {}).items():
            grouped.setdefault(bins.get_role_for_target(path), {})[path] = target
        # A tree older than what was published (restored from a backup): every bin
        # goes above the highest bin version ever published.
        stale = timestamp.signed.version < self._published.timestamp
        forced = set(resign)
        if replace or stale or self._signed_by_another_key(timestamp):
            forced = set(bins.get_roles())
        names = set(grouped) | forced
        written: list[str] = []
        # New bin versions are new names no snapshot lists yet: written without a
        # fsync each, made durable together before the snapshot that lists them.
        unsynced = UnsyncedWrites(self.tree)
        for name in sorted(names):
            md = self.load_bin(name)
            targets = md.signed.targets
            before = dict(targets)
            if replace:
                targets.clear()
            for path, target in grouped.get(name, {}).items():
                if target is None:
                    targets.pop(path, None)
                else:
                    targets[path] = target
            if targets == before and name not in forced:
                continue
            floor = self._published.bins if stale else 0
            md.signed.version = max(md.signed.version, floor) + 1
            self._published = self._published.at_least(Published(bins=md.signed.version))
            md.signed.expires = now + timedelta(seconds=self.settings.bins_expiry)
            # The hashed links a bin lists are in place before the bin is written.
            unsynced.write(self._path(f"{md.signed.version}.{name}.json"), _sign(md, self.keys))
            snapshot.signed.meta[f"{name}.json"] = MetaFile(md.signed.version)
            written.append(name)
        unsynced.sync()
        if new_targets:
            snapshot.signed.meta["targets.json"] = MetaFile(self.keys.targets.signed.version)
        if written or new_targets or snapshot_due:
            self._commit(snapshot, timestamp, now)
        elif timestamp_due:
            self._commit_timestamp(snapshot, None, timestamp, now)
        return written

    def _cut_of(self, snapshot: Metadata[Snapshot]) -> SuccinctRoles | None:
        """The bins the snapshot's targets.json delegates to, when that is not the
        current targets.json's cut (a rebin, or a crash while re-cutting for one)."""
        listed = snapshot.signed.meta["targets.json"].version
        if listed == self.keys.targets.signed.version:
            return None
        raw = self.tree.read(self._path(f"{listed}.targets.json"))
        if raw is None:
            raise FileNotFoundError(f"{self.dir}/{listed}.targets.json is missing")
        delegations = Metadata[Targets].from_bytes(raw).signed.delegations
        old = None if delegations is None else delegations.succinct_roles
        if old is None or old.bit_length == self.keys.bins.bit_length:
            return None
        return old

    def _recut(
        self,
        now: datetime,
        changes: Mapping[str, TargetFile | None],
        old: SuccinctRoles,
        snapshot: Metadata[Snapshot],
        timestamp: Metadata[Timestamp],
    ) -> list[str]:
        """Re-cut every target into the bins targets.json now delegates to, as one round.

        Bins are prefixes of sha256(path), so the old and the new bins that share a
        prefix of the smaller bit length hold the same targets: each such group is
        read, split or merged, and written, one group at a time (what is held is one
        group's bins, never the index). Every new bin goes above the highest bin
        version ever published, whatever its name held before. The snapshot keeps
        every name it listed (TUF clients refuse a snapshot that drops one), so a
        bin name the new cut does not have stays listed at its last version, never
        fetched again. The timestamp, written last, commits; a crash before it
        leaves the old snapshot current, and the next round re-cuts again.
        """
        new = self.keys.bins
        coarse = min(old.bit_length, new.bit_length)

        def group(role: str, bits: int) -> int:
            return int(role.rsplit("-", 1)[1], 16) >> (bits - coarse)

        old_groups: dict[int, list[str]] = {}
        for name in old.get_roles():
            old_groups.setdefault(group(name, old.bit_length), []).append(name)
        new_groups: dict[int, list[str]] = {}
        for name in new.get_roles():
            new_groups.setdefault(group(name, new.bit_length), []).append(name)
        pending: dict[int, dict[str, TargetFile | None]] = {}
        for path, target in changes.items():
            role = new.get_role_for_target(path)
            pending.setdefault(group(role, new.bit_length), {})[path] = target
        version = self._published.bins + 1
        expires = now + timedelta(seconds=self.settings.bins_expiry)
        meta = dict(snapshot.signed.meta)
        meta["targets.json"] = MetaFile(self.keys.targets.signed.version)
        written: list[str] = []
        batch = UnsyncedWrites(self.tree)
        for number in range(1 << coarse):
            found: dict[str, TargetFile] = {}
            for name in old_groups.get(number, []):
                found.update(self.load_bin(name).signed.targets)
            for path, target in pending.get(number, {}).items():
                if target is None:
                    found.pop(path, None)
                else:
                    found[path] = target
            split: dict[str, dict[str, TargetFile]] = {}
            for path, target in found.items():
                split.setdefault(new.get_role_for_target(path), {})[path] = target
            for name in new_groups.get(number, []):
                md = Metadata(Targets(version=version, expires=expires))
                md.signed.targets = dict(sorted(split.get(name, {}).items()))
                batch.write(self._path(f"{version}.{name}.json"), _sign(md, self.keys))
                meta[f"{name}.json"] = MetaFile(version)
                written.append(name)
        batch.sync()  # every new bin durable before the snapshot that names them
        self._published = self._published.at_least(Published(bins=version))
        snapshot.signed.meta = meta
        self._commit(snapshot, timestamp, now)
        return written

    def _signed_by_another_key(self, timestamp: Metadata[Timestamp]) -> bool:
        """Whether the index still carries an old online key's signatures (a rotation
        whose re-signing a crash interrupted): then every bin is re-signed."""
        return self.keys.online.public_key.keyid not in timestamp.signatures

    def hashed_path(self, target: str, sha256: str) -> str:
        return hashed_path(self.index, target, sha256)

    def is_bin(self, role: str) -> bool:
        return self.keys.bins.is_delegated_role(role)

    def role_for(self, path: str) -> str:
        """The bin that holds ``path`` in the current cut."""
        return self.keys.bins.get_role_for_target(path)


class Signing:
    """Every index's repository, signed with one server key set."""

    def __init__(self, tree: Tree, keys: KeySet, settings: TrustSettings) -> None:
        self.tree = tree
        self.keys = keys
        self.settings = settings
        self.shared: SharedSigning | None = None  # set when hosts share a database
        self._repos: dict[str, IndexRepository] = {}
        self._trust_stat = self._stat_trust()

    def _stat_trust(self) -> int:
        return os.stat(trust_dir(self.keys.data)).st_mtime_ns

    def repo(self, index: str) -> IndexRepository:
        # `tilsit keys rotate` in another process adds files to <data>/trust/: a
        # running server must sign with the new online key from then on.
        if self._stat_trust() != self._trust_stat:
            self.use_keys(load_keys(self.keys.data))
        repo = self._repos.get(index)
        if repo is None or repo.keys is not self.keys:
            repo = self._repos[index] = IndexRepository(
                self.tree, index, self.keys, self.settings, self.shared
            )
        return repo

    def latest_keys(self) -> KeySet:
        """The key set on disk now, without switching this process's signing to it."""
        if self._stat_trust() != self._trust_stat:
            return load_keys(self.keys.data)
        return self.keys

    def use_keys(self, keys: KeySet) -> None:
        self.keys = keys
        self._repos.clear()
        self._trust_stat = self._stat_trust()

    def indexes(self) -> list[str]:
        """Indexes with TUF metadata in the tree."""
        return sorted(
            p.parent.parent.name for p in self.tree.root.glob("*/tuf/timestamp.json") if p.is_file()
        )


def versioned(name: str) -> tuple[int, str] | None:
    """``(N, role)`` for ``N.role.json``, else None."""
    match = _VERSIONED.fullmatch(name)
    return (int(match.group(1)), match.group(2)) if match else None
