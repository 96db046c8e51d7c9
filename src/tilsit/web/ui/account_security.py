"""Second-factor management pages: authenticator app (TOTP), passkeys, recovery codes.

Setting up a factor proves it works before it is saved (a TOTP code from the
new secret; a verified WebAuthn registration). Removing one asks for the
password again, so a session left open on someone else's screen is not
enough to strip an account of its second factor.
"""

from __future__ import annotations

from typing import Any

import segno
from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth import accounts, passkeys, recovery, totp
from tilsit.auth.accounts import AccountError, RateLimited
from tilsit.auth.audit import record_event
from tilsit.auth.policy import has_two_factor
from tilsit.db.models import RecoveryCodeRow, UserRow, WebAuthnCredentialRow
from tilsit.web.hosts import HostNotAllowed, NoPublicAddress, public_base
from tilsit.web.ui.account_common import (
    form_text,
    json_refusal,
    live_session,
    notify,
    refusal,
    run,
    session_data,
)
from tilsit.web.ui.context import (
    client_ip,
    instance_of,
    page,
    render,
    require_user,
    validated_form,
)

__all__ = ["relying_party_of", "routes"]

_PENDING_TOTP = "totp_pending"
_ISSUER = "tilsit"


def relying_party_of(request: Request) -> passkeys.RelyingParty:
    """The WebAuthn relying party: the server's public address, like mail links.

    With base_url or allowed_hosts set it is pinned to them (a request naming
    another host is refused). With neither, the request's own address is used:
    unlike a mailed link this is safe, since the browser itself checks that the
    relying party matches the page it is on and signs the origin it saw, so a
    forged Host cannot make a victim's browser use a passkey for another site.
    """
    settings = instance_of(request).settings
    try:
        base = public_base(settings, request.headers.get("host", ""), request.url.scheme)
    except HostNotAllowed as exc:
        raise passkeys.PasskeyRefused(exc.user_message) from exc
    except NoPublicAddress:
        base = str(request.base_url)
    return passkeys.relying_party(base, "")


# --- authenticator app --------------------------------------------------------


async def _totp_setup(request: Request, user: UserRow, status: int = 200, **extra: Any) -> Response:
    """The set-up page with a pending secret kept in the session (made on first view)."""
    instance = instance_of(request)
    secret = session_data(request).get(_PENDING_TOTP)
    if not isinstance(secret, str):
        secret = totp.new_secret()

        def keep() -> None:
            with instance.db.write() as db:
                live = live_session(db, request)
                assert live is not None
                live.data = {**live.data, _PENDING_TOTP: secret}

        await run(keep)
    uri = totp.provisioning_uri(secret, user.name, _ISSUER)
    # Inline SVG markup: the CSP allows no data: images, and none are needed.
    qr_svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    context = {"qr_svg": qr_svg, "secret": secret, "secret_grouped": grouped, **extra}
    return await render(request, "account/totp.html", context, status)


async def totp_page(request: Request) -> Response:
    user = require_user(request)
    if user.totp_secret:
        return await render(request, "account/totp.html", {"enabled": True})
    if request.method == "GET":
        return await _totp_setup(request, user)
    form = validated_form(request)
    instance, ip = instance_of(request), client_ip(request)
    secret = session_data(request).get(_PENDING_TOTP)
    if not isinstance(secret, str):
        return await _totp_setup(request, user, 400, errors=["Start the set-up again."])

    def check(db: Any, live: UserRow) -> str:
        accounts.check_writable(db)
        if live.totp_secret:
            raise accounts.InvalidAccountInput("An authenticator app is already set up.")
        live.totp_secret = secret
        live.totp_last_step = None
        try:
            totp.accept_code(live, form_text(form, "code", 100))
        except ValueError:
            live.totp_secret = None
            raise
        return "totp"

    def saved(db: Any, live: UserRow) -> None:
        record_event(db, "2fa.totp.added", actor=live, ip=ip, user=live)
        session = live_session(db, request)
        if session is not None:
            session.data = {k: v for k, v in session.data.items() if k != _PENDING_TOTP}

    try:
        await run(
            accounts.second_factor,
            instance.db,
            instance.settings,
            user.id,
            check,
            ip=ip,
            on_success=saved,
        )
    except (ValueError, RateLimited) as exc:
        response = await _totp_setup(request, user, 400, errors=[str(exc)])
        if isinstance(exc, RateLimited):
            response.status_code = 429
            response.headers["retry-after"] = str(exc.retry_after)
        elif isinstance(exc, AccountError):
            response.status_code = exc.status
        return response
    redirect = RedirectResponse("/account/recovery-codes?after=totp", status_code=303)
    notify(request, redirect, user, "2fa.totp.added")
    return redirect


