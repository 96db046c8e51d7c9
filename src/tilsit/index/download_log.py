"""Downloads that nginx served, read from its downloads log into the same counts.

``tilsit nginx-config`` makes nginx write one line per request for a distribution file
(``/packages/…`` and ``/<index>/packages/…``, never ``.metadata``) in the format
:data:`LOG_FORMAT` names: tab-separated, starting with :data:`MARKER`. nginx escapes
tabs and control characters inside values (``\\xHH``), so a tab always separates fields.

The counting rules are tilsit's own (:mod:`tilsit.web.downloads`): a GET answered 200
with as many bytes as its ``Content-Length``, or 206 for one range from byte 0 to the
last; once per client, file and UTC day. For today and yesterday (the days whose HMAC
key exists, or is made, in ``download_keys``) the note goes into ``download_clients``
beside tilsit's own, so a client counts once whichever server sent it the file. For
older days the keys are gone (swept, so that no stored hash can be tied to an address
any more): there, a client counts once per file and day within one run of the import.
Run it at least daily (hourly from cron) and a day's lines are all read while its key
still exists.

Idempotent by offset: a log is known by its device and inode and the sha256 of its first
line (:class:`tilsit.db.models.DownloadLogRow`), with the offset read so far. A second
run reads only lines appended since; a log rotated away (a new inode) is a new log read
from its start, and so is one truncated in place (``copytruncate``: shorter than the
offset, or its first line changed). Only whole lines are read: a last line without its
newline is left for the next run. Lines are read in batches of :data:`BATCH_LINES`; each
batch's counts and its new offset are committed in one transaction, so a crash never
counts a line twice nor skips one. Memory is bounded by a batch (plus, for days older than
yesterday, the notes of the run), whatever the size of the log.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tilsit.auth.policy import record_critical
from tilsit.db.engine import Database
from tilsit.db.models import DownloadLogRow, utcnow
from tilsit.index.download_counts import (
    add_count,
    client_hash,
    day_key,
    file_id_of,
    file_key,
    first_note,
    sweep_clients,
)

__all__ = [
    "BATCH_LINES",
    "FIELDS",
    "LOG_FORMAT",
    "MARKER",
    "MAX_LINE",
    "ConcurrentImport",
    "Download",
    "ImportReport",
    "import_log",
    "parse_line",
]

MARKER = "tilsit-downloads/1"
# The variables of each line after the marker, in order (nginx's names).
FIELDS = (
    "msec",
    "remote_addr",
    "request_method",
    "uri",
    "status",
    "body_bytes_sent",
    "sent_http_content_length",
    "sent_http_content_range",
    "http_user_agent",
)
# The nginx log_format's string (what the config says after the format's name).
LOG_FORMAT = "\\t".join([MARKER, *(f"${name}" for name in FIELDS)])
BATCH_LINES = 5000
# A longer line is not one nginx wrote in this format: it is skipped as unparsed.
MAX_LINE = 16 * 1024
_INT64 = 1 << 63


class ConcurrentImport(Exception):
    """Another run moved the log's offset while this one was reading: stop, count nothing."""


@dataclass(frozen=True)
class Download:
    """One log line that counts: the file (by its tree path's parts), the UTC day, the client."""

    sha256: str
    filename: str
    day: date
    address: str


@dataclass
class ImportReport:
    path: str
    start: int = 0
    offset: int = 0
    restarted: bool = False  # a known log read again from byte 0 (rotated or truncated)
    lines: int = 0
    downloads: int = 0  # lines that were whole-file downloads
    counted: int = 0  # downloads that added to the counts (a client's first that day)
    unknown: int = 0  # downloads of a file no row names (a deleted index's, say)
    unparsed: int = 0
    partial: bool = False  # a last line without its newline, left for the next run
    examples: list[int] = field(default_factory=list)  # line numbers of unparsed lines

    def summary(self) -> str:
        parts = [
            f"{self.path}: read {self.lines} line(s) from byte {self.start} to {self.offset}"
            + (" (a new or rotated log: from its start)" if self.restarted else ""),
            f"{self.downloads} whole-file download(s), {self.counted} counted"
            " (once per client, file and day)",
        ]
        if self.unknown:
            parts.append(f"{self.unknown} of files this server has no row for")
        if self.unparsed:
            where = ", ".join(str(n) for n in self.examples)
            parts.append(
                f"{self.unparsed} line(s) not in tilsit's downloads format"
                f" (not counted; line(s) {where}{', …' if self.unparsed > len(self.examples) else ''})"
            )
        if self.partial:
            parts.append("an unfinished last line is left for the next run")
        return "; ".join(parts)


class UnparsedLine(ValueError):
    """A line that is not in :data:`LOG_FORMAT`."""


