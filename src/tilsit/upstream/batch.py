"""Applying a mirror sync's fetched projects in batches: one transaction and one render each.

The sync's workers fetch, verify and store a project's blobs, then hand the
project here (:meth:`ApplyBatches.put`). One task applies what was handed in
batches: a batch closes when :data:`BATCH_PROJECTS` projects are in it, when
:data:`BATCH_LINGER` seconds passed since its first one, or when the workers are
done. Each batch is one write transaction, then one
:meth:`~tilsit.render.follow.Renderer.catch_up` (one render of the pages the
batch touched, the project list and one TUF round), so those fixed costs are
paid per batch, not per project. While a batch is applied and rendered, the
workers go on fetching into the next one (the queue holds at most one batch
more: what a sync holds in memory stays bounded, whatever the upstream's size).

What each guarantee becomes:

- blobs before rows: a project is handed in only once all its blobs are stored;
- a batch is one transaction: a kill leaves all of it applied or none of it,
  and the journal rows of an applied batch are rendered by the next catch-up
  (the next sync's, or ``tilsit serve``'s at start) if the kill came before its
  render; a page never links a blob that is not stored;
- a project whose apply fails (its page breaks a constraint, a database fault
  on its rows) is rolled back to its own savepoint and named as failed, and
  the other projects of its batch commit; if the transaction itself cannot
  commit, every project of the batch is named as failed, and the next run
  fetches and applies them again (their blobs are reused only once applied);
- a project whose fetch fails never reaches a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow
from tilsit.index.upstream import (
    Applied,
    UpstreamProject,
    apply_upstream_project,
    remove_upstream_project,
)
from tilsit.instance import Instance

__all__ = ["BATCH_LINGER", "BATCH_PROJECTS", "ApplyBatches", "Fetched"]

# At most this many projects per transaction and render. A batch's fixed costs
# (a commit with its fsync, a TUF round: tens of ms; the project list, which
# grows with the index) are then shared by up to a hundred projects, while what
# a kill can cost stays small: the blobs of at most two batches (the one being
# applied and the one being filled) are fetched again by the next run.
BATCH_PROJECTS = 100
# A batch closes this long after its first project even if not full, so pages
# appear soon after their files and a trickle of slow projects still shares
# one render. Batches grow by themselves while a render is slow: what arrives
# meanwhile waits in the queue and goes into the next batch.
BATCH_LINGER = 0.5


@dataclass(frozen=True, slots=True)
class Fetched:
    """A project ready to apply: every blob of ``project`` is stored (``stored`` fetched now).

    ``project`` None: the upstream no longer has it, so it is removed here.
    """

    name: str
    project: UpstreamProject | None
    stored: frozenset[str] = frozenset()


# What became of one project of a batch: how it applied, or why it failed.
Outcome = Applied | str


class ApplyBatches:
    """The one task that applies fetched projects, a batch per transaction and render.

    ``done(fetched, outcome)`` is called on the event loop for every project
    handed in, once its batch committed (or failed); ``outcome`` is the
    :class:`Applied` of its change or, as a string, the reason it failed.
    """

    def __init__(
        self,
        instance: Instance,
        index_id: int,
        done: Callable[[Fetched, Outcome], None],
        *,
        size: int = BATCH_PROJECTS,
        linger: float = BATCH_LINGER,
    ) -> None:
        self.instance = instance
        self.index_id = index_id
        self.done = done
        self.size = max(1, size)
        self.linger = linger
        self.batches = 0  # transactions committed with at least one project in them
        self._queue: asyncio.Queue[Fetched | None] = asyncio.Queue(maxsize=self.size)
        self._ended = False

    async def put(self, fetched: Fetched) -> None:
        """Hand in a project; waits while a full batch is already waiting."""
        await self._queue.put(fetched)

    async def close(self) -> None:
        """No more projects will come: the last batch closes without waiting."""
        await self._queue.put(None)

    async def run(self) -> None:
        """Apply and render batches until :meth:`close`; a render's fault is raised at the end."""
        fault: Exception | None = None
        while not self._ended:
            batch = await self._collect()
            if not batch:
                continue
            outcomes = await asyncio.to_thread(self._apply, batch)
            for fetched, outcome in zip(batch, outcomes, strict=True):
                self.done(fetched, outcome)
            if any(isinstance(o, Applied) and o.serial is not None for o in outcomes):
                try:
                    await asyncio.to_thread(self.instance.renderer.catch_up)
                except Exception as exc:  # noqa: BLE001 - applied rows are safe; the render is healed by the next catch-up
                    fault = fault or exc
        if fault is not None:
            raise fault

    async def _collect(self) -> list[Fetched]:
        """The next batch: its first project, then what comes before it is full or closes."""
        first = await self._queue.get()
        if first is None:
            self._ended = True
            return []
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while len(batch) < self.size:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                item = await self._next(remaining)
                if item is _TIMEOUT:
                    break
            else:
                item = self._queue.get_nowait()
            if item is None:
                self._ended = True
                break
            assert isinstance(item, Fetched)
            batch.append(item)
        return batch

    async def _next(self, timeout: float) -> object:
        """The next item, or :data:`_TIMEOUT`; never loses one that arrives as time runs out."""
        getter = asyncio.ensure_future(self._queue.get())
        try:
            done, _pending = await asyncio.wait({getter}, timeout=timeout)
        except asyncio.CancelledError:
            getter.cancel()
            raise
        if getter in done:
            return getter.result()
        if not getter.cancel():  # it completed meanwhile: keep what it took
            return getter.result()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        return _TIMEOUT

    def _apply(self, batch: list[Fetched]) -> list[Outcome]:
        """One write transaction for the batch, a savepoint per project (in a thread)."""
        outcomes: list[Outcome] = []
        try:
            with self.instance.db.write() as session:
                index = session.get_one(IndexRow, self.index_id)
                for fetched in batch:
                    outcomes.append(self._apply_one(session, index, fetched))
        except Exception as exc:  # noqa: BLE001 - the commit failed: nothing of the batch is applied
            problem = f"its batch did not commit: {type(exc).__name__}: {exc}"
            return [problem] * len(batch)
        self.batches += 1
        return outcomes

    @staticmethod
    def _apply_one(session: Session, index: IndexRow, fetched: Fetched) -> Outcome:
        """Apply one project inside its own savepoint: its failure undoes only its rows."""
        try:
            with session.begin_nested():
                if fetched.project is None:
                    return Applied(remove_upstream_project(session, index, fetched.name))
                return apply_upstream_project(
                    session, index, fetched.project, stored=fetched.stored, actor="sync"
                )
        except Exception as exc:  # noqa: BLE001 - that project fails, the batch goes on
            return f"applying its page failed: {type(exc).__name__}: {exc}"


_TIMEOUT = object()