# --- passkeys -----------------------------------------------------------------


def _user_passkeys(db: Any, user_id: int) -> list[WebAuthnCredentialRow]:
    return list(
        db.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.user_id == user_id)
            .order_by(WebAuthnCredentialRow.id)
        )
    )


async def passkeys_page(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)

    def load() -> list[WebAuthnCredentialRow]:
        with instance.db.read() as db:
            return _user_passkeys(db, user.id)

    return await render(request, "account/passkeys.html", {"passkeys": await run(load)})


async def passkey_options(request: Request) -> Response:
    user = require_user(request)
    instance = instance_of(request)
    try:
        rp = relying_party_of(request)
    except passkeys.PasskeyRefused as exc:
        return json_refusal(exc)

    def begin() -> str:
        with instance.db.write() as db:
            accounts.check_writable(db)
            live = db.get(UserRow, user.id)
            assert live is not None
            options, pending = passkeys.registration_options(rp, live, _user_passkeys(db, user.id))
            session = live_session(db, request)
            assert session is not None
            session.data = {**session.data, passkeys.CHALLENGE_KEY: pending}
            return options

    try:
        return Response(await run(begin), media_type="application/json")
    except (AccountError, passkeys.PasskeyRefused) as exc:
        return json_refusal(exc)


async def passkey_add(request: Request) -> Response:
    user = require_user(request)
    instance, ip = instance_of(request), client_ip(request)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "The request body is not JSON."}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "The request body is not an object."}, status_code=400)
    label = str(body.get("label") or "").strip()[:100] or "passkey"
    try:
        rp = relying_party_of(request)
    except passkeys.PasskeyRefused as exc:
        return json_refusal(exc)

    def add() -> None:
        with instance.db.write() as db:
            accounts.check_writable(db)
            session = live_session(db, request)
            assert session is not None
            data = dict(session.data)
            try:
                challenge = passkeys.take_challenge(data, "register", user.id)
            finally:
                session.data = data
            new = passkeys.verify_registration(rp, challenge, body.get("credential"))
            taken = db.scalars(
                select(WebAuthnCredentialRow.id).where(
                    WebAuthnCredentialRow.credential_id == new.credential_id
                )
            ).first()
            if taken is not None:
                raise passkeys.PasskeyRefused("That passkey is registered already.")
            db.add(
                WebAuthnCredentialRow(
                    user_id=user.id,
                    credential_id=new.credential_id,
                    public_key=new.public_key,
                    sign_count=new.sign_count,
                    label=label,
                    transports=new.transports,
                )
            )
            live = db.get(UserRow, user.id)
            record_event(
                db, "2fa.webauthn.added", actor=live, ip=ip, user=live, detail={"label": label}
            )

    try:
        await run(add)
    except (AccountError, passkeys.PasskeyRefused) as exc:
        return json_refusal(exc)
    added = JSONResponse({"redirect": "/account/passkeys"})
    notify(request, added, user, "2fa.webauthn.added", detail=f"passkey {label!r}")
    return added


# --- recovery codes -----------------------------------------------------------


