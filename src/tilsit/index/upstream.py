"""Applying what an upstream index says about a project to a mirror or proxy index.

The upstream client (``tilsit.upstream``) fetches and verifies; this module
turns one verified project page into rows, under the writer lock, and journals
the change so the renderer re-renders the page. It is the only write path of
mirror and proxy indexes, so both follow the same rules:

- files new upstream are added, files gone upstream are soft-deleted, files
  whose yank state changed are updated; a filename whose bytes changed upstream
  replaces the old row's hash (and is journaled as such);
- the project's pages show the upstream's serial (so a mirror of tilsit is
  byte-identical to its origin) while the journal keeps its own serials;
- a file row is ``cached`` only when its blob is stored: a mirror stores every
  blob before calling in here, a proxy fetches on first request;
- a blob already in the store is reused only under :func:`reusable_blobs`: the
  store is shared by every index, and knowing a hash is not having the bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow, UpstreamStateRow
from tilsit.index.journal import record
from tilsit.index.rows import release_for_new_file, soft_delete_project
from tilsit.spec.filenames import InvalidDistFilename, classify_mirrored, parse_dist_filename
from tilsit.spec.names import confusable_key, normalize
from tilsit.spec.versions import version_key

__all__ = [
    "FileFacts",
    "UpstreamFile",
    "UpstreamProject",
    "apply_upstream_project",
    "learned_files",
    "mark_file_cached",
    "mark_metadata_cached",
    "remove_upstream_project",
    "reusable_blobs",
    "upstream_state",
]


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What a mirror or proxy learned from a file's own bytes when it fetched them.

    Upstreams that list only a sha256 (pypiserver, devpi, plain trees) give no
    md5, blake2 or core metadata; the fetch computes the digests in its one pass
    and reads a wheel's METADATA (``tilsit.upstream.fetched``), stored as a blob
    before the row names it.
    """

    md5: str
    blake2_256: str
    metadata_sha256: str | None = None  # the stored blob of the wheel's own METADATA
    requires_python: str | None = None  # that METADATA's Requires-Python


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    filename: str
    url: str  # absolute URL on the upstream
    sha256: str
    size: int
    upload_time: datetime | None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    metadata_sha256: str | None = None  # the upstream's core-metadata hash, if it has one
    facts: FileFacts | None = None  # learned from the bytes, when this run fetched them


@dataclass(frozen=True, slots=True)
class UpstreamProject:
    name: str  # as the upstream spells it; normalised here
    serial: int | None
    files: Sequence[UpstreamFile]
    versions: Sequence[str] = field(default_factory=tuple)  # PEP 700; may list file-less ones
    etag: str | None = None
    status: str = "active"  # PEP 792, as the upstream page says


@dataclass(frozen=True, slots=True)
class Applied:
    serial: int | None  # the journal serial of the change, None when nothing changed
    added: int = 0
    removed: int = 0
    changed: int = 0


def upstream_state(session: Session, index: IndexRow) -> UpstreamStateRow:
    state = session.get(UpstreamStateRow, index.id)
    if state is None:
        state = UpstreamStateRow(index_id=index.id)
        session.add(state)
        session.flush()
    return state


