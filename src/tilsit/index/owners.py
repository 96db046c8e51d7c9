"""Which member of a virtual index supplies each name: decided at write time, kept in rows.

A virtual index never merges versions from several members: for each normalised
name one member, its *owner*, supplies every file (the dependency-confusion
defence; see ``docs/virtual.md``). The rules, in order:

1. ``route``: an operator's explicit choice (``tilsit index route``);
2. ``reserved``: a name or prefix a hosted index reserved (``tilsit index reserve``)
   belongs to that index even before its first upload; in a virtual index that
   does not hold the reserving index, nothing supplies it;
3. ``first``: the first member, in order, that has the name. A hosted member keeps
   a name it once had (a deleted project still owns it): deleting an internal
   project must not hand its name to the public members;
4. ``confusable``: a name that only a mirror, proxy or virtual member has, and
   whose confusable key equals a hosted member's or a reserved name's, is a
   look-alike of an internal name (a typosquat): nothing supplies it.

The virtual index has a :class:`ProjectRow` per name some member has (live while
it has an owner that has the name), with its :class:`VirtualOwnerRow` beside it.
Each look-up is a few indexed queries, whatever the size of the members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.live import with_deleted
from tilsit.db.models import (
    IndexRow,
    ProjectRow,
    ReservationRow,
    VirtualMemberRow,
    VirtualOwnerRow,
    VirtualRouteRow,
)
from tilsit.spec.names import confusable_key, fold_confusable

__all__ = [
    "Owner",
    "as_written",
    "containing_virtuals",
    "forget_memberships",
    "leaf_indexes",
    "look_alikes",
    "member_indexes",
    "refresh_owner",
    "reservation_of",
    "resolve_owner",
    "route_of",
]

_CACHE = "tilsit.virtual_members"


@dataclass(frozen=True)
class Owner:
    """The member that supplies a name in a virtual index, and why."""

    member: IndexRow | None  # None: no member may supply it
    rule: str  # "route", "reserved", "first", "confusable" or "none"
    has_name: bool = False  # whether the member has the name (its row, live or hosted)
    spelling: str | None = None  # the member's spelling of the name
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.member is not None and self.has_name


def _memberships(session: Session) -> dict[int, list[tuple[int, int]]]:
    """Every virtual index's members as ``{virtual id: [(position, member id)]}``, read
    once per transaction: a mirror's batch journals a hundred projects in one."""
    cached = session.info.get(_CACHE)
    if cached is None:
        cached = {}
        rows = session.execute(
            select(
                VirtualMemberRow.virtual_index_id,
                VirtualMemberRow.position,
                VirtualMemberRow.member_index_id,
            )
            .join(IndexRow, IndexRow.id == VirtualMemberRow.virtual_index_id)
            .where(IndexRow.deleted_at.is_(None))
            .order_by(VirtualMemberRow.virtual_index_id, VirtualMemberRow.position)
        )
        for virtual_id, position, member_id in rows:
            cached.setdefault(virtual_id, []).append((position, member_id))
        session.info[_CACHE] = cached
    return cached


def forget_memberships(session: Session) -> None:
    """Drop the transaction's cached memberships (after a change to them)."""
    session.info.pop(_CACHE, None)


def containing_virtuals(session: Session, index_id: int) -> list[IndexRow]:
    """The live virtual indexes that hold ``index_id`` as a direct member."""
    ids = [
        v for v, members in _memberships(session).items() if any(m == index_id for _, m in members)
    ]
    if not ids:
        return []
    return list(session.scalars(select(IndexRow).where(IndexRow.id.in_(ids)).order_by(IndexRow.id)))


def member_indexes(session: Session, virtual: IndexRow) -> list[IndexRow]:
    """``virtual``'s members in order (deleted ones left out: they supply nothing)."""
    order = [m for _, m in _memberships(session).get(virtual.id, [])]
    if not order:
        return []
    rows = {r.id: r for r in session.scalars(select(IndexRow).where(IndexRow.id.in_(order)))}
    return [rows[m] for m in order if m in rows]


def leaf_indexes(session: Session, virtual: IndexRow) -> list[IndexRow]:
    """The hosted, mirror and proxy indexes under ``virtual``, depth first, in order."""
    out: list[IndexRow] = []
    seen: set[int] = set()

    def walk(index: IndexRow) -> None:
        for member in member_indexes(session, index):
            if member.id in seen:
                continue
            seen.add(member.id)
            if member.kind == "virtual":
                walk(member)
            else:
                out.append(member)

    walk(virtual)
    return out


