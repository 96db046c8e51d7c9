"""Project roles and invitations: the domain rules, then the web pages over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy

from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth import sessions
from tilsit.auth.tokens import create_token
from tilsit.db.models import AuditEventRow, ProjectRow, RoleRow, UserRow
from tilsit.index import errors
from tilsit.index.manage import create_user, get_index, get_project
from tilsit.index.roles import (
    InvitationClosed,
    LastOwner,
    RoleExists,
    accept_invitation,
    change_role,
    decline_invitation,
    invite,
    remove_role,
)
from tilsit.instance import Instance
from tilsit.web.ui.context import cookie_name


@pytest.fixture
def project(instance: Instance, client: AppClient) -> str:
    """Project "roled" in the default index, uploaded by alice (its Owner); bob and carol exist."""
    with instance.db.write() as db:
        alice = create_user(db, "alice")
        create_user(db, "bob")
        create_user(db, "carol")
        token = create_token(db, alice).secret
    response = upload(client, make_wheel("roled", "1.0"), token)
    assert response.status_code == 200, response.text
    return "roled"


def _user(db: sqlalchemy.orm.Session, name: str) -> UserRow:
    return db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == name)).one()


def _project(db: sqlalchemy.orm.Session) -> ProjectRow:
    return get_project(db, get_index(db, "main"), "roled")


def _actions(instance: Instance) -> list[str]:
    with instance.db.read() as db:
        return list(
            db.scalars(
                sqlalchemy.select(AuditEventRow.action)
                .where(AuditEventRow.project == "roled")
                .order_by(AuditEventRow.id)
            )
        )


def test_invitation_lifecycle_and_owner_rules(instance: Instance, project: str) -> None:
    with instance.db.write() as db:
        invitation = invite(db, _project(db), _user(db, "bob"), "Maintainer", by=_user(db, "alice"))
        assert invitation.expires_at - invitation.created_at == timedelta(days=7)
        invitation_id = invitation.id
    with instance.db.write() as db, pytest.raises(RoleExists):
        invite(db, _project(db), _user(db, "bob"), "Owner", by=_user(db, "alice"))
    with instance.db.write() as db, pytest.raises(errors.Forbidden):
        # Only the invitee answers; anyone else is told there is no such invitation.
        invite(db, _project(db), _user(db, "carol"), "Owner", by=_user(db, "bob"))
    with instance.db.write() as db, pytest.raises(errors.UnknownProject):
        accept_invitation(db, invitation_id, _user(db, "carol"))
    with instance.db.write() as db:
        accept_invitation(db, invitation_id, _user(db, "bob"))
    with instance.db.write() as db, pytest.raises(InvitationClosed):
        decline_invitation(db, invitation_id, _user(db, "bob"))
    with instance.db.write() as db, pytest.raises(RoleExists):
        invite(db, _project(db), _user(db, "bob"), "Owner", by=_user(db, "alice"))
    # A Maintainer may not manage roles.
    with instance.db.write() as db, pytest.raises(errors.Forbidden):
        change_role(db, _project(db), _user(db, "bob"), "Owner", by=_user(db, "bob"))
    # The last Owner can be neither demoted nor removed, not even by the CLI.
    with instance.db.write() as db, pytest.raises(LastOwner):
        change_role(db, _project(db), _user(db, "alice"), "Maintainer", by=_user(db, "alice"))
    with instance.db.write() as db, pytest.raises(LastOwner):
        remove_role(db, _project(db), _user(db, "alice"), actor_name="cli")
    with instance.db.write() as db:
        assert change_role(db, _project(db), _user(db, "bob"), "owner", by=_user(db, "alice"))
    with instance.db.write() as db:
        remove_role(db, _project(db), _user(db, "alice"), by=_user(db, "alice"))  # leaves
    with instance.db.read() as db:
        roles = {r.user.name: r.role for r in db.scalars(sqlalchemy.select(RoleRow))}
    assert roles == {"bob": "Owner"}
    actions = _actions(instance)
    for action in ("role.invited", "role.accepted", "role.added", "role.changed", "role.removed"):
        assert action in actions, actions


def test_expired_and_declined_invitations(instance: Instance, project: str) -> None:
    past = datetime.now(UTC) - timedelta(days=8)
    with instance.db.write() as db:
        old = invite(db, _project(db), _user(db, "bob"), "Owner", by=_user(db, "alice"), now=past)
        old_id = old.id
    with instance.db.write() as db, pytest.raises(InvitationClosed, match="expired"):
        accept_invitation(db, old_id, _user(db, "bob"))
    with instance.db.write() as db:
        # An expired invitation does not block a new one.
        fresh = invite(db, _project(db), _user(db, "bob"), "Owner", by=_user(db, "alice")).id
    with instance.db.write() as db:
        decline_invitation(db, fresh, _user(db, "bob"))
    with instance.db.read() as db:
        assert db.scalars(sqlalchemy.select(RoleRow.user_id)).all() == [_user(db, "alice").id]
    assert "role.declined" in _actions(instance)


# --- the web pages ----------------------------------------------------------------


class Browser:
    """A logged-in visitor of the in-process app: a session cookie and its CSRF token."""

    def __init__(self, client: AppClient, instance: Instance, user: str) -> None:
        with instance.db.write() as db:
            new = sessions.new_session(
                db, user=_user(db, user), state=sessions.FULL, lifetime=timedelta(hours=1)
            )
            self.csrf = new.row.csrf_token
        self.client = client
        self.headers = {"Cookie": f"{cookie_name(instance)}={new.secret}"}

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> httpx.Response:
        form = {**data, "csrf_token": self.csrf} if csrf else data
        return self.client.post(path, data=form, headers=self.headers)


def test_invite_accept_change_and_remove_on_the_web(
    instance: Instance, client: AppClient, project: str
) -> None:
    alice, bob = Browser(client, instance, "alice"), Browser(client, instance, "bob")
    manage = "/project/main/roled/"
    page = alice.get(manage)
    assert page.status_code == 200, page.text
    assert "Invite someone" in page.text
    assert "content-security-policy" in page.headers
    # Without the CSRF token nothing changes.
    refused = alice.post(f"{manage}invite", {"user": "bob", "role": "Maintainer"}, csrf=False)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    assert "role.invited" not in _actions(instance)
    # Bob cannot see the manage page of a project he has no role on.
    assert bob.get(manage).status_code == 403
    sent = alice.post(f"{manage}invite", {"user": "bob", "role": "Maintainer"})
    assert sent.status_code == 200 and "Invited bob" in sent.text, sent.text
    again = alice.post(f"{manage}invite", {"user": "bob", "role": "Owner"})
    assert again.status_code == 409 and "open invitation" in again.text
    nobody = alice.post(f"{manage}invite", {"user": "nobody", "role": "Owner"})
    assert nobody.status_code == 400 and "no user named" in nobody.text
    # Bob sees the invitation and accepts it (a CSRF-less accept is refused).
    mine = bob.get("/account/projects")
    assert "roled" in mine.text
    accept = re.search(r'action="(/account/invitations/\d+/accept)"', mine.text)
    assert accept is not None, mine.text
    assert bob.post(accept[1], {}, csrf=False).status_code == 403
    # Carol cannot answer bob's invitation.
    carol = Browser(client, instance, "carol")
    assert carol.post(accept[1], {}).status_code == 404
    accepted = bob.post(accept[1], {})
    assert accepted.status_code == 200 and "You are now Maintainer of roled" in accepted.text
    assert bob.post(accept[1], {}).status_code == 410
    # A Maintainer sees the page but may not invite.
    assert bob.get(manage).status_code == 200
    denied = bob.post(f"{manage}invite", {"user": "carol", "role": "Owner"})
    assert denied.status_code == 403 and "Only an Owner" in denied.text
    # Last-owner protection on the web.
    last = alice.post(f"{manage}change", {"user": "alice", "role": "Maintainer"})
    assert last.status_code == 409 and "last Owner" in last.text
    gone = alice.post(f"{manage}remove", {"user": "alice"})
    assert gone.status_code == 409
    promoted = alice.post(f"{manage}change", {"user": "bob", "role": "Owner"})
    assert promoted.status_code == 200 and "bob is now Owner" in promoted.text
    removed = bob.post(f"{manage}remove", {"user": "alice"})
    assert removed.status_code == 200, removed.text
    page = bob.get(manage)
    assert "role.removed" in page.text and "role.accepted" in page.text  # the audit table
    with instance.db.read() as db:
        roles = {r.user.name: r.role for r in db.scalars(sqlalchemy.select(RoleRow))}
    assert roles == {"bob": "Owner"}


def test_decline_and_revoke_on_the_web(instance: Instance, client: AppClient, project: str) -> None:
    alice, carol = Browser(client, instance, "alice"), Browser(client, instance, "carol")
    manage = "/project/main/roled/"
    alice.post(f"{manage}invite", {"user": "carol", "role": "Owner"})
    listed = alice.get(manage).text
    invitation = re.search(r'name="invitation" value="(\d+)"', listed)
    assert invitation is not None
    assert alice.post(f"{manage}revoke", {"invitation": invitation[1]}).status_code == 200
    assert "roled" not in carol.get("/account/projects").text.split("Projects you have")[0]
    alice.post(f"{manage}invite", {"user": "carol", "role": "Owner"})
    decline = re.search(
        r'action="(/account/invitations/\d+/decline)"', carol.get("/account/projects").text
    )
    assert decline is not None
    assert carol.post(decline[1], {}).status_code == 200
    assert "role.revoked" in _actions(instance) and "role.declined" in _actions(instance)


def test_admin_indexes_page(instance: Instance, client: AppClient, project: str) -> None:
    with instance.db.write() as db:
        create_user(db, "root", admin=True)
    root, alice = Browser(client, instance, "root"), Browser(client, instance, "alice")
    assert alice.get("/admin/indexes").status_code == 403
    assert alice.post("/admin/indexes/main/settings", {"visibility": "private"}).status_code == 403
    page = root.get("/admin/indexes")
    assert page.status_code == 200 and "main" in page.text
    assert (
        root.post("/admin/indexes/main/settings", {"visibility": "private"}, csrf=False).status_code
        == 403
    )
    made = root.post(
        "/admin/indexes/main/settings", {"visibility": "private", "create_policy": "listed"}
    )
    assert made.status_code == 200, made.text
    assert (instance.settings.tree_dir / "main" / ".private").exists()
    assert client.get("/simple/").status_code == 401
    bad = root.post("/admin/indexes/main/grant", {"user": "bob", "permission": "admin"})
    assert bad.status_code == 400 and "Unknown permission" in bad.text
    granted = root.post("/admin/indexes/main/grant", {"user": "bob", "permission": "read"})
    assert granted.status_code == 200 and "bob now has read" in granted.text
    with instance.db.write() as db:
        token = create_token(db, _user(db, "bob")).secret
    assert client.get("/simple/", auth=("__token__", token)).status_code == 200
    revoked = root.post("/admin/indexes/main/revoke", {"user": "bob", "permission": "read"})
    assert revoked.status_code == 200 and "no longer has read" in revoked.text
    root.post("/admin/indexes/main/settings", {"visibility": "public", "create_policy": "anyone"})
    assert client.get("/simple/").status_code == 200
    with instance.db.read() as db:
        actions = set(db.scalars(sqlalchemy.select(AuditEventRow.action)))
    assert {"index.private", "index.permission.granted", "index.permission.removed"} <= actions


def test_account_projects_needs_a_login(client: AppClient) -> None:
    response = client.get("/account/projects", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/account/login")
