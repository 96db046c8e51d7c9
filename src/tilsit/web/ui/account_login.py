"""Log in (a password, then a second factor when the account has one) and log out.

A correct password for an account with a second factor gives a partial session
that lives ten minutes; the code, recovery code or passkey then promotes it to
a full one (:func:`log_in` does the same for a password alone, and for sign-up).
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
    form_text,
    json_refusal,
    live_session,
    refusal,
    run,
    safe_next,
)
from tilsit.web.ui.context import (
    client_ip,
    instance_of,
    page,
    render,
    user_lifetime,
    validated_form,
    visitor_of,
)

__all__ = ["log_in", "routes"]

# Time allowed between a correct password and the second factor.
_PARTIAL_LIFETIME = timedelta(minutes=10)


async def log_in(request: Request, user: UserRow, method: str) -> None:
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
    await log_in(request, user, "password")
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


routes: list[BaseRoute] = [
    page("/account/login", login_page, ("GET", "POST"), name="login"),
    page("/account/logout", logout_page, ("POST",)),
    page("/account/two-factor", two_factor_page, ("GET", "POST")),
    page("/account/two-factor/passkey-options", passkey_login_options, ("POST",)),
    page("/account/two-factor/passkey", passkey_login, ("POST",)),
]
