"""Who may upload: index permissions, create policy, the 2FA policy, trusted publishers,
the project-creation limit. Each rule is shown refusing and allowing, through the upload API."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import anyio.from_thread
import pytest
from sqlalchemy import select

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.private.test_roles import Browser
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.db.models import (
    AuditEventRow,
    DownloadCountRow,
    FileRow,
    IndexPermissionRow,
    IndexRow,
    ProjectRow,
    PublisherRow,
    RoleRow,
    TokenRow,
    UserRow,
    WebAuthnCredentialRow,
)
from tilsit.index.manage import create_index, create_user, get_index
from tilsit.instance import Instance, open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

Server = tuple[Instance, AppClient]


@pytest.fixture
def server(settings: Settings) -> Iterator[Callable[..., Server]]:
    """An in-process server with some settings changed."""
    opened: list[tuple[Instance, AppClient]] = []
    install()
    with anyio.from_thread.start_blocking_portal() as portal:

        def make(**changes: object) -> Server:
            instance = open_instance(dataclasses.replace(settings, **changes))  # type: ignore[arg-type]
            client = AppClient(portal, TilsitApp(instance))
            opened.append((instance, client))
            return instance, client

        yield make
        for instance, client in opened:
            portal.call(client.http.aclose)
            instance.close()


def token_for(instance: Instance, name: str, **scope: object) -> str:
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        user = user or create_user(session, name)
        return create_token(session, user, **scope).secret  # type: ignore[arg-type]


def events(instance: Instance, action: str) -> list[AuditEventRow]:
    with instance.db.read() as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.action == action)))


def test_upload_and_project_creation_are_audited(server: Callable[..., Server]) -> None:
    instance, client = server()
    response = upload(client, make_wheel("audited", "1.0"), token_for(instance, "alice"))
    assert response.status_code == 200, response.text
    (created,) = events(instance, "project.created")
    (uploaded,) = events(instance, "upload")
    assert created.actor == uploaded.actor == "alice"
    assert created.project == uploaded.project == "audited"
    assert uploaded.detail["filename"] == "audited-1.0-py3-none-any.whl"
    assert uploaded.ip == "127.0.0.1"
    assert len(events(instance, "token.used")) == 1


def test_listed_create_policy_needs_the_create_permission(server: Callable[..., Server]) -> None:
    instance, client = server()
    with instance.db.write() as session:
        get_index(session, "main").create_policy = "listed"
    alice = token_for(instance, "alice")
    refused = upload(client, make_wheel("newproj", "1.0"), alice)
    assert refused.status_code == 403
    assert "may not create projects in index 'main'" in refused.text
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        session.add(
            IndexPermissionRow(
                index_id=get_index(session, "main").id, user_id=user.id, permission="create"
            )
        )
    assert upload(client, make_wheel("newproj", "1.0"), alice).status_code == 200


def test_index_upload_permission_covers_every_project(server: Callable[..., Server]) -> None:
    instance, client = server()
    assert (
        upload(client, make_wheel("owned", "1.0"), token_for(instance, "alice")).status_code == 200
    )
    bot = token_for(instance, "release-bot")
    refused = upload(client, make_wheel("owned", "1.1"), bot)
    assert refused.status_code == 403
    assert "may not upload to project 'owned'" in refused.text
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == "release-bot")).one()
        session.add(
            IndexPermissionRow(
                index_id=get_index(session, "main").id, user_id=user.id, permission="upload"
            )
        )
    assert upload(client, make_wheel("owned", "1.1"), bot).status_code == 200


def test_disabled_account_tokens_stop_working(server: Callable[..., Server]) -> None:
    instance, client = server()
    alice = token_for(instance, "alice")
    with instance.db.write() as session:
        session.scalars(select(UserRow).where(UserRow.name == "alice")).one().is_active = False
    refused = upload(client, make_wheel("gone", "1.0"), alice)
    assert refused.status_code == 403
    assert "disabled" in refused.text
    (event,) = events(instance, "token.refused")
    assert event.actor == "alice" and "disabled" in event.detail["reason"]


def _give_2fa(instance: Instance, name: str) -> None:
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == name)).one()
        session.add(
            WebAuthnCredentialRow(user_id=user.id, credential_id=f"cred-{name}", public_key=b"k")
        )


def test_2fa_required_for_every_uploader(server: Callable[..., Server]) -> None:
    instance, client = server(require_2fa="uploaders")
    alice = token_for(instance, "alice")
    refused = upload(client, make_wheel("strict", "1.0"), alice)
    assert refused.status_code == 403
    assert "must set up two-factor authentication" in refused.text
    with instance.db.read() as session:
        assert session.scalars(select(FileRow)).first() is None
    _give_2fa(instance, "alice")
    assert upload(client, make_wheel("strict", "1.0"), alice).status_code == 200


def test_2fa_required_for_critical_projects_only(server: Callable[..., Server]) -> None:
    instance, client = server(require_2fa="critical", critical_percent=50.0)
    alice = token_for(instance, "alice")
    for name in ("popular", "quiet"):
        assert upload(client, make_wheel(name, "1.0"), alice).status_code == 200
    with instance.db.write() as session:
        popular = session.scalars(
            select(FileRow).where(FileRow.filename.startswith("popular-"))
        ).one()
        today = datetime.now(UTC).date()
        session.add(DownloadCountRow(file_id=popular.id, day=today, count=500))
        # Downloads older than 30 days do not count.
        quiet = session.scalars(select(FileRow).where(FileRow.filename.startswith("quiet-"))).one()
        session.add(
            DownloadCountRow(file_id=quiet.id, day=today - timedelta(days=40), count=10_000)
        )
    refused = upload(client, make_wheel("popular", "1.1"), alice)
    assert refused.status_code == 403
    assert "'popular' is a critical project" in refused.text
    assert upload(client, make_wheel("quiet", "1.1"), alice).status_code == 200
    _give_2fa(instance, "alice")
    assert upload(client, make_wheel("popular", "1.1"), alice).status_code == 200


def test_critical_projects_are_the_top_percent(instance: Instance) -> None:
    from tilsit.auth.policy import critical_project_ids

    with instance.db.write() as session:
        index = get_index(session, "main")
        ids = []
        for i in range(10):
            project = ProjectRow(
                index_id=index.id, name=f"p{i}", normalized=f"p{i}", confusable=f"p{i}"
            )
            session.add(project)
            session.flush()
            ids.append(project.id)
        from tilsit.index.rows import release_for_new_file

        for i, project_id in enumerate(ids):
            project = session.get(ProjectRow, project_id)
            assert project is not None
            release = release_for_new_file(session, project, "1.0")
            row = FileRow(
                release_id=release.id,
                index_id=index.id,
                filename=f"p{i}-1.0.tar.gz",
                packagetype="sdist",
                python_version="source",
                size=1,
                sha256=f"{i:064x}",
                md5="0" * 32,
                blake2_256="0" * 64,
            )
            session.add(row)
            session.flush()
            session.add(DownloadCountRow(file_id=row.id, day=date.today(), count=(i + 1) * 10))
    with instance.db.read() as session:
        assert critical_project_ids(session, 10.0) == [ids[9]]
        assert critical_project_ids(session, 30.0) == [ids[9], ids[8], ids[7]]
        assert critical_project_ids(session, 0.01) == [ids[9]]  # at least one
        assert critical_project_ids(session, 0) == []


def test_project_creation_is_rate_limited_per_user(server: Callable[..., Server]) -> None:
    instance, client = server(project_create_rate="2/1h")
    alice = token_for(instance, "alice")
    for name in ("one", "two"):
        assert upload(client, make_wheel(name, "1.0"), alice).status_code == 200
    refused = upload(client, make_wheel("three", "1.0"), alice)
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["retry-after"]) <= 3600
    assert "Too many new projects" in refused.text
    # New versions of existing projects are not limited; other users are not affected.
    assert upload(client, make_wheel("one", "1.1"), alice).status_code == 200
    assert upload(client, make_wheel("three", "1.0"), token_for(instance, "bob")).status_code == 200
    # Administrators load projects in bulk and are not limited.
    with instance.db.write() as session:
        create_user(session, "root", admin=True)
    admin = token_for(instance, "root")
    for name in ("four", "five", "six"):
        assert upload(client, make_wheel(name, "1.0"), admin).status_code == 200


def _publisher_token(instance: Instance, publisher_id: int, project: str) -> str:
    import hashlib
    import secrets

    secret = "tilsit-" + secrets.token_urlsafe(32)
    with instance.db.write() as session:
        index = get_index(session, "main")
        session.add(
            TokenRow(
                publisher_id=publisher_id,
                token_hash=hashlib.sha256(secret.encode()).hexdigest(),
                display_prefix=secret[:13],
                index_id=index.id,
                projects=[project],
                expires_at=datetime.now(UTC) + timedelta(minutes=15),
            )
        )
    return secret


def test_pending_publisher_creates_the_project_for_its_creator(
    server: Callable[..., Server],
) -> None:
    instance, client = server()
    token_for(instance, "carol")
    with instance.db.write() as session:
        carol = session.scalars(select(UserRow).where(UserRow.name == "carol")).one()
        publisher = PublisherRow(
            index_id=get_index(session, "main").id,
            pending_name="fromci",
            kind="github",
            issuer="https://token.actions.githubusercontent.com",
            claims={},
            created_by=carol.id,
        )
        session.add(publisher)
        session.flush()
        publisher_id = publisher.id
    minted = _publisher_token(instance, publisher_id, "fromci")
    response = upload(client, make_wheel("fromci", "1.0"), minted)
    assert response.status_code == 200, response.text
    with instance.db.read() as session:
        project = session.scalars(select(ProjectRow).where(ProjectRow.normalized == "fromci")).one()
        role = session.scalars(select(RoleRow).where(RoleRow.project_id == project.id)).one()
        assert role.user_id == carol.id and role.role == "Owner"
        publisher_row = session.get(PublisherRow, publisher_id)
        assert publisher_row is not None
        assert publisher_row.project_id == project.id and publisher_row.pending_name is None
        uploaded_file = session.scalars(select(FileRow)).one()
        assert uploaded_file.uploaded_by is None
    (event,) = events(instance, "upload")
    assert (
        event.actor.startswith("trusted publisher #") and event.detail["publisher"] == publisher_id
    )
    # The token is scoped to its project: another name is refused.
    other = upload(client, make_wheel("elsewhere", "1.0"), minted)
    assert other.status_code == 403
    assert "not valid for project 'elsewhere'" in other.text


def test_publisher_token_cannot_upload_to_another_project(server: Callable[..., Server]) -> None:
    instance, client = server()
    assert (
        upload(client, make_wheel("target", "1.0"), token_for(instance, "alice")).status_code == 200
    )
    with instance.db.write() as session:
        index = get_index(session, "main")
        # A publisher of another project whose token was (wrongly) scoped to "target".
        publisher = PublisherRow(
            index_id=index.id,
            pending_name="other",
            kind="oidc",
            issuer="https://ci.example",
            claims={},
        )
        session.add(publisher)
        session.flush()
        publisher_id = publisher.id
    minted = _publisher_token(instance, publisher_id, "target")
    refused = upload(client, make_wheel("target", "1.1"), minted)
    assert refused.status_code == 403
    assert "may not upload to project 'target'" in refused.text
    with instance.db.write() as session:
        publisher_row = session.get(PublisherRow, publisher_id)
        assert publisher_row is not None
        publisher_row.removed_at = datetime.now(UTC)
    gone = upload(
        client, make_wheel("other", "1.0"), _publisher_token(instance, publisher_id, "other")
    )
    assert gone.status_code == 403
    assert "has been removed" in gone.text


def test_new_indexes_are_public_and_open(instance: Instance) -> None:
    with instance.db.read() as session:
        index = session.scalars(select(IndexRow).where(IndexRow.name == "main")).one()
        assert index.private is False and index.create_policy == "anyone"


def _pending(instance: Instance, name: str, owner: str, index: str = "main") -> int:
    token_for(instance, owner)
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == owner)).one()
        publisher = PublisherRow(
            index_id=get_index(session, index).id,
            pending_name=name,
            kind="github",
            issuer="https://token.actions.githubusercontent.com",
            claims={"repository": f"{owner}/{name}"},
            created_by=user.id,
        )
        session.add(publisher)
        session.flush()
        return publisher.id


def _projects(instance: Instance) -> set[str]:
    with instance.db.read() as session:
        return set(session.scalars(select(ProjectRow.normalized)))


def test_a_pending_publisher_reserves_its_name(server: Callable[..., Server]) -> None:
    instance, client = server()
    publisher_id = _pending(instance, "fromci", "carol")
    mallory = token_for(instance, "mallory")
    # The name, and the names that look like it, are carol's publisher's to create.
    for name in ("fromci", "FromCI", "from-ci", "fr0mci"):
        refused = upload(client, make_wheel(name, "1.0"), mallory)
        assert refused.status_code == 403, (name, refused.text)
        assert "reserved in index 'main' by a pending trusted publisher" in refused.text
        assert "'fromci'" in refused.text
    assert _projects(instance) == set()
    # The publisher itself creates it, owned by carol.
    minted = _publisher_token(instance, publisher_id, "fromci")
    created = upload(client, make_wheel("fromci", "1.0"), minted)
    assert created.status_code == 200, created.text
    assert _projects(instance) == {"fromci"}


def test_a_reservation_yields_to_its_registrar_and_admins_and_ends_with_removal(
    server: Callable[..., Server],
) -> None:
    instance, client = server()
    _pending(instance, "carols", "carol")
    _pending(instance, "rooted", "carol")
    removed = _pending(instance, "freed", "carol")
    carol = token_for(instance, "carol")
    assert upload(client, make_wheel("carols", "1.0"), carol).status_code == 200
    with instance.db.write() as session:
        create_user(session, "root", admin=True)
    root = token_for(instance, "root")
    assert upload(client, make_wheel("rooted", "1.0"), root).status_code == 200
    mallory = token_for(instance, "mallory")
    assert upload(client, make_wheel("freed", "1.0"), mallory).status_code == 403
    with instance.db.write() as session:
        row = session.get(PublisherRow, removed)
        assert row is not None
        row.removed_at = datetime.now(UTC)
    assert upload(client, make_wheel("freed", "1.0"), mallory).status_code == 200
    # A reservation is per index: the same name elsewhere is free.
    with instance.db.write() as session:
        create_index(session, "team", actor="test")
    instance.renderer.catch_up()
    assert upload(client, make_wheel("carols", "1.0"), mallory, "/team/legacy/").status_code == 200


def test_a_reserved_name_cannot_be_reserved_again_by_another_user(
    server: Callable[..., Server],
) -> None:
    instance, client = server()
    _pending(instance, "fromci", "carol")
    token_for(instance, "mallory")
    mallory = Browser(client, instance, "mallory")
    form = {
        "action": "add",
        "kind": "github",
        "repository": "mallory/fromci",
        "workflow": "release.yml",
        "index": "main",
    }
    for name in ("fromci", "from_ci"):
        refused = mallory.post("/account/publishing", {**form, "project_name": name})
        assert refused.status_code == 400, refused.text
        assert "already reserved in index" in refused.text
    with instance.db.read() as session:
        rows = session.scalars(select(PublisherRow.pending_name)).all()
    assert rows == ["fromci"]
