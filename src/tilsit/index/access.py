"""Who may do what: read an index or one of its projects, upload to a project, create one.

- **read the whole index** (its project list, every project, its TUF metadata): anyone on a
  public index; on a private one, admins and users granted "read", "upload", "create" or
  "review" on the index (a reviewer reads what it judges).
- **read one project** of a private index (its pages, legacy JSON, files and ``.metadata``):
  whoever reads the whole index, and that project's Owners and Maintainers. A role on a
  project opens that project only, so creating a project never opens the others.
- **upload** to an existing project: admins, the project's Owners and Maintainers, and users
  granted "upload" on the whole index.
- **create** a project: on an index whose ``create_policy`` is "anyone", any active user;
  otherwise admins and users granted "create".
- **review** (virtual indexes): admins and users granted "review" approve or reject the
  releases a curated virtual index shows (:mod:`tilsit.index.reviews`).

An API token narrows its user's rights, for reads as for uploads: a token limited to an index
reaches that index only, and a token limited to projects reaches those projects only, in one
index (:func:`token_index_id`), never a project list, TUF metadata or another index.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.rights import (
    CREATE,
    INDEX_PERMISSIONS,
    READ,
    REVIEW,
    UPLOAD,
    UPLOADER_ROLES,
    index_permissions,
    may_create,
    may_read,
    may_read_project,
    may_review,
    may_upload,
    project_role,
)
from tilsit.auth.tokens import InvalidToken, find_token
from tilsit.db.models import (
    FileRow,
    IndexRow,
    ProjectRow,
    PublisherRow,
    ReleaseRow,
    RoleRow,
    TokenRow,
    UserRow,
)
from tilsit.index import errors
from tilsit.index.owners import leaf_indexes
from tilsit.spec.names import confusable_key

__all__ = [
    "CREATE",
    "INDEX_PERMISSIONS",
    "READ",
    "REVIEW",
    "UPLOAD",
    "UPLOADER_ROLES",
    "ReadScope",
    "file_project",
    "hidden_project",
    "index_permissions",
    "may_create",
    "may_read",
    "may_read_project",
    "may_review",
    "may_upload",
    "pending_reservation",
    "project_role",
    "read_scope",
    "token_index_id",
]


def hidden_project(index: IndexRow, name: str) -> errors.UnknownProject:
    """What a caller who may not read a private index's project is told: exactly what it
    would be told of a project that does not exist (the words of ``get_project``), so that
    no answer tells the two apart."""
    return errors.UnknownProject(f"There is no project {name!r} in index {index.name!r}")


def pending_reservation(session: Session, index: IndexRow, name: str) -> PublisherRow | None:
    """The pending trusted publisher that holds ``name`` in ``index``, if any.

    A pending publisher reserves the name its first upload will create, and look-alikes of
    it (compared by the confusable key, as project names are), so the reservation cannot
    be taken by a variant that would then block the real name.
    """
    if not name.strip():
        return None
    key = confusable_key(name)
    pending = session.scalars(
        select(PublisherRow)
        .where(
            PublisherRow.index_id == index.id,
            PublisherRow.project_id.is_(None),
            PublisherRow.pending_name.is_not(None),
            PublisherRow.removed_at.is_(None),
        )
        .order_by(PublisherRow.id)
    )
    return next((row for row in pending if confusable_key(row.pending_name or "") == key), None)


def token_index_id(session: Session, token: TokenRow, default_index: str) -> int | None:
    """The one index ``token`` is valid for, or None for every index.

    A token limited to projects is limited to one index as well: a project name means
    nothing without its index, and without this a CI token for ``a`` in one index could
    create ``a`` in any other. Such a token made without an index (tokens made before
    this rule, or by a caller that gave none) is the default index's.
    """
    if token.index_id is not None or token.projects is None:
        return token.index_id
    return session.scalar(select(IndexRow.id).where(IndexRow.name == default_index))


@dataclass(frozen=True, slots=True)
class ReadScope:
    """What one API token may read of one private index, and why not the rest (the 403 text).

    ``whole_index`` opens everything; otherwise ``projects`` (normalised names) lists the
    projects whose pages and files the token opens.
    """

    whole_index: bool
    projects: frozenset[str] = frozenset()
    reason: str = ""
    user_id: int | None = None

    def allows(self, project: str | None) -> bool:
        """May the token read ``project`` (None: something of the whole index)?"""
        if self.whole_index:
            return True
        return project is not None and project in self.projects


def _refused(reason: str, user_id: int | None = None) -> ReadScope:
    return ReadScope(False, frozenset(), reason, user_id)


def read_scope(session: Session, secret: str, index_name: str, default_index: str) -> ReadScope:
    """What the token ``secret`` may read of the private index ``index_name`` (the read
    path's check).

    Only API tokens count: an account password would skip the second factor. A token
    limited to another index is refused, as is a trusted publisher's token (it exists to
    upload one project, not to read an index).
    """
    try:
        token = find_token(session, secret)
    except InvalidToken as exc:
        return _refused(f"{exc}")
    index = session.scalars(select(IndexRow).where(IndexRow.name == index_name)).one_or_none()
    if index is None:
        return _refused(f"there is no index named {index_name!r}")
    limited_to = token_index_id(session, token, default_index)
    if limited_to is not None and limited_to != index.id:
        return _refused(f"the API token is limited to another index than {index.name!r}")
    if token.user_id is None:
        return _refused("a trusted-publishing token may upload, not read an index")
    user = session.get(UserRow, token.user_id)
    if user is None or not user.is_active:
        return _refused("the API token's account is disabled")
    whole = may_read(session, user, index)
    if whole:
        # Everything the token names; whether each project exists is the page's answer.
        readable = frozenset(token.projects or ())
    else:
        readable = frozenset(
            session.scalars(
                select(ProjectRow.normalized)
                .join(RoleRow, RoleRow.project_id == ProjectRow.id)
                .where(RoleRow.user_id == user.id, ProjectRow.index_id == index.id)
            )
        )
        if token.projects is not None:
            readable &= frozenset(token.projects)
    if token.projects is not None:
        return ReadScope(
            False,
            readable,
            f"the API token is limited to projects {', '.join(sorted(token.projects))}"
            f" of index {index.name!r}",
            user.id,
        )
    if whole:
        return ReadScope(True, frozenset(), "", user.id)
    return ReadScope(
        False,
        readable,
        f"user {user.name!r} has no read permission on index {index.name!r}"
        " (a role on a project opens that project only)",
        user.id,
    )


def file_project(session: Session, index_name: str, filename: str) -> str | None:
    """The normalised name of the project that ``filename`` belongs to in ``index_name``.

    Read from the files table rather than parsed from the name: names from older tools
    (``a-b-1.0.tar.gz`` of project ``a`` or ``a-b``?) cannot be parsed with certainty, and a
    filename never changes project nor is reused in an index, so the answer never changes.
    """
    index = session.scalars(select(IndexRow).where(IndexRow.name == index_name)).first()
    if index is None:
        return None
    # A virtual index's files are its members': the project is theirs (one owner per name).
    ids = (
        [leaf.id for leaf in leaf_indexes(session, index)]
        if index.kind == "virtual"
        else [index.id]
    )
    return session.scalar(
        select(ProjectRow.normalized)
        .join(ReleaseRow, ReleaseRow.project_id == ProjectRow.id)
        .join(FileRow, FileRow.release_id == ReleaseRow.id)
        .where(FileRow.index_id.in_(ids), FileRow.filename == filename)
        .limit(1)
    )
