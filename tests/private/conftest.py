"""Fixtures of the private-index tests: an in-process app whose access cache runs on a
clock the test moves, and a live server with a private index holding one project."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import anyio.from_thread
import pytest
import sqlalchemy

from tests.builders import Dist, make_wheel
from tests.conftest import AppClient
from tests.uploads import upload
from tilsit.auth.tokens import create_token
from tilsit.db.models import TokenRow, UserRow
from tilsit.index.manage import create_index, create_user, get_index
from tilsit.index.permissions import grant_permission, set_visibility
from tilsit.instance import Instance
from tilsit.web.app import TilsitApp
from tilsit.web.reason import install


class Clock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Private:
    """An app with a private index ``sec`` holding ``secret-tool`` 1.0 (a wheel)."""

    instance: Instance
    app: TilsitApp
    http: AppClient
    clock: Clock
    wheel: Dist
    owner_token: str  # alice: uploaded the project, so she is its Owner

    def user(self, name: str) -> None:
        with self.instance.db.write() as db:
            exists = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == name)).first()
            if exists is None:
                create_user(db, name)

    def token(self, user: str, index: str | None = None) -> str:
        self.user(user)
        with self.instance.db.write() as db:
            row = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == user)).one()
            scope = get_index(db, index) if index else None
            return create_token(db, row, index=scope).secret

    def grant(self, user: str, permission: str, index: str = "sec") -> None:
        self.user(user)
        with self.instance.db.write() as db:
            row = db.scalars(sqlalchemy.select(UserRow).where(UserRow.name == user)).one()
            grant_permission(db, get_index(db, index), row, permission, actor_name="test")

    def set_private(self, index: str, private: bool) -> None:
        with self.instance.db.write() as db:
            set_visibility(db, get_index(db, index), private=private, actor_name="test")
        self.instance.renderer.catch_up()

    def revoke_token(self, secret: str) -> None:
        from tilsit.auth.tokens import find_token

        with self.instance.db.write() as db:
            row: TokenRow = find_token(db, secret)
            row.revoked_at = sqlalchemy.func.now()


def basic(token: str, user: str = "__token__") -> dict[str, str]:
    value = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def private(instance: Instance) -> Iterator[Private]:
    install()
    with instance.db.write() as db:
        create_index(db, "sec", actor="test")
        alice = create_user(db, "alice")
        owner_token = create_token(db, alice).secret
    instance.renderer.catch_up()
    clock = Clock()
    app = TilsitApp(instance)
    app.gate.clock = clock
    wheel = make_wheel("Secret_Tool", "1.0")
    with anyio.from_thread.start_blocking_portal() as portal:
        http = AppClient(portal, app)
        response = upload(http, wheel, owner_token, "/sec/legacy/")
        assert response.status_code == 200, response.text
        state = Private(instance, app, http, clock, wheel, owner_token)
        state.set_private("sec", True)
        yield state
        portal.call(http.http.aclose)
