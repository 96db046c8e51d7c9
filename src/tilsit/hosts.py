"""Following the other hosts: a server's tree catches up with writes made elsewhere.

Several ``tilsit serve`` processes on several hosts share one PostgreSQL database,
each with its own data directory and tree. A write renders on the host that made
it; every other host learns of it from the journal's notification
(:mod:`tilsit.db.notify`, sent at commit) and runs the same
:meth:`~tilsit.render.follow.Renderer.catch_up` that heals a crash, rendering the
rows past its own tree's ``.serial``. When no notification comes (a dropped
listening connection, a notification sent while this host was starting), the host
looks at the journal every ``journal_poll`` seconds anyway, so a change is served
everywhere within that bound. SQLite has one host: nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import func, select

from tilsit.db.cluster import JournalListener
from tilsit.db.models import JournalRow
from tilsit.instance import Instance

__all__ = ["behind", "follow_other_hosts"]

log = logging.getLogger("tilsit.hosts")


def behind(instance: Instance) -> bool:
    """Whether the shared journal holds rows this host's tree has not rendered."""
    with instance.db.read() as session:
        newest = session.scalar(select(func.max(JournalRow.serial))) or 0
    return int(newest) > instance.tree.serial()


async def follow_other_hosts(
    instance: Instance,
    stop: asyncio.Event,
    *,
    poll: float,
    after: Callable[[], object] = lambda: None,
) -> None:
    """Until ``stop``: wait for a journal notification (or ``poll`` seconds), then catch up.

    ``after`` runs after each wait, caught up or not: what other hosts change without
    a journal row (a mirror's status after a failed sync) is published so.
    The wait runs in a thread for at most ``poll`` seconds, so stopping takes at most
    that long.
    """
    listener = JournalListener(instance.db)
    if not listener.active or poll <= 0:
        return
    try:
        while not stop.is_set():
            await asyncio.to_thread(listener.wait, poll)
            if stop.is_set():
                break
            try:
                if await asyncio.to_thread(behind, instance):
                    await asyncio.to_thread(instance.renderer.catch_up)
                await asyncio.to_thread(after)
            except Exception:  # the next wake-up or poll tries again
                log.exception("catching up with the other hosts' writes failed")
    finally:
        await asyncio.to_thread(listener.close)