def as_written(pattern: str, prefix: bool) -> str:
    """A reservation as operators write it: ``acme-widgets``, or ``acme-*`` for a prefix."""
    return pattern + ("*" if prefix else "")


def route_of(session: Session, virtual: IndexRow, name: str) -> VirtualRouteRow | None:
    """The operator's route of normalised ``name`` in ``virtual``, if any."""
    return session.scalars(
        select(VirtualRouteRow).where(
            VirtualRouteRow.virtual_index_id == virtual.id, VirtualRouteRow.project == name
        )
    ).one_or_none()


def reservation_of(session: Session, name: str) -> ReservationRow | None:
    """The reservation that covers normalised ``name``: exact first, then the longest prefix."""
    exact = session.scalars(
        select(ReservationRow).where(
            ReservationRow.pattern == name, ReservationRow.prefix.is_(False)
        )
    ).first()
    if exact is not None:
        return exact
    # A name's prefixes are few (one per separator): look each up on the unique index.
    stems = [name[: i + 1] for i, c in enumerate(name) if c == "-"]
    if not stems:
        return None
    found = session.scalars(
        select(ReservationRow).where(
            ReservationRow.pattern.in_(stems), ReservationRow.prefix.is_(True)
        )
    ).all()
    return max(found, key=lambda r: len(r.pattern), default=None)


def _confusable_reservation(session: Session, name: str) -> ReservationRow | None:
    """A reservation that ``name`` only looks like (``acme-w1dgets`` for ``acme-widgets``,
    ``acrne-x`` is not; ``acm3-x`` for prefix ``acme-`` is not either: only the folds
    of :func:`confusable_key`)."""
    exact = session.scalars(
        select(ReservationRow).where(
            ReservationRow.confusable == confusable_key(name),
            ReservationRow.prefix.is_(False),
            ReservationRow.pattern != name,
        )
    ).first()
    if exact is not None:
        return exact
    folded = fold_confusable(name)
    stems = [folded[: i + 1] for i, c in enumerate(folded) if c == "-"]
    if not stems:
        return None
    return session.scalars(
        select(ReservationRow).where(
            ReservationRow.confusable.in_(stems), ReservationRow.prefix.is_(True)
        )
    ).first()


def _member_through(
    session: Session, virtual: IndexRow, members: list[IndexRow], index_id: int
) -> IndexRow | None:
    """The member of ``virtual`` that is, or holds, index ``index_id``."""
    for member in members:
        if member.id == index_id:
            return member
        if member.kind == "virtual" and any(
            leaf.id == index_id for leaf in leaf_indexes(session, member)
        ):
            return member
    return None


