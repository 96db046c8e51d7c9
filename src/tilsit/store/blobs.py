"""The blob store contract.

A blob is identified by the sha256 of its bytes and never changes. ``put``
returns only once the blob is durable, so that a database row naming it may
then be committed (ARCHITECTURE principle 3): a crash can leave an orphan blob,
never a row without its blob.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class MissingBlob(LookupError):
    """A blob that a row names is not in the store."""


class BlobStore(Protocol):
    def put_file(self, source: Path, sha256: str) -> None:
        """Store the bytes of ``source`` (whose sha256 the caller computed) durably.

        A blob already stored is marked in use (so ``fsck`` leaves it) before this
        returns, as a new one is: the row naming it commits only afterwards.

        ``source`` must be on the same filesystem as the store for the filesystem
        store; it is consumed (renamed into place or removed).
        """

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256."""

    def exists(self, sha256: str) -> bool: ...

    def path(self, sha256: str) -> Path:
        """Where the blob lives on disk (the filesystem store links the tree to it)."""

    def delete(self, sha256: str) -> None: ...

    def reap(self, sha256: str, cutoff: float) -> bool:
        """Delete an orphan blob unless it was put or reused since ``cutoff``; True if deleted."""

    def __iter__(self) -> Iterator[str]:
        """Every stored blob's sha256."""
