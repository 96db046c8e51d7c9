"""The 2FA policy: who must have a second factor to upload, and which projects are critical.

``require_2fa`` is "off", "uploaders" (every user who uploads) or "critical"
(maintainers of critical projects: the top ``critical_percent`` of projects by
downloads over the last 30 days, from the server's own per-file daily counts,
and every project that was among them within ``critical_keep_days``).

Downloads are counted once per client, file and day (:mod:`tilsit.web.downloads`),
and a project once critical stays so for a period, recorded in
``critical_projects`` whenever counts are written: so whoever can send requests
can neither make their own project critical cheaply nor push a real one out of
the policy by making others busier.
Tokens minted by trusted publishing act for a CI identity, not a user, and are
not subject to it: no user password is involved in them.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from tilsit.db.models import (
    CriticalProjectRow,
    DownloadCountRow,
    FileRow,
    IndexRow,
    ProjectRow,
    ReleaseRow,
    UserRow,
    WebAuthnCredentialRow,
)

__all__ = [
    "CRITICAL_WINDOW_DAYS",
    "busiest_project_ids",
    "critical_project_ids",
    "has_two_factor",
    "record_critical",
    "two_factor_refusal",
]

CRITICAL_WINDOW_DAYS = 30


def has_two_factor(session: Session, user: UserRow) -> bool:
    if user.totp_secret:
        return True
    return bool(session.scalar(select(exists().where(WebAuthnCredentialRow.user_id == user.id))))


def busiest_project_ids(session: Session, percent: float, today: date | None = None) -> list[int]:
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


def critical_project_ids(session: Session, percent: float, today: date | None = None) -> list[int]:
    """The busiest projects now (busiest first), then those that were critical within
    ``critical_keep_days`` (as recorded by :func:`record_critical`) and still exist."""
    today = today or datetime.now(UTC).date()
    busiest = busiest_project_ids(session, percent, today)
    kept = session.scalars(
        select(CriticalProjectRow.project_id)
        .join(ProjectRow, ProjectRow.id == CriticalProjectRow.project_id)
        .where(CriticalProjectRow.until >= today, ProjectRow.deleted_at.is_(None))
        .order_by(CriticalProjectRow.project_id)
    )
    return busiest + [project_id for project_id in kept if project_id not in busiest]


def record_critical(session: Session, percent: float, keep_days: int, today: date) -> None:
    """Record that the busiest projects now stay critical until ``keep_days`` from today;
    rows whose period ended are swept."""
    until = today + timedelta(days=keep_days)
    for project_id in busiest_project_ids(session, percent, today):
        row = session.get(CriticalProjectRow, project_id)
        if row is None:
            session.add(CriticalProjectRow(project_id=project_id, until=until))
        elif row.until < until:
            row.until = until
    session.execute(delete(CriticalProjectRow).where(CriticalProjectRow.until < today))


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
            f"Project {project.name!r} is a critical project (top {percent:g}% by downloads,"
            " now or recently):"
            f" user {user.name!r} must set up two-factor authentication before uploading to it"
        )
    return None
