"""The loop that renders coalesced project lists while ``tilsit serve`` runs.

Writes into a large index mark its project list due instead of rendering it
(:class:`~tilsit.render.follow.Renderer`, ``coalesce_from``); this loop renders
the due lists at most once per ``interval``, in a worker thread, so the list of
an index of 100,000 projects costs one render per interval however many uploads
arrive, and none of them waits for it. A pass that took T seconds is followed by a
rest of at least 4T: building such a list is most of a second of CPU, and the
uploads beside it share one interpreter with it. At start every list a stopped
process may have left due is rendered; at stop the due ones are rendered before
the loop returns, so a clean stop leaves no list behind its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import anyio.to_thread

from tilsit.render.follow import Renderer

__all__ = ["LIST_SHARE_PAUSE", "coalesce_index_pages"]

# After a pass that took T seconds, the loop rests at least this many times T.
LIST_SHARE_PAUSE = 4.0

log = logging.getLogger("tilsit.render")


async def coalesce_index_pages(
    renderer: Renderer, stop: asyncio.Event, *, size: int, interval: float
) -> None:
    """Coalesce project lists of ``size`` bytes or more until ``stop`` is set."""
    renderer.coalesce_from = size
    try:
        await anyio.to_thread.run_sync(renderer.mark_all_lists_due)
        while not stop.is_set():
            started = time.monotonic()
            if renderer.lists_due():
                try:
                    await anyio.to_thread.run_sync(renderer.render_due_lists)
                except Exception:  # the next pass tries again; /_/health names it
                    log.exception("rendering project lists failed")
            spent = time.monotonic() - started
            # At most one pass per interval, however many writes marked lists due; and
            # never more than a fifth of the time on lists: at 100,000 projects a pass
            # is most of a second of CPU, which the uploads beside it would share.
            pause = max(0.05, interval - spent, LIST_SHARE_PAUSE * spent)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    finally:
        # From now on every write renders its list itself; then what is due is done.
        renderer.coalesce_from = None
        try:
            await anyio.to_thread.run_sync(renderer.render_due_lists)
        except Exception:  # the next start renders every list again
            log.exception("rendering project lists at stop failed")
