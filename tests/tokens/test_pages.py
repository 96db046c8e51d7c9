"""The API token pages without a browser: scope checks, the one-time secret, revoke."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.admin.signin import Visitor, sign_in
from tests.builders import make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.db.models import AuditEventRow, TokenRow
from tilsit.instance import Instance

_SECRET = re.compile(r'id="secret" class="secret" readonly value="(tilsit-[A-Za-z0-9_-]{43})"')


@pytest.fixture
def alice(instance: Instance, client: AppClient) -> Visitor:
    return sign_in(instance.settings.db_url, client, "alice")


def _create(visitor: Visitor, **fields: str | list[str]) -> str:
    data: dict[str, str | list[str]] = {"description": "ci", "expiry": "30", **fields}
    response = visitor.post("/account/tokens/new", data)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    match = _SECRET.search(response.text)
    assert match, response.text
    return match[1]


def test_created_token_is_shown_once_with_client_config(
    instance: Instance, client: AppClient, alice: Visitor
) -> None:
    response = alice.post("/account/tokens/new", {"description": "laptop", "expiry": "7"})
    secret = _SECRET.search(response.text)
    assert secret, response.text
    assert "username = __token__" in response.text
    assert f"password = {secret[1]}" in response.text
    assert f"UV_PUBLISH_TOKEN={secret[1]}" in response.text
    assert response.headers["cache-control"] == "no-store"
    listing = alice.get("/account/tokens").text
    assert secret[1][:13] in listing
    assert secret[1] not in listing  # never shown again
    assert "laptop" in listing
    assert upload(client, make_wheel("page-tok", "1.0"), secret[1]).status_code == 200
    with instance.db.read() as session:
        row = session.scalars(select(TokenRow)).one()
        assert row.expires_at is not None
        assert 6.9 < (row.expires_at - row.created_at).total_seconds() / 86400 < 7.1
        event = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "token.created")
        ).one()
        assert event.actor == "alice"
        assert event.detail["token"] == secret[1][:13]


def test_project_scope_is_limited_to_projects_with_a_role(
    instance: Instance, client: AppClient, alice: Visitor
) -> None:
    wide = _create(alice)
    assert upload(client, make_wheel("mine", "1.0"), wide).status_code == 200
    page = alice.get("/account/tokens").text
    assert 'value="mine"' in page  # offered: alice owns it now
    scoped = _create(alice, projects=["mine"])
    assert upload(client, make_wheel("mine", "2.0"), scoped).status_code == 200
    refused = upload(client, make_wheel("notmine", "1.0"), scoped)
    assert refused.status_code == 403
    # A project without a role, or one that does not exist, cannot be put in a token.
    bob = sign_in(instance.settings.db_url, client, "bob")
    before = _count(instance)
    for projects in (["mine"], ["nosuch"]):
        response = bob.post(
            "/account/tokens/new",
            {"expiry": "30", "projects": projects},  # type: ignore[dict-item]
        )
        assert response.status_code == 400
        assert "only be limited to projects you have a role on" in response.text
    assert _count(instance) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expiry": "forever"}, "Unknown expiry"),
        ({"expiry": "30", "index": "nosuch"}, "no hosted index named"),
        ({"expiry": "30", "description": "x" * 201}, "limited to 200 characters"),
    ],
)
def test_bad_token_forms_are_400_and_create_nothing(
    instance: Instance, alice: Visitor, fields: dict[str, str], message: str
) -> None:
    response = alice.post("/account/tokens/new", fields)
    assert response.status_code == 400
    assert message in response.text
    assert 'role="alert"' in response.text
    assert _count(instance) == 0


def test_revoke_stops_the_token_and_only_the_owner_can(
    instance: Instance, client: AppClient, alice: Visitor
) -> None:
    secret = _create(alice)
    with instance.db.read() as session:
        token_id = session.scalars(select(TokenRow.id)).one()
    bob = sign_in(instance.settings.db_url, client, "bob")
    assert bob.post(f"/account/tokens/{token_id}/revoke", {}).status_code == 404
    assert alice.post(f"/account/tokens/{token_id}/revoke", {}, csrf=None).status_code == 403
    assert upload(client, make_wheel("rv", "1.0"), secret).status_code == 200
    done = alice.post(f"/account/tokens/{token_id}/revoke", {})
    assert done.status_code == 303
    assert alice.get(done.headers["location"]).text.count("is revoked") == 1
    refused = upload(client, make_wheel("rv", "2.0"), secret)
    assert refused.status_code == 403
    assert "revoked" in refused.text
    with instance.db.read() as session:
        actions = [e.action for e in session.scalars(select(AuditEventRow))]
    assert actions.count("token.revoked") == 1
    assert "token.refused" in actions


def test_token_pages_need_a_login(client: AppClient) -> None:
    response = client.get("/account/tokens")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/login?next=%2Faccount%2Ftokens"


def _count(instance: Instance) -> int:
    with instance.db.read() as session:
        return len(session.scalars(select(TokenRow.id)).all())
