"""The review queue: which releases of non-hosted members a curated virtual index may show.

Anyone who may read a virtual index asks for a review of one release
(:func:`request_review`); a reviewer (the per-index right "review", or an admin, or
the operator on the command line) approves or rejects it with a reason
(:func:`approve`, :func:`reject`). One row per release and index, whatever the
spelling of the version (its :func:`~tilsit.spec.versions.version_key`), so a
rejection is remembered and is the answer to whoever asks again.

The release is the one the index's owner of the name offers
(:func:`tilsit.index.owners.resolve_owner`, followed through virtual members):
a review is of those files, with their hashes and upload-times, not of a name.
A hosted owner's files need no review, so reviewing them is refused.

Each step checks everything before it writes, then writes the row, an audit event
and one journal row of the virtual index naming the release, so the renderer
re-renders that release's pages only. What a decision shows is for the policy
(``curated``) to say when the pages render; :func:`review_states` is what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.rights import REVIEW, may_read, may_review
from tilsit.db.models import (
    IndexPermissionRow,
    IndexRow,
    ProjectRow,
    ReleaseRow,
    ReviewRow,
    UserRow,
)
from tilsit.index import errors, owners
from tilsit.index.journal import record
from tilsit.spec.names import normalize, validate_name, validate_version
from tilsit.spec.versions import version_key

__all__ = [
    "ACTION",
    "MAX_REASON",
    "STATES",
    "AlreadyDecided",
    "InvalidReview",
    "Offer",
    "Requested",
    "ReviewRejected",
    "approve",
    "list_reviews",
    "offer",
    "parse_release",
    "queue_for",
    "readable_virtual_indexes",
    "reject",
    "request_review",
    "review_states",
    "reviewable_indexes",
]

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATES = (PENDING, APPROVED, REJECTED)
# The journal action of a review step (its detail names the release).
ACTION = "review"
# A reason is shown to whoever asks again: a paragraph, not a document.
MAX_REASON = 2000
# Virtual indexes within virtual indexes: as deep as the renderer follows them.
_MAX_DEPTH = 16


class InvalidReview(errors.IndexError_):
    """A review that cannot be: not a virtual index, a hosted release, no reason, bad text."""

    status = 400


class ReviewRejected(errors.IndexError_):
    """The release was rejected: the answer to asking again, with the reviewer's reason."""

    status = 409

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AlreadyDecided(errors.IndexError_):
    """The release is already approved (or already rejected): nothing to change."""

    status = 409


@dataclass(frozen=True)
class Requested:
    review: ReviewRow
    created: bool  # False: a request was already pending, and is left as it was


def parse_release(text: str) -> tuple[str, str]:
    """``PROJECT==VERSION`` as ``(project, version)``."""
    project, sep, version = text.partition("==")
    if not sep or not project.strip() or not version.strip():
        raise InvalidReview(f"{text!r} is not PROJECT==VERSION (such as 'requests==2.32.3')")
    return project.strip(), version.strip()


def _who(by: UserRow | None, actor: str) -> str:
    return by.name if by is not None else (actor or "tilsit")


def _require_virtual(index: IndexRow) -> None:
    if index.kind != "virtual":
        raise InvalidReview(
            f"Index {index.name!r} is a {index.kind} index: reviews are for virtual indexes"
            " (a curated virtual index shows its non-hosted releases once approved)"
        )


def _checked_name(project: str, version: str) -> tuple[str, str]:
    """The normalised name and the version, checked as an upload checks them."""
    try:
        validate_name(project)
        validate_version(version)
    except ValueError as exc:
        raise InvalidReview(str(exc)) from exc
    if any(c.isspace() for c in version):
        raise InvalidReview(f"{version!r} is not a version")
    return normalize(project), version


@dataclass(frozen=True)
class Offer:
    """What a virtual index shows of a name: its owner's project, with the index that
    holds the files (a virtual owner is followed down to it)."""

    member: IndexRow  # the hosted, mirror or proxy index whose files they are
    project: ProjectRow

    def releases(self, session: Session) -> list[ReleaseRow]:
        """The project's live releases, newest first."""
        return list(
            session.scalars(
                select(ReleaseRow)
                .where(ReleaseRow.project_id == self.project.id, ReleaseRow.deleted_at.is_(None))
                .order_by(ReleaseRow.created_at.desc(), ReleaseRow.id.desc())
            )
        )


def offer(session: Session, virtual: IndexRow, name: str) -> Offer:
    """The project that ``virtual`` shows as normalised ``name``: its owner's."""
    index = virtual
    for _ in range(_MAX_DEPTH):
        owner = owners.resolve_owner(session, index, name)
        if owner.member is None or not owner.live:
            why = {"reserved": " (the name is reserved)", "confusable": " (a look-alike name)"}
            raise errors.UnknownProject(
                f"There is no project {name!r} in index {virtual.name!r}{why.get(owner.rule, '')}"
            )
        if owner.member.kind != "virtual":
            member = owner.member
            break
        index = owner.member
    else:
        raise errors.UnknownProject(f"There is no project {name!r} in index {virtual.name!r}")
    project = session.scalars(
        select(ProjectRow).where(
            ProjectRow.index_id == member.id,
            ProjectRow.normalized == name,
            ProjectRow.deleted_at.is_(None),
        )
    ).one_or_none()
    if project is None:
        raise errors.UnknownProject(f"There is no project {name!r} in index {virtual.name!r}")
    return Offer(member, project)


