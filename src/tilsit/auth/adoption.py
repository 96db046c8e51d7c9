"""2FA adoption, for the admin page: users, uploaders and critical projects' maintainers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.auth.policy import CRITICAL_WINDOW_DAYS, critical_project_ids
from tilsit.db.models import (
    DownloadCountRow,
    FileRow,
    IndexRow,
    ProjectRow,
    ReleaseRow,
    RoleRow,
    UserRow,
    WebAuthnCredentialRow,
)

__all__ = ["Adoption", "CriticalProject", "Maintainer", "Share", "two_factor_adoption"]


@dataclass(frozen=True)
class Share:
    """``part`` of ``whole``, with the percentage (0 of 0 is shown as 0 %)."""

    part: int
    whole: int

    @property
    def percent(self) -> float:
        return 100.0 * self.part / self.whole if self.whole else 0.0


@dataclass(frozen=True)
class Maintainer:
    name: str
    role: str
    two_factor: bool


@dataclass(frozen=True)
class CriticalProject:
    name: str
    index: str
    downloads: int
    maintainers: list[Maintainer]

    @property
    def share(self) -> Share:
        return Share(sum(m.two_factor for m in self.maintainers), len(self.maintainers))


@dataclass(frozen=True)
class Adoption:
    users: Share
    uploaders: Share
    critical_maintainers: Share
    critical: list[CriticalProject]
    percent: float
    downloads_30d: int


def _with_two_factor(session: Session) -> set[int]:
    totp = session.scalars(select(UserRow.id).where(UserRow.totp_secret.is_not(None)))
    keys = session.scalars(select(WebAuthnCredentialRow.user_id).distinct())
    return set(totp) | set(keys)


def two_factor_adoption(session: Session, percent: float) -> Adoption:
    secured = _with_two_factor(session)
    active = set(session.scalars(select(UserRow.id).where(UserRow.is_active.is_(True))))
    uploaders = set(
        session.scalars(
            select(RoleRow.user_id)
            .distinct()
            .join(UserRow, UserRow.id == RoleRow.user_id)
            .join(ProjectRow, ProjectRow.id == RoleRow.project_id)
            .where(UserRow.is_active.is_(True), ProjectRow.deleted_at.is_(None))
        )
    )
    since = datetime.now(UTC).date() - timedelta(days=CRITICAL_WINDOW_DAYS)
    critical: list[CriticalProject] = []
    everyone: dict[int, bool] = {}
    for project_id in critical_project_ids(session, percent):
        project = session.get(ProjectRow, project_id)
        assert project is not None
        downloads = session.scalar(
            select(func.coalesce(func.sum(DownloadCountRow.count), 0))
            .join(FileRow, FileRow.id == DownloadCountRow.file_id)
            .join(ReleaseRow, ReleaseRow.id == FileRow.release_id)
            .where(ReleaseRow.project_id == project_id, DownloadCountRow.day > since)
        )
        maintainers = []
        for role, user in session.execute(
            select(RoleRow.role, UserRow)
            .join(UserRow, UserRow.id == RoleRow.user_id)
            .where(RoleRow.project_id == project_id)
            .order_by(UserRow.name)
        ):
            secure = user.id in secured  # computed once above, for every user
            everyone[user.id] = secure
            maintainers.append(Maintainer(user.name, role, secure))
        index_name = session.scalar(select(IndexRow.name).where(IndexRow.id == project.index_id))
        critical.append(
            CriticalProject(project.name, index_name or "", downloads or 0, maintainers)
        )
    total_downloads = session.scalar(
        select(func.coalesce(func.sum(DownloadCountRow.count), 0)).where(
            DownloadCountRow.day > since
        )
    )
    return Adoption(
        users=Share(len(active & secured), len(active)),
        uploaders=Share(len(uploaders & secured), len(uploaders)),
        critical_maintainers=Share(sum(everyone.values()), len(everyone)),
        critical=critical,
        percent=percent,
        downloads_30d=total_downloads or 0,
    )
