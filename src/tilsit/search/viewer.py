"""Which documents a viewer's results may name: the indexes (and projects) it may read.

The rules are the read path's (:mod:`tilsit.index.access`), applied per index:

- a browser's session user (or nobody): every index :func:`may_read` allows, plus the
  projects of other indexes the user has a role on (a role opens that project only);
- an API token (HTTP Basic with the token as the password, or Bearer): what
  :func:`read_scope` allows it of each index, so a token limited to an index sees
  that index only and one limited to projects sees those projects only, public
  indexes included, exactly as its reads of their pages would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from tilsit.auth.tokens import InvalidToken, find_token
from tilsit.db.models import IndexRow, ProjectRow, RoleRow, SearchDocRow, UserRow
from tilsit.index.access import may_read, read_scope

__all__ = ["Readable", "TokenRefused", "for_token", "for_user"]


class TokenRefused(Exception):
    """The credentials sent are not a usable API token (the message says why)."""


@dataclass(frozen=True)
class Readable:
    """Whole indexes by id, and single projects (normalised names) of other indexes."""

    whole: frozenset[int] = frozenset()
    projects: dict[int, frozenset[str]] = field(default_factory=dict)

    def only(self, index_id: int) -> Readable:
        """What this viewer may read of one index."""
        whole = self.whole & {index_id}
        projects = {index_id: self.projects[index_id]} if index_id in self.projects else {}
        return Readable(frozenset(whole), projects)

    def condition(self) -> ColumnElement[bool]:
        """The documents this viewer may see, as a condition on ``search_docs``."""
        parts: list[ColumnElement[bool]] = []
        if self.whole:
            parts.append(SearchDocRow.index_id.in_(sorted(self.whole)))
        for index_id, names in sorted(self.projects.items()):
            if names:
                parts.append(
                    and_(
                        SearchDocRow.index_id == index_id,
                        SearchDocRow.normalized.in_(sorted(names)),
                    )
                )
        return or_(*parts) if parts else false()


def for_user(session: Session, user: UserRow | None) -> Readable:
    indexes = list(session.scalars(select(IndexRow)))  # live ones: deleted are hidden
    whole = frozenset(index.id for index in indexes if may_read(session, user, index))
    projects: dict[int, set[str]] = {}
    if user is not None and user.is_active:
        for index_id, name in session.execute(
            select(ProjectRow.index_id, ProjectRow.normalized)
            .join(RoleRow, RoleRow.project_id == ProjectRow.id)
            .where(RoleRow.user_id == user.id)
        ):
            if index_id not in whole:
                projects.setdefault(index_id, set()).add(name)
    return Readable(whole, {i: frozenset(n) for i, n in projects.items()})


def for_token(session: Session, secret: str, default_index: str) -> Readable:
    """What the API token ``secret`` may read; :class:`TokenRefused` for no usable token."""
    try:
        find_token(session, secret)
    except InvalidToken as exc:
        raise TokenRefused(str(exc)) from None
    whole: set[int] = set()
    projects: dict[int, frozenset[str]] = {}
    for index in session.scalars(select(IndexRow)):
        scope = read_scope(session, secret, index.name, default_index)
        if scope.whole_index:
            whole.add(index.id)
        elif scope.projects:
            projects[index.id] = scope.projects
    return Readable(frozenset(whole), projects)
