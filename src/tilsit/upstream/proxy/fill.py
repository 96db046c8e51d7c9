"""The proxy of one process: its upstream clients, page refreshes (once at a time), files.

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

Files are listed on the page before their bytes are here (``cached=False``) and
fetched on first request by :class:`~.filefill.FileFills`.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.config.origins import parse_origins
from tilsit.db.models import IndexRow, JournalRow, ProjectRow
from tilsit.index.upstream import (
    UpstreamProject,
    apply_upstream_project,
    learned_files,
    remove_upstream_project,
    reusable_blobs,
)
from tilsit.instance import Instance
from tilsit.spec.names import normalize
from tilsit.upstream.client import UpstreamClient
from tilsit.upstream.errors import UpstreamError, UpstreamNotFound
from tilsit.upstream.fetched import read_facts
from tilsit.upstream.pages import parse_project_page
from tilsit.upstream.proxy.counts import counted_page, upstream_asked
from tilsit.upstream.proxy.expiring import Expiring
from tilsit.upstream.proxy.filefill import FileFills
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
        self.writes = WriteCoalescer(instance.db, instance.renderer)
        self.files = FileFills(instance, self.client, self.writes)
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

    @counted_page  # /_/metrics: a hit, or a miss if it asked the upstream
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

    def _catch_up(self) -> None:
        """Render the journal's rows this tree has not, if any (another host's fill)."""
        with self.instance.db.read() as session:
            newest = session.scalar(select(func.max(JournalRow.serial))) or 0
        if int(newest) > self.instance.tree.serial():
            self.instance.renderer.catch_up()

    async def _refresh(self, index: ProxyIndex, name: str) -> PageOutcome:
        key = (index.id, name)
        state = await anyio.to_thread.run_sync(self._page_state, index, name)
        if state.index is None:
            return MISSING  # deleted meanwhile
        index = state.index
        if state.exists and state.fetched_at is not None:
            age = (datetime.now(UTC) - state.fetched_at).total_seconds()
            if 0 <= age < index.ttl:  # fetched by another process meanwhile
                # Maybe on another host, whose rows this host's tree may not show yet.
                await anyio.to_thread.run_sync(self._catch_up)
                self._fresh.put(key, True, index.ttl - age)
                return FRESH
        client = self.client(index)
        url = client.url(f"{name}/")
        try:
            upstream_asked()
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
        """Wait for the tree to hold ``name``'s pages and the files of it stored so far (for
        what only the tree serves: legacy JSON); with ``name`` None, every page of the
        index (its project list names them)."""
        if name is not None:
            page = self.unrendered(index, name)
            # The page's rows, and the files of it stored here since (their digests and
            # core metadata are in the tree's legacy JSON and a virtual index's page).
            serial = max(
                page.serial if page is not None else 0,
                self.files.unrendered_serial(index.id, name),
            )
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
            if (
                f.sha256 in held
                and (f.filename, f.sha256) not in learned
                and blobs.exists(f.sha256)
            ):
                with blobs.local_copy(f.sha256) as path:
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
