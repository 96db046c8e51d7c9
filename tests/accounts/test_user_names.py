"""User names are one under case folding and the look-alike key (issue 9, item 13).

``ALICE``, ``a1ice`` and ``a.lice`` cannot register beside ``alice``; typed into
a login, an invitation or a role command they reach alice, whose stored name is
shown. Accounts that collided before the key existed survive the migration.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from tests.accounts.conftest import PASSWORD, BrowserFactory, add_user, alert
from tests.builders import make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.auth.user_names import find_user_named, user_key
from tilsit.config import Settings
from tilsit.db import engine as db_engine
from tilsit.db.engine import Database
from tilsit.db.models import AuditEventRow, InvitationRow, UserRow, UTCDateTime
from tilsit.index.manage import create_user, get_user
from tilsit.instance import Instance

LOOKALIKES = ["ALICE", "Alice", "a1ice", "AL1CE", "a.lice", "al-ice", "a_l_i_c_e"]


def user_names(instance: Instance) -> list[str]:
    with instance.db.read() as db:
        return list(db.scalars(select(UserRow.name).order_by(UserRow.id)))


def test_the_key_folds_case_separators_and_lookalike_letters() -> None:
    assert {user_key(name) for name in ["alice", *LOOKALIKES]} == {"a11ce"}
    assert user_key("b0b") == user_key("BOB") != user_key("bobby")


@pytest.mark.parametrize("name", LOOKALIKES)
def test_sign_up_with_a_lookalike_name_is_refused_naming_the_account(
    instance: Instance, browsers: BrowserFactory, name: str
) -> None:
    add_user(instance, "alice")
    response = browsers().form(
        "/account/register",
        {"name": name, "email": "eve@example.test", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 409
    reason = html.unescape(alert(response))
    assert f"'{name}' is taken" in reason and "existing account 'alice'" in reason, reason
    assert user_names(instance) == ["alice"]


def test_cli_user_create_refuses_a_lookalike_name(settings: Settings, instance: Instance) -> None:
    add_user(instance, "alice")
    result = run_cli(settings, "user", "create", "ALICE", check=False)
    assert result.returncode != 0
    assert "existing account 'alice'" in result.stderr, result.stderr
    assert user_names(instance) == ["alice"]


def test_login_by_a_lookalike_reaches_the_account_and_shows_its_name(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    assert web.login("ALICE").status_code == 303
    assert "Your account: alice" in web.get("/account/").text


def test_lookalikes_share_the_login_limit(instance: Instance, browsers: BrowserFactory) -> None:
    # login_rate is 10 failures per 5 minutes per user. Each spelling reaches alice,
    # so each must count against her: spread over ten spellings, the eleventh
    # attempt is refused even with the right password.
    add_user(instance, "alice")
    spellings = ["alice", *LOOKALIKES, "A.L.I.C.E", "aLiCe"]
    for number, spelling in enumerate(spellings[:10]):
        web = browsers(ip=f"10.0.0.{number + 1}")  # never the per-IP limit
        assert web.login(spelling, "not-the-password").status_code == 403
    assert browsers(ip="10.0.1.1").login("alice").status_code == 429


def test_lookups_by_role_commands_and_invitations_use_the_key(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    with instance.db.write() as db:
        owner = create_user(db, "owner")
        create_user(db, "alice")
        token = create_token(db, owner).secret
        assert get_user(db, "A1ICE").name == "alice"
    assert upload(client, make_wheel("named", "1.0"), token).status_code == 200
    # A role command typed with another spelling gives alice the role, and says so.
    added = run_cli(settings, "role", "add", "named", "ALICE", "Maintainer")
    assert "alice" in added.stdout, added.stdout
    listed = run_cli(settings, "role", "list", "named")
    assert "alice" in listed.stdout and "ALICE" not in listed.stdout
    # An invitation typed as "Al1ce" on the project page goes to alice.
    from tests.admin.signin import sign_in

    owner_page = sign_in(settings.db_url, client, "owner")
    run_cli(settings, "role", "remove", "named", "alice")
    sent = owner_page.post("/project/main/named/invite", {"user": "Al1ce", "role": "Owner"})
    assert sent.status_code == 200, sent.text
    assert "Invited alice" in sent.text
    with instance.db.read() as db:
        invitee = db.scalars(select(InvitationRow.user_id)).one()
        assert db.get(UserRow, invitee).name == "alice"  # type: ignore[union-attr]


def _at_revision_0003(url: str) -> Database:
    db = Database(url)
    config = Config()
    config.set_main_option("script_location", str(db_engine._MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    return db


def test_migration_keeps_the_oldest_of_colliding_names_and_reports_the_rest(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.data.mkdir(parents=True, exist_ok=True)
    db = _at_revision_0003(settings.db_url)
    try:
        users = sa.table(
            "users",
            sa.column("id", sa.Integer()),
            sa.column("name", sa.String()),
            sa.column("created_at", UTCDateTime()),
            sa.column("is_admin", sa.Boolean()),
            sa.column("is_active", sa.Boolean()),
        )
        with db.engine.begin() as connection:
            # Ids out of age order: age decides, not the id.
            for user_id, name, month in [
                (1, "ALICE", 3),
                (2, "alice", 1),
                (3, "bob", 2),
                (4, "a.lice", 4),
            ]:
                connection.execute(
                    users.insert().values(
                        id=user_id,
                        name=name,
                        created_at=datetime(2025, month, 1, tzinfo=UTC),
                        is_admin=False,
                        is_active=True,
                    )
                )
        with caplog.at_level(logging.WARNING, logger="tilsit.db.migrations"):
            db.migrate()
        assert db.revision() == db_engine.HEAD_REVISION
        with db.read() as session:
            keys = {
                row.name: row.name_key
                for row in session.execute(select(UserRow.name, UserRow.name_key))
            }
            assert keys == {
                "alice": "a11ce",
                "bob": "b0b",
                "ALICE": "~1~a11ce",
                "a.lice": "~4~a11ce",
            }
            reported = session.scalars(
                select(AuditEventRow).where(AuditEventRow.action == "user.name_collision")
            ).all()
            assert sorted(e.detail["name"] for e in reported) == ["ALICE", "a.lice"]
            assert {e.detail["looks_like"] for e in reported} == {"alice"}
            # The newer accounts still work under their exact names; a new spelling
            # reaches the oldest; a new look-alike cannot be made.
            assert find_user_named(session, "ALICE").id == 1  # type: ignore[union-attr]
            assert find_user_named(session, "a.lice").id == 4  # type: ignore[union-attr]
            assert find_user_named(session, "Alice").id == 2  # type: ignore[union-attr]
            assert session.scalar(select(func.count()).select_from(UserRow)) == 4
        messages = [r.getMessage() for r in caplog.records if r.name == "tilsit.db.migrations"]
        assert len(messages) == 2 and all("'alice'" in m for m in messages), messages
        with db.write() as session, pytest.raises(Exception, match="existing account 'alice'"):
            create_user(session, "aLIce")
    finally:
        db.dispose()
