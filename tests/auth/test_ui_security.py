"""Every web page: POSTs without the session's CSRF token are refused before they act,
and every HTML response (pages, errors, redirects' targets) carries the CSP."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from tests.conftest import AppClient
from tilsit.db.models import Base
from tilsit.instance import Instance
from tilsit.web.ui import all_routes
from tilsit.web.ui.context import CSP


def _concrete(path: str) -> str:
    """A URL for a route pattern: path parameters get plausible values."""

    def value(match: re.Match[str]) -> str:
        if match[2] == ":int":
            return "1"
        return "main" if "index" in match[1] else "x1"

    return re.sub(r"\{([^}:]+)(:[^}]+)?\}", value, path)


def _routes(method: str) -> list[str]:
    return sorted(
        {
            _concrete(route.path)
            for route in all_routes()
            if isinstance(route, Route) and route.methods and method in route.methods
        }
    )


def _row_counts(instance: Instance) -> dict[str, int]:
    with instance.db.read() as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
            if name not in ("sessions",)
        }


def test_there_are_post_routes_to_check() -> None:
    assert len(_routes("POST")) >= 1


@pytest.mark.parametrize("path", _routes("POST"))
def test_post_without_csrf_token_is_refused(
    client: AppClient, instance: Instance, path: str
) -> None:
    before = _row_counts(instance)
    # A session exists (the visitor loaded a page first), but the form lacks its token.
    client.get("/")
    response = client.post(path, data={"name": "x", "password": "p" * 20})
    assert response.status_code == 403, (path, response.status_code, response.text[:300])
    assert "CSRF" in response.text
    assert response.headers["content-security-policy"] == CSP
    # A wrong token is refused the same way.
    wrong = client.post(path, data={"csrf_token": "forged", "name": "x"})
    assert wrong.status_code == 403, path
    assert _row_counts(instance) == before


@pytest.mark.parametrize("path", ["/", *_routes("GET"), "/no/such/page", "/account/no-such-page"])
def test_every_html_response_has_the_csp(client: AppClient, path: str) -> None:
    response = client.get(path, follow_redirects=True)
    if response.headers.get("content-type", "").startswith("text/html"):
        assert response.headers["content-security-policy"] == CSP, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text and " style=" not in response.text, path


def test_session_cookie_is_secure_httponly_samesite(client: AppClient) -> None:
    cookie = client.get("/").headers["set-cookie"]
    assert cookie.startswith("__Host-tilsit-session=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"):
        assert attribute in cookie
    assert "Domain=" not in cookie
