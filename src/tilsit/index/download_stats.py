"""Download statistics read from ``download_counts``: per project, release and file, per UTC day.

Counts are kept per file and day (:mod:`tilsit.web.downloads` for what tilsit serves,
:mod:`tilsit.index.download_log` for what nginx serves). Every query here is bounded by a
window on the indexed ``day`` column (:data:`WINDOW_DAYS`) and reaches the counts
through the project's releases (``uq_releases_project_version``) and their files
(``ix_files_release_id``) to the counts' primary key (file, day): a project with 2,000
versions and 10,000 files costs one grouped query over those index ranges, whatever the
size of the index.

The totals name days the way the page does: "the last day" is today (UTC) so far, "the
last 7 days" today and the six before, and so on. Downloads of files or releases deleted
since still count in the project's totals: they happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.db.models import (
    DownloadCountRow,
    FileRow,
    IndexRow,
    ProjectRow,
    ReleaseRow,
    VirtualOwnerRow,
)

__all__ = [
    "PERIODS",
    "WINDOW_DAYS",
    "Daily",
    "counted_project",
    "file_daily",
    "files_totals",
    "project_daily",
    "release_daily",
    "today",
]

# The chart's span and the longest window any query reads.
WINDOW_DAYS = 90
# (label, days) of the totals the page and the API show.
PERIODS = (("last_day", 1), ("last_week", 7), ("last_month", 30))
# Virtual indexes of virtual indexes: the owner chain is followed this far, no further.
_MAX_NESTING = 8


def today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Daily:
    """Downloads on each day from ``first`` to ``last`` (inclusive), oldest first."""

    first: date
    counts: tuple[int, ...]

    @property
    def last(self) -> date:
        return self.first + timedelta(days=len(self.counts) - 1)

    def days(self) -> list[tuple[date, int]]:
        return [(self.first + timedelta(days=n), c) for n, c in enumerate(self.counts)]

    def total(self, days: int | None = None) -> int:
        """Downloads in the last ``days`` days of the window (all of it for None)."""
        return sum(self.counts if days is None else self.counts[-days:])

    def totals(self) -> dict[str, int]:
        """``{"last_day": …, "last_week": …, "last_month": …}``."""
        return {label: self.total(days) for label, days in PERIODS}


def _window(last: date | None, days: int) -> tuple[date, date]:
    if not 1 <= days <= WINDOW_DAYS:
        raise ValueError(f"a window is 1 to {WINDOW_DAYS} days, not {days}")
    end = last or today()
    return end - timedelta(days=days - 1), end


def _dense(first: date, last: date, rows: object) -> Daily:
    by_day: dict[date, int] = {day: int(count) for day, count in rows}  # type: ignore[attr-defined]
    span = (last - first).days + 1
    return Daily(first, tuple(by_day.get(first + timedelta(days=n), 0) for n in range(span)))


def counted_project(session: Session, project: ProjectRow) -> ProjectRow:
    """The project whose files hold ``project``'s counts: itself, or for a virtual
    index's project the member project that supplies its files (one owner per name)."""
    current = project
    for _ in range(_MAX_NESTING):
        index = session.get(IndexRow, current.index_id)
        if index is None or index.kind != "virtual":
            return current
        member = session.scalar(
            select(VirtualOwnerRow.member_index_id).where(VirtualOwnerRow.project_id == current.id)
        )
        if member is None:
            return current
        supplier = session.scalars(
            select(ProjectRow).where(
                ProjectRow.index_id == member, ProjectRow.normalized == current.normalized
            )
        ).one_or_none()
        if supplier is None:
            return current
        current = supplier
    return current


def project_daily(
    session: Session, project: ProjectRow, days: int = WINDOW_DAYS, last: date | None = None
) -> Daily:
    """The project's downloads per day (all its files, in every release)."""
    first, end = _window(last, days)
    counted = counted_project(session, project)
    rows = session.execute(
        select(DownloadCountRow.day, func.sum(DownloadCountRow.count))
        .join(FileRow, FileRow.id == DownloadCountRow.file_id)
        .join(ReleaseRow, ReleaseRow.id == FileRow.release_id)
        .where(
            ReleaseRow.project_id == counted.id,
            DownloadCountRow.day >= first,
            DownloadCountRow.day <= end,
        )
        .group_by(DownloadCountRow.day)
    )
    return _dense(first, end, rows)


def release_daily(
    session: Session, release: ReleaseRow, days: int = WINDOW_DAYS, last: date | None = None
) -> Daily:
    """The release's downloads per day (all its files)."""
    first, end = _window(last, days)
    rows = session.execute(
        select(DownloadCountRow.day, func.sum(DownloadCountRow.count))
        .join(FileRow, FileRow.id == DownloadCountRow.file_id)
        .where(
            FileRow.release_id == release.id,
            DownloadCountRow.day >= first,
            DownloadCountRow.day <= end,
        )
        .group_by(DownloadCountRow.day)
    )
    return _dense(first, end, rows)


def file_daily(
    session: Session, file: FileRow, days: int = WINDOW_DAYS, last: date | None = None
) -> Daily:
    """One file's downloads per day."""
    first, end = _window(last, days)
    rows = session.execute(
        select(DownloadCountRow.day, DownloadCountRow.count).where(
            DownloadCountRow.file_id == file.id,
            DownloadCountRow.day >= first,
            DownloadCountRow.day <= end,
        )
    )
    return _dense(first, end, rows)


def files_totals(
    session: Session, release: ReleaseRow, days: int = WINDOW_DAYS, last: date | None = None
) -> dict[str, int]:
    """Each file of the release (by filename) and its downloads in the window; files
    never downloaded in it are there with 0."""
    first, end = _window(last, days)
    totals = dict.fromkeys(
        session.scalars(
            select(FileRow.filename)
            .where(FileRow.release_id == release.id)
            .order_by(FileRow.filename)
        ),
        0,
    )
    rows = session.execute(
        select(FileRow.filename, func.sum(DownloadCountRow.count))
        .join(DownloadCountRow, DownloadCountRow.file_id == FileRow.id)
        .where(
            FileRow.release_id == release.id,
            DownloadCountRow.day >= first,
            DownloadCountRow.day <= end,
        )
        .group_by(FileRow.filename)
    )
    for filename, count in rows:
        totals[filename] = int(count)
    return totals
