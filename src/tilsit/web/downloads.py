"""Download counts: once per client, file and UTC day, counted in memory and written in batches.

A download must not be a database write (the read path serves from the tree,
ARCHITECTURE principle 1), so a served file only notes (file, day, client)
here; every few seconds, and once more at shutdown, the notes are written in
one write transaction. Several workers each keep their own notes: the
``download_clients`` table's primary key (file, day, client) decides which note
is the first, and only a first note adds to ``download_counts``. So a client
adds at most one download per file per day, however many requests it sends
and to whichever worker.

Download counts decide which projects are critical (``require_2fa =
critical``), so they are a policy input that anyone can send: hence the rules.

- What counts: a GET of ``/packages/…/<filename>`` that sent the whole file,
  answered 200, or 206 for a range from byte 0 to the last byte. A partial
  range (``bytes=0-0``, or the rest of a resumed transfer) does not, nor do
  HEAD, 304 and ``.metadata`` files. When nginx serves the tree, tilsit never
  sees those downloads: ``tilsit downloads import-log`` counts them from
  nginx's downloads log by these same rules (tilsit.index.download_log); what a
  CDN serves is not counted.
- The client is its address (as uvicorn reports it: behind a proxy on the same
  host, the forwarded one). It is kept only as an HMAC under a random key of
  the day (``download_keys``); yesterday's and older rows and keys are swept,
  so a stored hash can no longer be tied to an address once its key is gone.
- Each batch that counted something records which projects are critical now
  (``critical_projects``), so a project once critical stays so for
  ``critical_keep_days`` (see :mod:`tilsit.auth.policy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime

import anyio

from tilsit.auth.policy import record_critical
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.index.download_counts import add_count as _add
from tilsit.index.download_counts import client_hash, file_key
from tilsit.index.download_counts import day_key as _day_key
from tilsit.index.download_counts import file_id_of as _file_id
from tilsit.index.download_counts import first_note as _first_note
from tilsit.index.download_counts import sweep_clients as _sweep
from tilsit.web.asgi import Message, Scope, Send

__all__ = ["FLUSH_INTERVAL", "MAX_PENDING", "DownloadCounter", "file_key"]

log = logging.getLogger("tilsit.downloads")

# Seconds between batches: short enough that counts are current, long enough
# that a busy server writes once per interval, not once per download.
FLUSH_INTERVAL = 5.0
# Notes kept between two batches, at most: a flood from many addresses must not
# grow memory without bound. Past it, new notes are dropped until the next batch.
MAX_PENDING = 100_000

# (sha256, filename, day, client address)
Note = tuple[str, str, date, str]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _expected_length(status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """Bytes the body must carry for the response to be a whole file; None if it is not
    one (-1: a whole file of unstated length)."""
    length = _header(headers, b"content-length")
    if status == 302:
        # A file in an object store handed out as a presigned redirect (s3_serve_files =
        # "redirect"): the bytes flow from the bucket, so the redirect is the download.
        return -1
    if status == 200:
        return int(length) if length is not None and length.isdigit() else -1
    if status != 206:
        return None
    # "bytes <first>-<last>/<size>": whole only from the first byte to the last.
    content_range = (_header(headers, b"content-range") or b"").decode("latin-1")
    unit, _, spec = content_range.partition(" ")
    span, _, size = spec.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (first.isdigit() and last.isdigit() and size.isdigit()):
        return None
    if int(first) != 0 or int(last) != int(size) - 1:
        return None
    return int(size)


class DownloadCounter:
    def __init__(self, db: Database, settings: Settings, interval: float = FLUSH_INTERVAL) -> None:
        self.db = db
        self.critical_percent = settings.critical_percent
        self.critical_keep_days = settings.critical_keep_days
        self.interval = interval
        self._pending: set[Note] = set()
        self._swept: date | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def counting(self, scope: Scope, send: Send, path: str) -> Send:
        """``send``, noting the download once the whole file has been sent."""
        if scope["method"] != "GET":
            return send
        key = file_key(path)
        if key is None:
            return send
        client = scope.get("client")
        address = str(client[0]) if client else ""
        expected: int | None = None
        sent = 0

        async def counted(message: Message) -> None:
            nonlocal expected, sent
            await send(message)
            if message["type"] == "http.response.start":
                expected = _expected_length(message["status"], list(message.get("headers", [])))
            elif message["type"] == "http.response.body" and expected is not None:
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    if expected in (-1, sent):
                        self._note((key[0], key[1], datetime.now(UTC).date(), address))
                    expected = None

        return counted

    def _note(self, note: Note) -> None:
        if len(self._pending) >= MAX_PENDING and note not in self._pending:
            return
        self._pending.add(note)

    async def flush(self) -> int:
        """Write the pending notes; returns how many downloads they added."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, set()
        try:
            return await anyio.to_thread.run_sync(self._write, batch)
        except Exception:
            # Keep the notes for the next attempt rather than lose them.
            self._pending |= batch
            raise

    def _write(self, batch: set[Note]) -> int:
        today = datetime.now(UTC).date()
        written = 0
        with self.db.write() as session:
            if self._swept != today:
                _sweep(session, today)
                self._swept = today
            keys: dict[date, bytes] = {}
            files: dict[tuple[str, str], int | None] = {}
            for sha256, filename, day, address in sorted(batch):
                if (sha256, filename) not in files:
                    files[(sha256, filename)] = _file_id(session, sha256, filename)
                file_id = files[(sha256, filename)]
                if file_id is None:
                    continue  # a path the tree serves but no row names: nothing to count
                if day not in keys:
                    keys[day] = _day_key(session, self.db.dialect, day)
                client = client_hash(keys[day], address)
                if _first_note(session, self.db.dialect, file_id, day, client):
                    _add(session, self.db.dialect, file_id, day, 1)
                    written += 1
            if written:
                record_critical(session, self.critical_percent, self.critical_keep_days, today)
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
