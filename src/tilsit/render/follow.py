"""Follow the journal and bring the tree up to date.

Every write commits its journal rows first and then calls :meth:`Renderer.catch_up`,
which renders each project and index touched by rows past the tree's
``.serial`` marker, then advances the marker. A crash between commit and render
is healed by the next catch-up (``tilsit serve`` runs one at start), and
``tilsit rebuild`` renders everything from scratch.

Rendering is fault-isolated per project: a project whose pages cannot be
written is logged, recorded in :mod:`tilsit.render.failures` (``/_/health``
reports it) and skipped, and its half-made TUF changes are dropped, while the
other projects render, the index is signed and the serial advances. Reported
projects are tried again at every catch-up that has work, so a passing fault
(a full disk) heals by itself; a success removes the report.

A render costs what the journal rows changed, not what the project holds: a row
about one release (a file added or removed, a release yanked or removed; its
``detail["release"]`` names it, :func:`tilsit.index.journal.record`) re-renders
the project's own pages and the legacy JSON of that release only, places only
that release's files and signs only their targets. Any other row (a mirror's sync, a change of visibility, a
removed project) and every retried failure render the whole project, and
``rebuild`` renders everything.

An index's project list (its ``/simple/`` page) names every project, so it costs
what the index holds. Once its JSON reaches ``coalesce_from`` bytes, and while
``tilsit serve`` runs :func:`tilsit.render.coalesce.coalesce_index_pages`, a write
marks the list due instead of rendering it, and the list is rendered at most once
per interval for all the writes since, built outside the render lock and written
under it. The serial a list carries is the one it was built at, so what a reader
(or a mirror) sees is always exact for that list; a new project may be missing
from it for up to the interval while its own page is already served.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.live import with_deleted
from tilsit.db.models import (
    FileRow,
    IndexRow,
    JournalRow,
    ProjectRow,
    ReleaseRow,
    UpstreamStateRow,
)
from tilsit.index.vuln_reads import legacy_vulns
from tilsit.render import legacy, virtual
from tilsit.render.failures import RenderFailure, RenderFailures, describe
from tilsit.render.parts import PageParts, ReleaseParts
from tilsit.render.snapshot import FileSnap, ProjectSnap, ProjectSnapshots
from tilsit.render.writes_first import WritesFirst
from tilsit.spec.simple import (
    JSON_SERIAL_HEAD,
    IndexEntry,
    index_html,
    index_json,
    json_page_serial,
    project_html_from_parts,
    project_json_from_parts,
)
from tilsit.spec.treepaths import UnsafeTreePath
from tilsit.store.blobfile import place_blob, place_small_blob
from tilsit.store.blobs import BlobStore, MissingBlob
from tilsit.store.tree import (
    PAGE_HTML,
    PAGE_JSON,
    PRIVATE_MARKER,
    VIRTUAL_MARKER,
    Tree,
    file_path,
    private_root,
)
from tilsit.trust.layout import file_target, hashed_path, is_hashed, page_target
from tilsit.trust.mirror import carries
from tilsit.trust.repository import Batch, Signing, Undo
from tilsit.trust.settings import utcnow

__all__ = ["Renderer"]

# The largest core-metadata blob read back (a mirror stores what its upstream serves, up
# to upstream_page_max_size, 64 MiB by default); an upload's is at most 2 MiB.
METADATA_BLOB_LIMIT = 64 * 1024 * 1024

# What a render changes in one project: the versions it touched, or WHOLE.
Scope = frozenset[str] | None
WHOLE: Scope = None


def _merge(version: str | None, into: dict[str, Scope], project: str) -> None:
    """Add one row's version (None: the whole project) to what the render does for it."""
    if project in into and into[project] is None:
        return
    if version is None:
        into[project] = None
        return
    into[project] = (into.get(project) or frozenset()) | {version}


log = logging.getLogger("tilsit.render")

# Kinds whose pages show this server's serials (mirrors and proxies show the upstream's).
_OWN_SERIALS = ("hosted", "virtual")

