"""The audit log: who did what to which account or project, from where, and when.

Events are rows written in the same transaction as the change they describe,
so a change is never committed without its event (and a refused attempt, such
as a failed login, is recorded in a transaction of its own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tilsit.db.models import AuditEventRow, UserRow

__all__ = ["ACTIONS", "record_event"]

# Every action the server records, so the UI and the CLI export can describe
# them and a typo in a caller fails loudly instead of writing an unknown event.
ACTIONS: dict[str, str] = {
    "account.created": "account created",
    "account.disabled": "account disabled",
    "account.enabled": "account enabled",
    "admin.granted": "made an administrator",
    "admin.revoked": "administrator rights removed",
    "login.ok": "logged in",
    "login.failed": "failed login",
    "logout": "logged out",
    "email.added": "email address added",
    "email.verified": "email address verified",
    "password.changed": "password changed",
    "password.reset": "password reset by email",
    "2fa.totp.added": "authenticator app added",
    "2fa.totp.removed": "authenticator app removed",
    "2fa.webauthn.added": "security key added",
    "2fa.webauthn.removed": "security key removed",
    "2fa.used": "second factor used",
    "2fa.failed": "second factor refused",
    "recovery.generated": "recovery codes generated",
    "recovery.used": "recovery code used",
    "token.created": "API token created",
    "token.used": "API token used",
    "token.refused": "API token refused",
    "token.revoked": "API token revoked",
    "publisher.added": "trusted publisher added",
    "publisher.removed": "trusted publisher removed",
    "publisher.used": "trusted publisher exchanged a CI token",
    "publisher.refused": "trusted publishing refused",
    "project.created": "project created",
    "upload": "file uploaded",
    "yank": "yanked",
    "unyank": "un-yanked",
    "delete": "deleted",
    "role.invited": "role invitation sent",
    "role.accepted": "role invitation accepted",
    "role.declined": "role invitation declined",
    "role.revoked": "role invitation revoked",
    "role.added": "role added",
    "role.changed": "role changed",
    "role.removed": "role removed",
    "index.permission.granted": "index permission granted",
    "index.permission.removed": "index permission removed",
    "index.private": "index visibility changed",
    "index.changed": "index upstream settings changed",
    "index.deleted": "index deleted",
    "virtual.members.changed": "virtual index members changed",
    "virtual.private_member.exposed": "private index exposed through a public virtual index",
    "virtual.route.set": "virtual index route set",
    "virtual.route.removed": "virtual index route removed",
    "reservation.added": "project name reserved",
    "reservation.removed": "project name reservation removed",
    "review.requested": "release review requested",
    "review.approved": "release approved by review",
    "review.rejected": "release rejected by review",
    "switch.changed": "admin switch changed",
    "policy.changed": "virtual index policy changed",
    "policy.exemption.added": "cool-down exemption added",
    "policy.exemption.removed": "cool-down exemption removed",
    "vuln.imported": "vulnerability data imported",
}


def record_event(
    session: Session,
    action: str,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
    user: UserRow | int | None = None,
    index_id: int | None = None,
    project: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEventRow:
    """Add one event to ``session`` (committed with the caller's transaction).

    ``actor`` is who acted; ``user`` is the account the event is about (for
    account events, usually the actor). ``actor_name`` names an actor that is
    not a user: a trusted publisher, the CLI, an anonymous caller.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user_id = user.id if isinstance(user, UserRow) else user
    row = AuditEventRow(
        at=at or datetime.now(UTC),
        action=action,
        actor_id=actor.id if actor is not None else None,
        actor=actor_name if actor_name is not None else (actor.name if actor else ""),
        ip=ip[:64],
        user_id=user_id,
        index_id=index_id,
        project=project,
        detail=detail or {},
    )
    session.add(row)
    return row
