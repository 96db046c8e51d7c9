"""TUF metadata on the wire: a gzip copy beside each versioned file, and bounded decoding.

A returning client downloads the new snapshot and every bin whose version moved;
at 100,000 projects that is ~280 kB of JSON per upload, which gzip shrinks about
fourfold (the snapshot sixfold, a bin threefold: its hashes and signature are
random). So every versioned metadata file (``N.<role>.json``, immutable once
written) gets ``N.<role>.json.gz`` beside it, which tilsit's read path and nginx's
``gzip_static`` send as ``Content-Encoding: gzip`` to clients that accept it. The
signed hashes and lengths stay those of the uncompressed file: a client decodes
the body before it checks them. ``timestamp.json`` and ``root.json`` are replaced
in place and small, so they are never compressed (no copy could be swapped with
them atomically).

Reading the other way (``tilsit verify`` and a mirror fetching an origin's
metadata and targets), a compressed body is inflated a bounded step at a time,
and one that inflates past :data:`MAX_RATIO` is refused as a bomb, before its
output is held.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx

from tilsit.store.fs import fsync_dir, sync_filesystem
from tilsit.store.tree import Tree

__all__ = [
    "ACCEPT_ENCODING",
    "GZIP_MIN",
    "MAX_RATIO",
    "CompressionBomb",
    "UnknownEncoding",
    "UnsyncedWrites",
    "decoded_chunks",
    "remove_metadata",
    "write_metadata",
]

# Below this a gzip copy saves less than a TCP segment: not worth a file.
GZIP_MIN = 512
# JSON metadata compresses at most ~10:1 (its hashes are random); past this ratio,
# once RATIO_FLOOR bytes are out, a body is a bomb.
MAX_RATIO = 100
RATIO_FLOOR = 256 << 10
CHUNK = 1 << 16
ACCEPT_ENCODING = "gzip, deflate"
_DECODING = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class CompressionBomb(ValueError):
    """A compressed body that inflates past any ratio real metadata or pages have."""


class UnknownEncoding(ValueError):
    """A body in a Content-Encoding that was not asked for."""


def write_metadata(tree: Tree, relative: str, data: bytes) -> None:
    """Write a versioned metadata file and, when worth it, its gzip copy beside it.

    The plain file first: a crash between the two leaves a version without its copy
    (served uncompressed), never a copy of bytes that were not written.
    """
    tree.write(relative, data)
    if len(data) >= GZIP_MIN:
        tree.write(f"{relative}.gz", gzip.compress(data, 9, mtime=0))


# Files at which UnsyncedWrites.sync flushes the filesystem once instead of each file.
SYNCFS_FROM = 16


class UnsyncedWrites:
    """Many metadata files written at once (a re-cut of every bin), made durable together.

    :func:`write_metadata` fsyncs each file as it goes: each fsync commits the
    filesystem's journal, which at 4,096 bins and their copies was nine tenths of a
    re-cut's time. Here each file is written and renamed into place without it, then
    :meth:`sync` fsyncs them all and their directory: the first fsync commits every
    pending write in one journal commit, the others find little left. Nothing refers
    to these files before :meth:`sync` returns (the snapshot is written after it).
    """

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._paths: list[str] = []

    def write(self, relative: str, data: bytes) -> None:
        """A versioned file and its gzip copy, as :func:`write_metadata` writes them."""
        self._put(relative, data)
        if len(data) >= GZIP_MIN:
            self._put(f"{relative}.gz", gzip.compress(data, 9, mtime=0))

    def _put(self, relative: str, data: bytes) -> None:
        target = self.tree.path(relative)
        fd, name = tempfile.mkstemp(dir=self.tree.tmp, prefix="meta-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(name, 0o644)
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        self._paths.append(str(target))

    def sync(self) -> None:
        if len(self._paths) >= SYNCFS_FROM:
            # One syncfs for a round of a mirror's batch (a hundred bins and their
            # copies): each fsync here still waited for its own file's blocks.
            sync_filesystem(self.tree.real_root)
            self._paths.clear()
            return
        directories = set()
        for path in self._paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            directories.add(os.path.dirname(path))
        for directory in sorted(directories):
            fsync_dir(Path(directory))
        self._paths.clear()


def remove_metadata(tree: Tree, relative: str) -> None:
    """Remove a versioned metadata file and its gzip copy (the copy first: never a copy
    whose plain file is gone)."""
    tree.path(f"{relative}.gz").unlink(missing_ok=True)
    tree.path(relative).unlink(missing_ok=True)


def decoded_chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
    """The body of ``response`` decoded, at most :data:`CHUNK` bytes per piece.

    httpx's own decoding inflates each network read whole (a 64 KiB read of a bomb
    is ~64 MB at once); here each step is capped, and a body that inflates past
    :data:`MAX_RATIO` raises :class:`CompressionBomb`. Callers stop reading at their
    own length cap, so what is held is one capped piece at a time.
    """
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        yield from response.iter_raw(CHUNK)
        return
    if coding not in _DECODING:
        raise UnknownEncoding(f"{url}: a body in Content-Encoding {coding!r}, not asked for")
    decoder = zlib.decompressobj(_DECODING[coding])
    raw = out = 0
    try:
        for chunk in response.iter_raw(CHUNK):
            while chunk:
                piece = decoder.decompress(chunk, CHUNK)
                raw += len(chunk) - len(decoder.unconsumed_tail)
                out += len(piece)
                if out > RATIO_FLOOR and out > MAX_RATIO * raw:
                    raise CompressionBomb(
                        f"{url}: {raw} compressed bytes inflate to over {out}: a compression bomb"
                    )
                if piece:
                    yield piece
                chunk = decoder.unconsumed_tail
        tail = decoder.flush()
    except zlib.error as exc:
        raise UnknownEncoding(f"{url}: a body that does not decode as {coding}: {exc}") from exc
    if tail:
        yield tail
