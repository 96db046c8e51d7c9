"""Bulk tokens: only an administrator (or the operator) grants one, and its owner sees it
marked on the tokens page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.admin.signin import sign_in
from tests.conftest import AppClient
from tilsit.auth.token_admin import BulkNotAllowed, issue_token
from tilsit.config import Settings
from tilsit.db.models import TokenRow, UserRow
from tilsit.index.manage import create_user
from tilsit.instance import Instance


def test_only_an_administrator_grants_a_bulk_token(instance: Instance) -> None:
    with instance.db.write() as session:
        alice = create_user(session, "alice")
        root = create_user(session, "root", admin=True)
        with pytest.raises(BulkNotAllowed, match="Only an administrator"):
            issue_token(session, alice, actor=alice, bulk=True)
        assert issue_token(session, alice, actor=root, bulk=True).row.bulk
        assert issue_token(session, alice, actor_name="cli", bulk=True).row.bulk
        assert not issue_token(session, alice, actor=alice).row.bulk


def test_the_tokens_page_marks_a_bulk_token(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    visitor = sign_in(settings.db_url, client, "alice")
    with instance.db.write() as session:
        alice = session.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        issue_token(session, alice, actor_name="cli", bulk=True, description="closure")
        issue_token(session, alice, actor_name="cli", description="plain")
    page = visitor.get("/account/tokens").text
    with instance.db.read() as session:
        rows = {t.description: t.display_prefix for t in session.scalars(select(TokenRow))}
    bulk_row = page[page.index(rows["closure"]) :].split("</tr>", 1)[0]
    plain_row = page[page.index(rows["plain"]) :].split("</tr>", 1)[0]
    assert ">bulk</span>" in bulk_row and ">bulk</span>" not in plain_row
