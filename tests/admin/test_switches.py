"""Admin switches and pages: each switch enforced, admin-only pages, CSRF, bad input.

Uploads go through the upload API in process (the form twine sends); the
switches are turned through the admin page, as an administrator would.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.admin.signin import Visitor, csrf_of, sign_in
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth import switches
from tilsit.db.models import AuditEventRow, UserRow
from tilsit.instance import Instance

ADMIN_PAGES = ["/admin/", "/admin/switches", "/admin/users", "/admin/2fa", "/admin/events"]


@pytest.fixture
def admin(instance: Instance, client: AppClient) -> Visitor:
    return sign_in(instance.settings.db_url, client, "root", admin=True)


@pytest.fixture
def alice(instance: Instance, client: AppClient) -> Visitor:
    return sign_in(instance.settings.db_url, client, "alice")


def _state(instance: Instance, name: str) -> bool:
    with instance.db.read() as session:
        return switches.enabled(session, name)


def _flip(admin: Visitor, name: str, state: str) -> None:
    response = admin.post("/admin/switches", {"name": name, "state": state})
    assert response.status_code == 200, response.text
    assert f"{name} is now {state}" in response.text or f"already {state}" in response.text


def _events(instance: Instance, action: str) -> list[AuditEventRow]:
    with instance.db.read() as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.action == action)))


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_refuse_non_admins(alice: Visitor, client: AppClient, path: str) -> None:
    response = alice.get(path)
    assert response.status_code == 403
    assert "for administrators" in response.text
    anonymous = client.get(path)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/account/login?next=")


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_answer_admins(admin: Visitor, path: str) -> None:
    response = admin.get(path)
    assert response.status_code == 200, response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_non_admin_cannot_flip_a_switch(instance: Instance, alice: Visitor) -> None:
    response = alice.post("/admin/switches", {"name": switches.NO_UPLOADS, "state": "on"})
    assert response.status_code == 403
    assert not _state(instance, switches.NO_UPLOADS)


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_switch_post_without_the_csrf_token_is_refused(
    instance: Instance, admin: Visitor, csrf: str | None
) -> None:
    response = admin.post("/admin/switches", {"name": switches.READ_ONLY, "state": "on"}, csrf=csrf)
    assert response.status_code == 403
    assert "CSRF token" in response.text
    assert not _state(instance, switches.READ_ONLY)
    assert _events(instance, "switch.changed") == []


@pytest.mark.parametrize(
    ("name", "state"), [("no-such-switch", "on"), (switches.READ_ONLY, "maybe"), ("", "")]
)
def test_unknown_switch_or_state_is_400(
    instance: Instance, admin: Visitor, name: str, state: str
) -> None:
    response = admin.post("/admin/switches", {"name": name, "state": state})
    assert response.status_code == 400
    assert "Unknown switch or state" in response.text
    assert not any(_state(instance, s) for s in switches.SWITCHES)


def test_switch_change_is_audited_and_shown(instance: Instance, admin: Visitor) -> None:
    _flip(admin, switches.NO_NEW_USERS, "on")
    assert _state(instance, switches.NO_NEW_USERS)
    page = admin.get("/admin/switches").text
    assert 'id="switch-no-new-users"' in page
    assert "Turn no-new-users off" in page
    (event,) = _events(instance, "switch.changed")
    assert event.actor == "root"
    assert event.detail == {"switch": switches.NO_NEW_USERS, "on": True}
    _flip(admin, switches.NO_NEW_USERS, "on")  # no change, no second event
    assert len(_events(instance, "switch.changed")) == 1
    _flip(admin, switches.NO_NEW_USERS, "off")
    assert not _state(instance, switches.NO_NEW_USERS)


def test_read_only_refuses_uploads_and_forms_but_not_the_switch(
    instance: Instance, client: AppClient, admin: Visitor, token: str
) -> None:
    _flip(admin, switches.READ_ONLY, "on")
    wheel = make_wheel("ro-proj", "1.0")
    refused = upload(client, wheel, token)
    assert refused.status_code == 503
    assert "Read-only mode" in refused.text
    # Any other form of the UI is refused too, with the reason.
    form = admin.post("/account/tokens/new", {"description": "x", "expiry": "30"})
    assert form.status_code == 503
    assert "read-only mode" in form.text
    with instance.db.read() as session:
        root = session.scalars(select(UserRow).where(UserRow.name == "root")).one()
        assert _events(instance, "token.created") == []
        assert root.is_admin
    # The admin can still turn it off, and then everything works again.
    _flip(admin, switches.READ_ONLY, "off")
    assert upload(client, wheel, token).status_code == 200
    assert (
        admin.post("/account/tokens/new", {"description": "x", "expiry": "30"}).status_code == 200
    )


def test_no_uploads_refuses_every_upload(client: AppClient, admin: Visitor, token: str) -> None:
    assert upload(client, make_wheel("nu-proj", "1.0"), token).status_code == 200
    _flip(admin, switches.NO_UPLOADS, "on")
    for wheel in (make_wheel("nu-proj", "2.0"), make_wheel("nu-other", "1.0")):
        refused = upload(client, wheel, token)
        assert refused.status_code == 503
        assert "Uploads are disabled" in refused.text
    _flip(admin, switches.NO_UPLOADS, "off")
    assert upload(client, make_wheel("nu-proj", "2.0"), token).status_code == 200


def test_no_new_projects_refuses_new_names_only(
    client: AppClient, admin: Visitor, token: str
) -> None:
    assert upload(client, make_wheel("np-old", "1.0"), token).status_code == 200
    _flip(admin, switches.NO_NEW_PROJECTS, "on")
    refused = upload(client, make_wheel("np-new", "1.0"), token)
    assert refused.status_code == 403
    assert "New projects are not accepted" in refused.text
    assert client.get("/simple/np-new/").status_code == 404
    assert upload(client, make_wheel("np-old", "2.0"), token).status_code == 200
    _flip(admin, switches.NO_NEW_PROJECTS, "off")
    assert upload(client, make_wheel("np-new", "1.0"), token).status_code == 200


def _anonymous_form(client: AppClient, path: str) -> tuple[str, str]:
    """The session cookie and CSRF token an anonymous visitor gets with a form page."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"].split(";", 1)[0]
    return cookie, csrf_of(response.text)


