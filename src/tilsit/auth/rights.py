"""Who holds which right: the grants on an index, the roles on a project, and the rules
built on them (read, upload, create, manage).

These are the access rules that both the accounts side (a trusted publisher acts on
the rights of the user who set it up, :mod:`tilsit.auth.oidc.authority`) and the
index side (uploads, reads, roles) apply. They read the database and nothing else,
so they sit in ``auth``, below ``index``; :mod:`tilsit.index.access` and
:mod:`tilsit.index.roles` re-export them beside the rules that need the index's own
errors and journal. The meaning of each right is written in :mod:`tilsit.index.access`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexPermissionRow, IndexRow, ProjectRow, RoleRow, UserRow

__all__ = [
    "CREATE",
    "INDEX_PERMISSIONS",
    "MAINTAINER",
    "OWNER",
    "READ",
    "REVIEW",
    "ROLES",
    "UPLOAD",
    "UPLOADER_ROLES",
    "index_permissions",
    "may_create",
    "may_manage",
    "may_read",
    "may_read_project",
    "may_review",
    "may_upload",
    "project_role",
]

# Grants on a whole index.
READ = "read"
UPLOAD = "upload"
CREATE = "create"
# Approve or reject releases for a curated virtual index (tilsit.index.reviews).
REVIEW = "review"
INDEX_PERMISSIONS = (READ, UPLOAD, CREATE, REVIEW)
# Roles on one project.
OWNER = "Owner"
MAINTAINER = "Maintainer"
ROLES = (OWNER, MAINTAINER)
UPLOADER_ROLES = ROLES


def index_permissions(session: Session, user: UserRow, index: IndexRow) -> set[str]:
    return set(
        session.scalars(
            select(IndexPermissionRow.permission).where(
                IndexPermissionRow.index_id == index.id, IndexPermissionRow.user_id == user.id
            )
        )
    )


def project_role(session: Session, user: UserRow, project: ProjectRow) -> str | None:
    return session.scalar(
        select(RoleRow.role).where(RoleRow.project_id == project.id, RoleRow.user_id == user.id)
    )


def may_read(session: Session, user: UserRow | None, index: IndexRow) -> bool:
    """May ``user`` read the whole of ``index`` (its list, every project, its TUF metadata)?"""
    if not index.private:
        return True
    if user is None or not user.is_active:
        return False
    return user.is_admin or bool(index_permissions(session, user, index))


def may_read_project(session: Session, user: UserRow | None, project: ProjectRow) -> bool:
    """May ``user`` read ``project``: the whole index, or a role on this project."""
    if may_read(session, user, project.index):
        return True
    return user is not None and user.is_active and project_role(session, user, project) is not None


def may_upload(session: Session, user: UserRow, project: ProjectRow) -> bool:
    if not user.is_active:
        return False
    if user.is_admin or project_role(session, user, project) in UPLOADER_ROLES:
        return True
    return UPLOAD in index_permissions(session, user, project.index)


def may_review(session: Session, user: UserRow, index: IndexRow) -> bool:
    """Admins and users granted "review" on ``index`` approve and reject its releases."""
    if not user.is_active:
        return False
    return user.is_admin or REVIEW in index_permissions(session, user, index)


def may_create(session: Session, user: UserRow, index: IndexRow) -> bool:
    if not user.is_active:
        return False
    if user.is_admin or index.create_policy == "anyone":
        return True
    return CREATE in index_permissions(session, user, index)


def may_manage(session: Session, user: UserRow, project: ProjectRow) -> bool:
    """Owners and admins manage a project's roles."""
    if not user.is_active:
        return False
    return user.is_admin or project_role(session, user, project) == OWNER
