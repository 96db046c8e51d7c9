"""Storing a virtual index's policy and its cool-down exemptions.

Each change is audited in the same transaction and appends one ``policy`` row to
the journal, so the renderer re-renders what the change can alter:

- a new policy: ``project`` None, ``detail {"version": n}``: every page of the index;
- an exemption added or removed: ``project`` the index's own project of that name,
  ``detail {"exemption": id, "project": name}``; when the index has no project of
  that name yet, ``project`` is None and ``detail["project"]`` names it (there is
  nothing to re-render, and a renderer must not read it as a whole-index change).

What a policy decides is :mod:`tilsit.index.policy`; its document,
:mod:`tilsit.index.policy_doc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.db.models import IndexRow, PolicyExemptionRow, PolicyRow, ProjectRow, UserRow
from tilsit.index import errors
from tilsit.index.journal import record
from tilsit.index.policy import ExemptionFacts, format_time
from tilsit.index.policy_doc import PolicyDoc
from tilsit.spec.names import InvalidProjectName, InvalidVersionText, normalize, validate_name
from tilsit.spec.names import validate_version as check_version_text

__all__ = [
    "InvalidExemption",
    "NotAVirtualIndex",
    "StoredPolicy",
    "UnknownExemption",
    "active_exemptions",
    "add_exemption",
    "check_virtual",
    "get_policy",
    "list_exemptions",
    "remove_exemption",
    "set_policy",
    "stored_policy",
]

# How long an exemption may last: it lets young files through, so it is meant to be short.
MAX_EXEMPTION_DAYS = 366


class NotAVirtualIndex(errors.IndexError_):
    """A policy asked of an index that is not virtual."""

    status = 400


class InvalidExemption(errors.IndexError_):
    """An exemption for a bad name or version, with a past or too distant expiry, or no reason."""

    status = 400


class UnknownExemption(errors.IndexError_):
    status = 404


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A policy as stored: the document, its version (0: never set) and who set it when."""

    policy: PolicyDoc
    version: int
    source: str
    changed_by: str
    changed_at: datetime | None


Actor = UserRow | str


def _actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.name


def _audit(
    session: Session,
    action: str,
    index: IndexRow,
    actor: Actor,
    project: str | None,
    **detail: object,
) -> None:
    record_event(
        session,
        action,
        actor=actor if isinstance(actor, UserRow) else None,
        actor_name=actor if isinstance(actor, str) else None,
        index_id=index.id,
        project=project,
        detail={"index": index.name, **detail},
    )


def check_virtual(index: IndexRow) -> None:
    """Raise :class:`NotAVirtualIndex` unless ``index`` is a virtual index."""
    if index.kind != "virtual":
        raise NotAVirtualIndex(
            f"Index {index.name!r} is a {index.kind} index: policies are for virtual indexes"
        )


def stored_policy(session: Session, index: IndexRow) -> StoredPolicy:
    """The policy of virtual ``index``; the empty policy (version 0) if none was set."""
    check_virtual(index)
    row = session.get(PolicyRow, index.id)
    if row is None:
        return StoredPolicy(PolicyDoc(), 0, "", "", None)
    policy = PolicyDoc.from_json(row.document, f"stored policy of index {index.name!r}")
    return StoredPolicy(policy, row.version, row.source, row.changed_by, row.changed_at)


def get_policy(session: Session, index: IndexRow) -> PolicyDoc:
    """The policy of virtual ``index`` (the empty policy, which hides nothing, if none)."""
    return stored_policy(session, index).policy


def set_policy(
    session: Session, index: IndexRow, doc: PolicyDoc, source: str, actor: Actor
) -> int | None:
    """Replace the policy of virtual ``index`` by ``doc``; ``source`` is the text the
    operator gave. Returns the new version, or None when ``doc`` is the policy
    already in force (nothing is written then)."""
    check_virtual(index)
    document = doc.to_json()
    row = session.get(PolicyRow, index.id)
    if row is not None and row.document == document:
        return None
    now = datetime.now(UTC)
    if row is None:
        row = PolicyRow(index_id=index.id, version=0)
        session.add(row)
    row.version = (row.version or 0) + 1
    row.document = document
    row.source = source
    row.changed_by = _actor_name(actor)
    row.changed_at = now
    _audit(session, "policy.changed", index, actor, None, version=row.version, policy=document)
    record(
        session,
        index,
        "policy",
        actor=_actor_name(actor),
        detail={"version": row.version},
    )
    return row.version


