"""An invitation hands out a role only while its inviter could still hand it out.

The clean-up after a compromised Owner (remove them, or disable the account) must
also void the invitations they sent to their sock puppets: accepting one is
refused with the reason, and nothing changes. An invitation whose inviter keeps
the right is accepted as before.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy

from tests.admin.signin import Visitor, sign_in
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.db.models import ProjectRow, RoleRow, UserRow
from tilsit.index.manage import create_user, get_index, get_project
from tilsit.index.roles import StaleInvitation, accept_invitation, add_role, invite, remove_role
from tilsit.instance import Instance

MANAGE = "/project/main/shared/"


@pytest.fixture
def shared(instance: Instance, client: AppClient) -> None:
    """Project "shared": alice uploaded it (Owner) and made dave an Owner too; mallory exists."""
    with instance.db.write() as db:
        alice = create_user(db, "alice")
        create_user(db, "dave")
        create_user(db, "mallory")
        token = create_token(db, alice).secret
    assert upload(client, make_wheel("shared", "1.0"), token).status_code == 200
    with instance.db.write() as db:
        add_role(db, _project(db), _user(db, "dave"), "Owner", actor_name="test")


def _user(db: sqlalchemy.orm.Session, name: str) -> UserRow:
    return db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == name)).one()


def _project(db: sqlalchemy.orm.Session) -> ProjectRow:
    return get_project(db, get_index(db, "main"), "shared")


def _roles(instance: Instance) -> dict[str, str]:
    with instance.db.read() as db:
        return {r.user.name: r.role for r in db.scalars(sqlalchemy.select(RoleRow))}


def _invite_on_the_web(instance: Instance, client: AppClient) -> tuple[Visitor, str]:
    """alice invites mallory as Owner; mallory's accept URL."""
    alice = sign_in(instance.settings.db_url, client, "alice")
    sent = alice.post(f"{MANAGE}invite", {"user": "mallory", "role": "Owner"})
    assert sent.status_code == 200, sent.text
    mallory = sign_in(instance.settings.db_url, client, "mallory")
    accept = re.search(
        r'action="(/account/invitations/\d+/accept)"', mallory.get("/account/projects").text
    )
    assert accept is not None
    return mallory, accept[1]


def test_an_invitation_from_an_owner_since_removed_is_refused(
    instance: Instance, client: AppClient, shared: None
) -> None:
    mallory, accept = _invite_on_the_web(instance, client)
    # The clean-up: dave removes alice as Owner.
    with instance.db.write() as db:
        remove_role(db, _project(db), _user(db, "alice"), by=_user(db, "dave"))
    refused = mallory.post(accept, {})
    assert refused.status_code == 403
    assert "sent by &#39;alice&#39;, who is no longer an Owner" in refused.text, refused.text
    assert _roles(instance) == {"dave": "Owner"}
    # Nothing was used up: were alice an Owner again, her invitation would stand.
    with instance.db.write() as db:
        add_role(db, _project(db), _user(db, "alice"), "Owner", actor_name="test")
    assert mallory.post(accept, {}).status_code == 200
    assert _roles(instance)["mallory"] == "Owner"


def test_an_invitation_from_a_disabled_account_is_refused(
    instance: Instance, client: AppClient, shared: None
) -> None:
    mallory, accept = _invite_on_the_web(instance, client)
    admin = sign_in(instance.settings.db_url, client, "root", admin=True)
    with instance.db.read() as db:
        alice_id = _user(db, "alice").id
    assert admin.post(f"/admin/users/{alice_id}", {"action": "disable"}).status_code == 303
    refused = mallory.post(accept, {})
    assert refused.status_code == 403
    assert "whose account is now disabled" in refused.text, refused.text
    assert "mallory" not in _roles(instance)


def test_the_domain_rule_names_the_inviter(instance: Instance, shared: None) -> None:
    with instance.db.write() as db:
        row = invite(db, _project(db), _user(db, "mallory"), "Maintainer", by=_user(db, "alice"))
        invitation = row.id
        remove_role(db, _project(db), _user(db, "alice"), by=_user(db, "dave"))
    with instance.db.write() as db, pytest.raises(StaleInvitation, match="'alice'"):
        accept_invitation(db, invitation, _user(db, "mallory"))
    # An admin's invitation stands on the admin's rights, whatever their roles.
    with instance.db.write() as db:
        root = create_user(db, "root", admin=True)
        row = invite(db, _project(db), _user(db, "alice"), "Maintainer", by=root)
        accept_invitation(db, row.id, _user(db, "alice"))
    assert _roles(instance)["alice"] == "Maintainer"
