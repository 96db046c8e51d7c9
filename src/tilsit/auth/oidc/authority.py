"""Whether a trusted publisher still stands on the authority of the user who added it.

A publisher is a deferred action: a user with the right to publish a project
(its Owner, or an admin) or to create one (a pending publisher) lets a CI job
do so later, in their name. The right is checked when the publisher is added,
and again every time it is used (a token minted, an upload made with that
token), because the user may since have been disabled, removed as Owner or
lost the permission to create projects in the index. Otherwise a disabled
account, or an Owner removed in a clean-up, would keep publishing through the
CI jobs they set up.

A publisher added by the operator (``tilsit publisher add`` without
``--user``) rests on no user's authority and is not re-checked.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tilsit.auth.rights import may_create, may_manage
from tilsit.db.models import IndexRow, ProjectRow, PublisherRow, UserRow

__all__ = ["authority_refusal", "publisher_refusal"]


def authority_refusal(
    session: Session, user: UserRow, index: IndexRow, project: ProjectRow | None
) -> str | None:
    """Why ``user`` may not lend a CI job the right to publish ``project`` (or to create
    a project in ``index`` when ``project`` is None), as a clause; None when they may."""
    if not user.is_active:
        return f"the account {user.name!r} is disabled"
    if project is None:
        if not may_create(session, user, index):
            return f"user {user.name!r} may not create projects in index {index.name!r}"
        return None
    if not may_manage(session, user, project):
        return f"user {user.name!r} is not an Owner of {project.name!r}"
    return None


def publisher_refusal(session: Session, publisher: PublisherRow | None) -> str | None:
    """Why ``publisher`` may not mint or upload now, or None when it may.

    Checked at mint time and at upload time (a minted token lives for minutes,
    and its publisher's authority can end within them).
    """
    if publisher is None or publisher.removed_at is not None:
        return "The trusted publisher this token was minted for has been removed"
    project = None
    if publisher.project_id is not None:
        project = session.get(ProjectRow, publisher.project_id)
        if project is None or project.deleted_at is not None:
            return "The publisher's project has been deleted"
    if publisher.created_by is None:
        return None
    creator = session.get(UserRow, publisher.created_by)
    index = session.get(IndexRow, publisher.index_id)
    if creator is None or index is None:
        return "The account or the index of this trusted publisher no longer exists"
    reason = authority_refusal(session, creator, index, project)
    if reason is None:
        return None
    kind = "trusted publisher" if project is not None else "pending publisher"
    return (
        f"This {kind} was set up by {creator.name!r}, but now {reason}: a publisher acts on"
        " the rights of the user who set it up, so someone who has them must set it up again"
    )
