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

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tilsit.auth.tokens import InvalidToken, find_token
from tilsit.db.models import IndexPermissionRow, IndexRow, ProjectRow, RoleRow, UserRow

__all__ = [
    "CREATE",
    "INDEX_PERMISSIONS",
    "READ",
    "UPLOAD",
    "UPLOADER_ROLES",
    "ReadDecision",
    "index_permissions",
    "may_create",
    "may_read",
    "may_upload",
    "project_role",
    "read_decision",
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


@dataclass(frozen=True, slots=True)
class ReadDecision:
    """Whether an API token may read a private index, and if not, why (the 403 text)."""

    allowed: bool
    reason: str = ""
    user_id: int | None = None


def read_decision(session: Session, secret: str, index_name: str) -> ReadDecision:
    """May the token ``secret`` read the index ``index_name``? (The read path's check.)

    Only API tokens count: an account password would skip the second factor.
    A token limited to another index is refused, as is a trusted publisher's
    token (it exists to upload one project, not to read an index).
    """
    try:
        token = find_token(session, secret)
    except InvalidToken as exc:
        return ReadDecision(False, f"{exc}")
    index = session.scalars(select(IndexRow).where(IndexRow.name == index_name)).one_or_none()
    if index is None:
        return ReadDecision(False, f"there is no index named {index_name!r}")
    if token.index_id is not None and token.index_id != index.id:
        return ReadDecision(False, f"the API token is limited to another index than {index.name!r}")
    if token.user_id is None:
        return ReadDecision(False, "a trusted-publishing token may upload, not read an index")
    user = session.get(UserRow, token.user_id)
    if user is None or not user.is_active:
        return ReadDecision(False, "the API token's account is disabled")
    if not may_read(session, user, index):
        return ReadDecision(
            False, f"user {user.name!r} has no read permission on index {index.name!r}", user.id
        )
    return ReadDecision(True, "", user.id)