def _project_row(session: Session, index: IndexRow, name: str) -> ProjectRow | None:
    project = session.scalars(
        select(ProjectRow).where(ProjectRow.index_id == index.id, ProjectRow.normalized == name)
    ).one_or_none()
    return project if project is not None and project.deleted_at is None else None


def _journal_exemption(
    session: Session, index: IndexRow, name: str, exemption: PolicyExemptionRow, actor: Actor
) -> None:
    record(
        session,
        index,
        "policy",
        project=_project_row(session, index, name),
        actor=_actor_name(actor),
        detail={"exemption": exemption.id, "project": name},
    )


def add_exemption(
    session: Session,
    index: IndexRow,
    project: str,
    version: str | None,
    expires_at: datetime,
    reason: str,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> PolicyExemptionRow:
    """Let ``project`` (every version, or ``version``) of virtual ``index`` through its
    cool-down until ``expires_at``."""
    check_virtual(index)
    now = now or datetime.now(UTC)
    if version is not None and not version.strip():
        raise InvalidExemption("The version is empty: give PROJECT or PROJECT==VERSION")
    try:
        name = normalize(validate_name(project))
        if version is not None:
            check_version_text(version)
    except (InvalidProjectName, InvalidVersionText) as exc:
        raise InvalidExemption(str(exc)) from None
    expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
    if expires_at <= now:
        raise InvalidExemption(
            f"The exemption would expire at {format_time(expires_at)}, which is not in the"
            " future: give a later time"
        )
    if (expires_at - now).days >= MAX_EXEMPTION_DAYS:
        raise InvalidExemption(
            f"The exemption would last until {format_time(expires_at)}: at most"
            f" {MAX_EXEMPTION_DAYS} days; renew it when it expires"
        )
    if not reason.strip():
        raise InvalidExemption("An exemption needs a reason: say why it is let through early")
    row = PolicyExemptionRow(
        index_id=index.id,
        project=name,
        version=version,
        expires_at=expires_at,
        reason=reason.strip(),
        created_by=_actor_name(actor),
        created_at=now,
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        "policy.exemption.added",
        index,
        actor,
        name,
        id=row.id,
        version=version,
        expires_at=format_time(expires_at),
        reason=row.reason,
    )
    _journal_exemption(session, index, name, row, actor)
    return row


def remove_exemption(
    session: Session, index: IndexRow, exemption_id: int, actor: Actor
) -> PolicyExemptionRow:
    """End exemption ``exemption_id`` of virtual ``index`` now (it stays, marked removed)."""
    check_virtual(index)
    row = session.get(PolicyExemptionRow, exemption_id)
    if row is None or row.index_id != index.id or row.removed_at is not None:
        raise UnknownExemption(
            f"Index {index.name!r} has no exemption {exemption_id}"
            f" (tilsit policy show {index.name} lists them)"
        )
    row.removed_at = datetime.now(UTC)
    _audit(
        session,
        "policy.exemption.removed",
        index,
        actor,
        row.project,
        id=row.id,
        version=row.version,
    )
    _journal_exemption(session, index, row.project, row, actor)
    return row


def _facts(row: PolicyExemptionRow) -> ExemptionFacts:
    return ExemptionFacts(row.project, row.version, row.expires_at, row.reason, row.id)


def active_exemptions(
    session: Session, index: IndexRow, project: str, now: datetime
) -> list[ExemptionFacts]:
    """The exemptions of ``project`` in ``index`` that have not expired nor been removed."""
    rows = session.scalars(
        select(PolicyExemptionRow)
        .where(
            PolicyExemptionRow.index_id == index.id,
            PolicyExemptionRow.project == normalize(project),
            PolicyExemptionRow.removed_at.is_(None),
            PolicyExemptionRow.expires_at > now,
        )
        .order_by(PolicyExemptionRow.id)
    )
    return [_facts(row) for row in rows]


def list_exemptions(session: Session, index: IndexRow, now: datetime) -> list[PolicyExemptionRow]:
    """Every exemption of ``index`` still in force, oldest first."""
    check_virtual(index)
    return list(
        session.scalars(
            select(PolicyExemptionRow)
            .where(
                PolicyExemptionRow.index_id == index.id,
                PolicyExemptionRow.removed_at.is_(None),
                PolicyExemptionRow.expires_at > now,
            )
            .order_by(PolicyExemptionRow.id)
        )
    )
