"""Reading the audit log: one user's events, everyone's with filters, and the export rows.

The web pages and ``tilsit audit export`` share these, so the UI and the CLI
agree on what an event says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from tilsit.auth.audit import ACTIONS
from tilsit.db.live import with_deleted
from tilsit.db.models import AuditEventRow, IndexRow, UserRow
from tilsit.spec.names import normalize

__all__ = [
    "EXPORT_FIELDS",
    "EventFilter",
    "EventView",
    "UnknownFilterValue",
    "export_rows",
    "find_events",
    "spreadsheet_cell",
    "user_events",
]

# Pages show at most this many events; the CLI export has no limit.
PAGE_SIZE = 200


# A spreadsheet runs a cell that starts with one of these as a formula (tab and CR
# too: some strip them and read what follows). OWASP's CSV-injection guidance.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> str:
    """``value`` as a CSV cell no spreadsheet runs: text that could start a formula
    gets a leading ``'``, which spreadsheets show as text and do not display."""
    text = "" if value is None else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


class UnknownFilterValue(ValueError):
    """A filter names a user, index or action this server does not have."""


@dataclass(frozen=True)
class EventFilter:
    user: str | None = None  # the account the event is about, or who acted
    project: str | None = None
    index: str | None = None
    action: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class EventView:
    """One event as pages and exports show it."""

    id: int
    at: datetime
    action: str
    description: str
    actor: str
    ip: str
    user: str | None
    index: str | None
    project: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "action": self.action,
            "description": self.description,
            "actor": self.actor,
            "ip": self.ip,
            "user": self.user,
            "index": self.index,
            "project": self.project,
            "detail": self.detail,
        }


EXPORT_FIELDS = ("id", "at", "action", "description", "actor", "ip", "user", "index", "project")

_Subject = aliased(UserRow)


def _query(session: Session, wanted: EventFilter) -> Select[AuditEventRow, str, str]:
    query = (
        select(AuditEventRow, _Subject.name, IndexRow.name)
        .outerjoin(_Subject, _Subject.id == AuditEventRow.user_id)
        .outerjoin(IndexRow, IndexRow.id == AuditEventRow.index_id)
        # The log is history: events of a deleted index still name it.
        .execution_options(**with_deleted())
    )
    if wanted.user:
        user_id = session.scalar(select(UserRow.id).where(UserRow.name == wanted.user))
        if user_id is None:
            raise UnknownFilterValue(f"There is no user named {wanted.user!r}")
        query = query.where(
            (AuditEventRow.user_id == user_id) | (AuditEventRow.actor_id == user_id)
        )
    if wanted.index:
        index_id = session.scalar(
            select(IndexRow.id)
            .where(IndexRow.name == wanted.index)
            .execution_options(**with_deleted())
        )
        if index_id is None:
            raise UnknownFilterValue(f"There is no index named {wanted.index!r}")
        query = query.where(AuditEventRow.index_id == index_id)
    if wanted.project:
        query = query.where(AuditEventRow.project == normalize(wanted.project))
    if wanted.action:
        if wanted.action not in ACTIONS:
            raise UnknownFilterValue(f"There is no audit action {wanted.action!r}")
        query = query.where(AuditEventRow.action == wanted.action)
    if wanted.since is not None:
        query = query.where(AuditEventRow.at >= wanted.since)
    return query


def _view(row: AuditEventRow, user: str | None, index: str | None) -> EventView:
    return EventView(
        id=row.id,
        at=row.at,
        action=row.action,
        description=ACTIONS.get(row.action, row.action),
        actor=row.actor,
        ip=row.ip,
        user=user,
        index=index,
        project=row.project,
        detail=dict(row.detail or {}),
    )


def find_events(
    session: Session, wanted: EventFilter, limit: int | None = PAGE_SIZE
) -> list[EventView]:
    """Matching events, newest first."""
    query = _query(session, wanted).order_by(AuditEventRow.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_view(row, user, index) for row, user, index in session.execute(query)]


def user_events(session: Session, user: UserRow, limit: int = PAGE_SIZE) -> list[EventView]:
    """Events about ``user``'s account or made by them, newest first."""
    return find_events(session, EventFilter(user=user.name), limit)


def export_rows(session: Session, wanted: EventFilter) -> Iterator[EventView]:
    """Matching events, oldest first, streamed in batches (an export can be large)."""
    query = _query(session, wanted).order_by(AuditEventRow.id).execution_options(yield_per=500)
    for row, user, index in session.execute(query):
        yield _view(row, user, index)
