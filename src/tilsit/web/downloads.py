"""Download counts: per file per UTC day, counted in memory and written in batches.

A download must not be a database write (the read path serves from the tree,
ARCHITECTURE principle 1), so a served file only bumps a counter here; every
few seconds, and once more at shutdown, the counters are added to
``download_counts`` in one write transaction. Several workers each keep their
own counters: the upsert adds, so their batches sum.

What counts: a GET of ``/packages/…/<filename>`` answered 200, or 206 for a range
that starts at byte 0 (the start of a download; the rest of a resumed or
chunked transfer is the same download). HEAD, 304 and ``.metadata`` files do
not count. When nginx or a CDN serves the tree, tilsit never sees those
downloads, and they are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, date, datetime

import anyio
from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tilsit.db.engine import Database
from tilsit.db.models import DownloadCountRow, FileRow, IndexRow
from tilsit.web.asgi import Message, Scope, Send

__all__ = ["FLUSH_INTERVAL", "DownloadCounter", "file_key"]

log = logging.getLogger("tilsit.downloads")

# Seconds between batches: short enough that counts are current, long enough
# that a busy server writes once per interval, not once per download.
FLUSH_INTERVAL = 5.0

# (sha256, filename, day)
Key = tuple[str, str, date]


def file_key(path: str) -> tuple[str, str] | None:
    """(sha256, filename) of a ``/packages/<aa>/<bb>/<rest>/<filename>`` path, or None."""
    parts = path.split("/")
    if len(parts) != 6 or not parts[5] or parts[5].endswith(".metadata"):
        return None
    sha256 = "".join(parts[2:5])
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    return sha256, parts[5]


def _counts(status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    if status == 200:
        return True
    if status != 206:
        return False
    content_range = next((v for k, v in headers if k.lower() == b"content-range"), b"")
    return content_range.startswith(b"bytes 0-")


class DownloadCounter:
    def __init__(self, db: Database, interval: float = FLUSH_INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self._pending: Counter[Key] = Counter()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return sum(self._pending.values())

    def counting(self, scope: Scope, send: Send, path: str) -> Send:
        """``send``, counting the download if the response is a served file."""
        if scope["method"] != "GET":
            return send
        key = file_key(path)
        if key is None:
            return send

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and _counts(
                message["status"], list(message.get("headers", []))
            ):
                self._pending[(key[0], key[1], datetime.now(UTC).date())] += 1
            await send(message)

        return counted

    async def flush(self) -> int:
        """Write the pending counts; returns how many downloads were written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, Counter()
        try:
            return await anyio.to_thread.run_sync(self._write, batch)
        except Exception:
            # Keep the counts for the next attempt rather than lose them.
            self._pending.update(batch)
            raise

    def _write(self, batch: Counter[Key]) -> int:
        written = 0
        with self.db.write() as session:
            per_file: Counter[tuple[int, date]] = Counter()
            for (sha256, filename, day), count in batch.items():
                file_id = _file_id(session, sha256, filename)
                if file_id is None:
                    continue  # a path the tree serves but no row names: nothing to count
                per_file[(file_id, day)] += count
            for (file_id, day), count in per_file.items():
                _add(session, self.db.dialect, file_id, day, count)
                written += count
        return written

    def start(self) -> None:
        """Flush every ``interval`` seconds until :meth:`stop`."""
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stop))

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        if self._stop is not None and self._task is not None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("download counts could not be written at shutdown")

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            try:
                await self.flush()
            except Exception:
                log.exception("download counts could not be written; will retry")


def _file_id(session: Session, sha256: str, filename: str) -> int | None:
    # The same bytes under the same name can be in several indexes (a hosted
    # project and a mirror of it): the count goes to one row, preferring a live
    # file of a hosted index, as critical projects are hosted ones.
    return session.scalars(
        select(FileRow.id)
        .join(IndexRow, IndexRow.id == FileRow.index_id)
        .where(FileRow.sha256 == sha256, FileRow.filename == filename)
        .order_by(
            case((FileRow.deleted_at.is_(None), 0), else_=1),
            case((IndexRow.kind == "hosted", 0), else_=1),
            FileRow.id,
        )
        .limit(1)
    ).first()


def _add(session: Session, dialect: str, file_id: int, day: date, count: int) -> None:
    values = {"file_id": file_id, "day": day, "count": count}
    if dialect == "postgresql":
        pg = postgresql.insert(DownloadCountRow).values(values)
        session.execute(
            pg.on_conflict_do_update(
                index_elements=["file_id", "day"],
                set_={"count": DownloadCountRow.count + pg.excluded["count"]},
            )
        )
        return
    lite = sqlite.insert(DownloadCountRow).values(values)
    session.execute(
        lite.on_conflict_do_update(
            index_elements=["file_id", "day"],
            set_={"count": DownloadCountRow.count + lite.excluded["count"]},
        )
    )
