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
   a temp file while hashing and counting, verify, store the blob
   (:mod:`tilsit.upstream.download`); only then hand the page to be applied.
   Any failure publishes nothing for that project; it is retried with backoff
   and, if it persists, named in the report and the run fails;
5. the pages handed in are applied in batches (:mod:`tilsit.upstream.batch`):
   one write transaction, then one ``Renderer.catch_up`` (one render and one
   TUF round) per batch of up to ``batch_size`` projects, while the workers
   fetch the next ones;
6. only if every project succeeded: advance ``synced_serial``, remember the
   root ETag, and re-render the root page. Else record ``last_error``.

A page only ever links blobs stored before its rows were committed, and a
batch commits whole or not at all, so a kill at any point leaves every
published page consistent, and the next run resumes (what was applied has
matching serials; its blobs are not fetched again; rows committed but not yet
rendered are rendered by the next catch-up). A blob in
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
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tilsit.config.origins import parse_origins
from tilsit.db.cluster import cluster_lock
from tilsit.db.engine import Database
from tilsit.db.models import IndexRow, ProjectRow, UpstreamStateRow
from tilsit.index.journal import record
from tilsit.index.manage import get_index
from tilsit.index.upstream import (
    Applied,
    learned_files,
    remove_upstream_project,
    reusable_blobs,
    upstream_state,
)
from tilsit.instance import Instance
from tilsit.spec.names import validate_name
from tilsit.upstream.batch import BATCH_LINGER, BATCH_PROJECTS, ApplyBatches, Fetched, Outcome
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.download import FileFetcher, VerificationFailed
from tilsit.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamTooLarge,
)
from tilsit.upstream.filters import Filters, InvalidFilter
from tilsit.upstream.mirror_trust import publish_trust
from tilsit.upstream.pages import RootIndex, parse_project_page, parse_root_page
from tilsit.upstream.report import Reporter, Silent, SyncReport
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

_REMOVE_BATCH = 500


class SyncBusy(RuntimeError):
    """Another sync of the same index holds its lock."""


class NotAMirror(ValueError):
    """The named index is not a mirror index."""


class StalePage(Exception):
    """A project page older than the serial the root listed for it."""


class _RootFailed(Exception):
    """The root page could not be fetched or read: nothing can be synced."""


_RETRYABLE = (UpstreamError, VerificationFailed, StalePage)


@dataclass(frozen=True, slots=True)
class _Local:
    serial: int | None
    etag: str | None
    deleted: bool


