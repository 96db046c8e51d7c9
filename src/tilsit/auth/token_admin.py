"""Issuing, listing and revoking a user's API tokens, with their audit events.

The web pages and the CLI both go through here, so a token made or revoked
either way leaves the same trace in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.tokens import PREFIX, NewToken, create_token
from tilsit.db.models import IndexRow, ProjectRow, RoleRow, TokenRow, UserRow

__all__ = [
    "BulkNotAllowed",
    "UnknownToken",
    "issue_token",
    "revoke_token",
    "scope_text",
    "token_by_reference",
    "tokens_of",
]


class UnknownToken(LookupError):
    """No token (or more than one) matches the prefix or id given."""


class BulkNotAllowed(PermissionError):
    """A bulk token asked for by someone who is not an administrator."""


def issue_token(
    session: Session,
    user: UserRow,
    *,
    index: IndexRow | None = None,
    projects: list[str] | None = None,
    expires_at: datetime | None = None,
    description: str = "",
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
    bulk: bool = False,
) -> NewToken:
    """Make a token for ``user``; ``actor`` None means the operator (the CLI).

    Only an administrator (or the operator) may make a bulk token, as its
    uploads skip the limits that slow down a stolen or runaway account.
    """
    if bulk and actor is not None and not actor.is_admin:
        raise BulkNotAllowed("Only an administrator may grant a bulk token")
    if index is None and projects:
        index = _index_of_projects(session, user, projects)
    new = create_token(
        session,
        user,
        index=index,
        projects=projects,
        expires_at=expires_at,
        description=description,
        bulk=bulk,
    )
    record_event(
        session,
        "token.created",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=user,
        index_id=index.id if index else None,
        detail={
            "token": new.row.display_prefix,
            "description": description,
            "projects": new.row.projects,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "bulk": bulk,
        },
    )
    return new


def _index_of_projects(session: Session, user: UserRow, projects: list[str]) -> IndexRow | None:
    """The one index in which ``user`` has a role on every project named, if there is one.

    A token limited to projects is valid in one index only; made without an index, it is
    the default index's (tilsit.index.access.token_index_id), which is wrong when the
    projects the user picked all live in another index.
    """
    wanted = set(projects)
    found: dict[int, set[str]] = {}
    for index_id, name in session.execute(
        select(ProjectRow.index_id, ProjectRow.normalized)
        .join(RoleRow, RoleRow.project_id == ProjectRow.id)
        .where(RoleRow.user_id == user.id, ProjectRow.normalized.in_(wanted))
    ):
        found.setdefault(index_id, set()).add(name)
    complete = [index_id for index_id, names in found.items() if names == wanted]
    return session.get(IndexRow, complete[0]) if len(complete) == 1 else None


def tokens_of(session: Session, user: UserRow) -> list[TokenRow]:
    """The user's own tokens (not those minted for trusted publishers), newest first."""
    return list(
        session.scalars(
            select(TokenRow)
            .where(TokenRow.user_id == user.id, TokenRow.publisher_id.is_(None))
            .order_by(TokenRow.created_at.desc(), TokenRow.id.desc())
        )
    )


def token_by_reference(session: Session, reference: str, user: UserRow | None = None) -> TokenRow:
    """The token named by its id or its displayed prefix (``tilsit-AbCdEf``).

    With ``user``, only that user's tokens match, so one cannot reach another's.
    """
    reference = reference.strip()
    query = select(TokenRow).where(TokenRow.publisher_id.is_(None))
    if user is not None:
        query = query.where(TokenRow.user_id == user.id)
    if reference.isdigit():
        query = query.where(TokenRow.id == int(reference))
    elif reference.startswith(PREFIX) and len(reference) > len(PREFIX):
        # A whole secret works too: its displayed prefix is its start.
        query = query.where(TokenRow.display_prefix == reference[: len(PREFIX) + 6])
    else:
        raise UnknownToken(f"{reference!r} is neither a token id nor a token prefix ({PREFIX}…)")
    rows = list(session.scalars(query.limit(2)))
    if not rows:
        raise UnknownToken(f"There is no API token {reference!r}")
    if len(rows) > 1:
        raise UnknownToken(f"Several API tokens start with {reference!r}: use the token's id")
    return rows[0]


def revoke_token(
    session: Session,
    token: TokenRow,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> bool:
    """Revoke ``token``; returns False if it was already revoked (nothing changes)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = datetime.now(UTC)
    record_event(
        session,
        "token.revoked",
        actor=actor,
        actor_name=actor_name,
        ip=ip,
        user=token.user_id,
        index_id=token.index_id,
        detail={"token": token.display_prefix, "description": token.description},
    )
    return True


def scope_text(token: TokenRow, index_name: str | None) -> str:
    """What the token may read and upload to, in words."""
    if token.projects is None:
        where = f"index {index_name}" if index_name else "every index"
        return f"all of the user's projects, {where}"
    # A token limited to projects is limited to one index: made without one, the default
    # index (tilsit.index.access.token_index_id).
    where = f"index {index_name}" if index_name else "the default index"
    return f"projects {', '.join(token.projects)}, {where} only"
