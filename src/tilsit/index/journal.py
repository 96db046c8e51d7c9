"""Appending to the journal: the one place serials are allocated."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, JournalRow, ProjectRow

__all__ = ["record"]


def record(
    session: Session,
    index: IndexRow,
    action: str,
    *,
    project: ProjectRow | None = None,
    actor: str = "",
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one change and move the index's (and project's) last serial to it.

    Must run inside :meth:`Database.write`, whose lock keeps serials in commit order.
    """
    row = JournalRow(
        index_id=index.id,
        project=project.normalized if project is not None else None,
        action=action,
        actor=actor,
        detail=detail or {},
    )
    session.add(row)
    session.flush()
    index.last_serial = row.serial
    if project is not None:
        project.last_serial = row.serial
    return row.serial
