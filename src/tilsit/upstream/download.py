"""Fetching a mirror's files: stream, hash and verify each body, store the blob.

The event loop only moves bytes. A body's chunks are gathered as they arrive and
handed, about :data:`HANDOFF` bytes at a time, to a worker thread that hashes
them (sha256, md5, blake2b in one pass: :class:`~tilsit.upstream.fetched.BodyHashes`)
and writes them to a temp file, while the loop reads the next ones; hashlib
releases the GIL on buffers this size, so hashing runs beside the TLS reads on
another core. Only one hand-off per body is in flight at a time, so a body
holds at most two hand-offs in memory and its bytes reach the file in order.
Verifying, reading a wheel's METADATA and storing the blob are one more trip
to a thread once the body ends.

Everything here is checked before it is stored: the size the page gives (or a
cap), the sha256 the page gives. A blob already in the store stands in for a
fetch only when :func:`~tilsit.index.upstream.reusable_blobs` allows it
(``held``), as the store is shared by every index.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from tilsit.index.upstream import FileFacts, UpstreamFile
from tilsit.instance import Instance
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import UpstreamTooLarge
from tilsit.upstream.fetched import BodyHashes, read_facts

__all__ = ["HANDOFF", "FileFetcher", "VerificationFailed"]

# Bytes gathered on the loop before a thread hashes and writes them: large enough
# that a thread trip (tens of microseconds) is small beside hashing the bytes
# (milliseconds), small enough that a body in flight holds little memory.
HANDOFF = 1 << 20


class VerificationFailed(Exception):
    """Bytes from the upstream do not match what its page says (hash or size)."""


class TooLarge(Exception):
    """A file of unknown size grew past the filters' ``max_file_size`` while streaming."""


class _BodySink:
    """Hash and write one body in a worker thread, a hand-off at a time, in order."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = BodyHashes()
        self.count = 0
        self._gathered: list[bytes] = []
        self._size = 0
        self._inflight: asyncio.Future[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self._gathered.append(chunk)
        self._size += len(chunk)
        if self._size >= HANDOFF:
            await self._hand_off()

    async def _hand_off(self) -> None:
        chunks, self._gathered, self._size = self._gathered, [], 0
        await self._wait()
        if chunks:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._take, chunks))

    async def _wait(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    def _take(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.digest.update(chunk)
        self.out.writelines(chunks)

    async def close(self) -> None:
        """Everything fed is hashed and written."""
        await self._hand_off()
        await self._wait()

    async def abandon(self) -> None:
        """Let a hand-off in flight finish (it writes to a file about to be closed)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await asyncio.gather(inflight, return_exceptions=True)


