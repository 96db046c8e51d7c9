"""Pull-through proxy indexes: project pages fetched on demand, files on first request.

A proxy index starts empty. The first request for a project page fetches it
from the upstream, applies it through the one write path of mirror and proxy
indexes (:func:`tilsit.index.upstream.apply_upstream_project`) and lets the
renderer catch up; from then on the page is served from the static tree like
any other. After the index's TTL (``options["ttl"]`` seconds, default 600) the
next request revalidates it with the stored ETag: a 304 only moves
``fetched_at``, a new page is applied and rendered.

Files are listed on the page before their bytes are here (``cached=False``). The
first request for one starts a :class:`FileFetch`: the upstream body goes to a
temp file while being hashed, and every request for that file, the first and
any that arrive meanwhile, streams from that temp file as it grows. The last
byte is held back until size and sha256 match the page, so a client never gets
a complete-looking wrong file: on a mismatch the fetch fails, nothing is stored
and every reader sees :class:`CorruptUpstreamFile` before its last byte. On a
match the blob is stored, the row marked cached and journaled, and the renderer
links the file into the tree, which serves every later request. Core-metadata
files (``<file>.metadata``) go the same way, checked against the page's
core-metadata hash. ``/packages/`` paths are shared by all indexes, so when
several proxy indexes list one file, the fetch asks their upstreams in turn
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
- one page refresh and one file fetch at a time per page and file (single flight).

Several processes each keep their own; they agree through the database, and
at worst fetch the same thing twice (content-addressed blobs make that harmless).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
import httpx
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
from tilsit.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
)
from tilsit.upstream.fetched import BodyHashes, read_facts
from tilsit.upstream.pages import parse_project_page

__all__ = [
    "DEFAULT_NOT_FOUND_TTL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "CorruptUpstreamFile",
    "FileFetch",
    "FileSource",
    "PageOutcome",
    "PageStatus",
    "Proxy",
    "ProxyFile",
    "ProxyIndex",
    "timed_out",
]

log = logging.getLogger("tilsit.proxy")
V = TypeVar("V")

DEFAULT_TTL = 600.0
DEFAULT_NOT_FOUND_TTL = 60.0
# A proxy answers clients that wait (pip's default timeout is 15 s): an upstream
# that does not answer within this is treated as down and the cached copy served.
DEFAULT_TIMEOUT = 10.0
RETRY_AFTER_ERROR = 30.0
_CONNECTIONS = 32
_CHUNK = 1 << 16
# Bounds on the per-process memory; past them expired entries are dropped.
_MAX_REMEMBERED = 100_000


class CorruptUpstreamFile(UpstreamProtocolError):
    """The upstream's bytes do not match the size or sha256 its page promised."""


def timed_out(error: UpstreamError) -> bool:
    """Whether the upstream failed by not answering in time (a 504, not a 502)."""
    return isinstance(error.__cause__, httpx.TimeoutException)


@dataclass(frozen=True, slots=True)
class ProxyIndex:
    """What the proxy needs of a ``proxy`` index row, detached from any session."""

    id: int
    name: str
    options: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: IndexRow) -> ProxyIndex:
        return cls(row.id, row.name, dict(row.options or {}))

    @property
    def upstream(self) -> str:
        return str(self.options["upstream"])

    @property
    def ttl(self) -> float:
        return float(self.options.get("ttl", DEFAULT_TTL))

    @property
    def not_found_ttl(self) -> float:
        return float(self.options.get("not_found_ttl", DEFAULT_NOT_FOUND_TTL))


class PageStatus(Enum):
    FRESH = "fresh"  # the tree has the upstream's current page
    STALE = "stale"  # the upstream could not be asked; the tree has an older page
    MISSING = "missing"  # the upstream has no such project
    FAILED = "failed"  # the upstream could not be asked and nothing is cached


@dataclass(frozen=True, slots=True)
class PageOutcome:
    status: PageStatus
    error: UpstreamError | None = None


_FRESH = PageOutcome(PageStatus.FRESH)
_MISSING = PageOutcome(PageStatus.MISSING)


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
    and hash are verified. States: created -> ``started`` (the upstream answered
    200, or the fetch failed) -> ``verified`` or ``error`` -> ``settled`` (the blob
    stored and linked into the tree, or the failure final).
    """

    def __init__(self, target: ProxyFile, tmp_dir: Path, existing: Path | None) -> None:
        self.target = target
        self.source_url = target.url  # the upstream URL the bytes come from
        self.length: int | None = target.size
        self.written = 0
        self.hashes = BodyHashes()  # fed as the bytes arrive: no second read to hash
        self.verified = False
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
            self.verified = True
            self.started.set()
        else:
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="proxy-")
            self._write_fd, self.temp = fd, Path(name)
            self._read_fd = os.open(name, os.O_RDONLY)
        self._read_open = True

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
        self._close_writer()
        self.verified = True
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
            ready = self.written if self.verified else self.written - 1
            if position < ready:
                data = os.pread(self._read_fd, min(_CHUNK, ready - position), position)
                if not data:
                    raise CorruptUpstreamFile(self.target.url, "the temp file shrank")
                position += len(data)
                yield data
                continue
            if self.verified:
                return
            await progress.wait()


class _Expiring(Generic[V]):
    """A bounded map whose entries lapse after the seconds each was put for."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[tuple[int, str], tuple[float, V]] = {}

    def get(self, key: tuple[int, str]) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[int, str], value: V, seconds: float) -> None:
        if seconds <= 0:
            self._entries.pop(key, None)
            return
        now = self._clock()
        if len(self._entries) >= _MAX_REMEMBERED:
            for old in [k for k, (until, _) in self._entries.items() if until <= now]:
                del self._entries[old]
            if len(self._entries) >= _MAX_REMEMBERED:
                self._entries.clear()
        self._entries[key] = (now + seconds, value)

    def pop(self, key: tuple[int, str]) -> None:
        self._entries.pop(key, None)


