"""What the browsing pages list of an index: its counts, a page of its projects, recent uploads.

Every query here is bounded for an index of 100,000 projects:

- a page by name is a LIMIT/OFFSET walk of the unique ``(index_id, normalized)`` index;
- a page by last upload walks ``ix_files_index_upload_time`` newest first, in batches,
  and stops once it has seen enough distinct projects (the first time a walk meets a
  project is that project's last upload, so the order of first meetings is the order
  by last upload), at most :data:`MAX_UPDATED_PAGES` deep; files with no known upload time (some upstreams give none) are not
  in that index's order, so their projects are listed by name only;
- the details of the page's projects (versions, last upload) are one grouped query
  over those projects' own releases and files;
- counts are COUNTs, cached per process by ``(index, last_serial)``: the index's
  serial moves with every change the journal records, so a cached count is exact;
- recent uploads are the newest rows of ``ix_files_index_upload_time`` per index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from packaging.version import InvalidVersion, Version
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow, VirtualOwnerRow

__all__ = [
    "MAX_UPDATED_PAGES",
    "PER_PAGE",
    "Counts",
    "ProjectLine",
    "RecentUpload",
    "Sort",
    "counts",
    "latest_version",
    "project_page",
    "recent_uploads",
]

PER_PAGE = 100
# How deep the order by last upload goes (the 10,000 most recently uploaded projects): its
# walk grows with the page number (bench/index_page.py: page 1,000 of 100,000 projects
# walks them all, ~0.8 s on SQLite); beyond it, the order by name pages the rest.
MAX_UPDATED_PAGES = 100
Sort = Literal["name", "updated"]
# File rows fetched per round trip while walking the upload-time index.
_WALK_BATCH = 1000
# Rows read per release wanted among recent uploads (a wheel or two and an sdist).
_FILES_PER_RELEASE = 4


@dataclass(frozen=True)
class Counts:
    projects: int
    # None for a virtual index: its releases and files are its members'.
    releases: int | None
    files: int | None


@dataclass(frozen=True)
class ProjectLine:
    name: str
    normalized: str
    latest: str | None
    last_upload: datetime | None
    # A virtual index: the member that supplies the name (None: no member may).
    member: str | None = None


@dataclass(frozen=True)
class RecentUpload:
    index: str
    project: str
    normalized: str
    version: str
    filename: str
    upload_time: datetime


_cache_lock = threading.Lock()
_count_cache: OrderedDict[tuple[int, int], Counts] = OrderedDict()
_COUNT_CACHE_SIZE = 256


def counts(session: Session, index: IndexRow) -> Counts:
    """Live projects, releases and files of ``index``; exact, cached by its serial."""
    key = (index.id, index.last_serial)
    with _cache_lock:
        if key in _count_cache:
            _count_cache.move_to_end(key)
            return _count_cache[key]
    projects = session.scalar(
        select(func.count())
        .select_from(ProjectRow)
        .where(ProjectRow.index_id == index.id, ProjectRow.deleted_at.is_(None))
    )
    releases = files = None
    if index.kind != "virtual":
        releases = session.scalar(
            select(func.count())
            .select_from(ReleaseRow)
            .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
            .where(
                ProjectRow.index_id == index.id,
                ProjectRow.deleted_at.is_(None),
                ReleaseRow.deleted_at.is_(None),
            )
        )
        files = session.scalar(
            select(func.count())
            .select_from(FileRow)
            .where(FileRow.index_id == index.id, FileRow.deleted_at.is_(None))
        )
    result = Counts(projects or 0, releases, files)
    with _cache_lock:
        _count_cache[key] = result
        while len(_count_cache) > _COUNT_CACHE_SIZE:
            _count_cache.popitem(last=False)
    return result


def latest_version(versions: Iterable[tuple[str, bool]]) -> str | None:
    """The highest final, unyanked version of ``(version, yanked)`` pairs; else the highest
    pre-release; else the highest yanked one (what ``pip install NAME`` would pick first)."""
    ranked: list[tuple[int, Version | None, str]] = []
    for text, yanked in versions:
        try:
            parsed: Version | None = Version(text)
        except InvalidVersion:
            parsed = None
        if yanked:
            tier = 0
        elif parsed is None or parsed.is_prerelease:
            tier = 1
        else:
            tier = 2
        ranked.append((tier, parsed, text))
    if not ranked:
        return None
    return max(ranked, key=lambda r: (r[0], r[1] is not None, r[1] or Version("0"), r[2]))[2]


def _page_by_name(session: Session, index: IndexRow, page: int, per_page: int) -> list[int]:
    # ORDER BY normalized walks uq_projects_index_normalized after its index_id prefix.
    return list(
        session.scalars(
            select(ProjectRow.id)
            .where(ProjectRow.index_id == index.id, ProjectRow.deleted_at.is_(None))
            .order_by(ProjectRow.normalized)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )


def _page_by_upload(session: Session, index: IndexRow, page: int, per_page: int) -> list[int]:
    wanted_from, wanted_to = (page - 1) * per_page, page * per_page
    seen: dict[int, None] = {}
    walk = (
        select(ReleaseRow.project_id)
        .select_from(FileRow)
        .join(ReleaseRow, ReleaseRow.id == FileRow.release_id)
        .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
        .where(
            FileRow.index_id == index.id,
            FileRow.upload_time.is_not(None),
            FileRow.deleted_at.is_(None),
            ReleaseRow.deleted_at.is_(None),
            ProjectRow.deleted_at.is_(None),
        )
        .order_by(FileRow.upload_time.desc(), FileRow.id.desc())
    )
    # In batches with a LIMIT each, so that every backend's planner walks the index from
    # its newest end rather than sorting the whole index's files once.
    offset = 0
    while len(seen) < wanted_to:
        batch = list(session.scalars(walk.limit(_WALK_BATCH).offset(offset)))
        for project_id in batch:
            seen.setdefault(project_id, None)
            if len(seen) >= wanted_to:
                break
        if len(batch) < _WALK_BATCH:
            break
        offset += _WALK_BATCH
    return list(seen)[wanted_from:wanted_to]


def project_page(
    session: Session, index: IndexRow, sort: Sort, page: int, per_page: int = PER_PAGE
) -> list[ProjectLine]:
    """One page of ``index``'s live projects, in ``sort`` order."""
    if sort == "updated" and index.kind != "virtual":
        ids = _page_by_upload(session, index, page, per_page)
    else:
        ids = _page_by_name(session, index, page, per_page)
    if not ids:
        return []
    rows = {p.id: p for p in session.scalars(select(ProjectRow).where(ProjectRow.id.in_(ids)))}
    if index.kind == "virtual":
        return _virtual_lines(session, [rows[i] for i in ids if i in rows])
    versions: dict[int, list[tuple[str, bool]]] = {i: [] for i in ids}
    for project_id, version, yanked in session.execute(
        select(ReleaseRow.project_id, ReleaseRow.version, ReleaseRow.yanked).where(
            ReleaseRow.project_id.in_(ids), ReleaseRow.deleted_at.is_(None)
        )
    ):
        versions[project_id].append((version, yanked))
    uploads: dict[int, datetime | None] = dict(
        iter(
            session.execute(
                select(ReleaseRow.project_id, func.max(FileRow.upload_time))
                .join(FileRow, FileRow.release_id == ReleaseRow.id)
                .where(
                    ReleaseRow.project_id.in_(ids),
                    ReleaseRow.deleted_at.is_(None),
                    FileRow.deleted_at.is_(None),
                )
                .group_by(ReleaseRow.project_id)
            )
        )
    )
    return [
        ProjectLine(
            name=rows[i].name,
            normalized=rows[i].normalized,
            latest=latest_version(versions[i]),
            last_upload=uploads.get(i),
        )
        for i in ids
        if i in rows
    ]


