"""Browser sessions: a random secret in an HttpOnly cookie, its sha256 as the row key.

An anonymous visitor has no row: the cookie holds a random value whose
:func:`anonymous_csrf_token` protects the login and sign-up forms, so browsing
writes nothing. A row is made at a correct password: ``partial`` while a second
factor is owed, ``full`` once logged in. Every change of who the session is for
issues a new secret (no session fixation). Expired rows are deleted by
:func:`sweep_sessions`, a bounded batch at each login.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tilsit.db.models import SessionRow, UserRow, utcnow

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_LIFETIME",
    "FULL",
    "PARTIAL",
    "NewSession",
    "anonymous_csrf_token",
    "anonymous_value",
    "end_session",
    "end_user_sessions",
    "load_session",
    "needs_touch",
    "new_anonymous_value",
    "new_session",
    "promote_session",
    "sweep_sessions",
]

ANONYMOUS = "anonymous"
PARTIAL = "partial"  # password checked, second factor owed
FULL = "full"

# An anonymous visitor's cookie only backs the CSRF token of the forms it was shown.
ANONYMOUS_LIFETIME = timedelta(hours=2)
_ANONYMOUS_VALUE = re.compile(r"[A-Za-z0-9_-]{40,100}")
# Expired rows deleted per sweep: a login never waits on a large backlog; each
# login takes another batch, so the table still shrinks faster than it grows.
SWEEP_BATCH = 500
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
    lifetime: timedelta = ANONYMOUS_LIFETIME,
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


def new_anonymous_value() -> str:
    """A fresh cookie value for an anonymous visitor (no row is made for it)."""
    return secrets.token_urlsafe(32)


def anonymous_value(cookie: str | None) -> str | None:
    """``cookie`` if it can serve as an anonymous visitor's value, else None."""
    if cookie and _ANONYMOUS_VALUE.fullmatch(cookie):
        return cookie
    return None


def anonymous_csrf_token(value: str) -> str:
    """The CSRF token of forms shown to the anonymous visitor whose cookie is ``value``.

    One-way, so a page's token does not reveal the HttpOnly cookie; keyed by
    the cookie value itself, which only that visitor's browser holds.
    """
    return hmac.new(value.encode(), b"tilsit anonymous csrf", hashlib.sha256).hexdigest()


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
    """Replace ``old`` with a fresh session for ``user`` in ``state`` (a new secret).

    Every login passes here, so it also sweeps a batch of expired sessions.
    """
    if old is not None:
        session.delete(old)
    sweep_sessions(session)
    return new_session(session, ip=ip, user=user, state=state, lifetime=lifetime, data=keep)


def end_session(session: Session, row: SessionRow) -> None:
    session.delete(row)


def end_user_sessions(session: Session, user: UserRow, *, except_id: str | None = None) -> None:
    """Log a user out everywhere (after a password reset or a disabled account)."""
    query = delete(SessionRow).where(SessionRow.user_id == user.id)
    if except_id is not None:
        query = query.where(SessionRow.id != except_id)
    session.execute(query)


def sweep_sessions(
    session: Session, now: datetime | None = None, *, limit: int = SWEEP_BATCH
) -> int:
    """Delete up to ``limit`` expired sessions; returns how many went."""
    expired = (
        select(SessionRow.id)
        .where(SessionRow.expires_at <= (now or utcnow()))
        .order_by(SessionRow.expires_at)
        .limit(limit)
    )
    ids = list(session.scalars(expired))
    if not ids:
        return 0
    session.execute(delete(SessionRow).where(SessionRow.id.in_(ids)))
    return len(ids)