@contextlib.contextmanager
def _exclusive(path: Path, db: Database, index_name: str) -> Iterator[None]:
    """This host's lock file, then the cluster's lock: one sync of an index at a time on
    every host sharing the database (:func:`~tilsit.db.cluster.cluster_lock`)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SyncBusy(f"another sync holds {path}") from exc
        with cluster_lock(db, f"mirror-sync:{index_name}") as held:
            if not held:
                raise SyncBusy(f"another host is syncing mirror {index_name!r}")
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
        batch_size: int = BATCH_PROJECTS,
        batch_linger: float = BATCH_LINGER,
    ) -> None:
        self.instance = instance
        self.index_name = index_name
        self.workers = max(1, workers)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.reporter: Reporter = reporter or Silent()
        self.report = SyncReport(index_name)
        self._tmp_prefix = f"mirror-{index_name}-"
        self._batch_size = batch_size
        self._batch_linger = batch_linger

    # -- the run ---------------------------------------------------------------

    async def run(self) -> SyncReport:
        started = time.monotonic()
        settings = self.instance.settings
        lock = settings.data / f"mirror-{self.index_name}.lock"
        with _exclusive(lock, self.instance.db, self.index_name):
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
                    self.files = FileFetcher(
                        self.instance,
                        client,
                        slots=self.workers,
                        max_file_size=self.filters.max_file_size,
                        tmp_prefix=self._tmp_prefix,
                        note=self.reporter.note,
                    )
                    try:
                        root, root_etag = await self._sync(client)
                    finally:
                        self.report.requests = client.requests
                        self.report.files = self.files.files
                        self.report.bytes = self.files.bytes
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
        if gone:
            await self._remove(gone)
        self.batches = ApplyBatches(
            self.instance,
            self.index_id,
            self._applied,
            size=self._batch_size,
            linger=self._batch_linger,
        )
        applier = asyncio.create_task(self.batches.run())
        try:
            queue: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
            for item in due:
                queue.put_nowait(item)
            workers: asyncio.Future[list[None]] = asyncio.gather(
                *(self._worker(queue) for _ in range(min(self.workers, len(due))))
            )
            # The applier ends before the workers only by a fault: then they would wait
            # on it for ever, so they stop, and its fault is the run's.
            both: set[asyncio.Future[Any]] = {workers, applier}
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if applier.done() and not workers.done():
                workers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workers
                applier.result()
            await workers
            await self.batches.close()
            await applier
        finally:
            if not applier.done():  # the workers failed: what was handed in is not applied
                applier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await applier
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
            await asyncio.to_thread(self._remove_batch, batch)
            for name in batch:
                self.report.removed += 1
                self.reporter.project(name, "removed (gone upstream or filtered out)")
        await asyncio.to_thread(self.instance.renderer.catch_up)

    def _remove_batch(self, names: list[str]) -> None:
        with self.instance.db.write() as session:
            index = session.get_one(IndexRow, self.index_id)
            for name in names:
                remove_upstream_project(session, index, name)

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
                fetched = await self._project_once(name, listed)
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
            if isinstance(fetched, Fetched):
                await self.batches.put(fetched)  # reported once its batch is applied
            else:
                self.reporter.project(name, fetched)
            return
        self._failed(name, problem)

    def _failed(self, name: str, problem: str) -> None:
        self.report.fail(name, problem)
        self.reporter.project(name, f"FAILED: {problem}", failed=True)

    def _applied(self, fetched: Fetched, outcome: Outcome) -> None:
        """What became of a project handed to :class:`ApplyBatches`, once its batch committed."""
        if not isinstance(outcome, Applied):
            self._failed(fetched.name, outcome)
        elif fetched.project is None:
            self.report.removed += 1
            self.reporter.project(fetched.name, "removed (its page is gone upstream)")
        elif outcome.serial is None:
            self.report.unchanged += 1
            self.reporter.project(fetched.name, "unchanged")
        else:
            self.report.synced += 1
            self.reporter.project(
                fetched.name,
                f"+{outcome.added} -{outcome.removed} ~{outcome.changed} file(s)",
            )

    async def _project_once(self, name: str, listed: int | None) -> str | Fetched:
        """Fetch a project's page and store its blobs: what to apply, or an outcome (304)."""
        validate_name(name)  # before any request: a name the tree cannot hold is refused, named
        here = self.local.get(name)
        revalidate = listed is None and here is not None and not here.deleted and not self.full
        url = self.client.url(f"{name}/")
        try:
            page = await self.client.fetch_page(url, here.etag if revalidate and here else None)
        except UpstreamNotFound:
            # Listed by the root but gone now: deleted upstream in between.
            return Fetched(name, None)
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
        held, learned = await asyncio.to_thread(self._known, name, listed_blobs)
        tasks = [
            asyncio.ensure_future(self.files.file(f, held, learned)) for f in selected.project.files
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
        return Fetched(name, project, frozenset(stored))

    # -- what this index holds ------------------------------------------------------

    def _known(self, name: str, hashes: set[str]) -> tuple[set[str], set[tuple[str, str]]]:
        """The blobs this index may reuse, and the files of ``name`` whose bytes it read."""
        with self.instance.db.read() as session:
            held = reusable_blobs(session, self.index_id, hashes) if hashes else set()
            # A project new here has no files yet, so none whose bytes were read.
            new = name not in self.local
            return held, set() if new else learned_files(session, self.index_id, name)

    # -- TUF: carry the origin's signatures, or sign here and say why ------------

    def _trust(self) -> None:
        error = publish_trust(
            self.instance,
            self.index_id,
            self.index_name,
            filtered=self.filters.active,
            changed=bool(self.report.synced or self.report.removed),
            note=self.reporter.note,
        )
        if error is not None:
            self.report.error = error

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
                count = self.report.failures
                parts = [self.report.error] if self.report.error else []
                if count:
                    shown = ", ".join(f"{n} ({self.report.failed[n]})" for n in failed[:5])
                    more = f" and {count - len(failed[:5])} more" if count > 5 else ""
                    parts.append(f"{count} project(s) failed: {shown}{more}")
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
    batch_size: int = BATCH_PROJECTS,
    batch_linger: float = BATCH_LINGER,
) -> SyncReport:
    """Run one sync of mirror ``index_name``; see the module docstring."""
    sync = MirrorSync(
        instance,
        index_name,
        workers=workers,
        attempts=attempts,
        backoff=backoff,
        reporter=reporter,
        batch_size=batch_size,
        batch_linger=batch_linger,
    )
    return await sync.run()
