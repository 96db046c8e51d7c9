"""A project as the renderers see it: read once from the database, then pure data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.store.tree import private_root

__all__ = ["FileSnap", "ProjectSnap", "ReleaseSnap", "load_project", "version_key"]


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


def load_project(session: Session, index: IndexRow, normalized: str) -> ProjectSnap | None:
    """The project as its pages show it, read in three plain queries.

    Rows, not ORM objects: a project of 2,000 releases and 4,000 files is read for
    every render of it, and building 6,000 tracked objects would cost more than the
    pages that are made from them.
    """
    project = session.execute(
        select(
            ProjectRow.id,
            ProjectRow.name,
            ProjectRow.normalized,
            ProjectRow.last_serial,
            ProjectRow.upstream_serial,
            ProjectRow.deleted_at,
        ).where(ProjectRow.index_id == index.id, ProjectRow.normalized == normalized)
    ).one_or_none()
    if project is None:
        return None
    releases = session.execute(
        select(
            ReleaseRow.id,
            ReleaseRow.version,
            ReleaseRow.yanked,
            ReleaseRow.yanked_reason,
            ReleaseRow.deleted_at,
            ReleaseRow.last_serial,
        ).where(ReleaseRow.project_id == project.id)
    ).all()
    files: dict[int, list[FileSnap]] = {release.id: [] for release in releases}
    for row in session.execute(
        select(
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
        ).where(
            FileRow.release_id.in_(select(ReleaseRow.id).where(ReleaseRow.project_id == project.id))
        )
    ):
        files[row.release_id].append(
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
            )
        )
    ordered = sorted(releases, key=lambda r: version_key(r.version))
    return ProjectSnap(
        files_root=private_root(index.name) if index.private else "",
        index=index.name,
        name=project.name,
        normalized=project.normalized,
        serial=project.last_serial if project.upstream_serial is None else project.upstream_serial,
        deleted=project.deleted_at is not None,
        releases=tuple(
            ReleaseSnap(
                version=r.version,
                yanked=r.yanked,
                yanked_reason=r.yanked_reason,
                deleted=r.deleted_at is not None,
                files=tuple(sorted(files[r.id], key=_upload_order)),
                serial=r.last_serial,
            )
            for r in ordered
        ),
    )
