"""The freshness pass: re-sign due metadata and sweep, for every index, in short holds of the
render lock.

``tilsit serve`` runs it every few minutes; ``tilsit tuf refresh`` runs it once (cron).
It works on an opened :class:`~tilsit.instance.Instance` (the renderer's lock, the
signing state, the tree), so it sits above ``trust`` and ``render``, beside the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio.to_thread

from tilsit.instance import Instance
from tilsit.trust.fresh import refresh, sweep
from tilsit.trust.mirror import CarriedMetadata, carried_indexes
from tilsit.trust.settings import trust_settings, utcnow

__all__ = ["FRESHNESS_INTERVAL", "freshness_pass", "keep_fresh"]

log = logging.getLogger(__name__)

# Far below half the shortest default lifetime (12 h), so a missed pass or two never matters.
FRESHNESS_INTERVAL = 300.0


def freshness_pass(instance: Instance) -> list[str]:
    """One pass over every index; one line per index that changed."""
    signing = instance.signing
    lines = []
    with instance.db.read() as session:
        carried = carried_indexes(session)
    settings = trust_settings(instance.settings)
    # The renderer's lock, held one small step at a time (a few bins re-signed, one
    # bin's links swept) so a step never interleaves with a render's signing round,
    # and an upload waits for one step, never for the whole pass.
    hold = instance.renderer.locked
    for index in signing.indexes():
        now = utcnow()
        if index in carried:
            # The origin's signatures, copied by the sync: never re-signed here, but
            # the versions each sync copied are swept as the origin sweeps its own.
            gone = sweep(
                CarriedMetadata(instance.tree, index),
                now,
                settings.grace,
                settings.keep_versions,
                hold,
            )
            if gone.snapshots or gone.bins or gone.links:
                lines.append(
                    f"{index} (carried): swept {len(gone.snapshots)} snapshots,"
                    f" {len(gone.bins)} bins, {len(gone.links)} links"
                )
            continue
        with hold():
            repo = signing.repo(index)
        done = refresh(repo, now, hold)
        swept = sweep(repo, now, settings.grace, settings.keep_versions, hold)
        if done or swept.snapshots or swept.bins or swept.links:
            lines.append(
                f"{index}: re-signed {len(done.bins)} bins"
                f"{', snapshot' if done.snapshot else ''}"
                f"{', timestamp' if done.timestamp else ''};"
                f" swept {len(swept.snapshots)} snapshots, {len(swept.bins)} bins,"
                f" {len(swept.links)} links"
            )
    return lines


async def keep_fresh(
    instance: Instance, stop: asyncio.Event, *, every: float = FRESHNESS_INTERVAL
) -> None:
    while not stop.is_set():
        try:
            # First the journal: a render that failed after its commit is tried again.
            await anyio.to_thread.run_sync(instance.renderer.catch_up)
            for line in await anyio.to_thread.run_sync(freshness_pass, instance):
                log.info("tuf: %s", line)
        except Exception:  # a bad pass must not end the loop: the next may succeed
            log.exception("tuf freshness pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
