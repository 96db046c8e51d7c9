"""``tilsit downloads import-log``: nginx's downloads log into the same counts, by the same
rules, once: by offset, across appends, rotation and truncation, with bad lines reported."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio.from_thread
import httpx
from sqlalchemy import select

from tests.conftest import AppClient, run_cli
from tests.stats.conftest import OTHER, SDIST_1, WHEEL_1, WHEEL_2, Counted
from tilsit.db.models import DownloadLogRow
from tilsit.index.download_log import BATCH_LINES, MARKER, ImportReport, import_log, parse_line
from tilsit.index.download_stats import files_totals
from tilsit.store.tree import file_path


def line(
    path: str,
    *,
    address: str = "192.0.2.1",
    method: str = "GET",
    status: int = 200,
    sent: int = 100,
    length: str = "100",
    content_range: str = "-",
    when: float | None = None,
    agent: str = "pip/25.0 {json}",
) -> str:
    # The time of the call, not of the module's import: a run collected before midnight
    # and run after it must still log "today" as tilsit's counter sees it.
    when = time.time() if when is None else when
    fields = [MARKER, f"{when:.3f}", address, method, path, str(status), str(sent)]
    return "\t".join([*fields, length, content_range, agent]) + "\n"


def url(dist_filename: str, sha256: str, index: str = "") -> str:
    return f"{index}/" + file_path(sha256, dist_filename)


def _import(counted: Counted, log: Path, batch_lines: int = BATCH_LINES) -> ImportReport:
    return import_log(
        counted.instance.db,
        log,
        critical_percent=1.0,
        critical_keep_days=30,
        batch_lines=batch_lines,
    )


def test_only_whole_file_gets_count_once_per_client_file_and_day(
    counted: Counted, tmp_path: Path
) -> None:
    wheel = url(WHEEL_1.filename, WHEEL_1.sha256)
    log = tmp_path / "downloads.log"
    log.write_text(
        line(wheel)  # counts
        + line(wheel)  # the same client again that day: no
        + line(wheel, address="192.0.2.2", status=206, content_range="bytes 0-99/100")  # whole
        + line(wheel, address="192.0.2.3", status=206, sent=1, content_range="bytes 0-0/100")
        + line(wheel, address="192.0.2.4", method="HEAD", sent=0)
        + line(wheel, address="192.0.2.5", status=304, sent=0, length="-")
        + line(wheel, address="192.0.2.6", sent=40)  # cut off mid-transfer
        + line(wheel + ".metadata", address="192.0.2.7")
        + line(url(SDIST_1.filename, SDIST_1.sha256, "/main"), address="192.0.2.8")  # counts
        + line(url(WHEEL_2.filename, WHEEL_2.sha256), when=time.time() - 86400 * 10)  # an old day
        + line(url(WHEEL_2.filename, WHEEL_2.sha256), when=time.time() - 86400 * 10)  # same: no
        + line(url("nothing-1.0.tar.gz", "ab" * 32), address="192.0.2.9")  # no such file
        + '127.0.0.1 - - [03/Dec/2026] "GET / HTTP/1.1" 200 12\n'  # another format
        + line(wheel, address="192.0.2.10").replace(MARKER, "tilsit-downloads/9")
        + "\xff\n"
    )
    report = _import(counted, log)
    assert (report.lines, report.downloads, report.counted) == (15, 7, 4)
    assert (report.unknown, report.unparsed, report.examples) == (1, 3, [13, 14, 15])
    summary = report.summary()
    assert "15 line(s)" in summary and "3 line(s) not in tilsit's downloads format" in summary
    with counted.instance.db.read() as db:
        assert files_totals(db, counted.release("1.0")) == {
            WHEEL_1.filename: 2,
            SDIST_1.filename: 1,
        }
        assert files_totals(db, counted.release("2.0")) == {WHEEL_2.filename: 1}


def test_a_client_tilsit_counted_today_is_not_counted_again_from_the_log(
    counted: Counted, tmp_path: Path
) -> None:
    """The same HMAC-of-the-day note as tilsit's own counter: one count, either server."""
    path = url(OTHER.filename, OTHER.sha256)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = AppClient(portal, counted.app)
        portal.call(client.http.aclose)
        client.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=counted.app, client=("198.51.100.7", 4000)),
            base_url="http://testserver",
        )
        assert client.get(path).status_code == 200
        portal.call(counted.app.downloads.flush)
        portal.call(client.http.aclose)
    assert counted.counts() == 1
    log = tmp_path / "downloads.log"
    log.write_text(line(path, address="198.51.100.7") + line(path, address="198.51.100.8"))
    report = _import(counted, log)
    assert report.counted == 1
    assert counted.counts() == 2


