"""Migration 0005's fidelity part: ``files.upload_time`` may be NULL, and back.

A mirrored file whose upstream gives no upload time has none (NULL); the
downgrade gives such files their release's creation time so NOT NULL holds again.
Both directions keep every row, and on SQLite keep the foreign keys that point
at ``files`` (the constraint is edited in place, not by rebuilding the table).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from tilsit.db import engine as db_engine
from tilsit.db.models import FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.instance import Instance
from tilsit.spec.versions import version_key


def _alembic(instance: Instance, direction: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(db_engine._MIGRATIONS))
    with instance.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _file(release: ReleaseRow, index: IndexRow, name: str, source_url: str | None) -> FileRow:
    return FileRow(
        release_id=release.id,
        index_id=index.id,
        filename=name,
        packagetype="sdist",
        python_version="source",
        size=1,
        sha256=f"{len(name):064x}",
        md5="",
        blake2_256="",
        source_url=source_url,
    )


def _insert_null_time(instance: Instance) -> None:
    with instance.db.engine.begin() as connection:
        release_id, index_id = connection.execute(
            sa.text("SELECT release_id, index_id FROM files LIMIT 1")
        ).one()
        connection.execute(
            sa.text(
                "INSERT INTO files (release_id, index_id, filename, packagetype, python_version,"
                " size, sha256, md5, blake2_256, upload_time, yanked, yanked_reason, cached,"
                " metadata_cached) VALUES (:r, :i, 'late-1.0.tar.gz', 'sdist', 'source', 1,"
                " :sha, '', '', NULL, false, '', true, true)"
            ),
            {"r": release_id, "i": index_id, "sha": "f" * 64},
        )


def test_upload_time_is_nullable_and_the_downgrade_fills_it(instance: Instance) -> None:
    with instance.db.write() as session:
        index = IndexRow(name="m", kind="mirror", options={})
        session.add(index)
        session.flush()
        project = ProjectRow(index_id=index.id, name="p", normalized="p", confusable="p")
        session.add(project)
        session.flush()
        created = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
        release = ReleaseRow(
            project_id=project.id, version="1.0", version_key=version_key("1.0"), created_at=created
        )
        session.add(release)
        session.flush()
        session.add(_file(release, index, "p-1.0.tar.gz", "http://upstream/p-1.0.tar.gz"))
        session.add(_file(release, index, "p-1.0.zip", None))  # uploaded here: server time
    with instance.db.read() as session:
        times = {f.filename: f.upload_time for f in session.scalars(sa.select(FileRow))}
    assert times["p-1.0.tar.gz"] is None  # from an upstream that gave none: unknown
    assert times["p-1.0.zip"] is not None

    _alembic(instance, "downgrade", "0004")
    with instance.db.read() as session:
        filled = session.scalars(
            sa.select(FileRow.upload_time).where(FileRow.filename == "p-1.0.tar.gz")
        ).one()
    assert filled == created
    with pytest.raises(IntegrityError):
        _insert_null_time(instance)

    _alembic(instance, "upgrade", "head")
    _insert_null_time(instance)
    with instance.db.read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(FileRow)) == 3
    if instance.db.dialect == "sqlite":
        with instance.db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
