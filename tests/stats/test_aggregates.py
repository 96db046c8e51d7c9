"""Aggregates per project, release and file, per UTC day, from ``download_counts``,
bounded by the 90-day window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.stats.conftest import OTHER, SDIST_1, WHEEL_1, WHEEL_2, Counted
from tilsit.db.models import FileRow
from tilsit.index.download_stats import (
    WINDOW_DAYS,
    file_daily,
    files_totals,
    project_daily,
    release_daily,
    today,
)
from tilsit.index.manage import create_index, get_index, get_project
from tilsit.index.virtual import set_members


def test_project_release_and_file_days_and_totals(counted: Counted) -> None:
    now = today()
    counted.add(WHEEL_1.filename, now, 3)
    counted.add(SDIST_1.filename, now, 1)
    counted.add(WHEEL_2.filename, now - timedelta(days=1), 5)
    counted.add(WHEEL_1.filename, now - timedelta(days=6), 2)  # still in the last week
    counted.add(WHEEL_1.filename, now - timedelta(days=7), 7)  # not in it; in the month
    counted.add(WHEEL_2.filename, now - timedelta(days=29), 11)  # the month's first day
    counted.add(WHEEL_2.filename, now - timedelta(days=30), 13)  # past the month
    counted.add(WHEEL_1.filename, now - timedelta(days=WINDOW_DAYS - 1), 17)  # window's first
    counted.add(WHEEL_1.filename, now - timedelta(days=WINDOW_DAYS), 1000)  # outside: never
    counted.add(OTHER.filename, now, 100)  # another project's
    with counted.instance.db.read() as db:
        project = project_daily(db, counted.project())
        assert len(project.counts) == WINDOW_DAYS and project.last == now
        assert project.totals() == {
            "last_day": 4,
            "last_week": 4 + 5 + 2,
            "last_month": 4 + 5 + 2 + 7 + 11,
        }
        assert project.total() == 4 + 5 + 2 + 7 + 11 + 13 + 17
        assert project.days()[0] == (now - timedelta(days=WINDOW_DAYS - 1), 17)
        assert project.days()[-1] == (now, 4)

        one = release_daily(db, counted.release("1.0"))
        assert one.totals() == {"last_day": 4, "last_week": 6, "last_month": 13}
        assert one.total() == 4 + 2 + 7 + 17
        two = release_daily(db, counted.release("2.0"))
        assert two.total() == 5 + 11 + 13 and two.totals()["last_day"] == 0

        assert files_totals(db, counted.release("1.0")) == {
            SDIST_1.filename: 1,
            WHEEL_1.filename: 3 + 2 + 7 + 17,
        }
        assert files_totals(db, counted.release("2.0"), days=30) == {WHEEL_2.filename: 16}
        wheel = db.get_one(FileRow, counted.file_id(WHEEL_1.filename))
        assert file_daily(db, wheel, days=7).counts == (2, 0, 0, 0, 0, 0, 3)


def test_a_file_never_downloaded_shows_zero_and_a_window_is_bounded(counted: Counted) -> None:
    with counted.instance.db.read() as db:
        assert files_totals(db, counted.release("2.0")) == {WHEEL_2.filename: 0}
        assert project_daily(db, counted.project()).total() == 0
        with pytest.raises(ValueError, match="1 to 90 days"):
            project_daily(db, counted.project(), WINDOW_DAYS + 1)


def test_a_virtual_index_project_shows_its_suppliers_counts(counted: Counted) -> None:
    """A virtual index's files are its members' (one owner per name): so are the counts,
    also through a virtual index of a virtual index."""
    counted.add(WHEEL_2.filename, today(), 6)
    with counted.instance.db.write() as db:
        inner = create_index(db, "all", "virtual")
        set_members(db, inner, ["main"], actor="test")
        outer = create_index(db, "outer", "virtual")
        set_members(db, outer, ["all"], actor="test")
    with counted.instance.db.read() as db:
        for name in ("all", "outer"):
            project = get_project(db, get_index(db, name), "stat-me")
            assert project.index_id != counted.project().index_id
            assert project_daily(db, project).totals()["last_day"] == 6
    answer = counted.http.get("/_/stats/outer/stat-me/recent")
    assert answer.status_code == 200 and answer.json()["data"]["last_day"] == 6


def test_the_project_query_reads_only_its_files_counts(counted: Counted) -> None:
    """Bounded: releases of the project, their files, then each file's (file, day) range of
    counts; never a scan of every project's counts of the window (SQLite's plan)."""
    if counted.instance.db.dialect != "sqlite":
        pytest.skip("the plan checked is SQLite's; PostgreSQL's depends on its statistics")
    statements: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "download_counts" in statement and statement.lstrip().startswith("SELECT"):
            statements.append(statement)

    engine = counted.instance.db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with counted.instance.db.read() as db:
            project_daily(db, counted.project())
            (statement,) = statements
            day = today().isoformat()
            plan = [
                row[3]
                for row in db.connection().exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, (counted.project().id, day, day)
                )
            ]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert any(step.startswith("SEARCH releases") for step in plan), plan
    assert any(step.startswith("SEARCH files") for step in plan), plan
    counts = [step for step in plan if "download_counts" in step]
    assert counts and all("file_id=?" in step for step in counts), plan
