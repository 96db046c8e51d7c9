"""The freshness pass: re-sign due metadata and sweep, for every index, in short holds of the
render lock.

``tilsit serve`` runs it every few minutes; ``tilsit tuf refresh`` runs it once (cron).
Between passes, serve looks every few seconds at how far each index's snapshot has
moved and sweeps an index once ``tuf_keep_versions`` new snapshots piled up, so disk
does not grow with the upload rate for minutes at a time. It works on an opened
:class:`~tilsit.instance.Instance` (the renderer's lock, the signing state, the tree),
so it sits above ``trust`` and ``render``, beside the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from pathlib import Path

import anyio.to_thread

from tilsit.instance import Instance
from tilsit.trust.bincount import count_targets, grown_bits
from tilsit.trust.fresh import (
    Hold,
    Sweepable,
    current_bins,
    refresh,
    snapshot_version,
    sweep,
)
from tilsit.trust.keys import KeyError_
from tilsit.trust.mirror import CarriedMetadata, carried_indexes
from tilsit.trust.repository import IndexRepository
from tilsit.trust.rotation import rebin
from tilsit.trust.settings import trust_settings, utcnow

__all__ = [
    "FRESHNESS_INTERVAL",
    "SWEEP_POLL",
    "Indexes",
    "freshness_pass",
    "keep_fresh",
    "largest_index",
    "rebin_pass",
    "recut",
    "sweep_pass",
]

log = logging.getLogger(__name__)

# Far below half the shortest default lifetime (12 h), so a missed pass or two never matters.
FRESHNESS_INTERVAL = 300.0
# How often serve looks at how far each index moved since its last sweep (one small
# read of timestamp.json per index).
SWEEP_POLL = 10.0


class Indexes:
    """The indexes with TUF metadata, each as the sweep reads it, and which are carried."""

    def __init__(self, instance: Instance, hold: Hold) -> None:
        with instance.db.read() as session:
            self.carried = carried_indexes(session)
        self.instance = instance
        self.hold = hold

    def names(self) -> list[str]:
        return self.instance.signing.indexes()

    def sweepable(self, index: str) -> Sweepable:
        if index in self.carried:
            return CarriedMetadata(self.instance.tree, index)
        with self.hold():  # the signing state is shared with renders
            return self.instance.signing.repo(index)


class BecameCarried(Exception):
    """A mirror's sync started carrying its origin's metadata while the pass ran."""


def _signed_here(instance: Instance, index: str) -> IndexRepository:
    """The index's repository to sign with now, called under the lock: never a carried
    one. A sync marks an index carried under the same lock as it copies the origin's
    metadata, so a pass that listed the index a moment before must look again here,
    or it would re-sign the origin's metadata with this server's key."""
    with instance.db.read() as session:
        if index in carried_indexes(session):
            raise BecameCarried(index)
    return instance.signing.repo(index)


def _swept_line(instance: Instance, repo: Sweepable, hold: Hold) -> tuple[str, int]:
    settings = trust_settings(instance.settings)
    before = snapshot_version(repo) or 0
    pause = instance.renderer.writes.wait
    gone = sweep(repo, utcnow(), settings.grace, settings.keep_versions, hold, pause)
    line = (
        f"swept {len(gone.snapshots)} snapshots, {len(gone.bins)} bins, {len(gone.links)} links"
        if gone.snapshots or gone.bins or gone.links
        else ""
    )
    return line, before


def largest_index(instance: Instance, indexes: Indexes) -> int:
    """The targets of the largest index this server signs (carried ones are the origin's).

    Counting reads each current bin once, without the lock (tilsit.trust.bincount),
    pausing for the uploads in flight every few dozen bins.
    """
    largest = 0
    for index in indexes.names():
        if index in indexes.carried:
            continue
        repo = indexes.sweepable(index)
        bins = current_bins(repo)
        pause = instance.renderer.writes.wait
        largest = max(largest, count_targets(repo.tree, repo.dir, bins, pause))
    return largest


def recut(instance: Instance, indexes: Indexes, bits: int, secret: Path | None) -> list[str]:
    """A new targets.json delegating to ``2^bits`` bins, then every signed index re-cut.

    Each index is re-cut in one round under its own hold of the lock: an upload
    arriving meanwhile waits for that index's re-cut. Raises :class:`KeyError_` when
    the targets key is not in ``secret`` (default ``<data>/keys``).
    """
    signing = instance.signing
    trust = trust_settings(instance.settings)
    with indexes.hold():
        before = signing.latest_keys()
        signing.use_keys(rebin(before, trust, utcnow(), secret, bits))
    lines = [f"targets.json now delegates to {1 << bits} bins (was {before.bins.number_of_bins})"]
    for index in indexes.names():
        if index in indexes.carried:
            continue
        try:
            with indexes.hold():
                _signed_here(instance, index).round(utcnow())
        except BecameCarried:
            continue
        lines.append(f"{index}: re-cut into {1 << bits} bins")
    return lines


def rebin_pass(instance: Instance, indexes: Indexes) -> list[str]:
    """Re-cut the bins when the largest index outgrew them by a whole bit (hysteresis:
    tilsit.trust.bincount.grown_bits); with the targets key offline, say what to run."""
    keys = instance.signing.latest_keys()
    largest = largest_index(instance, indexes)
    bits = grown_bits(keys.bins.bit_length, largest)
    if bits is None:
        return []
    try:
        return recut(instance, indexes, bits, None)
    except KeyError_ as exc:
        return [
            f"the largest index holds {largest} targets: {1 << bits} bins would serve it"
            f" better than {keys.bins.number_of_bins}, but the targets key is not online"
            f" ({exc}); run `tilsit keys rebin --keys DIR`"
        ]


def freshness_pass(instance: Instance, marks: dict[str, int] | None = None) -> list[str]:
    """One pass over every index; one line per index that changed.

    ``marks`` records, per index, the snapshot version each sweep started from.
    """
    marks = {} if marks is None else marks
    lines = []
    # The renderer's lock, held one small step at a time (a few bins re-signed, one
    # bin's links swept) so a step never interleaves with a render's signing round,
    # and an upload waits for one step, never for the whole pass.
    hold = instance.renderer.locked
    indexes = Indexes(instance, hold)
    if instance.settings.tuf_auto_rebin:
        lines += rebin_pass(instance, indexes)
    for index in indexes.names():
        if index in indexes.carried:
            # The origin's signatures, copied by the sync: never re-signed here, but
            # the versions each sync copied are swept as the origin sweeps its own.
            swept, marks[index] = _swept_line(instance, indexes.sweepable(index), hold)
            if swept:
                lines.append(f"{index} (carried): {swept}")
            continue
        latest = functools.partial(_signed_here, instance, index)
        try:
            with hold():  # the signing state is shared with renders
                repo = latest()
            done = refresh(repo, utcnow(), hold, latest=latest, pause=instance.renderer.writes.wait)
        except BecameCarried:
            continue  # a mirror's first sync carried it during this pass: swept next time
        swept, marks[index] = _swept_line(instance, repo, hold)
        if done or swept:
            lines.append(
                f"{index}: re-signed {len(done.bins)} bins"
                f"{', snapshot' if done.snapshot else ''}"
                f"{', timestamp' if done.timestamp else ''};"
                f" {swept or 'swept nothing'}"
            )
    return lines


def sweep_pass(instance: Instance, marks: dict[str, int]) -> list[str]:
    """Sweep each index whose snapshot moved ``tuf_keep_versions`` past its last sweep."""
    keep = trust_settings(instance.settings).keep_versions
    hold = instance.renderer.locked
    indexes = Indexes(instance, hold)
    lines = []
    for index in indexes.names():
        repo = indexes.sweepable(index)
        version = snapshot_version(repo)
        if version is None or version - marks.get(index, 0) < keep:
            continue
        swept, marks[index] = _swept_line(instance, repo, hold)
        if swept:
            lines.append(f"{index}: {swept}")
    return lines


async def keep_fresh(
    instance: Instance,
    stop: asyncio.Event,
    *,
    every: float = FRESHNESS_INTERVAL,
    poll: float = SWEEP_POLL,
) -> None:
    marks: dict[str, int] = {}
    due = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= due:
                due = time.monotonic() + every
                # First the journal: a render that failed after its commit is tried again.
                await anyio.to_thread.run_sync(instance.renderer.catch_up)
                for line in await anyio.to_thread.run_sync(freshness_pass, instance, marks):
                    log.info("tuf: %s", line)
            else:
                for line in await anyio.to_thread.run_sync(sweep_pass, instance, marks):
                    log.info("tuf: %s", line)
        except Exception:  # a bad pass must not end the loop: the next may succeed
            log.exception("tuf freshness pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, min(poll, due - time.monotonic())))
