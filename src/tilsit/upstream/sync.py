"""Mirror sync: bring a mirror index up to date with its upstream, verified and resumable.

One run:

1. fetch the upstream root (conditional on the root's ETag when the last run
   completed), read ``{project: _last-serial}``, apply the name filters;
2. record the root's serial as ``upstream_serial`` (``synced_serial`` stays);
3. remove projects gone from the root (or filtered out by name);
4. for each project whose serial differs from the local one (every project,
   by conditional GET, when the upstream gives no serials), with ``workers``
   at a time: fetch the page (a page older than the root listed is stale and
   retried), filter its files, stream every missing file and ``.metadata`` to
   a temp file while hashing and counting, verify, store the blob; only then
   apply the page in its own write transaction. Any failure publishes nothing
   for that project; it is retried with backoff and, if it persists, named in
   the report and the run fails;
5. only if every project succeeded: advance ``synced_serial``, remember the
   root ETag, and re-render the root page. Else record ``last_error``.

Pages are rendered (``Renderer.catch_up``) after applies, coalesced; a page
only ever links blobs stored before its rows were committed, so a kill at any
point leaves every published page consistent, and the next run resumes (what
was applied has matching serials; its blobs are not fetched again). A blob in
the store is reused only when :func:`~tilsit.index.upstream.reusable_blobs`
allows it (this index holds it, or a public index does); the store is shared,
and a hash an upstream page lists is not proof of having the bytes. Every body
is capped (pages by ``upstream_page_max_size``, files by their page's size or
``max_upload_size``); past a cap the project fails without a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from tilsit.config.origins import parse_origins
from tilsit.db.models import FileRow, IndexRow, ProjectRow, UpstreamStateRow
from tilsit.index.journal import record
from tilsit.index.manage import get_index
from tilsit.index.upstream import (
    Applied,
    FileFacts,
    UpstreamFile,
    UpstreamProject,
    apply_upstream_project,
    learned_files,
    remove_upstream_project,
    reusable_blobs,
    upstream_state,
)
from tilsit.instance import Instance
from tilsit.spec.names import validate_name
from tilsit.trust.layout import tuf_dir
from tilsit.trust.mirror import (
    RESIGNED,
    AbsoluteLinks,
    CarryFault,
    NoOriginMetadata,
    carries,
    carry,
    mark_resigned,
    reset_state,
    resigned,
    state_dir_for,
)
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamTooLarge,
)
from tilsit.upstream.fetched import BodyHashes, read_facts
from tilsit.upstream.filters import Filters, InvalidFilter
from tilsit.upstream.pages import RootIndex, parse_project_page, parse_root_page
from tilsit.upstream.status import write_status

__all__ = [
    "MirrorSync",
    "NotAMirror",
    "Reporter",
    "StalePage",
    "SyncBusy",
    "SyncReport",
    "VerificationFailed",
    "sync_mirror",
]

NO_METADATA = "the upstream publishes no TUF metadata"

_REMOVE_BATCH = 500


class SyncBusy(RuntimeError):
    """Another sync of the same index holds its lock."""


class NotAMirror(ValueError):
    """The named index is not a mirror index."""


class VerificationFailed(Exception):
    """Bytes from the upstream do not match what its page says (hash or size)."""


class StalePage(Exception):
    """A project page older than the serial the root listed for it."""


class _TooLarge(Exception):
    """A file of unknown size grew past the filters' ``max_file_size`` while streaming."""


class _RootFailed(Exception):
    """The root page could not be fetched or read: nothing can be synced."""


_RETRYABLE = (UpstreamError, VerificationFailed, StalePage)


class Reporter(Protocol):
    """Progress for a human: a rich display on a terminal, log lines otherwise."""

    def begin(self, total: int) -> None: ...

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


class _Silent:
    def begin(self, total: int) -> None:
        pass

    def project(self, name: str, outcome: str, *, failed: bool = False) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def end(self) -> None:
        pass


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"  # pragma: no cover


