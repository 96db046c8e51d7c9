"""How many hashed bins an index of N targets wants, and when to re-cut them.

A returning client downloads, after one upload, the timestamp, the new snapshot
(one entry per bin: ~33 bytes, ~5.4 gzip-compressed) and every bin whose version
moved (an upload touches six targets, so up to six bins, each ~190 bytes per
target it holds, ~69 compressed). With B bins and T targets that is about
``33·B + 6·190·T/B`` bytes, least at ``B ≈ 6·√T`` (``8.8·√T`` compressed; the
two curves are flat near their minimum). So the bin count follows the square root
of the target count: :func:`ideal_bits` is ``log2(8·√T)``, rounded. Measured by
``bench/tuf_bins.py``: at 400,000 targets 12 bits (4,096 bins) refreshes 250 kB
raw and 64 kB compressed, against 471 kB and 157 kB at 10 bits.

Re-cutting (:func:`tilsit.trust.rotation.rebin`) is a whole-index event (every
bin re-signed once), so it happens only when the count has moved a whole bit past
the current one (:func:`grown_bits`): a fourfold growth of the target count past
the point where the current bit count was ideal. The automatic re-cut only grows;
shrinking is `tilsit keys rebin` (an index that lost three quarters of its targets
pays a bigger snapshot, never an oscillation).

A snapshot may never drop a name an older one listed (TUF clients refuse it as a
rollback), so a re-cut keeps listing every bin name of the old cut that the new
one lacks. Cuts whose names have the same number of hex digits (bits 9 to 12:
``bins-000`` to ``bins-fff``) share their names, so growing within them adds no
such entry; the automatic re-cut stays within them (the default 10 bits grows to
at most 12: 4,096 bins, best up to about a million targets).
"""

from __future__ import annotations

import math

from tilsit.store.tree import Tree
from tilsit.trust.fresh import PAUSE_EVERY, Pause

__all__ = ["MAX_BITS", "MIN_BITS", "count_targets", "grown_bits", "ideal_bits"]

MIN_BITS = 4
MAX_BITS = 16  # 65,536 bins: a 2 MB snapshot; ideal at about 67 million targets
_COUNTED = b'"length":'


def ideal_bits(targets: int) -> int:
    """The bit length (bins = 2^bits) with the fewest refresh bytes for ``targets``."""
    if targets <= 1:
        return MIN_BITS
    return max(MIN_BITS, min(MAX_BITS, round(3 + math.log2(targets) / 2)))


def grown_bits(current: int, targets: int) -> int | None:
    """The bits to re-cut to when ``targets`` outgrew ``current`` by a whole bit, else None."""
    if targets <= 1 or current >= MAX_BITS:
        return None
    exact = 3 + math.log2(targets) / 2
    if exact < current + 1:
        return None
    # Within the bit lengths whose bin names have as many hex digits as now: a cut
    # with longer names leaves every old name listed in each snapshot for good (TUF
    # clients refuse a snapshot that drops a name), 4,096 of them past 12 bits.
    widest = 4 * math.ceil(current / 4)
    wanted = min(ideal_bits(targets), widest)
    return wanted if wanted > current else None


def count_targets(
    tree: Tree, directory: str, bins: dict[str, int], pause: Pause = lambda: None
) -> int:
    """The targets the bins ``{role: version}`` list, counted in their signed bytes.

    Every target entry, and nothing else in a bin, has a ``"length":`` key (the
    serialiser writes compact JSON, and a path cannot hold a quote). Reads each bin
    once, without parsing it: at 400,000 targets about 40 MB, every few minutes,
    calling ``pause()`` every PAUSE_EVERY bins (serve: after the uploads in flight).
    """
    total = 0
    for i, (role, version) in enumerate(bins.items()):
        if i % PAUSE_EVERY == 0:
            pause()
        raw = tree.read(f"{directory}/{version}.{role}.json")
        if raw is not None:
            total += raw.count(_COUNTED)
    return total
