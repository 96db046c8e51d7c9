"""Uploads need a confirmed email address (require_verified_email_for_upload): refused with
403 and the way out, before any archive is read; trusted publishing and admins exempt; `auto`
follows whether the server sends mail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import anyio.from_thread
import pytest
from sqlalchemy import select

from tests.auth.test_upload_rules import _publisher_token, events
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.email_policy import verified_email_required
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.db.models import FileRow, PublisherRow, UserRow
from tilsit.index.manage import create_user, get_index
from tilsit.instance import Instance, open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

Server = tuple[Instance, AppClient]


@pytest.fixture
def server(settings: Settings) -> Iterator[Callable[..., Server]]:
    opened: list[Server] = []
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


@pytest.mark.parametrize(
    ("rule", "smtp_host", "required"),
    [
        ("auto", "", False),
        ("auto", "mail.example.test", True),
        ("on", "", True),
        ("off", "mail.example.test", False),
    ],
)
def test_the_rule_follows_the_setting_and_whether_mail_is_sent(
    settings: Settings, rule: str, smtp_host: str, required: bool
) -> None:
    changed = dataclasses.replace(
        settings, require_verified_email_for_upload=rule, smtp_host=smtp_host
    )
    assert verified_email_required(changed) is required


def _user_token(instance: Instance, name: str, *, email: str | None, admin: bool = False) -> str:
    with instance.db.write() as session:
        user = create_user(session, name, admin=admin)
        user.email = email
        return create_token(session, user).secret


def _verify(instance: Instance, name: str) -> None:
    with instance.db.write() as session:
        user = session.scalars(select(UserRow).where(UserRow.name == name)).one()
        user.email_verified_at = datetime.now(UTC)


def test_an_unconfirmed_address_is_refused_until_confirmed(
    server: Callable[..., Server],
) -> None:
    # Mail is configured (it is never sent by an upload), so `auto` is on.
    instance, client = server(smtp_host="mail.example.test")
    unconfirmed = _user_token(instance, "newbie", email="newbie@example.test")
    refused = upload(client, make_wheel("first", "1.0"), unconfirmed)
    assert refused.status_code == 403
    assert "newbie@example.test is not confirmed yet" in refused.text
    assert "confirm yours on your account page, /account/" in refused.text
    nobody = _user_token(instance, "noaddress", email=None)
    refused = upload(client, make_wheel("second", "1.0"), nobody)
    assert refused.status_code == 403 and "your account has no address" in refused.text
    with instance.db.read() as session:
        assert session.scalars(select(FileRow)).first() is None
    assert {e.actor for e in events(instance, "token.refused")} == {"newbie", "noaddress"}

    _verify(instance, "newbie")
    assert upload(client, make_wheel("first", "1.0"), unconfirmed).status_code == 200


def test_admins_and_trusted_publishers_are_exempt(server: Callable[..., Server]) -> None:
    instance, client = server(require_verified_email_for_upload="on")
    admin = _user_token(instance, "root", email=None, admin=True)
    assert upload(client, make_wheel("adminpkg", "1.0"), admin).status_code == 200
    # A publisher set up by a user without a confirmed address acts for CI, not for them.
    _user_token(instance, "carol", email=None)
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


def test_without_mail_the_default_lets_unconfirmed_users_upload(
    server: Callable[..., Server],
) -> None:
    instance, client = server()
    token = _user_token(instance, "local", email=None)
    assert upload(client, make_wheel("localpkg", "1.0"), token).status_code == 200
