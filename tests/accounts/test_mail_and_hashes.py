"""Account mail over SMTP with STARTTLS and implicit TLS (a real aiosmtpd server with a
test CA), the outbox fallback, and argon2 rehashing when the parameters change."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from tests import postgres
from tests.accounts.conftest import PASSWORD, BrowserFactory, add_user, user_row
from tilsit.auth import mail, passwords
from tilsit.config import Settings
from tilsit.instance import Instance


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ssl.SSLContext, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    # The client side uses the system trust store; point it at the test CA only.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    return server_context, ca_pem


@contextmanager
def run_smtp(inbox: Inbox, context: ssl.SSLContext, implicit: bool) -> Iterator[int]:
    from aiosmtpd.controller import Controller

    port = postgres.free_port()
    if implicit:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context)
    else:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_over_tls(
    settings: Settings, tls_files: tuple[ssl.SSLContext, Path], security: str
) -> None:
    inbox = Inbox()
    with run_smtp(inbox, tls_files[0], implicit=security == "tls") as port:
        configured = replace(
            settings, smtp_host="127.0.0.1", smtp_port=port, smtp_security=security
        )
        assert mail.send_mail(configured, "ann@example.test", "Hello", "Body text") is None
        assert [m["Subject"] for m in inbox.messages] == ["Hello"]
        assert inbox.messages[0]["To"] == "ann@example.test"
        assert not configured.outbox_dir.exists()


def test_no_smtp_host_writes_the_outbox(settings: Settings) -> None:
    path = mail.send_mail(settings, "ann@example.test", "Hello", "Body text")
    assert path is not None and path.parent == settings.outbox_dir
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Hello" and message["From"] == settings.mail_from


def test_old_parameters_are_rehashed_at_login(instance: Instance, browsers: BrowserFactory) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    add_user(instance, "alice")
    with instance.db.write() as db:
        from tilsit.db.models import UserRow

        row = db.get(UserRow, user_row(instance, "alice").id)
        assert row is not None
        row.password_hash = old
    assert passwords.needs_rehash(old)
    assert browsers().login("alice").status_code == 303
    new = user_row(instance, "alice").password_hash
    assert new and new != old and not passwords.needs_rehash(new)
    assert passwords.verify_password(new, PASSWORD)
