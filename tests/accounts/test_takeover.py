"""Account takeover through mail links (issue 9, items 6 and 9).

A password-reset link built from the request's Host header mails the victim a
link to the attacker's host; a link must also lose its power when the account
changes under it (another reset, a new password, a new address, disabled).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio.from_thread
import httpx
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
from tests.conftest import LiveServer, run_cli, start_server, stop
from tests.smtp import SmtpServer
from tilsit.config import Settings
from tilsit.db.engine import Database
from tilsit.db.models import EmailTokenRow, UserRow
from tilsit.instance import Instance, open_instance
from tilsit.web.app import TilsitApp
from tilsit.web.hosts import mail_links_warning

NEW = "a-new-long-phrase-77"
VICTIM = "alice@example.test"

# --- the forged Host, against a live server ---------------------------------------


def forgot_password(server: LiveServer, host: str, email: str = VICTIM) -> httpx.Response:
    """Ask for a reset as a script would: its own cookie and token, ``Host: host``."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        page = http.get("/account/forgot-password", headers={"host": host})
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        return http.post(
            "/account/forgot-password",
            data={"email": email, "csrf_token": token[1]},
            headers={"host": host, "cookie": cookie},
        )


def add_victim(settings: Settings) -> None:
    run_cli(settings, "user", "create", "alice", "--email", VICTIM)


def token_rows(settings: Settings) -> int:
    db = Database(settings.db_url)
    try:
        with db.read() as session:
            return int(session.scalar(select(func.count()).select_from(EmailTokenRow)) or 0)
    finally:
        db.dispose()


def all_mail(sink: SmtpServer) -> str:
    return "\n".join(str(m) for m in sink.sink.messages)


@pytest.fixture
def mailing_server(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpServer, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    """A live server mailing to ``smtp_sink``, with the address settings of the test's param."""
    from tests import postgres

    port = postgres.free_port()
    address: dict[str, str] = request.param(port)
    env = {"TILSIT_SMTP_HOST": smtp_sink.host, "TILSIT_SMTP_PORT": str(smtp_sink.port), **address}
    server = start_server(settings, tmp_path / "server.log", env=env, port=port)
    yield server
    stop(server)


def allowed_localhost(port: int) -> dict[str, str]:
    return {"TILSIT_ALLOWED_HOSTS": f"localhost:{port}"}


def pinned_base(port: int) -> dict[str, str]:
    return {"TILSIT_BASE_URL": f"http://localhost:{port}"}


@pytest.mark.parametrize("mailing_server", [allowed_localhost], indirect=True)
def test_forged_host_gets_no_reset_mail_with_allowed_hosts(
    settings: Settings, mailing_server: LiveServer, smtp_sink: SmtpServer
) -> None:
    add_victim(settings)
    port = mailing_server.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"localhost:{port}@evil.example"):
        refused = forgot_password(mailing_server, host)
        assert refused.status_code == 400
        assert "not one of them" in refused.text
    assert token_rows(settings) == 0
    # The same request on the server's own address is mailed, with a link to it.
    assert forgot_password(mailing_server, f"localhost:{port}").status_code == 200
    link = smtp_sink.sink.link(VICTIM, r"https?://\S+/account/reset-password\?token=\S+")
    assert link.startswith(f"http://localhost:{port}/")
    time.sleep(1)  # any mail from the refused requests would have arrived by now
    assert len(smtp_sink.sink.messages) == 1
    assert "evil" not in all_mail(smtp_sink)


@pytest.mark.parametrize("mailing_server", [pinned_base], indirect=True)
def test_forged_host_is_ignored_with_base_url(
    settings: Settings, mailing_server: LiveServer, smtp_sink: SmtpServer
) -> None:
    add_victim(settings)
    port = mailing_server.url.rsplit(":", 1)[1]
    assert forgot_password(mailing_server, "evil.example").status_code == 200
    link = smtp_sink.sink.link(VICTIM, r"https?://\S+/account/reset-password\?token=\S+")
    assert link.startswith(f"http://localhost:{port}/account/reset-password?token=")
    assert "evil" not in all_mail(smtp_sink)


def test_no_public_address_means_no_account_mail(
    settings: Settings, live_server: LiveServer
) -> None:
    add_victim(settings)
    for host in ("evil.example", live_server.url.split("//", 1)[1]):
        refused = forgot_password(live_server, host)
        assert refused.status_code == 503
        assert "cannot send links by mail yet" in refused.text
        assert "base_url" in refused.text
    assert token_rows(settings) == 0
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.iterdir())
    # The operator is told: in /_/health, the start-up text and the log.
    health = httpx.get(f"{live_server.url}/_/health").json()
    warning = mail_links_warning(replace(settings, allowed_hosts=""))  # as the server runs
    assert warning and warning in health["warnings"]
    log = Path(live_server.settings.data).parent.joinpath("server.log").read_text()
    assert f"warning: {warning}" in log  # the start-up text
    assert "account mail refused: no link built: neither base_url nor allowed_hosts" in log


# --- other ways the request's address reached a mail, in process ----------------------