class Proxy:
    """The proxy indexes of one process: their upstream clients and in-memory state."""

    def __init__(self, instance: Instance, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance = instance
        self._clock = clock
        # Per index: the options a client was built from, and the client.
        self._clients: dict[int, tuple[Mapping[str, Any], UpstreamClient]] = {}
        self._retired: list[UpstreamClient] = []
        self._fresh: _Expiring[bool] = _Expiring(clock)
        self._missing: _Expiring[bool] = _Expiring(clock)
        self._failed: _Expiring[UpstreamError] = _Expiring(clock)
        self._pages: dict[tuple[int, str], _PageFlight] = {}
        self._files: dict[tuple[str, str, bool], FileFetch] = {}

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
        clients = [client for _, client in self._clients.values()] + self._retired
        self._clients, self._retired = {}, []
        for client in clients:
            await client.aclose()

    # -- pages ----------------------------------------------------------------------

    async def page(self, index: ProxyIndex, name: str) -> PageOutcome:
        """Make the tree's page of ``name`` (normalized) current enough to serve."""
        key = (index.id, name)
        if self._missing.get(key):
            return _MISSING
        if self._fresh.get(key):
            return _FRESH
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
            return _MISSING  # deleted meanwhile
        index = state.index
        if state.exists and state.fetched_at is not None:
            age = (datetime.now(UTC) - state.fetched_at).total_seconds()
            if 0 <= age < index.ttl:  # fetched by another process meanwhile
                self._fresh.put(key, True, index.ttl - age)
                return _FRESH
        client = self.client(index)
        url = client.url(f"{name}/")
        try:
            fetched = await client.fetch_page(url, state.etag if state.exists else None)
            if fetched.status == 304:
                await anyio.to_thread.run_sync(self._touch, index, name)
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
                await anyio.to_thread.run_sync(self._apply, index, parsed.project)
        except UpstreamNotFound:
            self._missing.put(key, True, index.not_found_ttl)
            if state.exists:
                await anyio.to_thread.run_sync(self._remove, index, name)
            return _MISSING
        except UpstreamError as exc:
            log.warning("%s: %s: upstream failed: %s", index.name, name, exc)
            if not state.exists:
                return PageOutcome(PageStatus.FAILED, exc)
            self._failed.put(key, exc, min(index.ttl, RETRY_AFTER_ERROR))
            return PageOutcome(PageStatus.STALE, exc)
        self._failed.pop(key)
        self._missing.pop(key)
        self._fresh.put(key, True, index.ttl)
        return _FRESH

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

    def _touch(self, index: ProxyIndex, name: str) -> None:
        with self.instance.db.write() as session:
            row = self._project(session, index, name)
            if row is not None:
                row.fetched_at = datetime.now(UTC)

    def _apply(self, index: ProxyIndex, project: UpstreamProject) -> None:
        # Nothing fetched yet: apply_upstream_project marks cached only the blobs
        # this index may reuse (reusable_blobs), never one because its hash matches.
        project = self._learn_reused(index, project)
        with self.instance.db.write() as session:
            row = session.get_one(IndexRow, index.id)
            apply_upstream_project(session, row, project, actor="proxy")
        self.instance.renderer.catch_up()

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

    def _remove(self, index: ProxyIndex, name: str) -> None:
        with self.instance.db.write() as session:
            row = session.get_one(IndexRow, index.id)
            remove_upstream_project(session, row, name, actor="proxy")
        self.instance.renderer.catch_up()

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
            await fetch.settled.wait()
            return fetch.error

    async def _run(self, key: tuple[str, str, bool], fetch: FileFetch) -> None:
        target = fetch.target
        try:
            if fetch.temp is not None:
                await self._download(fetch)
            await anyio.to_thread.run_sync(self._store, fetch)
        except UpstreamError as exc:
            log.warning("%s: %s: not cached: %s", target.index.name, target.name, exc)
            fetch.fail(exc)
        except Exception as exc:  # a bug or a full disk: fail this fetch, keep serving
            log.exception("%s: storing %s failed", target.index.name, target.name)
            if not fetch.verified:
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

    def _store(self, fetch: FileFetch) -> None:
        target = fetch.target
        facts = self._facts(fetch)
        if fetch.temp is not None:
            self.instance.blobs.put_file(fetch.temp, target.sha256)
        with self.instance.db.write() as session:
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
        self.instance.renderer.catch_up()
