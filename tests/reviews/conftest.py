"""The review queue's fixtures: a curated stack, in-process.

A hosted index ``internal`` (``internal-tool`` 1.0, uploaded) and a mirror ``mir``
(``requests-ish`` 1.0 and 2.0, applied as a sync applies them) under a virtual index
``all`` = internal, mir. Users: ``rita`` holds "review" on ``all``, ``dave`` holds
nothing, ``ada`` is an administrator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.from_thread
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.db.models import AuditEventRow, JournalRow, ReviewRow, UserRow
from tilsit.index.manage import create_index, create_user, get_index
from tilsit.index.permissions import grant_permission
from tilsit.index.upstream import UpstreamFile, UpstreamProject, apply_upstream_project
from tilsit.index.virtual import set_members
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
MIRRORED = ("1.0", "2.0")


def mirrored(instance: Instance, name: str, version: str) -> UpstreamFile:
    wheel = make_wheel(name, version)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    instance.blobs.put_bytes(wheel.data)
    instance.blobs.put_bytes(metadata)
    return UpstreamFile(
        filename=wheel.filename,
        url=f"https://upstream.invalid/files/{wheel.filename}",
        sha256=wheel.sha256,
        size=len(wheel.data),
        upload_time=WHEN,
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
    )


def user(session: Session, name: str) -> UserRow:
    return session.scalars(select(UserRow).where(UserRow.name == name)).one()


@dataclass(frozen=True)
class Counts:
    """What a refused step must leave as it was."""

    reviews: list[tuple[str, str, str]]
    events: int
    journal: int


def counts(instance: Instance) -> Counts:
    with instance.db.read() as session:
        return Counts(
            [
                (r.project, r.version, r.state)
                for r in session.scalars(select(ReviewRow).order_by(ReviewRow.id))
            ],
            session.scalar(select(func.count()).select_from(AuditEventRow)) or 0,
            session.scalar(select(func.count()).select_from(JournalRow)) or 0,
        )


@pytest.fixture
def stack(instance: Instance) -> Instance:
    with instance.db.write() as session:
        create_index(session, "internal")
        create_index(
            session, "mir", "mirror", options={"upstream": "https://upstream.invalid/simple/"}
        )
        virtual = create_index(session, "all", "virtual")
        set_members(session, virtual, ["internal", "mir"], actor="test")
        owner = create_user(session, "owen")
        token = create_token(session, owner).secret
        rita = create_user(session, "rita")
        create_user(session, "dave")
        create_user(session, "ada", admin=True)
        grant_permission(session, virtual, rita, "review", actor_name="test")
    files = [mirrored(instance, "requests-ish", v) for v in MIRRORED]
    with instance.db.write() as session:
        apply_upstream_project(
            session,
            get_index(session, "mir"),
            UpstreamProject("requests-ish", 7, files, versions=list(MIRRORED)),
            stored=set(instance.blobs),
        )
    install()
    with anyio.from_thread.start_blocking_portal() as portal:
        http = AppClient(portal, TilsitApp(instance))
        response = upload(http, make_wheel("internal-tool", "1.0"), token, "/internal/legacy/")
        assert response.status_code == 200, response.text
        portal.call(http.http.aclose)
    instance.renderer.catch_up()
    return instance


@pytest.fixture
def app_client(stack: Instance) -> Iterator[AppClient]:
    """The in-process app over ``stack``."""
    with anyio.from_thread.start_blocking_portal() as portal:
        http = AppClient(portal, TilsitApp(stack))
        yield http
        portal.call(http.http.aclose)


# The browser suite's fixtures (system Chromium, a live server reached as localhost,
# users with passwords), for test_browser.
from tests.browser.conftest import chromium, mail_server, make_user, page  # noqa: E402, F401
