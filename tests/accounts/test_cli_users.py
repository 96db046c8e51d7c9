"""``tilsit user create --email --password-stdin`` and ``tilsit user set-password``,
then logging in with that password on a live server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from sqlalchemy import select

from tests.conftest import LiveServer, settings_env
from tilsit.auth import passwords
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import UserRow


def cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "tilsit", *args, "--data", str(settings.data)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def stored_user(settings: Settings, name: str) -> UserRow:
    db = Database(settings.db_url)
    try:
        with db.read() as session:
            return session.scalars(select(UserRow).where(UserRow.name == name)).one()
    finally:
        db.dispose()


def login(base: str, name: str, password: str) -> httpx.Response:
    # The live server runs with Secure cookies; localhost-only tests speak plain HTTP,
    # so the CSRF token's session cookie is carried by hand.
    with httpx.Client(base_url=base) as http:
        page = http.get("/account/login")
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        return http.post(
            "/account/login",
            data={"name": name, "password": password, "csrf_token": token},
            headers={"cookie": cookie},
        )


def test_create_with_password_and_set_password(live_server: LiveServer) -> None:
    settings = live_server.settings
    weak = cli(settings, "user", "create", "erin", "--password-stdin", stdin="password1\n")
    assert weak.returncode == 1 and "common" in weak.stderr
    made = cli(
        settings,
        "user",
        "create",
        "erin",
        "--email",
        "Erin@Example.test",
        "--password-stdin",
        stdin="first-pass-phrase-1\n",
    )
    assert made.returncode == 0, made.stderr
    user = stored_user(settings, "erin")
    assert user.email == "erin@example.test" and user.email_verified_at is not None
    assert passwords.verify_password(user.password_hash, "first-pass-phrase-1")

    ok = login(live_server.url, "erin", "first-pass-phrase-1")
    assert ok.status_code == 303 and ok.headers["location"] == "/account/"

    changed = cli(
        settings, "user", "set-password", "erin", "--password-stdin", stdin="second-phrase-22\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert login(live_server.url, "erin", "first-pass-phrase-1").status_code == 403
    assert login(live_server.url, "erin", "second-phrase-22").status_code == 303
    missing = cli(settings, "user", "set-password", "nobody", "--password-stdin", stdin="x\n")
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_rate_limit_on_a_live_server(live_server: LiveServer) -> None:
    """Over real HTTP: the 11th failure answers 429 with Retry-After, and the reason."""
    assert cli(live_server.settings, "user", "create", "finn").returncode == 0
    answers = [login(live_server.url, "finn", f"wrong-{i}") for i in range(11)]
    assert [a.status_code for a in answers] == [403] * 10 + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert "Too many attempts" in answers[-1].text
    assert "frame-ancestors 'none'" in answers[-1].headers["content-security-policy"]
