"""Second factors at login: TOTP replay and normalisation, recovery codes, the 2FA limit."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest
from sqlalchemy import select

from tests.accounts.conftest import Browser, BrowserFactory, add_user, alert, user_row
from tilsit.auth import recovery, totp
from tilsit.db.models import AuditEventRow, UserRow
from tilsit.instance import Instance

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def steady_clock() -> float:
    """Now, but never within 3 s of a step boundary, so a test's step cannot change
    between computing a code and the server checking it."""
    while time.time() % totp.STEP > totp.STEP - 3:
        time.sleep(0.5)
    return time.time()


def code_at(offset_steps: int, now: float) -> str:
    return pyotp.TOTP(SECRET).at(now + offset_steps * totp.STEP)


def partial_login(browsers: BrowserFactory, name: str = "alice") -> Browser:
    web = browsers()
    response = web.login(name)
    assert response.status_code == 303 and response.headers["location"] == "/account/two-factor"
    # Not logged in yet: account pages still send to the login page.
    assert web.get("/account/").status_code == 303
    return web


def send_code(web: Browser, code: str, method: str = "totp") -> httpx.Response:
    return web.form("/account/two-factor", {"method": method, "code": code})


def set_last_step(instance: Instance, name: str, step: int | None) -> None:
    with instance.db.write() as db:
        user = db.scalars(select(UserRow).where(UserRow.name == name)).one()
        user.totp_last_step = step


def test_totp_code_works_once_and_variants_cannot_replay(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    now = steady_clock()
    code = code_at(0, now)
    web = partial_login(browsers)
    ok = send_code(web, code)
    assert ok.status_code == 303, alert(ok)
    assert web.get("/account/").status_code == 200
    assert user_row(instance, "alice").totp_last_step == int(now // totp.STEP)

    again = partial_login(browsers)
    replay = send_code(again, code)
    assert replay.status_code == 403
    assert "already used" in alert(replay)
    for variant in (f" {code}", f"{code[:3]} {code[3:]}", f"{code}\n", f"\t{code} "):
        response = send_code(again, variant)
        assert response.status_code == 403, repr(variant)
        assert "already used" in alert(response), repr(variant)
    assert again.get("/account/").status_code == 303


@pytest.mark.parametrize(
    "text",
    [
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "12345",
        "1234567",
        "12345a",
        "",
        "\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
        "1" * 5000,
    ],
)
def test_malformed_codes_are_invalid(
    instance: Instance, browsers: BrowserFactory, text: str
) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    web = partial_login(browsers)
    response = send_code(web, text)
    assert response.status_code == 400
    assert "six digits" in alert(response)
    assert user_row(instance, "alice").totp_last_step is None


def test_full_width_spelling_of_a_used_code_is_refused(
    instance: Instance, browsers: BrowserFactory
) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    now = steady_clock()
    code = code_at(0, now)
    assert send_code(partial_login(browsers), code).status_code == 303
    wide = "".join(chr(ord(c) - ord("0") + 0xFF10) for c in code)
    response = send_code(partial_login(browsers), wide)
    assert response.status_code == 400


@pytest.mark.parametrize(("offset", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_totp_window_is_one_step(
    instance: Instance, browsers: BrowserFactory, offset: int, accepted: bool
) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    now = steady_clock()
    response = send_code(partial_login(browsers), code_at(offset, now))
    assert (response.status_code == 303) is accepted, alert(response)
    if not accepted:
        assert response.status_code == 403


def test_matching_step_table() -> None:
    now = 1_700_000_015.0
    step = int(now // totp.STEP)
    for offset, expected in [(-2, None), (-1, step - 1), (0, step), (1, step + 1), (2, None)]:
        assert totp.matching_step(SECRET, code_at(offset, now), now) == expected


def test_two_factor_rate_limit(instance: Instance, browsers: BrowserFactory) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    now = steady_clock()
    web = partial_login(browsers)
    wrong = f"{(int(code_at(0, now)) + 500_000) % 1_000_000:06d}"
    for _ in range(5):
        assert send_code(web, wrong).status_code == 403
    limited = send_code(web, code_at(0, now))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many attempts" in alert(limited)
    # The right code was not consumed by the refused attempt.
    assert user_row(instance, "alice").totp_last_step is None
    with instance.db.read() as db:
        failed = db.scalars(select(AuditEventRow).where(AuditEventRow.action == "2fa.failed"))
        assert len(failed.all()) == 5


def test_recovery_codes_are_single_use(instance: Instance, browsers: BrowserFactory) -> None:
    user = add_user(instance, "alice", totp_secret=SECRET)
    with instance.db.write() as db:
        live = db.get(UserRow, user.id)
        assert live is not None
        codes = recovery.generate_codes(db, live)
    assert len(codes) == 8 and len(set(codes)) == 8
    web = partial_login(browsers)
    ok = send_code(web, codes[0].upper(), "recovery")
    assert ok.status_code == 303, alert(ok)
    reused = send_code(partial_login(browsers), codes[0], "recovery")
    assert reused.status_code == 403
    assert "used already" in alert(reused)
    with instance.db.read() as db:
        live = db.get(UserRow, user.id)
        assert live is not None
        assert recovery.remaining_codes(db, live) == 7
        used = db.scalars(select(AuditEventRow).where(AuditEventRow.action == "recovery.used"))
        assert len(used.all()) == 1


@pytest.mark.parametrize("text", ["a" * 5000, "not a code", "0" * 19, "g" * 20])
def test_malformed_recovery_codes_get_a_clean_400(
    instance: Instance, browsers: BrowserFactory, text: str
) -> None:
    add_user(instance, "alice", totp_secret=SECRET)
    response = send_code(partial_login(browsers), text, "recovery")
    assert response.status_code == 400
    assert "recovery code is 20" in alert(response)
    assert "content-security-policy" in response.headers


def test_recovery_codes_are_stored_hashed(instance: Instance) -> None:
    user = add_user(instance, "alice")
    with instance.db.write() as db:
        live = db.get(UserRow, user.id)
        assert live is not None
        codes = recovery.generate_codes(db, live)
    with instance.db.read() as db:
        from tilsit.db.models import RecoveryCodeRow

        stored = db.scalars(select(RecoveryCodeRow.code_hash)).all()
    plain = {c.replace("-", "") for c in codes}
    assert len(stored) == 8 and not plain & set(stored)