def _stored(counted: Counted) -> list[tuple[int, int, int]]:
    with counted.instance.db.read() as db:
        return [
            (row.offset, row.lines, row.counted)
            for row in db.scalars(select(DownloadLogRow).order_by(DownloadLogRow.id))
        ]


def test_offsets_make_the_import_idempotent_across_appends_rotation_and_truncation(
    counted: Counted, tmp_path: Path
) -> None:
    wheel = url(WHEEL_1.filename, WHEEL_1.sha256)
    log = tmp_path / "downloads.log"
    first = line(wheel, address="192.0.2.1") + line(wheel, address="192.0.2.2")
    log.write_text(first)
    assert _import(counted, log).counted == 2
    again = _import(counted, log)
    assert (again.lines, again.counted, again.start) == (0, 0, len(first))
    assert counted.counts() == 2

    # Appended: only the new lines; a last line without its newline waits.
    third = line(wheel, address="192.0.2.3")
    fourth = line(wheel, address="192.0.2.4")
    with log.open("a") as out:
        out.write(third + fourth[:20])
    appended = _import(counted, log)
    assert (appended.lines, appended.counted, appended.partial) == (1, 1, True)
    with log.open("a") as out:
        out.write(fourth[20:])
    finished = _import(counted, log)
    assert (finished.lines, finished.counted, finished.partial) == (1, 1, False)
    assert counted.counts() == 4
    assert _stored(counted) == [(len(first + third + fourth), 4, 4)]

    # Rotated (renamed away, a new file in its place): the old file keeps its offset,
    # and the new one is read from its start.
    log.rename(tmp_path / "downloads.log.1")
    log.write_text(line(wheel, address="192.0.2.5"))
    assert _import(counted, tmp_path / "downloads.log.1").lines == 0
    rotated = _import(counted, log)
    assert (rotated.start, rotated.lines, rotated.counted) == (0, 1, 1)

    # Truncated in place (logrotate's copytruncate), then written again: from the start,
    # whether it is shorter than the offset or has grown past it with new first lines.
    inode = os.stat(log).st_ino
    with log.open("r+") as out:
        out.truncate(0)
    log.write_text(line(wheel, address="192.0.2.6"))
    assert os.stat(log).st_ino == inode
    assert _import(counted, log).counted == 1
    with log.open("r+") as out:
        out.truncate(0)
    grown = "".join(line(wheel, address=f"203.0.113.{n}") for n in range(1, 4))
    log.write_text(grown)
    again_from_zero = _import(counted, log)
    assert (again_from_zero.restarted, again_from_zero.counted) == (True, 3)
    assert counted.counts() == 4 + 1 + 1 + 3


def test_batches_commit_counts_with_their_offset(counted: Counted, tmp_path: Path) -> None:
    wheel = url(WHEEL_1.filename, WHEEL_1.sha256)
    log = tmp_path / "downloads.log"
    lines = [line(wheel, address=f"192.0.2.{n}") for n in range(1, 6)]
    log.write_text("".join(lines))
    report = _import(counted, log, batch_lines=2)
    assert (report.lines, report.counted) == (5, 5)
    assert _stored(counted) == [(len("".join(lines)), 5, 5)]


def test_parse_line_reads_the_time_as_utc() -> None:
    midnight = datetime(2026, 12, 3, tzinfo=UTC)
    before = parse_line(
        line(url(WHEEL_1.filename, WHEEL_1.sha256), when=midnight.timestamp() - 0.5).encode()
    )
    after = parse_line(
        line(url(WHEEL_1.filename, WHEEL_1.sha256), when=midnight.timestamp()).encode()
    )
    assert before is not None and after is not None
    assert (after.day - before.day) == timedelta(days=1) and after.day == midnight.date()


def test_the_cli_reports_and_refuses_a_missing_file(counted: Counted, tmp_path: Path) -> None:
    log = tmp_path / "downloads.log"
    log.write_text(line(url(WHEEL_1.filename, WHEEL_1.sha256)) + "junk\n")
    settings = counted.instance.settings
    done = run_cli(settings, "downloads", "import-log", str(log))
    assert "read 2 line(s) from byte 0" in done.stdout
    assert (
        "1 counted" in done.stdout and "1 line(s) not in tilsit's downloads format" in done.stdout
    )
    again = run_cli(settings, "downloads", "import-log", str(log))
    assert "read 0 line(s)" in again.stdout
    missing = run_cli(settings, "downloads", "import-log", str(tmp_path / "nope.log"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope.log'}: no such file (give the path that nginx-config's"
        " downloads log names)"
    ]
