"""The proxy of one process: page refreshes and file fetches, each once at a time.

A proxy index starts empty. The first request for a project page fetches it
from the upstream and applies it through the one write path of mirror and proxy
indexes (:func:`tilsit.index.upstream.apply_upstream_project`); from then on the
page is served from the static tree like any other. After the index's TTL
(``options["ttl"]`` seconds, default 600) the next request revalidates it with
the stored ETag: a 304 only moves ``fetched_at``, a new page is applied and
rendered.

Every write goes through the coalescer (:mod:`.writes`): the fills that are ready
together share one transaction and one catch-up. A client is answered as soon as
its own data is durable: a page from its own bytes rendered here
(:mod:`.pages`) until the tree has it, a file when its blob and row are
committed; neither waits for the render of another project.

Files are listed on the page before their bytes are here (``cached=False``). The
first request for one starts a :class:`~.files.FileFetch`, which every request
for that file joins (:mod:`.files`): verified against the page's size and hash,
stored, marked cached and journaled, then linked into the tree by the catch-up,
which serves every later request. The fetch is shared until the tree has the
file, so two clients asking for one cold file cause one upstream fetch.
Core-metadata files (``<file>.metadata``) go the same way, checked against the
page's core-metadata hash. ``/packages/`` paths are shared by all indexes, so
when several proxy indexes list one file, the fetch asks their upstreams in turn
(the most recently fetched page first) until one answers.

Index options (``IndexRow.options``): ``upstream``, ``auth``, ``ca_bundle``,
``ttl`` (default 600 s), ``timeout`` (per upstream request, default 10 s: a
proxy has clients waiting) and ``not_found_ttl`` (default 60 s).

Per-process memory, all of it an optimisation over the database (the truth):

- until when each page is fresh, so a page within its TTL costs no query;
- upstream 404s, remembered for ``options["not_found_ttl"]`` (default 60 s), so
  a client hammering a missing name does not hammer the upstream;
- after a failed revalidation, a page is served stale for ``min(ttl, 30 s)``
  before the upstream is tried again, so a dead upstream costs one timeout per
  page, not one per request;
- one page refresh and one file fetch at a time per page and file (single flight);
- pages durable but not yet rendered, until the tree has them.

Several processes each keep their own; they agree through the database, and
at worst fetch the same thing twice (content-addressed blobs make that harmless).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.config.origins import parse_origins
from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.index.upstream import (
    FileFacts,
    UpstreamProject,
    apply_upstream_project,
    learned_files,
    mark_file_cached,
    mark_metadata_cached,
    remove_upstream_project,
    reusable_blobs,
)
from tilsit.instance import Instance
from tilsit.spec.names import normalize
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import UpstreamError, UpstreamNotFound, UpstreamProtocolError
from tilsit.upstream.fetched import read_facts
from tilsit.upstream.pages import parse_project_page
from tilsit.upstream.proxy.expiring import Expiring
from tilsit.upstream.proxy.files import CorruptUpstreamFile, FileFetch, FileSource, ProxyFile
from tilsit.upstream.proxy.index import DEFAULT_TIMEOUT, ProxyIndex
from tilsit.upstream.proxy.pages import (
    FRESH,
    MISSING,
    PageOutcome,
    PageStatus,
    UnrenderedPage,
    unrendered_page,
)
from tilsit.upstream.proxy.writes import WriteCoalescer

__all__ = ["RETRY_AFTER_ERROR", "Proxy"]

log = logging.getLogger("tilsit.proxy")

RETRY_AFTER_ERROR = 30.0
_CONNECTIONS = 32


@dataclass(frozen=True, slots=True)
class _PageState:
    exists: bool  # a live project row, so a page in the tree
    fetched_at: datetime | None
    etag: str | None
    # The index as the database has it now (``index set`` may have changed its
    # upstream, credentials, CA or TTL); None once it is deleted.
    index: ProxyIndex | None = None


@dataclass(slots=True)
class _PageFlight:
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: PageOutcome | None = None


class Proxy:
    """The proxy indexes of one process: their upstream clients and in-memory state."""

    def __init__(self, instance: Instance, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance = instance
        self._clock = clock
        # Per index: the options a client was built from, and the client.
        self._clients: dict[int, tuple[Mapping[str, Any], UpstreamClient]] = {}
        self._retired: list[UpstreamClient] = []
        self._fresh: Expiring[bool] = Expiring(clock)
        self._missing: Expiring[bool] = Expiring(clock)
        self._failed: Expiring[UpstreamError] = Expiring(clock)
        self._pages: dict[tuple[int, str], _PageFlight] = {}
        self._files: dict[tuple[str, str, bool], FileFetch] = {}
        self.writes = WriteCoalescer(instance.db, instance.renderer)
        # Pages durable but not in the tree yet (see .pages), until it catches up.
        self._unrendered: dict[tuple[int, str], UnrenderedPage] = {}

    # -- indexes and clients --------------------------------------------------------

    def index_kinds(self) -> dict[str, ProxyIndex | None]:
        """Every index by name: its :class:`ProxyIndex` if it is a proxy, else None."""
        with self.instance.db.read() as session:
            return {
                row.name: ProxyIndex.from_row(row) if row.kind == "proxy" else None
                for row in session.scalars(select(IndexRow))
            }

    def client(self, index: ProxyIndex) -> UpstreamClient:
        built = self._clients.get(index.id)
        if built is not None and built[0] == index.options:
            return built[1]
        if built is not None:
            # Changed by `index set`: fetches under way finish on the old client.
            self._retired.append(built[1])
        options = {"timeout": DEFAULT_TIMEOUT, **index.options}
        settings = self.instance.settings
        client = UpstreamClient.from_options(
            options,
            connections=_CONNECTIONS,
            page_max_size=settings.upstream_page_max_size,
            file_origins=parse_origins(settings.upstream_file_origins),
        )
        self._clients[index.id] = (index.options, client)
        return client

    async def aclose(self) -> None:
        await self.writes.aclose()
        clients = [client for _, client in self._clients.values()] + self._retired
        self._clients, self._retired = {}, []
        for client in clients:
            await client.aclose()

    # -- pages ----------------------------------------------------------------------

    async def page(self, index: ProxyIndex, name: str) -> PageOutcome:
        """Make the tree's page of ``name`` (normalized) current enough to serve."""
        key = (index.id, name)
        if self._missing.get(key):
            return MISSING
        if self._fresh.get(key):
            return FRESH
        failed = self._failed.get(key)
        if failed is not None:
            return PageOutcome(PageStatus.STALE, failed)
        while (under_way := self._pages.get(key)) is not None:
            await under_way.done.wait()
            if under_way.outcome is not None:
                return under_way.outcome
            # That refresh raised (a database error, say): try again, one at a time.
        flight = self._pages[key] = _PageFlight()
        try:
            flight.outcome = await self._refresh(index, name)
            return flight.outcome
        finally:
            del self._pages[key]
            flight.done.set()

    def forget_page(self, index: ProxyIndex, name: str) -> None:
        """Revalidate ``name`` on its next request (a file it listed is gone upstream)."""
        self._fresh.pop((index.id, name))

    async def _refresh(self, index: ProxyIndex, name: str) -> PageOutcome:
        key = (index.id, name)
        state = await anyio.to_thread.run_sync(self._page_state, index, name)
        if state.index is None:
            return MISSING  # deleted meanwhile
        index = state.index
        if state.exists and state.fetched_at is not None:
            age = (datetime.now(UTC) - state.fetched_at).total_seconds()
            if 0 <= age < index.ttl:  # fetched by another process meanwhile
                self._fresh.put(key, True, index.ttl - age)
                return FRESH
        client = self.client(index)
        url = client.url(f"{name}/")
        try:
            fetched = await client.fetch_page(url, state.etag if state.exists else None)
            if fetched.status == 304:
                await self.writes.write(lambda session: self._touch(session, index, name))
            else:
                parsed = parse_project_page(
                    fetched.body,
                    fetched.content_type,
                    fetched.url,
                    name,
                    header_serial=fetched.serial,
                    etag=fetched.etag,
                )
                for skipped in parsed.skipped:
                    log.info(
                        "%s: %s: skipped %s: %s", index.name, name, skipped.filename, skipped.reason
                    )
                await self._apply(index, name, parsed.project)
        except UpstreamNotFound:
            self._missing.put(key, True, index.not_found_ttl)
            if state.exists:
                await self.writes.write(lambda session: self._remove(session, index, name))
                self._unrendered.pop(key, None)  # gone: the tree's answer (404) is right
            return MISSING
        except UpstreamError as exc:
            log.warning("%s: %s: upstream failed: %s", index.name, name, exc)
            if not state.exists:
                return PageOutcome(PageStatus.FAILED, exc)
            self._failed.put(key, exc, min(index.ttl, RETRY_AFTER_ERROR))
            return PageOutcome(PageStatus.STALE, exc)
        self._failed.pop(key)
        self._missing.pop(key)
        self._fresh.put(key, True, index.ttl)
        return FRESH

    def _project(self, session: Session, index: ProxyIndex, name: str) -> ProjectRow | None:
        return session.scalars(
            select(ProjectRow).where(ProjectRow.index_id == index.id, ProjectRow.normalized == name)
        ).one_or_none()

    def _page_state(self, index: ProxyIndex, name: str) -> _PageState:
        with self.instance.db.read() as session:
            current = session.get(IndexRow, index.id)
            now = ProxyIndex.from_row(current) if current is not None else None
            row = self._project(session, index, name)
            if row is None or row.deleted_at is not None:
                return _PageState(False, None, None, now)
            return _PageState(True, row.fetched_at, row.upstream_etag, now)

    def _touch(self, session: Session, index: ProxyIndex, name: str) -> None:
        row = self._project(session, index, name)
        if row is not None:
            row.fetched_at = datetime.now(UTC)

    async def _apply(self, index: ProxyIndex, name: str, project: UpstreamProject) -> None:
        """Make the fetched page durable, then serve it from here until the tree has it."""
        # Nothing fetched yet: apply_upstream_project marks cached only the blobs
        # this index may reuse (reusable_blobs), never one because its hash matches.
        project = await anyio.to_thread.run_sync(self._learn_reused, index, project)

        def apply(session: Session) -> None:
            row = session.get_one(IndexRow, index.id)
            apply_upstream_project(session, row, project, actor="proxy")

        _, serial = await self.writes.write(apply)
        page = await anyio.to_thread.run_sync(self._render_unrendered, index, name, serial)
        if page is not None and not self.writes.has_rendered(page.serial):
            self._unrendered[(index.id, name)] = page

    def _render_unrendered(
        self, index: ProxyIndex, name: str, serial: int
    ) -> UnrenderedPage | None:
        with self.instance.db.read() as session:
            return unrendered_page(session, self.instance.renderer, index.id, name, serial)

    def unrendered(self, index: ProxyIndex, name: str) -> UnrenderedPage | None:
        """``name``'s pages if they are durable and the tree does not have them yet."""
        for key in [k for k, p in self._unrendered.items() if self.writes.has_rendered(p.serial)]:
            del self._unrendered[key]  # the tree has caught up: it answers from now on
        return self._unrendered.get((index.id, name))

    async def until_rendered(self, index: ProxyIndex, name: str | None) -> None:
        """Wait for the tree to hold ``name``'s pages (for what only the tree serves: legacy
        JSON); with ``name`` None, every page of the index (its project list names them)."""
        if name is not None:
            page = self.unrendered(index, name)
            serial = page.serial if page is not None else 0
        else:
            self.unrendered(index, "")  # drops what the tree has caught up with
            serial = max(
                (p.serial for (i, _), p in self._unrendered.items() if i == index.id), default=0
            )
        if serial:
            await self.writes.rendered(serial)

    def _learn_reused(self, index: ProxyIndex, project: UpstreamProject) -> UpstreamProject:
        """``project`` with the facts of the stored blobs it will reuse and has not read.

        A file another index fetched is linked without a fetch here, so its bytes
        are read once now (outside the writer lock), as a fetch would have.
        """
        blobs = self.instance.blobs
        with self.instance.db.read() as session:
            learned = learned_files(session, index.id, normalize(project.name))
            held = reusable_blobs(session, index.id, {f.sha256 for f in project.files})
        files = []
        for f in project.files:
            path = blobs.path(f.sha256)
            if f.sha256 in held and (f.filename, f.sha256) not in learned and path.is_file():
                facts, problem = read_facts(
                    path,
                    f.filename,
                    hashes=None,
                    read_metadata=f.metadata_sha256 is None,
                    store=blobs.put_bytes,
                )
                if problem is not None:
                    log.warning("%s: %s: %s", index.name, f.filename, problem)
                f = replace(f, facts=facts)
            files.append(f)
        return replace(project, files=tuple(files))

    def _remove(self, session: Session, index: ProxyIndex, name: str) -> None:
        row = session.get_one(IndexRow, index.id)
        remove_upstream_project(session, row, name, actor="proxy")

    # -- files ----------------------------------------------------------------------

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
            existing = self.instance.blobs.path(target.sha256)
            reuse = target.stored and existing.is_file()
            fetch = FileFetch(target, self.instance.settings.tmp_dir, existing if reuse else None)
            self._files[key] = fetch
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
            if fetch.temp is not None:
                await self._download(fetch)
            facts = await anyio.to_thread.run_sync(self._store_blob, fetch)
            _, serial = await self.writes.write(
                lambda session: self._mark_cached(session, fetch, facts)
            )
            fetch.release()  # durable: the readers get the last byte
            # Shared until the tree has the file (a request meanwhile is served from
            # the stored blob); rendered at the end of the burst unless a reader
            # waits for the tree (HEAD, Range).
            await self.writes.rendered(serial, urgent=fetch.tree_wanted)
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
        path = fetch.temp or self.instance.blobs.path(target.sha256)
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