@dataclass(frozen=True)
class _Offered:
    member: IndexRow
    release: ReleaseRow


def _offered(session: Session, virtual: IndexRow, name: str, version: str) -> _Offered:
    """The release of ``name`` that ``virtual`` would show, if it needs a review."""
    found = offer(session, virtual, name)
    member, project = found.member, found.project
    release = session.scalars(
        select(ReleaseRow).where(
            ReleaseRow.project_id == project.id,
            ReleaseRow.version_key == version_key(version),
            ReleaseRow.deleted_at.is_(None),
        )
    ).one_or_none()
    if release is None:
        raise errors.UnknownRelease(
            f"Project {project.name!r} has no release {version!r} in index {virtual.name!r}"
            f" (its files come from index {member.name!r})"
        )
    if member.kind == "hosted":
        raise InvalidReview(
            f"{project.name} {release.version} comes from hosted index {member.name!r}:"
            f" {virtual.name!r} shows hosted releases without a review"
        )
    return _Offered(member, release)


def _existing(session: Session, virtual: IndexRow, name: str, version: str) -> ReviewRow | None:
    return session.scalars(
        select(ReviewRow).where(
            ReviewRow.index_id == virtual.id,
            ReviewRow.project == name,
            ReviewRow.version_key == version_key(version),
        )
    ).one_or_none()


def _journal(session: Session, virtual: IndexRow, name: str, version: str, who: str) -> None:
    """One journal row of ``virtual`` for the release, so its pages re-render.

    The row names the virtual index's own project (made now if the name only just
    reached a member): a journal row without a project re-renders nothing of it.
    If the owner moved meanwhile, the row names no release: the whole project renders.
    """
    refreshed = owners.refresh_owner(session, virtual, name)
    if refreshed is None:  # not after _offered found the release: a member has the name
        raise errors.UnknownProject(f"There is no project {name!r} in index {virtual.name!r}")
    detail = {} if refreshed.changed else {"release": version}
    record(session, virtual, ACTION, project=refreshed.project, actor=who, detail=detail)


def _shown(row: ReviewRow) -> str:
    return f"{row.project} {row.version}"


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d}" if at is not None else "?"


def request_review(
    session: Session,
    index: IndexRow,
    project: str,
    version: str,
    *,
    by: UserRow | None = None,
    actor: str = "",
    ip: str = "",
) -> Requested:
    """Ask the reviewers of virtual ``index`` to let ``project`` ``version`` in.

    ``by`` must be able to read the index (the operator, ``by`` None, always can). A
    pending request is left as it is; a decided one is the answer: a rejection with its
    reason (:class:`ReviewRejected`), an approval (:class:`AlreadyDecided`).
    """
    if by is not None and not may_read(session, by, index):
        # The words of a missing index: a private index's existence is not told.
        raise errors.UnknownIndex(f"There is no index named {index.name!r}")
    _require_virtual(index)
    name, version = _checked_name(project, version)
    offered = _offered(session, index, name, version)
    existing = _existing(session, index, name, version)
    if existing is not None:
        if existing.state == REJECTED:
            raise ReviewRejected(
                f"{_shown(existing)} was rejected for {index.name!r} by {existing.decided_by}"
                f" on {_when(existing.decided_at)}: {existing.reason}",
                existing.reason,
            )
        if existing.state == APPROVED:
            raise AlreadyDecided(
                f"{_shown(existing)} is already approved for {index.name!r}"
                f" (by {existing.decided_by} on {_when(existing.decided_at)})"
            )
        return Requested(existing, False)
    who = _who(by, actor)
    row = ReviewRow(
        index_id=index.id,
        project=name,
        version=offered.release.version,
        version_key=offered.release.version_key,
        state=PENDING,
        requested_by=who,
        requested_at=datetime.now(UTC),
        reason="",
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        "review.requested",
        actor=by,
        actor_name=who,
        ip=ip,
        index_id=index.id,
        project=name,
        detail={"version": row.version, "member": offered.member.name},
    )
    _journal(session, index, name, row.version, who)
    return Requested(row, True)


