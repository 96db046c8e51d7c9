"""One file's fetch from the upstream, shared by every request for it.

The upstream body goes to a temp file while being hashed, and every request
for that file, the first and any that arrive meanwhile, streams from that temp
file as it grows. The last byte is held back until size and sha256 match the
page *and* the blob and its row are durable (:meth:`FileFetch.release`): a
client never gets a complete-looking wrong file, nor a whole file that a crash
could leave unrecorded. On a mismatch, or when storing fails, the fetch fails
and every reader sees the error before its last byte.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from tilsit.upstream.errors import UpstreamError, UpstreamProtocolError
from tilsit.upstream.fetched import BodyHashes
from tilsit.upstream.proxy.index import ProxyIndex

__all__ = ["CorruptUpstreamFile", "FileFetch", "FileSource", "ProxyFile"]

_CHUNK = 1 << 16


class CorruptUpstreamFile(UpstreamProtocolError):
    """The upstream's bytes do not match the size or sha256 its page promised."""


@dataclass(frozen=True, slots=True)
class FileSource:
    """One proxy index that lists a file, and where its upstream has the bytes."""

    index: ProxyIndex
    project: str  # normalized
    url: str


@dataclass(frozen=True, slots=True)
class ProxyFile:
    """A file (or its core metadata) that proxy indexes list, as the proxy fetches it.

    ``/packages/`` paths are shared by every index, so several proxy indexes may
    list one file; ``sources`` has them all, the most recently fetched page
    first, and a fetch falls back to the next while no byte has arrived. Any
    upstream will do: the bytes are checked against the same hash.
    """

    sources: tuple[FileSource, ...]
    filename: str  # the distribution's file name
    file_sha256: str  # the distribution's hash: its place in the tree
    sha256: str  # what the fetched bytes must hash to
    size: int | None  # what they must measure, when the page says
    metadata: bool  # the ``.metadata`` file rather than the distribution
    stored: bool  # the blob is stored and these indexes may serve it (reusable_blobs)
    # The upstream offers the file's core metadata: else a fetched wheel's own is read.
    upstream_metadata: bool = False

    @property
    def index(self) -> ProxyIndex:
        return self.sources[0].index

    @property
    def url(self) -> str:
        return self.sources[0].url

    @property
    def name(self) -> str:
        return f"{self.filename}.metadata" if self.metadata else self.filename


class FileFetch:
    """One upstream fetch of one file into a temp file, shared by every request for it.

    Readers take bytes with :meth:`chunks` while they arrive. Everything but the
    last byte is readable as soon as it is written; the last only once the size
    and hash are verified and the blob and its row are durable. States: created
    -> ``started`` (the upstream answered 200, or the fetch failed) -> ``verified``
    (size and hash match) -> ``released`` (durable: the last byte goes out) or
    ``error`` -> ``settled`` (linked into the tree, or the failure final).
    """

    def __init__(self, target: ProxyFile, tmp_dir: Path, existing: Path | None) -> None:
        self.target = target
        self.source_url = target.url  # the upstream URL the bytes come from
        self.length: int | None = target.size
        self.written = 0
        self.hashes = BodyHashes()  # fed as the bytes arrive: no second read to hash
        self.verified = False
        self.released = False
        self.tree_wanted = False  # a reader waits for the tree (HEAD, Range), not the bytes
        self.error: UpstreamError | None = None
        self.started = anyio.Event()
        self.settled = anyio.Event()
        self._progress = anyio.Event()
        self._readers = 0
        self._write_fd: int | None = None
        self.temp: Path | None = None
        if existing is not None:
            # Held by these indexes already (stored meanwhile, or public): serve the blob.
            self._read_fd = os.open(existing, os.O_RDONLY)
            self.written = self.length = os.fstat(self._read_fd).st_size
            self.verified = self.released = True
            self.started.set()
        else:
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="proxy-")
            self._write_fd, self.temp = fd, Path(name)
            self._read_fd = os.open(name, os.O_RDONLY)
        self._read_open = True

    def adopt(self, existing: Path) -> None:
        """Before any byte: another host stored the file meanwhile; serve its blob instead."""
        assert self.written == 0 and self.temp is not None
        self._close_writer()
        self.temp.unlink(missing_ok=True)
        self.temp = None
        os.close(self._read_fd)
        self._read_fd = os.open(existing, os.O_RDONLY)
        self.written = self.length = os.fstat(self._read_fd).st_size
        self.verified = True
        self.started.set()
        self._notify()

    def _notify(self) -> None:
        progress, self._progress = self._progress, anyio.Event()
        progress.set()

    def begin(self, url: str, length: int | None) -> None:
        self.source_url = url
        if self.length is None:
            self.length = length
        self.started.set()

    def write(self, chunk: bytes) -> None:
        assert self._write_fd is not None
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._write_fd, view) :]
        self.written += len(chunk)
        self._notify()

    def verify(self) -> None:
        """Size and hash match the page; the bytes may now go into the store."""
        self._close_writer()
        self.verified = True

    def release(self) -> None:
        """The blob and its row are durable: readers may have the last byte."""
        self.released = True
        self._notify()

    def fail(self, error: UpstreamError) -> None:
        self.error = error
        self._close_writer()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)  # open readers keep their descriptor
        self.started.set()
        self._notify()

    def settle(self) -> None:
        self._close_writer()
        if self.temp is not None:  # gone already when stored: the store renamed it
            self.temp.unlink(missing_ok=True)
        self.settled.set()
        self._notify()
        self._close_reader()

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    def _close_reader(self) -> None:
        if self._readers == 0 and self.settled.is_set() and self._read_open:
            self._read_open = False
            os.close(self._read_fd)

    def join(self) -> None:
        self._readers += 1

    def leave(self) -> None:
        self._readers -= 1
        self._close_reader()

    async def wait_started(self) -> None:
        """Wait for the upstream's answer; raise its error if it failed before any byte."""
        await self.started.wait()
        if self.error is not None and self.written == 0:
            raise self.error

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes from the start; raises the fetch's error before the last byte."""
        position = 0
        while True:
            progress = self._progress
            if self.error is not None:
                raise self.error
            ready = self.written if self.released else self.written - 1
            if position < ready:
                data = os.pread(self._read_fd, min(_CHUNK, ready - position), position)
                if not data:
                    raise CorruptUpstreamFile(self.target.url, "the temp file shrank")
                position += len(data)
                yield data
                continue
            if self.released:
                return
            await progress.wait()
