"""Virtual indexes: their members, routes and the names hosted indexes reserve.

Each function runs inside :meth:`Database.write`, checks everything before it
changes anything (so a refused change leaves no row), audits what it changed and
journals every name whose owner moved (:mod:`tilsit.index.owners`), so the
renderer re-renders exactly those pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.db.live import with_deleted
from tilsit.db.models import (
    IndexRow,
    ProjectRow,
    ReservationRow,
    UserRow,
    VirtualMemberRow,
    VirtualRouteRow,
)
from tilsit.index import errors, owners
from tilsit.index.journal import fan_out_one
from tilsit.spec.names import confusable_key, fold_confusable, is_valid_name, normalize

__all__ = [
    "InvalidMembers",
    "InvalidReservation",
    "MembersChanged",
    "check_exposure",
    "clear_route",
    "members_of",
    "reservations",
    "reserve",
    "routes_of",
    "set_members",
    "set_route",
    "unreserve",
]


class InvalidMembers(errors.IndexError_):
    """A member list that cannot be: unknown, deleted or repeated indexes, a cycle."""


class InvalidReservation(errors.IndexError_):
    """A reservation that cannot be made: not a name or prefix, held elsewhere."""


@dataclass(frozen=True)
class MembersChanged:
    members: list[str]
    renamed: int  # names whose owner moved, journaled
    exposed: list[str]  # private members now readable through a public virtual index


def members_of(session: Session, virtual: IndexRow) -> list[IndexRow]:
    return owners.member_indexes(session, virtual)


def _who(by: UserRow | None, actor: str) -> str:
    """The audit log's name of who acted: the user, else the CLI's actor name."""
    return by.name if by is not None else (actor or "tilsit")


def _require_virtual(index: IndexRow, what: str) -> None:
    if index.kind != "virtual":
        raise InvalidMembers(
            f"Index {index.name!r} is a {index.kind} index: {what} is for virtual indexes"
        )


def _lookup(session: Session, name: str, virtual: IndexRow) -> IndexRow:
    row = session.scalars(
        select(IndexRow).where(IndexRow.name == name).execution_options(**with_deleted())
    ).one_or_none()
    if row is None:
        raise InvalidMembers(
            f"There is no index named {name!r} (in the members of {virtual.name!r})"
        )
    if row.deleted_at is not None:
        raise InvalidMembers(
            f"Index {name!r} was deleted on {row.deleted_at:%Y-%m-%d}: it cannot be a member"
        )
    return row


def _cycle(session: Session, virtual: IndexRow, member: IndexRow) -> list[str] | None:
    """A path from ``member`` back to ``virtual`` through virtual members, if one exists."""

    def walk(index: IndexRow, path: list[str]) -> list[str] | None:
        if index.id == virtual.id:
            return path
        if index.kind != "virtual":
            return None
        for inner in owners.member_indexes(session, index):
            found = walk(inner, [*path, inner.name])
            if found is not None:
                return found
        return None

    return walk(member, [virtual.name, member.name])


def check_exposure(
    session: Session,
    virtual: IndexRow,
    members: list[IndexRow],
    *,
    private: bool,
    by: UserRow | None,
    allow: bool,
) -> list[str]:
    """The private indexes whose files ``virtual`` would make public; refused unless
    the operator (``by`` None) or an administrator allows it: a private member's files
    are reachable through the virtual index by whoever may read the virtual index."""
    if private:
        return []
    leaves: list[IndexRow] = []
    for member in members:
        leaves.extend(
            owners.leaf_indexes(session, member) if member.kind == "virtual" else [member]
        )
    exposed = sorted({leaf.name for leaf in leaves if leaf.private})
    if not exposed:
        return []
    if not allow or (by is not None and not by.is_admin):
        names = ", ".join(repr(n) for n in exposed)
        raise errors.Forbidden(
            f"Index {names} is private and {virtual.name!r} is public: its files would be"
            f" readable by anyone through {virtual.name!r}. Make {virtual.name!r} private,"
            " or allow it with --expose-private (administrators only; audited)"
        )
    return exposed


def set_members(
    session: Session,
    virtual: IndexRow,
    names: list[str],
    *,
    actor: str = "",
    by: UserRow | None = None,
    expose_private: bool = False,
) -> MembersChanged:
    """Make ``names`` (in order) the members of ``virtual`` and re-decide the owner of
    every name the old or new members have."""
    _require_virtual(virtual, "--members")
    if not names:
        raise InvalidMembers("--members needs at least one index")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidMembers(f"{name!r} is listed twice in --members")
        seen.add(name)
    rows = [_lookup(session, name, virtual) for name in names]
    for row in rows:
        if row.id == virtual.id:
            raise InvalidMembers(f"Virtual index {virtual.name!r} cannot be a member of itself")
        path = _cycle(session, virtual, row)
        if path is not None:
            raise InvalidMembers(
                f"Adding {row.name!r} to {virtual.name!r} would make a cycle: {' -> '.join(path)}"
            )
    exposed = check_exposure(
        session, virtual, rows, private=virtual.private, by=by, allow=expose_private
    )
    before = owners.member_indexes(session, virtual)
    if [m.id for m in before] == [r.id for r in rows]:
        return MembersChanged(names, 0, [])
    session.execute(delete(VirtualMemberRow).where(VirtualMemberRow.virtual_index_id == virtual.id))
    session.flush()
    for position, row in enumerate(rows):
        session.add(
            VirtualMemberRow(virtual_index_id=virtual.id, member_index_id=row.id, position=position)
        )
    session.flush()
    owners.forget_memberships(session)
    who = _who(by, actor)
    record_event(
        session,
        "virtual.members.changed",
        actor=by,
        actor_name=who,
        index_id=virtual.id,
        detail={"before": [m.name for m in before], "after": names},
    )
    for name in exposed:
        record_event(
            session,
            "virtual.private_member.exposed",
            actor=by,
            actor_name=who,
            index_id=virtual.id,
            detail={"virtual": virtual.name, "member": name},
        )
    renamed = _reresolve(session, virtual, {m.id for m in before} | {r.id for r in rows}, who)
    return MembersChanged(names, renamed, exposed)


def _reresolve(session: Session, virtual: IndexRow, member_ids: set[int], actor: str) -> int:
    """Re-decide the owner of every name the members (and the virtual index) have.

    This costs what the members hold: at a PyPI-sized mirror, minutes (docs/virtual.md).
    """
    ids = [*member_ids, virtual.id]
    names = sorted(
        set(
            session.scalars(
                select(ProjectRow.normalized)
                .where(ProjectRow.index_id.in_(ids))
                .execution_options(**with_deleted())
            )
        )
    )
    return sum(fan_out_one(session, virtual, name, "", actor) for name in names)


def set_route(
    session: Session,
    virtual: IndexRow,
    project: str,
    member_name: str,
    *,
    reason: str = "",
    actor: str = "",
    by: UserRow | None = None,
) -> None:
    """Let ``member_name`` supply ``project`` in ``virtual``, whatever the order says."""
    _require_virtual(virtual, "a route")
    name = _project_name(project)
    members = owners.member_indexes(session, virtual)
    member = next((m for m in members if m.name == member_name), None)
    if member is None:
        listed = ", ".join(m.name for m in members) or "none"
        raise InvalidMembers(
            f"Index {member_name!r} is not a member of {virtual.name!r} (members: {listed})"
        )
    held = owners.reservation_of(session, name)
    if held is not None and held.index_id != member.id:
        holder = session.get(IndexRow, held.index_id)
        raise InvalidMembers(
            f"{name!r} is reserved by {holder.name if holder else '?'!r}"
            f" (as {owners.as_written(held.pattern, held.prefix)!r}): unreserve it before"
            " routing it elsewhere"
        )
    row = owners.route_of(session, virtual, name)
    if row is None:
        row = VirtualRouteRow(virtual_index_id=virtual.id, project=name, member_index_id=member.id)
        session.add(row)
    row.member_index_id, row.reason, row.created_by = member.id, reason, actor or "tilsit"
    session.flush()
    record_event(
        session,
        "virtual.route.set",
        actor=by,
        actor_name=_who(by, actor),
        index_id=virtual.id,
        project=name,
        detail={"member": member.name, "reason": reason},
    )
    fan_out_one(session, virtual, name, member.name, actor)


def clear_route(
    session: Session, virtual: IndexRow, project: str, *, actor: str = "", by: UserRow | None = None
) -> None:
    _require_virtual(virtual, "a route")
    name = _project_name(project)
    row = owners.route_of(session, virtual, name)
    if row is None:
        raise InvalidMembers(f"{name!r} has no route in {virtual.name!r}")
    session.delete(row)
    session.flush()
    record_event(
        session,
        "virtual.route.removed",
        actor=by,
        actor_name=_who(by, actor),
        index_id=virtual.id,
        project=name,
        detail={},
    )
    fan_out_one(session, virtual, name, "", actor)


def routes_of(session: Session, virtual: IndexRow) -> list[tuple[str, str, str]]:
    """``(project, member name, reason)`` of every route of ``virtual``."""
    return [
        (project, member, reason)
        for project, member, reason in session.execute(
            select(VirtualRouteRow.project, IndexRow.name, VirtualRouteRow.reason)
            .join(IndexRow, IndexRow.id == VirtualRouteRow.member_index_id)
            .where(VirtualRouteRow.virtual_index_id == virtual.id)
            .order_by(VirtualRouteRow.project)
        )
    ]


def _project_name(project: str) -> str:
    if not is_valid_name(project):
        raise InvalidMembers(f"{project!r} is not a project name")
    return normalize(project)


_PREFIX = re.compile(r"^(?P<stem>.+?)([-_.])\*$")


def _pattern(text: str) -> tuple[str, bool]:
    """A reservation's normalised pattern and whether it is a prefix (``acme-*``)."""
    match = _PREFIX.fullmatch(text)
    if match is not None and is_valid_name(match["stem"]):
        return normalize(match["stem"]) + "-", True
    if "*" not in text and is_valid_name(text):
        return normalize(text), False
    raise InvalidReservation(
        f"{text!r} is not a project name or a prefix: use a name, or a prefix ending in"
        " '-*' such as 'acme-*'"
    )


