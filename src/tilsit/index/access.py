"""Who may do what: read an index, upload to a project, create a project.

- **read**: anyone on a public index; on a private one, admins, users granted
  "read", "upload" or "create" on the index, and users with a role on one of
  its projects.
- **upload** to an existing project: admins, the project's Owners and
  Maintainers, and users granted "upload" on the whole index.
- **create** a project: on an index whose ``create_policy`` is "anyone", any
  active user; otherwise admins and users granted "create".
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexPermissionRow, IndexRow, ProjectRow, RoleRow, UserRow

__all__ = [
    "CREATE",
    "INDEX_PERMISSIONS",
    "READ",
    "UPLOAD",
    "UPLOADER_ROLES",
    "index_permissions",
    "may_create",
    "may_read",
    "may_upload",
    "project_role",
]

READ = "read"
UPLOAD = "upload"
CREATE = "create"
INDEX_PERMISSIONS = (READ, UPLOAD, CREATE)
UPLOADER_ROLES = ("Owner", "Maintainer")


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
    if not index.private:
        return True
    if user is None or not user.is_active:
        return False
    if user.is_admin or index_permissions(session, user, index):
        return True
    has_role = session.scalar(
        select(
            exists().where(
                RoleRow.user_id == user.id,
                RoleRow.project_id == ProjectRow.id,
                ProjectRow.index_id == index.id,
            )
        )
    )
    return bool(has_role)


def may_upload(session: Session, user: UserRow, project: ProjectRow) -> bool:
    if not user.is_active:
        return False
    if user.is_admin or project_role(session, user, project) in UPLOADER_ROLES:
        return True
    return UPLOAD in index_permissions(session, user, project.index)


def may_create(session: Session, user: UserRow, index: IndexRow) -> bool:
    if not user.is_active:
        return False
    if user.is_admin or index.create_policy == "anyone":
        return True
    return CREATE in index_permissions(session, user, index)
