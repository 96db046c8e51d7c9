"""The web UI: server-rendered pages (jinja2) for accounts, projects and administration.

It is a Starlette application the raw-ASGI router hands everything that is not
the read path or the upload API: ``/``, ``/account/…``, ``/project/…``,
``/admin/…``, ``/_/static/…`` and the trusted-publishing API under ``/_/oidc/``.
Each area keeps its routes in its own module; this one puts them together.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tilsit.instance import Instance
from tilsit.web import oidc
from tilsit.web.ui import (
    account,
    admin,
    browse_index,
    browse_project,
    home,
    projects,
    publishers,
    reviews,
    search,
    stats,
    tokens,
)
from tilsit.web.ui.context import (
    STATIC,
    Forbidden,
    LoginRequired,
    VisitorMiddleware,
    error_page,
    login_redirect,
)

__all__ = ["build_ui"]


def all_routes() -> list[BaseRoute]:
    return [
        *home.routes,
        *account.routes,
        *tokens.routes,
        *publishers.routes,
        *projects.routes,
        *reviews.routes,
        *admin.routes,
        Mount("/_/static", StaticFiles(directory=STATIC), name="static"),
        *search.routes,
        *stats.routes,
        # Last: /{index}/ would otherwise match every area above.
        *browse_project.routes,
        *browse_index.routes,
    ]


async def _login_required(request: Request, exc: Exception) -> Response:
    return login_redirect(request)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return await error_page(request, 403, str(exc) or "Forbidden.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return await error_page(request, exc.status_code, exc.detail or "Error.")


def build_ui(instance: Instance) -> ASGIApp:
    pages = Starlette(
        routes=all_routes(),
        exception_handlers={
            LoginRequired: _login_required,
            Forbidden: _forbidden,
            HTTPException: _http_error,
        },
    )
    pages.state.instance = instance
    api = Starlette(routes=oidc.routes)
    api.state.instance = instance
    ui = VisitorMiddleware(pages, instance)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # The OIDC API takes no cookies and needs no CSRF token: it is called by CI
        # jobs with a JWT, never by a browser session.
        if scope["type"] == "http" and scope["path"].startswith("/_/oidc/"):
            await api(scope, receive, send)
        else:
            await ui(scope, receive, send)

    return app
