"""Fixtures of the search tests: an in-process app with a token that uploads to ``main``,
and a helper that publishes a wheel with the metadata a search reads."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.from_thread
import httpx
import pytest
import sqlalchemy

from tests.accounts.conftest import PASSWORD, Browser
from tests.builders import Dist, make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.passwords import hash_password
from tilsit.auth.tokens import create_token
from tilsit.db.models import UserRow
from tilsit.index.manage import create_user, get_index
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install


def metadata(name: str, version: str, summary: str, keywords: str = "", readme: str = "") -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if keywords:
        lines.append(f"Keywords: {keywords}")
    lines.append("Description-Content-Type: text/markdown")
    return ("\n".join(lines) + "\n\n" + readme).encode()


def wheel(name: str, version: str, summary: str, keywords: str = "", readme: str = "") -> Dist:
    return make_wheel(name, version, metadata=metadata(name, version, summary, keywords, readme))


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}


@dataclass
class Search:
    instance: Instance
    http: AppClient
    token: str  # alice's, every index
    portal: anyio.from_thread.BlockingPortal
    app: TilsitApp

    def browser(self, user: str) -> Browser:
        """A logged-in browser session of ``user`` (made with a password if new)."""
        with self.instance.db.write() as db:
            row = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == user)).first()
            row = row or create_user(db, user)
            row.email = f"{user}@example.test"
            row.email_verified_at = datetime.now(UTC)
            row.password_hash = hash_password(PASSWORD)
        browser = Browser(self.portal, self.app, "127.0.0.1")
        response = browser.login(user)
        assert response.status_code in (200, 303), response.text[:300]
        return browser

    def publish(self, dist: Dist, index: str = "main", token: str | None = None) -> None:
        response = upload(self.http, dist, token or self.token, f"/{index}/legacy/")
        assert response.status_code == 200, response.text

    def user_token(
        self, user: str, index: str | None = None, projects: list[str] | None = None
    ) -> str:
        with self.instance.db.write() as db:
            row = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == user)).first()
            row = row or create_user(db, user)
            scope = get_index(db, index) if index else None
            return create_token(db, row, index=scope, projects=projects).secret

    def json(
        self, query: str, headers: dict[str, str] | None = None, **params: str
    ) -> httpx.Response:
        return self.http.get(
            "/_/search",
            params={"q": query, **params},
            headers={"Accept": "application/json", **(headers or {})},
        )

    def names(self, query: str, headers: dict[str, str] | None = None, **params: str) -> list[str]:
        response = self.json(query, headers, **params)
        assert response.status_code == 200, response.text
        return [f"{r['index']}/{r['name']}" for r in response.json()["results"]]


@pytest.fixture
def search(instance: Instance) -> Iterator[Search]:
    install()
    with instance.db.write() as db:
        alice = create_user(db, "alice")
        token = create_token(db, alice, bulk=True).secret  # many new projects
    app = TilsitApp(instance)
    with anyio.from_thread.start_blocking_portal() as portal:
        http = AppClient(portal, app)
        yield Search(instance, http, token, portal, app)
        portal.call(http.http.aclose)
