"""Password login: rate limits before hashing, sessions, disabled accounts, next."""

from __future__ import annotations

from sqlalchemy import select

from tests.accounts.conftest import PASSWORD, BrowserFactory, add_user, alert
from tilsit.auth import passwords, switches
from tilsit.db.models import AuditEventRow, SessionRow, UserRow
from tilsit.instance import Instance


def events(instance: Instance, action: str) -> list[AuditEventRow]:
    with instance.db.read() as db:
        return list(db.scalars(select(AuditEventRow).where(AuditEventRow.action == action)))


def test_login_rotates_session_and_logout_ends_it(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    web.get("/account/login")
    anonymous = web.http.cookies.get("__Host-tilsit-session")
    assert anonymous
    response = web.login("alice")
    assert response.status_code == 303, alert(response)
    assert response.headers["location"] == "/account/"
    full = web.http.cookies.get("__Host-tilsit-session")
    assert full and full != anonymous
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    page = web.get("/account/")
    assert page.status_code == 200 and "Your account: alice" in page.text
    assert len(events(instance, "login.ok")) == 1

    # The anonymous cookie from before the login is worth nothing now.
    stale = browsers()
    stale.http.cookies.set("__Host-tilsit-session", anonymous, domain="testserver")
    assert stale.get("/account/").status_code == 303

    out = web.form("/account/logout", {}, page="/account/")
    assert out.status_code == 303
    assert web.get("/account/").headers["location"].startswith("/account/login")
    with instance.db.read() as db:
        assert db.scalars(select(SessionRow).where(SessionRow.user_id.is_not(None))).all() == []


def test_wrong_password_and_unknown_user_answer_alike(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    before = passwords.verification_count()
    wrong = web.login("alice", "not-the-password")
    unknown = web.login("nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 403
    assert alert(wrong) == alert(unknown) == "The user name or password is not right."
    # Both paths ran one real argon2 verification (the unknown name against a dummy hash).
    assert passwords.verification_count() - before == 2
    assert len(events(instance, "login.failed")) == 2


def test_disabled_account_cannot_log_in(instance: Instance, browsers: BrowserFactory) -> None:
    add_user(instance, "carol", is_active=False)
    response = browsers().login("carol")
    assert response.status_code == 403
    assert "disabled" in alert(response)


def test_next_is_kept_same_origin_only(instance: Instance, browsers: BrowserFactory) -> None:
    add_user(instance, "alice")
    for target, expected in [
        ("/account/password", "/account/password"),
        ("//evil.example/x", "/account/"),
        ("/\\evil.example", "/account/"),
        ("https://evil.example/", "/account/"),
        ("/ok?x=1", "/ok?x=1"),
    ]:
        web = browsers()
        token = web.csrf("/account/login")
        response = web.post(
            "/account/login",
            data={"name": "alice", "password": PASSWORD, "next": target, "csrf_token": token},
        )
        assert response.status_code == 303
        assert response.headers["location"] == expected, target


def test_attack_table_one_user_1000_bad_passwords(
    instance: Instance, browsers: BrowserFactory
) -> None:
    """1,000 wrong passwords for one name from rotating addresses: from the 11th on, 429
    with Retry-After, and exactly 10 argon2 verifications in all."""
    add_user(instance, "victim")
    web = browsers()
    token = web.csrf()
    before = passwords.verification_count()
    statuses = []
    for attempt in range(1000):
        # A new address for each attempt: only the per-user limit can stop this.
        web.set_ip(f"10.{attempt // 250}.{attempt % 250}.1")
        response = web.post(
            "/account/login",
            data={"name": "victim", "password": f"guess-{attempt}", "csrf_token": token},
        )
        statuses.append(response.status_code)
        if attempt >= 10:
            assert response.status_code == 429, attempt
            assert int(response.headers["retry-after"]) > 0
    assert statuses[:10] == [403] * 10
    assert passwords.verification_count() - before == 10
    last = alert(response)
    assert "Too many attempts" in last and "10 per 5 minutes" in last
    # The right password is refused too while the limit holds, without a hash.
    web.set_ip("10.9.9.9")
    blocked = web.post(
        "/account/login", data={"name": "victim", "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert passwords.verification_count() - before == 10
    # Every hashed failure was audited, the refused ones were never hashed.
    assert len(events(instance, "login.failed")) == 10


def test_attack_table_one_ip_many_names(instance: Instance, browsers: BrowserFactory) -> None:
    """1,000 attempts from one address, each at another user name: per-IP limit
    (login_ip_rate, 100 per 5 minutes)."""
    for i in range(3):
        add_user(instance, f"user{i}")
    web = browsers("192.0.2.7")
    token = web.csrf()
    before = passwords.verification_count()
    for attempt in range(1000):
        response = web.post(
            "/account/login",
            data={"name": f"user{attempt % 3}x{attempt}", "password": "wrong", "csrf_token": token},
        )
        if attempt < 100:
            assert response.status_code == 403, attempt
        else:
            assert response.status_code == 429, attempt
            assert int(response.headers["retry-after"]) > 0
    assert passwords.verification_count() - before == 100
    assert "100 per 5 minutes" in alert(response)
    # Another address is not affected.
    other = browsers("192.0.2.8")
    assert other.login("user0").status_code == 303


def test_success_refunds_the_hit(instance: Instance, browsers: BrowserFactory) -> None:
    """Only failures count: many good logins never reach the limit."""
    add_user(instance, "alice")
    for _ in range(15):
        web = browsers()
        assert web.login("alice").status_code == 303


def test_overlong_password_is_refused_unhashed(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    before = passwords.verification_count()
    response = browsers().login("alice", "x" * 5000)
    assert response.status_code == 403
    assert passwords.verification_count() == before


def test_read_only_allows_login_and_logout(instance: Instance, browsers: BrowserFactory) -> None:
    add_user(instance, "alice")
    with instance.db.write() as db:
        switches.set_switch(db, switches.READ_ONLY, True, "test")
    web = browsers()
    assert web.login("alice").status_code == 303
    refused = web.form(
        "/account/password",
        {"current": PASSWORD, "new": "another-fine-phrase-9", "confirm": "another-fine-phrase-9"},
    )
    assert refused.status_code == 503
    with instance.db.read() as db:
        user = db.scalars(select(UserRow).where(UserRow.name == "alice")).one()
        assert passwords.verify_password(user.password_hash, PASSWORD)
    assert web.form("/account/logout", {}, page="/account/").status_code == 303


def test_one_users_mistakes_do_not_lock_out_others_behind_one_nat(
    instance: Instance, browsers: BrowserFactory
) -> None:
    """Failures count per user (login_rate) and per IP (login_ip_rate) separately: alice
    mistyping until she is refused leaves bob, on the same address, free to log in."""
    add_user(instance, "alice")
    add_user(instance, "bob")
    nat = "198.51.100.20"
    alice = browsers(nat)
    token = alice.csrf()
    statuses = [
        alice.post(
            "/account/login",
            data={"name": "alice", "password": f"typo-{n}", "csrf_token": token},
        ).status_code
        for n in range(30)
    ]
    assert statuses == [403] * 10 + [429] * 20
    # Refused attempts are not counted against the address: 10 hits, not 30.
    bob = browsers(nat)
    assert bob.login("bob").status_code == 303
    assert "Your account: bob" in bob.get("/account/").text
    # alice herself stays refused, even with the right password.
    assert browsers(nat).login("alice").status_code == 429
