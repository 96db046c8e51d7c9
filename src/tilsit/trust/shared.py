"""Signing shared by the hosts of one PostgreSQL database: one host at a time, one set of bytes.

Each host renders into its own tree and signs after its render, but an index's rounds
take a cluster lock (:func:`~tilsit.db.cluster.cluster_lock`, ``tuf:<index>``), and
under it:

1. **pull**: when the database holds a timestamp newer than this tree's, its timestamp,
   snapshot and every bin (and targets) version that snapshot lists and this tree's
   snapshot lists at another version are written into the tree (replacing a file of
   that name with other bytes; the timestamp last, the commit point), so the round
   starts from the newest state any host signed and every version it signs goes above it;
2. the round signs this host's changes (none, when the other host rendered the same
   rows: the bins are equal and nothing is signed);
3. **push**: what the tree now publishes, when newer than what is stored, replaces the
   stored rows (``tuf_metadata``: one row per role, bounded), in one transaction.

Every host therefore serves the same signed bytes, and versions only go up across the
cluster. A pull that cannot complete refuses the round (:class:`SharedStateMissing`):
signing from an older state would sign a version at or below one already published.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from tuf.api.metadata import Metadata, Snapshot

from tilsit.db.cluster import cluster_lock
from tilsit.db.engine import Database
from tilsit.db.models import TufMetadataRow
from tilsit.trust.repository import IndexRepository

__all__ = ["SharedMetadata", "SharedStateMissing"]

log = logging.getLogger("tilsit.trust")


class SharedStateMissing(RuntimeError):
    """The stored metadata of an index is incomplete: this host cannot sign above it."""


def _role(meta_name: str) -> str:
    return meta_name.removesuffix(".json")


def _listed(snapshot: Metadata[Snapshot]) -> dict[str, int]:
    return {_role(name): meta.version for name, meta in snapshot.signed.meta.items()}


def _local_version(repo: IndexRepository) -> int:
    return repo.timestamp().signed.version if repo.exists() else 0


class SharedMetadata:
    """The :class:`~tilsit.trust.repository.SharedSigning` of hosts on one PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def signing(self, index: str) -> AbstractContextManager[object]:
        return cluster_lock(self.db, f"tuf:{index}", wait=True)

    def pull(self, repo: IndexRepository) -> None:
        """Write the stored metadata into the tree, when it is newer than the tree's."""
        local = _local_version(repo)
        with self.db.read() as session:
            stamp = session.get(TufMetadataRow, (repo.index, "timestamp"))
            if stamp is None or stamp.version <= local:
                return
            snap = session.get(TufMetadataRow, (repo.index, "snapshot"))
            if snap is None:
                raise SharedStateMissing(f"index {repo.index!r}: stored timestamp, no snapshot")
            snapshot = Metadata[Snapshot].from_bytes(snap.data)
            have = _listed(repo.snapshot()) if repo.exists() else {}
            # A file of that name already in the tree is not enough: a host that signed
            # on its own before sharing was on has its own bytes under the same name.
            wanted = {
                role: version
                for role, version in _listed(snapshot).items()
                if have.get(role) != version
            }
            rows = {
                row.role: row
                for row in session.scalars(
                    select(TufMetadataRow).where(
                        TufMetadataRow.index_name == repo.index,
                        TufMetadataRow.role.in_(wanted),
                    )
                )
            }
            for role, version in sorted(wanted.items()):
                row = rows.get(role)
                if row is None or row.version != version:
                    raise SharedStateMissing(
                        f"index {repo.index!r}: the stored snapshot lists {role} version"
                        f" {version}, which is not stored; not signing below it"
                    )
                if repo.tree.read(f"{repo.dir}/{version}.{role}.json") != row.data:
                    repo.install(f"{version}.{role}.json", row.data)
            repo.install(f"{snap.version}.snapshot.json", snap.data)
            repo.install("timestamp.json", stamp.data)
        log.info("%s: took TUF metadata version %d from another host", repo.index, stamp.version)

    def push(self, repo: IndexRepository) -> None:
        """Store what the tree publishes, when it is newer than what is stored."""
        if not repo.exists():
            return
        timestamp, snapshot = repo.timestamp(), repo.snapshot()
        # Only a holder of this index's signing lock changes its rows, and this host holds
        # it: what is stored is read before the writer lock, which is held for the upsert.
        query = select(TufMetadataRow.role, TufMetadataRow.version).where(
            TufMetadataRow.index_name == repo.index
        )
        with self.db.read() as session:
            stored: dict[str, int] = dict(session.execute(query).all())
        if timestamp.signed.version <= stored.get("timestamp", 0):
            return  # nothing signed since the pull
        changed = {
            role: version
            for role, version in _listed(snapshot).items()
            if stored.get(role) != version
        }
        changed["snapshot"] = snapshot.signed.version
        rows: list[dict[str, object]] = []
        for role, version in changed.items():
            data = repo.tree.read(f"{repo.dir}/{version}.{role}.json")
            if data is None:
                raise SharedStateMissing(f"{repo.dir}/{version}.{role}.json is missing")
            rows.append({"role": role, "version": version, "data": data})
        data = repo.tree.read(f"{repo.dir}/timestamp.json")
        assert data is not None
        rows.append({"role": "timestamp", "version": timestamp.signed.version, "data": data})
        # One statement for every row: a new index (or a re-cut) changes every bin, and
        # a merge per row cost a SELECT and an INSERT each (1 s for 1,024 bins).
        upsert = postgresql.insert(TufMetadataRow)
        with self.db.write() as session:
            session.execute(
                upsert.on_conflict_do_update(
                    index_elements=["index_name", "role"],
                    set_={"version": upsert.excluded.version, "data": upsert.excluded.data},
                ),
                [{"index_name": repo.index, **row} for row in rows],
            )
