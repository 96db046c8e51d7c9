"""The account story in a real Chromium: sign up, confirm the address from the mail,
log in, set up an authenticator app, log in with a code, add a passkey (CDP virtual
authenticator) and log in with it."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp

from tests.browser.conftest import login
from tests.conftest import LiveServer
from tests.smtp import SmtpServer

PASSWORD = "a-long-browser-phrase-31"


def fresh_code(secret: str, after: str | None = None) -> str:
    """The current code, waiting for the next step if it equals ``after`` (already used)."""
    totp = pyotp.TOTP(secret)
    while True:
        # Stay clear of a step boundary, so the code is still current when the server checks.
        if time.time() % 30 < 27:
            code = totp.now()
            if code != after:
                return code
        time.sleep(0.5)


def log_out(page: Any) -> None:
    page.get_by_role("button", name=re.compile("^Log out")).click()
    page.wait_for_url(re.compile(r"/$"))


def test_sign_up_totp_and_passkey(
    page: Any, mail_server: LiveServer, smtp_sink: SmtpServer
) -> None:
    base = mail_server.url
    # Sign up.
    page.goto(f"{base}/account/register")
    page.get_by_label("User name").fill("bea")
    page.get_by_label("Email address").fill("bea@example.test")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/account/?welcome=1")
    assert "not confirmed" in page.content()

    # Confirm the address with the link from the mail.
    link = smtp_sink.sink.link("bea@example.test", r"http://\S+/account/verify-email\?token=\S+")
    assert link.startswith(f"{base}/")
    page.goto(link)
    assert "is confirmed" in page.content()
    page.goto(f"{base}/account/")
    assert "confirmed" in page.content() and "not confirmed" not in page.content()

    # Log out and in with the password.
    log_out(page)
    login(page, base, "bea", PASSWORD)
    page.wait_for_url(f"{base}/account/")

    # Set up an authenticator app: the key is on the page beside the QR code.
    page.goto(f"{base}/account/totp")
    assert page.locator("figure.qr svg").count() == 1
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    assert secret
    first = fresh_code(secret)
    page.get_by_label("Six-digit code from the app").fill(first)
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_url(re.compile(r"/account/recovery-codes"))
    page.get_by_role("button", name="Make 8 recovery codes").click()
    assert page.locator("#recovery-codes li").count() == 8

    # Log out; logging in now asks for a code.
    log_out(page)
    login(page, base, "bea", PASSWORD)
    page.wait_for_url(f"{base}/account/two-factor")
    page.get_by_label("Six-digit code").fill(first)  # used already: refused
    page.get_by_role("button", name="Verify code").click()
    assert "already used" in page.locator("[role=alert]").inner_text()
    page.get_by_label("Six-digit code").fill(fresh_code(secret, after=first))
    page.get_by_role("button", name="Verify code").click()
    page.wait_for_url(f"{base}/account/")

    # Add a passkey with a virtual authenticator.
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    page.goto(f"{base}/account/passkeys")
    page.get_by_label("Name for the new passkey").fill("laptop")
    page.get_by_role("button", name="Add a passkey").click()
    # The script reloads the page once the server has verified the new passkey.
    page.locator("table").wait_for()
    assert "laptop" in page.locator("table").inner_text()

    # Log out and in with the passkey as second factor.
    log_out(page)
    login(page, base, "bea", PASSWORD)
    page.wait_for_url(f"{base}/account/two-factor")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{base}/account/")
    assert "Your account: bea" in page.content()
    assert "never" not in page.goto(f"{base}/account/passkeys").text()  # type: ignore[union-attr]

    # A signature counter that does not go up means a cloned key: refused.
    set_sign_count(mail_server, "bea", 10**9)
    log_out(page)
    login(page, base, "bea", PASSWORD)
    page.wait_for_url(f"{base}/account/two-factor")
    page.get_by_role("button", name="Use a passkey").click()
    status = page.locator("#passkey-status")
    status.filter(has_text="did not work").wait_for()
    assert "sign count" in status.inner_text()
    assert page.url == f"{base}/account/two-factor"


def set_sign_count(server: LiveServer, name: str, count: int) -> None:
    from sqlalchemy import select

    from tilsit.db.engine import Database
    from tilsit.db.models import UserRow, WebAuthnCredentialRow

    db = Database(server.settings.db_url)
    try:
        with db.write() as session:
            user = session.scalars(select(UserRow).where(UserRow.name == name)).one()
            for row in session.scalars(
                select(WebAuthnCredentialRow).where(WebAuthnCredentialRow.user_id == user.id)
            ):
                row.sign_count = count
    finally:
        db.dispose()