def _whole_file(status: str, sent: str, length: str, content_range: str) -> bool:
    """The rule of tilsit.web.downloads: all of the file's bytes went out."""
    if not sent.isdigit():
        return False
    if status == "200":
        return length == "-" or (length.isdigit() and int(length) == int(sent))
    if status != "206":
        return False
    unit, _, spec = content_range.partition(" ")
    span, _, size = spec.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (first.isdigit() and last.isdigit() and size.isdigit()):
        return False
    return int(first) == 0 and int(last) == int(size) - 1 and int(sent) == int(size)


def parse_line(line: bytes) -> Download | None:
    """The download a log line records, None for a request that is not one (HEAD, a
    partial range, a 304 or 404, a ``.metadata`` file); :class:`UnparsedLine` for a line
    that is not in the format."""
    try:
        text = line.decode("ascii")  # nginx escapes every byte above 126
    except UnicodeDecodeError as exc:
        raise UnparsedLine("not ASCII") from exc
    values = text.rstrip("\r\n").split("\t")
    if len(values) != len(FIELDS) + 1 or values[0] != MARKER:
        raise UnparsedLine("not tilsit's downloads format")
    msec, address, method, uri, status, sent, length, content_range, _agent = values[1:]
    try:
        seconds = float(msec)
        day = datetime.fromtimestamp(seconds, UTC).date()
    except (ValueError, OverflowError, OSError) as exc:
        raise UnparsedLine(f"bad time {msec!r}") from exc
    if not status.isdigit() or not address or address == "-":
        raise UnparsedLine("bad status or address")
    if method != "GET" or not _whole_file(status, sent, length, content_range):
        return None
    # /packages/… or /<index>/packages/…: the file is named by the shared path's parts.
    parts = uri.split("/")
    if len(parts) == 7 and parts[2] == "packages":
        uri = "/" + "/".join(parts[2:])
    key = file_key(uri)
    if key is None:
        return None
    return Download(key[0], key[1], day, address)


def _signed(value: int) -> int:
    """A device or inode number as a signed 64-bit column holds it."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= _INT64 else value


def _lines(handle: BinaryIO, report: ImportReport) -> Iterator[tuple[int, bytes | None]]:
    """(offset after the line, the line) for each whole line from the handle's position;
    None for a line too long to be one of ours (skipped to its newline)."""
    offset = handle.tell()
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if not line.endswith(b"\n"):
            if len(line) <= MAX_LINE:
                report.partial = True  # nginx is still writing it, or was stopped mid-line
                return
            # Overlong: skip to its end, reading in bounded pieces.
            length = len(line)
            while not line.endswith(b"\n"):
                line = handle.readline(MAX_LINE + 1)
                if not line:
                    report.partial = True
                    return
                length += len(line)
            offset += length
            yield offset, None
            continue
        offset += len(line)
        yield offset, line


@dataclass
class _Run:
    """What one run keeps across batches: the notes of days whose key is gone."""

    today: date
    dialect: str
    percent: float
    keep_days: int
    old_notes: set[tuple[int, date, bytes]] = field(default_factory=set)
    keys: dict[date, bytes] = field(default_factory=dict)
    files: dict[tuple[str, str], int | None] = field(default_factory=dict)
    swept: bool = False
    reset: bool = False
    unparsed_stored: int = 0


def _count(session: Session, run: _Run, batch: list[Download], report: ImportReport) -> int:
    """Note each download of the batch; add the first notes to the counts, one statement
    per (file, day) rather than per line."""
    horizon = run.today - timedelta(days=1)
    added: dict[tuple[int, date], int] = {}
    for download in batch:
        named = (download.sha256, download.filename)
        if named not in run.files:
            run.files[named] = file_id_of(session, download.sha256, download.filename)
        file_id = run.files[named]
        if file_id is None:
            report.unknown += 1
            continue
        if download.day >= horizon:
            if download.day not in run.keys:
                run.keys[download.day] = day_key(session, run.dialect, download.day)
            client = client_hash(run.keys[download.day], download.address)
            first = first_note(session, run.dialect, file_id, download.day, client)
        else:
            # The day's key is gone: once per client, file and day within this run.
            note = (file_id, download.day, hashlib.sha256(download.address.encode()).digest())
            first = note not in run.old_notes
            run.old_notes.add(note)
        if first:
            added[(file_id, download.day)] = added.get((file_id, download.day), 0) + 1
    for (file_id, day), count in sorted(added.items()):
        add_count(session, run.dialect, file_id, day, count)
    return sum(added.values())


def _fingerprint(handle: BinaryIO) -> str | None:
    """sha256 of the log's first whole line, None if it has none yet."""
    handle.seek(0)
    first = handle.readline(MAX_LINE + 1)
    if not first.endswith(b"\n"):
        return None if len(first) <= MAX_LINE else hashlib.sha256(first).hexdigest()
    return hashlib.sha256(first).hexdigest()


