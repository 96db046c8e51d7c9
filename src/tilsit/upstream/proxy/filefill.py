"""Cold files of proxy indexes: found by their tree path, fetched once, stored, marked cached.

The first request for a file a proxy index lists (``cached=False``) starts a
:class:`~.files.FileFetch`, which every request for that file joins until the
tree has it: verified against the page's size and hash, stored (fsynced), marked
cached and journaled through the coalescer (:mod:`.writes`), whose commit
releases the readers' last byte; the catch-up then links it into the tree, which
serves every later request. Core-metadata files (``<file>.metadata``) go the same
way, checked against the page's core-metadata hash. ``/packages/`` paths are
shared by all indexes, so when several proxy indexes list one file, the fetch
asks their upstreams in turn (the most recently fetched page first) until one
answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.cluster import cluster_lock
from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.index.upstream import (
    FileFacts,
    mark_file_cached,
    mark_metadata_cached,
    reusable_blobs,
)
from tilsit.instance import Instance
from tilsit.store.blobs import BlobCorrupt
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import UpstreamError, UpstreamProtocolError
from tilsit.upstream.fetched import read_facts
from tilsit.upstream.proxy.counts import count_file
from tilsit.upstream.proxy.files import CorruptUpstreamFile, FileFetch, FileSource, ProxyFile
from tilsit.upstream.proxy.index import ProxyIndex
from tilsit.upstream.proxy.writes import WriteCoalescer

__all__ = ["FileFills"]

log = logging.getLogger("tilsit.proxy")


class FileFills:
    """The file fetches of one process's proxy indexes, one at a time per file."""

    def __init__(
        self,
        instance: Instance,
        client: Callable[[ProxyIndex], UpstreamClient],
        writes: WriteCoalescer,
    ) -> None:
        self.instance = instance
        self.client = client
        self.writes = writes
        self._files: dict[tuple[str, str, bool], FileFetch] = {}
        # (index id, project) -> the serial of its newest stored file whose render is
        # deferred to the end of the burst: what answers from the tree alone (legacy
        # JSON, a virtual index's page) waits for it (:meth:`unrendered_serial`).
        self._unrendered: dict[tuple[int, str], int] = {}

    def unrendered_serial(self, index_id: int, project: str) -> int:
        """The serial a catch-up must reach for the tree to show every file of
        ``project`` this process stored for the index (0 when it already does)."""
        serial = self._unrendered.get((index_id, project), 0)
        if serial and self.writes.has_rendered(serial):
            del self._unrendered[(index_id, project)]
            return 0
        return serial

    def find_file(self, sha256: str, name: str) -> ProxyFile | None:
        """The proxy file (or ``<file>.metadata`` when ``name`` ends so) at this tree path."""
        metadata = name.endswith(".metadata")
        filename = name.removesuffix(".metadata") if metadata else name
        with self.instance.db.read() as session:
            found = session.execute(
                select(FileRow, ProjectRow.normalized, IndexRow)
                .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
                .join(ProjectRow, ReleaseRow.project_id == ProjectRow.id)
                .join(IndexRow, FileRow.index_id == IndexRow.id)
                .where(
                    FileRow.sha256 == sha256,
                    FileRow.filename == filename,
                    FileRow.deleted_at.is_(None),
                    FileRow.source_url.is_not(None),
                    ReleaseRow.deleted_at.is_(None),
                    ProjectRow.deleted_at.is_(None),
                    IndexRow.kind == "proxy",
                    # /packages/ is public: a private proxy's files are not fetched for it.
                    IndexRow.private.is_(False),
                )
                .order_by(ProjectRow.fetched_at.desc().nulls_last(), FileRow.id)
            ).all()
            if metadata:
                found = [f for f in found if f[0].metadata_sha256 is not None]
            if not found:
                return None
            first = found[0][0]
            suffix = ".metadata" if metadata else ""
            sources = tuple(
                FileSource(ProxyIndex.from_row(index), project, f"{row.source_url}{suffix}")
                for row, project, index in found
            )
            if metadata:
                assert first.metadata_sha256 is not None
                expected, size = first.metadata_sha256, None
            else:
                expected, size = sha256, first.size if first.size >= 0 else None
            # A blob in the store is served unfetched only if these indexes may have it.
            stored = bool(reusable_blobs(session, sources[0].index.id, {expected}))
            return ProxyFile(
                sources=sources,
                filename=filename,
                file_sha256=sha256,
                sha256=expected,
                size=size,
                metadata=metadata,
                stored=stored,
                upstream_metadata=first.metadata_sha256 is not None,
            )

    @asynccontextmanager
    async def open_file(self, target: ProxyFile) -> AsyncIterator[FileFetch]:
        """The fetch of ``target``: joined if one is under way, else started here.

        The fetch outlives a reader that leaves early (a client that went away):
        leaving waits for it, so the other readers and the cache still get it.
        """
        key = (target.file_sha256, target.filename, target.metadata)
        fetch = self._files.get(key)
        lead = fetch is None
        if fetch is None:
            # A blob on this disk is served as it is; one in an object store is copied
            # out by the fetch (_copy_from_store), as an upstream's bytes would be.
            existing = self.instance.blobs.local_path(target.sha256)
            reuse = target.stored and existing is not None and existing.is_file()
            fetch = FileFetch(target, self.instance.settings.tmp_dir, existing if reuse else None)
            self._files[key] = fetch
        count_file(target, fetched=lead and fetch.temp is not None)  # /_/metrics: hit or miss
        fetch.join()
        try:
            async with anyio.create_task_group() as tasks:
                if lead:
                    tasks.start_soon(self._run, key, fetch)
                try:
                    yield fetch
                except Exception:
                    await fetch.settled.wait()
                    raise
        finally:
            fetch.leave()

    async def fetch_to_tree(self, target: ProxyFile) -> UpstreamError | None:
        """Fetch ``target`` whole (or join the fetch under way); its error, if it failed."""
        async with self.open_file(target) as fetch:
            fetch.tree_wanted = True  # answered from the tree: its render is not deferred
            if fetch.released:
                self.writes.hurry()
            await fetch.settled.wait()
            return fetch.error

    async def _run(self, key: tuple[str, str, bool], fetch: FileFetch) -> None:
        target = fetch.target
        try:
            # One fetch per file across the hosts sharing the database: the lock is held
            # until the row that marks it cached commits, so a host that waited for it
            # finds the blob stored and serves that (PostgreSQL; a no-op on SQLite).
            async with self._cluster_lock(f"proxy-file:{target.sha256}"):
                if fetch.temp is not None:
                    if await anyio.to_thread.run_sync(self._stored_elsewhere, target):
                        local = self.instance.blobs.local_path(target.sha256)
                        if local is not None:
                            fetch.adopt(local)
                        else:
                            await self._copy_from_store(fetch)
                    else:
                        await self._download(fetch)
                facts = await anyio.to_thread.run_sync(self._store_blob, fetch)
                _, serial = await self.writes.write(
                    lambda session: self._mark_cached(session, fetch, facts)
                )
            projects = [(source.index.id, source.project) for source in target.sources]
            for project in projects:
                self._unrendered[project] = max(self._unrendered.get(project, 0), serial)
            fetch.release()  # durable: the readers get the last byte
            # Shared until the tree has the file (a request meanwhile is served from
            # the stored blob); rendered at the end of the burst unless a reader
            # waits for the tree (HEAD, Range, legacy JSON).
            if await self.writes.rendered(serial, urgent=fetch.tree_wanted):
                for project in projects:
                    if self._unrendered.get(project, 0) <= serial:
                        self._unrendered.pop(project, None)
        except UpstreamError as exc:
            log.warning("%s: %s: not cached: %s", target.index.name, target.name, exc)
            fetch.fail(exc)
        except Exception as exc:  # a bug or a full disk: fail this fetch, keep serving
            log.exception("%s: storing %s failed", target.index.name, target.name)
            if not fetch.released:
                # Not durable: no reader may have the whole file.
                fetch.fail(UpstreamProtocolError(target.url, f"not stored: {exc}"))
        finally:
            if self._files.get(key) is fetch:
                del self._files[key]
            fetch.settle()

    @asynccontextmanager
    async def _cluster_lock(self, name: str) -> AsyncIterator[None]:
        """Wait for the cluster lock ``name`` (in a thread: it may wait for another host)."""
        stack = ExitStack()
        await anyio.to_thread.run_sync(
            lambda: stack.enter_context(cluster_lock(self.instance.db, name, wait=True))
        )
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(stack.close)

    def _stored_elsewhere(self, target: ProxyFile) -> bool:
        """Whether the blob is stored for these indexes already (another index listed
        it, or another host stored it while this one waited)."""
        with self.instance.db.read() as session:
            reusable = reusable_blobs(session, target.sources[0].index.id, {target.sha256})
        return bool(reusable) and self.instance.blobs.exists(target.sha256)

    async def _copy_from_store(self, fetch: FileFetch) -> None:
        """Feed the fetch from the blob in the object store, hashed as an upstream's
        bytes are: the readers waiting on it get the stored bytes, never the upstream's."""
        target = fetch.target
        blobs = self.instance.blobs
        chunks = await anyio.to_thread.run_sync(blobs.open_range, target.sha256)
        fetch.begin(f"blob {target.sha256}", target.size)
        while chunk := await anyio.to_thread.run_sync(next, chunks, b""):
            fetch.hashes.update(chunk)
            fetch.write(chunk)
        if fetch.hashes.sha256 != target.sha256:
            raise BlobCorrupt(f"blob {target.sha256} in the store hashes to {fetch.hashes.sha256}")
        fetch.verify()

    async def _download(self, fetch: FileFetch) -> None:
        target = fetch.target
        digest = fetch.hashes
        for number, source in enumerate(target.sources, 1):
            try:
                await self._stream(fetch, source.index, source.url, digest.update)
                break
            except UpstreamError as exc:
                if fetch.written or number == len(target.sources):
                    raise  # bytes went out already, or no other upstream to ask
                log.info("%s: %s: trying another upstream: %s", source.index.name, target.name, exc)
        url = fetch.source_url
        limit = fetch.length
        if limit is not None and fetch.written != limit:
            raise CorruptUpstreamFile(url, f"the body ended after {fetch.written} of {limit} bytes")
        if digest.sha256 != target.sha256:
            raise CorruptUpstreamFile(
                url, f"sha256 {digest.sha256} where the page says {target.sha256}"
            )
        fetch.verify()

    async def _stream(
        self, fetch: FileFetch, index: ProxyIndex, url: str, update: Callable[[bytes], object]
    ) -> None:
        expected = fetch.target.size
        settings = self.instance.settings
        # No size promised: a metadata file is capped like a page, a file like an upload.
        unknown = settings.upstream_page_max_size if fetch.target.metadata else None
        cap = expected if expected is not None else unknown or settings.max_upload_size
        async with self.client(index).stream_file(url, limit=cap) as stream:
            sent = stream.content_length
            if expected is not None and sent is not None and sent != expected:
                raise CorruptUpstreamFile(
                    url, f"the upstream sends {sent} bytes where its page says {expected}"
                )
            fetch.begin(url, sent)
            limit = fetch.length
            async for chunk in stream:
                if limit is not None and fetch.written + len(chunk) > limit:
                    raise CorruptUpstreamFile(url, f"more than the {limit} bytes expected")
                update(chunk)
                fetch.write(chunk)

    def _facts(self, fetch: FileFetch) -> FileFacts | None:
        """What the file's bytes say beyond the page (:func:`~tilsit.upstream.fetched.read_facts`).

        Digests as computed while the body streamed in; a blob reused from the
        store (another index fetched it) is read once instead. A wheel's METADATA
        is read where the upstream offers none, and stored before the rows name
        it; one that cannot be read is logged, and the file served without it.
        Runs before the temp file goes into the store.
        """
        target = fetch.target
        if target.metadata:
            return None
        path = fetch.temp or self.instance.blobs.path(target.sha256)  # adopted: a local blob
        facts, problem = read_facts(
            path,
            target.filename,
            hashes=fetch.hashes if fetch.temp is not None else None,
            read_metadata=not target.upstream_metadata,
            store=self.instance.blobs.put_bytes,
        )
        if problem is not None:
            log.warning("%s: %s: %s", target.index.name, target.name, problem)
        return facts

    def _store_blob(self, fetch: FileFetch) -> FileFacts | None:
        """Read what the bytes say, then store them (fsynced) before any row names them."""
        facts = self._facts(fetch)
        if fetch.temp is not None:
            self.instance.blobs.put_file(fetch.temp, fetch.target.sha256)
        return facts

    def _mark_cached(self, session: Session, fetch: FileFetch, facts: FileFacts | None) -> None:
        target = fetch.target
        # Stored once, cached for every proxy index that lists it.
        for index_id in {source.index.id for source in target.sources}:
            index = session.get_one(IndexRow, index_id)
            if target.metadata:
                mark_metadata_cached(session, index, target.file_sha256, target.filename)
            else:
                mark_file_cached(
                    session,
                    index,
                    target.sha256,
                    target.filename,
                    size=fetch.written,
                    facts=facts,
                )
