"""A project as the renderers see it: read from the database in plain queries, then pure data.

Rows, not ORM objects: a project of 2,000 releases and 4,000 files is read for every
render of it, and building 6,000 tracked objects would cost more than the pages that
are made from them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.store.tree import private_root

__all__ = [
    "FileSnap",
    "ProjectSnap",
    "ProjectSnapshots",
    "ReleaseSnap",
    "version_key",
]


@lru_cache(maxsize=65_536)  # parsing is most of sorting 2,000 releases at each render
def version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # mirrored legacy versions sort first, by text
        return (0, version)


@dataclass(frozen=True, slots=True)
class FileSnap:
    filename: str
    packagetype: str
    python_version: str
    size: int
    sha256: str
    md5: str
    blake2_256: str
    metadata_sha256: str | None
    requires_python: str | None
    upload_time: datetime | None  # None: a mirrored file whose upstream gave no time
    deleted: bool
    yanked: bool = False
    yanked_reason: str = ""
    cached: bool = True
    metadata_cached: bool = True
    mirrored: bool = False
    seen_at: datetime | None = None  # first listed here: a cool-down's clock without upload_time

    @property
    def serves_metadata(self) -> bool:
        """Whether ``<file>.metadata`` exists (PEP 658).

        Uploaded wheels get one; an uploaded sdist does not, as its PKG-INFO may
        leave fields dynamic. A mirrored file has one when its upstream offered it.
        """
        if self.metadata_sha256 is None:
            return False
        return self.mirrored or self.packagetype == "bdist_wheel"


@dataclass(frozen=True, slots=True)
class ReleaseSnap:
    version: str
    yanked: bool
    yanked_reason: str
    deleted: bool
    files: tuple[FileSnap, ...]
    serial: int | None = None  # the release's own last change, when the journal named it


@dataclass(frozen=True, slots=True)
class ProjectSnap:
    index: str
    name: str
    normalized: str
    serial: int  # what pages show: the upstream's serial on mirror and proxy indexes
    deleted: bool
    releases: tuple[ReleaseSnap, ...]  # every release, deleted too, in version order
    # "" when files are linked under the shared /packages/; "<index>/" for a private index.
    files_root: str = ""
    status: str = "active"  # PEP 792: a mirror's as its upstream says; a policy's quarantine
    status_reason: str = ""

    @property
    def live_releases(self) -> tuple[ReleaseSnap, ...]:
        return tuple(r for r in self.releases if not r.deleted)

    def live_files(
        self, versions: frozenset[str] | None = None
    ) -> list[tuple[ReleaseSnap, FileSnap]]:
        """Live files, of every release or only of ``versions``."""
        return [
            (r, f)
            for r in self.live_releases
            if versions is None or r.version in versions
            for f in r.files
            if not f.deleted
        ]

    def dead_files(self, versions: frozenset[str] | None = None) -> list[FileSnap]:
        """Removed files (or files of removed releases), of every release or of ``versions``."""
        return [
            f
            for r in self.releases
            if versions is None or r.version in versions
            for f in r.files
            if f.deleted or r.deleted or self.deleted
        ]


_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


def _upload_order(f: FileSnap) -> tuple[datetime, str]:
    # Files of unknown upload time (mirrored, none given upstream) first, by name.
    return (f.upload_time or _UNKNOWN_TIME, f.filename)


_PROJECT_COLUMNS = (
    ProjectRow.id,
    ProjectRow.name,
    ProjectRow.normalized,
    ProjectRow.last_serial,
    ProjectRow.upstream_serial,
    ProjectRow.deleted_at,
    ProjectRow.status,
)
_RELEASE_COLUMNS = (
    ReleaseRow.id,
    ReleaseRow.version,
    ReleaseRow.yanked,
    ReleaseRow.yanked_reason,
    ReleaseRow.deleted_at,
    ReleaseRow.last_serial,
)
_FILE_COLUMNS = (
    FileRow.release_id,
    FileRow.filename,
    FileRow.packagetype,
    FileRow.python_version,
    FileRow.size,
    FileRow.sha256,
    FileRow.md5,
    FileRow.blake2_256,
    FileRow.metadata_sha256,
    FileRow.requires_python,
    FileRow.upload_time,
    FileRow.deleted_at,
    FileRow.yanked,
    FileRow.yanked_reason,
    FileRow.cached,
    FileRow.metadata_cached,
    FileRow.source_url,
    FileRow.seen_at,
)
# Past this many releases to read, their files are selected by project, not by id.
_BY_ID_MAX = 500


@dataclass(frozen=True, slots=True)
class _Kept:
    """A hosted project's releases as last loaded."""

    project_id: int
    releases: dict[int, ReleaseSnap]  # by release id
    files: int