def reusable_blobs(session: Session, index_id: int, hashes: Collection[str]) -> set[str]:
    """The hashes among ``hashes`` whose stored blob index ``index_id`` may use unfetched.

    Blobs are content-addressed and shared by every index, so a hash an upstream
    page lists may name bytes that a private index stored (lock files carry such
    hashes). Serving them because the hash matches would hand a private file to
    whoever controls an upstream page. A stored blob stands in for a fetch only
    when this index already holds it (its own file row is cached: the bytes were
    fetched and checked for it, or uploaded to it), or when it is public already
    (a live, cached file of a public index lists it). Core-metadata blobs follow
    the same rule through ``metadata_sha256``, counted only where the row says the
    metadata was stored for it (``metadata_cached``). Every reuse by a mirror or
    proxy asks here, and the renderer links ``.metadata`` only where
    ``metadata_cached`` is set.
    """
    wanted = set(hashes)
    if not wanted:
        return set()
    visible = or_(
        FileRow.index_id == index_id,
        (IndexRow.private.is_(False))
        & FileRow.deleted_at.is_(None)
        & ReleaseRow.deleted_at.is_(None)
        & ProjectRow.deleted_at.is_(None),
    )
    joined = (
        select(FileRow.sha256, FileRow.metadata_sha256, FileRow.metadata_cached)
        .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
        .join(ProjectRow, ReleaseRow.project_id == ProjectRow.id)
        .join(IndexRow, FileRow.index_id == IndexRow.id)
        .where(FileRow.cached.is_(True), visible)
    )
    found: set[str] = set()
    listed = sorted(wanted)
    for start in range(0, len(listed), 500):  # bounded IN lists
        batch = listed[start : start + 500]
        rows = session.execute(
            joined.where(or_(FileRow.sha256.in_(batch), FileRow.metadata_sha256.in_(batch)))
        )
        for sha256, metadata_sha256, metadata_cached in rows:
            found.add(sha256)
            if metadata_sha256 is not None and metadata_cached:
                found.add(metadata_sha256)
    return found & wanted


def learned_files(session: Session, index_id: int, normalized: str) -> set[tuple[str, str]]:
    """``(filename, sha256)`` of a project's stored files whose bytes this index has read.

    A row's digests are filled once its bytes were read (fetched, or a reused blob
    read once): the others still need reading, which the callers do outside the
    writer lock, before :func:`apply_upstream_project`.
    """
    rows = session.execute(
        select(FileRow.filename, FileRow.sha256)
        .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
        .join(ProjectRow, ReleaseRow.project_id == ProjectRow.id)
        .where(
            ProjectRow.index_id == index_id,
            ProjectRow.normalized == normalized,
            FileRow.index_id == index_id,
            FileRow.cached.is_(True),
            FileRow.md5 != "",
        )
    )
    return {(filename, sha256) for filename, sha256 in rows}


