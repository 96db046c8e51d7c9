"""The loop that renders coalesced project lists while ``tilsit serve`` runs.

Writes into a large index mark its project list due instead of rendering it
(:class:`~tilsit.render.follow.Renderer`, ``coalesce_from``); this loop renders
the due lists at most once per ``interval``, in a worker thread, so the list of
an index of 100,000 projects costs one render per interval however many uploads
arrive, and none of them waits for it. At start every list is rendered once (a
stopped process may have left one due); at stop the due ones are rendered
before the loop returns, so a clean stop leaves no list behind its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import anyio.to_thread

from tilsit.render.follow import Renderer

__all__ = ["coalesce_index_pages"]

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
            # At most one pass per interval, however many writes marked lists due.
            pause = max(0.05, interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
    finally:
        # From now on every write renders its list itself; then what is due is done.
        renderer.coalesce_from = None
        try:
            await anyio.to_thread.run_sync(renderer.render_due_lists)
        except Exception:  # the next start renders every list again
            log.exception("rendering project lists at stop failed")