# Projects whose files a render places before any of their pages (see _render_projects):
# the snapshots of one group are held at once, so it stays small.
PLACE_GROUP = 100
# A render of this many projects or more stages its pages (Tree.render_pass): two
# syncfs per group instead of a file fsync per page and a directory fsync per
# directory. A mirror's batch of 100 projects made about 1,000 fsyncs. Below it (an
# upload, a yank) a few fsyncs cost less than flushing whatever else the filesystem
# holds dirty, such as another upload's blob.
STAGE_FROM = 8


def _row_scope(detail: object) -> str | None:
    """The release a journal row is about (its version as stored), or WHOLE: a row that
    names none (a sync, a change of visibility, a row from before rows named it)."""
    if isinstance(detail, dict):
        release = detail.get("release")
        if isinstance(release, str) and release:
            return release
    return None


# Journal actions with no project that change every page of their index.
WHOLE_INDEX_ACTIONS = frozenset({"policy"})


def _all_names(session: Session, index_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ProjectRow.normalized)
            .where(ProjectRow.index_id == index_id)
            .execution_options(**with_deleted())
        )
    )


def _live_index(index_id: int) -> Select[IndexRow]:
    return select(IndexRow).where(IndexRow.id == index_id, IndexRow.deleted_at.is_(None))


def _still_served(session: Session, sha256: str, filename: str) -> bool:
    """Whether a public index still lists the file, so its shared /packages/ path stays."""
    live = (
        select(FileRow.id)
        .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
        .join(ProjectRow, ReleaseRow.project_id == ProjectRow.id)
        .join(IndexRow, ProjectRow.index_id == IndexRow.id)
        .where(
            FileRow.sha256 == sha256,
            FileRow.filename == filename,
            FileRow.deleted_at.is_(None),
            ReleaseRow.deleted_at.is_(None),
            ProjectRow.deleted_at.is_(None),
            IndexRow.private.is_(False),
        )
        .limit(1)
    )
    return session.scalar(live) is not None