def apply_upstream_project(
    session: Session,
    index: IndexRow,
    upstream: UpstreamProject,
    *,
    stored: Collection[str] = (),
    actor: str = "sync",
) -> Applied:
    """Make the index's copy of one project match ``upstream``; run inside ``Database.write``.

    ``stored`` holds the sha256 of every blob the caller fetched, checked and
    durably stored for this page (files and metadata). A file is recorded as
    cached when its blob is among them or :func:`reusable_blobs` allows this
    index the blob already stored; else not cached (a proxy fetches it later).
    """
    normalized = normalize(upstream.name)
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id, ProjectRow.normalized == normalized
        )
    ).one_or_none()
    created = project is None
    if project is None:
        project = ProjectRow(
            index_id=index.id,
            name=upstream.name,
            normalized=normalized,
            confusable=confusable_key(upstream.name),
        )
        session.add(project)
        session.flush()
    revived = project.deleted_at is not None
    project.deleted_at = None
    now = datetime.now(UTC)

    rows = {
        row.filename: row
        for row in session.scalars(
            select(FileRow)
            .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
            .where(ReleaseRow.project_id == project.id, FileRow.index_id == index.id)
        )
    }
    added = removed = changed = 0
    wanted = {f.filename for f in upstream.files}
    listed = {f.sha256 for f in upstream.files} | {
        f.metadata_sha256 for f in upstream.files if f.metadata_sha256 is not None
    }
    held = set(stored) | reusable_blobs(session, index.id, listed)
    # A METADATA read from the bytes was stored by the caller before this (FileFacts).
    held |= {f.facts.metadata_sha256 for f in upstream.files if f.facts and f.facts.metadata_sha256}
    # Releases the upstream lists (PEP 700) first: a new one takes the upstream's
    # spelling, not that of the first file of it on the page ("1.0" for "1.0.0").
    for version in upstream.versions:
        release_for_new_file(session, project, version)
    for f in upstream.files:
        yanked, reason = f.yanked is not None, f.yanked or ""
        row = rows.get(f.filename)
        facts = f.facts
        if row is None:
            packagetype, version = classify_mirrored(normalized, f.filename)
            release = release_for_new_file(session, project, version)
            metadata_sha256, requires_python = _metadata_of(f, None)
            session.add(
                FileRow(
                    release_id=release.id,
                    index_id=index.id,
                    filename=f.filename,
                    packagetype=packagetype,
                    python_version=_python_version(f.filename, packagetype),
                    size=f.size,
                    sha256=f.sha256,
                    md5=facts.md5 if facts else "",
                    blake2_256=facts.blake2_256 if facts else "",
                    metadata_sha256=metadata_sha256,
                    requires_python=requires_python,
                    # Only the upstream knows when a file was uploaded; unknown stays
                    # unknown (a sync time would defeat every client's cool-down).
                    upload_time=f.upload_time,
                    yanked=yanked,
                    yanked_reason=reason,
                    cached=f.sha256 in held,
                    metadata_cached=metadata_sha256 in held,
                    source_url=f.url,
                )
            )
            added += 1
            continue
        before = (
            row.sha256,
            row.yanked,
            row.yanked_reason,
            row.deleted_at is None,
            row.size,
            row.metadata_sha256,
            row.requires_python,
            row.cached,
            row.metadata_cached,
            row.upload_time,
            row.md5,
        )
        same_bytes = row.sha256 == f.sha256
        metadata_sha256, requires_python = _metadata_of(f, row if same_bytes else None)
        if not same_bytes:
            row.cached = f.sha256 in held
            row.md5 = row.blake2_256 = ""
        row.cached = row.cached or f.sha256 in held
        if facts is not None:
            row.md5, row.blake2_256 = facts.md5, facts.blake2_256
        if row.metadata_sha256 != metadata_sha256:
            row.metadata_cached = False
        row.metadata_cached = row.metadata_cached or metadata_sha256 in held
        row.sha256, row.size, row.source_url = f.sha256, f.size, f.url
        row.yanked, row.yanked_reason = yanked, reason
        row.metadata_sha256, row.requires_python = metadata_sha256, requires_python
        row.upload_time = f.upload_time
        if row.deleted_at is not None:
            row.deleted_at = None
            row.release.deleted_at = None
        after = (
            row.sha256,
            row.yanked,
            row.yanked_reason,
            True,
            row.size,
            row.metadata_sha256,
            row.requires_python,
            row.cached,  # newly reusable (public now): the tree links it
            row.metadata_cached,
            row.upload_time,
            row.md5,
        )
        changed += before != after
    for filename, row in rows.items():
        if filename not in wanted and row.deleted_at is None:
            row.deleted_at = now
            removed += 1
    # A release the upstream no longer lists, by version or by any file, is gone
    # there: soft-delete it so the versions list (PEP 700) matches.
    # Compared by version key: "1.0.0" upstream keeps the release first seen as "1.0".
    listed = {version_key(v) for v in upstream.versions} | {
        version_key(classify_mirrored(normalized, f.filename)[1]) for f in upstream.files
    }
    for release in session.scalars(
        select(ReleaseRow).where(
            ReleaseRow.project_id == project.id, ReleaseRow.deleted_at.is_(None)
        )
    ):
        if release.version_key not in listed:
            release.deleted_at = now
            removed += 1

    serial_moved = upstream.serial is not None and upstream.serial != project.upstream_serial
    if project.status != upstream.status:
        project.status = upstream.status
        changed += 1
    project.upstream_serial = upstream.serial
    project.upstream_etag = upstream.etag
    project.fetched_at = now
    if not (created or revived or added or removed or changed or serial_moved):
        return Applied(None)
    serial = record(
        session,
        index,
        "sync project",
        project=project,
        actor=actor,
        detail={
            "added": added,
            "removed": removed,
            "changed": changed,
            "upstream_serial": upstream.serial,
        },
    )
    return Applied(serial, added, removed, changed)


