"""Blob-store failures, counted for ``/_/metrics`` (:mod:`tilsit.web.metrics` shows them).

:func:`counted` wraps any :class:`~tilsit.store.blobs.BlobStore` where it is
opened, so both stores are counted in one place and the same way. Each failed
operation adds one to ``tilsit_blob_store_errors_total`` by ``store`` (``fs``,
``s3``), ``operation`` (``put``, ``get``, ``head``, ``path``, ``delete``,
``list``) and ``error``: the error's class among a fixed few, so the series stay
bounded whatever fails. The exception itself goes on to the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter

from tilsit.store.blobs import (
    BlobCorrupt,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    BlobTooLarge,
    MissingBlob,
    NoLocalPath,
)

__all__ = ["BLOB_ERRORS", "CountedBlobStore", "counted", "error_class", "unwrapped"]

# Registered by each /_/metrics (web.metrics), not in the process-wide default registry.
BLOB_ERRORS = Counter(
    "tilsit_blob_store_errors",
    "Failed blob-store operations, by store kind, operation and error class.",
    ("store", "operation", "error"),
    registry=None,
)

# Most specific first: the label is the first that matches.
_CLASSES: tuple[type[BaseException], ...] = (
    BlobStoreUnavailable,
    BlobCorrupt,
    BlobTooLarge,
    NoLocalPath,
    BlobStoreError,
    MissingBlob,
    OSError,  # the filesystem store: a full disk, a permission
    ValueError,  # not a sha256
)

T = TypeVar("T")


def error_class(exc: BaseException) -> str:
    """The bounded ``error`` label of ``exc``: a known class's name, else ``other``."""
    return next((c.__name__ for c in _CLASSES if isinstance(exc, c)), "other")


class CountedBlobStore:
    """A :class:`BlobStore` that counts the failures of the one it wraps."""

    def __init__(self, store: BlobStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    def _failed(self, operation: str, exc: BaseException) -> None:
        BLOB_ERRORS.labels(self.kind, operation, error_class(exc)).inc()

    def _count(self, operation: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            self._failed(operation, exc)
            raise

    def _chunks(self, operation: str, chunks: Iterator[T]) -> Iterator[T]:
        # A read that fails after its first chunk (a connection cut mid-stream) counts too.
        try:
            yield from chunks
        except Exception as exc:
            self._failed(operation, exc)
            raise

    def put_file(self, source: Path, sha256: str) -> None:
        self._count("put", lambda: self.store.put_file(source, sha256))

    def put_bytes(self, data: bytes) -> str:
        return self._count("put", lambda: self.store.put_bytes(data))

    def exists(self, sha256: str) -> bool:
        return self._count("head", lambda: self.store.exists(sha256))

    def size(self, sha256: str) -> int:
        return self._count("head", lambda: self.store.size(sha256))

    def stored_at(self, sha256: str) -> float:
        return self._count("head", lambda: self.store.stored_at(sha256))

    def read_bytes(self, sha256: str, limit: int) -> bytes:
        return self._count("get", lambda: self.store.read_bytes(sha256, limit))

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        # Opened now, as the store does (MissingBlob before the first chunk), then read.
        chunks = self._count("get", lambda: self.store.open_range(sha256, start, end))
        return self._chunks("get", chunks)

    @contextmanager
    def _local_copy(self, sha256: str) -> Iterator[Path]:
        # Only the store's own failures: an error in the caller's block is not the store's.
        copy = self.store.local_copy(sha256)
        path = self._count("get", copy.__enter__)
        try:
            yield path
        except BaseException as exc:
            if not copy.__exit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            self._count("get", lambda: copy.__exit__(None, None, None))

    def local_copy(self, sha256: str) -> AbstractContextManager[Path]:
        return self._local_copy(sha256)

    def local_path(self, sha256: str) -> Path | None:
        return self._count("path", lambda: self.store.local_path(sha256))

    def path(self, sha256: str) -> Path:
        return self._count("path", lambda: self.store.path(sha256))

    def delete(self, sha256: str) -> None:
        self._count("delete", lambda: self.store.delete(sha256))

    def reap(self, sha256: str, cutoff: float) -> bool:
        return self._count("delete", lambda: self.store.reap(sha256, cutoff))

    def __iter__(self) -> Iterator[str]:
        return self._chunks("list", self._count("list", lambda: iter(self.store)))


def counted(store: BlobStore, kind: str) -> BlobStore:
    """``store``, its failures counted under ``store=kind`` (``fs`` or ``s3``)."""
    return CountedBlobStore(store, kind)


def unwrapped(store: BlobStore) -> BlobStore:
    """The store :func:`counted` wrapped (``store`` itself if it is not wrapped): for a
    caller that asks which kind of store it has (``isinstance``), or needs its extras."""
    return store.store if isinstance(store, CountedBlobStore) else store