def reserve(
    session: Session, index: IndexRow, text: str, *, actor: str = "", by: UserRow | None = None
) -> ReservationRow:
    """Reserve a name or prefix for hosted ``index``: no other index supplies it in any
    virtual index, nor may anyone create it in another index."""
    if index.kind != "hosted":
        raise InvalidReservation(
            f"Only a hosted index reserves names: {index.name!r} is a {index.kind} index"
        )
    pattern, prefix = _pattern(text)
    shown = owners.as_written(pattern, prefix)
    existing = session.scalars(
        select(ReservationRow).where(
            ReservationRow.pattern == pattern, ReservationRow.prefix == prefix
        )
    ).one_or_none()
    if existing is not None:
        holder = session.get(IndexRow, existing.index_id)
        raise InvalidReservation(
            f"{shown!r} is already reserved by index {holder.name if holder else '?'!r}"
        )
    covering = owners.reservation_of(session, pattern.rstrip("-") if prefix else pattern)
    if covering is not None and covering.index_id != index.id:
        holder = session.get(IndexRow, covering.index_id)
        raise InvalidReservation(
            f"{shown!r} is already reserved by index {holder.name if holder else '?'!r}"
            f" (as {owners.as_written(covering.pattern, covering.prefix)!r})"
        )
    row = ReservationRow(
        index_id=index.id,
        pattern=pattern,
        prefix=prefix,
        confusable=fold_confusable(pattern) if prefix else confusable_key(pattern),
        created_by=actor or "tilsit",
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        "reservation.added",
        actor=by,
        actor_name=_who(by, actor),
        index_id=index.id,
        detail={"pattern": shown},
    )
    _reresolve_pattern(session, pattern, prefix, actor)
    return row