def _has(session: Session, member: IndexRow, name: str) -> tuple[bool, str | None]:
    row = session.execute(
        select(ProjectRow.name, ProjectRow.deleted_at)
        .where(ProjectRow.index_id == member.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    if row is None:
        return False, None
    return (row.deleted_at is None or member.kind == "hosted"), row.name


def resolve_owner(session: Session, virtual: IndexRow, name: str) -> Owner:
    """Which member supplies normalised ``name`` in ``virtual`` (the module's rules)."""
    members = member_indexes(session, virtual)
    route = route_of(session, virtual, name)
    if route is not None:
        member = next((m for m in members if m.id == route.member_index_id), None)
        if member is not None:
            has, spelling = _has(session, member, name)
            return Owner(member, "route", has, spelling, {"member": member.name})
    reserved = reservation_of(session, name)
    if reserved is not None:
        holder = session.get(IndexRow, reserved.index_id)
        detail = {
            "by": holder.name if holder is not None else "?",
            "pattern": as_written(reserved.pattern, reserved.prefix),
        }
        member = _member_through(session, virtual, members, reserved.index_id)
        if member is None:
            return Owner(None, "reserved", detail=detail)
        has, spelling = _has(session, member, name)
        return Owner(member, "reserved", has, spelling, detail)
    first: IndexRow | None = None
    first_spelling: str | None = None
    rows = {
        index_id: (row_name, deleted)
        for index_id, row_name, deleted in session.execute(
            select(ProjectRow.index_id, ProjectRow.name, ProjectRow.deleted_at)
            .where(
                ProjectRow.normalized == name,
                ProjectRow.index_id.in_([m.id for m in members]),
            )
            .execution_options(**with_deleted())
        )
    }
    for member in members:
        found = rows.get(member.id)
        if found is not None and (found[1] is None or member.kind == "hosted"):
            first, first_spelling = member, found[0]
            break
    if first is None:
        return Owner(None, "none")
    if first.kind != "hosted":
        like = _confusable_hosted(session, virtual, name)
        if like is not None:
            return Owner(None, "confusable", detail=like)
        look_alike = _confusable_reservation(session, name)
        if look_alike is not None:
            holder = session.get(IndexRow, look_alike.index_id)
            return Owner(
                None,
                "confusable",
                detail={
                    "like": as_written(look_alike.pattern, look_alike.prefix),
                    "of": holder.name if holder is not None else "?",
                    "reserved": True,
                },
            )
    return Owner(first, "first", True, first_spelling, {"member": first.name})


def _confusable_hosted(session: Session, virtual: IndexRow, name: str) -> dict[str, Any] | None:
    """A hosted project under ``virtual`` that ``name`` looks like, if any."""
    hosted = [leaf.id for leaf in leaf_indexes(session, virtual) if leaf.kind == "hosted"]
    if not hosted:
        return None
    found = session.execute(
        select(ProjectRow.normalized, IndexRow.name)
        .join(IndexRow, IndexRow.id == ProjectRow.index_id)
        .where(
            ProjectRow.index_id.in_(hosted),
            ProjectRow.confusable == confusable_key(name),
            ProjectRow.normalized != name,
        )
        .execution_options(**with_deleted())
        .limit(1)
    ).first()
    if found is None:
        return None
    return {"like": found[0], "of": found[1]}


@dataclass(frozen=True)
class Refreshed:
    project: ProjectRow  # the virtual index's row for the name
    owner: Owner
    changed: bool  # whether the owner, its rule or the row's liveness changed


def refresh_owner(session: Session, virtual: IndexRow, name: str) -> Refreshed | None:
    """Bring ``virtual``'s row and owner of ``name`` up to date; None when the virtual
    index has no row for it and needs none (no member has the name)."""
    owner = resolve_owner(session, virtual, name)
    row = session.scalars(
        select(ProjectRow)
        .where(ProjectRow.index_id == virtual.id, ProjectRow.normalized == name)
        .execution_options(**with_deleted())
    ).one_or_none()
    if row is None:
        if owner.rule == "none":
            return None
        row = ProjectRow(
            index_id=virtual.id,
            name=owner.spelling or name,
            normalized=name,
            confusable=confusable_key(name),
            deleted_at=None if owner.live else datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        session.add(
            VirtualOwnerRow(
                project_id=row.id,
                member_index_id=owner.member.id if owner.member is not None else None,
                rule=owner.rule,
                detail=owner.detail,
            )
        )
        return Refreshed(row, owner, True)
    kept = session.get(VirtualOwnerRow, row.id)
    member_id = owner.member.id if owner.member is not None else None
    was_live = row.deleted_at is None
    changed = (
        kept is None
        or kept.member_index_id != member_id
        or kept.rule != owner.rule
        or kept.detail != owner.detail
        or was_live != owner.live
    )
    if kept is None:
        session.add(
            VirtualOwnerRow(
                project_id=row.id, member_index_id=member_id, rule=owner.rule, detail=owner.detail
            )
        )
    else:
        kept.member_index_id, kept.rule, kept.detail = member_id, owner.rule, owner.detail
    if owner.live:
        row.deleted_at = None
        if owner.spelling:
            row.name = owner.spelling
    elif was_live:
        row.deleted_at = datetime.now(UTC)
    return Refreshed(row, owner, changed)


def look_alikes(session: Session, virtual: IndexRow, name: str) -> list[str]:
    """The other names of ``virtual``'s members whose confusable key is ``name``'s."""
    ids = [m.id for m in member_indexes(session, virtual)] + [virtual.id]
    return sorted(
        set(
            session.scalars(
                select(ProjectRow.normalized)
                .where(
                    ProjectRow.index_id.in_(ids),
                    ProjectRow.confusable == confusable_key(name),
                    ProjectRow.normalized != name,
                )
                .execution_options(**with_deleted())
            )
        )
    )
