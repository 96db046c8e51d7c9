"""Filesystem blob store: ``<root>/<aa>/<bb>/<sha256>``.

Writes go to a temp file in the store's own ``tmp`` directory, are fsynced,
renamed into place and the directory fsynced, so a blob either exists whole
or not at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tilsit.store.blobs import READ_CHUNK, BlobCorrupt, BlobTooLarge, MissingBlob

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):  # not Linux: no syncfs(2)
        return None
    return function


_SYNCFS = _libc_syncfs()


def sync_filesystem(directory: Path) -> None:
    """Make every write to the filesystem holding ``directory`` durable, at once.

    Linux's ``syncfs(2)``: one call, where a render of a hundred projects made a
    thousand file and directory fsyncs, each its own journal commit. It also flushes
    what other writers left dirty on that filesystem (blobs being stored), which
    they were about to fsync themselves. Elsewhere ``os.sync()``.
    """
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)


class FilesystemBlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def local_path(self, sha256: str) -> Path | None:
        return self.path(sha256)

    @contextlib.contextmanager
    def local_copy(self, sha256: str) -> Iterator[Path]:
        path = self.path(sha256)
        if not path.is_file():
            raise MissingBlob(sha256)
        yield path

    def _stat(self, sha256: str) -> os.stat_result:
        try:
            return self.path(sha256).stat()
        except FileNotFoundError as exc:
            raise MissingBlob(sha256) from exc

    def size(self, sha256: str) -> int:
        return self._stat(sha256).st_size

    def stored_at(self, sha256: str) -> float:
        return self._stat(sha256).st_mtime

    def read_bytes(self, sha256: str, limit: int) -> bytes:
        fd = self.open(sha256)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise BlobTooLarge(f"blob {sha256} is larger than {limit} bytes")
        return data

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        fh = os.fdopen(self.open(sha256), "rb")  # opened now: MissingBlob before any chunk
        return self._chunks(fh, start, end)

    @staticmethod
    def _chunks(fh: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
        with fh:
            fh.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = fh.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def put_file(self, source: Path, sha256: str) -> None:
        target = self.path(sha256)
        if self._reuse(target):
            # Content-addressed: identical bytes are already stored durably.
            source.unlink(missing_ok=True)
            return
        with open(source, "rb+") as fh:
            # The bytes that go into place are those named: read back (from the page
            # cache, just written) before the rename, so a row never names other bytes.
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(READ_CHUNK), b""):
                digest.update(chunk)
            if digest.hexdigest() != sha256:
                source.unlink(missing_ok=True)
                raise BlobCorrupt(
                    f"the bytes to store hash to {digest.hexdigest()}, not {sha256}; not stored"
                )
            os.fsync(fh.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        os.utime(source)  # in use from now (see _reuse), not from when it was written
        os.replace(source, target)
        fsync_dir(target.parent)
        fsync_dir(target.parent.parent)

    def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if self._reuse(self.path(sha256)):
            return sha256
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self.put_file(Path(name), sha256)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        return sha256

    def _reuse(self, target: Path) -> bool:
        """Take a stored blob for a new row: True once its mtime says "in use now".

        A blob no row names yet (an orphan of a killed upload, which a retried
        upload now stores again) is what ``tilsit fsck`` reaps when its mtime is
        old; refreshing the mtime before the row commits keeps fsck off it (see
        :meth:`reap`). False when there is no blob to reuse (not stored, or being
        reaped right now) or its mtime cannot be set (another owner): the caller
        then stores the bytes anew, as a fresh file.
        """
        try:
            os.utime(target)
        except (FileNotFoundError, PermissionError):
            return False
        return target.is_file()

    def reap(self, sha256: str, cutoff: float) -> bool:
        """Delete an orphan blob unless it was put since ``cutoff`` (a time.time());
        True if deleted. The caller holds the writer lock and has checked that no row
        names it; a writer storing the blob outside the lock (a mirror fetch, before
        its rows) either refreshed its mtime before the move below (seen, and the blob
        put back) or finds it gone and stores it anew (:meth:`_reuse`)."""
        target = self.path(sha256)
        quarantine = self.tmp / f"reap-{sha256}"
        try:
            os.replace(target, quarantine)
        except FileNotFoundError:
            return False
        if quarantine.stat().st_mtime > cutoff:
            with contextlib.suppress(FileExistsError):  # stored anew meanwhile
                os.link(quarantine, target)
            quarantine.unlink()
            return False
        quarantine.unlink()
        return True

    def open(self, sha256: str) -> int:
        try:
            return os.open(self.path(sha256), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise MissingBlob(sha256) from exc

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        for first in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                for blob in sorted(second.iterdir()):
                    if _SHA256.match(blob.name):
                        yield blob.name
