"""Row operations that several writers share (upload, admin, upstream sync)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import ProjectRow, ReleaseRow

__all__ = ["release_for_new_file", "soft_delete_project"]


def release_for_new_file(session: Session, project: ProjectRow, version: str) -> ReleaseRow:
    """The release a new file joins: found, revived if it was deleted, or created."""
    release = session.scalars(
        select(ReleaseRow).where(ReleaseRow.project_id == project.id, ReleaseRow.version == version)
    ).one_or_none()
    if release is None:
        release = ReleaseRow(project_id=project.id, version=version)
        session.add(release)
        session.flush()
    elif release.deleted_at is not None:
        release.deleted_at = None
    return release


def soft_delete_project(project: ProjectRow, now: datetime) -> None:
    """Mark a project, its releases and its files deleted (filenames stay taken)."""
    project.deleted_at = now
    for release in project.releases:
        release.deleted_at = release.deleted_at or now
        for f in release.files:
            f.deleted_at = f.deleted_at or now
