"""Letting files out of a cool-down on schedule: journal the releases that came of age.

A virtual index's cool-down hides a mirror's or proxy's file until its upload time
(or, when the upstream gave none, the time this server first listed it) is older
than the duration. Nothing is asked at request time: pages are static. Instead
:func:`journal_matured` runs every tick, finds the files whose age crossed the
duration since the last tick with two range queries per member (on
``ix_files_index_upload_time`` and ``ix_files_index_seen_at``), and journals each
such release in the virtual index that takes it from that member; the renderer
then re-renders that release, now shown. Exemptions that expired since the last
tick re-render their project the same way. The tick's mark commits with the rows,
so a crash neither loses a window nor repeats one; the work grows with what
matured, not with the index.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from tilsit.db.models import (
    FileRow,
    IndexRow,
    PolicyExemptionRow,
    PolicyRow,
    ProjectRow,
    ReleaseRow,
    VirtualOwnerRow,
    VirtualTickRow,
)
from tilsit.index.journal import record
from tilsit.index.owners import leaf_indexes
from tilsit.index.policies import get_policy

__all__ = ["MATURED", "journal_matured"]

MATURED = "matured"


def journal_matured(session: Session, now: datetime) -> int:
    """Journal every release that left a cool-down since the last tick; how many rows.

    Runs inside :meth:`Database.write`.
    """
    journaled = 0
    virtuals = session.scalars(
        select(IndexRow)
        .join(PolicyRow, PolicyRow.index_id == IndexRow.id)
        .where(IndexRow.kind == "virtual", IndexRow.deleted_at.is_(None))
        .order_by(IndexRow.id)
    ).all()
    for virtual in virtuals:
        journaled += _mature(session, virtual, now)
    return journaled


def _mature(session: Session, virtual: IndexRow, now: datetime) -> int:
    policy = get_policy(session, virtual)
    tick = session.get(VirtualTickRow, virtual.id)
    if tick is None:
        # First tick: the pages rendered so far judged files against their own time;
        # one window back catches whatever matured since the policy was set.
        since = now - policy.cooldown.duration if policy.cooldown is not None else now
        tick = VirtualTickRow(index_id=virtual.id, matured_through=since)
        session.add(tick)
    since = tick.matured_through
    if since >= now:
        return 0
    wanted: dict[str, set[str] | None] = {}
    leaves = {leaf.id for leaf in leaf_indexes(session, virtual) if leaf.kind != "hosted"}
    if policy.cooldown is not None:
        low, high = since - policy.cooldown.duration, now - policy.cooldown.duration
        if leaves:
            anchor_times = (
                and_(FileRow.upload_time > low, FileRow.upload_time <= high),
                and_(
                    FileRow.upload_time.is_(None),
                    FileRow.seen_at > low,
                    FileRow.seen_at <= high,
                ),
            )
            for window in anchor_times:
                for name, version in session.execute(
                    select(ProjectRow.normalized, ReleaseRow.version)
                    .select_from(FileRow)
                    .join(ReleaseRow, FileRow.release_id == ReleaseRow.id)
                    .join(ProjectRow, ReleaseRow.project_id == ProjectRow.id)
                    .where(FileRow.index_id.in_(leaves), FileRow.deleted_at.is_(None), window)
                ):
                    versions = wanted.setdefault(name, set())
                    if versions is not None:
                        versions.add(version)
    for (name,) in session.execute(
        select(PolicyExemptionRow.project).where(
            PolicyExemptionRow.index_id == virtual.id,
            PolicyExemptionRow.expires_at > since,
            PolicyExemptionRow.expires_at <= now,
            PolicyExemptionRow.removed_at.is_(None),
        )
    ):
        wanted[name] = None  # the whole project: an exemption may cover every version
    tick.matured_through = now
    journaled = 0
    for name in sorted(wanted):
        project = session.scalars(
            select(ProjectRow).where(
                ProjectRow.index_id == virtual.id,
                ProjectRow.normalized == name,
                ProjectRow.deleted_at.is_(None),
            )
        ).one_or_none()
        owner = session.get(VirtualOwnerRow, project.id) if project is not None else None
        if project is None or owner is None or owner.member_index_id is None:
            continue
        member = session.get(IndexRow, owner.member_index_id)
        if member is None or (member.id not in leaves and member.kind != "virtual"):
            continue  # supplied by another member (a hosted one): its page cannot change
        versions = wanted[name]
        details: list[dict[str, str]] = (
            [{"release": v} for v in sorted(versions)] if versions is not None else [{}]
        )
        for detail in details:
            record(session, virtual, MATURED, project=project, actor="tilsit", detail=detail)
            journaled += 1
    return journaled