def import_log(
    db: Database,
    path: Path,
    *,
    critical_percent: float,
    critical_keep_days: int,
    batch_lines: int = BATCH_LINES,
    now: datetime | None = None,
) -> ImportReport:
    """Read ``path`` from where the last run stopped and add its downloads to the counts.

    Raises OSError when the file cannot be read, :class:`ConcurrentImport` when another
    run is importing the same log.
    """
    report = ImportReport(str(path))
    with path.open("rb") as handle:
        status = os.fstat(handle.fileno())
        device, inode, size = _signed(status.st_dev), _signed(status.st_ino), status.st_size
        fingerprint = _fingerprint(handle)
        if fingerprint is None:
            report.partial = size > 0
            return report
        with db.read() as session:
            known = session.scalars(
                select(DownloadLogRow).where(
                    DownloadLogRow.device == device, DownloadLogRow.inode == inode
                )
            ).one_or_none()
            stored = (known.fingerprint, known.offset) if known is not None else None
        if stored is not None and stored[0] == fingerprint and stored[1] <= size:
            start = stored[1]
        else:
            start = 0
            report.restarted = stored is not None
        report.start = report.offset = start
        run = _Run(
            today=(now or datetime.now(UTC)).date(),
            dialect=db.dialect,
            percent=critical_percent,
            keep_days=critical_keep_days,
        )
        handle.seek(start)
        expected = stored[1] if stored is not None else None
        batch: list[Download] = []
        read = 0
        offset = start
        for offset, line in _lines(handle, report):
            report.lines += 1
            read += 1
            if line is None:
                _unparsed(report)
            else:
                try:
                    download = parse_line(line)
                except UnparsedLine:
                    _unparsed(report)
                else:
                    if download is not None:
                        batch.append(download)
                        report.downloads += 1
            if read >= batch_lines:
                expected = _commit(
                    db, run, report, batch, offset, read, path, fingerprint, device, inode, expected
                )
                batch, read = [], 0
        if read or expected is None or report.restarted:
            _commit(
                db, run, report, batch, offset, read, path, fingerprint, device, inode, expected
            )
        report.offset = offset
    return report


def _unparsed(report: ImportReport) -> None:
    report.unparsed += 1
    if len(report.examples) < 5:
        report.examples.append(report.lines)


def _commit(
    db: Database,
    run: _Run,
    report: ImportReport,
    batch: list[Download],
    offset: int,
    read: int,
    path: Path,
    fingerprint: str,
    device: int,
    inode: int,
    expected: int | None,
) -> int:
    """Write one batch's counts and the offset after it, in one transaction; the offset
    now stored. ``expected`` is the offset this run last stored or read (None: no row)."""
    try:
        return _write_batch(
            db, run, report, batch, offset, read, path, fingerprint, device, inode, expected
        )
    except IntegrityError as exc:
        # Two first runs on one log both made its row: the other one won.
        raise ConcurrentImport(
            f"{path}: another import of this log is running; nothing was counted by this"
            " batch, run it again"
        ) from exc


def _write_batch(
    db: Database,
    run: _Run,
    report: ImportReport,
    batch: list[Download],
    offset: int,
    read: int,
    path: Path,
    fingerprint: str,
    device: int,
    inode: int,
    expected: int | None,
) -> int:
    with db.write() as session:
        row = session.scalars(
            select(DownloadLogRow)
            .where(DownloadLogRow.device == device, DownloadLogRow.inode == inode)
            .with_for_update()
        ).one_or_none()
        if (row.offset if row is not None else None) != expected:
            raise ConcurrentImport(
                f"{path}: another import of this log moved its offset; nothing was counted"
                " by this batch, run it again"
            )
        if not run.swept:
            sweep_clients(session, run.today)
            run.swept = True
        counted = _count(session, run, batch, report)
        if row is None:
            row = DownloadLogRow(
                device=device,
                inode=inode,
                fingerprint=fingerprint,
                offset=0,
                path=str(path),
                lines=0,
                counted=0,
                unparsed=0,
            )
            session.add(row)
        if report.restarted and not run.reset:
            # The same inode holds another log now: its totals start again.
            row.lines = row.counted = row.unparsed = 0
        run.reset = True
        row.fingerprint = fingerprint
        row.offset = offset
        row.path = str(path)
        row.lines += read
        row.counted += counted
        row.unparsed += report.unparsed - run.unparsed_stored
        run.unparsed_stored = report.unparsed
        row.imported_at = utcnow()
        if counted:
            record_critical(session, run.percent, run.keep_days, run.today)
    report.counted += counted
    return offset
