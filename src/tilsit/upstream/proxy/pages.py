"""What a page refresh comes to, and a page answered before the tree has it.

A refreshed page is durable once its batch commits (:mod:`.writes`), but the
tree has it only after the catch-up, which renders every project of the batch
and signs the index once. So that a client asking for project A never waits for
project B's render, the proxy renders A's pages itself from the committed rows,
with the renderer's own code (:meth:`~tilsit.render.follow.Renderer.page_bytes`),
and serves them until the tree has caught up: the bytes are those the tree will
hold for that serial, with the same ``X-PyPI-Last-Serial`` and ETag, served by
the same route after the same access checks. Only the TUF names of those pages
(``<sha256>.<page>``) wait for the catch-up, which signs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, ProjectRow
from tilsit.render.follow import Renderer
from tilsit.render.snapshot import ProjectSnapshots
from tilsit.upstream.errors import UpstreamError

__all__ = ["FRESH", "MISSING", "PageOutcome", "PageStatus", "UnrenderedPage", "unrendered_page"]


class PageStatus(Enum):
    FRESH = "fresh"  # the tree has the upstream's current page (or will, see UnrenderedPage)
    STALE = "stale"  # the upstream could not be asked; the tree has an older page
    MISSING = "missing"  # the upstream has no such project
    FAILED = "failed"  # the upstream could not be asked and nothing is cached


@dataclass(frozen=True, slots=True)
class UnrenderedPage:
    """A project's simple pages, durable in the database, not yet in the tree."""

    serial: int  # served from here until the tree has caught up with this serial
    pages: Mapping[str, bytes]  # by tree name (PAGE_JSON, PAGE_HTML)


@dataclass(frozen=True, slots=True)
class PageOutcome:
    status: PageStatus
    error: UpstreamError | None = None


# Read whole each time, the renderer's kept releases untouched (a proxy project is
# read whole by the renderer too).
_SNAPSHOTS = ProjectSnapshots(max_files=0)

FRESH = PageOutcome(PageStatus.FRESH)
MISSING = PageOutcome(PageStatus.MISSING)


def unrendered_page(
    session: Session, renderer: Renderer, index_id: int, name: str, committed: int
) -> UnrenderedPage | None:
    """``name``'s pages as the next render writes them, read after the commit at serial
    ``committed``; None if the project is not live (the tree's answer is then right)."""
    index = session.get(IndexRow, index_id)
    if index is None or index.deleted_at is not None:
        return None
    project = _SNAPSHOTS.load(session, index, name)
    if project is None or project.deleted:
        return None
    # Rows committed after ``committed`` may be in these bytes: keep them until the
    # tree has those too, so a client never sees the page go back. (The page's own
    # serial is the upstream's on a proxy: the journal's is the project row's.)
    journaled = session.scalar(
        select(ProjectRow.last_serial).where(
            ProjectRow.index_id == index_id, ProjectRow.normalized == name
        )
    )
    return UnrenderedPage(max(committed, journaled or 0), renderer.page_bytes(project))
