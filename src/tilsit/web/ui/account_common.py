"""What the account pages share: running blocking work, refusals, mail, safe redirects."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from tilsit.auth import mail, notices
from tilsit.auth.accounts import AccountError
from tilsit.auth.ratelimit import RateLimited
from tilsit.db.models import SessionRow, UserRow
from tilsit.web.hosts import NoPublicAddress, public_base
from tilsit.web.ui.context import client_ip, instance_of, render, visitor_of

__all__ = [
    "NoPublicAddress",
    "absolute_url",
    "form_text",
    "json_refusal",
    "live_session",
    "mail_links_refused",
    "mail_task",
    "notify",
    "refusal",
    "run",
    "safe_next",
    "session_data",
]

T = TypeVar("T")
log = logging.getLogger("tilsit.web.account")

# Long enough for any real field; a password field allows the password cap plus slack
# so that an over-long password is refused with its own message, not a truncation.
_FIELD_LIMIT = 4096


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work (database, argon2, SMTP) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def form_text(form: Any, name: str, limit: int = _FIELD_LIMIT) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value[: limit + 1]


async def refusal(
    request: Request, template: str, context: dict[str, Any], exc: Exception
) -> HTMLResponse:
    """The page again, with the reason and the right status (429 with Retry-After)."""
    if isinstance(exc, RateLimited):
        response = await render(request, template, {**context, "errors": [str(exc)]}, 429)
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    status = exc.status if isinstance(exc, AccountError) else 400
    return await render(request, template, {**context, "errors": [str(exc)]}, status)


def json_refusal(exc: Exception, status: int = 400) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        status = 429
        headers["retry-after"] = str(exc.retry_after)
    elif isinstance(exc, AccountError):
        status = exc.status
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def safe_next(value: str | None, default: str = "/account/") -> str:
    """A redirect target on this site only: a path, never another origin."""
    if not value or len(value) > 2000:
        return default
    # "//host" and "/\host" are protocol-relative to browsers; control chars can hide both.
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if re.search(r"[\x00-\x20\\]", value):
        return default
    return value


def absolute_url(request: Request, path: str) -> str:
    """A link to ``path`` for a mail; raises :class:`NoPublicAddress` (and logs why).

    Never built on the request's Host alone (see :mod:`tilsit.web.hosts`).
    """
    try:
        base = public_base(
            instance_of(request).settings, request.headers.get("host", ""), request.url.scheme
        )
    except NoPublicAddress as exc:
        log.warning("account mail refused: %s", exc)
        raise
    return base + path


async def mail_links_refused(
    request: Request, template: str, context: dict[str, Any], exc: NoPublicAddress
) -> HTMLResponse:
    """The page again, saying that no mail with a link can be sent from here."""
    return await render(request, template, {**context, "errors": [exc.user_message]}, exc.status)


def mail_task(request: Request, to: str, subject: str, body: str) -> BackgroundTask:
    """Send after the response: the answer takes as long whether or not mail goes out."""
    settings = instance_of(request).settings

    async def send() -> None:
        try:
            await run(mail.send_mail, settings, to, subject, body)
        except Exception:
            log.exception("could not send %r to %s", subject, to)

    return BackgroundTask(send)


def notify(
    request: Request, response: Response, user: UserRow, change: str, *, detail: str = ""
) -> None:
    """Send the security notice for ``change`` after ``response``.

    ``user`` is as the request found it, so after an address change the notice
    goes to the old address. Only a confirmed address is told: an unconfirmed
    one may be the attacker's own.
    """
    if not user.email or user.email_verified_at is None:
        return
    try:
        reset_url: str | None = absolute_url(request, "/account/forgot-password")
    except NoPublicAddress:
        # The notice still goes (it carries no secret), naming the page instead of
        # linking to an address the request chose.
        reset_url = None
    notice = notices.notice_for(
        change,
        to=user.email,
        user_name=user.name,
        ip=client_ip(request),
        reset_url=reset_url,
        detail=detail,
    )
    task = mail_task(request, notice.to, notice.subject, notice.body)
    if response.background is None:
        response.background = BackgroundTasks([task])
    elif isinstance(response.background, BackgroundTasks):
        response.background.tasks.append(task)
    else:
        response.background = BackgroundTasks([response.background, task])


def session_data(request: Request) -> dict[str, Any]:
    row = visitor_of(request).row
    return dict(row.data) if row is not None else {}


def live_session(db: Any, request: Request) -> SessionRow | None:
    row = visitor_of(request).row
    if row is None:
        return None
    live: SessionRow | None = db.get(SessionRow, row.id)
    return live