def _decide(
    session: Session,
    index: IndexRow,
    project: str,
    version: str,
    state: str,
    reason: str,
    by: UserRow | None,
    actor: str,
    ip: str,
) -> ReviewRow:
    if by is not None and not may_review(session, by, index):
        if not may_read(session, by, index):
            raise errors.UnknownIndex(f"There is no index named {index.name!r}")
        raise errors.Forbidden(
            f"User {by.name!r} may not review releases of {index.name!r}: an administrator"
            f" grants it with `tilsit index grant {index.name} {by.name} {REVIEW}`"
        )
    _require_virtual(index)
    name, version = _checked_name(project, version)
    reason = reason.strip()
    if state == REJECTED and not reason:
        raise InvalidReview("A rejection needs a reason: it is shown to whoever asks again")
    if len(reason) > MAX_REASON:
        raise InvalidReview(f"The reason is {len(reason)} characters long: at most {MAX_REASON}")
    offered = _offered(session, index, name, version)
    row = _existing(session, index, name, version)
    if row is not None and row.state == state:
        raise AlreadyDecided(
            f"{_shown(row)} is already {state} for {index.name!r}"
            f" (by {row.decided_by} on {_when(row.decided_at)})"
        )
    who = _who(by, actor)
    before = row.state if row is not None else None
    if row is None:
        # A reviewer may decide without a request (curating ahead of the developers).
        row = ReviewRow(
            index_id=index.id,
            project=name,
            version=offered.release.version,
            version_key=offered.release.version_key,
            requested_by=who,
            requested_at=datetime.now(UTC),
        )
        session.add(row)
    row.state, row.reason = state, reason
    row.decided_by, row.decided_at = who, datetime.now(UTC)
    session.flush()
    record_event(
        session,
        f"review.{state}",
        actor=by,
        actor_name=who,
        ip=ip,
        index_id=index.id,
        project=name,
        detail={
            "version": row.version,
            "member": offered.member.name,
            "reason": reason,
            "before": before,
            "requested_by": row.requested_by,
        },
    )
    _journal(session, index, name, row.version, who)
    return row


def approve(
    session: Session,
    index: IndexRow,
    project: str,
    version: str,
    *,
    reason: str = "",
    by: UserRow | None = None,
    actor: str = "",
    ip: str = "",
) -> ReviewRow:
    """Let ``project`` ``version`` (its owner's files, as they are) into virtual ``index``."""
    return _decide(session, index, project, version, APPROVED, reason, by, actor, ip)


def reject(
    session: Session,
    index: IndexRow,
    project: str,
    version: str,
    *,
    reason: str,
    by: UserRow | None = None,
    actor: str = "",
    ip: str = "",
) -> ReviewRow:
    """Keep ``project`` ``version`` out of virtual ``index``, for ``reason`` (required)."""
    return _decide(session, index, project, version, REJECTED, reason, by, actor, ip)


def list_reviews(session: Session, index: IndexRow, state: str | None = None) -> list[ReviewRow]:
    """The reviews of ``index`` (in one ``state``), oldest request first."""
    _require_virtual(index)
    if state is not None and state not in STATES:
        raise InvalidReview(f"Unknown review state {state!r}: use one of {', '.join(STATES)}")
    query = select(ReviewRow).where(ReviewRow.index_id == index.id)
    if state is not None:
        query = query.where(ReviewRow.state == state)
    return list(session.scalars(query.order_by(ReviewRow.requested_at, ReviewRow.id)))


def reviewable_indexes(session: Session, user: UserRow) -> list[IndexRow]:
    """The virtual indexes ``user`` reviews: every one for an admin, else those granted."""
    if not user.is_active:
        return []
    query = select(IndexRow).where(IndexRow.kind == "virtual")
    if not user.is_admin:
        query = query.join(
            IndexPermissionRow,
            (IndexPermissionRow.index_id == IndexRow.id)
            & (IndexPermissionRow.user_id == user.id)
            & (IndexPermissionRow.permission == REVIEW),
        )
    return list(session.scalars(query.order_by(IndexRow.name)))


def readable_virtual_indexes(session: Session, user: UserRow) -> list[IndexRow]:
    """The virtual indexes ``user`` may read, so may ask reviews of (there are few)."""
    return [
        index
        for index in session.scalars(
            select(IndexRow).where(IndexRow.kind == "virtual").order_by(IndexRow.name)
        )
        if may_read(session, user, index)
    ]


def queue_for(session: Session, user: UserRow) -> list[tuple[IndexRow, ReviewRow]]:
    """The pending requests ``user`` may decide, oldest first."""
    indexes = {index.id: index for index in reviewable_indexes(session, user)}
    if not indexes:
        return []
    rows = session.scalars(
        select(ReviewRow)
        .where(ReviewRow.index_id.in_(indexes), ReviewRow.state == PENDING)
        .order_by(ReviewRow.requested_at, ReviewRow.id)
    )
    return [(indexes[row.index_id], row) for row in rows]


def review_states(session: Session, index: IndexRow, project: str) -> dict[str, tuple[str, str]]:
    """``{version_key: (state, reason)}`` of normalised ``project``'s reviews in ``index``:
    what the ``curated`` policy reads when the project's pages render."""
    return {
        key: (state, reason)
        for key, state, reason in session.execute(
            select(ReviewRow.version_key, ReviewRow.state, ReviewRow.reason).where(
                ReviewRow.index_id == index.id, ReviewRow.project == project
            )
        )
    }
