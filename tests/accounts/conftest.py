"""In-process helpers for account tests: a browser-like client per IP, users, forms.

The session cookie is ``__Host-``-prefixed and Secure, so the in-process client
speaks to ``https://testserver`` (the ASGI app does not care about the scheme,
but the cookie jar only sends Secure cookies over https).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest

from tests.conftest import AppClient
from tilsit.auth.passwords import hash_password
from tilsit.config import Settings, load_settings
from tilsit.db.models import UserRow
from tilsit.index.manage import create_user
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install

PASSWORD = "tilsit-correct-horse-42"


class Browser(AppClient):
    """An in-process client with its own cookies, seen by the server as coming from ``ip``."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: TilsitApp, ip: str) -> None:
        self.portal = portal
        self.transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        self.http = httpx.AsyncClient(transport=self.transport, base_url="https://testserver")

    def set_ip(self, ip: str) -> None:
        self.transport.client = (ip, 40000)

    def csrf(self, path: str = "/account/login") -> str:
        response = self.get(path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        assert match, f"no CSRF token on {path}: {response.status_code} {response.text[:300]}"
        return match[1]

    def form(self, path: str, data: dict[str, str], page: str | None = None) -> httpx.Response:
        """POST ``data`` with the CSRF token read from ``page`` (default: ``path``)."""
        token = self.csrf(page or path)
        return self.post(path, data={**data, "csrf_token": token})

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        return self.form("/account/login", {"name": name, "password": password})


BrowserFactory = Callable[..., Browser]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The in-process browser speaks to https://testserver, which mail links may name.

    With neither base_url nor allowed_hosts, account mail with a link is refused
    (tests/accounts/test_takeover.py covers that).
    """
    return load_settings(
        overrides={
            "data": tmp_path / "data",
            "database_url": database_url,
            "allowed_hosts": "testserver",
        },
        environ={},
    )


@pytest.fixture
def app(instance: Instance) -> TilsitApp:
    install()
    return TilsitApp(instance)


@pytest.fixture
def browsers(app: TilsitApp) -> Iterator[BrowserFactory]:
    """``browsers(ip="127.0.0.1")`` makes a fresh in-process browser."""
    made: list[Browser] = []
    with anyio.from_thread.start_blocking_portal() as portal:

        def make(ip: str = "127.0.0.1") -> Browser:
            browser = Browser(portal, app, ip)
            made.append(browser)
            return browser

        yield make
        for browser in made:
            portal.call(browser.http.aclose)


@pytest.fixture
def web(browsers: BrowserFactory) -> Browser:
    return browsers()


def add_user(
    instance: Instance,
    name: str,
    password: str = PASSWORD,
    *,
    email: str | None = None,
    verified: bool = True,
    **fields: Any,
) -> UserRow:
    with instance.db.write() as db:
        user = create_user(db, name)
        user.email = email or f"{name}@example.test"
        user.email_verified_at = datetime.now(UTC) if verified else None
        user.password_hash = hash_password(password)
        for key, value in fields.items():
            setattr(user, key, value)
        return user


def user_row(instance: Instance, name: str) -> UserRow:
    from sqlalchemy import select

    with instance.db.read() as db:
        return db.scalars(select(UserRow).where(UserRow.name == name)).one()


def alert(response: httpx.Response) -> str:
    """The text of the page's role=alert block (the reason for a refusal)."""
    match = re.search(r'role="alert"[^>]*>(.*?)</(?:div|p)>', response.text, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", match[1]).strip() if match else ""


def mails_to(instance: Instance, to: str) -> list[EmailMessage]:
    """The outbox's messages to ``to``, oldest first (the names sort by time)."""
    found = []
    for file in sorted(Path(instance.settings.outbox_dir).glob("*.eml")):
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == to:
            found.append(message)
    return found
