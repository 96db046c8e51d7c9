"""Rate limits: counted in the database, shared by every process, refused without a hit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tilsit.auth.ratelimit import RateLimited, consume, refund
from tilsit.config.limits import InvalidLimit, Limit, parse_limits
from tilsit.db.engine import Database
from tilsit.db.models import RateLimitHitRow
from tilsit.instance import Instance

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "limits"),
    [
        ("10/5m", (Limit(10, 300),)),
        ("5/5m, 20/1h", (Limit(5, 300), Limit(20, 3600))),
        ("3/s", (Limit(3, 1),)),
        ("100/1d", (Limit(100, 86400),)),
        ("", ()),
    ],
)
def test_parse_limits(text: str, limits: tuple[Limit, ...]) -> None:
    assert parse_limits(text) == limits


@pytest.mark.parametrize("text", ["10", "10 per 5m", "0/5m", "-1/5m", "10/5w", "ten/5m"])
def test_parse_limits_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidLimit, match="count/window"):
        parse_limits(text)


def _hits(instance: Instance, key: str) -> int:
    with instance.db.read() as session:
        return (
            session.scalar(
                select(func.count()).select_from(RateLimitHitRow).where(RateLimitHitRow.key == key)
            )
            or 0
        )


def test_the_attempt_over_the_limit_is_refused_and_not_counted(instance: Instance) -> None:
    limits = parse_limits("3/5m")
    for second in range(3):
        with instance.db.write() as session:
            consume(session, "login:user:alice", limits, T0 + timedelta(seconds=second))
    for second in range(3, 50):
        with pytest.raises(RateLimited) as refused, instance.db.write() as session:
            consume(session, "login:user:alice", limits, T0 + timedelta(seconds=second))
    # The oldest hit (T0) leaves the window at T0 + 300 s.
    assert refused.value.retry_after == 300 - 49
    assert "at most 3 per 5 minutes" in str(refused.value)
    assert _hits(instance, "login:user:alice") == 3
    # Other keys are not affected.
    with instance.db.write() as session:
        consume(session, "login:user:bob", limits, T0)
    # Once the window has moved on, attempts are allowed again and old hits are swept.
    with instance.db.write() as session:
        consume(session, "login:user:alice", limits, T0 + timedelta(seconds=301))
    # Hits at T0 and T0+1 s have left the window and were swept; T0+2 s and the new one stay.
    assert _hits(instance, "login:user:alice") == 2


def test_every_window_applies(instance: Instance) -> None:
    limits = parse_limits("5/5m,20/1h")
    now = T0
    accepted = 0
    for _ in range(200):  # one attempt a minute for 200 minutes, all failures
        try:
            with instance.db.write() as session:
                consume(session, "2fa:user:1", limits, now)
            accepted += 1
        except RateLimited:
            pass
        now += timedelta(minutes=1)
    # 20 per hour at most, so at most 20 * ceil(200/60) = 80; the 5-per-5-minutes
    # limit alone would have allowed all 200.
    assert 20 * 3 <= accepted <= 20 * 4


def test_refund_gives_the_hit_back(instance: Instance) -> None:
    limits = parse_limits("1/5m")
    with instance.db.write() as session:
        hit = consume(session, "k", limits, T0)
        refund(session, hit)
    with instance.db.write() as session:
        consume(session, "k", limits, T0)


def test_two_processes_share_one_limit(instance: Instance) -> None:
    """Two engines (as two workers would have) on one database see each other's hits."""
    other = Database(instance.settings.db_url)
    try:
        limits = parse_limits("4/5m")
        for i in range(4):
            db = instance.db if i % 2 else other
            with db.write() as session:
                consume(session, "login:ip:10.0.0.1", limits, T0 + timedelta(seconds=i))
        for db in (instance.db, other):
            with pytest.raises(RateLimited), db.write() as session:
                consume(session, "login:ip:10.0.0.1", limits, T0 + timedelta(seconds=10))
    finally:
        other.dispose()
