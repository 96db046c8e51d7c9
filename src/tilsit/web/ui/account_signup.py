"""Sign-up and the account's email address: register, confirm the address by the
link mailed to it, change it, and send the link again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from tilsit.auth import accounts
from tilsit.auth.accounts import AccountError, RateLimited
from tilsit.auth.audit import record_event
from tilsit.db.models import UserRow
from tilsit.web.ui.account_common import (
    NoPublicAddress,
    absolute_url,
    form_text,
    mail_links_refused,
    mail_task,
    notify,
    refusal,
    run,
)
from tilsit.web.ui.account_login import log_in
from tilsit.web.ui.context import client_ip, instance_of, page, render, require_user, validated_form

__all__ = ["routes"]


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
    await log_in(request, user, "password")
    assert user.email is not None
    try:
        mail = _verification_mail(request, user.email, secret)
    except NoPublicAddress:
        # The account stands; its address stays unconfirmed until a link can be sent.
        return RedirectResponse("/account/?welcome=nomail", status_code=303)
    response = RedirectResponse("/account/?welcome=1", status_code=303)
    response.background = mail_task(request, *mail)
    return response


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


routes: list[BaseRoute] = [
    page("/account/register", register_page, ("GET", "POST")),
    page("/account/verify-email", verify_email_page),
    page("/account/email", email_page, ("GET", "POST")),
    page("/account/email/resend", resend_verification, ("POST",)),
]