def test_no_new_users_closes_sign_up(instance: Instance, client: AppClient, admin: Visitor) -> None:
    def sign_up(name: str) -> int:
        cookie, csrf = _anonymous_form(client, "/account/register")
        password = "correct horse battery staple tilsit 42"
        response = client.post(
            "/account/register",
            data={
                "csrf_token": csrf,
                "name": name,
                "email": f"{name}@example.test",
                "password": password,
                "confirm": password,
            },
            headers={"cookie": cookie},
        )
        if response.status_code == 403:
            assert "Sign-up is closed" in response.text
        return response.status_code

    _flip(admin, switches.NO_NEW_USERS, "on")
    assert sign_up("newcomer") == 403
    with instance.db.read() as session:
        assert session.scalars(select(UserRow).where(UserRow.name == "newcomer")).first() is None
    _flip(admin, switches.NO_NEW_USERS, "off")
    assert sign_up("newcomer") == 303


def _user(instance: Instance, name: str) -> UserRow:
    with instance.db.read() as session:
        return session.scalars(select(UserRow).where(UserRow.name == name)).one()


def test_admin_disables_enables_and_promotes_users(
    instance: Instance, client: AppClient, token: str, admin: Visitor, alice: Visitor
) -> None:
    target = _user(instance, "alice").id
    done = admin.post(f"/admin/users/{target}", {"action": "disable"})
    assert done.status_code == 303
    assert not _user(instance, "alice").is_active
    # Her session and her token stop working at once.
    assert alice.get("/account/tokens").status_code == 303
    refused = upload(client, make_wheel("dis-proj", "1.0"), token)
    assert refused.status_code == 403
    assert "disabled" in refused.text
    assert admin.post(f"/admin/users/{target}", {"action": "enable"}).status_code == 303
    assert upload(client, make_wheel("dis-proj", "1.0"), token).status_code == 200
    assert admin.post(f"/admin/users/{target}", {"action": "make-admin"}).status_code == 303
    assert _user(instance, "alice").is_admin
    assert admin.post(f"/admin/users/{target}", {"action": "remove-admin"}).status_code == 303
    assert not _user(instance, "alice").is_admin
    actions = [e.action for e in _events(instance, "account.disabled")] + [
        e.action for e in _events(instance, "admin.granted")
    ]
    assert actions == ["account.disabled", "admin.granted"]


@pytest.mark.parametrize(
    ("action", "status", "message"),
    [
        ("disable", 400, "cannot disable your own account"),
        ("remove-admin", 400, "cannot disable your own account or remove your own admin"),
        ("explode", 400, "Unknown action"),
    ],
)
def test_admin_user_changes_refused(
    instance: Instance, admin: Visitor, action: str, status: int, message: str
) -> None:
    me = _user(instance, "root").id
    response = admin.post(f"/admin/users/{me}", {"action": action})
    assert response.status_code == status
    assert message in response.text
    root = _user(instance, "root")
    assert root.is_admin and root.is_active
    assert admin.post("/admin/users/99999", {"action": "enable"}).status_code == 404
