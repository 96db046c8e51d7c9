"""The blob half of ``tilsit fsck``: rows against the blob store, on any store.

Missing blobs (a row names one the store lacks), corrupt ones (``verify``: bytes
that do not hash to their name) and orphans (stored, named by no row, older than
the grace cutoff: reaped) are found through the blob-store protocol only, so the
same check runs on the filesystem and on S3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.models import FileRow
from tilsit.store.blobs import BlobStore, MissingBlob

__all__ = ["BlobCheck", "check_blobs"]

# Orphans are checked again under the writer lock in batches of this many, so that
# uploads wait for one batch at most.
REAP_BATCH = 200


@dataclass
class BlobCheck:
    referenced: int = 0
    stored: int = 0
    reaped: int = 0
    problems: int = 0


def _referenced(session: Session, among: list[str] | None = None) -> dict[str, str]:
    """sha256 -> what names it: cached files' blobs and core-metadata blobs."""
    query = select(FileRow.filename, FileRow.sha256, FileRow.metadata_sha256, FileRow.cached)
    if among is not None:
        query = query.where(or_(FileRow.sha256.in_(among), FileRow.metadata_sha256.in_(among)))
    named: dict[str, str] = {}
    for filename, sha256, metadata_sha256, cached in session.execute(query):
        if cached:  # a proxy's file not fetched yet has no blob, rightly
            named[sha256] = filename
        if metadata_sha256 is not None:
            named.setdefault(metadata_sha256, f"{filename} (core metadata)")
    return named


def check_blobs(
    db: Database,
    blobs: BlobStore,
    cutoff: float,
    *,
    dry_run: bool,
    verify: bool,
    echo: Callable[[str], None],
) -> BlobCheck:
    """Report missing (and, with ``verify``, corrupt) blobs and reap orphans put or
    reused before ``cutoff`` (taken by the caller before the rows are read: a blob put
    after it is never reaped)."""
    result = BlobCheck()
    with db.read() as session:
        wanted = _referenced(session)
    stored = set(blobs)
    result.referenced, result.stored = len(wanted), len(stored)
    for sha256, what in sorted(wanted.items(), key=lambda kv: kv[1]):
        if sha256 not in stored:
            result.problems += 1
            echo(f"MISSING blob {sha256} for {what}")
    candidates = []
    for sha256 in sorted(stored - wanted.keys()):
        try:
            since = blobs.stored_at(sha256)
        except MissingBlob:
            continue
        if since > cutoff:
            echo(f"orphan blob {sha256} is younger than the grace period; kept")
        else:
            candidates.append(sha256)
    if dry_run:
        for sha256 in candidates:
            result.reaped += 1
            echo(f"orphan blob {sha256} (would reap)")
    elif candidates:
        # The rows read above may be stale: an upload stores its blob, then commits its
        # row, all under the writer lock. Under that lock no row is half-committed, so
        # each candidate is checked again there before it goes.
        echo(f"checking {len(candidates)} orphan blob(s) again under the writer lock")
        for start in range(0, len(candidates), REAP_BATCH):
            batch = candidates[start : start + REAP_BATCH]
            with db.write() as session:
                named = _referenced(session, batch)
                for sha256 in batch:
                    if sha256 in named:
                        echo(f"blob {sha256} is now named by {named[sha256]}; kept")
                    elif blobs.reap(sha256, cutoff):
                        result.reaped += 1
                        echo(f"reaped orphan blob {sha256}")
                    else:
                        echo(f"blob {sha256} was stored again meanwhile; kept")
    if verify:
        for sha256 in sorted(stored & wanted.keys()):
            digest = hashlib.sha256()
            try:
                for chunk in blobs.open_range(sha256):
                    digest.update(chunk)
            except MissingBlob:
                result.problems += 1
                echo(f"MISSING blob {sha256} for {wanted[sha256]}")
                continue
            if digest.hexdigest() != sha256:
                result.problems += 1
                echo(f"CORRUPT blob {sha256} for {wanted[sha256]}")
    return result
