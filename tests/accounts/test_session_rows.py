"""Anonymous visitors write nothing; expired sessions are swept (issue 9, item 15).

A cookie-less GET of a web page used to make a session row (a write on the one
writer lock) just to carry a CSRF token, and expired rows were never deleted.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.accounts.conftest import BrowserFactory, add_user, alert
from tests.conftest import LiveServer
from tilsit.auth import sessions
from tilsit.db.engine import Database
from tilsit.db.models import SessionRow, utcnow
from tilsit.instance import Instance

PAGES = ["/", "/account/login", "/account/register", "/account/forgot-password"]


def session_rows(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(SessionRow)) or 0)


def test_anonymous_page_views_make_no_session_rows(live_server: LiveServer) -> None:
    import httpx

    db = Database(live_server.settings.db_url)
    try:
        # Cookie-less visitors, as crawlers and scripts are.
        for _ in range(10):
            for path in PAGES:
                assert httpx.get(live_server.url + path).status_code == 200
        # A visitor that keeps its (anonymous) cookie.
        with httpx.Client(base_url=live_server.url) as http:
            first = http.get("/account/login")
            cookie = first.headers["set-cookie"].split(";", 1)[0]
            for _ in range(10):
                for path in PAGES:
                    assert http.get(path, headers={"cookie": cookie}).status_code == 200
        assert session_rows(db) == 0
    finally:
        db.dispose()


def test_anonymous_forms_still_refuse_forged_posts(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    victim, attacker = browsers(), browsers(ip="10.9.9.9")
    victim.get("/account/login")
    # No token, a made-up token, and the attacker's own valid token: all refused.
    for token in (None, "x" * 64, attacker.csrf("/account/login")):
        data = {"name": "alice", "password": "tilsit-correct-horse-42"}
        if token is not None:
            data["csrf_token"] = token
        refused = victim.post("/account/login", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    # Without the cookie, a page's token is worth nothing either.
    token = victim.csrf("/account/login")
    cookieless = browsers(ip="10.9.9.8")
    forged = cookieless.post("/account/login", data={"name": "alice", "csrf_token": token})
    assert forged.status_code == 403
    assert session_rows(instance.db) == 0
    # The real form works, and only the login makes a row.
    logged_in = victim.login("alice")
    assert logged_in.status_code == 303, alert(logged_in)
    with instance.db.read() as db:
        assert [r.auth_state for r in db.scalars(select(SessionRow))] == [sessions.FULL]


def test_expired_sessions_are_swept_at_login(instance: Instance, browsers: BrowserFactory) -> None:
    bob = add_user(instance, "bob")
    past = utcnow() - timedelta(days=1)
    with instance.db.write() as db:
        for _ in range(3):
            row = sessions.new_session(db, user=bob, state=sessions.FULL, now=past).row
            row.expires_at = past
        live = sessions.new_session(
            db, user=bob, state=sessions.FULL, lifetime=timedelta(hours=1)
        ).row.id
    assert session_rows(instance.db) == 4
    add_user(instance, "alice")
    assert browsers().login("alice").status_code == 303
    with instance.db.read() as db:
        left = set(db.scalars(select(SessionRow.id)))
    assert live in left and len(left) == 2  # bob's live one and alice's new one


def test_a_sweep_is_bounded(instance: Instance) -> None:
    bob = add_user(instance, "bob")
    past = utcnow() - timedelta(days=1)
    with instance.db.write() as db:
        for _ in range(5):
            sessions.new_session(db, user=bob, state=sessions.FULL, now=past).row.expires_at = past
    with instance.db.write() as db:
        assert sessions.sweep_sessions(db, limit=3) == 3
    with instance.db.write() as db:
        assert sessions.sweep_sessions(db, limit=3) == 2
    assert session_rows(instance.db) == 0
