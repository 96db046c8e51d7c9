"""An administrator's changes to an account: disable, enable, grant or remove admin rights.

The web admin page and the CLI (``tilsit user disable|enable|admin``) both go
through :func:`change_account`, so either way the change does the same thing
and leaves the same audit event. Disabling ends the user's web sessions and
stops their tokens (an upload checks that the token's user is active) without
revoking them, so enabling the account again gives them back.

The server never loses its last active administrator this way: disabling one,
or removing their rights, is refused when no other active administrator is left.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.auth.audit import record_event
from tilsit.auth.sessions import end_user_sessions
from tilsit.db.models import UserRow

__all__ = ["ACCOUNT_ACTIONS", "LastAdministrator", "change_account"]

# action -> the audit event it records when it changes something.
ACCOUNT_ACTIONS: dict[str, str] = {
    "disable": "account.disabled",
    "enable": "account.enabled",
    "make-admin": "admin.granted",
    "remove-admin": "admin.revoked",
}


class LastAdministrator(ValueError):
    """The change would leave the server with no active administrator."""


def _other_active_admins(session: Session, user: UserRow) -> int:
    return (
        session.scalar(
            select(func.count(UserRow.id)).where(
                UserRow.is_admin.is_(True), UserRow.is_active.is_(True), UserRow.id != user.id
            )
        )
        or 0
    )


def change_account(
    session: Session,
    user: UserRow,
    action: str,
    *,
    actor: UserRow | None = None,
    actor_name: str | None = None,
    ip: str = "",
) -> bool:
    """Apply ``action`` (a key of :data:`ACCOUNT_ACTIONS`); False when nothing changed.

    Raises :class:`LastAdministrator` (changing nothing) rather than disable or
    demote the only active administrator.
    """
    if action not in ACCOUNT_ACTIONS:
        raise ValueError(f"unknown account action {action!r}")
    if (
        action in ("disable", "remove-admin")
        and user.is_admin
        and user.is_active
        and _other_active_admins(session, user) == 0
    ):
        raise LastAdministrator(
            f"{user.name!r} is the only active administrator: make another user an"
            " administrator first (tilsit user admin NAME --on)"
        )
    if action == "disable" and user.is_active:
        user.is_active = False
        end_user_sessions(session, user)
    elif action == "enable" and not user.is_active:
        user.is_active = True
    elif action == "make-admin" and not user.is_admin:
        user.is_admin = True
    elif action == "remove-admin" and user.is_admin:
        user.is_admin = False
    else:
        return False
    record_event(
        session, ACCOUNT_ACTIONS[action], actor=actor, actor_name=actor_name, ip=ip, user=user
    )
    return True
