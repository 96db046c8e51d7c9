"""What a mirror client asks of an index: its projects and their serials, what changed since a
serial, and a project's versions (PyPI's XML-RPC ``list_packages_with_serial``,
``changelog_since_serial`` and ``package_releases``).

The serials are the ones the index's pages show (``_last-serial``, ``X-PyPI-Last-Serial``), so
that a client comparing the two never sees a page as stale: a hosted index's are its journal
serials; a mirror's or proxy's project shows the upstream's serial where the upstream gave one
(see :mod:`tilsit.render.follow`). So a hosted index's changes are read from the journal (one
entry per change, as PyPI gives them), and a mirror's or proxy's from its projects (one entry
per changed project, at the serial its page shows): its journal counts in tilsit's serials,
which are not the ones its pages show.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, JournalRow, ProjectRow, ReleaseRow
from tilsit.spec.names import normalize

__all__ = [
    "CHANGES_LIMIT",
    "Change",
    "changes_since",
    "choose_versions",
    "project_serials",
    "release_versions",
]

# PyPI answers at most this many changes per call; a client asks again from the last serial.
CHANGES_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of ``changelog_since_serial``: (name, version, timestamp, action, serial)."""

    name: str
    version: str
    timestamp: int
    action: str
    serial: int


def _shown_serial() -> ColumnElement[int]:
    # What the pages show: the upstream's serial when the project came from one.
    return func.coalesce(ProjectRow.upstream_serial, ProjectRow.last_serial)


def project_serials(session: Session, index: IndexRow) -> dict[str, int]:
    """Every live project of ``index`` (as its project list names them) and its serial."""
    shown = _shown_serial()
    rows = session.execute(
        select(ProjectRow.normalized, shown).where(
            ProjectRow.index_id == index.id, ProjectRow.deleted_at.is_(None)
        )
    )
    return {name: int(serial) for name, serial in rows}


def changes_since(session: Session, index: IndexRow, since: int) -> list[Change]:
    """The changes to ``index``'s projects after serial ``since``, oldest first, at most
    :data:`CHANGES_LIMIT`."""
    if index.kind in ("hosted", "virtual"):  # pages that show this server's serials
        entries = session.execute(
            select(JournalRow.project, JournalRow.action, JournalRow.detail, JournalRow.created_at)
            .add_columns(JournalRow.serial)
            .where(
                JournalRow.index_id == index.id,
                JournalRow.serial > since,
                JournalRow.project.is_not(None),
            )
            .order_by(JournalRow.serial)
            .limit(CHANGES_LIMIT)
        )
        return [
            Change(
                name=str(project),
                version=str(detail.get("version", "")) if isinstance(detail, dict) else "",
                timestamp=int(created.timestamp()),
                action=action,
                serial=int(serial),
            )
            for project, action, detail, created, serial in entries
        ]
    shown = _shown_serial()
    projects = session.execute(
        select(ProjectRow.normalized, ProjectRow.deleted_at, ProjectRow.fetched_at)
        .add_columns(ProjectRow.created_at, shown)
        .where(ProjectRow.index_id == index.id, shown > since)
        .order_by(shown)
        .limit(CHANGES_LIMIT)
    )
    return [
        Change(
            name=name,
            version="",
            timestamp=int((deleted or fetched or created).timestamp()),
            action="remove project" if deleted is not None else "sync project",
            serial=int(serial),
        )
        for name, deleted, fetched, created, serial in projects
    ]


def _newest_first(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # mirrored legacy versions sort below every valid one
        return (0, version)


def release_versions(
    session: Session, index: IndexRow, name: str, *, every: bool
) -> list[str] | None:
    """``name``'s versions in ``index``, newest first (None: no such live project).

    ``every``: all live releases, yanked ones included; otherwise only the latest, as PyPI's
    ``package_releases`` without ``show_hidden``: the newest final release that is not
    yanked, else the newest pre-release that is not yanked.
    """
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == index.id,
            ProjectRow.normalized == normalize(name),
            ProjectRow.deleted_at.is_(None),
        )
    ).one_or_none()
    if project is None:
        return None
    releases = session.execute(
        select(ReleaseRow.version, ReleaseRow.yanked).where(
            ReleaseRow.project_id == project.id, ReleaseRow.deleted_at.is_(None)
        )
    ).all()
    return choose_versions([(r.version, r.yanked) for r in releases], every=every)


def choose_versions(releases: list[tuple[str, bool]], *, every: bool) -> list[str]:
    """``(version, yanked)`` pairs as :func:`release_versions` answers them: every one,
    newest first, or only the latest (see there)."""
    ordered = sorted(releases, key=lambda r: _newest_first(r[0]), reverse=True)
    if every:
        return [version for version, _yanked in ordered]
    candidates = [version for version, yanked in ordered if not yanked]
    finals = [v for v in candidates if not _prerelease(v)]
    return finals[:1] or candidates[:1]


def _prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False
