"""When a mirror counts as stale, and how far behind it is: what the browsing pages show.

The facts are those ``mirror-status.json`` publishes (:mod:`tilsit.upstream.status`):
the upstream's serial at the last run, the serial whose projects are all in place,
the last success and the last error. Staleness is judged from the last success only,
so one failed run of a mirror that syncs often does not raise the alarm, and a
mirror that has never synced (or stopped succeeding) does:

- never synced successfully: stale;
- last success older than the index's ``stale_after`` option (seconds), else twice
  its sync ``interval`` (the schedule has then missed a whole turn), else
  :data:`DEFAULT_STALE_AFTER`: stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tilsit.db.models import IndexRow, UpstreamStateRow

__all__ = ["DEFAULT_STALE_AFTER", "Freshness", "freshness", "human_span", "stale_after"]

# A mirror synced by cron or by hand, without an interval the server knows of.
DEFAULT_STALE_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Freshness:
    upstream_serial: int | None
    synced_serial: int | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    stale_after: timedelta
    # Serials the mirror is behind its upstream (None when either is unknown).
    serial_lag: int | None
    # Time since the last success (None when it never succeeded).
    age: timedelta | None
    stale: bool
    reason: str


def stale_after(index: IndexRow) -> timedelta:
    """How old a mirror's last success may be before the mirror counts as stale."""
    explicit = index.options.get("stale_after")
    if isinstance(explicit, int | float) and not isinstance(explicit, bool) and explicit > 0:
        return timedelta(seconds=explicit)
    interval = index.options.get("interval")
    if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
        return timedelta(seconds=2 * interval)
    return DEFAULT_STALE_AFTER


def freshness(
    index: IndexRow, state: UpstreamStateRow | None, now: datetime | None = None
) -> Freshness:
    now = now or datetime.now(UTC)
    limit = stale_after(index)
    upstream = state.upstream_serial if state else None
    synced = state.synced_serial if state else None
    success = state.last_success if state else None
    lag = upstream - synced if upstream is not None and synced is not None else None
    age = now - success if success is not None else None
    if success is None:
        stale, reason = True, "It has never synced successfully."
    elif age is not None and age > limit:
        stale, reason = True, f"Its last successful sync is older than {human_span(limit)}."
    else:
        stale, reason = False, ""
    return Freshness(
        upstream_serial=upstream,
        synced_serial=synced,
        last_success=success,
        last_error=state.last_error if state else None,
        last_error_at=state.last_error_at if state else None,
        stale_after=limit,
        serial_lag=lag,
        age=age,
        stale=stale,
        reason=reason,
    )


def human_span(span: timedelta) -> str:
    """A duration in words, to its largest unit: "3 days", "5 hours", "12 min", "40 s"."""
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}" + ("" if count == 1 else "s")
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
