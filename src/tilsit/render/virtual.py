"""A virtual index's project as its pages show it: its owner's project, under its own name.

The owner was decided when the member changed (:mod:`tilsit.index.owners`); here
the owner's snapshot is read and re-addressed: the virtual index's name, its own
serial, and its files linked under ``<virtual>/packages/`` whether it is public or
private, so that a private member's files reach exactly the virtual index's
readers, and the shared ``/packages/`` is never written or removed for it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.live import with_deleted
from tilsit.db.models import IndexRow, ProjectRow, VirtualOwnerRow
from tilsit.index.owners import resolve_owner
from tilsit.render.snapshot import ProjectSnap, ProjectSnapshots
from tilsit.store.tree import private_root

__all__ = ["published_files", "reason_text", "view"]

# Virtual indexes within virtual indexes: deeper than this is refused as a cycle would be.
_MAX_DEPTH = 16


def view(
    session: Session, snapshots: ProjectSnapshots, virtual: IndexRow, name: str, depth: int = 0
) -> ProjectSnap | None:
    """``name`` in ``virtual``: its owner's project re-addressed, or a deleted project
    when nothing may supply it; None when the virtual index never had the name."""
    row = session.execute(
        select(ProjectRow.id, ProjectRow.name, ProjectRow.last_serial, ProjectRow.deleted_at)
        .where(ProjectRow.index_id == virtual.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    if row is None:
        return None
    gone = ProjectSnap(
        index=virtual.name,
        name=row.name,
        normalized=name,
        serial=row.last_serial,
        deleted=True,
        releases=(),
        files_root=private_root(virtual.name),
    )
    if row.deleted_at is not None or depth > _MAX_DEPTH:
        return gone
    owner = session.get(VirtualOwnerRow, row.id)
    if owner is None or owner.member_index_id is None:
        return gone
    member = session.get(IndexRow, owner.member_index_id)
    if member is None or member.deleted_at is not None:
        return gone
    if member.kind == "virtual":
        base = view(session, snapshots, member, name, depth + 1)
    else:
        base = snapshots.load(session, member, name)
    if base is None or base.deleted:
        return gone
    return replace(
        base,
        index=virtual.name,
        name=row.name,
        serial=row.last_serial,
        files_root=private_root(virtual.name),
    )


def published_files(page: bytes | None) -> set[tuple[str, str]]:
    """``(filename, sha256)`` of every file a project's PEP 691 page lists."""
    if page is None:
        return set()
    try:
        data = json.loads(page)
    except ValueError:
        return set()
    out: set[tuple[str, str]] = set()
    for entry in data.get("files", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict):
            continue
        filename, hashes = entry.get("filename"), entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        if isinstance(filename, str) and isinstance(sha256, str):
            out.add((filename, sha256))
    return out


def reason_text(session: Session, virtual: IndexRow, name: str) -> str | None:
    """Why ``virtual`` has no page for ``name``, in words, if it has a reason to give."""
    found = session.execute(
        select(VirtualOwnerRow.rule, VirtualOwnerRow.detail, VirtualOwnerRow.member_index_id)
        .join(ProjectRow, ProjectRow.id == VirtualOwnerRow.project_id)
        .where(ProjectRow.index_id == virtual.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    rule: str
    detail: dict[str, Any]
    member_id: int | None
    if found is None:
        # A name no member has yet: a reservation still names it.
        owner = resolve_owner(session, virtual, name)
        if owner.rule != "reserved":
            return None
        rule, detail = owner.rule, owner.detail
        member_id = owner.member.id if owner.member is not None else None
    else:
        rule, detail, member_id = found.rule, found.detail or {}, found.member_index_id
    if rule == "reserved":
        return (
            f"{name!r} is reserved by index {detail.get('by', '?')!r}"
            f" (as {detail.get('pattern', name)!r}): no other index may supply it"
            + (", and it has no such project yet" if member_id is not None else "")
        )
    if rule == "confusable":
        return (
            f"{name!r} is hidden in {virtual.name!r}: it looks like"
            f" {detail.get('like', '?')!r} of index {detail.get('of', '?')!r}"
        )
    if rule == "route":
        return (
            f"{name!r} is routed to index {detail.get('member', '?')!r}, which has no such project"
        )
    if rule == "first" and member_id is not None:
        member = session.get(IndexRow, member_id)
        if member is not None and member.kind == "hosted":
            return f"{name!r} was removed from index {member.name!r}, which keeps the name"
    return None
