"""Passwords: a reset by a link mailed to the confirmed address, and a change by
the logged-in owner (which logs out the account's other sessions).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth import accounts, sessions
from tilsit.auth.accounts import AccountError, RateLimited
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
from tilsit.web.ui.context import (
    client_ip,
    instance_of,
    page,
    render,
    require_user,
    validated_form,
    visitor_of,
)

__all__ = ["routes"]


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


routes: list[BaseRoute] = [
    page("/account/forgot-password", forgot_password_page, ("GET", "POST")),
    page("/account/reset-password", reset_password_page, ("GET", "POST")),
    page("/account/password", password_page, ("GET", "POST")),
]
