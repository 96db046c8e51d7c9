"""The blob store contract.

A blob is identified by the sha256 of its bytes and never changes. ``put``
returns only once the blob is durable, so that a database row naming it may
then be committed (ARCHITECTURE principle 3): a crash can leave an orphan blob,
never a row without its blob.

Two stores implement it: the filesystem (:mod:`tilsit.store.fs`, the default)
and S3 (:mod:`tilsit.store.s3`). Readers use :meth:`BlobStore.open_range`,
:meth:`BlobStore.read_bytes` and :meth:`BlobStore.size`, which both stores
serve; :meth:`BlobStore.local_path` is the file on disk where there is one (the
filesystem store links the tree to it), None on S3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from tilsit.operator import OperatorError

__all__ = [
    "BlobCorrupt",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "MissingBlob",
    "NoLocalPath",
]

# The chunk size readers of a blob are given.
READ_CHUNK = 1 << 20


class MissingBlob(LookupError):
    """A blob that a row names is not in the store."""


class BlobStoreError(Exception):
    """A blob store refused or failed an operation; the message says which and why."""


class BlobStoreUnavailable(BlobStoreError, OperatorError):
    """The blob store cannot be reached or refuses our credentials (an operator's matter)."""


class BlobCorrupt(BlobStoreError, ValueError):
    """The bytes given to ``put`` are not those their sha256 names; nothing was stored."""


class BlobTooLarge(BlobStoreError, ValueError):
    """A bounded read found a blob larger than its limit."""


class NoLocalPath(BlobStoreError):
    """A caller asked for a blob's file on disk from a store that keeps none (S3)."""


class BlobStore(Protocol):
    def put_file(self, source: Path, sha256: str) -> None:
        """Store the bytes of ``source`` (whose sha256 the caller computed) durably.

        The bytes stored are hashed as they are written and must match ``sha256``,
        else :class:`BlobCorrupt` and nothing is stored under that name.

        A blob already stored is marked in use (so ``fsck`` leaves it) before this
        returns, as a new one is: the row naming it commits only afterwards.

        ``source`` must be on the same filesystem as the store for the filesystem
        store; it is consumed (renamed into place or removed).
        """

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256."""

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """The blob's length in bytes; :class:`MissingBlob` if it is not stored."""

    def stored_at(self, sha256: str) -> float:
        """When the blob was last put or reused (a ``time.time()``), which ``fsck``
        compares with its grace cutoff; :class:`MissingBlob` if it is not stored."""

    def read_bytes(self, sha256: str, limit: int) -> bytes:
        """The whole blob, if it is at most ``limit`` bytes (:class:`BlobTooLarge`
        otherwise); for small blobs such as core metadata."""

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The blob's bytes ``start`` to ``end`` (exclusive; None: to the end), in
        chunks of at most :data:`READ_CHUNK`. :class:`MissingBlob` is raised before
        the first chunk if the blob is not stored."""

    def local_copy(self, sha256: str) -> AbstractContextManager[Path]:
        """The blob as a file on this host for the block (a reader that needs to seek,
        such as a zip reader): the blob's own file on the filesystem, a temp copy
        streamed from S3 (removed after). :class:`MissingBlob` if it is not stored."""

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file on this host's disk, or None if the store keeps none."""

    def path(self, sha256: str) -> Path:
        """Where the blob lives on disk (the filesystem store links the tree to it);
        :class:`NoLocalPath` from a store that keeps none."""

    def delete(self, sha256: str) -> None: ...

    def reap(self, sha256: str, cutoff: float) -> bool:
        """Delete an orphan blob unless it was put or reused since ``cutoff``; True if deleted."""

    def __iter__(self) -> Iterator[str]:
        """Every stored blob's sha256."""
