"""Appending to the journal: the one place serials are allocated."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, JournalRow, ProjectRow, ReleaseRow

__all__ = ["record"]


def record(
    session: Session,
    index: IndexRow,
    action: str,
    *,
    project: ProjectRow | None = None,
    release: ReleaseRow | None = None,
    actor: str = "",
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one change and move the index's (and project's, and release's) last serial to it.

    A change to one release of the project names it (``detail["release"]``, the
    release's version as stored), so the renderer re-renders that release alone.
    Must run inside :meth:`Database.write`, whose lock keeps serials in commit order.
    """
    detail = dict(detail or {})
    if release is not None:
        detail["release"] = release.version
    row = JournalRow(
        index_id=index.id,
        project=project.normalized if project is not None else None,
        action=action,
        actor=actor,
        detail=detail,
    )
    session.add(row)
    session.flush()
    index.last_serial = row.serial
    if project is not None:
        project.last_serial = row.serial
    if release is not None:
        release.last_serial = row.serial
    return row.serial
