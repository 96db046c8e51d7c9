"""A trusted publisher acts on the rights of the user who set it up, checked at every use.

Disabling that user (from the admin page), removing them as Owner, or taking away
their permission to create projects stops the publisher: it mints no token, and a
token it minted before uploads nothing. Giving the right back makes it work again,
since nothing was destroyed: the check is made at use.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.admin.signin import sign_in
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.oidc.conftest import AUDIENCE, mint, octo_spec, publisher_for, user_named, user_token
from tests.oidc.issuer import LocalIssuer
from tests.uploads import upload
from tilsit.auth.oidc.publishers import InvalidPublisher, add_publisher
from tilsit.db.models import UserRow
from tilsit.index.manage import get_index, get_project
from tilsit.index.permissions import grant_permission, revoke_permission, set_visibility
from tilsit.index.roles import add_role, remove_role
from tilsit.instance import Instance


def _set_active(instance: Instance, client: AppClient, name: str, active: bool) -> None:
    """What an administrator does on /admin/users."""
    admin = sign_in(instance.settings.db_url, client, "root", admin=True)
    user_id = user_named(instance.db, name).id
    response = admin.post(f"/admin/users/{user_id}", {"action": "enable" if active else "disable"})
    assert response.status_code == 303, response.text


@pytest.fixture
def octo(client: AppClient, instance: Instance, issuer: LocalIssuer) -> int:
    """Project octo-pkg of alice, with a GitHub publisher alice set up."""
    token = user_token(instance.db, "alice")
    assert upload(client, make_wheel("octo-pkg", "1.0"), token).status_code == 200
    return publisher_for(instance.db, octo_spec(issuer), project="octo-pkg", owner="alice")


def test_a_disabled_users_publisher_mints_nothing(
    instance: Instance, client: AppClient, issuer: LocalIssuer, octo: int
) -> None:
    _set_active(instance, client, "alice", False)
    refused = mint(client, issuer.token(aud=AUDIENCE))
    assert (refused.status, refused.code) == (422, "invalid-publisher")
    assert "set up by 'alice'" in str(refused.body) and "disabled" in str(refused.body)
    _set_active(instance, client, "alice", True)
    assert mint(client, issuer.token(aud=AUDIENCE)).status == 200


def test_a_token_minted_before_the_user_was_disabled_uploads_nothing(
    instance: Instance, client: AppClient, issuer: LocalIssuer, octo: int
) -> None:
    secret = str(mint(client, issuer.token(aud=AUDIENCE)).body["token"])
    assert upload(client, make_wheel("octo-pkg", "2.0"), secret).status_code == 200
    _set_active(instance, client, "alice", False)
    refused = upload(client, make_wheel("octo-pkg", "3.0"), secret)
    assert refused.status_code == 403
    assert "set up by 'alice'" in refused.text and "disabled" in refused.text


def test_an_owner_removed_from_the_project_takes_their_publisher_along(
    instance: Instance, client: AppClient, issuer: LocalIssuer, octo: int
) -> None:
    user_named(instance.db, "bob")
    with instance.db.write() as session:
        project = get_project(session, get_index(session, "main"), "octo-pkg")
        alice, bob = (
            session.scalars(select(UserRow).where(UserRow.name == n)).one()
            for n in ("alice", "bob")
        )
        add_role(session, project, bob, "Owner", actor_name="test")
        remove_role(session, project, alice, by=bob)
    refused = mint(client, issuer.token(aud=AUDIENCE))
    assert (refused.status, refused.code) == (422, "invalid-publisher")
    assert "not an Owner of 'octo_pkg'" in str(refused.body)


def test_a_pending_publisher_needs_its_creator_to_keep_the_create_permission(
    instance: Instance, client: AppClient, issuer: LocalIssuer
) -> None:
    user_named(instance.db, "carol")
    with instance.db.write() as session:
        main = get_index(session, "main")
        set_visibility(session, main, create_policy="listed", actor_name="test")
        carol = session.scalars(select(UserRow).where(UserRow.name == "carol")).one()
        grant_permission(session, main, carol, "create", actor_name="test")
    publisher_for(instance.db, octo_spec(issuer), pending="later-pkg", owner="carol")
    with instance.db.write() as session:
        carol = session.scalars(select(UserRow).where(UserRow.name == "carol")).one()
        revoke_permission(session, get_index(session, "main"), carol, "create", actor_name="test")
    refused = mint(client, issuer.token(aud=AUDIENCE))
    assert (refused.status, refused.code) == (422, "invalid-pending-publisher")
    assert "may not create projects in index 'main'" in str(refused.body)
    with instance.db.write() as session:
        carol = session.scalars(select(UserRow).where(UserRow.name == "carol")).one()
        grant_permission(session, get_index(session, "main"), carol, "create", actor_name="test")
    secret = str(mint(client, issuer.token(aud=AUDIENCE)).body["token"])
    assert upload(client, make_wheel("later-pkg", "1.0"), secret).status_code == 200


def test_a_publisher_is_never_added_on_rights_the_user_does_not_have(
    instance: Instance, issuer: LocalIssuer, octo: int
) -> None:
    """The same rule when adding (``tilsit publisher add --user`` skipped the web's checks)."""
    user_named(instance.db, "mallory")
    with instance.db.write() as session:
        mallory = session.scalars(select(UserRow).where(UserRow.name == "mallory")).one()
        main = get_index(session, "main")
        project = get_project(session, main, "octo-pkg")
        with pytest.raises(InvalidPublisher, match="not an Owner of 'octo_pkg'"):
            add_publisher(
                session,
                octo_spec(issuer, environment="x"),
                index=main,
                project=project,
                actor=mallory,
            )
        mallory.is_active = False
        with pytest.raises(InvalidPublisher, match="'mallory' is disabled"):
            add_publisher(
                session, octo_spec(issuer), index=main, pending_name="m-pkg", actor=mallory
            )
