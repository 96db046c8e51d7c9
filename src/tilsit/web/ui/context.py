"""What every web page shares: the visitor's session, CSRF, rendering, security headers.

Pages are ordinary Starlette endpoints declared with :func:`page`. A page that
accepts POST is wrapped so the form's ``csrf_token`` is checked before the
endpoint runs; there is no way to declare a state-changing page without it.

CSRF without a row for anonymous visitors: a session row is made only when
there is something to keep (a login, or a second factor owed), so that a
cookie-less GET is never a database write. An anonymous visitor shown a form
gets a random value in the session cookie instead, and the form's token is
:func:`sessions.anonymous_csrf_token` of it (a one-way function, so the page
never shows the cookie). A forged POST from another site carries neither the
cookie value (HttpOnly, never readable cross-origin) nor the token. An
attacker who could *plant* a cookie could also fetch the token for it, with or
without a server secret in the mix (as they could plant their own anonymous
session before); the ``__Host-`` cookie prefix is what stops planting. The
logged-in session's token stays in its row, as before.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilsit.auth import sessions, switches
from tilsit.db.models import SessionRow, UserRow, utcnow
from tilsit.instance import Instance

__all__ = [
    "CSP",
    "Forbidden",
    "LoginRequired",
    "Visitor",
    "client_ip",
    "instance_of",
    "page",
    "render",
    "require_admin",
    "require_user",
    "validated_form",
    "visitor_of",
]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Everything from our own origin, nothing inline, never framed. The QR code is
# inline SVG markup (not a data: image), so img-src needs no more than 'self'.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LoginRequired(Exception):
    """The page needs a logged-in user; answered with a redirect to the login page."""


class Forbidden(Exception):
    """The user may not do this; answered with 403 and the reason."""


@dataclass
class Visitor:
    """The session behind a request. ``user`` is set only once fully logged in."""

    row: SessionRow | None
    user: UserRow | None
    cookie_name: str
    # Set when the session was created or replaced: the middleware sends the cookie.
    new_secret: str | None = None
    ended: bool = False
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    # The anonymous visitor's cookie value (no row behind it), once there is one.
    nonce: str | None = None

    @property
    def csrf_token(self) -> str:
        if self.row is not None:
            return self.row.csrf_token
        if self.nonce is not None:
            return sessions.anonymous_csrf_token(self.nonce)
        return ""

    def replace(self, new: sessions.NewSession, user: UserRow | None) -> None:
        self.row, self.user, self.new_secret, self.ended = new.row, user, new.secret, False
        self.nonce = None

    def end(self) -> None:
        self.row, self.user, self.ended, self.nonce, self.new_secret = None, None, True, None, None


def instance_of(request: Request) -> Instance:
    instance: Instance = request.app.state.instance
    return instance


def visitor_of(request: Request) -> Visitor:
    visitor: Visitor = request.scope["tilsit.visitor"]
    return visitor


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def cookie_name(instance: Instance) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure,
    # host-only and Path=/, so a sibling subdomain cannot plant or shadow it.
    return "__Host-tilsit-session" if instance.settings.secure_cookies else "tilsit-session"


def ensure_csrf(request: Request) -> Visitor:
    """The visitor, with a CSRF token for the page's forms: no database write.

    A visitor without a session gets a fresh anonymous cookie value (sent with
    the response); a logged-out visitor gets one on the next page.
    """
    visitor = visitor_of(request)
    if visitor.row is None and visitor.nonce is None:
        visitor.nonce = visitor.new_secret = sessions.new_anonymous_value()
    return visitor


def user_lifetime(instance: Instance) -> timedelta:
    return timedelta(seconds=instance.settings.session_lifetime)


def require_user(request: Request) -> UserRow:
    user = visitor_of(request).user
    if user is None:
        raise LoginRequired()
    return user


def require_admin(request: Request) -> UserRow:
    user = require_user(request)
    if not user.is_admin:
        raise Forbidden("This page is for administrators.")
    return user


async def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    visitor = ensure_csrf(request)
    instance = instance_of(request)
    values = {
        "request": request,
        "user": visitor.user,
        "csrf_token": visitor.csrf_token,
        "settings": instance.settings,
        **(context or {}),
    }
    body = _environment.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def validated_form(request: Request) -> FormData:
    """The form of a POST that :func:`page` has already checked for CSRF."""
    form: FormData = request.scope["tilsit.form"]
    return form


Endpoint = Callable[[Request], Awaitable[Response]]


def page(
    path: str, endpoint: Endpoint, methods: tuple[str, ...] = ("GET",), name: str | None = None
) -> Route:
    """A UI route; POST bodies must carry the session's CSRF token."""
    if "POST" in methods:
        endpoint = _csrf_protected(endpoint)
    return Route(path, endpoint, methods=list(methods), name=name)


# Forms are small; anything bigger is refused before it is parsed.
MAX_FORM_BYTES = 1024 * 1024

