"""Signed-in visitors for page tests that need no browser: a real session row and its cookie.

The session is made the way the login page makes one (``sessions.new_session`` in
the FULL state); the browser tests cover the login form itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import httpx
import sqlalchemy

from tilsit.auth import sessions
from tilsit.db.engine import Database
from tilsit.db.models import UserRow
from tilsit.index.manage import create_user

COOKIE = "__Host-tilsit-session"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Requester(Protocol):
    """Anything with ``request(method, url, **kwargs)``: the in-process client or httpx."""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...


@dataclass
class Visitor:
    client: Requester
    name: str
    secret: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"cookie": f"{COOKIE}={self.secret}"}

    def get(self, url: str) -> httpx.Response:
        return self.client.request("GET", url, headers=self.headers)

    def post(
        self, url: str, data: dict[str, str], *, csrf: str | None = "session"
    ) -> httpx.Response:
        """POST a form; ``csrf=None`` sends none, any other string is sent as the token."""
        form = dict(data)
        if csrf == "session":
            form["csrf_token"] = self.csrf
        elif csrf is not None:
            form["csrf_token"] = csrf
        return self.client.request("POST", url, data=form, headers=self.headers)


def sign_in(db_url: str, client: Requester, name: str, *, admin: bool = False) -> Visitor:
    """``name`` (created if new) logged in with a fresh session."""
    db = Database(db_url)
    try:
        with db.write() as session:
            user = session.scalars(
                sqlalchemy.select(UserRow).where(UserRow.name == name)
            ).one_or_none() or create_user(session, name, admin=admin)
            new = sessions.new_session(
                session, user=user, state=sessions.FULL, lifetime=timedelta(hours=1)
            )
            return Visitor(client, name, new.secret, new.row.csrf_token)
    finally:
        db.dispose()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html
    return match[1]
