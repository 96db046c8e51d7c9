"""A project as the renderers see it: read once from the database, then pure data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

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


def _file(row: FileRow) -> FileSnap:
    return FileSnap(
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


_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


def _upload_order(row: FileRow) -> tuple[datetime, str]:
    # Files of unknown upload time (mirrored, none given upstream) first, by name.
    return (row.upload_time or _UNKNOWN_TIME, row.filename)


def load_project(session: Session, index: IndexRow, normalized: str) -> ProjectSnap | None:
    row = session.scalars(
        select(ProjectRow)
        .where(ProjectRow.index_id == index.id, ProjectRow.normalized == normalized)
        .options(selectinload(ProjectRow.releases).selectinload(ReleaseRow.files))
    ).one_or_none()
    if row is None:
        return None
    releases = sorted(row.releases, key=lambda r: version_key(r.version))
    return ProjectSnap(
        files_root=private_root(index.name) if index.private else "",
        index=index.name,
        name=row.name,
        normalized=row.normalized,
        serial=row.last_serial if row.upstream_serial is None else row.upstream_serial,
        deleted=row.deleted_at is not None,
        releases=tuple(
            ReleaseSnap(
                version=r.version,
                yanked=r.yanked,
                yanked_reason=r.yanked_reason,
                deleted=r.deleted_at is not None,
                files=tuple(_file(f) for f in sorted(r.files, key=_upload_order)),
            )
            for r in releases
        ),
    )
