"""Account pages: sign-up, log in (password, then a second factor), log out, email
verification, password reset and change, and the account overview.

The pages that manage second factors (TOTP, passkeys, recovery codes) are in
:mod:`tilsit.web.ui.account_security`; their routes are listed here too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth import accounts, passkeys, recovery, sessions, totp
from tilsit.auth.accounts import AccountError, RateLimited
from tilsit.auth.audit import record_event
from tilsit.auth.policy import has_two_factor
from tilsit.db.models import SessionRow, UserRow, WebAuthnCredentialRow
from tilsit.web.ui import account_security
from tilsit.web.ui.account_common import (
    NoPublicAddress,
    absolute_url,
    form_text,
    json_refusal,
    live_session,
    mail_links_refused,
    mail_task,
    notify,
    refusal,
    run,
    safe_next,
)
from tilsit.web.ui.context import (
    client_ip,
    instance_of,
    page,
    render,
    require_user,
    user_lifetime,
    validated_form,
    visitor_of,
)

# Time allowed between a correct password and the second factor.
_PARTIAL_LIFETIME = timedelta(minutes=10)


def _verification_mail(request: Request, to: str, secret: str) -> tuple[str, str, str]:
    link = absolute_url(request, f"/account/verify-email?token={secret}")
    body = (
        "Someone (we hope you) gave this address to a tilsit account.\n\n"
        f"Confirm it by opening this link within two days:\n\n{link}\n\n"
        "If it was not you, ignore this message.\n"
    )
    return to, "Confirm your email address", body


# --- sign-up ---------------------------------------------------------------


async def register_page(request: Request) -> Response:
    if request.method == "GET":
        return await render(request, "account/register.html")
    form = validated_form(request)
    name, email = form_text(form, "name", 100).strip(), form_text(form, "email", 300)
    password, confirm = form_text(form, "password"), form_text(form, "confirm")
    context = {"name": name, "email": email}
    if password != confirm:
        return await render(
            request,
            "account/register.html",
            {**context, "errors": ["The two passwords differ."]},
            400,
        )
    instance, ip = instance_of(request), client_ip(request)
    try:
        user, secret = await run(
            accounts.register, instance.db, instance.settings, name, email, password, ip
        )
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/register.html", context, exc)
    await _log_in(request, user, "password")
    assert user.email is not None
    try:
        mail = _verification_mail(request, user.email, secret)
    except NoPublicAddress:
        # The account stands; its address stays unconfirmed until a link can be sent.
        return RedirectResponse("/account/?welcome=nomail", status_code=303)
    response = RedirectResponse("/account/?welcome=1", status_code=303)
    response.background = mail_task(request, *mail)
    return response


# --- log in / log out --------------------------------------------------------


async def _log_in(request: Request, user: UserRow, method: str) -> None:
    """Replace the visitor's session with a full one for ``user`` (a new secret)."""
    instance, visitor, ip = instance_of(request), visitor_of(request), client_ip(request)

    def promote() -> sessions.NewSession:
        with instance.db.write() as db:
            live = db.get(UserRow, user.id)
            assert live is not None
            live.last_login_at = datetime.now(UTC)
            record_event(db, "login.ok", actor=live, ip=ip, user=live, detail={"method": method})
            return sessions.promote_session(
                db, live_session(db, request), live, sessions.FULL, user_lifetime(instance), ip=ip
            )

    visitor.replace(await run(promote), user)


