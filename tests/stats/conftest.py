"""Fixtures of the download statistics tests: a hosted project with releases and files,
and the private-index fixture of tests/private."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import anyio.from_thread
import pytest
from sqlalchemy import select

from tests.builders import make_sdist, make_wheel
from tests.conftest import AppClient
from tests.private.conftest import private  # noqa: F401  (a fixture of these tests too)
from tests.uploads import upload
from tilsit.db.models import DownloadCountRow, FileRow, IndexRow, ProjectRow, ReleaseRow
from tilsit.index.download_counts import add_count
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install


@dataclass
class Counted:
    """Project ``Stat_Me`` (1.0: a wheel and an sdist; 2.0: a wheel) in the default index,
    served in process; ``add`` writes counts as the counters do."""

    instance: Instance
    app: TilsitApp
    http: AppClient

    def file_id(self, filename: str) -> int:
        with self.instance.db.read() as db:
            return db.scalars(select(FileRow.id).where(FileRow.filename == filename)).one()

    def add(self, filename: str, day: date, count: int) -> None:
        file_id = self.file_id(filename)
        with self.instance.db.write() as db:
            add_count(db, self.instance.db.dialect, file_id, day, count)

    def project(self) -> ProjectRow:
        with self.instance.db.read() as db:
            row = db.scalars(
                select(ProjectRow)
                .join(IndexRow, IndexRow.id == ProjectRow.index_id)
                .where(ProjectRow.normalized == "stat-me", IndexRow.name == "main")
            ).one()
            db.expunge(row)
            return row

    def release(self, version: str) -> ReleaseRow:
        with self.instance.db.read() as db:
            row = db.scalars(
                select(ReleaseRow)
                .join(ProjectRow, ProjectRow.id == ReleaseRow.project_id)
                .join(IndexRow, IndexRow.id == ProjectRow.index_id)
                .where(
                    ProjectRow.normalized == "stat-me",
                    IndexRow.name == "main",
                    ReleaseRow.version == version,
                )
            ).one()
            db.expunge(row)
            return row

    def counts(self) -> int:
        with self.instance.db.read() as db:
            return sum(db.scalars(select(DownloadCountRow.count)))


WHEEL_1 = make_wheel("Stat_Me", "1.0")
SDIST_1 = make_sdist("Stat_Me", "1.0")
WHEEL_2 = make_wheel("Stat_Me", "2.0")
OTHER = make_wheel("Other_Project", "1.0")


@pytest.fixture
def counted(instance: Instance, token: str) -> Iterator[Counted]:
    install()
    app = TilsitApp(instance)
    with anyio.from_thread.start_blocking_portal() as portal:
        http = AppClient(portal, app)
        for dist in (WHEEL_1, SDIST_1, WHEEL_2, OTHER):
            response = upload(http, dist, token)
            assert response.status_code == 200, response.text
        yield Counted(instance, app, http)
        portal.call(http.http.aclose)
