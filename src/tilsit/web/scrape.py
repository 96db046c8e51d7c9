"""What /_/metrics reads from the database and this host's tree at scrape time.

Two bounded queries: the journal's newest serial (the primary key's last entry)
and one row per mirror index (as many as there are mirrors, never per project).
"""

from __future__ import annotations

from sqlalchemy import func, select

from tilsit.db.models import IndexRow, JournalRow, UpstreamStateRow
from tilsit.instance import Instance
from tilsit.web.metrics import MirrorFreshness, ScrapeFacts

__all__ = ["scrape_facts"]


def scrape_facts(instance: Instance) -> ScrapeFacts:
    # The tree's serial first: read after the journal's, a render finishing between the
    # two would show a lag below zero.
    rendered = instance.tree.serial()
    with instance.db.read() as session:
        newest = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
        rows = session.execute(
            select(
                IndexRow.name,
                UpstreamStateRow.upstream_serial,
                UpstreamStateRow.synced_serial,
                UpstreamStateRow.last_success,
            )
            .outerjoin(UpstreamStateRow, UpstreamStateRow.index_id == IndexRow.id)
            .where(IndexRow.kind == "mirror")
            .order_by(IndexRow.name)
        ).all()
    mirrors = tuple(
        MirrorFreshness(name, up, synced, success) for name, up, synced, success in rows
    )
    return ScrapeFacts(newest, rendered, mirrors)
