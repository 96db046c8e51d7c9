"""What a project's search document holds, built from the database and its metadata blob.

A document describes the project's latest release (PyPI's choice for ``info.version``:
:func:`tilsit.render.legacy.latest_release`): its summary, keywords and README as that
release's core metadata says, cut to :data:`MAX_DESCRIPTION` characters so one huge
README costs the index no more than a long one. A project with no live file has no
document. A virtual index's document is its owner member's, copied, and exists only
while the virtual index publishes a page for the name listing at least one file (see
:func:`virtual_document`): a name it does not show (no owner, reserved, a look-alike,
every file hidden by policy) is not in its results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, ProjectRow, SearchDocRow, VirtualOwnerRow
from tilsit.render.legacy import ReadBlob, latest_release, release_metadata
from tilsit.render.snapshot import ProjectSnapshots
from tilsit.render.virtual import published_files
from tilsit.store.tree import PAGE_JSON, Tree
from tilsit.trust.layout import page_target

__all__ = [
    "MAX_DESCRIPTION",
    "Document",
    "leaf_document",
    "stored_document",
    "virtual_document",
]

# README text kept per document (characters): enough for every word a reader would
# search by, bounded so the index grows with the number of projects, not their prose.
MAX_DESCRIPTION = 64 * 1024
_MAX_SUMMARY = 2048
_MAX_KEYWORDS = 2048


@dataclass(frozen=True, slots=True)
class Document:
    """One (index, project) document as stored in ``search_docs``."""

    index_id: int
    normalized: str
    name: str
    version: str
    summary: str
    keywords: str
    description: str
    uploaded_at: datetime | None

    def fields(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "keywords": self.keywords,
            "description": self.description,
            "uploaded_at": self.uploaded_at,
        }


def _text(value: object, limit: int) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if not isinstance(value, str):
        return ""
    # NUL has no place in text and PostgreSQL refuses it.
    return value.replace("\x00", " ")[:limit]


def leaf_document(
    session: Session,
    snapshots: ProjectSnapshots,
    read_blob: ReadBlob,
    index: IndexRow,
    name: str,
) -> Document | None:
    """The document of ``name`` in a hosted, mirror or proxy index, or None (no project,
    a deleted one, or none of its files live)."""
    project = snapshots.load(session, index, name)
    if project is None or project.deleted:
        return None
    latest = latest_release(project)
    if latest is None:
        return None
    raw = release_metadata(latest, read_blob)
    times = [
        t for _r, f in project.live_files() for t in (f.upload_time or f.seen_at,) if t is not None
    ]
    return Document(
        index_id=index.id,
        normalized=project.normalized,
        name=project.name,
        version=latest.version,
        summary=_text(raw.get("summary"), _MAX_SUMMARY),
        keywords=_text(raw.get("keywords"), _MAX_KEYWORDS),
        description=_text(raw.get("description"), MAX_DESCRIPTION),
        uploaded_at=max(times) if times else None,
    )


def stored_document(session: Session, index_id: int, name: str) -> Document | None:
    row = session.scalar(
        select(SearchDocRow).where(
            SearchDocRow.index_id == index_id, SearchDocRow.normalized == name
        )
    )
    if row is None:
        return None
    return Document(
        index_id,
        row.normalized,
        row.name,
        row.version,
        row.summary,
        row.keywords,
        row.description,
        row.uploaded_at,
    )


def virtual_document(
    session: Session,
    tree: Tree,
    index: IndexRow,
    name: str,
    member_document: Callable[[int, str], Document | None],
) -> Document | None:
    """The document of ``name`` in the virtual index ``index``: its owner member's
    (``member_document``), while the virtual index's published page lists a file of it
    (the renderer has already applied ownership, reservations, look-alikes and policies
    to that page)."""
    row = session.execute(
        select(VirtualOwnerRow.member_index_id)
        .join(ProjectRow, VirtualOwnerRow.project_id == ProjectRow.id)
        .where(
            ProjectRow.index_id == index.id,
            ProjectRow.normalized == name,
            ProjectRow.deleted_at.is_(None),
        )
    ).one_or_none()
    if row is None or row.member_index_id is None:
        return None
    if not published_files(tree.read(f"{index.name}/{page_target(name, PAGE_JSON)}")):
        return None
    member = member_document(row.member_index_id, name)
    return None if member is None else replace(member, index_id=index.id)
