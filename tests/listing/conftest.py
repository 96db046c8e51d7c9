"""Fixtures of the listing tests: the private-index fixture, and many projects as rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.browser.conftest import (  # noqa: F401  (fixtures these tests use)
    chromium,
    mail_server,
    make_user,
    page,
)
from tests.private.conftest import private  # noqa: F401  (a fixture these tests use)
from tilsit.db.engine import Database
from tilsit.db.models import FileRow, ProjectRow, ReleaseRow
from tilsit.index.manage import get_index
from tilsit.spec.names import confusable_key, normalize
from tilsit.spec.versions import version_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def add_projects(db: Database, index: str, count: int) -> None:
    """``count`` projects ``proj-0000``… with one release and one wheel each, the wheel of
    ``proj-N`` uploaded N minutes after T0 (so the newest is the last by name).

    Rows, not uploads: paging needs hundreds of projects, and a real upload costs a render.
    """
    with db.write() as session:
        row = get_index(session, index)
        for n in range(count):
            name = f"proj-{n:04d}"
            project = ProjectRow(
                index_id=row.id,
                name=name,
                normalized=normalize(name),
                confusable=confusable_key(name),
            )
            release = ReleaseRow(project=project, version="1.0", version_key=version_key("1.0"))
            session.add(project)
            session.add(release)
            session.add(
                FileRow(
                    release=release,
                    index_id=row.id,
                    filename=f"proj_{n:04d}-1.0-py3-none-any.whl",
                    packagetype="bdist_wheel",
                    python_version="py3",
                    size=10,
                    sha256=f"{n:064x}",
                    md5="0" * 32,
                    blake2_256="0" * 64,
                    upload_time=T0 + timedelta(minutes=n),
                )
            )
        row.last_serial += 1  # as a journal row would: the counts' cache key moves
