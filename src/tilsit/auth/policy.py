"""The 2FA policy: who must have a second factor to upload, and which projects are critical.

``require_2fa`` is "off", "uploaders" (every user who uploads) or "critical"
(maintainers of critical projects: the top ``critical_percent`` of projects by
downloads over the last 30 days, from the server's own per-file daily counts).
Tokens minted by trusted publishing act for a CI identity, not a user, and are
not subject to it: no user password is involved in them.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from tilsit.db.models import (
    DownloadCountRow,
    FileRow,
    IndexRow,
    ProjectRow,
    ReleaseRow,
    UserRow,
    WebAuthnCredentialRow,
)

__all__ = ["CRITICAL_WINDOW_DAYS", "critical_project_ids", "has_two_factor", "two_factor_refusal"]

CRITICAL_WINDOW_DAYS = 30


def has_two_factor(session: Session, user: UserRow) -> bool:
    if user.totp_secret:
        return True
    return bool(session.scalar(select(exists().where(WebAuthnCredentialRow.user_id == user.id))))


def critical_project_ids(session: Session, percent: float, today: date | None = None) -> list[int]:
    """Hosted projects in the top ``percent`` by downloads in the last 30 days, busiest first."""
    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=CRITICAL_WINDOW_DAYS)
    total = (
        session.scalar(
            select(func.count(ProjectRow.id))
            .join(IndexRow, IndexRow.id == ProjectRow.index_id)
            .where(IndexRow.kind == "hosted", ProjectRow.deleted_at.is_(None))
        )
        or 0
    )
    if total == 0 or percent <= 0:
        return []
    # At least one project is critical once any has downloads.
    size = max(1, math.ceil(total * percent / 100))
    downloads = func.sum(DownloadCountRow.count)
    rows = session.execute(
        select(ProjectRow.id, downloads)
        .join(ReleaseRow, ReleaseRow.project_id == ProjectRow.id)
        .join(FileRow, FileRow.release_id == ReleaseRow.id)
        .join(DownloadCountRow, DownloadCountRow.file_id == FileRow.id)
        .join(IndexRow, IndexRow.id == ProjectRow.index_id)
        .where(
            IndexRow.kind == "hosted",
            ProjectRow.deleted_at.is_(None),
            DownloadCountRow.day > since,
        )
        .group_by(ProjectRow.id)
        .having(downloads > 0)
        .order_by(downloads.desc(), ProjectRow.id)
        .limit(size)
    )
    return [project_id for project_id, _count in rows]


def two_factor_refusal(
    session: Session,
    policy: str,
    percent: float,
    user: UserRow,
    project: ProjectRow | None,
) -> str | None:
    """Why ``user`` may not upload to ``project`` without 2FA, or None if they may."""
    if policy == "off" or has_two_factor(session, user):
        return None
    if policy == "uploaders":
        return (
            f"User {user.name!r} must set up two-factor authentication before uploading:"
            " this server requires 2FA for everyone who uploads"
        )
    if (
        policy == "critical"
        and project is not None
        and project.id in critical_project_ids(session, percent)
    ):
        return (
            f"Project {project.name!r} is a critical project (top {percent:g}% by downloads):"
            f" user {user.name!r} must set up two-factor authentication before uploading to it"
        )
    return None
