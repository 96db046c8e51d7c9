"""Row operations that several writers share (upload, admin, upstream sync)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tilsit.db.models import ProjectRow, ReleaseRow
from tilsit.index.releases import release_for_version

__all__ = ["release_for_new_file", "soft_delete_project"]


def release_for_new_file(session: Session, project: ProjectRow, version: str) -> ReleaseRow:
    """The release a new file joins: found by version key, revived if it was deleted, or
    created (see :mod:`tilsit.index.releases`)."""
    return release_for_version(session, project, version)


def soft_delete_project(project: ProjectRow, now: datetime) -> None:
    """Mark a project, its releases and its files deleted (filenames stay taken)."""
    project.deleted_at = now
    for release in project.releases:
        release.deleted_at = release.deleted_at or now
        for f in release.files:
            f.deleted_at = f.deleted_at or now
