"""Browser fixtures: an SMTP sink, a live server that mails to it, Chromium, users.

The browser is the system Chromium (``/usr/bin/chromium``) driven by
Playwright's sync API. The server is reached as ``http://localhost:<port>``:
Chromium treats localhost as a secure context, so the ``__Host-`` cookie (which
must be Secure) and WebAuthn both work without TLS. Other areas' browser tests
reuse these fixtures: ``mail_server``, ``chromium``, ``page``,
``make_user`` and :func:`login`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from tests import postgres
from tests.conftest import LiveServer, need, start_server, stop
from tests.smtp import SmtpServer
from tilsit.config import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def mail_server(settings: Settings, tmp_path: Path, smtp_sink: SmtpServer) -> Iterator[LiveServer]:
    """A live server that sends account mail to ``smtp_sink``, reached as http://localhost."""
    port = postgres.free_port()
    server = start_server(
        settings,
        tmp_path / "server.log",
        env={
            "TILSIT_SMTP_HOST": smtp_sink.host,
            "TILSIT_SMTP_PORT": str(smtp_sink.port),
            "TILSIT_BASE_URL": f"http://localhost:{port}",
        },
        port=port,
    )
    server.url = f"http://localhost:{port}"
    yield server
    stop(server)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The system Chromium, headless, through Playwright, one per test module.

    Not one per session: Playwright's sync API keeps an event loop running in
    the main thread while it is open, and later tests call asyncio.run().
    """
    need(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
        raise
    need(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} is not executable")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and one page in it."""
    context = chromium.new_context()
    context.set_default_timeout(20_000)
    tab = context.new_page()
    yield tab
    context.close()


MakeUser = Callable[..., None]


@pytest.fixture
def make_user(settings: Settings) -> MakeUser:
    """``make_user(name, password, email=None, admin=False)``: an active user with a verified
    address, written straight into the (live) server's database."""

    def make(name: str, password: str, email: str | None = None, admin: bool = False) -> None:
        create_account(settings, name, password, email=email, admin=admin)

    return make


def create_account(
    settings: Settings, name: str, password: str, *, email: str | None = None, admin: bool = False
) -> None:
    from tilsit.auth.passwords import hash_password
    from tilsit.db.engine import Database
    from tilsit.db.models import UserRow
    from tilsit.index.manage import create_user

    db = Database(settings.db_url)
    try:
        with db.write() as session:
            user = session.scalars(
                sqlalchemy.select(UserRow).where(UserRow.name == name)
            ).one_or_none() or create_user(session, name, admin=admin)
            user.email = (email or f"{name}@example.test").lower()
            user.email_verified_at = datetime.now(UTC)
            user.password_hash = hash_password(password)
            user.password_changed_at = datetime.now(UTC)
    finally:
        db.dispose()


def login(page: Any, base_url: str, name: str, password: str) -> None:
    """Log in through the login form (stops at the second-factor step, if one is owed)."""
    page.goto(f"{base_url}/account/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
