"""API tokens: ``tilsit-`` + 43 url-safe characters (256 random bits).

Only the sha256 of a token is stored. The secret is shown once, at creation.
A token may be limited to one index and to a list of projects, and may expire.
A bulk token's uploads skip the upload rate limits (an administrator grants it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, TokenRow, UserRow

__all__ = [
    "PREFIX",
    "InvalidToken",
    "NewToken",
    "create_token",
    "credentials_from_header",
    "find_token",
    "parse_expiry",
]

PREFIX = "tilsit-"
_SHAPE = re.compile(r"^tilsit-[A-Za-z0-9_-]{43}$")


class InvalidToken(Exception):
    """A token that is malformed, unknown, revoked or expired."""


@dataclass(frozen=True)
class NewToken:
    secret: str
    row: TokenRow


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``90m`` from now, or an ISO 8601 date/time (UTC if no zone)."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)\s*([dhm])", text.strip())
    if match:
        amount, unit = int(match[1]), match[2]
        return (
            now
            + {
                "d": timedelta(days=amount),
                "h": timedelta(hours=amount),
                "m": timedelta(minutes=amount),
            }[unit]
        )
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"expiry {text!r} is neither a duration (30d, 12h, 90m) nor an ISO date"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_token(
    session: Session,
    user: UserRow,
    *,
    index: IndexRow | None = None,
    projects: list[str] | None = None,
    expires_at: datetime | None = None,
    description: str = "",
    bulk: bool = False,
) -> NewToken:
    secret = PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        user_id=user.id,
        token_hash=_hash(secret),
        display_prefix=secret[: len(PREFIX) + 6],
        description=description,
        index_id=index.id if index else None,
        projects=sorted(set(projects)) if projects else None,
        expires_at=expires_at,
        bulk=bulk,
    )
    session.add(row)
    session.flush()
    return NewToken(secret, row)


def find_token(
    session: Session, secret: str, now: datetime | None = None, *, check_live: bool = True
) -> TokenRow:
    """The live token for ``secret``, or :class:`InvalidToken` saying why not.

    With ``check_live=False`` a revoked or expired token is returned too (to
    record a refusal against its owner).
    """
    if not _SHAPE.match(secret):
        raise InvalidToken("the credential is not a tilsit API token (tilsit-…)")
    row = session.scalars(
        select(TokenRow).where(TokenRow.token_hash == _hash(secret))
    ).one_or_none()
    if row is None:
        raise InvalidToken("the API token is not known to this server")
    if not check_live:
        return row
    now = now or datetime.now(UTC)
    if row.revoked_at is not None:
        raise InvalidToken("the API token has been revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise InvalidToken("the API token has expired")
    return row


def credentials_from_header(authorization: str | None) -> str | None:
    """The token in ``Basic __token__:<tok>`` (any user name) or ``Bearer <tok>``."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep else None
    return None