def _metadata_of(f: UpstreamFile, same: FileRow | None) -> tuple[str | None, str | None]:
    """``(metadata_sha256, requires_python)`` for the row of ``f``.

    The upstream's own core metadata and requires-python come first. Where it
    gives none, the METADATA read from the bytes (``f.facts``, fetched now), or
    what was read from these same bytes before (``same``: the row, when its sha256
    is unchanged and its metadata stored), so a later page without metadata does
    not take back what the file itself said.
    """
    if f.metadata_sha256 is not None:
        return f.metadata_sha256, f.requires_python
    if f.facts is not None and f.facts.metadata_sha256 is not None:
        return f.facts.metadata_sha256, f.requires_python or f.facts.requires_python
    if same is not None and same.metadata_sha256 is not None and same.metadata_cached:
        return same.metadata_sha256, f.requires_python or same.requires_python
    return None, f.requires_python


def _python_version(filename: str, packagetype: str) -> str:
    """The legacy JSON's ``python_version``: a wheel's interpreter tags, ``source`` for sdists."""
    if packagetype == "sdist":
        return "source"
    try:
        return parse_dist_filename(filename).python_version
    except InvalidDistFilename:
        return ""


def remove_upstream_project(
    session: Session, index: IndexRow, name: str, actor: str = "sync"
) -> int | None:
    """The upstream no longer lists ``name``: soft-delete it here too (journaled)."""
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id, ProjectRow.normalized == normalize(name)
        )
    ).one_or_none()
    if project is None or project.deleted_at is not None:
        return None
    soft_delete_project(project, datetime.now(UTC))
    return record(
        session,
        index,
        "remove project",
        project=project,
        actor=actor,
        detail={"reason": "gone upstream"},
    )


def _proxied_file(session: Session, index: IndexRow, sha256: str, filename: str) -> FileRow | None:
    return session.scalars(
        select(FileRow).where(
            FileRow.index_id == index.id, FileRow.filename == filename, FileRow.sha256 == sha256
        )
    ).one_or_none()


def _journal_cached(session: Session, index: IndexRow, row: FileRow, action: str) -> int:
    return record(
        session,
        index,
        action,
        project=row.release.project,
        # One release changed: the render re-places that release's files alone.
        release=row.release,
        actor="proxy",
        detail={"filename": row.filename},
    )


def mark_file_cached(
    session: Session,
    index: IndexRow,
    sha256: str,
    filename: str,
    size: int | None = None,
    facts: FileFacts | None = None,
) -> int | None:
    """A proxy stored a file's blob: record it and journal so the tree links it.

    ``size`` is the stored blob's, recorded where the upstream page gave none;
    ``facts`` what the fetch learned from the bytes (digests, the wheel's own
    METADATA where the upstream offered none).
    """
    row = _proxied_file(session, index, sha256, filename)
    if row is None or row.cached:
        return None
    row.cached = True
    if row.size < 0 and size is not None:
        row.size = size
    if facts is not None:
        row.md5, row.blake2_256 = facts.md5, facts.blake2_256
        if row.metadata_sha256 is None and facts.metadata_sha256 is not None:
            row.metadata_sha256, row.metadata_cached = facts.metadata_sha256, True
            row.requires_python = row.requires_python or facts.requires_python
    return _journal_cached(session, index, row, "cache file")


def mark_metadata_cached(
    session: Session, index: IndexRow, sha256: str, filename: str
) -> int | None:
    """A proxy stored a file's core metadata: record it and journal so the tree links it."""
    row = _proxied_file(session, index, sha256, filename)
    if row is None or row.metadata_cached:
        return None
    row.metadata_cached = True
    return _journal_cached(session, index, row, "cache metadata")
