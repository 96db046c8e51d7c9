"""Every account form refuses a POST without the session's CSRF token (403, nothing
changed), and every HTML page carries the Content-Security-Policy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.accounts.conftest import Browser, BrowserFactory, add_user
from tilsit.db.models import (
    AuditEventRow,
    EmailTokenRow,
    RateLimitHitRow,
    RecoveryCodeRow,
    SessionRow,
    UserRow,
    WebAuthnCredentialRow,
)
from tilsit.instance import Instance

FORMS: list[tuple[str, dict[str, str]]] = [
    ("/account/register", {"name": "eve", "email": "eve@example.test", "password": "x" * 20}),
    ("/account/login", {"name": "alice", "password": "tilsit-correct-horse-42"}),
    ("/account/logout", {}),
    ("/account/two-factor", {"method": "totp", "code": "123456"}),
    ("/account/email", {"email": "eve@example.test", "password": "tilsit-correct-horse-42"}),
    ("/account/email/resend", {}),
    ("/account/forgot-password", {"email": "alice@example.test"}),
    ("/account/reset-password", {"token": "x", "password": "y" * 20, "confirm": "y" * 20}),
    ("/account/password", {"current": "tilsit-correct-horse-42", "new": "z" * 20}),
    ("/account/totp", {"code": "123456"}),
    ("/account/recovery-codes", {}),
    ("/account/two-factor/remove", {"factor": "totp", "password": "tilsit-correct-horse-42"}),
]
JSON_ENDPOINTS = [
    "/account/two-factor/passkey-options",
    "/account/two-factor/passkey",
    "/account/passkeys/options",
    "/account/passkeys/add",
]


def fingerprint(instance: Instance) -> tuple[Any, ...]:
    with instance.db.read() as db:
        users = [
            (u.name, u.email, u.email_verified_at, u.password_hash, u.totp_secret, u.is_active)
            for u in db.scalars(select(UserRow).order_by(UserRow.id))
        ]
        counts = tuple(
            db.scalar(select(func.count()).select_from(table))
            for table in (
                RecoveryCodeRow,
                WebAuthnCredentialRow,
                EmailTokenRow,
                AuditEventRow,
                RateLimitHitRow,
            )
        )
        sessions = db.scalar(
            select(func.count()).select_from(SessionRow).where(SessionRow.user_id.is_not(None))
        )
    return users, counts, sessions


@pytest.fixture
def logged_in(instance: Instance, browsers: BrowserFactory) -> Browser:
    add_user(instance, "alice", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    with instance.db.write() as db:
        alice = db.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        alice.totp_secret = None  # log in with the password only, then add a secret back
    web = browsers()
    assert web.login("alice").status_code == 303
    with instance.db.write() as db:
        alice = db.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        alice.totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    return web


@pytest.mark.parametrize(("path", "data"), FORMS, ids=[p for p, _ in FORMS])
@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_form_without_csrf_token_is_refused(
    instance: Instance, logged_in: Browser, path: str, data: dict[str, str], token: str
) -> None:
    before = fingerprint(instance)
    body = dict(data)
    if token == "wrong":
        body["csrf_token"] = "not-the-token"
    response = logged_in.post(path, data=body)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "content-security-policy" in response.headers
    assert fingerprint(instance) == before
    assert logged_in.get("/account/").status_code == 200  # still logged in


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("header", [None, "not-the-token"])
def test_json_without_csrf_header_is_refused(
    instance: Instance, logged_in: Browser, path: str, header: str | None
) -> None:
    before = fingerprint(instance)
    headers = {"x-csrf-token": header} if header else {}
    response = logged_in.post(path, json={"credential": {}}, headers=headers)
    assert response.status_code == 403
    # A form field does not stand in for the header on a JSON body.
    token = logged_in.csrf("/account/")
    sneaky = logged_in.post(
        path, content=f'{{"csrf_token": "{token}"}}', headers={"content-type": "application/json"}
    )
    assert sneaky.status_code == 403
    assert fingerprint(instance) == before


ANONYMOUS_PAGES = [
    "/account/login",
    "/account/register",
    "/account/forgot-password",
    "/account/reset-password?token=nope",
    "/account/verify-email?token=nope",
]
USER_PAGES = [
    "/account/",
    "/account/password",
    "/account/email",
    "/account/totp",
    "/account/passkeys",
    "/account/recovery-codes",
]


def assert_csp(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"


def test_every_account_page_carries_csp(
    instance: Instance, browsers: BrowserFactory, logged_in: Browser
) -> None:
    anonymous = browsers()
    for path in ANONYMOUS_PAGES:
        response = anonymous.get(path)
        assert response.status_code in (200, 400), path
        assert_csp(response)
    for path in USER_PAGES:
        response = logged_in.get(path)
        assert response.status_code == 200, path
        assert_csp(response)
    # The second-factor step and its refusals.
    add_user(instance, "bob", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    partial = browsers()
    partial.login("bob")
    step = partial.get("/account/two-factor")
    assert step.status_code == 200
    assert_csp(step)
    for code in ("000000", "x" * 5000):
        assert_csp(partial.form("/account/two-factor", {"method": "totp", "code": code}))
    limited = None
    for _ in range(6):
        limited = partial.form("/account/two-factor", {"method": "totp", "code": "000000"})
    assert limited is not None and limited.status_code == 429
    assert_csp(limited)
    # A refused login and a refused sign-up.
    assert_csp(browsers().login("alice", "wrong-password"))
    assert_csp(browsers().form("/account/register", {"name": "x y"}))
