"""Sign-up, email verification, password reset and change, 2FA set-up pages, switches."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select

from tests.accounts.conftest import (
    PASSWORD,
    Browser,
    BrowserFactory,
    add_user,
    alert,
    mails_to,
    user_row,
)
from tilsit.auth import passwords, switches
from tilsit.db.models import AuditEventRow, SessionRow, UserRow
from tilsit.instance import Instance


def outbox_link(instance: Instance, to: str, path: str) -> str:
    """The link to ``path`` in the newest message to ``to`` in the outbox."""
    found = mails_to(instance, to)
    assert found, f"no mail to {to}"
    body = found[-1].get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"https?://\S+{re.escape(path)}\?token=[\w-]+", body.get_content())
    assert match, body.get_content()
    return match[0]


def count_users(instance: Instance) -> int:
    with instance.db.read() as db:
        return int(db.scalar(select(func.count(UserRow.id))) or 0)


def register(web: Browser, name: str, email_: str, password: str, confirm: str | None = None):  # type: ignore[no-untyped-def]
    return web.form(
        "/account/register",
        {
            "name": name,
            "email": email_,
            "password": password,
            "confirm": password if confirm is None else confirm,
        },
    )


def test_sign_up_then_verify_email(instance: Instance, web: Browser) -> None:
    response = register(web, "dora", "Dora@Example.test", PASSWORD)
    assert response.status_code == 303, alert(response)
    overview = web.get(response.headers["location"])
    assert "not confirmed" in overview.text
    user = user_row(instance, "dora")
    assert user.email == "dora@example.test" and user.email_verified_at is None
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    link = outbox_link(instance, "dora@example.test", "/account/verify-email")
    confirmed = web.get(link.replace("http://testserver", ""))
    assert confirmed.status_code == 200 and "is confirmed" in confirmed.text
    assert user_row(instance, "dora").email_verified_at is not None
    # Single use.
    assert web.get(link.replace("http://testserver", "")).status_code == 400
    with instance.db.read() as db:
        actions = set(db.scalars(select(AuditEventRow.action)))
    assert {"account.created", "email.verified", "login.ok"} <= actions


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "at least 8 characters"),
        ("password1", "common, breached"),
        ("iloveyou2", "common, breached"),
        ("aaaaaaaaaaaa", "repeats"),
        ("my-name-is-dora!", "user name"),
        ("k.smith-rocks-2", "email address"),
        ("x" * 1025, "at most 1024 characters"),
    ],
)
def test_weak_passwords_are_refused_with_reasons(
    instance: Instance, web: Browser, password: str, reason: str
) -> None:
    before = passwords.verification_count()
    response = register(web, "dora", "k.smith@example.test", password)
    assert response.status_code == 400
    assert reason in alert(response)
    assert count_users(instance) == 0
    assert passwords.verification_count() == before


def test_sign_up_refusals(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    assert register(web, "alice", "new@example.test", PASSWORD).status_code == 409
    assert register(web, "alice2", "alice@example.test", PASSWORD).status_code == 409
    assert register(web, "bad name", "b@example.test", PASSWORD).status_code == 400
    assert register(web, "bob", "not-an-address", PASSWORD).status_code == 400
    mismatch = register(web, "bob", "bob@example.test", PASSWORD, "other-password-1")
    assert mismatch.status_code == 400 and "differ" in alert(mismatch)
    assert count_users(instance) == 1


def test_no_new_users_closes_sign_up(instance: Instance, web: Browser) -> None:
    with instance.db.write() as db:
        switches.set_switch(db, switches.NO_NEW_USERS, True, "test")
    response = register(web, "dora", "dora@example.test", PASSWORD)
    assert response.status_code == 403
    assert "Sign-up is closed" in alert(response)
    assert count_users(instance) == 0


def test_password_reset_only_to_a_verified_address(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    add_user(instance, "bob", verified=False)
    web = browsers()
    answers = [
        web.form("/account/forgot-password", {"email": address})
        for address in ("alice@example.test", "bob@example.test", "nobody@example.test")
    ]
    assert {a.status_code for a in answers} == {200}
    # The same page whichever address was given.
    assert len({re.sub(r'value="[^"]+"', "", a.text) for a in answers}) == 1
    mails = list(Path(instance.settings.outbox_dir).glob("*.eml"))
    assert len(mails) == 1  # alice only: bob's address is not verified

    # A logged-in session of alice elsewhere ends with the reset.
    other = browsers()
    assert other.login("alice").status_code == 303
    link = outbox_link(instance, "alice@example.test", "/account/reset-password")
    path = link.replace("http://testserver", "")
    form = web.get(path)
    assert form.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token
    weak = web.form(
        "/account/reset-password",
        {"token": token[1], "password": "password1", "confirm": "password1"},
        page=path,
    )
    assert weak.status_code == 400 and "common" in alert(weak)
    new = "a-new-long-phrase-77"
    done = web.form(
        "/account/reset-password",
        {"token": token[1], "password": new, "confirm": new},
        page=path,
    )
    assert done.status_code == 200, alert(done)
    assert other.get("/account/").status_code == 303
    assert web.get(path).status_code == 400  # used
    assert browsers().login("alice", new).status_code == 303
    assert browsers().login("alice", PASSWORD).status_code == 403


def test_change_password_ends_other_sessions(instance: Instance, browsers: BrowserFactory) -> None:
    add_user(instance, "alice")
    here, elsewhere = browsers(), browsers()
    assert here.login("alice").status_code == 303
    assert elsewhere.login("alice").status_code == 303
    wrong = here.form(
        "/account/password",
        {"current": "wrong-password", "new": "fresh-phrase-123", "confirm": "fresh-phrase-123"},
    )
    assert wrong.status_code == 403
    weak = here.form(
        "/account/password", {"current": PASSWORD, "new": "12345678", "confirm": "12345678"}
    )
    assert weak.status_code == 400
    ok = here.form(
        "/account/password",
        {"current": PASSWORD, "new": "fresh-phrase-123", "confirm": "fresh-phrase-123"},
    )
    assert ok.status_code == 200, alert(ok)
    assert here.get("/account/").status_code == 200
    assert elsewhere.get("/account/").status_code == 303
    with instance.db.read() as db:
        assert (
            db.scalar(select(func.count(SessionRow.id)).where(SessionRow.user_id.is_not(None))) == 1
        )


def test_totp_set_up_page(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    page = web.get("/account/totp")
    assert page.status_code == 200
    assert "<svg" in page.text and "data:" not in page.text
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
    assert secret
    # The pending secret stays the same across reloads until it is confirmed.
    assert secret[1] in web.get("/account/totp").text
    bad = web.form("/account/totp", {"code": "000000"})
    assert bad.status_code in (400, 403)
    assert user_row(instance, "alice").totp_secret is None
    ok = web.form("/account/totp", {"code": pyotp.TOTP(secret[1]).now()})
    assert ok.status_code == 303, alert(ok)
    assert ok.headers["location"].startswith("/account/recovery-codes")
    assert user_row(instance, "alice").totp_secret == secret[1]
    codes = web.form("/account/recovery-codes", {})
    shown = re.findall(r"<code>([0-9a-f-]{24})</code>", codes.text)
    assert len(shown) == 8
    assert codes.headers["cache-control"] == "no-store"
    # Removal needs the password.
    refused = web.form("/account/two-factor/remove", {"factor": "totp", "password": "wrong"})
    assert refused.status_code == 403
    assert user_row(instance, "alice").totp_secret is not None
    removed = web.form(
        "/account/two-factor/remove", {"factor": "totp", "password": PASSWORD}, page="/account/"
    )
    assert removed.status_code == 200, alert(removed)
    assert user_row(instance, "alice").totp_secret is None
    with instance.db.read() as db:
        actions = [e.action for e in db.scalars(select(AuditEventRow).order_by(AuditEventRow.id))]
    assert "2fa.totp.added" in actions and "recovery.generated" in actions
    assert "2fa.totp.removed" in actions


def test_email_change_needs_password_and_reverification(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    refused = web.form("/account/email", {"email": "new@example.test", "password": "nope"})
    assert refused.status_code == 403
    assert user_row(instance, "alice").email == "alice@example.test"
    ok = web.form("/account/email", {"email": "new@example.test", "password": PASSWORD})
    assert ok.status_code == 200, alert(ok)
    user = user_row(instance, "alice")
    assert user.email == "new@example.test" and user.email_verified_at is None
    assert outbox_link(instance, "new@example.test", "/account/verify-email")
