"""Following the other hosts: a server's tree catches up with writes made elsewhere.

Several ``tilsit serve`` processes on several hosts share one PostgreSQL database,
each with its own data directory and tree. A write renders on the host that made
it; every other host learns of it from the journal's notification
(:mod:`tilsit.db.notify`, sent at commit) and runs the same
:meth:`~tilsit.render.follow.Renderer.catch_up` that heals a crash, rendering the
rows past its own tree's ``.serial``. When no notification comes (a dropped
listening connection, a notification sent while this host was starting), the host
looks at the journal every ``journal_poll`` seconds anyway, so a change is served
everywhere within two polls at worst. SQLite has one host: nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from sqlalchemy import func, select

from tilsit.db.cluster import JournalListener
from tilsit.db.models import JournalRow
from tilsit.instance import Instance

__all__ = ["follow_other_hosts", "newest_serial", "origin"]

log = logging.getLogger("tilsit.hosts")


def origin(instance: Instance) -> str:
    """What names this host's tree in its notifications: the machine and the data directory."""
    return f"{socket.gethostname()}:{instance.settings.data.resolve()}"


def newest_serial(instance: Instance) -> int:
    """The newest serial of the shared journal."""
    with instance.db.read() as session:
        return int(session.scalar(select(func.max(JournalRow.serial))) or 0)


async def follow_other_hosts(
    instance: Instance,
    stop: asyncio.Event,
    *,
    poll: float,
    after: Callable[[], object] = lambda: None,
) -> None:
    """Until ``stop``: wait for another tree's journal notification, or ``poll`` seconds.

    Woken, the host catches up at once. On a poll (no notification), it catches up
    only with rows that were already there at the previous poll: this host's own
    writes that render at the end of a burst (proxy fills) are left to it, so a lost
    notification costs at most two polls. ``after`` runs after each wait, caught up or
    not: what other hosts change without a journal row (a mirror's status after a
    failed sync) is published so. Stopping takes at most ``poll`` seconds.
    """
    listener = JournalListener(instance.db)
    if not listener.active or poll <= 0:
        return
    instance.db.origin = origin(instance)
    seen = 0  # the newest serial at the previous poll
    try:
        while not stop.is_set():
            woken = await asyncio.to_thread(listener.wait, poll)
            if stop.is_set():
                break
            try:
                newest = await asyncio.to_thread(newest_serial, instance)
                rendered = instance.tree.serial()
                if rendered < newest and (woken or rendered < seen):
                    await asyncio.to_thread(instance.renderer.catch_up)
                seen = newest
                await asyncio.to_thread(after)
            except Exception:  # the next wake-up or poll tries again
                log.exception("catching up with the other hosts' writes failed")
    finally:
        await asyncio.to_thread(listener.close)
