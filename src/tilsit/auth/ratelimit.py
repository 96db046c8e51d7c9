"""Rate limits shared by every server process: attempts are rows in the database.

A limit is "count per window" (``10/5m``); a key names what is limited
(``login:user:alice``, ``login:ip:10.0.0.1``). :func:`consume` counts the hits
in each window and, when one is full, refuses *without* recording a hit, so a
caller checks the limit before doing anything expensive (hashing a password).
The hit is committed before that expensive work starts, so concurrent attempts
cannot all slip in under the limit; a caller that only wants to count failures
gives the hit back with :func:`refund` once the attempt succeeded.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tilsit.config.limits import Limit
from tilsit.db.models import RateLimitHitRow

__all__ = [
    "RateLimited",
    "consume",
    "project_create_refusal",
    "refund",
]


class RateLimited(Exception):
    """Over a limit; ``retry_after`` is the number of seconds until an attempt is allowed."""

    def __init__(self, key: str, limit: Limit, retry_after: int) -> None:
        super().__init__(
            f"Too many attempts: at most {limit.count} per {limit.describe()};"
            f" try again in {retry_after} seconds"
        )
        self.key = key
        self.limit = limit
        self.retry_after = retry_after


def consume(
    session: Session, key: str, limits: tuple[Limit, ...], now: datetime | None = None
) -> int | None:
    """Record one hit on ``key``, or raise :class:`RateLimited` (recording nothing).

    Returns the hit's id (for :func:`refund`), or None when there are no limits.
    Call inside a write transaction, so that concurrent callers are serialised.
    """
    if not limits:
        return None
    now = now or datetime.now(UTC)
    longest = max(limit.seconds for limit in limits)
    # Old hits are swept here, per key, so the table stays the size of the windows.
    session.execute(
        delete(RateLimitHitRow).where(
            RateLimitHitRow.key == key, RateLimitHitRow.at <= now - timedelta(seconds=longest)
        )
    )
    for limit in limits:
        since = now - timedelta(seconds=limit.seconds)
        count, oldest = session.execute(
            select(func.count(), func.min(RateLimitHitRow.at)).where(
                RateLimitHitRow.key == key, RateLimitHitRow.at > since
            )
        ).one()
        if count >= limit.count:
            # The oldest hit within this window leaves it first.
            wait = (oldest + timedelta(seconds=limit.seconds) - now).total_seconds()
            raise RateLimited(key, limit, max(1, math.ceil(wait)))
    row = RateLimitHitRow(key=key, at=now)
    session.add(row)
    session.flush()
    return row.id


def refund(session: Session, hit_id: int | None) -> None:
    """Give back a hit (the attempt succeeded, and only failures are limited)."""
    if hit_id is not None:
        session.execute(delete(RateLimitHitRow).where(RateLimitHitRow.id == hit_id))


def project_create_refusal(exc: RateLimited) -> str:
    """The words for an upload refused by ``project_create_rate``: the setting, and the way out.

    Someone loading a dependency closure hits this limit first; the message says
    which setting it is and who is exempt, so they can ask for a bulk token.
    """
    # The HTTP reason phrase (what twine prints) keeps 200 characters: the way out first.
    return (
        f"Too many new projects: at most {exc.limit.count} per {exc.limit.describe()}"
        f" (setting project_create_rate); administrators and bulk tokens are exempt"
        f" (tilsit token create --bulk); try again in {exc.retry_after} s"
    )