class ProjectSnapshots:
    """Loads project snapshots, keeping the releases of large hosted projects between loads.

    A hosted release's ``last_serial`` moves at every change to it or its files (each
    such journal row names the release: :func:`tilsit.index.journal.record`). A
    release whose ``last_serial`` is the one it had when it was kept is therefore as
    it was then, and its files are not read again: an upload into a project of 2,000 releases reads one
    release's files. This holds across worker processes, since it is read from the
    database. Mirror and proxy projects change without naming releases (a sync is
    one row for the project) and are always read whole, as are projects of fewer
    than ``keep_from`` files. What is kept is bounded by ``max_files``, least
    recently loaded first out; ``max_files=0`` keeps nothing.
    """

    def __init__(self, max_files: int = 20_000, keep_from: int = 200) -> None:
        self.max_files = max_files
        self.keep_from = keep_from
        self._kept: OrderedDict[tuple[int, str], _Kept] = OrderedDict()
        self._files = 0
        self._lock = threading.Lock()
        self.files_read = 0  # file rows read, for tests and benchmarks

    def load(self, session: Session, index: IndexRow, normalized: str) -> ProjectSnap | None:
        project = session.execute(
            select(*_PROJECT_COLUMNS).where(
                ProjectRow.index_id == index.id, ProjectRow.normalized == normalized
            )
        ).one_or_none()
        if project is None:
            return None
        releases = session.execute(
            select(*_RELEASE_COLUMNS).where(ReleaseRow.project_id == project.id)
        ).all()
        key = (index.id, normalized)
        with self._lock:
            kept = self._kept.pop(key, None)
            if kept is not None:
                self._files -= kept.files
        reusable = (
            kept is not None
            and kept.project_id == project.id
            and index.kind == "hosted"
            and project.deleted_at is None
        )
        snaps: dict[int, ReleaseSnap] = {}
        unread = []
        for row in releases:
            old = kept.releases.get(row.id) if reusable and kept is not None else None
            if old is not None and _unchanged(old, row):
                snaps[row.id] = old
            else:
                unread.append(row)
        files = self._read_files(session, project.id, [row.id for row in unread])
        for row in unread:
            snaps[row.id] = ReleaseSnap(
                version=row.version,
                yanked=row.yanked,
                yanked_reason=row.yanked_reason,
                deleted=row.deleted_at is not None,
                files=tuple(sorted(files.get(row.id, ()), key=_upload_order)),
                serial=row.last_serial,
            )
        ordered = sorted(releases, key=lambda r: version_key(r.version))
        snap = ProjectSnap(
            files_root=private_root(index.name) if index.private else "",
            index=index.name,
            name=project.name,
            normalized=project.normalized,
            serial=project.last_serial
            if project.upstream_serial is None
            else project.upstream_serial,
            deleted=project.deleted_at is not None,
            releases=tuple(snaps[r.id] for r in ordered),
            status=project.status,
        )
        self._keep(key, project, snaps, index)
        return snap

    def _read_files(
        self, session: Session, project_id: int, release_ids: list[int]
    ) -> dict[int, list[FileSnap]]:
        if not release_ids:
            return {}
        wanted = (
            FileRow.release_id.in_(release_ids)
            if len(release_ids) <= _BY_ID_MAX
            else FileRow.release_id.in_(
                select(ReleaseRow.id).where(ReleaseRow.project_id == project_id)
            )
        )
        files: dict[int, list[FileSnap]] = {}
        for row in session.execute(select(*_FILE_COLUMNS).where(wanted)):
            self.files_read += 1
            files.setdefault(row.release_id, []).append(
                FileSnap(
                    filename=row.filename,
                    packagetype=row.packagetype,
                    python_version=row.python_version,
                    size=row.size,
                    sha256=row.sha256,
                    md5=row.md5,
                    blake2_256=row.blake2_256,
                    metadata_sha256=row.metadata_sha256,
                    requires_python=row.requires_python,
                    upload_time=row.upload_time,
                    deleted=row.deleted_at is not None,
                    yanked=row.yanked,
                    yanked_reason=row.yanked_reason,
                    cached=row.cached,
                    metadata_cached=row.metadata_cached,
                    mirrored=row.source_url is not None,
                    seen_at=row.seen_at,
                )
            )
        return files

    def _keep(
        self,
        key: tuple[int, str],
        project: Any,  # a row of _PROJECT_COLUMNS
        snaps: dict[int, ReleaseSnap],
        index: IndexRow,
    ) -> None:
        files = sum(len(r.files) for r in snaps.values())
        if (
            index.kind != "hosted"
            or project.deleted_at is not None
            or files < self.keep_from
            or files > self.max_files
        ):
            return
        with self._lock:
            self._kept[key] = _Kept(project.id, snaps, files)
            self._files += files
            while self._files > self.max_files and self._kept:
                _key, out = self._kept.popitem(last=False)
                self._files -= out.files

    def __len__(self) -> int:
        return len(self._kept)


def _unchanged(old: ReleaseSnap, row: Any) -> bool:  # a row of _RELEASE_COLUMNS
    """Whether a kept release is still what its row says (see :class:`ProjectSnapshots`):
    its last serial has not moved, so neither it nor any of its files changed."""
    return (
        row.last_serial is not None
        and old.serial == row.last_serial
        and old.version == row.version
        and old.yanked == row.yanked
        and old.yanked_reason == row.yanked_reason
        and old.deleted == (row.deleted_at is not None)
    )