def _virtual_lines(session: Session, projects: Sequence[ProjectRow]) -> list[ProjectLine]:
    # A virtual index's versions are its member's, after the index's policies: the
    # project page says which; the list names only the member that supplies each name.
    owners: dict[int, str] = dict(
        iter(
            session.execute(
                select(VirtualOwnerRow.project_id, IndexRow.name)
                .join(IndexRow, IndexRow.id == VirtualOwnerRow.member_index_id)
                .where(VirtualOwnerRow.project_id.in_([p.id for p in projects]))
            )
        )
    )
    return [
        ProjectLine(p.name, p.normalized, None, None, member=owners.get(p.id)) for p in projects
    ]


def recent_uploads(
    session: Session, indexes: Sequence[IndexRow], limit: int = 20
) -> list[RecentUpload]:
    """The ``limit`` newest releases across ``indexes`` (newest first) by their newest file,
    each index's read from the top of its ``(index_id, upload_time)`` index (a few files
    per release, so ``_FILES_PER_RELEASE`` times as many rows as asked)."""
    names = {i.id: i.name for i in indexes if i.kind != "virtual"}
    found: list[RecentUpload] = []
    for index_id, index_name in names.items():
        rows = session.execute(
            select(
                ProjectRow.name,
                ProjectRow.normalized,
                ReleaseRow.version,
                FileRow.filename,
                FileRow.upload_time,
            )
            .select_from(FileRow)
            .join(ReleaseRow, ReleaseRow.id == FileRow.release_id)
            .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
            .where(
                FileRow.index_id == index_id,
                FileRow.upload_time.is_not(None),
                FileRow.deleted_at.is_(None),
                ReleaseRow.deleted_at.is_(None),
                ProjectRow.deleted_at.is_(None),
            )
            .order_by(FileRow.upload_time.desc())
            .limit(limit * _FILES_PER_RELEASE)
        )
        for name, normalized, version, filename, at in rows:
            assert at is not None  # the query asks for timed files only
            found.append(RecentUpload(index_name, name, normalized, version, filename, at))
    found.sort(key=lambda u: u.upload_time, reverse=True)
    releases: dict[tuple[str, str, str], RecentUpload] = {}
    for upload in found:
        releases.setdefault((upload.index, upload.normalized, upload.version), upload)
    return list(releases.values())[:limit]