def test_without_an_address_sign_up_works_but_sends_no_link(settings: Settings) -> None:
    bare = open_instance(replace(settings, allowed_hosts=""))
    try:
        with anyio.from_thread.start_blocking_portal() as portal:
            web = Browser(portal, TilsitApp(bare), "127.0.0.1")
            made = web.form(
                "/account/register",
                {"name": "dora", "email": "dora@example.test", "password": NEW, "confirm": NEW},
            )
            assert made.status_code == 303 and made.headers["location"].endswith("nomail")
            page = web.get(made.headers["location"])
            assert "cannot send links by mail yet" in page.text
            again = web.form("/account/email/resend", {}, page="/account/")
            assert again.status_code == 503 and "base_url" in alert(again)
            moved = web.form("/account/email", {"email": "dora2@example.test", "password": NEW})
            assert moved.status_code == 503
            portal.call(web.http.aclose)
        assert not bare.settings.outbox_dir.exists()
        with bare.db.read() as db:
            assert db.scalars(select(UserRow.email)).one() == "dora@example.test"
    finally:
        bare.close()


# --- links lose their power when the account changes (items 6 and 9) -----------------


def reset_link(instance: Instance, web: Browser) -> str:
    """Ask for a reset of alice's password; the path of the link mailed."""
    before = len(mails_to(instance, VICTIM))
    assert web.form("/account/forgot-password", {"email": VICTIM}).status_code == 200
    found = mails_to(instance, VICTIM)
    assert len(found) == before + 1
    body = found[-1].get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(
        r"https://testserver(/account/reset-password\?token=[\w-]+)", body.get_content()
    )
    assert match, body.get_content()
    return match[1]


def use_reset(web: Browser, path: str, password: str = NEW) -> httpx.Response:
    token = path.split("token=", 1)[1]
    return web.form(
        "/account/reset-password",
        {"token": token, "password": password, "confirm": password},
        page="/account/forgot-password",
    )


def test_spending_one_reset_link_ends_the_others(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    first, second = reset_link(instance, web), reset_link(instance, web)
    assert web.get(first).status_code == web.get(second).status_code == 200
    assert use_reset(web, second).status_code == 200
    assert web.get(first).status_code == 400
    refused = use_reset(web, first, "yet-another-phrase-88")
    assert refused.status_code == 400 and "not valid" in alert(refused)
    assert browsers().login("alice", NEW).status_code == 303


def test_changing_the_password_ends_outstanding_reset_links(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    outstanding = reset_link(instance, web)
    assert web.login("alice").status_code == 303
    changed = web.form("/account/password", {"current": PASSWORD, "new": NEW, "confirm": NEW})
    assert changed.status_code == 200, alert(changed)
    assert browsers().get(outstanding).status_code == 400
    assert use_reset(browsers(), outstanding, "attackers-phrase-99").status_code == 400
    assert browsers().login("alice", NEW).status_code == 303


def test_a_link_issued_before_a_password_set_elsewhere_is_refused(
    settings: Settings, instance: Instance, browsers: BrowserFactory
) -> None:
    # The CLI sets the password without touching the links: the link's date refuses it.
    add_user(instance, "alice")
    web = browsers()
    outstanding = reset_link(instance, web)
    run_cli_with_stdin(settings, "user", "set-password", "alice", "--password-stdin", stdin=NEW)
    assert web.get(outstanding).status_code == 400
    assert use_reset(web, outstanding, "attackers-phrase-99").status_code == 400


def run_cli_with_stdin(settings: Settings, *args: str, stdin: str) -> None:
    from tests.accounts.test_cli_users import cli

    result = cli(settings, *args, stdin=stdin + "\n")
    assert result.returncode == 0, result.stderr


def test_a_link_for_a_disabled_account_is_refused(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    outstanding = reset_link(instance, web)
    with instance.db.write() as db:
        db.get_one(UserRow, user_row(instance, "alice").id).is_active = False
    assert web.get(outstanding).status_code == 400
    assert use_reset(web, outstanding).status_code == 400


def test_links_sent_to_an_old_address_are_refused(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice")
    web = browsers()
    outstanding = reset_link(instance, web)
    assert web.login("alice").status_code == 303
    # A verification link for a first new address, then the address changes again.
    for address in ("alice2@example.test", "alice3@example.test"):
        moved = web.form("/account/email", {"email": address, "password": PASSWORD})
        assert moved.status_code == 200, alert(moved)
    body = mails_to(instance, "alice2@example.test")[-1].get_body(preferencelist=("plain",))
    assert body is not None
    verify = re.search(
        r"https://testserver(/account/verify-email\?token=[\w-]+)", body.get_content()
    )
    assert verify
    assert browsers().get(verify[1]).status_code == 400
    assert use_reset(browsers(), outstanding).status_code == 400
    assert user_row(instance, "alice").email_verified_at is None
    with instance.db.read() as db:
        spent = db.scalars(
            select(EmailTokenRow).where(EmailTokenRow.email != "alice3@example.test")
        )
        assert all(row.used_at is not None for row in spent)


def test_a_verification_link_issued_before_a_password_change_is_refused(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice", verified=False)
    web = browsers()
    assert web.login("alice").status_code == 303
    assert web.form("/account/email/resend", {}, page="/account/").status_code == 200
    body = mails_to(instance, VICTIM)[-1].get_body(preferencelist=("plain",))
    assert body is not None
    verify = re.search(
        r"https://testserver(/account/verify-email\?token=[\w-]+)", body.get_content()
    )
    assert verify
    changed = web.form("/account/password", {"current": PASSWORD, "new": NEW, "confirm": NEW})
    assert changed.status_code == 200
    assert web.get(verify[1]).status_code == 400
    assert user_row(instance, "alice").email_verified_at is None
