"""Changing who may use an index: private or public, the create policy, per-user grants.

Each change writes an audit event in the same transaction. Making an index
private or public also journals every project of the index, so the renderer
moves their files between the shared ``/packages/`` and ``/<index>/packages/``
and rewrites the links in their pages (see ``tilsit.render.follow``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.db.models import IndexPermissionRow, IndexRow, ProjectRow, UserRow
from tilsit.index import errors, owners
from tilsit.index.access import INDEX_PERMISSIONS, REVIEW
from tilsit.index.journal import record
from tilsit.index.virtual import check_exposure

__all__ = [
    "CREATE_POLICIES",
    "Grant",
    "InvalidPermission",
    "grant_permission",
    "list_permissions",
    "revoke_permission",
    "set_visibility",
]

CREATE_POLICIES = ("anyone", "listed")


class InvalidPermission(errors.IndexError_):
    """An unknown permission or create policy, or a change that cannot apply to this index."""

    status = 400


@dataclass(frozen=True, slots=True)
class Grant:
    user: str
    permission: str
    created_at: datetime


def set_visibility(
    session: Session,
    index: IndexRow,
    *,
    private: bool | None = None,
    create_policy: str | None = None,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
    expose_private: bool = False,
) -> bool:
    """Make ``index`` private or public and/or set its create policy; True if anything changed.

    Making a virtual index public while it holds a private index, or making a member
    of a public virtual index private, would open private files to anyone: refused
    unless ``expose_private`` is given by the operator or an administrator (audited).
    """
    if create_policy is not None and create_policy not in CREATE_POLICIES:
        raise InvalidPermission(
            f"Unknown create policy {create_policy!r}: use one of {', '.join(CREATE_POLICIES)}"
        )
    if private and index.kind == "proxy":
        # A proxy serves its files through tilsit from the shared /packages/ as
        # it fetches them; it has no per-index file tree to protect.
        raise InvalidPermission(
            f"Index {index.name!r} is a proxy index, which cannot be private (yet)"
        )
    changed = False
    if private is not None and private != index.private:
        _check_exposure(session, index, private, actor, expose_private)
        index.private = private
        record_event(
            session,
            "index.private",
            actor=actor,
            actor_name=actor_name,
            ip=ip,
            index_id=index.id,
            detail={"index": index.name, "private": private},
        )
        projects = session.scalars(select(ProjectRow).where(ProjectRow.index_id == index.id))
        name = actor.name if actor is not None else (actor_name or "")
        for project in projects:
            record(session, index, "visibility", project=project, actor=name)
        record(session, index, "visibility", actor=name, detail={"private": private})
        changed = True
    if create_policy is not None and create_policy != index.create_policy:
        index.create_policy = create_policy
        record_event(
            session,
            "index.private",
            actor=actor,
            actor_name=actor_name,
            ip=ip,
            index_id=index.id,
            detail={"index": index.name, "create_policy": create_policy},
        )
        changed = True
    return changed


def _check_exposure(
    session: Session, index: IndexRow, private: bool, by: UserRow | None, allow: bool
) -> None:
    if index.kind == "virtual" and not private:
        pairs = [(index, exposed) for exposed in _exposed(session, index, by, allow)]
    elif private:
        pairs = []
        for holder in _public_holders(session, index):
            if allow and (by is None or by.is_admin):
                pairs.append((holder, index.name))
                continue
            raise errors.Forbidden(
                f"Index {index.name!r} is a member of public virtual index {holder.name!r}:"
                f" made private, its files would be readable by anyone through"
                f" {holder.name!r}. Make {holder.name!r} private first, or allow it with"
                " --expose-private (administrators only; audited)"
            )
    else:
        pairs = []
    for holder, exposed in pairs:
        record_event(
            session,
            "virtual.private_member.exposed",
            actor=by,
            actor_name=by.name if by is not None else "cli",
            index_id=holder.id,
            detail={"virtual": holder.name, "member": exposed},
        )


def _exposed(session: Session, virtual: IndexRow, by: UserRow | None, allow: bool) -> list[str]:
    members = owners.member_indexes(session, virtual)
    return check_exposure(session, virtual, members, private=False, by=by, allow=allow)


def _public_holders(session: Session, index: IndexRow) -> list[IndexRow]:
    """The public virtual indexes that hold ``index``, directly or through others."""
    found: dict[int, IndexRow] = {}
    todo = [index]
    while todo:
        for holder in owners.containing_virtuals(session, todo.pop().id):
            if holder.id not in found:
                found[holder.id] = holder
                todo.append(holder)
    return [h for h in found.values() if not h.private]


def _check_permission(permission: str) -> None:
    if permission not in INDEX_PERMISSIONS:
        raise InvalidPermission(
            f"Unknown permission {permission!r}: use one of {', '.join(INDEX_PERMISSIONS)}"
        )


def _permission_row(
    session: Session, index: IndexRow, user: UserRow, permission: str
) -> IndexPermissionRow | None:
    return session.scalars(
        select(IndexPermissionRow).where(
            IndexPermissionRow.index_id == index.id,
            IndexPermissionRow.user_id == user.id,
            IndexPermissionRow.permission == permission,
        )
    ).first()


def grant_permission(
    session: Session,
    index: IndexRow,
    user: UserRow,
    permission: str,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> bool:
    """Give ``user`` ``permission`` on ``index``; False if it was already granted."""
    _check_permission(permission)
    if permission == REVIEW and index.kind != "virtual":
        # Reviews decide what a curated virtual index shows; elsewhere the grant means nothing.
        raise InvalidPermission(
            f"Permission 'review' is for virtual indexes: {index.name!r} is a {index.kind} index"
        )
    existing = _permission_row(session, index, user, permission)
    if existing is not None:
        return False
    session.add(IndexPermissionRow(index_id=index.id, user_id=user.id, permission=permission))
    record_event(
        session,
        "index.permission.granted",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=user,
        index_id=index.id,
        detail={"index": index.name, "user": user.name, "permission": permission},
    )
    session.flush()
    return True


def revoke_permission(
    session: Session,
    index: IndexRow,
    user: UserRow,
    permission: str,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> bool:
    """Take ``permission`` on ``index`` from ``user``; False if the user did not have it."""
    _check_permission(permission)
    existing = _permission_row(session, index, user, permission)
    if existing is None:
        return False
    session.delete(existing)
    record_event(
        session,
        "index.permission.removed",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=user,
        index_id=index.id,
        detail={"index": index.name, "user": user.name, "permission": permission},
    )
    session.flush()
    return True


def list_permissions(session: Session, index: IndexRow) -> list[Grant]:
    rows = session.execute(
        select(UserRow.name, IndexPermissionRow.permission, IndexPermissionRow.created_at)
        .join(UserRow, IndexPermissionRow.user_id == UserRow.id)
        .where(IndexPermissionRow.index_id == index.id)
        .order_by(UserRow.name, IndexPermissionRow.permission)
    )
    return [Grant(name, permission, created) for name, permission, created in rows]
