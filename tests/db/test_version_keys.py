"""Migration 0005's version keys: releases that already collide keep working.

Before 0005, ``3.0`` and ``3.0.0`` of one project were two releases. The upgrade
must not fail on them nor drop either: one keeps the key (live before deleted,
then the oldest) and gets the new files of that version; the others keep their
files under a key no version produces, and each is reported.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from tilsit.config import Settings
from tilsit.db import engine as db_engine
from tilsit.db.engine import Database
from tilsit.db.models import AuditEventRow, ProjectRow, ReleaseRow, UTCDateTime
from tilsit.index.manage import get_index, set_yanked
from tilsit.index.releases import release_for_version
from tilsit.instance import Instance
from tilsit.spec.versions import equal_spellings, version_key


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["3", "3.0", "3.0.0", "03.0", "3.00.000"], "3"),
        (["1.0a1", "1.0.0alpha1", "1.0.0-a1"], "1a1"),
        (["1.0.post1", "1.0-1", "1.0.0r1"], "1.post1"),
        (["2!1.0.dev0", "2!1.0.0dev"], "2!1.dev0"),
        (["0", "0.0", "00"], "0"),
        (["1.10", "1.10.0"], "1.10"),
        (["1.0+Local.0", "1.0.0+local.0"], "1+local.0"),
    ],
)
def test_equal_versions_share_a_key(spellings: list[str], key: str) -> None:
    assert {version_key(s) for s in spellings} == {key}


def test_unequal_versions_and_non_versions_differ() -> None:
    keys = [version_key(v) for v in ["1.0", "1.0.1", "1.01.0", "1.1", "1.0+local", "1.0.foo"]]
    assert len(set(keys)) == 5  # 1.01.0 == 1.1
    assert version_key("1.0.foo") == "~1.0.foo"  # not PEP 440: compared exactly


def test_equal_spellings_are_the_lookups_of_a_release() -> None:
    assert equal_spellings("3.0.0") == ["3", "3.0", "3.0.0", "3.0.0.0"]
    assert equal_spellings("1.2.0rc1") == ["1.2rc1", "1.2.0rc1", "1.2.0.0rc1"]
    assert equal_spellings("1.2.3.4.0") == ["1.2.3.4"]
    assert equal_spellings("not a version") == []


def _at(url: str, revision: str) -> tuple[Database, Config]:
    db = Database(url)
    config = Config()
    config.set_main_option("script_location", str(db_engine._MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return db, config


def test_migration_keeps_colliding_releases_and_reports_them(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.data.mkdir(parents=True, exist_ok=True)
    db, config = _at(settings.db_url, "0004")
    try:
        old = datetime(2025, 1, 1, tzinfo=UTC)
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO indexes (id, name, kind, created_at, last_serial, options,"
                    " private, create_policy) VALUES (1, 'main', 'hosted', :at, 0, '{}',"
                    " false, 'anyone')"
                ),
                {"at": old.replace(tzinfo=None)},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO projects (id, index_id, name, normalized, confusable,"
                    " created_at, last_serial) VALUES (1, 1, 'pkg', 'pkg', 'pkg', :at, 0)"
                ),
                {"at": old.replace(tzinfo=None)},
            )
            releases = sa.table(
                "releases",
                sa.column("id", sa.Integer()),
                sa.column("project_id", sa.Integer()),
                sa.column("version", sa.String()),
                sa.column("created_at", UTCDateTime()),
                sa.column("yanked", sa.Boolean()),
                sa.column("yanked_reason", sa.String()),
                sa.column("deleted_at", UTCDateTime()),
            )
            # Ids above the sequence's start (PostgreSQL), out of age order; "2.0" is deleted, so the live "2" keeps the key.
            for release_id, version, month, deleted in [
                (11, "3.0.0", 3, False),
                (12, "3.0", 1, False),
                (13, "2.0", 1, True),
                (14, "2", 2, False),
                (15, "1.0", 1, False),
            ]:
                connection.execute(
                    releases.insert().values(
                        id=release_id,
                        project_id=1,
                        version=version,
                        created_at=datetime(2025, month, 1, tzinfo=UTC),
                        yanked=False,
                        yanked_reason="",
                        deleted_at=old if deleted else None,
                    )
                )
        with caplog.at_level(logging.WARNING, logger="tilsit.db.migrations"):
            db.migrate()
        assert db.revision() == db_engine.HEAD_REVISION
        with db.read() as session:
            keys = dict(session.execute(select(ReleaseRow.version, ReleaseRow.version_key)).all())
            assert keys == {"3.0": "3", "3.0.0": "#11#3", "2": "2", "2.0": "#13#2", "1.0": "1"}
            reported = session.scalars(
                select(AuditEventRow).where(AuditEventRow.action == "release.version_collision")
            ).all()
            assert sorted(
                (e.project, e.detail["version"], e.detail["equals"]) for e in reported
            ) == [
                ("pkg", "2.0", "2"),
                ("pkg", "3.0.0", "3.0"),
            ]
        messages = [r.getMessage() for r in caplog.records if r.name == "tilsit.db.migrations"]
        assert len(messages) == 2, messages
        # New files of the version join the release that kept the key, whatever the spelling.
        with db.write() as session:
            project = session.get(ProjectRow, 1)
            assert project is not None
            assert release_for_version(session, project, "03.0").version == "3.0"
            assert release_for_version(session, project, "2.0.0").version == "2"
            assert release_for_version(session, project, "4.0").version == "4.0"
        # And the part reverts.
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        with db.engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("releases")}
            assert "version_key" not in columns
    finally:
        db.dispose()


def test_yank_finds_the_release_by_any_spelling(instance: Instance) -> None:
    with instance.db.write() as session:
        index = get_index(session, "main")
        project = ProjectRow(index_id=index.id, name="pkg", normalized="pkg", confusable="pkg")
        session.add(project)
        session.flush()
        release = release_for_version(session, project, "3.0")
        set_yanked(session, index, "pkg", "3.0.0", yanked=True, reason="broken", actor="test")
        assert release.yanked and release.yanked_reason == "broken"
        set_yanked(session, index, "pkg", "03", yanked=False, actor="test")
        assert not release.yanked
