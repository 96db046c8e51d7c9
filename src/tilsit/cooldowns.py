"""The loop that lets files out of virtual indexes' cool-downs while ``tilsit serve`` runs.

Every ``tick`` seconds it journals the releases that came of age
(:func:`tilsit.index.maturing.journal_matured`) and renders them, in a worker
thread; a file therefore appears at most a tick after it matured, with no
request involved. Several worker processes may run it: each tick's write takes
the database's write lock, and the mark it advances makes a second worker's
tick find nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import anyio.to_thread

from tilsit.index.maturing import journal_matured
from tilsit.instance import Instance
from tilsit.trust.settings import utcnow

__all__ = ["mature_cooldowns", "mature_once"]

log = logging.getLogger("tilsit.render")


def mature_once(instance: Instance, now: datetime | None = None) -> int:
    """One tick: journal what matured and render it; how many journal rows."""
    with instance.db.write() as session:
        journaled = journal_matured(session, now or utcnow())
    if journaled:
        instance.renderer.catch_up()
    return journaled


async def mature_cooldowns(
    instance: Instance,
    stop: asyncio.Event,
    *,
    tick: float,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    while not stop.is_set():
        try:
            await anyio.to_thread.run_sync(mature_once, instance, clock())
        except Exception:  # the next tick tries again from the same mark
            log.exception("letting files out of cool-downs failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