# Forms still accepted in read-only mode: logging in (with its second-factor
# step, /account/two-factor; removing a factor under it checks read-only mode
# itself) and out, and the switches page, so that an admin can log in and turn
# read-only mode off again.
READ_ONLY_ALLOWED = (
    "/account/login",
    "/account/two-factor",
    "/account/logout",
    "/admin/switches",
)


def _allowed_when_read_only(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in READ_ONLY_ALLOWED)


def _read_only(request: Request) -> bool:
    with instance_of(request).db.read() as db:
        return switches.enabled(db, switches.READ_ONLY)


def _csrf_protected(endpoint: Endpoint) -> Endpoint:
    async def checked(request: Request) -> Response:
        if request.method != "POST":
            return await endpoint(request)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            return await error_page(request, 413, "The form is too large.")
        visitor = visitor_of(request)
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        sent: object
        if media_type == "application/json":
            # JSON bodies (only the WebAuthn script sends them) carry the token in a
            # header. Another origin cannot send a JSON body or a custom header
            # without a CORS preflight, which this server never grants; the token
            # is still required so a same-site page cannot forge one either.
            # The endpoint reads the body itself with request.json().
            form = FormData()
            sent = request.headers.get("x-csrf-token")
        else:
            try:
                form = await request.form(max_files=0, max_fields=200)
            except Exception:  # noqa: BLE001 - any malformed body is the sender's error
                return await error_page(request, 400, "The form could not be read.")
            sent = form.get("csrf_token")
        expected = visitor.csrf_token
        if not (
            isinstance(sent, str)
            and expected
            and hmac.compare_digest(sent.encode(), expected.encode())
        ):
            return await error_page(
                request,
                403,
                "The form's CSRF token is missing or does not match your session."
                " Reload the page and try again.",
            )
        if not _allowed_when_read_only(request.url.path) and await anyio.to_thread.run_sync(
            _read_only, request
        ):
            return await error_page(
                request,
                503,
                "This server is in read-only mode: nothing can be changed for now."
                " Packages can still be installed; try again later.",
            )
        request.scope["tilsit.form"] = form
        return await endpoint(request)

    checked.__name__ = getattr(endpoint, "__name__", "page")
    checked.__doc__ = endpoint.__doc__
    return checked


async def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return await render(request, "error.html", {"status": status, "message": message}, status)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/account/login?next={quote(target, safe='')}", status_code=303)


class VisitorMiddleware:
    """Loads the session named by the cookie; sends the cookie when it changes; adds CSP."""

    def __init__(self, app: ASGIApp, instance: Instance) -> None:
        self.app = app
        self.instance = instance
        self.cookie = cookie_name(instance)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        secret = request.cookies.get(self.cookie)
        visitor = await anyio.to_thread.run_sync(self._load, secret)
        scope["tilsit.visitor"] = visitor

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Every response, not only pages: JSON answers and static files are
                # documents a browser can be sent to too (issue 14: the CSP on every one).
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                headers.extend(self._cookie_headers(visitor))
                headers.extend(visitor.extra_headers)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _load(self, secret: str | None) -> Visitor:
        if not secret:
            # No cookie: nothing to look up (the page makes an anonymous value if
            # it shows a form); most reads of the web pages end here.
            return Visitor(None, None, self.cookie)
        with self.instance.db.read() as db:
            row = sessions.load_session(db, secret)
            user = None
            if row is not None and row.auth_state == sessions.FULL and row.user_id is not None:
                user = db.get(UserRow, row.user_id)
            touch = row is not None and sessions.needs_touch(row)
        if touch and row is not None:
            with self.instance.db.write() as db:
                live = db.get(SessionRow, row.id)
                if live is not None:
                    live.last_seen_at = utcnow()
        # A value with no live row behind it is an anonymous visitor's: its forms'
        # token derives from it. (An ended or expired session's old secret serves
        # the same way; it names no row, so it grants nothing.)
        nonce = sessions.anonymous_value(secret) if row is None else None
        return Visitor(row, user, self.cookie, nonce=nonce)

    def _cookie_headers(self, visitor: Visitor) -> list[tuple[bytes, bytes]]:
        secure = "; Secure" if self.instance.settings.secure_cookies else ""
        if visitor.new_secret is not None:
            if visitor.row is not None:
                lifetime = visitor.row.expires_at - visitor.row.created_at
            else:
                lifetime = sessions.ANONYMOUS_LIFETIME
            max_age = int(lifetime.total_seconds())
            value = (
                f"{self.cookie}={visitor.new_secret}; Path=/; Max-Age={max_age}; HttpOnly;"
                f" SameSite=Lax{secure}"
            )
            return [(b"set-cookie", value.encode())]
        if visitor.ended:
            value = f"{self.cookie}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
            return [(b"set-cookie", value.encode())]
        return []
