"""The proxy's write coalescer: one transaction and one catch-up for every fill that is ready.

Every page a proxy fetches and every file it stores is a write: rows and a
journal row, then a render of the project and a TUF round. One transaction and
one :meth:`~tilsit.render.follow.Renderer.catch_up` each made uv's parallel
requests queue one behind another on the single writer lock and the render
lock. Here they go in two stages, each taking everything that arrived while
the one before it ran:

1. **write**: every waiting fill is applied inside one ``Database.write``, each
   in its own savepoint (one that raises is rolled back alone and its caller
   gets the error); the commit makes them all durable at once, and each caller
   learns the serial its rows are covered by;
2. **render**: one catch-up renders everything committed so far (one render per
   touched project, one TUF round per index), while the next batch is written.
   It starts once no fill has committed for ``quiet`` seconds, so that a burst of
   fills (an installer's parallel requests: its pages, then its files) renders
   once, after the burst, instead of taking the disk from the burst's own
   commits; at most ``max_delay`` seconds after the first fill it waits for; and
   at once when a caller needs the tree itself (legacy JSON, a ``Range`` or
   ``HEAD`` of a file being fetched).

A caller waits for the stage it needs: a page is answered once its rows are
durable (the caller renders that one page itself, :mod:`.pages`); a file's
last byte is released once its blob and row are durable; the fetch-once
bookkeeping waits for the render, which puts the file into the tree.

Crash safety is the journal's: blobs are stored before the batch that names
them, a batch commits whole or not at all, and a process killed before the
catch-up leaves the tree behind the journal, which the next catch-up (``serve``
runs one at start) brings up to date. Nothing here is kept across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.models import JournalRow
from tilsit.render.follow import Renderer

__all__ = ["CoalescerStats", "WriteCoalescer"]

log = logging.getLogger("tilsit.proxy")

# After a failed catch-up (a database that went away), wait this long before the next.
_RENDER_RETRY = 1.0
# How long a stop waits for the writes and the catch-up under way.
_CLOSE_WAIT = 60.0
# A catch-up waits for this long without a new commit (the end of a burst; uv pauses
# about 0.3 s between an install's pages and its files) ...
QUIET = 1.0
# ... but for no longer than this after the first commit it is for: the TUF-signed
# names of new pages, and a cold file's tree path, lag the fill by this at most.
MAX_DELAY = 5.0


@dataclass(slots=True)
class _Fill:
    apply: Callable[[Session], object]
    durable: asyncio.Event = field(default_factory=asyncio.Event)
    serial: int = 0  # the journal's serial at the commit that made the fill durable
    result: object = None
    error: BaseException | None = None


@dataclass(slots=True)
class CoalescerStats:
    """What the coalescer did in this process, for logs and the benchmark."""

    fills: int = 0
    transactions: int = 0
    catch_ups: int = 0


class WriteCoalescer:
    """Coalesces the proxy's writes and renders; one per process, used from the event loop."""

    def __init__(
        self,
        db: Database,
        renderer: Renderer,
        *,
        quiet: float = QUIET,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.db = db
        self.renderer = renderer
        self.quiet = quiet
        self.max_delay = max_delay
        self._last_commit = 0.0  # loop time of the last commit
        self._hurry = asyncio.Event()  # a caller waits for the tree: render now
        self.stats = CoalescerStats()
        self._waiting: list[_Fill] = []
        self._writer: asyncio.Task[None] | None = None
        self._render_task: asyncio.Task[None] | None = None
        self._committed = 0  # the highest serial this process committed
        self._rendered = 0  # the serial the last catch-up reached
        self._render_failed = False
        self._render_done = asyncio.Condition()

    async def write(self, apply: Callable[[Session], object]) -> tuple[object, int]:
        """Run ``apply(session)`` in the next batch; its result and the serial it is
        durable at, once committed. Raises what ``apply`` raised (its savepoint rolled
        back alone), or the commit's error."""
        fill = _Fill(apply)
        self._waiting.append(fill)
        self.stats.fills += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_batches())
        await fill.durable.wait()
        if fill.error is not None:
            raise fill.error
        return fill.result, fill.serial

    async def rendered(self, serial: int, *, urgent: bool = True) -> bool:
        """Wait until the tree has caught up with ``serial``; False if the catch-up failed.

        ``urgent``: a client waits for the tree, so the catch-up starts now rather
        than at the end of the burst.
        """
        self._want_render(serial)
        if urgent and self._rendered < serial:
            self._hurry.set()
        async with self._render_done:
            while self._rendered < serial:
                if self._render_failed:
                    return False
                await self._render_done.wait()
        return True

    def hurry(self) -> None:
        """A client waits for the tree: start the catch-up now, not at the burst's end."""
        if self._rendered < self._committed:
            self._hurry.set()

    def has_rendered(self, serial: int) -> bool:
        """Whether a catch-up of this process has brought the tree to ``serial``."""
        return self._rendered >= serial

    async def aclose(self) -> None:
        """Finish what is under way (a clean stop leaves nothing unwritten or unrendered)."""
        self._hurry.set()
        for task in (self._writer, self._render_task, self._render_task):
            # The writer may start a render as it ends: the render task is read again.
            if task is not None and not task.done():
                # Bounded: a catch-up retrying against a database that is gone must not
                # hold the stop; the next start catches up from the journal.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), _CLOSE_WAIT)

    # -- the write stage -------------------------------------------------------------

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                serial = await anyio.to_thread.run_sync(self._commit, batch)
            except BaseException as exc:
                for fill in batch:
                    if fill.error is None:
                        fill.error = exc
                    fill.durable.set()
                if not isinstance(exc, Exception):
                    raise
                log.exception("a batch of %d proxy writes failed", len(batch))
                continue
            self._last_commit = asyncio.get_running_loop().time()
            for fill in batch:
                fill.serial = serial
                fill.durable.set()
            self._want_render(serial)

    def _commit(self, batch: list[_Fill]) -> int:
        with self.db.write() as session:
            for fill in batch:
                try:
                    with session.begin_nested():
                        fill.result = fill.apply(session)
                except Exception as exc:  # noqa: BLE001 - this fill's caller gets it
                    fill.error = exc
            serial = int(session.scalar(select(func.max(JournalRow.serial))) or 0)
        self.stats.transactions += 1
        return serial

    # -- the render stage ------------------------------------------------------------

    def _want_render(self, serial: int) -> None:
        self._committed = max(self._committed, serial)
        if self._rendered >= self._committed:
            return
        if self._render_task is None or self._render_task.done():
            self._render_task = asyncio.get_running_loop().create_task(self._catch_up())

    async def _burst_end(self) -> None:
        """Return when no commit came for ``quiet`` seconds, after ``max_delay`` at most,
        or at once when a caller hurries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while not self._hurry.is_set():
            pause = min(self._last_commit + self.quiet, deadline) - loop.time()
            if pause <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), pause)

    async def _catch_up(self) -> None:
        while self._rendered < self._committed:
            await self._burst_end()
            self._hurry.clear()
            target = self._committed
            try:
                reached = await anyio.to_thread.run_sync(self.renderer.catch_up)
            except Exception:
                log.exception("rendering proxy fills failed; trying again")
                async with self._render_done:
                    self._render_failed = True
                    self._render_done.notify_all()
                await asyncio.sleep(_RENDER_RETRY)
                continue
            self.stats.catch_ups += 1
            async with self._render_done:
                self._render_failed = False
                # Another process may have rendered further: the tree is past ``target``.
                self._rendered = max(self._rendered, reached, target)
                self._render_done.notify_all()