class Renderer:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        tree: Tree,
        lock_path: Path,
        base_url: str = "",
        signing: Signing | None = None,
        failures_path: Path | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.tree = tree
        self.lock_path = lock_path
        self.base_url = base_url
        self.signing = signing
        # Targets written or removed per index by the render in progress (TUF).
        self._batch = Batch()
        self._went_public = False
        # A mirror carrying its origin's TUF metadata: its pages are the origin's
        # signed bytes, placed by the sync, and this server never signs it.
        self._carried = False
        self.failures = RenderFailures(failures_path or lock_path.with_name("render-failures.json"))
        # The report while a render runs (under the lock), and the serial it renders.
        self._failed: dict[str, RenderFailure] = {}
        self._serial = 0
        # Coalesced project lists (see the module docstring): None renders every list
        # inside the write that changed it, as commands do.
        self.coalesce_from: int | None = None
        self._due: set[int] = set()
        self._due_lock = threading.Lock()
        # Large projects' releases as loaded, and each release's share of its
        # project's pages: what an upload into one of them does not change.
        self.snapshots = ProjectSnapshots()
        self.parts = PageParts()
        # Uploads and journal renders in flight, which upkeep waits for.
        self.writes = WritesFirst()
        # What a virtual index's policy compares upload times with (tests move it).
        self.clock: Callable[[], datetime] = utcnow
        # Called after each catch-up's render: other followers of the journal, which
        # keep their own marks (tilsit.search.follow).
        self.followers: list[Callable[[], object]] = []

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The renderer's lock, for other writers of the tree (TUF freshness and sweep,
        a mirror's carried metadata), taken after the writes in flight in this process
        (:class:`~tilsit.render.writes_first.WritesFirst`)."""
        self.writes.wait()
        with self._locked():
            yield

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # One renderer at a time per data directory, across processes, so an
        # older snapshot can never overwrite a newer page.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def catch_up(self) -> int:
        """Render everything the journal changed since the last render, then run the
        other followers of the journal (the search index); return the serial."""
        serial = self._render_journal()
        for follower in self.followers:
            try:
                follower()
            except Exception:  # the write is committed: the next catch-up tries again
                log.exception("a follower of the journal failed")
        return serial

    def _render_journal(self) -> int:
        with self.writes.writing(), self._locked(), self.db.read() as session:
            done = self.tree.serial()
            rows = session.execute(
                select(
                    JournalRow.serial,
                    JournalRow.index_id,
                    JournalRow.project,
                    JournalRow.detail,
                    JournalRow.action,
                )
                .where(JournalRow.serial > done)
                .order_by(JournalRow.serial)
            ).all()
            last = int(rows[-1][0]) if rows else done
            self._start(last)
            if not rows and not self._failed:
                return done
            # With no new rows, the projects that failed before are still tried again:
            # a failure after commit (a full disk, a directory another user made) heals
            # at the next catch-up, which serve runs at start and every few minutes.
            touched: dict[int, dict[str, Scope]] = {}
            for _serial, index_id, project, detail, action in rows:
                names = touched.setdefault(index_id, {})
                if project is not None:
                    _merge(_row_scope(detail), names, project)
                elif action in WHOLE_INDEX_ACTIONS and not (
                    isinstance(detail, dict) and "project" in detail
                ):
                    # A virtual index's new policy: every page may change.
                    names.update(dict.fromkeys(_all_names(session, index_id), WHOLE))
            self._retry_failed(session, touched)
            for index_id, names in touched.items():
                index = session.get_one(IndexRow, index_id, execution_options=with_deleted())
                if index.deleted_at is not None:
                    self._unpublish(session, index)
                    continue
                self._render_one_index(session, index, names, replace=False)
            if rows:
                self.tree.set_serial(last)
            self.failures.save(self._failed)
            return last

    def rebuild(self) -> int:
        """Render every index and project from the database."""
        with self._locked(), self.db.read() as session:
            last = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
            self._start(last)
            self._failed = {}  # everything is rendered again: the old report is void
            # From the database alone: nothing kept from earlier renders.
            self.snapshots = ProjectSnapshots(self.snapshots.max_files, self.snapshots.keep_from)
            self.parts = PageParts(self.parts.max_files, self.parts.keep_from)
            for index in session.scalars(select(IndexRow).order_by(IndexRow.name)):
                names = session.scalars(
                    select(ProjectRow.normalized).where(ProjectRow.index_id == index.id)
                ).all()
                self._render_one_index(session, index, dict.fromkeys(names, WHOLE), replace=True)
            deleted = select(IndexRow).where(IndexRow.deleted_at.is_not(None))
            for index in session.scalars(deleted.execution_options(**with_deleted())).all():
                self._unpublish(session, index)
            self.tree.set_serial(last)
            self.failures.save(self._failed)
            return last

    def _unpublish(self, session: Session, index: IndexRow) -> None:
        """Take a deleted index out of the tree.

        Its directory (pages, legacy JSON, TUF metadata, a private index's files)
        leaves in one rename, so all of it answers 404 at once, nginx included (it
        checks the directory); then it is removed. Its files under the shared
        ``/packages/`` go unless a public index still lists them. Blobs stay (fsck).
        """
        try:
            source = self.tree.path(index.name)
        except UnsafeTreePath:
            return
        if source.is_dir():
            hidden = self.tree.tmp / f"deleted-index-{index.id}-{secrets.token_hex(4)}"
            try:
                os.rename(source, hidden)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                hidden = source  # another filesystem: removed in place
            shutil.rmtree(hidden, ignore_errors=True)
        last = 0
        while True:  # in pages by id: a mirror may list millions of files
            page = session.execute(
                select(FileRow.id, FileRow.sha256, FileRow.filename)
                .where(FileRow.index_id == index.id, FileRow.id > last)
                .order_by(FileRow.id)
                .limit(1000)
            ).all()
            if not page:
                return
            for file_id, sha256, filename in page:
                self._unshare(session, sha256, filename)
                last = file_id

    def _start(self, serial: int) -> None:
        self._serial = serial
        self._failed = self.failures.load()

    def _retry_failed(self, session: Session, touched: dict[int, dict[str, Scope]]) -> None:
        """Add the projects that failed before to this render, whole: a passing fault heals."""
        if not self._failed:
            return
        ids = {row.name: row.id for row in session.execute(select(IndexRow.name, IndexRow.id))}
        for failure in self._failed.values():
            index_id = ids.get(failure.index)
            if index_id is None:
                continue
            names = touched.setdefault(index_id, {})
            if failure.project is not None:
                # What failed may have been an earlier render of other versions.
                names[failure.project] = WHOLE

    def _render_one_index(
        self, session: Session, index: IndexRow, names: dict[str, Scope], *, replace: bool
    ) -> None:
        """Render ``names`` and the index page, then sign; each project on its own."""
        self._batch = Batch()
        self._carried = carries(index.options)
        try:
            self._mark_privacy(index)
        except Exception as exc:  # noqa: BLE001 - one index must not stop the others
            # Without its marker a private index's pages would be served to anyone.
            self._fail(index.name, None, exc)
            return
        try:
            # The pages' and links' directories are fsynced once each (files' by group in
            # _render_projects, the rest as the block ends), before the round below signs
            # them and before catch_up writes .serial: a crash before then leaves .serial
            # where it was, and the next catch-up renders these rows again (pages whose
            # renames were lost included); the timestamp the round writes last names only
            # durable names.
            with self.tree.render_pass(staged=replace or len(names) >= STAGE_FROM):
                self._render_projects(session, index, names)
                if not index.private and self._went_public:
                    self._went_public = False
                    if index.kind != "virtual":  # its files stay under its own root
                        self._drop_private_files(index)
                # A rebuild signs exactly what it rendered: the list is part of that.
                if not replace and self._coalesced(index):
                    with self._due_lock:
                        self._due.add(index.id)
                else:
                    self._render_index(session, index)
                try:
                    self.tree.sync_dirs()
                except OSError as exc:
                    # Their names may not be durable: each renders again, whole, at the
                    # next catch-up (a failed project is retried), and nothing is signed.
                    for name in names:
                        self._fail(index.name, name, exc)
                    raise
            # After the pages and files are in place (and durable), before .serial.
            if self.signing is not None and not self._carried:
                if replace:
                    # Every bin re-signed from exactly what was just rendered.
                    live = {p: t for p, t in self._batch.changes.items() if t is not None}
                    self.signing.repo(index.name).round(utcnow(), live, replace=True)
                else:
                    self.signing.repo(index.name).round(utcnow(), self._batch.changes)
        except Exception as exc:  # noqa: BLE001 - one index must not stop the others
            self._fail(index.name, None, exc)
        else:
            self._failed.pop(f"{index.name}/", None)

    def _render_projects(self, session: Session, index: IndexRow, names: dict[str, Scope]) -> None:
        """Render ``names``, :data:`PLACE_GROUP` at a time: the group's files, one flush of
        their directories, then the group's pages and one more flush, so a crash never
        leaves a page naming a file whose link it could lose, for two journal commits per
        group (not per project).
        Each project on its own: one that fails is reported and its TUF changes dropped."""
        items = sorted(names.items())
        batch = self._batch
        for start in range(0, len(items), PLACE_GROUP):
            group = items[start : start + PLACE_GROUP]
            group_mark = batch.mark()
            placed: list[tuple[str, Scope, ProjectSnap | None, Undo]] = []
            for name, scope in group:
                mark = batch.mark()
                try:
                    project = self._load(session, index, name)
                    if project is not None:
                        scope = WHOLE if project.deleted else scope
                        if index.kind == "virtual":
                            self._place_virtual_files(project, scope)
                        else:
                            self._place_files(session, project, scope)
                except Exception as exc:  # noqa: BLE001 - one project must not stop the others
                    # Its half-made TUF changes are dropped: sign only what rendered whole.
                    batch.undo_to(mark)
                    self._fail(index.name, name, exc)
                    continue
                placed.append((name, scope, project, batch.since(mark)))
            # The files' names durable before any page of the group names them.
            if not self._flush_group(index, placed, group_mark):
                continue
            for name, scope, project, files in placed:
                mark = batch.mark()
                try:
                    if project is not None:
                        self._render_pages(index, project, scope)
                except Exception as exc:  # noqa: BLE001 - one project must not stop the others
                    batch.undo_to(mark)
                    batch.undo(files)  # and the targets of its files
                    self._fail(index.name, name, exc)
                else:
                    self._failed.pop(f"{index.name}/{name}", None)
            # The group's pages durable, and in a staged pass placed only now.
            if self._flush_group(index, placed, group_mark):
                batch.settle()

    def _flush_group(
        self,
        index: IndexRow,
        placed: list[tuple[str, Scope, ProjectSnap | None, Undo]],
        group_mark: int,
    ) -> bool:
        """Make what the group wrote durable (Tree.sync_dirs); False if that failed.

        Then the names may not be durable, or a staged page not placed: nothing of the
        group may be signed, so its changes are taken back and each project fails, to
        render again, whole, at the next catch-up.
        """
        try:
            self.tree.sync_dirs()
        except OSError as exc:
            self._batch.undo_to(group_mark)
            for name, _scope, _project, _files in placed:
                self._fail(index.name, name, exc)
            return False
        return True

    def _fail(self, index: str, project: str | None, exc: Exception) -> None:
        what = f"project {project!r} of index {index!r}" if project else f"index {index!r}"
        log.error("render failed for %s, skipped: %s", what, describe(exc), exc_info=exc)
        key = f"{index}/{project or ''}"
        earlier = self._failed.get(key)
        since = earlier.since if earlier is not None else utcnow().isoformat()
        self._failed[key] = RenderFailure(index, project, describe(exc), self._serial, since)

    def render_failures(self) -> list[RenderFailure]:
        """What ``/_/health`` reports: the projects (and indexes) the last renders skipped."""
        return sorted(self.failures.load().values(), key=lambda f: f.key)

    def _mark_privacy(self, index: IndexRow) -> None:
        if index.kind == "virtual" and self.tree.read(f"{index.name}/{VIRTUAL_MARKER}") is None:
            self.tree.write(f"{index.name}/{VIRTUAL_MARKER}", b"")
        # First, before any page moves: the marker is what the read path checks.
        marker = f"{index.name}/{PRIVATE_MARKER}"
        if index.private:
            if self.tree.read(marker) is None:
                self.tree.write(marker, b"")
        elif self.tree.read(marker) is not None:
            self.tree.remove(marker)
            self._went_public = True

    def _drop_private_files(self, index: IndexRow) -> None:
        """Remove the plain-named files left from when the index was private (its pages
        now link /packages/); the ``<sha256>.<name>`` links TUF clients fetch stay."""
        own_files = self.tree.path(f"{private_root(index.name)}packages")
        if not own_files.is_dir():
            return
        for directory, _dirs, files in os.walk(own_files, topdown=False):
            for name in files:
                if not is_hashed(name):
                    self.tree.remove(
                        os.path.relpath(os.path.join(directory, name), self.tree.real_root)
                    )

    def _page(
        self, index: str, project: str | None, page: str, data: bytes, prepared: Path | None = None
    ) -> None:
        """Write a simple page (or install it, ``prepared`` by Tree.prepare) and, when
        signing, its hashed link and its target entry."""
        if self._carried:
            return
        relative = f"{index}/{page_target(project, page)}"
        if prepared is None:
            self.tree.write(relative, data)
        else:
            self.tree.install(relative, prepared)
        if self.signing is None:
            return
        target = page_target(project, page)
        sha256 = hashlib.sha256(data).hexdigest()
        if self._batch.upsert(target, sha256, len(data)):
            self.tree.link(hashed_path(index, target, sha256), self.tree.path(relative))

    def _file_target(self, index: str, target: str, sha256: str, size: int, placed: str) -> None:
        """Sign a file placed at tree path ``placed``; its hashed name is another link
        to the same tree file (the blob's own inode, or its pointer on S3)."""
        if self.signing is None:
            return
        if self._batch.upsert(target, sha256, size):
            self.tree.link(hashed_path(index, target, sha256), self.tree.path(placed))

    def _coalesced(self, index: IndexRow) -> bool:
        """Whether this write leaves ``index``'s project list to the coalescing loop."""
        if self.coalesce_from is None or self._carried:
            return False
        try:
            size = self.tree.path(f"{index.name}/{page_target(None, PAGE_JSON)}").stat().st_size
        except (FileNotFoundError, UnsafeTreePath):
            return False  # a first list is rendered at once
        return size >= self.coalesce_from

    def mark_all_lists_due(self) -> None:
        """Render at the next pass every project list a stopped process may have left
        due (a server starting). A hosted index's list that shows its index's serial is
        current and is not rebuilt: at 100,000 projects that is a second of work beside
        the first uploads. Mirror and proxy lists show the upstream's serial, which says
        nothing of the local rows, so they are always rebuilt."""
        with self.db.read() as session:
            indexes = session.execute(
                select(IndexRow.id, IndexRow.name, IndexRow.kind, IndexRow.last_serial)
            ).all()
        due = [
            index_id
            for index_id, name, kind, serial in indexes
            if kind not in _OWN_SERIALS or self._written_list_serial(name) < serial
        ]
        with self._due_lock:
            self._due.update(due)

    def lists_due(self) -> bool:
        with self._due_lock:
            return bool(self._due)

    def render_due_lists(self) -> int:
        """Render the project lists writes marked due since the last pass; how many."""
        with self._due_lock:
            due, self._due = self._due, set()
        for index_id in sorted(due):
            self._render_list(index_id)
        return len(due)

    def _render_list(self, index_id: int) -> None:
        # Built outside the render lock: reading every project of a large index and
        # joining its pages is the slow part, and writes must not wait for it. Nor
        # share the interpreter with it: the build waits for the uploads in flight.
        self.writes.wait()
        with self.db.read() as session:
            index = session.scalar(_live_index(index_id))
            if index is None or carries(index.options):
                return
            name = index.name
            serial, entries = self._list_entries(session, index)
        self.writes.wait()  # between the parts of the build, too
        pages = {PAGE_JSON: index_json(entries, serial)}
        self.writes.wait()
        pages[PAGE_HTML] = index_html(entries, serial)
        # Written and fsynced outside the lock too (megabytes at 100,000 projects): an
        # upload waiting for the lock waits for two renames and a TUF round, not the disk.
        prepared: dict[str, Path] = {}
        try:
            for page, data in pages.items():
                prepared[page] = self.tree.prepare(data)
            self.writes.wait()
            with self._locked():
                self._place_list(index_id, name, serial, pages, prepared)
        finally:
            for path in prepared.values():  # what was not installed
                path.unlink(missing_ok=True)

    def _place_list(
        self,
        index_id: int,
        name: str,
        serial: int,
        pages: dict[str, bytes],
        prepared: dict[str, Path],
    ) -> None:
        """Under the lock: the built list into place and signed, unless it is stale."""
        failures = self.failures.load()
        try:
            if self._written_list_serial(name) > serial:
                return  # a newer list is out (another worker process wrote it)
            with self.db.read() as session:
                if session.scalar(_live_index(index_id)) is None:
                    return  # deleted meanwhile: the journal takes its pages down
            self._batch = Batch()
            self._carried = False
            with self.tree.render_pass():  # one directory fsync, before the round
                for page, data in pages.items():
                    self._page(name, None, page, data, prepared[page])
                    del prepared[page]  # installed: nothing left to remove
            if self.signing is not None:
                self.signing.repo(name).round(utcnow(), self._batch.changes)
        except Exception as exc:  # noqa: BLE001 - reported in /_/health, tried again
            self._failed = failures
            self._fail(name, None, exc)
            failures = self._failed
            with self._due_lock:
                self._due.add(index_id)
        else:
            failures.pop(f"{name}/", None)
        self.failures.save(failures)

    def _written_list_serial(self, index: str) -> int:
        """The serial of the project list in the tree, from its first bytes (-1: none).

        Read from the file, not remembered: with several worker processes another
        one may have written a newer list since this one built its own.
        """
        try:
            with self.tree.path(f"{index}/{page_target(None, PAGE_JSON)}").open("rb") as fh:
                head = fh.read(JSON_SERIAL_HEAD)
        except (FileNotFoundError, UnsafeTreePath):
            return -1
        serial = json_page_serial(head)
        return -1 if serial is None else serial

    def _list_entries(self, session: Session, index: IndexRow) -> tuple[int, list[IndexEntry]]:
        """The serial a project list shows and its entries, read in one transaction."""
        entries = [
            # Mirrors show the upstream's serials, so their pages match the origin's.
            IndexEntry(name, serial if upstream is None else upstream)
            for name, serial, upstream in session.execute(
                select(ProjectRow.normalized, ProjectRow.last_serial, ProjectRow.upstream_serial)
                .where(ProjectRow.index_id == index.id, ProjectRow.deleted_at.is_(None))
                .order_by(ProjectRow.normalized)
            )
        ]
        serial = index.last_serial
        if index.kind not in _OWN_SERIALS:
            state = session.get(UpstreamStateRow, index.id)
            if state is not None and state.synced_serial is not None:
                serial = state.synced_serial
        return serial, entries

    def _render_index(self, session: Session, index: IndexRow) -> None:
        serial, entries = self._list_entries(session, index)
        self._page(index.name, None, PAGE_JSON, index_json(entries, serial))
        self._page(index.name, None, PAGE_HTML, index_html(entries, serial))

    def read_blob(self, sha256: str) -> bytes | None:
        return self._read_blob(sha256)

    def _read_blob(self, sha256: str) -> bytes | None:
        try:
            return self.blobs.read_bytes(sha256, METADATA_BLOB_LIMIT)
        except MissingBlob:
            return None

    def _render_pages(self, index: IndexRow, project: ProjectSnap, scope: Scope) -> None:
        """A project's pages and legacy JSON, once its files are placed (_render_projects)."""
        simple_dir = f"{index.name}/simple/{project.normalized}"
        legacy_dir = f"{index.name}/pypi/{project.normalized}"
        if project.deleted:
            if self._carried:
                pass  # the origin's signed pages: the sync drops them once unsigned
            elif self.signing is None:
                self.tree.remove_dir(simple_dir)
            else:  # the hashed pages stay for the grace period (the TUF sweep)
                for name in (PAGE_JSON, PAGE_HTML):
                    self.tree.remove(f"{simple_dir}/{name}")
                    self._batch.remove(page_target(project.normalized, name))
            self.tree.remove_dir(legacy_dir)
            return
        parts = self.parts.of(project, self.base_url)
        for page_name, data in self._simple_pages(project, parts).items():
            self._page(index.name, project.normalized, page_name, data)
        self._render_legacy(project, legacy_dir, scope, parts)

    def page_bytes(self, project: ProjectSnap) -> dict[str, bytes]:
        """A live project's simple pages by tree name, as a render writes them (a proxy
        serves them so before the tree has them). Safe beside a render: the parts are
        kept under a lock."""
        return self._simple_pages(project, self.parts.of(project, self.base_url))

    @staticmethod
    def _simple_pages(project: ProjectSnap, parts: dict[str, ReleaseParts]) -> dict[str, bytes]:
        json_page = project_json_from_parts(
            project.normalized,
            project.serial,
            list(parts),
            chain.from_iterable(p.simple_json for p in parts.values()),
            project.status,
            project.status_reason,
        )
        html_page = project_html_from_parts(
            project.normalized,
            project.serial,
            chain.from_iterable(p.simple_html for p in parts.values()),
            project.status,
            project.status_reason,
        )
        return {PAGE_JSON: json_page, PAGE_HTML: html_page}

    def _place_files(self, session: Session, project: ProjectSnap, scope: Scope) -> None:
        # Files go into the tree before any page that links them. Only the files of
        # the versions in scope: the others were placed (and signed) when they changed.
        root = project.files_root
        for _release, f in project.live_files(scope):
            self._link_file(project.index, root, f)
            if root:
                # A private index's file leaves the shared /packages/ (where it was
                # while the index was public) unless a public index lists it too.
                self._unshare(session, f.sha256, f.filename)
        for f in project.dead_files(scope):
            self._drop_file(root, f.sha256, f.filename)
            self._unshare(session, f.sha256, f.filename)

    def _link_file(self, index: str, root: str, f: FileSnap) -> None:
        """Link a live file (and its core metadata, when served) under ``root`` and sign
        them. A proxy's file is linked once fetched; its metadata once stored for it."""
        path = file_path(f.sha256, f.filename, root)
        target = file_target(f.sha256, f.filename)
        if f.cached:
            size = f.size if f.size >= 0 else self.blobs.size(f.sha256)
            place_blob(self.tree, path, self.blobs, f.sha256, size)
            self._file_target(index, target, f.sha256, size, path)
        if (
            f.serves_metadata
            and f.metadata_sha256 is not None
            and f.metadata_cached  # stored for this index: a proxy fetches it on demand
        ):
            try:
                size = place_small_blob(
                    self.tree,
                    path + ".metadata",
                    self.blobs,
                    f.metadata_sha256,
                    METADATA_BLOB_LIMIT,
                )
            except MissingBlob:
                return  # not stored (yet): the page offers no metadata until it is
            self._file_target(
                index, target + ".metadata", f.metadata_sha256, size, path + ".metadata"
            )

    def _drop_file(self, root: str, sha256: str, filename: str) -> None:
        """Take a file and its metadata out of the index's TUF targets, and out of its own
        root (the shared /packages/ is :meth:`_unshare`'s)."""
        target = file_target(sha256, filename)
        self._batch.remove(target)
        self._batch.remove(target + ".metadata")
        if root:
            self.tree.remove(file_path(sha256, filename, root) + ".metadata")
            self.tree.remove(file_path(sha256, filename, root))

    def _load(self, session: Session, index: IndexRow, name: str) -> ProjectSnap | None:
        if index.kind == "virtual":
            return virtual.view(session, self.snapshots, index, name, self.clock(), self._read_blob)
        return self.snapshots.load(session, index, name)

    def _place_virtual_files(self, project: ProjectSnap, scope: Scope) -> None:
        """A virtual index's files, linked under its own root (never the shared
        ``/packages/``); what its page listed and no longer shows (another owner, a
        member's removal) loses its links and its TUF targets."""
        root = project.files_root
        for _release, f in project.live_files(scope):
            self._link_file(project.index, root, f)
        page = self.tree.read(f"{project.index}/{page_target(project.normalized, PAGE_JSON)}")
        shown = (
            set() if project.deleted else {(f.filename, f.sha256) for _r, f in project.live_files()}
        )
        for filename, sha256 in sorted(virtual.published_files(page) - shown):
            self._drop_file(root, sha256, filename)

    def _unshare(self, session: Session, sha256: str, filename: str) -> None:
        shared = file_path(sha256, filename)
        if not self.tree.path(shared).exists() or _still_served(session, sha256, filename):
            return  # the same file is live in a public index: the path is shared
        self.tree.remove(shared + ".metadata")
        self.tree.remove(shared)

    def _render_legacy(
        self,
        project: ProjectSnap,
        legacy_dir: str,
        scope: Scope,
        parts: dict[str, ReleaseParts],
    ) -> None:
        """The project's JSON, and the JSON of each release in scope.

        A release's JSON describes that release alone, so a change to another one
        leaves it as it is; its ``last_serial`` is the project's serial when the
        release itself last changed.
        """
        vulns = legacy_vulns(self.db, project.normalized)  # one query: imported OSV data
        whole = legacy.project_json(
            project, self._read_blob, self.base_url, lambda r: parts[r.version].legacy_files, vulns
        )
        if whole is None:
            self.tree.remove_dir(legacy_dir)
            return
        self.tree.write(f"{legacy_dir}/json", whole)
        live = {r.version: r for r in project.live_releases if any(not f.deleted for f in r.files)}
        for version, release in live.items():
            if scope is None or version in scope:
                data = legacy.version_json(project, release, self._read_blob, self.base_url, vulns)
                self.tree.write(f"{legacy_dir}/{version}/json", data)
        if scope is not None:
            for version in scope - live.keys():
                self.tree.remove_dir(f"{legacy_dir}/{version}")
            return
        existing = self.tree.path(legacy_dir)
        for child in existing.iterdir() if existing.is_dir() else []:
            if child.is_dir() and child.name not in live:
                self.tree.remove_dir(f"{legacy_dir}/{child.name}")
