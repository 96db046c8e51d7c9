"""Project roles (Owner, Maintainer) and the invitations that hand them out.

- Only an Owner (or an admin) invites, changes and removes roles; anyone may
  give up their own role.
- An invitation names one user and one role, and lives 7 days; only that user
  accepts or declines it. A user who already has a role cannot be invited.
- A project never loses its last Owner: demoting or removing them is refused.
- An invitation acts on its inviter's rights, so it is accepted only while the
  inviter still has them (an active account, Owner of the project or admin):
  an invitation from an Owner who was since removed or disabled, say in the
  clean-up after a compromise, no longer hands out a role.

Every change writes an audit event (``role.*``) in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.rights import MAINTAINER, OWNER, ROLES, may_manage
from tilsit.db.models import IndexRow, InvitationRow, ProjectRow, RoleRow, UserRow, utcnow
from tilsit.index import errors

__all__ = [
    "INVITATION_LIFETIME",
    "MAINTAINER",
    "OWNER",
    "ROLES",
    "InvalidRole",
    "InvitationClosed",
    "LastOwner",
    "ProjectRole",
    "RoleExists",
    "StaleInvitation",
    "accept_invitation",
    "add_role",
    "change_role",
    "decline_invitation",
    "invite",
    "may_manage",
    "pending_invitations",
    "project_invitations",
    "project_roles",
    "remove_role",
    "revoke_invitation",
    "user_projects",
]

INVITATION_LIFETIME = timedelta(days=7)


class InvalidRole(errors.IndexError_):
    """A role name that is neither Owner nor Maintainer."""

    status = 400


class RoleExists(errors.IndexError_):
    """The user already has a role on the project, or an open invitation to one."""

    status = 409


class LastOwner(errors.IndexError_):
    """The change would leave the project without an Owner."""

    status = 409


class InvitationClosed(errors.IndexError_):
    """The invitation was accepted, declined or revoked already, or has expired."""

    status = 410


class StaleInvitation(errors.IndexError_):
    """The inviter no longer has the right to hand out the role (disabled, or no
    longer an Owner of the project)."""

    status = 403


@dataclass(frozen=True, slots=True)
class ProjectRole:
    index: str
    project: str
    user: str
    role: str


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_role(role: str) -> str:
    for known in ROLES:
        if role.lower() == known.lower():
            return known
    raise InvalidRole(f"Unknown role {role!r}: use {' or '.join(ROLES)}")


def _role_row(session: Session, project: ProjectRow, user: UserRow) -> RoleRow | None:
    return session.scalars(
        select(RoleRow).where(RoleRow.project_id == project.id, RoleRow.user_id == user.id)
    ).one_or_none()


def _require_manager(session: Session, user: UserRow, project: ProjectRow) -> None:
    if not may_manage(session, user, project):
        raise errors.Forbidden(f"Only an Owner of {project.name!r} may manage its roles")


def _owners(session: Session, project: ProjectRow) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(RoleRow)
        .where(RoleRow.project_id == project.id, RoleRow.role == OWNER)
    )
    return int(count or 0)


def _event(
    session: Session,
    action: str,
    project: ProjectRow,
    *,
    actor: UserRow | None,
    actor_name: str | None,
    ip: str,
    user: UserRow,
    **detail: str,
) -> None:
    record_event(
        session,
        action,
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=user,
        index_id=project.index_id,
        project=project.normalized,
        detail={"user": user.name, **detail},
    )


def _open_invitation(
    session: Session, project: ProjectRow, user: UserRow, now: datetime
) -> InvitationRow | None:
    for row in session.scalars(
        select(InvitationRow).where(
            InvitationRow.project_id == project.id,
            InvitationRow.user_id == user.id,
            InvitationRow.status == "pending",
        )
    ):
        if _as_utc(row.expires_at) > now:
            return row
    return None


def invite(
    session: Session,
    project: ProjectRow,
    invitee: UserRow,
    role: str,
    *,
    by: UserRow,
    ip: str = "",
    now: datetime | None = None,
) -> InvitationRow:
    """Invite ``invitee`` to ``role`` on ``project``; ``by`` must be an Owner."""
    role = _check_role(role)
    now = now or utcnow()
    _require_manager(session, by, project)
    if not invitee.is_active:
        raise errors.InvalidUpload(f"User {invitee.name!r} is disabled and cannot be invited")
    existing = _role_row(session, project, invitee)
    if existing is not None:
        raise RoleExists(
            f"{invitee.name!r} is already {existing.role} of {project.name!r};"
            " change the role instead"
        )
    if _open_invitation(session, project, invitee, now) is not None:
        raise RoleExists(f"{invitee.name!r} already has an open invitation to {project.name!r}")
    row = InvitationRow(
        project_id=project.id,
        user_id=invitee.id,
        role=role,
        invited_by=by.id,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
        status="pending",
    )
    session.add(row)
    _event(
        session, "role.invited", project, actor=by, actor_name=None, ip=ip, user=invitee, role=role
    )
    session.flush()
    return row


def _invitation_for(
    session: Session, invitation_id: int, user: UserRow, now: datetime
) -> tuple[InvitationRow, ProjectRow]:
    row = session.get(InvitationRow, invitation_id)
    if row is None or row.user_id != user.id:
        # Someone else's invitation is reported as missing: its existence is not theirs to know.
        raise errors.UnknownProject(f"You have no invitation numbered {invitation_id}")
    if row.status != "pending":
        raise InvitationClosed(f"This invitation was {row.status} already")
    if _as_utc(row.expires_at) <= now:
        raise InvitationClosed("This invitation has expired; ask an Owner for a new one")
    return row, session.get_one(ProjectRow, row.project_id)


def _check_inviter(session: Session, row: InvitationRow, project: ProjectRow) -> None:
    """Refuse an invitation whose inviter could not send it today."""
    inviter = session.get_one(UserRow, row.invited_by)
    if not inviter.is_active:
        raise StaleInvitation(
            f"This invitation to {project.name!r} was sent by {inviter.name!r}, whose account is now"
            " disabled: ask a current Owner for a new invitation"
        )
    if not may_manage(session, inviter, project):
        raise StaleInvitation(
            f"This invitation to {project.name!r} was sent by {inviter.name!r}, who is no longer"
            " an Owner of it: ask a current Owner for a new invitation"
        )


def accept_invitation(
    session: Session,
    invitation_id: int,
    user: UserRow,
    *,
    ip: str = "",
    now: datetime | None = None,
) -> RoleRow:
    row, project = _invitation_for(session, invitation_id, user, now or utcnow())
    if _role_row(session, project, user) is not None:
        raise RoleExists(f"You already have a role on {project.name!r}")
    _check_inviter(session, row, project)
    row.status = "accepted"
    role = RoleRow(project_id=project.id, user_id=user.id, role=row.role)
    session.add(role)
    _event(
        session,
        "role.accepted",
        project,
        actor=user,
        actor_name=None,
        ip=ip,
        user=user,
        role=row.role,
    )
    _event(
        session, "role.added", project, actor=user, actor_name=None, ip=ip, user=user, role=row.role
    )
    session.flush()
    return role


def decline_invitation(
    session: Session,
    invitation_id: int,
    user: UserRow,
    *,
    ip: str = "",
    now: datetime | None = None,
) -> None:
    row, project = _invitation_for(session, invitation_id, user, now or utcnow())
    row.status = "declined"
    _event(
        session,
        "role.declined",
        project,
        actor=user,
        actor_name=None,
        ip=ip,
        user=user,
        role=row.role,
    )


def revoke_invitation(
    session: Session, project: ProjectRow, invitation_id: int, *, by: UserRow, ip: str = ""
) -> None:
    _require_manager(session, by, project)
    row = session.get(InvitationRow, invitation_id)
    if row is None or row.project_id != project.id:
        raise errors.UnknownProject(f"{project.name!r} has no invitation numbered {invitation_id}")
    if row.status != "pending":
        raise InvitationClosed(f"This invitation was {row.status} already")
    row.status = "revoked"
    invitee = session.get_one(UserRow, row.user_id)
    _event(
        session,
        "role.revoked",
        project,
        actor=by,
        actor_name=None,
        ip=ip,
        user=invitee,
        role=row.role,
    )


def add_role(
    session: Session,
    project: ProjectRow,
    user: UserRow,
    role: str,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> RoleRow:
    """Give a role directly, without an invitation (the CLI, for an administrator)."""
    role = _check_role(role)
    existing = _role_row(session, project, user)
    if existing is not None:
        raise RoleExists(f"{user.name!r} is already {existing.role} of {project.name!r}")
    row = RoleRow(project_id=project.id, user_id=user.id, role=role)
    session.add(row)
    _event(
        session,
        "role.added",
        project,
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=user,
        role=role,
    )
    session.flush()
    return row


def change_role(
    session: Session,
    project: ProjectRow,
    user: UserRow,
    role: str,
    *,
    by: UserRow,
    ip: str = "",
) -> bool:
    """Change ``user``'s role; False if it already was ``role``."""
    role = _check_role(role)
    _require_manager(session, by, project)
    row = _role_row(session, project, user)
    if row is None:
        raise errors.UnknownProject(f"{user.name!r} has no role on {project.name!r}")
    if row.role == role:
        return False
    if row.role == OWNER and _owners(session, project) <= 1:
        raise LastOwner(f"{user.name!r} is the last Owner of {project.name!r}; add another first")
    before, row.role = row.role, role
    _event(
        session,
        "role.changed",
        project,
        actor=by,
        actor_name=None,
        ip=ip,
        user=user,
        role=role,
        previous=before,
    )
    session.flush()
    return True


