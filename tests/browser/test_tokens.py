"""Creating and revoking an API token through the pages, in Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy

from tests.browser.conftest import MakeUser, login
from tests.builders import make_wheel
from tests.conftest import LiveServer
from tests.uploads import upload
from tilsit.db.engine import Database
from tilsit.db.models import AuditEventRow, TokenRow

PASSWORD = "correct horse battery staple 42"


def _tokens(server: LiveServer) -> list[TokenRow]:
    db = Database(server.settings.db_url)
    try:
        with db.read() as session:
            return list(session.scalars(sqlalchemy.select(TokenRow).order_by(TokenRow.id)))
    finally:
        db.dispose()


def _actions(server: LiveServer) -> list[str]:
    db = Database(server.settings.db_url)
    try:
        with db.read() as session:
            return list(
                session.scalars(sqlalchemy.select(AuditEventRow.action).order_by(AuditEventRow.id))
            )
    finally:
        db.dispose()


def test_create_a_project_token_use_it_and_revoke_it(
    mail_server: LiveServer, page: Any, make_user: MakeUser
) -> None:
    make_user("tess", PASSWORD)
    with httpx.Client(base_url=mail_server.url, timeout=60) as client:
        setup = upload(client, make_wheel("tok-browser", "1.0"), mail_server.token("tess"))
        assert setup.status_code == 200, setup.text
    before = len(_tokens(mail_server))

    login(page, mail_server.url, "tess", PASSWORD)
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="API tokens", exact=True).is_visible()
    page.get_by_label("Description").fill("browser release job")
    page.get_by_label("tok_browser (Owner, index main)").check()
    page.get_by_label("Index", exact=True).select_option("main")
    page.get_by_label("Expires after").select_option(label="7 days")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state()

    assert "shown only this once" in page.get_by_role("status").inner_text()
    secret = page.get_by_label("Token").input_value()
    assert secret.startswith("tilsit-") and len(secret) == 50
    assert f"password = {secret}" in page.content()
    tokens = _tokens(mail_server)
    assert len(tokens) == before + 1
    made = tokens[-1]
    assert made.projects == ["tok-browser"] and made.description == "browser release job"
    assert made.expires_at is not None

    with httpx.Client(base_url=mail_server.url, timeout=60) as client:
        assert upload(client, make_wheel("tok-browser", "2.0"), secret).status_code == 200
        assert upload(client, make_wheel("tok-elsewhere", "1.0"), secret).status_code == 403

    page.get_by_role("link", name="Back to your tokens").click()
    page.wait_for_load_state()
    row = page.locator(f'tr[data-token="{secret[:13]}"]')
    assert "browser release job" in row.inner_text()
    assert "active" in row.inner_text()
    assert secret not in page.content()  # the secret is never shown again
    row.get_by_role("button", name=f"Revoke token {secret[:13]}").click()
    page.wait_for_load_state()
    assert f"API token {secret[:13]} is revoked" in page.get_by_role("status").inner_text()
    assert "revoked" in page.locator(f'tr[data-token="{secret[:13]}"]').inner_text()

    with httpx.Client(base_url=mail_server.url, timeout=60) as client:
        refused = upload(client, make_wheel("tok-browser", "3.0"), secret)
    assert refused.status_code == 403
    assert "revoked" in refused.text
    actions = _actions(mail_server)
    assert {"token.created", "token.revoked", "token.refused"} <= set(actions)

    # The account's own events page lists what just happened.
    page.goto(f"{mail_server.url}/account/events")
    events = page.get_by_role("table").inner_text()
    assert "API token revoked" in events and "API token created" in events
