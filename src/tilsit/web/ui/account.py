"""Account pages: the account overview, and every account route.

The pages themselves are in the modules of each area, whose routes are listed
here: sign-up and email verification in :mod:`tilsit.web.ui.account_signup`,
log in (password, then a second factor) and log out in
:mod:`tilsit.web.ui.account_login`, password reset and change in
:mod:`tilsit.web.ui.account_passwords`, and the pages that manage second
factors (TOTP, passkeys, recovery codes) in :mod:`tilsit.web.ui.account_security`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tilsit.auth import recovery
from tilsit.auth.policy import has_two_factor
from tilsit.db.models import UserRow, WebAuthnCredentialRow
from tilsit.web.ui import account_login, account_passwords, account_security, account_signup
from tilsit.web.ui.account_common import run
from tilsit.web.ui.context import instance_of, page, render, require_user

__all__ = ["routes"]


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
    *account_signup.routes,
    *account_login.routes,
    *account_passwords.routes,
    *account_security.routes,
]