@dataclass
class SyncReport:
    index: str
    upstream_serial: int | None = None
    synced_serial: int | None = None
    listed: int = 0  # projects on the upstream root
    selected: int = 0  # of those, kept by the filters
    synced: int = 0  # projects whose page changed here
    unchanged: int = 0  # fetched (or revalidated) and found the same
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    files: int = 0  # files and metadata files fetched
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None  # a failure of the whole run (root unreachable, bad filters)

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None

    def summary(self) -> str:
        text = (
            f"mirror {self.index}: {self.synced} project(s) synced, {self.unchanged} unchanged,"
            f" {self.removed} removed, {len(self.failed)} failed;"
            f" {self.files} file(s), {_size(self.bytes)} fetched; {self.requests} request(s);"
            f" {self.seconds:.2f} s; upstream serial {self.upstream_serial},"
            f" synced serial {self.synced_serial}"
        )
        if self.error:
            text += f"; error: {self.error}"
        return text


@dataclass(frozen=True, slots=True)
class _Local:
    serial: int | None
    etag: str | None
    deleted: bool


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SyncBusy(f"another sync holds {path}") from exc
        yield
    finally:
        os.close(fd)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class MirrorSync:
    """One run of ``tilsit mirror sync`` against one mirror index."""

    client: UpstreamClient

    def __init__(
        self,
        instance: Instance,
        index_name: str,
        *,
        workers: int = 8,
        attempts: int = 4,
        backoff: float = 0.5,
        reporter: Reporter | None = None,
    ) -> None:
        self.instance = instance
        self.index_name = index_name
        self.workers = max(1, workers)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.reporter: Reporter = reporter or _Silent()
        self.report = SyncReport(index_name)
        self._tmp_prefix = f"mirror-{index_name}-"
        self._dirty = asyncio.Event()
        self._stopping = False
        self._write = asyncio.Lock()
        self._slots = asyncio.Semaphore(self.workers)

    # -- the run ---------------------------------------------------------------

    async def run(self) -> SyncReport:
        started = time.monotonic()
        settings = self.instance.settings
        with _exclusive(settings.data / f"mirror-{self.index_name}.lock"):
            self._clean_tmp()
            await asyncio.to_thread(self._load)
            root: RootIndex | None = None
            root_etag: str | None = None
            crash: Exception | None = None
            try:
                async with UpstreamClient.from_options(
                    self.options,
                    connections=self.workers,
                    page_max_size=settings.upstream_page_max_size,
                    file_origins=parse_origins(settings.upstream_file_origins),
                ) as client:
                    self.client = client
                    try:
                        root, root_etag = await self._sync(client)
                    finally:
                        self.report.requests = client.requests
                if self.report.ok and root is not None:
                    await asyncio.to_thread(self._trust)
            except _RootFailed as exc:
                self.report.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - recorded as the run's last error, then raised
                self.report.error = f"{type(exc).__name__}: {exc}"
                crash = exc
            finally:
                self.reporter.end()
            await asyncio.to_thread(self._finish, root, root_etag)
            self.report.seconds = time.monotonic() - started
            if crash is not None:
                raise crash
        return self.report

    def _clean_tmp(self) -> None:
        # Temp files of a killed run of this index (its lock is ours now).
        tmp = self.instance.settings.tmp_dir
        for leftover in tmp.glob(f"{self._tmp_prefix}*") if tmp.is_dir() else []:
            leftover.unlink(missing_ok=True)

    def _load(self) -> None:
        with self.instance.db.read() as session:
            index = get_index(session, self.index_name)
            if index.kind != "mirror":
                raise NotAMirror(f"index {self.index_name!r} is a {index.kind} index, not a mirror")
            self.index_id = index.id
            self.options: Mapping[str, Any] = dict(index.options)
            state = session.get(UpstreamStateRow, index.id)
            self.state_root_etag = state.root_etag if state else None
            self.state_upstream_serial = state.upstream_serial if state else None
            self.state_synced_serial = state.synced_serial if state else None
            self.local = {
                name: _Local(serial, etag, deleted is not None)
                for name, serial, etag, deleted in session.execute(
                    select(
                        ProjectRow.normalized,
                        ProjectRow.upstream_serial,
                        ProjectRow.upstream_etag,
                        ProjectRow.deleted_at,
                    ).where(ProjectRow.index_id == index.id)
                )
            }
        self.report.synced_serial = self.state_synced_serial
        try:
            self.filters = Filters.from_options(self.options.get("filters"))
        except InvalidFilter as exc:
            raise InvalidFilter(f"index {self.index_name!r}: {exc}") from exc
        # Changed filters select differently: look at every project again.
        synced_filters = self.options.get("synced_filters", Filters().fingerprint())
        self.full = synced_filters != self.filters.fingerprint()

    async def _sync(self, client: UpstreamClient) -> tuple[RootIndex | None, str | None]:
        # The root ETag is kept only after a complete run, so a 304 means
        # "nothing listed changed since everything here was in place".
        conditional = self.state_root_etag if not self.full else None
        page = await self._root(client, conditional)
        if page is None:  # 304
            if self.state_upstream_serial is not None:
                self.report.upstream_serial = self.state_upstream_serial
                self.report.listed = self.report.selected = len(self._live())
                self.report.unchanged = self.report.listed
                return RootIndex({}, self.state_synced_serial), self.state_root_etag
            # A static tree: the list is unchanged, the pages may not be.
            root = RootIndex(dict.fromkeys(self._live()), None)
            etag = self.state_root_etag
        else:
            root, etag = page
        self.report.upstream_serial = root.serial
        self.report.listed = len(root.projects)
        wanted = {n: s for n, s in root.projects.items() if self.filters.wants_project(n)}
        self.report.selected = len(wanted)
        await asyncio.to_thread(self._start, root.serial)

        gone = sorted(n for n, here in self.local.items() if not here.deleted and n not in wanted)
        due = sorted(
            (n, s)
            for n, s in wanted.items()
            if self.full
            or s is None
            or (here := self.local.get(n)) is None
            or here.deleted
            or here.serial != s
        )
        self.report.unchanged += len(wanted) - len(due)
        self.reporter.begin(len(due) + len(gone))
        publisher = asyncio.create_task(self._publisher())
        try:
            if gone:
                await self._remove(gone)
            queue: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
            for item in due:
                queue.put_nowait(item)
            workers = [
                asyncio.create_task(self._worker(queue)) for _ in range(min(self.workers, len(due)))
            ]
            await asyncio.gather(*workers)
        finally:
            self._stopping = True
            self._dirty.set()
            await publisher
        return root, etag

    def _live(self) -> list[str]:
        return sorted(n for n, here in self.local.items() if not here.deleted)

    async def _root(
        self, client: UpstreamClient, etag: str | None
    ) -> tuple[RootIndex, str | None] | None:
        """The parsed root and its ETag, or None for a 304; retried; stale roots refused."""
        url = client.url("")
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                page = await client.fetch_page(url, etag)
                if page.status == 304:
                    return None
                root = parse_root_page(
                    page.body, page.content_type, page.url, header_serial=page.serial
                )
            except UpstreamNotFound as exc:
                raise _RootFailed(f"upstream root not found: {exc}") from exc
            except UpstreamError as exc:
                problem = _describe(exc)
                self._retrying("root page", problem, attempt)
                continue
            floor = self.state_synced_serial
            if root.serial is not None and floor is not None and root.serial < floor:
                problem = f"stale root page: serial {root.serial} is below {floor}, synced before"
                self._retrying("root page", problem, attempt)
                continue
            live = len(self._live())
            if not root.projects and live:
                # An empty list from an upstream that had projects is far likelier a
                # broken upstream (a wiped disk, a misrouted proxy) than a real
                # deletion of everything: refuse rather than unpublish the mirror.
                problem = f"the upstream root lists no projects, but this mirror has {live}"
                self._retrying("root page", problem, attempt)
                continue
            for skipped in root.skipped:
                self.reporter.note(f"root page: skipped {skipped.name!r}: {skipped.reason}")
            return root, page.etag
        raise _RootFailed(f"upstream root failed: {problem}")

    def _retrying(self, what: str, problem: str, attempt: int) -> None:
        if attempt + 1 < self.attempts:
            self.reporter.note(f"{what}: {problem}; retrying ({attempt + 2}/{self.attempts})")

    def _start(self, serial: int | None) -> None:
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            state = upstream_state(session, index)
            state.upstream_serial = serial
            state.root_etag = None  # set again only when this run completes
        write_status(self.instance.tree, index, state)

    async def _remove(self, names: list[str]) -> None:
        for start in range(0, len(names), _REMOVE_BATCH):
            batch = names[start : start + _REMOVE_BATCH]
            async with self._write:
                await asyncio.to_thread(self._remove_batch, batch)
            self._dirty.set()
            for name in batch:
                self.report.removed += 1
                self.reporter.project(name, "removed (gone upstream or filtered out)")

    def _remove_batch(self, names: list[str]) -> None:
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            for name in names:
                remove_upstream_project(session, index, name)

    async def _publisher(self) -> None:
        """Render what applies changed, coalescing bursts into one catch-up."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await asyncio.to_thread(self.instance.renderer.catch_up)
            if self._stopping and not self._dirty.is_set():
                return

    async def _worker(self, queue: asyncio.Queue[tuple[str, int | None]]) -> None:
        while True:
            try:
                name, serial = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._project(name, serial)

    async def _project(self, name: str, listed: int | None) -> None:
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                outcome = await self._project_once(name, listed)
            except UpstreamTooLarge as exc:  # it would only be read to the cap again
                problem = _describe(exc)
                break
            except _RETRYABLE as exc:
                problem = _describe(exc)
                self._retrying(name, problem, attempt)
                continue
            except Exception as exc:  # noqa: BLE001 - one project's fault must not stop the others; the run still fails
                problem = f"{type(exc).__name__}: {exc}"
                break
            self.reporter.project(name, outcome)
            return
        self.report.failed[name] = problem
        self.reporter.project(name, f"FAILED: {problem}", failed=True)

    async def _project_once(self, name: str, listed: int | None) -> str:
        validate_name(name)  # before any request: a name the tree cannot hold is refused, named
        here = self.local.get(name)
        revalidate = listed is None and here is not None and not here.deleted and not self.full
        url = self.client.url(f"{name}/")
        try:
            page = await self.client.fetch_page(url, here.etag if revalidate and here else None)
        except UpstreamNotFound:
            # Listed by the root but gone now: deleted upstream in between.
            async with self._write:
                await asyncio.to_thread(self._remove_batch, [name])
            self._dirty.set()
            self.report.removed += 1
            return "removed (its page is gone upstream)"
        if page.status == 304:
            self.report.unchanged += 1
            return "unchanged"
        parsed = parse_project_page(
            page.body,
            page.content_type,
            page.url,
            name,
            header_serial=page.serial,
            etag=page.etag,
        )
        serial = parsed.project.serial
        if listed is not None and (serial is None or serial < listed):
            raise StalePage(f"stale page: serial {serial}, the root listed {listed}")
        for skipped in parsed.skipped:
            self.reporter.note(f"{name}: skipped {skipped.filename}: {skipped.reason}")
        selected = self.filters.select(parsed.project)
        listed_blobs = {f.sha256 for f in selected.project.files} | {
            f.metadata_sha256 for f in selected.project.files if f.metadata_sha256 is not None
        }
        held = await asyncio.to_thread(self._reusable, listed_blobs)
        learned = await asyncio.to_thread(self._learned, name)
        tasks = [
            asyncio.ensure_future(self._file(f, held, learned)) for f in selected.project.files
        ]
        try:
            fetched = await asyncio.gather(*tasks)
        except BaseException:
            # One file failed: the project publishes nothing, so stop fetching its others.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        files = tuple(f for f in fetched if f is not None)
        project = replace(selected.project, files=files)
        stored = {f.sha256 for f in files} | {
            f.metadata_sha256 for f in files if f.metadata_sha256 is not None
        }
        applied = await self._apply(project, stored)
        if applied.serial is None:
            self.report.unchanged += 1
            return "unchanged"
        self.report.synced += 1
        return f"+{applied.added} -{applied.removed} ~{applied.changed} file(s)"

    async def _apply(self, project: UpstreamProject, stored: set[str]) -> Applied:
        async with self._write:
            applied = await asyncio.to_thread(self._apply_now, project, stored)
        if applied.serial is not None:
            self._dirty.set()
        return applied

    def _apply_now(self, project: UpstreamProject, stored: set[str]) -> Applied:
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            return apply_upstream_project(session, index, project, stored=stored, actor="sync")

    # -- files -------------------------------------------------------------------

    def _reusable(self, hashes: set[str]) -> set[str]:
        with self.instance.db.read() as session:
            return reusable_blobs(session, self.index_id, hashes)

    def _learned(self, name: str) -> set[tuple[str, str]]:
        with self.instance.db.read() as session:
            return learned_files(session, self.index_id, name)

    async def _file(
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
        facts: FileFacts | None = None
        async with self._slots:
            if f.sha256 in held and blobs.exists(f.sha256):
                size = await asyncio.to_thread(lambda: blobs.path(f.sha256).stat().st_size)
                if f.size >= 0 and size != f.size:
                    raise VerificationFailed(
                        f"{f.filename}: the page says {f.size} bytes, its sha256 has {size}"
                    )
                if (f.filename, f.sha256) not in learned:
                    facts = await self._read_facts(blobs.path(f.sha256), f, None)
            else:
                try:
                    size, facts = await self._download(
                        f.url,
                        f.sha256,
                        f.size,
                        f.filename,
                        cap=self.instance.settings.max_upload_size,
                        filtered=self.filters.max_file_size,
                        learn_for=f,
                    )
                except _TooLarge:
                    return None
            if f.metadata_sha256 is not None and not (
                f.metadata_sha256 in held and blobs.exists(f.metadata_sha256)
            ):
                # A core-metadata file is a few kB: capped like a page.
                await self._download(
                    f.url + ".metadata",
                    f.metadata_sha256,
                    -1,
                    f"{f.filename}.metadata",
                    cap=self.instance.settings.upstream_page_max_size,
                )
        return replace(f, size=size if f.size < 0 else f.size, facts=facts)

    async def _download(
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
        cap on a file of unknown size: past it :class:`_TooLarge`, the file left out.
        For a distribution (``learn_for``), md5 and blake2 are computed in the same
        pass, and a wheel's METADATA is read from the verified temp file (see
        :meth:`_read_facts`) before the file goes into the store.
        """
        allowed = size if size >= 0 else min(cap, filtered) if filtered is not None else cap
        fd, name = tempfile.mkstemp(dir=self.instance.settings.tmp_dir, prefix=self._tmp_prefix)
        temp = Path(name)
        try:
            digest = BodyHashes()
            count = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    async with self.client.stream_file(url, limit=allowed) as stream:
                        if size >= 0 and stream.content_length not in (None, size):
                            raise VerificationFailed(
                                f"{what}: the upstream sends {stream.content_length} bytes,"
                                f" its page says {size}"
                            )
                        async for chunk in stream:
                            count += len(chunk)
                            digest.update(chunk)
                            out.write(chunk)
                except UpstreamTooLarge as exc:
                    if size >= 0:
                        raise VerificationFailed(
                            f"{what}: more bytes than the {size} its page says ({exc.message})"
                        ) from None
                    if filtered is not None and filtered <= cap:
                        raise _TooLarge(what) from None
                    raise
            if size >= 0 and count != size:
                raise VerificationFailed(f"{what}: got {count} bytes, its page says {size}")
            if digest.sha256 != sha256:
                raise VerificationFailed(
                    f"{what}: sha256 mismatch (got {digest.sha256}, its page says {sha256})"
                )
            facts = None if learn_for is None else await self._read_facts(temp, learn_for, digest)
            await asyncio.to_thread(self.instance.blobs.put_file, temp, sha256)
            self.report.files += 1
            self.report.bytes += count
            return count, facts
        finally:
            temp.unlink(missing_ok=True)

    async def _read_facts(
        self, path: Path, f: UpstreamFile, hashes: BodyHashes | None
    ) -> FileFacts:
        """What the verified bytes at ``path`` say (:func:`~tilsit.upstream.fetched.read_facts`).

        A wheel's METADATA is read only where the upstream offers no core metadata;
        one that cannot be read is noted, and the file mirrored without ``.metadata``.
        """
        facts, problem = await asyncio.to_thread(
            read_facts,
            path,
            f.filename,
            hashes=hashes,
            read_metadata=f.metadata_sha256 is None,
            store=self.instance.blobs.put_bytes,
        )
        if problem is not None:
            self.reporter.note(f"{f.filename}: {problem}")
        return facts

    # -- TUF: carry the origin's signatures, or sign here and say why ------------

    def _trust(self) -> None:
        instance = self.instance
        upstream = str(self.options["upstream"])
        with instance.db.read() as session:
            index = session.get_one(IndexRow, self.index_id)
            private = index.private
            options = dict(index.options)
        before = options.get("tuf")
        unchanged = not (self.report.synced or self.report.removed)
        if (
            unchanged
            and isinstance(before, dict)
            and before.get("mode") == RESIGNED
            and str(before.get("reason", "")).startswith(NO_METADATA)
        ):
            return  # asked when the upstream last changed: no metadata then, none to copy now
        if self.filters.active:
            reason = "filtered: its pages differ from the origin's signed pages"
        else:
            try:
                with instance.renderer.locked():
                    carried = carry(
                        instance.tree,
                        instance.blobs,
                        state_dir_for(instance.settings.data, self.index_name),
                        self.index_name,
                        private,
                        options,
                        reusable=self._held_by_index(),
                    )
                    self._set_tuf(carried.options, carried.root)
                self.reporter.note(
                    f"TUF: carrying the origin's metadata (timestamp v{carried.timestamp_version},"
                    f" {carried.targets} targets, {carried.fetched_pages} pages fetched)"
                )
                return
            except NoOriginMetadata as exc:
                reason = f"{NO_METADATA} ({exc})"
            except AbsoluteLinks as exc:
                reason = (
                    f"the upstream's pages link files by absolute URL ({exc}),"
                    " so its signed pages would send clients to the origin"
                )
            except CarryFault as exc:
                self.report.error = f"the upstream's TUF metadata does not verify: {exc}"
                return
        self.reporter.note(f"TUF: re-signed with this server's own root: {reason}")
        was_carried = carries(options)
        tuf = resigned(upstream, reason)
        self._set_tuf(tuf, None)
        if was_carried:
            # The origin's metadata is another root's: sign everything here from scratch.
            instance.tree.remove_dir(tuf_dir(self.index_name))
            reset_state(instance.settings.data, self.index_name)
            instance.renderer.rebuild()
        with instance.renderer.locked():
            unsigned = mark_resigned(
                instance.tree,
                instance.signing.keys,
                self.index_name,
                {"upstream": upstream, "reason": reason},
            )
        if unsigned is not None:
            self._set_tuf({**tuf, "root_field": f"not signed: {unsigned}"}, None)

    def _held_by_index(self) -> Callable[[str], bool]:
        """Whether a signed target's stored blob may stand for it (one query per miss)."""
        own: set[str] = set()
        with self.instance.db.read() as session:
            for sha256, metadata_sha256, metadata_cached in session.execute(
                select(FileRow.sha256, FileRow.metadata_sha256, FileRow.metadata_cached).where(
                    FileRow.index_id == self.index_id, FileRow.cached.is_(True)
                )
            ):
                own.add(sha256)
                if metadata_sha256 is not None and metadata_cached:
                    own.add(metadata_sha256)
        return lambda sha256: sha256 in own or bool(self._reusable({sha256}))

    def _set_tuf(self, tuf: dict[str, Any], root: bytes | None) -> None:
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            options = dict(index.options)
            options["tuf"] = tuf
            if root is not None and "upstream_root" not in options:
                options["upstream_root"] = root.decode()  # trusted on first use: pinned from now
            if options != index.options:
                index.options = options

    # -- the end -----------------------------------------------------------------

    def _finish(self, root: RootIndex | None, root_etag: str | None) -> None:
        now = datetime.now(UTC)
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            state = upstream_state(session, index)
            if self.report.ok and root is not None:
                moved = state.synced_serial != root.serial
                state.synced_serial = root.serial
                state.root_etag = root_etag
                state.last_success = now
                options = dict(index.options)
                options["synced_filters"] = self.filters.fingerprint()
                if options != index.options:
                    index.options = options
                if moved:
                    # The root page shows the synced serial: journal so it re-renders.
                    record(
                        session,
                        index,
                        "mirror sync",
                        actor="sync",
                        detail={"upstream_serial": root.serial, "synced": self.report.synced},
                    )
            else:
                failed = sorted(self.report.failed)
                parts = [self.report.error] if self.report.error else []
                if failed:
                    shown = ", ".join(f"{n} ({self.report.failed[n]})" for n in failed[:5])
                    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
                    parts.append(f"{len(failed)} project(s) failed: {shown}{more}")
                state.last_error = "; ".join(parts)
                state.last_error_at = now
            self.report.synced_serial = state.synced_serial
        write_status(self.instance.tree, index, state)
        self.instance.renderer.catch_up()


async def sync_mirror(
    instance: Instance,
    index_name: str,
    *,
    workers: int = 8,
    attempts: int = 4,
    backoff: float = 0.5,
    reporter: Reporter | None = None,
) -> SyncReport:
    """Run one sync of mirror ``index_name``; see the module docstring."""
    sync = MirrorSync(
        instance,
        index_name,
        workers=workers,
        attempts=attempts,
        backoff=backoff,
        reporter=reporter,
    )
    return await sync.run()
