"""The journal's wake-up for other hosts: a notification sent inside the writing transaction.

PostgreSQL queues a ``pg_notify`` with its transaction and delivers it at commit (never
on rollback), so a host woken by it always finds the rows (:mod:`tilsit.db.cluster`
listens). SQLite has one host and nothing to wake.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["JOURNAL_CHANNEL", "mark_journal_written", "notify_if_journal_written"]

JOURNAL_CHANNEL = "tilsit_journal"
_JOURNAL_WRITTEN = "tilsit_journal_written"


def mark_journal_written(session: Session) -> None:
    """Note that this transaction appended journal rows (its commit sends the wake-up)."""
    session.info[_JOURNAL_WRITTEN] = True


def notify_if_journal_written(session: Session, origin: str) -> None:
    """Just before the commit of a write on PostgreSQL: queue the wake-up, if rows were added.

    ``origin`` names the tree the writer renders into (empty: none), so the processes
    that render into that same tree, which render their own writes, are not woken.
    """
    if session.info.pop(_JOURNAL_WRITTEN, False):
        session.execute(
            text("SELECT pg_notify(:channel, :origin)"),
            {"channel": JOURNAL_CHANNEL, "origin": origin},
        )