def unreserve(
    session: Session, index: IndexRow, text: str, *, actor: str = "", by: UserRow | None = None
) -> None:
    pattern, prefix = _pattern(text)
    row = session.scalars(
        select(ReservationRow).where(
            ReservationRow.pattern == pattern,
            ReservationRow.prefix == prefix,
            ReservationRow.index_id == index.id,
        )
    ).one_or_none()
    shown = owners.as_written(pattern, prefix)
    if row is None:
        raise InvalidReservation(f"Index {index.name!r} holds no reservation {shown!r}")
    session.delete(row)
    session.flush()
    record_event(
        session,
        "reservation.removed",
        actor=by,
        actor_name=_who(by, actor),
        index_id=index.id,
        detail={"pattern": shown},
    )
    _reresolve_pattern(session, pattern, prefix, actor)


def reservations(session: Session, index: IndexRow | None = None) -> list[tuple[str, str]]:
    """``(index name, pattern)`` of every reservation, or of ``index``'s."""
    query = select(IndexRow.name, ReservationRow.pattern, ReservationRow.prefix).join(
        IndexRow, IndexRow.id == ReservationRow.index_id
    )
    if index is not None:
        query = query.where(ReservationRow.index_id == index.id)
    return [
        (name, owners.as_written(pattern, prefix))
        for name, pattern, prefix in session.execute(query.order_by(ReservationRow.pattern))
    ]


def _reresolve_pattern(session: Session, pattern: str, prefix: bool, actor: str) -> None:
    """Re-decide, in every virtual index, the names a reservation covers or looks like.

    A prefix is a range scan of the names (``acme-`` up to ``acme.``, the next
    character), not a scan of the index.
    """
    virtuals = session.scalars(
        select(IndexRow).where(IndexRow.kind == "virtual", IndexRow.deleted_at.is_(None))
    ).all()
    if not virtuals:
        return
    if prefix:
        upper = pattern[:-1] + chr(ord(pattern[-1]) + 1)
        covered = ProjectRow.normalized >= pattern
        matches = select(ProjectRow.normalized).where(covered, ProjectRow.normalized < upper)
        folded = select(ProjectRow.normalized).where(
            ProjectRow.confusable >= confusable_key(pattern),
            ProjectRow.confusable < confusable_key(pattern) + "\x7f",
        )
        names = set(session.scalars(matches.execution_options(**with_deleted())))
        names |= {
            n
            for n in session.scalars(folded.execution_options(**with_deleted()))
            if fold_confusable(n).startswith(fold_confusable(pattern))
        }
    else:
        names = set(
            session.scalars(
                select(ProjectRow.normalized)
                .where(ProjectRow.confusable == confusable_key(pattern))
                .execution_options(**with_deleted())
            )
        )
        names.add(pattern)
    for virtual in virtuals:
        for name in sorted(names):
            fan_out_one(session, virtual, name, "", actor)
