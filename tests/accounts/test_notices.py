"""Security notices: the confirmed address hears of every change to the account's security.

Each change is made through the pages as a user would; the mail lands in the
outbox (no SMTP server is configured in these tests).
"""

from __future__ import annotations

import re

import pyotp

from tests.accounts.conftest import PASSWORD, Browser, add_user, alert, mails_to
from tilsit.instance import Instance


def notices_to(instance: Instance, to: str) -> list[tuple[str, str]]:
    """(subject, body) of each security notice sent to ``to``, oldest first."""
    out = []
    for message in mails_to(instance, to):
        subject = str(message["Subject"])
        if subject.startswith("[tilsit] "):
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            out.append((subject, str(body.get_content())))
    return out


def test_email_change_tells_the_old_address(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    ok = web.form("/account/email", {"email": "mallory@example.test", "password": PASSWORD})
    assert ok.status_code == 200, alert(ok)
    [(subject, body)] = notices_to(instance, "alice@example.test")
    assert subject == "[tilsit] The email address of your account was changed"
    assert "mallory@example.test" in body and "Account: alice" in body
    assert "/account/forgot-password" in body
    # The notice carries no link that acts on the account: only the reset page.
    assert "token=" not in body
    # The new address gets the confirmation link, not the notice.
    assert notices_to(instance, "mallory@example.test") == []
    assert mails_to(instance, "mallory@example.test")


def test_an_unconfirmed_address_gets_no_notice(instance: Instance, web: Browser) -> None:
    add_user(instance, "bob", verified=False)
    web.login("bob")
    ok = web.form("/account/email", {"email": "bob2@example.test", "password": PASSWORD})
    assert ok.status_code == 200, alert(ok)
    assert notices_to(instance, "bob@example.test") == []


def test_password_change_is_noticed(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    refused = web.form(
        "/account/password", {"current": "wrong", "new": "fresh-phrase-123", "confirm": "x"}
    )
    assert refused.status_code == 400
    assert notices_to(instance, "alice@example.test") == []
    ok = web.form(
        "/account/password",
        {"current": PASSWORD, "new": "fresh-phrase-123", "confirm": "fresh-phrase-123"},
    )
    assert ok.status_code == 200, alert(ok)
    [(subject, body)] = notices_to(instance, "alice@example.test")
    assert subject == "[tilsit] Your password was changed"
    assert "fresh-phrase-123" not in body
    assert "From:    127.0.0.1" in body


def test_second_factor_changes_are_noticed(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', web.get("/account/totp").text)
    assert secret
    assert web.form("/account/totp", {"code": pyotp.TOTP(secret[1]).now()}).status_code == 303
    codes = web.form("/account/recovery-codes", {})
    assert codes.status_code == 200, alert(codes)
    removed = web.form(
        "/account/two-factor/remove", {"factor": "totp", "password": PASSWORD}, page="/account/"
    )
    assert removed.status_code == 200, alert(removed)
    subjects = [subject for subject, _ in notices_to(instance, "alice@example.test")]
    assert subjects == [
        "[tilsit] An authenticator app was added to your account",
        "[tilsit] New recovery codes were made for your account",
        "[tilsit] The authenticator app was removed from your account",
    ]
    shown = re.findall(r"<code>([0-9a-f-]{24})</code>", codes.text)
    bodies = "".join(body for _, body in notices_to(instance, "alice@example.test"))
    assert shown and not any(code in bodies for code in shown)
    assert secret[1] not in bodies


def test_token_creation_is_noticed_without_the_secret(instance: Instance, web: Browser) -> None:
    add_user(instance, "alice")
    web.login("alice")
    created = web.form(
        "/account/tokens/new", {"description": "ci", "expiry": "30"}, page="/account/tokens"
    )
    assert created.status_code == 200, alert(created)
    token = re.search(r"tilsit-[\w-]{20,}", created.text)
    assert token
    [(subject, body)] = notices_to(instance, "alice@example.test")
    assert subject == "[tilsit] An API token was created for your account"
    assert token[0] not in body
    assert token[0][:13] in body


def test_every_subject_fits_one_header_line() -> None:
    from tilsit.auth.notices import CHANGES, notice_for

    for change in CHANGES:
        notice = notice_for(change, to="a@example.test", user_name="a", ip="", reset_url="/r")
        assert len("Subject: " + notice.subject) <= 78, notice.subject
        assert "unknown address" in notice.body
