"""``tilsit user list|disable|enable|admin``: the web admin's account changes from the CLI,
through the same domain function, audited, never leaving the server without an admin."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.admin.signin import sign_in
from tests.builders import make_wheel
from tests.conftest import AppClient, run_cli
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.config import Settings
from tilsit.db.models import SessionRow, UserRow
from tilsit.instance import Instance


def _user(instance: Instance, name: str) -> UserRow:
    with instance.db.read() as session:
        return session.scalars(select(UserRow).where(UserRow.name == name)).one()


def _events(settings: Settings, action: str) -> list[dict[str, object]]:
    out = run_cli(settings, "audit", "export", "--action", action).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_user_list_shows_every_account(settings: Settings, instance: Instance) -> None:
    run_cli(settings, "user", "create", "root", "--admin", "--email", "root@example.test")
    run_cli(settings, "user", "create", "alice")
    lines = [line.split("\t") for line in run_cli(settings, "user", "list").stdout.splitlines()]
    assert lines[0] == ["name", "email", "verified", "admin", "active", "2fa", "created"]
    rows = {line[0]: line[1:6] for line in lines[1:]}
    assert rows == {
        "alice": ["-", "no", "no", "yes", "no"],
        "root": ["root@example.test", "yes", "yes", "yes", "no"],
    }


def test_disable_ends_sessions_stops_tokens_and_enable_gives_them_back(
    settings: Settings, instance: Instance, client: AppClient
) -> None:
    visitor = sign_in(settings.db_url, client, "alice")
    with instance.db.write() as session:
        row = session.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        token = create_token(session, row).secret
    assert upload(client, make_wheel("before", "1.0"), token).status_code == 200

    done = run_cli(settings, "user", "disable", "ALICE")
    assert "disabled 'ALICE'" in done.stdout, done.stdout
    assert not _user(instance, "alice").is_active
    with instance.db.read() as session:
        assert session.scalars(select(SessionRow)).first() is None
    refused = upload(client, make_wheel("after", "1.0"), token)
    assert refused.status_code == 403 and "disabled" in refused.text
    assert "Your account" not in visitor.get("/account/").text
    again = run_cli(settings, "user", "disable", "alice")
    assert "already disabled" in again.stdout

    run_cli(settings, "user", "enable", "alice")
    assert _user(instance, "alice").is_active
    assert upload(client, make_wheel("after", "1.0"), token).status_code == 200
    disabled, enabled = _events(settings, "account.disabled"), _events(settings, "account.enabled")
    assert [(e["actor"], e["user"]) for e in disabled] == [("cli", "alice")]
    assert [(e["actor"], e["user"]) for e in enabled] == [("cli", "alice")]


def test_admin_on_and_off_refuses_to_remove_the_last_admin(
    settings: Settings, instance: Instance
) -> None:
    run_cli(settings, "user", "create", "root", "--admin")
    run_cli(settings, "user", "create", "alice")
    for args in (("admin", "root", "--off"), ("disable", "root")):
        refused = run_cli(settings, "user", *args, check=False)
        assert refused.returncode == 1, refused
        assert "only active administrator" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert _user(instance, "root").is_admin and _user(instance, "root").is_active

    assert "is now an administrator" in run_cli(settings, "user", "admin", "alice", "--on").stdout
    assert _user(instance, "alice").is_admin
    run_cli(settings, "user", "admin", "root", "--off")
    assert not _user(instance, "root").is_admin
    # alice is the last one now.
    refused = run_cli(settings, "user", "disable", "alice", check=False)
    assert refused.returncode == 1 and "only active administrator" in refused.stderr
    granted, revoked = _events(settings, "admin.granted"), _events(settings, "admin.revoked")
    assert [(e["actor"], e["user"]) for e in granted] == [("cli", "alice")]
    assert [(e["actor"], e["user"]) for e in revoked] == [("cli", "root")]


def test_unknown_user_is_one_line(settings: Settings, instance: Instance) -> None:
    refused = run_cli(settings, "user", "disable", "nobody", check=False)
    assert refused.returncode == 1
    assert "no user named 'nobody'" in refused.stderr
    assert "Traceback" not in refused.stderr