class FileFetcher:
    """The files of one sync run: each one's blob made present, verified, in the store."""

    def __init__(
        self,
        instance: Instance,
        client: UpstreamClient,
        *,
        slots: int,
        max_file_size: int | None,
        tmp_prefix: str,
        note: Callable[[str], None],
    ) -> None:
        self.instance = instance
        self.client = client
        self.max_file_size = max_file_size
        self.tmp_prefix = tmp_prefix
        self.note = note
        self._slots = asyncio.Semaphore(slots)
        self.files = 0  # files and metadata files fetched
        self.bytes = 0

    async def file(
        self, f: UpstreamFile, held: set[str], learned: set[tuple[str, str]]
    ) -> UpstreamFile | None:
        """Make sure the file's blob (and its metadata's) is stored; None if filtered by size.

        A blob in the store is taken as this file's only when ``held`` (what
        :func:`reusable_blobs` allows this index) has it; else the bytes are fetched
        and must match, even if the store has a blob of that hash (another index's).
        A reused blob this index has not read yet (``learned``: its rows that were)
        is read once for its digests and METADATA.
        """
        blobs = self.instance.blobs
        settings = self.instance.settings
        facts: FileFacts | None = None
        async with self._slots:
            if f.sha256 in held and blobs.exists(f.sha256):
                size = await asyncio.to_thread(blobs.size, f.sha256)
                if f.size >= 0 and size != f.size:
                    raise VerificationFailed(
                        f"{f.filename}: the page says {f.size} bytes, its sha256 has {size}"
                    )
                if (f.filename, f.sha256) not in learned:
                    facts = await self._read_facts(f.sha256, f)
            else:
                try:
                    size, facts = await self.download(
                        f.url,
                        f.sha256,
                        f.size,
                        f.filename,
                        cap=settings.max_upload_size,
                        filtered=self.max_file_size,
                        learn_for=f,
                    )
                except TooLarge:
                    return None
            if f.metadata_sha256 is not None and not (
                f.metadata_sha256 in held and blobs.exists(f.metadata_sha256)
            ):
                # A core-metadata file is a few kB: capped like a page.
                await self.download(
                    f.url + ".metadata",
                    f.metadata_sha256,
                    -1,
                    f"{f.filename}.metadata",
                    cap=settings.upstream_page_max_size,
                )
        return replace(f, size=size if f.size < 0 else f.size, facts=facts)

    async def download(
        self,
        url: str,
        sha256: str,
        size: int,
        what: str,
        *,
        cap: int,
        filtered: int | None = None,
        learn_for: UpstreamFile | None = None,
    ) -> tuple[int, FileFacts | None]:
        """Stream ``url`` to a temp file, verify size and sha256, store the blob.

        The body may not pass its page's ``size`` (when it gives one), else ``cap``
        (:class:`UpstreamTooLarge`: the project fails). ``filtered`` is a filter's
        cap on a file of unknown size: past it :class:`TooLarge`, the file left out.
        For a distribution (``learn_for``), md5 and blake2 are computed in the same
        pass, and a wheel's METADATA is read from the verified temp file (see
        :func:`~tilsit.upstream.fetched.read_facts`) before the file goes into the store.
        """
        allowed = size if size >= 0 else min(cap, filtered) if filtered is not None else cap
        fd, name = tempfile.mkstemp(dir=self.instance.settings.tmp_dir, prefix=self.tmp_prefix)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                sink = _BodySink(out)
                try:
                    async with self.client.stream_file(url, limit=allowed) as stream:
                        if size >= 0 and stream.content_length not in (None, size):
                            raise VerificationFailed(
                                f"{what}: the upstream sends {stream.content_length} bytes,"
                                f" its page says {size}"
                            )
                        async for chunk in stream:
                            await sink.feed(chunk)
                    await sink.close()
                except UpstreamTooLarge as exc:
                    await sink.abandon()
                    if size >= 0:
                        raise VerificationFailed(
                            f"{what}: more bytes than the {size} its page says ({exc.message})"
                        ) from None
                    if filtered is not None and filtered <= cap:
                        raise TooLarge(what) from None
                    raise
                except BaseException:
                    await sink.abandon()
                    raise
            count, digest = sink.count, sink.digest
            if size >= 0 and count != size:
                raise VerificationFailed(f"{what}: got {count} bytes, its page says {size}")
            if digest.sha256 != sha256:
                raise VerificationFailed(
                    f"{what}: sha256 mismatch (got {digest.sha256}, its page says {sha256})"
                )
            facts, problem = await asyncio.to_thread(self._store, temp, sha256, learn_for, digest)
            if problem is not None:
                self.note(problem)
            self.files += 1
            self.bytes += count
            return count, facts
        finally:
            temp.unlink(missing_ok=True)

    def _store(
        self, temp: Path, sha256: str, learn_for: UpstreamFile | None, digest: BodyHashes
    ) -> tuple[FileFacts | None, str | None]:
        """In a thread: read what the verified bytes say, then put them in the store."""
        facts = problem = None
        if learn_for is not None:
            facts, problem = self._facts(temp, learn_for, digest)
        self.instance.blobs.put_file(temp, sha256)
        return facts, problem

    def _facts(
        self, path: Path, f: UpstreamFile, hashes: BodyHashes | None
    ) -> tuple[FileFacts, str | None]:
        facts, problem = read_facts(
            path,
            f.filename,
            hashes=hashes,
            read_metadata=f.metadata_sha256 is None,
            store=self.instance.blobs.put_bytes,
        )
        return facts, None if problem is None else f"{f.filename}: {problem}"

    async def _read_facts(self, sha256: str, f: UpstreamFile) -> FileFacts:
        """What the reused blob ``sha256`` says (:func:`~tilsit.upstream.fetched.read_facts`).

        A wheel's METADATA is read only where the upstream offers no core metadata;
        one that cannot be read is noted, and the file mirrored without ``.metadata``.
        """

        def facts_of_blob() -> tuple[FileFacts, str | None]:
            with self.instance.blobs.local_copy(sha256) as path:
                return self._facts(path, f, None)

        facts, problem = await asyncio.to_thread(facts_of_blob)
        if problem is not None:
            self.note(problem)
        return facts
