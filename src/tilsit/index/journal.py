"""Appending to the journal: the one place serials are allocated.

It is also where a change reaches the virtual indexes that hold the changed index
(:func:`record` fans out): every writer (an upload, a yank, a mirror's sync, a
proxy's fill) gets that in the same transaction, so a virtual index's pages can
never miss a member's change, and a crash loses neither or both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, JournalRow, ProjectRow, ReleaseRow
from tilsit.db.notify import mark_journal_written
from tilsit.index import owners

__all__ = ["MEMBER_CHANGE", "record"]

# The action of a virtual index's row for its member's change.
MEMBER_CHANGE = "member change"
# A change of who may read an index touches no page of a virtual index holding it:
# the virtual index links its files under its own root, readable by its own readers.
_NOT_FANNED = frozenset({"visibility"})


def record(
    session: Session,
    index: IndexRow,
    action: str,
    *,
    project: ProjectRow | None = None,
    release: ReleaseRow | None = None,
    actor: str = "",
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one change and move the index's (and project's, and release's) last serial to it.

    A change to one release of the project names it (``detail["release"]``, the
    release's version as stored), so the renderer re-renders that release alone.
    Must run inside :meth:`Database.write`, whose lock keeps serials in commit order.
    """
    detail = dict(detail or {})
    if release is not None:
        detail["release"] = release.version
    row = JournalRow(
        index_id=index.id,
        project=project.normalized if project is not None else None,
        action=action,
        actor=actor,
        detail=detail,
    )
    session.add(row)
    session.flush()
    mark_journal_written(session)  # other hosts are woken at commit (PostgreSQL)
    index.last_serial = row.serial
    if project is not None:
        project.last_serial = row.serial
    if release is not None:
        release.last_serial = row.serial
    if project is not None and action not in _NOT_FANNED:
        fan_out(session, index, project.normalized, detail.get("release"), actor)
    return row.serial


def fan_out(session: Session, index: IndexRow, name: str, release: object, actor: str = "") -> None:
    """Journal ``name``'s change in ``index`` in each virtual index that holds it, where
    that index supplies the name or the change moves its owner.

    A change of one release in the owner re-renders that release; a change of owner
    re-renders the whole project. A name another member owns is not journaled: its
    page in the virtual index cannot have changed. Virtual indexes holding virtual
    indexes get theirs through the same call (membership refuses cycles).
    """
    for virtual in owners.containing_virtuals(session, index.id):
        refreshed = owners.refresh_owner(session, virtual, name)
        if refreshed is None:
            continue
        owner = refreshed.owner.member
        if not refreshed.changed and (owner is None or owner.id != index.id):
            continue
        detail: dict[str, Any] = {"member": index.name}
        if not refreshed.changed and isinstance(release, str) and release:
            detail["release"] = release
        record(
            session, virtual, MEMBER_CHANGE, project=refreshed.project, actor=actor, detail=detail
        )
        if refreshed.changed and index.kind == "hosted":
            # A hosted name that appears or goes changes which names look like it.
            for look_alike in owners.look_alikes(session, virtual, name):
                fan_out_one(session, virtual, look_alike, index.name, actor)


def fan_out_one(session: Session, virtual: IndexRow, name: str, member: str, actor: str) -> bool:
    """Re-decide ``name``'s owner in ``virtual`` and journal it if that changed."""
    refreshed = owners.refresh_owner(session, virtual, name)
    if refreshed is None or not refreshed.changed:
        return False
    record(
        session,
        virtual,
        MEMBER_CHANGE,
        project=refreshed.project,
        actor=actor,
        detail={"member": member},
    )
    return True
