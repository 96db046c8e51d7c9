"""The highest TUF versions an index ever published, kept outside the tree.

A client refuses a timestamp, snapshot or bin older than the one it has cached
(rollback). The tree alone cannot guarantee that: ``tilsit rebuild`` on an emptied,
lost or restored-from-backup tree would start again at version 1. So every signing
round records, in ``<data>/trust/published/<index>.json`` and before the tree's
``timestamp.json`` is replaced, the versions it is about to publish; a rebuilt tree
continues above them. One number covers all the bins (the highest any bin reached):
a rebuilt bin starting above it is above every version a client can hold.

The file lives in a subdirectory so writing it does not touch the mtime of
``<data>/trust/`` (which running servers watch for key changes).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tilsit.store.fs import fsync_dir
from tilsit.trust.keys import trust_dir

__all__ = ["Published", "load_published", "published_path", "save_published"]


@dataclass(frozen=True)
class Published:
    timestamp: int = 0
    snapshot: int = 0
    bins: int = 0  # the highest version any bin reached

    def at_least(self, other: Published) -> Published:
        return Published(
            max(self.timestamp, other.timestamp),
            max(self.snapshot, other.snapshot),
            max(self.bins, other.bins),
        )


def published_path(data: Path, index: str) -> Path:
    return trust_dir(data) / "published" / f"{index}.json"


def load_published(data: Path, index: str) -> Published:
    try:
        raw = json.loads(published_path(data, index).read_bytes())
    except FileNotFoundError:
        return Published()
    return Published(int(raw["timestamp"]), int(raw["snapshot"]), int(raw["bins"]))


def save_published(data: Path, index: str, versions: Published) -> None:
    """Write atomically and durably (the caller publishes the timestamp only afterwards)."""
    path = published_path(data, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{index}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(asdict(versions)).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
