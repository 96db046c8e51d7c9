"""Scheduled syncs inside ``tilsit serve``: each mirror with ``options["interval"]``.

A mirror is due when ``interval`` seconds have passed since its last run ended
(success or failure, as recorded in the database), so several server
processes on one data directory or database share one schedule: whichever
wakes first syncs, the others find the run recorded (or the index's sync lock
held) and wait for the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tilsit.db.cluster import cluster_lock
from tilsit.db.models import IndexRow, UpstreamStateRow
from tilsit.instance import Instance
from tilsit.upstream.sync import SyncBusy, SyncReport, sync_mirror

__all__ = ["due_mirrors", "run_due", "run_schedule"]

log = logging.getLogger("tilsit.mirror")


def due_mirrors(instance: Instance, now: datetime | None = None) -> list[str]:
    """Names of the mirrors with an interval whose last run ended that long ago."""
    now = now or datetime.now(UTC)
    due = []
    with instance.db.read() as session:
        for index, state in session.execute(
            select(IndexRow, UpstreamStateRow)
            .outerjoin(UpstreamStateRow, UpstreamStateRow.index_id == IndexRow.id)
            .where(IndexRow.kind == "mirror")
            .order_by(IndexRow.name)
        ):
            interval = index.options.get("interval")
            if not isinstance(interval, int | float) or interval <= 0:
                continue
            times = (state.last_success, state.last_error_at) if state is not None else ()
            ended = [t for t in times if t is not None]
            if not ended or now - max(ended) >= timedelta(seconds=interval):
                due.append(index.name)
    return due


async def run_due(instance: Instance, *, workers: int = 8) -> list[SyncReport]:
    """Sync every due mirror once, one after the other; log each summary.

    Hosts sharing a PostgreSQL database run this loop each: a mirror's turn is taken
    under a cluster lock and its due-ness read again under it, so a host that listed
    it a moment before another host's run ended does not sync it a second time.
    """
    reports = []
    for name in await asyncio.to_thread(due_mirrors, instance):
        try:
            with cluster_lock(instance.db, f"mirror-schedule:{name}") as mine:
                if not mine or name not in await asyncio.to_thread(due_mirrors, instance):
                    continue  # another host has this turn, or had it
                report = await sync_mirror(instance, name, workers=workers)
        except SyncBusy:
            continue  # another process is syncing it right now
        except Exception:  # a broken index must not stop the others or the server
            log.exception("scheduled sync of mirror %r failed", name)
            continue
        (log.info if report.ok else log.warning)("%s", report.summary())
        reports.append(report)
    return reports


async def run_schedule(instance: Instance, stop: asyncio.Event, *, tick: float = 30.0) -> None:
    """Run :func:`run_due` every ``tick`` seconds until ``stop`` is set (a server task)."""
    while not stop.is_set():
        await run_due(instance)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)