async def login_page(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if visitor_of(request).user is not None:
            return RedirectResponse(target, status_code=303)
        return await render(request, "account/login.html", {"next": target})
    form = validated_form(request)
    name, password = form_text(form, "name", 100), form_text(form, "password")
    target = safe_next(form_text(form, "next", 2000) or None)
    context = {"next": target, "name": name}
    instance, visitor, ip = instance_of(request), visitor_of(request), client_ip(request)
    try:
        user = await run(
            accounts.login_with_password, instance.db, instance.settings, name, password, ip
        )
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/login.html", context, exc)

    def second_factor_owed() -> sessions.NewSession | None:
        with instance.db.write() as db:
            live = db.get(UserRow, user.id)
            assert live is not None
            if not has_two_factor(db, live):
                return None
            return sessions.promote_session(
                db,
                live_session(db, request),
                live,
                sessions.PARTIAL,
                _PARTIAL_LIFETIME,
                ip=ip,
                keep={"next": target},
            )

    partial = await run(second_factor_owed)
    if partial is not None:
        visitor.replace(partial, None)
        return RedirectResponse("/account/two-factor", status_code=303)
    await _log_in(request, user, "password")
    return RedirectResponse(target, status_code=303)


async def logout_page(request: Request) -> Response:
    instance, visitor = instance_of(request), visitor_of(request)
    row, user = visitor.row, visitor.user

    def end() -> None:
        with instance.db.write() as db:
            live = db.get(SessionRow, row.id) if row is not None else None
            if live is not None:
                sessions.end_session(db, live)
            if user is not None:
                record_event(db, "logout", actor=user, ip=client_ip(request), user=user)

    await run(end)
    visitor.end()
    return RedirectResponse("/", status_code=303)


# --- the second factor at login ---------------------------------------------


def _partial_user_id(request: Request) -> int | None:
    row = visitor_of(request).row
    if row is None or row.auth_state != sessions.PARTIAL or row.user_id is None:
        return None
    return row.user_id


async def _two_factor_context(request: Request, user_id: int) -> dict[str, Any]:
    instance = instance_of(request)

    def load() -> dict[str, Any]:
        with instance.db.read() as db:
            user = db.get(UserRow, user_id)
            keys = db.scalars(
                select(WebAuthnCredentialRow.id).where(WebAuthnCredentialRow.user_id == user_id)
            ).all()
            return {
                "has_totp": bool(user and user.totp_secret),
                "has_passkeys": bool(keys),
                "has_recovery": bool(user and recovery.remaining_codes(db, user)),
            }

    return await run(load)


async def two_factor_page(request: Request) -> Response:
    user_id = _partial_user_id(request)
    if user_id is None:
        return RedirectResponse("/account/login", status_code=303)
    context = await _two_factor_context(request, user_id)
    if request.method == "GET":
        return await render(request, "account/two_factor.html", context)
    form = validated_form(request)
    method = form_text(form, "method", 20)
    code = form_text(form, "code", 10_000)

    def check(db: Any, user: UserRow) -> str:
        if method == "totp":
            totp.accept_code(user, code)
            return "totp"
        if method == "recovery":
            if not recovery.use_code(db, user, code):
                raise accounts.SecondFactorRefused(
                    "That recovery code is not right, or was used already."
                )
            return "recovery"
        raise accounts.InvalidAccountInput("Choose a code from your app or a recovery code.")

    return await _finish_second_factor(request, user_id, check, context)


async def _finish_second_factor(
    request: Request, user_id: int, check: accounts.SecondFactorCheck, context: dict[str, Any]
) -> Response:
    instance, visitor, ip = instance_of(request), visitor_of(request), client_ip(request)
    target = safe_next(str(visitor.row.data.get("next", "")) if visitor.row else None)
    promoted: list[sessions.NewSession] = []

    def on_success(db: Any, user: UserRow) -> None:
        user.last_login_at = datetime.now(UTC)
        record_event(db, "login.ok", actor=user, ip=ip, user=user, detail={"method": "2fa"})
        promoted.append(
            sessions.promote_session(
                db, live_session(db, request), user, sessions.FULL, user_lifetime(instance), ip=ip
            )
        )

    try:
        user = await run(
            accounts.second_factor,
            instance.db,
            instance.settings,
            user_id,
            check,
            ip=ip,
            on_success=on_success,
        )
    except (ValueError, RateLimited) as exc:
        if request.headers.get("content-type", "").startswith("application/json"):
            return json_refusal(exc, _second_factor_status(exc))
        response = await refusal(request, "account/two_factor.html", context, exc)
        if not isinstance(exc, (AccountError, RateLimited)):
            response.status_code = _second_factor_status(exc)
        return response
    visitor.replace(promoted[0], user)
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse({"redirect": target})
    return RedirectResponse(target, status_code=303)


def _second_factor_status(exc: Exception) -> int:
    if isinstance(exc, (totp.InvalidCode, recovery.InvalidRecoveryCode)):
        return 400
    if isinstance(exc, AccountError):
        return exc.status
    return 403


async def passkey_login_options(request: Request) -> Response:
    user_id = _partial_user_id(request)
    if user_id is None:
        return JSONResponse({"error": "Log in with your password first."}, status_code=403)
    instance = instance_of(request)

    def begin() -> str:
        with instance.db.write() as db:
            rp = account_security.relying_party_of(request)
            rows = list(
                db.scalars(
                    select(WebAuthnCredentialRow).where(WebAuthnCredentialRow.user_id == user_id)
                )
            )
            if not rows:
                raise passkeys.PasskeyRefused("This account has no passkey.")
            options, pending = passkeys.authentication_options(rp, user_id, rows)
            live = live_session(db, request)
            assert live is not None
            live.data = {**live.data, passkeys.CHALLENGE_KEY: pending}
            return options

    try:
        options = await run(begin)
    except passkeys.PasskeyRefused as exc:
        return json_refusal(exc)
    return Response(options, media_type="application/json")


async def passkey_login(request: Request) -> Response:
    user_id = _partial_user_id(request)
    if user_id is None:
        return JSONResponse({"error": "Log in with your password first."}, status_code=403)
    try:
        credential = await request.json()
    except ValueError:
        return JSONResponse({"error": "The request body is not JSON."}, status_code=400)
    try:
        rp = account_security.relying_party_of(request)
    except passkeys.PasskeyRefused as exc:
        return json_refusal(exc)

    def check(db: Any, user: UserRow) -> str:
        live = live_session(db, request)
        assert live is not None
        data = dict(live.data)
        try:
            challenge = passkeys.take_challenge(data, "login", user.id)
        finally:
            live.data = data
        row = db.scalars(
            select(WebAuthnCredentialRow).where(
                WebAuthnCredentialRow.user_id == user.id,
                WebAuthnCredentialRow.credential_id == passkeys.credential_id_of(credential),
            )
        ).one_or_none()
        if row is None:
            raise passkeys.PasskeyRefused("That passkey is not registered to this account.")
        row.sign_count = passkeys.verify_authentication(rp, challenge, credential, row)
        row.last_used_at = datetime.now(UTC)
        return "webauthn"

    return await _finish_second_factor(request, user_id, check, {})


# --- email ------------------------------------------------------------------


async def verify_email_page(request: Request) -> Response:
    instance, ip = instance_of(request), client_ip(request)
    secret = request.query_params.get("token", "")

    def verify() -> str:
        with instance.db.write() as db:
            accounts.check_writable(db)
            user = accounts.redeem_email_token(db, secret, accounts.VERIFY)
            user.email_verified_at = datetime.now(UTC)
            record_event(db, "email.verified", actor=user, ip=ip, user=user)
            return user.email or ""

    try:
        address = await run(verify)
    except AccountError as exc:
        return await refusal(request, "account/message.html", {"title": "Email address"}, exc)
    return await render(
        request,
        "account/message.html",
        {"title": "Email address confirmed", "messages": [f"{address} is confirmed. Thank you."]},
    )


async def email_page(request: Request) -> Response:
    user = require_user(request)
    if request.method == "GET":
        return await render(request, "account/email.html")
    form = validated_form(request)
    instance, ip = instance_of(request), client_ip(request)
    new_address = form_text(form, "email", 300)
    try:
        # Before anything changes: an address that cannot be confirmed would only
        # replace a confirmed one.
        absolute_url(request, "/")
    except NoPublicAddress as exc:
        return await mail_links_refused(request, "account/email.html", {"email": new_address}, exc)
    try:
        await run(
            accounts.check_password_for,
            instance.db,
            instance.settings,
            user.id,
            form_text(form, "password"),
            ip,
        )

        def change() -> tuple[str, str]:
            with instance.db.write() as db:
                live = db.get(UserRow, user.id)
                assert live is not None
                secret = accounts.change_email(db, live, new_address, ip)
                return live.email or "", secret

        address, secret = await run(change)
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/email.html", {"email": new_address}, exc)
    response = await render(
        request,
        "account/message.html",
        {"title": "Email address", "messages": [f"A confirmation link was sent to {address}."]},
    )
    response.background = mail_task(request, *_verification_mail(request, address, secret))
    # The old address hears of it: the usual first step of an account takeover.
    if user.email and user.email.lower() != address.lower():
        notify(request, response, user, "email.changed", detail=f"new address {address}")
    return response


async def resend_verification(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    try:
        absolute_url(request, "/")
    except NoPublicAddress as exc:
        return await mail_links_refused(
            request, "account/message.html", {"title": "Email address"}, exc
        )

    def issue() -> tuple[str, str] | None:
        with instance.db.write() as db:
            accounts.check_writable(db)
            live = db.get(UserRow, user.id)
            if live is None or not live.email or live.email_verified_at is not None:
                return None
            return live.email, accounts.issue_email_token(db, live, accounts.VERIFY)

    try:
        issued = await run(issue)
    except AccountError as exc:
        return await refusal(request, "account/message.html", {"title": "Email address"}, exc)
    response = await render(
        request,
        "account/message.html",
        {
            "title": "Email address",
            "messages": [
                f"A new confirmation link was sent to {issued[0]}."
                if issued
                else "There is no unconfirmed address to confirm."
            ],
        },
    )
    if issued:
        response.background = mail_task(request, *_verification_mail(request, *issued))
    return response


# --- passwords --------------------------------------------------------------

_RESET_SENT = (
    "If that address is a confirmed address of an account here, a link to choose a new"
    " password is on its way. It works for one hour."
)


async def forgot_password_page(request: Request) -> Response:
    if request.method == "GET":
        return await render(request, "account/forgot.html")
    form = validated_form(request)
    instance, ip = instance_of(request), client_ip(request)
    address = form_text(form, "email", 300)
    try:
        # Checked before any token exists: a reset link is only ever built on the
        # server's own address, never on the Host this request names.
        link_base = absolute_url(request, "")
    except NoPublicAddress as exc:
        return await mail_links_refused(request, "account/forgot.html", {}, exc)
    try:
        found = await run(
            accounts.request_password_reset, instance.db, instance.settings, address, ip
        )
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/forgot.html", {}, exc)
    # The same page whether or not an account was found; the mail goes out after it.
    response = await render(request, "account/forgot.html", {"messages": [_RESET_SENT]})
    if found is not None:
        user, secret = found
        link = f"{link_base}/account/reset-password?token={secret}"
        body = (
            f"Someone asked to reset the password of the tilsit account {user.name}.\n\n"
            f"Choose a new password within one hour here:\n\n{link}\n\n"
            "If it was not you, ignore this message: the password stays as it is.\n"
        )
        assert user.email is not None
        response.background = mail_task(request, user.email, "Reset your password", body)
    return response


async def reset_password_page(request: Request) -> Response:
    instance, ip = instance_of(request), client_ip(request)
    if request.method == "GET":
        secret = request.query_params.get("token", "")

        def peek() -> None:
            with instance.db.read() as db:
                accounts.peek_email_token(db, secret, accounts.RESET)

        try:
            await run(peek)
        except AccountError as exc:
            return await refusal(request, "account/message.html", {"title": "Reset"}, exc)
        return await render(request, "account/reset.html", {"token": secret})
    form = validated_form(request)
    secret = form_text(form, "token", 200)
    password, confirm = form_text(form, "password"), form_text(form, "confirm")
    if password != confirm:
        return await render(
            request,
            "account/reset.html",
            {"token": secret, "errors": ["The two passwords differ."]},
            400,
        )
    try:
        await run(accounts.reset_password, instance.db, secret, password, ip)
    except AccountError as exc:
        return await refusal(request, "account/reset.html", {"token": secret}, exc)
    visitor_of(request).end()
    return await render(
        request,
        "account/message.html",
        {
            "title": "Password changed",
            "messages": ["Your password is changed and every session logged out. Log in again."],
        },
    )


async def password_page(request: Request) -> Response:
    user = require_user(request)
    if request.method == "GET":
        return await render(request, "account/password.html")
    form = validated_form(request)
    instance, visitor, ip = instance_of(request), visitor_of(request), client_ip(request)
    new, confirm = form_text(form, "new"), form_text(form, "confirm")
    if new != confirm:
        return await render(
            request, "account/password.html", {"errors": ["The two new passwords differ."]}, 400
        )
    try:
        await run(
            accounts.change_password,
            instance.db,
            instance.settings,
            user.id,
            form_text(form, "current"),
            new,
            ip,
        )
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/password.html", {}, exc)
    keep = visitor.row.id if visitor.row is not None else None

    def end_others() -> None:
        with instance.db.write() as db:
            live = db.get(UserRow, user.id)
            assert live is not None
            sessions.end_user_sessions(db, live, except_id=keep)

    await run(end_others)
    response = await render(
        request,
        "account/message.html",
        {
            "title": "Password changed",
            "messages": ["Your password is changed; your other sessions were logged out."],
        },
    )
    notify(request, response, user, "password.changed")
    return response


# --- overview ---------------------------------------------------------------


async def overview_page(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)

    def load() -> dict[str, Any]:
        with instance.db.read() as db:
            live = db.get(UserRow, user.id)
            assert live is not None
            keys = list(
                db.scalars(
                    select(WebAuthnCredentialRow)
                    .where(WebAuthnCredentialRow.user_id == user.id)
                    .order_by(WebAuthnCredentialRow.id)
                )
            )
            return {
                "account": live,
                "passkeys": keys,
                "recovery_left": recovery.remaining_codes(db, live),
                "two_factor": has_two_factor(db, live),
            }

    context = await run(load)
    welcome = request.query_params.get("welcome")
    if welcome == "nomail":
        context["messages"] = [
            "Welcome! Your account is made, but this server cannot send links by mail yet"
            " (its administrator has not set its public address), so your email address is"
            " not confirmed: use 'Send the confirmation link again' later."
        ]
    elif welcome:
        context["messages"] = [
            "Welcome! We sent a link to your email address: open it to confirm the address."
        ]
    return await render(request, "account/overview.html", context)


routes: list[BaseRoute] = [
    page("/account/", overview_page, name="account"),
    page("/account/register", register_page, ("GET", "POST")),
    page("/account/login", login_page, ("GET", "POST"), name="login"),
    page("/account/logout", logout_page, ("POST",)),
    page("/account/two-factor", two_factor_page, ("GET", "POST")),
    page("/account/two-factor/passkey-options", passkey_login_options, ("POST",)),
    page("/account/two-factor/passkey", passkey_login, ("POST",)),
    page("/account/verify-email", verify_email_page),
    page("/account/email", email_page, ("GET", "POST")),
    page("/account/email/resend", resend_verification, ("POST",)),
    page("/account/forgot-password", forgot_password_page, ("GET", "POST")),
    page("/account/reset-password", reset_password_page, ("GET", "POST")),
    page("/account/password", password_page, ("GET", "POST")),
    *account_security.routes,
]