async def recovery_page(request: Request) -> Response:
    user = require_user(request)
    instance, ip = instance_of(request), client_ip(request)

    def remaining() -> tuple[int, bool]:
        with instance.db.read() as db:
            live = db.get(UserRow, user.id)
            assert live is not None
            return recovery.remaining_codes(db, live), has_two_factor(db, live)

    left, enabled = await run(remaining)
    context: dict[str, Any] = {"left": left, "two_factor": enabled}
    if request.query_params.get("after") == "totp":
        context["messages"] = ["Your authenticator app is set up. Now make recovery codes."]
    if request.method == "GET":
        return await render(request, "account/recovery.html", context)
    if not enabled:
        return await render(
            request,
            "account/recovery.html",
            {**context, "errors": ["Set up an authenticator app or a passkey first."]},
            400,
        )

    def generate() -> list[str]:
        with instance.db.write() as db:
            accounts.check_writable(db)
            live = db.get(UserRow, user.id)
            assert live is not None
            codes = recovery.generate_codes(db, live)
            record_event(db, "recovery.generated", actor=live, ip=ip, user=live)
            return codes

    try:
        codes = await run(generate)
    except AccountError as exc:
        return await refusal(request, "account/recovery.html", context, exc)
    response = await render(request, "account/recovery.html", {**context, "codes": codes})
    notify(request, response, user, "recovery.generated")
    return response


# --- removing a factor ----------------------------------------------------------


async def remove_factor(request: Request) -> Response:
    user = require_user(request)
    form = validated_form(request)
    instance, ip = instance_of(request), client_ip(request)
    what = form_text(form, "factor", 40)
    try:
        await run(
            accounts.check_password_for,
            instance.db,
            instance.settings,
            user.id,
            form_text(form, "password"),
            ip,
        )
    except (AccountError, RateLimited) as exc:
        return await refusal(request, "account/message.html", {"title": "Two-factor"}, exc)

    def remove() -> tuple[str, str, str]:
        with instance.db.write() as db:
            accounts.check_writable(db)
            live = db.get(UserRow, user.id)
            assert live is not None
            if what == "totp" and live.totp_secret:
                live.totp_secret = None
                record_event(db, "2fa.totp.removed", actor=live, ip=ip, user=live)
                done = "The authenticator app is removed."
                change, detail = "2fa.totp.removed", ""
            elif what.startswith("passkey:") and what[8:].isdigit():
                row = db.get(WebAuthnCredentialRow, int(what[8:]))
                if row is None or row.user_id != live.id:
                    raise accounts.InvalidAccountInput("There is no such passkey.")
                db.delete(row)
                db.flush()
                record_event(
                    db,
                    "2fa.webauthn.removed",
                    actor=live,
                    ip=ip,
                    user=live,
                    detail={"label": row.label},
                )
                done = f"The passkey {row.label!r} is removed."
                change, detail = "2fa.webauthn.removed", f"passkey {row.label!r}"
            else:
                raise accounts.InvalidAccountInput("Choose a second factor to remove.")
            if not has_two_factor(db, live):
                # Recovery codes stand in for a second factor; with none left they go too.
                db.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == live.id))
            return done, change, detail

    try:
        done, change, detail = await run(remove)
    except AccountError as exc:
        return await refusal(request, "account/message.html", {"title": "Two-factor"}, exc)
    response = await render(
        request, "account/message.html", {"title": "Two-factor", "messages": [done]}
    )
    notify(request, response, user, change, detail=detail)
    return response


routes: list[BaseRoute] = [
    page("/account/totp", totp_page, ("GET", "POST")),
    page("/account/passkeys", passkeys_page),
    page("/account/passkeys/options", passkey_options, ("POST",)),
    page("/account/passkeys/add", passkey_add, ("POST",)),
    page("/account/recovery-codes", recovery_page, ("GET", "POST")),
    page("/account/two-factor/remove", remove_factor, ("POST",)),
]
