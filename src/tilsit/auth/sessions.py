"""Browser sessions: a random secret in an HttpOnly cookie, its sha256 as the row key.

A session starts anonymous (it still carries a CSRF token, so the login and
sign-up forms are protected too), becomes ``partial`` after a correct password
while a second factor is owed, and ``full`` once logged in. Every change of
who the session is for issues a new secret (no session fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tilsit.db.models import SessionRow, UserRow, utcnow

__all__ = [
    "ANONYMOUS",
    "FULL",
    "PARTIAL",
    "NewSession",
    "end_session",
    "end_user_sessions",
    "load_session",
    "needs_touch",
    "new_session",
    "promote_session",
    "sweep_sessions",
]

ANONYMOUS = "anonymous"
PARTIAL = "partial"  # password checked, second factor owed
FULL = "full"

# An anonymous session only carries a CSRF token for the forms it was shown.
_ANONYMOUS_LIFETIME = timedelta(hours=2)
# last_seen_at is refreshed at most this often, so browsing is not a write per page.
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class NewSession:
    secret: str
    row: SessionRow


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_session(
    session: Session,
    *,
    ip: str = "",
    user: UserRow | None = None,
    state: str = ANONYMOUS,
    lifetime: timedelta = _ANONYMOUS_LIFETIME,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> NewSession:
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    row = SessionRow(
        id=_key(secret),
        user_id=user.id if user else None,
        auth_state=state,
        csrf_token=secrets.token_urlsafe(32),
        data=data or {},
        ip=ip[:64],
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    return NewSession(secret, row)


def load_session(
    session: Session, secret: str | None, now: datetime | None = None
) -> SessionRow | None:
    """The live session for a cookie value, or None (unknown, expired, or malformed)."""
    if not secret or len(secret) > 100:
        return None
    row = session.get(SessionRow, _key(secret))
    now = now or utcnow()
    if row is None or row.expires_at <= now:
        return None
    if row.user_id is not None:
        user = session.get(UserRow, row.user_id)
        if user is None or not user.is_active:
            return None
    return row


def needs_touch(row: SessionRow, now: datetime | None = None) -> bool:
    return (now or utcnow()) - row.last_seen_at >= _TOUCH_EVERY


def promote_session(
    session: Session,
    old: SessionRow | None,
    user: UserRow,
    state: str,
    lifetime: timedelta,
    *,
    ip: str = "",
    keep: dict[str, Any] | None = None,
) -> NewSession:
    """Replace ``old`` with a fresh session for ``user`` in ``state`` (a new secret)."""
    if old is not None:
        session.delete(old)
    return new_session(session, ip=ip, user=user, state=state, lifetime=lifetime, data=keep)


def end_session(session: Session, row: SessionRow) -> None:
    session.delete(row)


def end_user_sessions(session: Session, user: UserRow, *, except_id: str | None = None) -> None:
    """Log a user out everywhere (after a password reset or a disabled account)."""
    query = delete(SessionRow).where(SessionRow.user_id == user.id)
    if except_id is not None:
        query = query.where(SessionRow.id != except_id)
    session.execute(query)


def sweep_sessions(session: Session, now: datetime | None = None) -> int:
    result = session.execute(delete(SessionRow).where(SessionRow.expires_at <= (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)