def remove_role(
    session: Session,
    project: ProjectRow,
    user: UserRow,
    *,
    by: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> None:
    """Remove ``user``'s role; ``by`` None is the CLI. Anyone may remove their own role."""
    if by is not None and by.id != user.id:
        _require_manager(session, by, project)
    row = _role_row(session, project, user)
    if row is None:
        raise errors.UnknownProject(f"{user.name!r} has no role on {project.name!r}")
    if row.role == OWNER and _owners(session, project) <= 1:
        raise LastOwner(f"{user.name!r} is the last Owner of {project.name!r}; add another first")
    session.delete(row)
    _event(
        session,
        "role.removed",
        project,
        actor=by,
        actor_name=actor_name,
        ip=ip,
        user=user,
        role=row.role,
    )
    session.flush()


def project_roles(session: Session, project: ProjectRow) -> list[tuple[UserRow, str]]:
    rows = session.execute(
        select(UserRow, RoleRow.role)
        .join(RoleRow, RoleRow.user_id == UserRow.id)
        .where(RoleRow.project_id == project.id)
        .order_by(RoleRow.role.desc(), UserRow.name)  # Owners first
    )
    return [(user, role) for user, role in rows]


def project_invitations(
    session: Session, project: ProjectRow, now: datetime | None = None
) -> list[tuple[InvitationRow, UserRow]]:
    """Open (pending, unexpired) invitations to ``project``."""
    now = now or utcnow()
    rows = session.execute(
        select(InvitationRow, UserRow)
        .join(UserRow, InvitationRow.user_id == UserRow.id)
        .where(InvitationRow.project_id == project.id, InvitationRow.status == "pending")
        .order_by(InvitationRow.created_at)
    )
    return [(inv, user) for inv, user in rows if _as_utc(inv.expires_at) > now]


def pending_invitations(
    session: Session, user: UserRow, now: datetime | None = None
) -> list[tuple[InvitationRow, ProjectRole]]:
    """``user``'s open invitations, with the project and who invited them."""
    now = now or utcnow()
    inviter = UserRow.__table__.alias("inviter")
    rows = session.execute(
        select(InvitationRow, IndexRow.name, ProjectRow.name, inviter.c.name)
        .join(ProjectRow, InvitationRow.project_id == ProjectRow.id)
        .join(IndexRow, ProjectRow.index_id == IndexRow.id)
        .join(inviter, InvitationRow.invited_by == inviter.c.id)
        .where(InvitationRow.user_id == user.id, InvitationRow.status == "pending")
        .order_by(InvitationRow.created_at)
    )
    return [
        (inv, ProjectRole(index, project, by, inv.role))
        for inv, index, project, by in rows
        if _as_utc(inv.expires_at) > now
    ]


def user_projects(session: Session, user: UserRow) -> list[ProjectRole]:
    rows = session.execute(
        select(IndexRow.name, ProjectRow.name, RoleRow.role)
        .join(ProjectRow, RoleRow.project_id == ProjectRow.id)
        .join(IndexRow, ProjectRow.index_id == IndexRow.id)
        .where(RoleRow.user_id == user.id, ProjectRow.deleted_at.is_(None))
        .order_by(IndexRow.name, ProjectRow.normalized)
    )
    return [ProjectRole(index, project, user.name, role) for index, project, role in rows]
